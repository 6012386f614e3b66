"""The phone's speakerphone echo: the mixing on exact times, the scenario key, a whole call."""

from __future__ import annotations

import asyncio
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callbridge.sim.echo import Echo, EchoPath, mix
from callbridge.sim.harness import LocalStack
from callbridge.sim.playout import Playout
from callbridge.sim.scenario import ScenarioError, load_scenario
from callbridge.sim.script import FRAME_S, AfterAgentDone, Clip, Hangup
from callbridge.sim.voicelive.audio import AgentTurn

RATE = 16000
FRAME = RATE // 50
ORIGIN = 100.0  # the media socket opened here
DELAY_S = 0.060  # the playout's jitter-buffer fill

Samples = np.ndarray[Any, np.dtype[np.int16]]


def shifted(heard: Samples, delay: int, gain: float) -> Samples:
    """``heard``, ``delay`` samples later and ``gain`` as loud: what the echo must be."""
    out = np.zeros(len(heard), dtype=np.int16)
    out[delay:] = np.round(heard[: len(heard) - delay] * gain).astype(np.int16)
    return out


# --- The mixing, on exact times ---------------------------------------------------------------


def test_played_audio_comes_back_at_exactly_the_delay_and_level() -> None:
    """A click the caller hears at sample n is sent back at n + 150 ms, 15 dB down; the echo
    of a burst StopAudio cut mid-frame ends where the caller stopped hearing it, and the audio
    after the StopAudio comes back too (it plays before the cut audio would have)."""
    echo = Echo(delay_ms=150, level_db=-15.0)
    playout = Playout(sample_rate=RATE)
    path = EchoPath(echo, playout, sample_rate=RATE, opened_at=ORIGIN)
    click = np.zeros(1600, dtype="<i2")  # 100 ms, silent but for one sample
    click[37] = 10000
    tone = Clip.tone(ms=400, sample_rate=RATE, hz=440.0).pcm
    stop_at = ORIGIN + 0.5 + DELAY_S + 0.2271  # 227.1 ms into the tone
    events: list[tuple[float, bytes | None]] = [  # audio to play, or None: StopAudio
        (ORIGIN + 0.1, click.tobytes()),
        *((ORIGIN + 0.5, tone[i : i + 2 * FRAME]) for i in range(0, len(tone), 2 * FRAME)),
        (stop_at, None),
        (stop_at + 0.01, click.tobytes()),
    ]
    frames: list[Samples] = []
    for n in range(60):
        due = ORIGIN + n * FRAME_S
        # The phone sends a frame a little after it is due, having heard everything up to then.
        while events and events[0][0] <= due + 0.010:
            at, audio = events.pop(0)
            if audio is None:
                playout.on_stop(at)
            else:
                playout.on_audio(at, audio)
        frames.append(path.frame(n * FRAME, FRAME, at=due))
    sent = np.concatenate(frames)
    playout.finish(ORIGIN + 60 * FRAME_S)
    heard = playout.heard_audio(ORIGIN, ORIGIN + 60 * FRAME_S)

    delay = 2400  # 150 ms at 16 kHz
    click_heard = round((0.1 + DELAY_S) * RATE) + 37
    assert heard[click_heard] == 10000
    assert np.flatnonzero(sent[: 20 * FRAME]).tolist() == [click_heard + delay]
    assert sent[click_heard + delay] == round(10000 * 10 ** (-15 / 20)) == 1778
    assert np.array_equal(sent, shifted(heard, delay, echo.gain))
    tone_ends = round((stop_at - ORIGIN) * RATE)
    second_click = round((stop_at + 0.01 + DELAY_S - ORIGIN) * RATE) + 37
    assert heard[tone_ends - 1] != 0
    assert np.flatnonzero(heard[tone_ends:]).tolist() == [second_click - tone_ends]
    assert sent[tone_ends + delay - 1] != 0
    assert np.flatnonzero(sent[tone_ends + delay :]).tolist() == [second_click - tone_ends]


def test_the_microphone_adds_the_line_to_the_echo_and_clips() -> None:
    line = np.array([1000, -1000, 30000, -30000], dtype="<i2").tobytes()
    echo = np.array([5, 5, 5000, -5000], dtype=np.int16)
    assert np.frombuffer(mix(line, echo), dtype="<i2").tolist() == [1005, -995, 32767, -32768]
    assert np.frombuffer(mix(None, echo), dtype="<i2").tolist() == echo.tolist()


@pytest.mark.parametrize(
    ("delay_ms", "level_db"), [(19.9, -15.0), (math.nan, -15.0), (150, 0.5), (150, -math.inf)]
)
def test_an_echo_needs_a_frame_of_delay_and_no_gain(delay_ms: float, level_db: float) -> None:
    with pytest.raises(ValueError, match=r"delay_ms|level_db"):
        Echo(delay_ms=delay_ms, level_db=level_db)


def test_the_delay_is_whole_samples_at_the_call_rate() -> None:
    echo = Echo(delay_ms=150.02, level_db=0.0)
    assert (echo.delay_samples(16000), echo.delay_samples(24000), echo.gain) == (2400, 3600, 1.0)


# --- The scenario key -------------------------------------------------------------------------

AGENT = '\n[[agent.turns]]\naudio = "greeting.wav"\n'


def scenario_file(tmp_path: Path, caller: str) -> Path:
    with wave.open(str(tmp_path / "greeting.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(Clip.tone(ms=200, sample_rate=RATE).pcm)
    path = tmp_path / "call.toml"
    path.write_text(caller + AGENT, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "caller",
    [
        "[caller]\necho = { delay_ms = 150, level_db = -15 }\n",
        "[caller.echo]\ndelay_ms = 150.0\nlevel_db = -15.0\n",
    ],
)
def test_the_echo_key_loads(tmp_path: Path, caller: str) -> None:
    scenario = load_scenario(scenario_file(tmp_path, caller))
    assert scenario.echo == Echo(delay_ms=150.0, level_db=-15.0)


def test_no_echo_key_means_no_echo(tmp_path: Path) -> None:
    assert load_scenario(scenario_file(tmp_path, "")).echo is None


@pytest.mark.parametrize(
    ("echo", "problems"),
    [
        (
            "{ delay_ms = 10, level_db = 3 }",
            [
                "caller.echo.delay_ms: must be a number >= 20, not 10",
                "caller.echo.level_db: must be a number <= 0 (dB against what the phone"
                " plays), not 3",
            ],
        ),
        (
            '{ delay = 150, level_db = "-15" }',
            [
                'caller.echo.delay: unknown key; did you mean "delay_ms"?',
                "caller.echo: needs delay_ms, e.g. { delay_ms = 150, level_db = -15 }",
                "caller.echo.level_db: must be a number <= 0 (dB against what the phone"
                ' plays), not "-15"',
            ],
        ),
        (
            "{ level_db = nan }",
            [
                "caller.echo: needs delay_ms, e.g. { delay_ms = 150, level_db = -15 }",
                "caller.echo.level_db: must be a number <= 0 (dB against what the phone"
                " plays), not nan",
            ],
        ),
        ("true", ["caller.echo: must be a table ({ ... }), not true"]),
    ],
)
def test_a_bad_echo_is_reported_in_full(tmp_path: Path, echo: str, problems: list[str]) -> None:
    path = scenario_file(tmp_path, f"[caller]\necho = {echo}\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert [line.removeprefix(f"{path}: ") for line in error.value.problems] == problems


# --- A whole call -----------------------------------------------------------------------------

GREETING = Clip.tone(ms=1200, sample_rate=24000, hz=440.0, amplitude=0.3)


async def test_a_call_on_a_speakerphone_sends_the_greeting_back_at_the_lag() -> None:
    """Through ACS and callbridge: what the caller heard is in what their phone sent, exactly
    150 ms later and 30 dB down (too quiet for the emulator's VAD, so the greeting plays out),
    and the frames it is in are not marked silent."""
    echo = Echo(delay_ms=150, level_db=-30.0)
    local = LocalStack(
        turns=[AgentTurn(GREETING.pcm, GREETING.sample_rate, "Hello.")],
        caller_transcripts=[],
        response_delay_ms=100,
    )
    async with local, asyncio.timeout(30):
        result = await local.call([Hangup(AfterAgentDone(pause_ms=300))], echo=echo)
    record = result.record
    assert [spurt.end for spurt in record.spurts] == ["drained"]
    assert record.stops == []

    caller = record.caller_audio
    heard = np.zeros(max(len(caller), len(record.heard_audio)), dtype=np.int16)
    heard[: len(record.heard_audio)] = record.heard_audio
    echoed = shifted(heard, echo.delay_samples(RATE), echo.gain)
    expected = np.zeros(len(caller), dtype=np.int16)  # frames not sent hold silence
    for first, last in record.sent_frames:
        frames = slice(first * FRAME, (last + 1) * FRAME)
        expected[frames] = echoed[frames]
    assert np.count_nonzero(caller) > RATE  # over a second of the greeting came back
    assert np.array_equal(caller, expected)
    echo_frames = sum(bool(caller[n : n + FRAME].any()) for n in range(0, len(caller), FRAME))
    assert record.frames_sent - record.silent_frames_sent == echo_frames
