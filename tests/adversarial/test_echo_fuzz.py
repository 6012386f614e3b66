"""The echo canceller and the caller's placement on the played audio's clock, fuzzed: whatever
the line carries, whatever the agent plays, however late or early the caller's frames come,
every frame comes out whole and the canceller never fails (``bridge.caller_echo`` would keep
the call going without it, logging ``call.echo_canceller_failed``: that is the failure looked
for here).

A call is a few stretches, each some frames of one kind of caller audio (silence, noise, the
agent's echo, the caller's speech, echo and speech together) over one kind of agent audio
(nothing, mu-law's quietest steps, speech), its frames arriving with one lateness: late
frames, frames on time after late ones (the count moves back) and whole stretches late
(audio lost) all come up. Derandomized and bounded, so CI sees the same examples every run.
"""

from __future__ import annotations

import wave
from importlib import resources
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from callbridge.bridge.caller_echo import CallerEcho
from callbridge.core.codec import make_codec
from callbridge.core.played_audio import PlayedAudio

RATE = 16000
FRAME = RATE // 50
AHEAD = 5
"""Frames the agent's audio is sent ahead of when it plays, as the pacer's lead does."""

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _clip(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    with wave.open(str(resources.files("callbridge.assets") / f"{name}.wav")) as source:
        return np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.float64)


AGENT = _clip("agent_02_answer")
CALLER = _clip("caller_01_question")

stretches = st.lists(
    st.tuples(
        st.integers(1, 30),  # frames
        st.sampled_from(["silence", "noise", "echo", "speech", "echo and speech"]),
        st.sampled_from(["nothing", "faint", "speech"]),
        st.sampled_from([0, 3, 12, 45, 90, 250]),  # ms late
    ),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(stretches, st.integers(0, 2**32 - 1))
def test_every_frame_comes_out_whole_and_the_canceller_never_fails(
    call: list[tuple[int, str, str, int]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    frames = sum(stretch[0] for stretch in call)
    played_at = np.zeros((frames + AHEAD + 8) * FRAME)  # room for the longest echo delay
    caller_kinds, lateness = [], []
    position = 0
    for count, caller_kind, agent_kind, late_ms in call:
        samples = slice(position * FRAME, (position + count) * FRAME)
        size = count * FRAME
        if agent_kind == "faint":
            played_at[samples] = rng.integers(-2, 3, size)
        elif agent_kind == "speech":
            start = int(rng.integers(0, AGENT.size - size))
            played_at[samples] = AGENT[start : start + size]
        caller_kinds += [caller_kind] * count
        lateness += [late_ms / 1000] * count
        position += count
    echo_delay = int(rng.integers(FRAME, 8 * FRAME))
    echo = np.zeros(played_at.size)
    echo[echo_delay:] = 0.18 * played_at[: played_at.size - echo_delay]
    speech = np.resize(np.roll(CALLER, -int(rng.integers(0, CALLER.size))), frames * FRAME)
    noise = rng.normal(0, 150, frames * FRAME)

    played = PlayedAudio(RATE, epoch=0.0)
    caller_echo = CallerEcho(
        played, rate=RATE, encoder=make_codec("pcm16", RATE).encoder, client_reference=False
    )
    agent = played_at.astype(np.int16)
    for n in range(AHEAD):
        played.add(n * 0.020, agent[n * FRAME : (n + 1) * FRAME].tobytes(), sent_at=0.0)
    with capture_logs() as logs:
        for n in range(frames):
            ahead = n + AHEAD
            chunk = agent[ahead * FRAME : (ahead + 1) * FRAME]
            if np.count_nonzero(chunk):
                played.add(ahead * 0.020, chunk.tobytes(), sent_at=n * 0.020)
            part = slice(n * FRAME, (n + 1) * FRAME)
            kind = caller_kinds[n]
            mic = {
                "silence": np.zeros(FRAME),
                "noise": noise[part],
                "echo": echo[part],
                "speech": speech[part],
                "echo and speech": echo[part] + speech[part],
            }[kind]
            pcm = np.clip(mic, -32768, 32767).astype("<i2").tobytes()
            frame = caller_echo.take(pcm, (n + 1) * 0.020 + lateness[n])
            assert len(frame.cleaned) == len(pcm)
            assert len(frame.for_voice_live) > 0
    assert [log for log in logs if log["event"] == "call.echo_canceller_failed"] == []
