"""An answer ACS does not give in time frees the call's place and its pre-warmed session.

The real service runs against the stand-ins on loopback with ``CALLBRIDGE_MAX_CALLS=1`` and a
short answer deadline; ACS's answer hangs or is refused. The witnesses are the stand-in's
record of each call, the Voice Live emulator's record of each session, and the service's log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from callbridge.core.settings import CallOperationDeadlines, Settings
from callbridge.sim.acs import RestFault
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import AfterAgentDone, Hangup
from callbridge.sim.voicelive import EmulatorSession
from tests.tone_calls import CALLER_TRANSCRIPTS, GREETING

ANSWER_S = 0.5
WAIT_S = 10.0
PREWARM_TTL_S = 10.0
"""The service's default: a session closed well within it was closed by the failed answer."""


class Stack(LocalStack):
    """One call at a time, and answers that must come within ``ANSWER_S``."""

    def settings(self, endpoint: str, public_url: str) -> Settings:
        settings = super().settings(endpoint, public_url)
        deadlines = CallOperationDeadlines(answer_s=ANSWER_S)
        assert settings.prewarm_ttl_s == PREWARM_TTL_S
        return replace(settings, acs=replace(settings.acs, deadlines=deadlines))


def stack() -> Stack:
    return Stack(
        turns=[GREETING],
        caller_transcripts=CALLER_TRANSCRIPTS,
        response_delay_ms=100,
        max_calls=1,
    )


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


async def logged(logs: list[EventDict], name: str, correlation_id: str) -> EventDict:
    """The first ``name`` line about the call, once logged (``TimeoutError`` after
    ``WAIT_S``)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            for entry in logs:
                if entry["event"] == name and entry.get("correlation_id") == correlation_id:
                    return entry
            await asyncio.sleep(0.02)


async def prewarmed(local: LocalStack, correlation_id: str) -> EmulatorSession:
    """The stack's first Voice Live session, once opened: the call's pre-warmed one."""
    async with asyncio.timeout(WAIT_S):
        session = await local.emulator.wait_for_session(0)
    assert session.client_request_id == correlation_id
    return session


async def test_a_hung_answer_frees_the_call_place_for_the_next_call(
    logs: list[EventDict],
) -> None:
    """ACS holds the answer: the service gives up at its deadline, closes the call's
    pre-warmed session, and answers the next call though the limit is one call."""
    async with stack() as local:
        hung = await local.ring([], rest_faults=[RestFault("answer", status=504, delay_s=60.0)])
        session = await prewarmed(local, hung.correlation_id)
        failed = await logged(logs, "call.answer_failed", hung.correlation_id)
        async with asyncio.timeout(WAIT_S):
            await session.wait_closed()
        following = await local.ring([Hangup(AfterAgentDone(pause_ms=100))])
        await following.wait_ended(WAIT_S)
    hung_answers = [(op.status, op.fault is not None) for op in hung.operations]
    assert f"no reply from ACS within {ANSWER_S:g} s" in failed["error"]
    assert failed["log_level"] == "error"
    assert hung.outcome is None  # never answered: it rang until the stand-in stopped
    assert hung_answers == [(503, True)]  # held until the stand-in stopped
    assert session.closed_at is not None
    assert session.closed_at - session.opened_at < PREWARM_TTL_S
    assert (following.outcome, following.reject_reason) == ("answered", None)
    assert following.media is not None
    assert following.media.spurts  # the next caller heard the greeting


async def test_a_refused_answer_closes_the_pre_warmed_session_at_once(
    logs: list[EventDict],
) -> None:
    """ACS refuses the answer (403, which the SDK does not retry): the session Voice Live
    opened for the call is closed at once, not at the end of its time to live."""
    async with stack() as local:
        refused = await local.ring([], rest_faults=[RestFault("answer", status=403, delay_s=0.3)])
        session = await prewarmed(local, refused.correlation_id)
        failed = await logged(logs, "call.answer_failed", refused.correlation_id)
        async with asyncio.timeout(WAIT_S):
            await session.wait_closed()
        following = await local.ring([Hangup(AfterAgentDone(pause_ms=100))])
        await following.wait_ended(WAIT_S)
    assert "403" in failed["error"] or "Forbidden" in failed["error"]
    assert refused.outcome is None
    assert session.closed_at is not None
    assert session.closed_at - session.opened_at < PREWARM_TTL_S
    assert following.outcome == "answered"
