"""A hang-up ACS will not carry out never leaves the caller on a silent open line.

The agent says goodbye and calls ``end_call``; ACS's ``:terminate`` then fails (500 every time)
or hangs. The real service runs against the stand-ins on loopback, with short deadlines; the
witnesses are the simulated phone's record (what the caller heard, and when), the stand-in's
record of each terminate request, and the service's log.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import CallOperationDeadlines, Settings
from callbridge.sim.acs import RestFault, SimCall
from callbridge.sim.call_record import CallRecord
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import AfterAgentDone, At, Clip, Hangup, Say, Step
from callbridge.sim.voicelive import ToolCall
from tests.tone_calls import CALLER_TRANSCRIPTS, GREETING, LINE, RATE, turn

GOODBYE = turn(400, 659, "Goodbye!", ToolCall("end_call", {"reason": "done"}))
CLIP_MS = 400
"""The profile's fallback clip: what the caller hears on hold."""
HUMAN = "+18005550123"
DEADLINES = CallOperationDeadlines(hang_up_attempt_s=0.3, hang_up_budget_s=1.0, transfer_s=1.0)
WAIT_S = 20.0
HOLD_SILENCE_BOUND_S = 1.6
"""The longest silence a caller on hold may hear: the pause between two plays of the clip
(``HOLD_PAUSE_S``, 1 s) or the wait before the hold starts, plus the line's playout delay and
the event loop's slack. Without the hold the silence lasts until the caller gives up."""


class Stack(LocalStack):
    """The stack, with Call Automation deadlines of its own."""

    deadlines = DEADLINES

    def settings(self, endpoint: str, public_url: str) -> Settings:
        settings = super().settings(endpoint, public_url)
        return replace(settings, acs=replace(settings.acs, deadlines=self.deadlines))


@pytest.fixture
def profile(tmp_path: Path) -> AgentProfile:
    path = tmp_path / "fallback.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(Clip.tone(ms=CLIP_MS, sample_rate=RATE, hz=350).pcm)
    return AgentProfile(tools=("end_call",), fallback_audio=str(path))


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def stack(profile: AgentProfile, deadlines: CallOperationDeadlines = DEADLINES) -> Stack:
    local = Stack(
        turns=[GREETING, GOODBYE],
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=profile,
        response_delay_ms=100,
    )
    local.deadlines = deadlines
    return local


async def goodbye_call(local: LocalStack, fault: RestFault, *, hang_up_at_s: float) -> SimCall:
    """The caller speaks once, hears the goodbye, and hangs up at ``hang_up_at_s`` unless
    the call ends first; terminate requests meet ``fault``."""
    script: list[Step] = [Say(LINE, AfterAgentDone(pause_ms=300)), Hangup(At(hang_up_at_s))]
    call = await local.ring(script, hangup_after_s=30, rest_faults=[fault])
    return await call.wait_ended(WAIT_S)


def heard_after_goodbye(record: CallRecord) -> list[tuple[float, float]]:
    """What the caller heard after the goodbye, as (start, end) spans."""
    spans = []
    for spurt in record.spurts[2:]:
        assert spurt.ended_at is not None  # the call is over: every spurt ended
        spans.append((spurt.started_at, spurt.ended_at))
    return spans


def longest_silence(call: SimCall) -> float:
    """The longest silence the caller heard from the end of the goodbye until the call ended
    at ACS (whether or not the media socket was still open)."""
    record, until = call.media, call.ended_at
    assert record is not None
    assert until is not None
    goodbye_end = record.spurts[1].ended_at
    assert goodbye_end is not None
    edges = [goodbye_end]
    for start, end in heard_after_goodbye(record):
        edges += [start, end]
    edges.append(until)
    return max(edges[i + 1] - edges[i] for i in range(0, len(edges) - 1, 2))


def events(logs: list[EventDict], name: str) -> list[EventDict]:
    return [entry for entry in logs if entry["event"] == name]


def terminates(call: SimCall) -> list[int]:
    return [op.status for op in call.operations if op.name == "terminate"]


async def test_terminate_failing_every_time_puts_the_caller_on_hold_until_they_hang_up(
    profile: AgentProfile, logs: list[EventDict]
) -> None:
    """500 on every terminate: each attempt is logged and retried for the budget, the caller
    hears the clip again and again, never a long silence, and hangs up."""
    async with stack(profile) as local:
        call = await goodbye_call(
            local, RestFault("hang_up", status=500, times=None), hang_up_at_s=5.0
        )
    record = call.media
    assert record is not None
    statuses = terminates(call)
    assert len(statuses) >= 3
    assert set(statuses) == {500}
    assert (call.disconnect, record.closed_by) == ("caller", "phone")
    assert len(heard_after_goodbye(record)) >= 2  # the clip, looped
    assert longest_silence(call) < HOLD_SILENCE_BOUND_S

    retries = events(logs, "acs.hang_up_retry")
    (failed,) = events(logs, "acs.hang_up_failed")
    assert len(retries) == len(statuses) - 1
    assert all(entry["log_level"] == "warning" for entry in retries)
    assert all(entry["call_connection_id"] == call.call_connection_id for entry in retries)
    assert [entry["attempt"] for entry in retries] == list(range(1, len(statuses)))
    assert (failed["log_level"], failed["attempts"]) == ("error", len(statuses))
    assert failed["call_connection_id"] == call.call_connection_id
    assert "500" in failed["error"]
    assert len(events(logs, "call.left_on_hold")) == 1


async def test_terminate_held_until_acs_carries_it_out_keeps_the_caller_hearing_the_clip(
    profile: AgentProfile, logs: list[EventDict]
) -> None:
    """ACS holds every terminate for 1 s before carrying it out: each attempt is cut at its
    deadline and retried, and the caller hears the clip until ACS ends the call."""
    async with stack(profile, replace(DEADLINES, hang_up_budget_s=3.0)) as local:
        call = await goodbye_call(
            local, RestFault("hang_up", status=None, delay_s=1.0, times=None), hang_up_at_s=8.0
        )
    record = call.media
    assert record is not None
    assert (call.disconnect, record.closed_by) == ("app_terminate", "network")
    assert heard_after_goodbye(record)  # the clip, while ACS held the hang-up
    assert longest_silence(call) < HOLD_SILENCE_BOUND_S
    retries = events(logs, "acs.hang_up_retry")
    assert retries
    assert all("no reply from ACS within 0.3 s" in entry["error"] for entry in retries)
    assert events(logs, "acs.hang_up_failed") == []


async def test_terminate_that_never_answers_hands_the_caller_to_the_fallback_target(
    profile: AgentProfile, logs: list[EventDict]
) -> None:
    """ACS never answers a terminate: once the budget is spent the caller, on hold until then,
    is transferred to the profile's fallback target rather than left on the line."""
    with_target = replace(profile, fallback_transfer_to=HUMAN)
    async with stack(with_target) as local:
        call = await goodbye_call(
            local, RestFault("hang_up", status=504, delay_s=60.0, times=None), hang_up_at_s=8.0
        )
    record = call.media
    assert record is not None
    assert (call.disconnect, call.transfer_target) == ("transfer", f"4:{HUMAN}")
    assert heard_after_goodbye(record)
    assert longest_silence(call) < HOLD_SILENCE_BOUND_S
    (failed,) = events(logs, "acs.hang_up_failed")
    assert "no reply from ACS within" in failed["error"]
    assert len(events(logs, "call.transferred")) == 1
