"""Pause, then decide: a backchannel or a cough over the agent pauses it and it goes on from the
exact sample; a real interruption still cuts it where the caller stopped hearing it.

Whole calls on loopback; the phone's record (what the caller heard) and the emulator's record
(what the model was told and asked) are the witnesses.
"""

from __future__ import annotations

import asyncio
from typing import Final

import numpy as np
import pytest

from callbridge.core.interruption_policy import InterruptionSettings, PendingInterruption, Verdict
from callbridge.core.profiles import AgentProfile
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.script import AfterAgentDone, AfterHeard, Clip, Hangup, Say, Step
from callbridge.sim.voicelive import AgentTurn

RATE: Final = 24000
"""pcm16 end to end at 24 kHz: the agent's samples reach the phone unchanged, so where playback
resumed can be checked to the sample."""
ANSWER_MS = 5000
CALL_TIMEOUT_S = 30


def noise_turn(ms: int, seed: int, transcript: str) -> AgentTurn:
    """Audio in which no stretch repeats, and no sample is 0 (silence is the phone's gap)."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(1000, 8000, round(ms * RATE / 1000)) * rng.choice(
        [-1, 1], round(ms * RATE / 1000)
    )
    return AgentTurn(samples.astype("<i2").tobytes(), RATE, transcript)


GREETING = noise_turn(800, 1, "Hello, how can I help?")
ANSWER = noise_turn(ANSWER_MS, 2, "Here is a long answer the caller listens to.")
TURNS = [GREETING, ANSWER, noise_turn(600, 3, "Sure.")]
QUESTION = Clip.tone(ms=700, sample_rate=16000, hz=300, amplitude=0.5)


def stack(transcripts: list[str]) -> LocalStack:
    return LocalStack(
        turns=TURNS,
        caller_transcripts=transcripts,
        profile=AgentProfile(audio_format="pcm16", media_rate=RATE, tools=()),
        emulator_speed=2.0,
        response_delay_ms=150,
    )


async def place(local: LocalStack, script: list[Step]) -> CallResult:
    async with asyncio.timeout(CALL_TIMEOUT_S):
        return await local.call(script, max_duration_s=25)


def heard_stretches(result: CallResult, first: int) -> list[np.ndarray]:
    """The samples the caller heard in each talk spurt from ``first`` on."""
    record = result.record
    stretches = []
    for spurt in record.spurts[first - 1 :]:
        start = round((spurt.started_at - record.ws_opened_at) * RATE)
        # To when playback stopped (an underrun on a busy machine leaves a gap inside).
        ended_at = spurt.ended_at if spurt.ended_at is not None else record.ws_closed_at
        end = round((ended_at - record.ws_opened_at) * RATE) + RATE // 50
        stretch = record.heard_audio[start:end]
        stretches.append(stretch[stretch != 0])
    return stretches


def find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Where ``needle`` starts in ``haystack`` (noise: it occurs once)."""
    windows = np.lib.stride_tricks.sliding_window_view(haystack, len(needle))
    (matches,) = np.nonzero((windows == needle).all(axis=1))
    assert len(matches) == 1
    return int(matches[0])


@pytest.mark.parametrize(
    ("line_ms", "what"), [(350, "Mm-hmm."), (150, "")], ids=["mm-hmm", "cough"]
)
async def test_a_backchannel_or_a_cough_pauses_the_agent_which_then_goes_on_from_the_same_sample(
    line_ms: int, what: str
) -> None:
    backchannel = Clip.tone(ms=line_ms, sample_rate=16000, hz=250, amplitude=0.5)
    script: list[Step] = [
        Say(QUESTION, AfterAgentDone(pause_ms=300)),
        Say(backchannel, AfterHeard(ms=1500, spurt=2)),
        Hangup(AfterAgentDone(pause_ms=400)),
    ]
    async with stack(["I have a question.", what]) as local:
        result = await place(local, script)
    record, session = result.record, result.session

    # The caller heard the whole answer, in two stretches with a short pause between.
    answer = np.frombuffer(ANSWER.audio, dtype="<i2")
    assert len(record.stops) == 1
    before, after = heard_stretches(result, 2)
    assert np.array_equal(before, answer[: len(before)])
    resumed_at = find(answer, after[:480])
    assert np.array_equal(after, answer[resumed_at : resumed_at + len(after)])
    assert resumed_at + len(after) == len(answer)  # heard to its end
    # It went on where the caller stopped hearing it, as exactly as the heard position is known
    # (the pacer's estimate of ACS's playout, the same that places a truncation): repeated or
    # skipped, no more than a truncation may be off.
    assert abs(len(before) - resumed_at) <= 20 * RATE // 1000
    pause_ms = (record.spurts[2].started_at - (record.spurts[1].ended_at or 0)) * 1000
    assert pause_ms <= 800
    # Nothing was cut, cancelled or answered: the model never took it for a turn.
    assert session.truncations == []
    assert session.cancels == []
    assert [r.turn_index for r in session.responses] == [0, 1]
    # The report (from the same two records) calls it a false interruption, resumed.
    (barge_in,) = result.report.barge_ins
    assert barge_in.resumed
    assert barge_in.audio_end_ms is None
    assert barge_in.pause_ms is not None
    assert barge_in.pause_ms <= 800
    assert result.report.stale_audio_ms == 0
    assert result.report.protocol_violations == []
    if what:
        assert session.sent("conversation.item.deleted")


async def test_a_real_interruption_is_still_cut_where_the_caller_stopped_hearing() -> None:
    interrupt = Clip.tone(ms=900, sample_rate=16000, hz=250, amplitude=0.5)
    script: list[Step] = [
        Say(QUESTION, AfterAgentDone(pause_ms=300)),
        Say(interrupt, AfterHeard(ms=1500, spurt=2)),
        Hangup(AfterAgentDone(pause_ms=400)),
    ]
    async with stack(["I have a question.", "Wait, that is not what I asked."]) as local:
        result = await place(local, script)
    report, session = result.report, result.session

    assert len(report.barge_ins) == 1
    error = report.barge_ins[0].truncation_error_ms
    assert error is not None
    assert error <= 20
    assert report.stale_audio_ms == 0
    assert [t.accepted for t in session.truncations] == [True]
    assert [r.turn_index for r in session.responses] == [0, 1, 2]  # then it answered


def test_the_decision_takes_the_soonest_sufficient_signal() -> None:
    settings = InterruptionSettings()
    long_talk = PendingInterruption(settings, started_at=0.0, voiced_ms=100)
    decisions = [
        long_talk.on_caller_frame(voiced=True, frame_ms=20, now=n * 0.02) for n in range(1, 30)
    ]
    first = next(d for d in decisions if d is not None)
    assert (first.verdict, first.reason) == (Verdict.REAL, "long_speech")
    assert first.at == pytest.approx(0.4)  # 100 ms before, 400 ms since

    words = PendingInterruption(settings, started_at=0.0, voiced_ms=100, last_voiced_at=0.0)
    decided = words.on_transcript("No, stop.", 0.3)
    assert decided is not None
    assert decided.verdict is Verdict.REAL

    cough = PendingInterruption(settings, started_at=0.0, voiced_ms=60, last_voiced_at=0.0)
    assert cough.on_timer(0.3) is None  # over, but the transcript may still come
    timed_out = cough.on_timer(0.6)
    assert timed_out is not None
    assert (timed_out.verdict, timed_out.reason) == (Verdict.FALSE, "no_words_in_time")
    # Real words after a false verdict overturn it.
    overturned = cough.on_transcript("Actually, no.", 0.9)
    assert overturned is not None
    assert overturned.verdict is Verdict.REAL


def test_backchannels_are_told_from_words() -> None:
    settings = InterruptionSettings()
    assert settings.is_backchannel("Mm-hmm.")
    assert settings.is_backchannel("Okay, okay. Right")
    assert settings.is_backchannel("")
    assert settings.is_backchannel("Uh-huh, yeah.")
    assert not settings.is_backchannel("No.")
    assert not settings.is_backchannel("Yeah, but what about Friday?")
    spanish = InterruptionSettings(backchannels=("vale", "sí", "ajá"))
    assert spanish.is_backchannel("Vale, sí.")
