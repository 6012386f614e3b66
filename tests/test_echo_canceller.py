"""The bridge's echo canceller and the timeline it takes its reference from, on real speech.

Speech, not noise: a voice repeats itself every pitch period, the hard case for finding an
echo's delay. The agent's side is the shipped agent clips, the caller's the caller clips.
"""

from __future__ import annotations

import wave
from importlib import resources
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from callbridge.bridge.caller_echo import CallerEcho
from callbridge.core.codec import make_codec
from callbridge.core.echo_canceller import EchoCanceller
from callbridge.core.played_audio import PlayedAudio

RATE = 16000
FRAME = RATE // 50
Signal = np.ndarray[Any, np.dtype[np.float64]]


def clip(name: str) -> Signal:
    with wave.open(str(resources.files("callbridge.assets") / f"{name}.wav")) as source:
        assert source.getframerate() == RATE
        pcm = source.readframes(source.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


AGENT = np.concatenate([clip("agent_02_answer"), clip("agent_03_followup")])
CALLER = clip("caller_01_question")
CALLER_AT = 3 * RATE  # the caller talks over the agent from 3 s on


def line(
    delay: int, *, path: tuple[float, ...] = (1.0,), level_db: float = -15.0, caller: bool = True
) -> tuple[Signal, Signal]:
    """What the phone sends (the agent's echo, plus the caller from 3 s if ``caller``) and the
    caller's voice alone."""
    echo = np.zeros(AGENT.size)
    filtered = np.convolve(AGENT, np.array(path))[: AGENT.size] * 10 ** (level_db / 20)
    echo[delay:] = filtered[: AGENT.size - delay]
    voice = np.zeros(AGENT.size)
    if caller:
        voice[CALLER_AT : CALLER_AT + CALLER.size] = CALLER[: AGENT.size - CALLER_AT]
    return echo + voice, voice


def cancel(mic: Signal) -> tuple[Signal, EchoCanceller]:
    canceller = EchoCanceller(RATE)
    reference = AGENT.astype(np.int16)
    sent = np.clip(mic, -32768, 32767).astype(np.int16)
    out = [
        canceller.process(sent[i : i + FRAME], reference[i : i + FRAME])
        for i in range(0, AGENT.size - FRAME + 1, FRAME)
    ]
    return np.concatenate(out).astype(np.float64), canceller


def db(signal: Signal) -> float:
    return float(10 * np.log10(np.mean(signal**2) + 1e-9))


def echo_only(size: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """After the first second, outside the caller's speech."""
    mask = np.zeros(size, dtype=bool)
    mask[RATE:] = True
    mask[CALLER_AT : CALLER_AT + CALLER.size] = False
    return mask


@pytest.mark.parametrize(
    ("delay", "path", "min_erle_db"),
    [
        (2400, (1.0,), 25.0),  # 150 ms, a pure delay: the phone stand-in's echo
        (2403, (1.0,), 25.0),  # between the delay search's steps
        (40, (1.0,), 18.0),  # 2.5 ms: hardly any delay
        (4001, (0.6, 0.3, -0.2, 0.1, 0.05), 15.0),  # 250 ms through a filtering echo path
    ],
)
def test_the_echo_is_cancelled_and_the_caller_kept(
    delay: int, path: tuple[float, ...], min_erle_db: float
) -> None:
    mic, voice = line(delay, path=path)
    out, canceller = cancel(mic)
    quiet = echo_only(out.size)
    erle = db(mic[: out.size][quiet]) - db(out[quiet])
    assert erle >= min_erle_db
    # While the caller talks over the agent, what is left is their voice, nearly untouched.
    talking = slice(CALLER_AT, CALLER_AT + CALLER.size)
    assert db(out[talking] - voice[talking]) - db(voice[talking]) <= -25.0
    assert canceller.path is not None
    assert canceller.path.delay_ms == pytest.approx(delay * 1000 / RATE, abs=1.0)


def test_the_measured_level_is_the_echo_s() -> None:
    _, canceller = cancel(line(2400, level_db=-15.0)[0])
    assert canceller.path is not None
    assert canceller.path.level_db == pytest.approx(-15.0, abs=0.5)


@pytest.mark.parametrize("moved", [-100, -40, 40, 100])  # samples: -6.25 to +6.25 ms
def test_a_new_spurt_s_echo_is_taken_out_from_its_first_frames(moved: int) -> None:
    """The agent greets, the caller answers, the agent replies: the reply's echo comes back a
    few ms off the greeting's (the phone's jitter buffer starts afresh with each spurt), after
    a gap in which the canceller rested with the caller's words last in its history. No frame
    of the reply's first 400 ms may keep echo half as loud as a voiced frame (the turn
    detectors' 400): a few of them make a barge-in of nothing."""
    greeting, reply, caller = (
        clip(name) for name in ("agent_01_greeting", "agent_04_goodbye", "caller_03_thanks")
    )
    caller_at = greeting.size + 2 * FRAME * 10  # 400 ms after the greeting: within its reach
    reply_at = caller_at + caller.size + 35 * FRAME  # 700 ms after the caller
    echo_delay = 2400  # 150 ms
    reference = np.zeros(reply_at + reply.size + RATE)
    reference[: greeting.size] = greeting
    reference[reply_at : reply_at + reply.size] = reply
    mic = np.zeros(reference.size)
    gain = 10 ** (-15 / 20)
    mic[echo_delay : echo_delay + greeting.size] += gain * greeting
    reply_echo_at = reply_at + echo_delay + moved
    mic[reply_echo_at : reply_echo_at + reply.size] += gain * reply
    mic[caller_at : caller_at + caller.size] += caller
    canceller = EchoCanceller(RATE)
    sent, played = np.clip(mic, -32768, 32767).astype(np.int16), reference.astype(np.int16)
    out = np.concatenate(
        [
            canceller.process(sent[i : i + FRAME], played[i : i + FRAME])
            for i in range(0, reference.size - FRAME + 1, FRAME)
        ]
    ).astype(np.float64)
    first = reply_echo_at // FRAME
    frames = out[first * FRAME : (first + 20) * FRAME].reshape(20, FRAME)
    loudest = float(np.sqrt(np.mean(frames**2, axis=1)).max())
    assert loudest < 200.0


def test_without_an_echo_the_caller_passes_unchanged() -> None:
    """Agent audio playing, a caller talking over it, no echo: not one sample changes."""
    mic, _ = line(2400, level_db=-120.0)
    out, canceller = cancel(mic)
    assert np.array_equal(out, np.clip(mic, -32768, 32767).astype(np.int16)[: out.size])
    assert canceller.path is None


@pytest.mark.parametrize("seed", range(5))
def test_a_faint_lead_in_after_a_gap_on_a_noisy_line_passes_unchanged(seed: int) -> None:
    """A noisy line and no echo; the agent pauses a second, and its next turn opens with a
    few frames of mu-law's quietest steps. The histories start afresh after the gap, so no
    delay has reference enough to explain anything: a search there finds nothing (it once
    raised on finding no delay at all, which ended the call's caller side)."""
    rng = np.random.default_rng(seed)
    faint = rng.integers(-2, 3, 6 * FRAME).astype(np.float64)
    greeting, answer = clip("agent_01_greeting"), clip("agent_02_answer")
    played = np.concatenate([greeting[: 2 * RATE], np.zeros(RATE), faint, answer[:RATE]])
    noise = np.clip(rng.normal(0, 150, played.size), -32768, 32767).astype(np.int16)
    reference, canceller = played.astype(np.int16), EchoCanceller(RATE)
    out = [
        canceller.process(noise[i : i + FRAME], reference[i : i + FRAME])
        for i in range(0, played.size - FRAME + 1, FRAME)
    ]
    assert np.array_equal(np.concatenate(out), noise[: len(out) * FRAME])
    assert canceller.path is None


def test_a_fault_in_the_canceller_costs_the_call_its_cancelling_not_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a bug in the canceller raises, the caller's frames go on, as they came."""
    played = PlayedAudio(RATE, epoch=0.0)
    agent = AGENT[: 20 * FRAME].astype(np.int16)
    for n in range(20):
        played.add(n * 0.020, agent[n * FRAME : (n + 1) * FRAME].tobytes(), sent_at=0.0)
    echo = CallerEcho(
        played, rate=RATE, encoder=make_codec("pcm16", RATE).encoder, client_reference=False
    )

    def broken(*_: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(EchoCanceller, "process", broken)
    with capture_logs() as logs:
        for n in range(10):
            mic = (agent[n * FRAME : (n + 1) * FRAME] // 4).tobytes()
            assert echo.take(mic, (n + 1) * 0.020).cleaned == mic
    assert [entry["event"] for entry in logs] == ["call.echo_canceller_failed"]


@pytest.mark.parametrize("samples", [0, 1, 7, FRAME * 40 + 3])
def test_frames_of_any_length_pass(samples: int) -> None:
    """ACS sends 20 ms frames; a malformed stream's odd sizes must not break the call."""
    canceller = EchoCanceller(RATE)
    reference = AGENT[:samples].astype(np.int16)
    mic = (AGENT[:samples] * 0.2).astype(np.int16)
    assert canceller.process(mic, reference).size == samples


def test_a_frame_with_nothing_played_within_reach_costs_nothing() -> None:
    canceller = EchoCanceller(RATE)
    mic = (np.arange(FRAME) % 100).astype(np.int16)
    assert canceller.process(mic, np.zeros(FRAME, dtype=np.int16)) is mic


# --- The timeline the reference comes from ---------------------------------------------------


def test_played_audio_lines_frames_up_and_forgets_what_a_stop_cut() -> None:
    played = PlayedAudio(RATE, epoch=100.0)
    ones, twos = bytes(np.full(FRAME, 1, "<i2")), bytes(np.full(FRAME, 2, "<i2"))
    played.add(100.020000001, ones, sent_at=99.96)  # float noise on the grid
    played.add(100.040000002, twos, sent_at=99.98)
    assert played.end == 3 * FRAME
    window = played.window(0, 4 * FRAME)
    assert window.tolist() == [0] * FRAME + [1] * FRAME + [2] * FRAME + [0] * FRAME
    played.cut(100.0 + 0.050)  # StopAudio 10 ms into the second frame
    assert played.end == 2 * FRAME + FRAME // 2
    assert (played.window(2 * FRAME, FRAME)[FRAME // 2 :] == 0).all()


def test_the_caller_is_placed_by_samples_not_by_arrival_jitter() -> None:
    """Frames held up by a few ms line up with the reference sample for sample; a first frame
    that came late moves the count back once the next comes on time. With a client reference
    Voice Live gets [caller, reference] interleaved."""
    played = PlayedAudio(RATE, epoch=0.0)
    agent = AGENT[: 50 * FRAME].astype(np.int16)
    for n in range(50):
        played.add(n * 0.020, agent[n * FRAME : (n + 1) * FRAME].tobytes(), sent_at=n * 0.020)
    codec = make_codec("pcm16", RATE)
    echo = CallerEcho(played, rate=RATE, encoder=codec.encoder, client_reference=True)
    lateness = [0.015, 0.0, 0.004, 0.003, 0.0, 0.006, 0.002]  # the first frame 15 ms late
    for n, late in enumerate(lateness * 5):
        mic = np.full(FRAME, n, dtype="<i2")
        frame = echo.take(mic.tobytes(), (n + 1) * 0.020 + late)
        stereo = np.frombuffer(frame.for_voice_live, dtype="<i2")
        assert (stereo[0::2] == n).all()
        if n > 0:
            assert np.array_equal(stereo[1::2], agent[n * FRAME : (n + 1) * FRAME])


@pytest.mark.parametrize("late_start_ms", [12, 30, 60, 150])
def test_a_count_that_started_late_moves_the_echo_with_it(late_start_ms: int) -> None:
    """The bridge was held up as the call began: its first two seconds of the caller's frames
    all came ``late_start_ms`` late, so their count started that late, and the echo (150 ms,
    -15 dB) was found that much later. Then a frame comes on time, mid-sentence: the count
    moves back, and the echo's delay with it. No frame after the move may keep echo half as
    loud as a voiced frame."""
    played = PlayedAudio(RATE, epoch=0.0)
    agent = AGENT.astype(np.int16)
    for n in range(10):
        played.add(n * 0.020, agent[n * FRAME : (n + 1) * FRAME].tobytes(), sent_at=0.0)
    delay, gain = 2400, 10 ** (-15 / 20)
    heard = np.zeros(agent.size)
    heard[delay:] = gain * AGENT[: agent.size - delay]
    mic = np.clip(heard, -32768, 32767).astype("<i2")
    echo = CallerEcho(
        played, rate=RATE, encoder=make_codec("pcm16", RATE).encoder, client_reference=False
    )
    moved_at = 100  # frames: two seconds in, the agent talking
    left = []
    for n in range(moved_at + 50):
        # The pacer sends the agent's audio ahead of when it plays: here 200 ms, so that it
        # reaches as far as a count 150 ms late places the caller.
        ahead = n + 10
        chunk = agent[ahead * FRAME : (ahead + 1) * FRAME].tobytes()
        played.add(ahead * 0.020, chunk, sent_at=n * 0.020)
        late = late_start_ms / 1000 if n < moved_at else 0.0
        frame = echo.take(mic[n * FRAME : (n + 1) * FRAME].tobytes(), (n + 1) * 0.020 + late)
        left.append(
            float(np.sqrt(np.mean(np.frombuffer(frame.cleaned, "<i2").astype(np.float64) ** 2)))
        )
    assert echo.path is not None
    assert echo.path.delay_ms == pytest.approx(150.0, abs=1.0)
    assert max(left[moved_at:]) < 200.0


def test_audio_lost_on_the_way_moves_the_count_on() -> None:
    """Half a second of frames 200 ms late, never sooner: the frames between were lost."""
    played = PlayedAudio(RATE, epoch=0.0)
    agent = AGENT[: 100 * FRAME].astype(np.int16)
    for n in range(100):
        played.add(n * 0.020, agent[n * FRAME : (n + 1) * FRAME].tobytes(), sent_at=n * 0.020)
    echo = CallerEcho(
        played, rate=RATE, encoder=make_codec("pcm16", RATE).encoder, client_reference=True
    )
    references = []
    for n in range(70):
        at = (n + 1) * 0.020 + (0.200 if n >= 5 else 0.0)
        stereo = np.frombuffer(echo.take(bytes(2 * FRAME), at).for_voice_live, dtype="<i2")
        references.append(stereo[1::2])
    # Within a window of frames the count holds (one frame on time in it); a whole window late
    # moves it on by the 10 frames lost.
    assert np.array_equal(references[30], agent[30 * FRAME : 31 * FRAME])
    assert np.array_equal(references[69], agent[79 * FRAME : 80 * FRAME])
