#!/usr/bin/env bash
# Regenerate the speech of the call scenarios in tests/calls (agent turns and caller lines).
#
# Run once, by hand; the WAVs it writes are committed, so CI never needs these tools:
#     bash tests/calls/make_audio.sh
#
# Tools (Debian packages):
#   espeak-ng 1.51 (espeak-ng)  formant text-to-speech: deterministic, same text gives the same samples
#   sox 14.4.2 (sox)            trim leading/trailing silence, resample 22.05 kHz -> 16 kHz,
#                               normalise, pad and mix
#   python3 (standard library)  the background noise of the noisy line, from a fixed seed
#
# Output: audio/<name>.wav (16 kHz, mono, PCM16) and audio/<name>.txt (the transcript).
# Reproducible: espeak-ng has no randomness, the noise comes from Python's random.Random with a
# fixed seed (sox's own noise generator cannot be seeded), and sox runs in repeatable mode (-R)
# without dither (-D), so a rerun with the same tool versions rewrites identical files.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/audio"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The agent is a female US voice at a brisk TTS pace; the caller a male US voice, a little
# slower: the same voices as callbridge/assets, so the two sets sound alike.
agent_voice=(-v en-us+f3 -s 210 -p 55)
caller_voice=(-v en-us+m3 -s 175 -p 40)

# speak NAME PEAK_DB VOICE_ARGS... -- TEXT
#   silence 1 0.02 1%  drops everything before the first 20 ms above 1% of full scale; run
#   again on the reversed audio it trims the tail. Pauses inside the line stay untouched.
#   norm: peak-normalise. Caller lines go to -3 dBFS so the emulator's energy VAD hears them;
#   agent lines to -6 dBFS, like typical TTS output with headroom.
speak() {
    local name=$1 peak=$2
    shift 2
    local args=()
    while [[ $1 != -- ]]; do args+=("$1"); shift; done
    local text=$2
    espeak-ng "${args[@]}" -w "$work/$name.wav" "$text"
    sox -R -D "$work/$name.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
        silence 1 0.02 1% reverse silence 1 0.02 1% reverse rate -v 16000 norm "$peak"
    printf '%s\n' "$text" > "$out/$name.txt"
    printf '%-30s %6.2f s\n' "$name" "$(soxi -D "$out/$name.wav")"
}

# --- Agent turns ------------------------------------------------------------------------------

speak agent_greeting -6 "${agent_voice[@]}" -- \
    "Contoso support, this is Ava. How can I help you today?"
speak agent_greeting_keypad -6 "${agent_voice[@]}" -- \
    "Contoso support, this is Ava. Please key in your order number, then press hash."
# Long enough to be interrupted early, mid-sentence, or to be hung up on.
speak agent_answer_long -6 "${agent_voice[@]}" -- \
    "Your order left our Seattle warehouse yesterday and was handed to the carrier this morning. It is on its way to the sorting center now, and the carrier expects to deliver it on Thursday, between nine and one."
speak agent_answer_short -6 "${agent_voice[@]}" -- \
    "Your order was shipped this morning, and it should arrive on Thursday."
speak agent_text_link_goodbye -6 "${agent_voice[@]}" -- \
    "Sure, I have texted the tracking link to your phone. Goodbye!"
speak agent_goodbye -6 "${agent_voice[@]}" -- \
    "You're welcome. Have a great day. Goodbye!"
speak agent_checking_order -6 "${agent_voice[@]}" -- \
    "Let me check order forty-two."
speak agent_order_status_goodbye -6 "${agent_voice[@]}" -- \
    "Order forty-two has shipped, and it will arrive on Thursday. Goodbye!"

# --- Caller lines -----------------------------------------------------------------------------
# Each line is one utterance for a VAD that ends a turn after 500 ms of silence: no pause
# inside a line is that long.

speak caller_question -3 "${caller_voice[@]}" -- \
    "Hi, I'd like to know where my order is."
speak caller_interrupt -3 "${caller_voice[@]}" -- \
    "Sorry, can you just text me the tracking link?"
speak caller_thanks_bye -3 "${caller_voice[@]}" -- \
    "Great, thanks, bye."
speak caller_order_question -3 "${caller_voice[@]}" -- \
    "Where is my order, number forty-two?"
# A backchannel, said quickly over the agent to show the caller follows, not to take the turn.
speak caller_mm_hmm -3 "${caller_voice[@]}" -s 330 -- \
    "Mm-hmm."

# --- A cough ----------------------------------------------------------------------------------
# 150 ms of loud band-passed noise with a fast attack and decay: not speech, but loud enough
# for a VAD to start a turn. No transcript (the transcription hears no words).
python3 - "$out/caller_cough.wav" <<'PY'
import array, math, random, sys, wave

rate, seconds, peak = 16000, 0.15, 20000
rng = random.Random(20261203)
alpha = 1 - math.exp(-2 * math.pi * 2500 / rate)
low = 0.0
samples = []
n = round(seconds * rate)
for i in range(n):
    low += alpha * (rng.gauss(0.0, 1.0) - low)
    envelope = math.sin(math.pi * i / n) ** 0.5
    samples.append(low * envelope)
scale = peak / max(abs(s) for s in samples)
pcm = array.array("h", (round(s * scale) for s in samples))
if sys.byteorder != "little":
    pcm.byteswap()
with wave.open(sys.argv[1], "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(rate)
    out.writeframes(pcm.tobytes())
PY
printf '\n' > "$out/caller_cough.txt"

# --- The noisy line ---------------------------------------------------------------------------
# caller_question on a noisy line: NOISE_LEAD_S of noise alone, the question with the noise
# under it, then NOISE_TAIL_S of noise alone. The noise is low-passed Gaussian noise (a muffled
# room or street) at an RMS of NOISE_RMS on the PCM16 scale: under the Voice Live emulator's
# energy VAD threshold (vad_threshold_rms = 400 in every 20 ms window), so noise alone is not
# speech, while the question itself (about 20 dB louder) still is.
NOISE_SEED=20240611
NOISE_RMS=200
NOISE_LEAD_S=2.6
NOISE_TAIL_S=1.6
speech_s=$(soxi -D "$out/caller_question.wav")
noise_s=$(python3 -c "print(f'{$NOISE_LEAD_S + $speech_s + $NOISE_TAIL_S:.6f}')")
python3 - "$work/noise.wav" "$noise_s" "$NOISE_SEED" "$NOISE_RMS" <<'PY'
import array, math, random, sys, wave

path, seconds, seed, target_rms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rate = 16000
rng = random.Random(seed)
# White Gaussian noise through two one-pole low-pass filters (corner about 1 kHz).
alpha = 1 - math.exp(-2 * math.pi * 1000 / rate)
first = second = 0.0
samples = []
for _ in range(round(seconds * rate)):
    first += alpha * (rng.gauss(0.0, 1.0) - first)
    second += alpha * (first - second)
    samples.append(second)
scale = target_rms / math.sqrt(sum(s * s for s in samples) / len(samples))
pcm = array.array("h", (round(s * scale) for s in samples))
if sys.byteorder != "little":
    pcm.byteswap()
with wave.open(path, "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(rate)
    out.writeframes(pcm.tobytes())
PY
sox -R -D "$out/caller_question.wav" "$work/speech_padded.wav" pad "$NOISE_LEAD_S" "$NOISE_TAIL_S"
sox -R -D -m -v 1 "$work/speech_padded.wav" -v 1 "$work/noise.wav" \
    -r 16000 -c 1 -b 16 -e signed-integer "$out/caller_question_noisy.wav" trim 0 "$noise_s"
cp "$out/caller_question.txt" "$out/caller_question_noisy.txt"
printf '%-30s %6.2f s  (noise alone for the first %s s and the last %s s)\n' \
    caller_question_noisy "$(soxi -D "$out/caller_question_noisy.wav")" "$NOISE_LEAD_S" "$NOISE_TAIL_S"
