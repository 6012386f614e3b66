"""A mid-call Call Automation request ACS holds is cut at its deadline, and the call goes on.

The agent transfers the caller; ACS holds the transfer request and never answers. The real
service runs against the stand-ins on loopback with a 1 s transfer deadline (the SDK alone
would wait 300 s): the agent is told the transfer failed and speaks again, and the caller,
still on the line, hears it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import CallOperationDeadlines, Settings
from callbridge.sim.acs import RestFault
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import AfterAgentDone, Hangup, Say
from callbridge.sim.voicelive import ToolCall
from tests.tone_calls import CALLER_TRANSCRIPTS, GREETING, LINE, turn

HUMAN = "+18005550123"
TRANSFER_S = 1.0


class Stack(LocalStack):
    def settings(self, endpoint: str, public_url: str) -> Settings:
        settings = super().settings(endpoint, public_url)
        deadlines = CallOperationDeadlines(transfer_s=TRANSFER_S)
        return replace(settings, acs=replace(settings.acs, deadlines=deadlines))


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


async def test_a_transfer_acs_never_answers_fails_at_its_deadline_and_the_call_goes_on(
    logs: list[EventDict],
) -> None:
    transfer = turn(500, 587, "Transferring.", ToolCall("transfer_call", {}))
    sorry = turn(500, 698, "Sorry, that did not work.")
    # The caller hangs up after 1.5 s without the agent: longer than the transfer's deadline,
    # so they are still there when the agent speaks again.
    async with Stack(
        turns=[GREETING, transfer, sorry],
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=AgentProfile(tools=("transfer_call",), transfer_to=HUMAN),
        response_delay_ms=100,
    ) as local:
        result = await local.call(
            [Say(LINE, AfterAgentDone(pause_ms=300)), Hangup(AfterAgentDone(pause_ms=1500))],
            rest_faults=[RestFault("transfer", status=None, delay_s=60.0)],
            timeout_s=20,
        )
    sim = result.acs
    assert sim is not None
    (failed,) = [entry for entry in logs if entry["event"] == "acs.transfer_failed"]
    assert failed["error"] == f"transfer: no reply from ACS within {TRANSFER_S:g} s"
    assert failed["call_connection_id"] == sim.call_connection_id
    (tool_call,) = result.session.tool_calls
    assert json.loads(tool_call.output or "") == {
        "error": "the transfer failed; the caller is still on the line"
    }
    # Greeting, "transferring", and "sorry" after the failed transfer, each heard in full.
    assert [spurt.end for spurt in result.record.spurts] == ["drained"] * 3
    assert (sim.disconnect, sim.transfer_target) == ("caller", None)
