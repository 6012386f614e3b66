"""Bounded work per request, for anyone holding the webhook secret or a replayed ACS JWT.

The attacks: one POST of 4,000 made-up IncomingCalls (which used to start 49 answers, 49
Voice Live sessions and 3,952 rejects, and left a real call rejected 2 s later); 10,000
events the webhook ignores (which used to hold the event loop ~370 ms, one log line each,
while a call was talking); a callback carrying more events than ACS ever sends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.acs_events import (
    INCOMING_CALL_EVENT,
    MAX_EVENTS_PER_CALLBACK,
    MAX_EVENTS_PER_DELIVERY,
)
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.harness import DIALED_NUMBER, LocalStack
from callbridge.sim.script import At, Hangup
from callbridge.web.call_setup import MAX_SETUPS_IN_FLIGHT
from callbridge.web.webhook import SECRET_HEADER
from tests.adversarial.support import post_webhook, tone_stack
from tests.tone_calls import turn

WAIT_S = 15.0
FLOOD = 4000


stack = tone_stack


def made_up_call() -> dict[str, Any]:
    """An IncomingCall for the routed number, with a context ACS never issued: ~140 bytes."""
    return {
        "eventType": INCOMING_CALL_EVENT,
        "data": {
            "to": {"rawId": f"4:{DIALED_NUMBER}"},
            "incomingCallContext": uuid.uuid4().hex,
            "correlationId": str(uuid.uuid4()),
        },
    }


async def deliver(local: LocalStack, body: bytes) -> int:
    """POST a pre-encoded delivery with the webhook secret, as Event Grid would."""
    status, _ = await post_webhook(local, body)
    return status


async def until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError


async def test_a_flood_of_made_up_calls_starts_a_few_and_a_real_call_is_then_answered() -> None:
    """4,000 made-up IncomingCalls in one POST: 429, 16 answers at most (which ACS refuses),
    no rejects, at most 16 pre-warmed sessions; a real call right after is answered, delivered
    again as Event Grid does for as long as the flood's set-ups hold every slot."""
    flood = [made_up_call() for _ in range(FLOOD)]
    made_up = {event["data"]["correlationId"] for event in flood}
    body = json.dumps(flood).encode()
    assert len(body) < 1024**2  # under aiohttp's body limit: the webhook itself must say no
    async with stack() as local:
        status = await deliver(local, body)

        def answers() -> list[Any]:
            return [op for op in local.acs.operations if op.name == "answer"]

        await until(lambda: len(answers()) == MAX_SETUPS_IN_FLIGHT)
        real = local.acs.incoming_call(to_number=DIALED_NUMBER, script=[Hangup(At(0.5))])
        assert real.incoming_event is not None
        statuses = []
        for attempt in range(50):  # Event Grid's retries, condensed
            record = await local.acs.deliver(
                local.webhook_url,
                [real.incoming_event],
                headers={SECRET_HEADER: local.webhook_secret},
                delivery_count=attempt,
            )
            statuses.append(record.status)
            if record.status == 200:
                break
            await asyncio.sleep(0.1)
        await real.wait_ended(WAIT_S)
        flood_answers = [op for op in answers() if op.call_connection_id is None]
        flood_sessions = [s for s in local.emulator.sessions if s.client_request_id in made_up]
        rejects = [op for op in local.acs.operations if op.name == "reject"]
    assert status == 429
    assert len(flood_answers) == MAX_SETUPS_IN_FLIGHT
    assert {op.status for op in flood_answers} == {404}
    assert len(flood_sessions) <= MAX_SETUPS_IN_FLIGHT
    assert rejects == []
    assert statuses[-1] == 200
    assert real.outcome == "answered"


class LoopLag:
    """How late the event loop runs a 5 ms sleep, at worst, while it is running."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - asked - 0.005) * 1000)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        self._task = asyncio.create_task(self._probe())
        try:
            yield self
        finally:
            self._task.cancel()


async def test_ignored_events_are_one_log_line_and_a_talking_call_keeps_its_pace() -> None:
    """While the agent talks on a call: 10,000 ignored events → 413; 5,000 (Event Grid's
    ceiling) → 200 and one summary line. The call's pacer figures and the event loop's worst
    lateness under the two POSTs are printed, not asserted: they are timings."""
    ignored = [{"eventType": "Contoso.Made.Up", "data": {"n": n}} for n in range(10_000)]
    over = json.dumps(ignored).encode()
    at_cap = json.dumps(ignored[:MAX_EVENTS_PER_DELIVERY]).encode()
    long_greeting = (turn(3000, 440, "A greeting long enough to pace through the batches."),)
    async with stack(long_greeting) as local:
        call = await local.ring([Hangup(At(3.0))])
        await call.wait_callback("MediaStreamingStarted", WAIT_S)
        await asyncio.sleep(0.5)  # the greeting is playing
        with capture_logs() as logs:
            async with LoopLag().running() as lag:
                statuses = [await deliver(local, over), await deliver(local, at_cap)]
        await call.wait_ended(WAIT_S)
        summary = await local.bridge_summaries.get(call.call_connection_id)
    assert statuses == [413, 200]
    lines = [line for line in logs if line["event"].startswith("webhook.")]
    assert [line["event"] for line in lines] == ["webhook.malformed", "webhook.ignored_events"]
    assert lines[1]["events"] == MAX_EVENTS_PER_DELIVERY
    assert lines[1]["types"] == {"Contoso.Made.Up": MAX_EVENTS_PER_DELIVERY}
    assert summary is not None
    assert summary.pacer_max_late_ms is not None
    print(  # the figures, for the record (pytest -rP shows them)
        f"under the batches: event loop worst lateness {lag.worst_ms:.1f} ms; the call's pacer "
        f"max late {summary.pacer_max_late_ms:.1f} ms, {summary.pacer_reanchors} re-anchors, "
        f"{summary.pacer_starved} underruns"
    )


@pytest.mark.parametrize("events", [MAX_EVENTS_PER_CALLBACK, MAX_EVENTS_PER_CALLBACK + 1])
async def test_a_callback_batch_beyond_the_cap_is_refused_whole(events: int) -> None:
    """More events than ACS ever posts in one callback: 413 and none is acted on (each is a
    MediaStreamingFailed, which would hang the call up); at the cap, they are acted on."""
    async with stack() as local:
        call = await local.ring([Hangup(At(2.0))])
        await call.wait_callback("MediaStreamingStarted", WAIT_S)
        assert call.request_body is not None
        event = {
            "type": "Microsoft.Communication.MediaStreamingFailed",
            "data": {
                "callConnectionId": call.call_connection_id,
                "correlationId": call.correlation_id,
            },
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                through_ingress(call.request_body["callbackUri"]),
                json=[event] * events,
                headers={"Authorization": f"Bearer {local.acs.mint_token()}"},
            ) as response,
        ):
            status = response.status
        await call.wait_ended(WAIT_S)
    if events > MAX_EVENTS_PER_CALLBACK:
        assert (status, call.disconnect) == (413, "caller")
    else:
        assert (status, call.disconnect) == (200, "app_terminate")
