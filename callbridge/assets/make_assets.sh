#!/usr/bin/env bash
# Regenerate the speech assets: the simulated support call (agent lines and caller lines) and
# the fallback clips the bridge plays itself when no agent can talk.
#
# Run once, by hand; the WAVs it writes are committed, so tests never need these tools:
#     bash callbridge/assets/make_assets.sh
#
# Tools (Debian packages):
#   espeak-ng 1.51 (espeak-ng)  formant text-to-speech: deterministic, same text gives the same samples
#   sox 14.4.2 (sox)            trim leading/trailing silence, resample 22.05 kHz -> 16 kHz, normalise
#
# Output: <name>.wav (16 kHz, mono, PCM16) and <name>.txt (the transcript) beside this script.
# Reproducible: espeak-ng has no randomness, and sox runs in repeatable mode (-R) without
# dither (-D), so a rerun with the same tool versions rewrites identical files.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The agent is a female US voice at a brisk TTS pace; the caller a male US voice, a little slower.
agent_voice=(-v en-us+f3 -s 210 -p 55)
caller_voice=(-v en-us+m3 -s 175 -p 40)

# make NAME PEAK_DB VOICE_ARGS... -- TEXT
#   silence 1 0.02 1%  drops everything before the first 20 ms above 1% of full scale; run
#   again on the reversed audio it trims the tail. Pauses inside the line stay untouched.
#   norm: peak-normalise. Caller lines go to -3 dBFS so a simple energy VAD hears them;
#   agent lines to -6 dBFS, like typical TTS output with headroom.
make() {
    local name=$1 peak=$2
    shift 2
    local args=()
    while [[ $1 != -- ]]; do args+=("$1"); shift; done
    local text=$2
    espeak-ng "${args[@]}" -w "$work/$name.wav" "$text"
    sox -R -D "$work/$name.wav" -r 16000 -c 1 -b 16 -e signed-integer "$here/$name.wav" \
        silence 1 0.02 1% reverse silence 1 0.02 1% reverse rate -v 16000 norm "$peak"
    printf '%s\n' "$text" > "$here/$name.txt"
    printf '%-22s %6.2f s\n' "$name" "$(soxi -D "$here/$name.wav")"
}

make agent_01_greeting -6 "${agent_voice[@]}" -- \
    "Thanks for calling Contoso support, this is Ava. How can I help you today?"
make agent_02_answer -6 "${agent_voice[@]}" -- \
    "Of course. Your order was packed at our Seattle warehouse yesterday and handed to the carrier this morning. It is now on its way to the sorting center, and the carrier expects to deliver it on Thursday, between nine and one."
make agent_03_followup -6 "${agent_voice[@]}" -- \
    "Sure. I have just texted the tracking link to the number ending in four five six seven."
make agent_04_goodbye -6 "${agent_voice[@]}" -- \
    "You're welcome. Have a great day. Goodbye!"

make caller_01_question -3 "${caller_voice[@]}" -- \
    "Hi, I'd like to know where my order is."
make caller_02_interrupt -3 "${caller_voice[@]}" -- \
    "Sorry, can you just text me the tracking link?"
make caller_03_thanks -3 "${caller_voice[@]}" -- \
    "Great, thanks. Bye."

# The fallback clips: said by the bridge, in the agent's voice, when Voice Live cannot answer.
# fallback_transfer precedes a transfer to a person, fallback_goodbye a hang-up.
make fallback_transfer -6 "${agent_voice[@]}" -- \
    "I'm sorry, our assistant can't take your call right now. I'm putting you through to a colleague."
make fallback_goodbye -6 "${agent_voice[@]}" -- \
    "I'm sorry, our assistant can't take your call right now. Please call again a little later. Goodbye."
