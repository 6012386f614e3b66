"""The caller's silence between turns, appended a few frames at a time
(``bridge/silence_batches.py``), and the caller audio kept for a new session counted in frames
(``bridge/caller_audio_backlog.py``).

The call test reads what the emulator's session received, never the bridge's own account.
"""

from __future__ import annotations

import asyncio

from callbridge.bridge.caller_audio_backlog import RESEND_MAX_S, CallerAudioBacklog
from callbridge.bridge.silence_batches import BATCH_FRAMES, Batch, SilenceBatches
from callbridge.core.profiles import AgentProfile
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import AfterAgentDone, Clip, Hangup, Say, Step
from tests.tone_calls import turn

RATE = 16000
FRAME_BYTES = 160
"""20 ms of G.711 at 8 kHz: the session's input format."""
ULAW_ZERO = frozenset({0xFF, 0x7F})
"""μ-law's two codes for a zero sample."""


def frame(n: int) -> bytes:
    return bytes([n]) * 4


# --- the batching, frame by frame ---------------------------------------------------------------


def test_silence_before_the_first_turn_goes_five_frames_at_a_time() -> None:
    batches = SilenceBatches()
    taken = [batches.take(frame(n), silent=True) for n in range(2 * BATCH_FRAMES)]
    assert taken[: BATCH_FRAMES - 1] == [None] * (BATCH_FRAMES - 1)
    assert taken[BATCH_FRAMES - 1] == Batch(b"".join(frame(n) for n in range(5)), 5)
    assert taken[-1] == Batch(b"".join(frame(n) for n in range(5, 10)), 5)


def test_a_frame_that_is_not_silent_goes_at_once_with_the_silence_held_before_it() -> None:
    batches = SilenceBatches()
    assert batches.take(frame(1), silent=True) is None
    assert batches.take(frame(2), silent=True) is None
    assert batches.take(frame(3), silent=False) == Batch(frame(1) + frame(2) + frame(3), 3)
    assert batches.take(frame(4), silent=False) == Batch(frame(4), 1)


def test_within_a_turn_every_frame_goes_at_once_until_voice_live_commits_it() -> None:
    batches = SilenceBatches()
    assert batches.take(frame(1), silent=True) is None
    batches.on_event("input_audio_buffer.speech_started")
    # The held frame goes first, with the next one, and nothing is held until the commit.
    assert batches.take(frame(2), silent=True) == Batch(frame(1) + frame(2), 2)
    batches.on_event("input_audio_buffer.speech_stopped")
    assert batches.take(frame(3), silent=True) == Batch(frame(3), 1)
    batches.on_event("input_audio_buffer.committed")
    assert batches.take(frame(4), silent=True) is None
    assert batches.drain() == Batch(frame(4), 1)
    assert batches.drain() is None


def test_a_cleared_buffer_ends_the_turn_too() -> None:
    batches = SilenceBatches()
    batches.on_event("input_audio_buffer.speech_started")
    assert batches.take(frame(1), silent=True) == Batch(frame(1), 1)
    batches.on_event("input_audio_buffer.cleared")
    assert batches.take(frame(2), silent=True) is None


# --- the backlog, in frames ---------------------------------------------------------------------


async def test_the_backlog_bounds_what_it_keeps_by_frames_not_by_messages() -> None:
    """Batches of five frames: the unanswered audio kept to resend is still at most
    ``RESEND_MAX_S`` of audio, the newest kept, in order."""
    backlog = CallerAudioBacklog(hold_max_s=1.0)
    await backlog.hand_over(_no_send, resend_unanswered=False)  # a session takes the audio
    limit = round(RESEND_MAX_S / 0.02)
    batches = limit // BATCH_FRAMES + 3
    for n in range(batches):
        assert backlog.admit(b"m%d" % n, BATCH_FRAMES)
    sent: list[bytes] = []

    async def send(message: bytes) -> None:
        sent.append(message)

    await backlog.hand_over(send, resend_unanswered=True)
    assert sent == [b"m%d" % n for n in range(3, batches)]


async def test_audio_held_during_an_outage_is_bounded_by_frames_and_handed_over_in_order() -> None:
    backlog = CallerAudioBacklog(hold_max_s=0.2)  # 11 frames
    assert backlog.holding  # no session yet
    for n in range(4):
        assert not backlog.admit(b"h%d" % n, 5 if n % 2 else 1)
    sent: list[bytes] = []

    async def send(message: bytes) -> None:
        sent.append(message)

    await backlog.hand_over(send, resend_unanswered=False)
    assert sent == [b"h1", b"h2", b"h3"]  # 5 + 1 + 5 frames: the oldest went
    assert not backlog.holding


async def _no_send(message: bytes) -> None:
    raise AssertionError("nothing to send")


# --- on a call ------------------------------------------------------------------------------


async def test_a_call_sends_its_silence_between_turns_batched_and_every_frame_of_a_turn_alone() -> (
    None
):
    """A greeting, a question, the answer, a hang-up. The session hears all the caller sent
    (the last held frames too), silence between turns in appends of up to five frames, and
    while the VAD heard a turn, one frame per append."""
    line = Clip.tone(ms=700, sample_rate=RATE, hz=300, amplitude=0.5)
    script: list[Step] = [
        Say(line, AfterAgentDone(pause_ms=300)),
        Hangup(AfterAgentDone(pause_ms=700)),
    ]
    turns = [turn(800, 440, "Hello, how can I help?"), turn(1500, 523, "It left on Monday.")]
    async with (
        LocalStack(
            turns=turns,
            caller_transcripts=["Where is my order?"],
            profile=AgentProfile(tools=()),
            emulator_speed=2.0,
        ) as local,
        asyncio.timeout(30),
    ):
        result = await local.call(script, turns=turns, caller_transcripts=["Where is my order?"])
        (session,) = local.emulator.sessions_for(result.record.correlation_id)
    appends = session.appends
    frames = [len(a.audio) // FRAME_BYTES for a in appends]
    assert all(len(a.audio) % FRAME_BYTES == 0 for a in appends)
    assert sum(frames) == result.record.frames_sent  # nothing lost, nothing held back
    assert max(frames) == BATCH_FRAMES
    assert len(appends) < 0.6 * result.record.frames_sent
    for append, count in zip(appends, frames, strict=True):
        # A batch is silence, but for the one frame that sent it early.
        held = append.audio[: (count - 1) * FRAME_BYTES]
        assert set(held) <= ULAW_ZERO
    (speech,) = session.speech
    assert speech.started_sent_at is not None
    assert speech.stopped_sent_at is not None
    during = [
        count
        for append, count in zip(appends, frames, strict=True)
        if speech.started_sent_at < append.at < speech.stopped_sent_at
    ]
    assert len(during) > 30  # the 700 ms line and the VAD's silence after it
    assert set(during) == {1}
