"""A callback may act only on the call its token is for.

The attack: call A's callback URL (its signed token in the path) and A's ``correlationId``,
with a replayed ACS JWT (those are not tied to a call), and call B's ``callConnectionId`` in
a ``MediaStreamingFailed``, which makes callbridge hang the named connection up. The
connection id ACS gave each call at answer (or create) is what the event's must match.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.call_bindings import CallBindings, CrossCallError
from callbridge.core.profiles import AgentProfile
from callbridge.sim.acs import SimCall
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import At, Hangup
from tests.tone_calls import CALLER_TRANSCRIPTS, TURNS

WAIT_S = 15.0
CALLEE = "+14255550150"


def stack() -> LocalStack:
    return LocalStack(
        turns=TURNS,
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=AgentProfile(tools=("end_call",)),
        response_delay_ms=100,
    )


def media_failed(call_connection_id: str | None, correlation_id: str) -> list[dict[str, Any]]:
    """A ``MediaStreamingFailed`` callback body (no status details: not a recoverable drop)."""
    return [
        {
            "type": "Microsoft.Communication.MediaStreamingFailed",
            "data": {"callConnectionId": call_connection_id, "correlationId": correlation_id},
        }
    ]


async def post(url: str, body: object, jwt: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Authorization": f"Bearer {jwt}"}) as response,
    ):
        return response.status


def callback_url(call: SimCall) -> str:
    """Where ACS posts the call's callbacks, as the ingress forwards them."""
    assert call.request_body is not None  # answered or placed
    return through_ingress(call.request_body["callbackUri"])


def terminations(local: LocalStack, call: SimCall) -> list[str]:
    """The hang-ups callbridge asked ACS for on ``call``."""
    return [
        op.name
        for op in local.acs.operations
        if op.call_connection_id == call.call_connection_id and op.name in ("hangup", "terminate")
    ]


async def test_a_callback_with_another_calls_connection_id_is_refused() -> None:
    """A's token and correlation id with B's connection id: 403, logged, B talks on until its
    caller hangs up. The same event naming A's own connection still ends A."""
    async with stack() as local:
        a = await local.ring([Hangup(At(4.0))])
        b = await local.ring([Hangup(At(2.0))])
        for call in (a, b):
            await call.wait_callback("MediaStreamingStarted", WAIT_S)
        jwt = local.acs.mint_token()
        with capture_logs() as logs:
            attack = await post(
                callback_url(a), media_failed(b.call_connection_id, a.correlation_id), jwt
            )
        await b.wait_ended(WAIT_S)
        own = await post(callback_url(a), media_failed(a.call_connection_id, a.correlation_id), jwt)
        await a.wait_ended(WAIT_S)
    assert attack == 403
    refusals = [line for line in logs if line["event"] == "callback.cross_call_refused"]
    assert [(r["call_connection_id"], r["correlation_id"]) for r in refusals] == [
        (b.call_connection_id, a.correlation_id)
    ]
    assert (b.disconnect, terminations(local, b), b.media is not None) == ("caller", [], True)
    assert own == 200
    assert a.disconnect == "app_terminate"


async def test_an_outbound_calls_token_cannot_reach_an_inbound_call() -> None:
    """An outbound call's token is not bound to a correlation id (ACS picks it after the call
    is placed), so the correlation id proves nothing; the connection id ACS returned when the
    call was placed does: B's ids under the outbound token are refused."""
    async with stack() as local:
        placed = await local.dial(CALLEE, [Hangup(At(3.0))])
        b = await local.ring([Hangup(At(2.0))])
        await b.wait_callback("MediaStreamingStarted", WAIT_S)
        assert b.call_connection_id is not None
        body = media_failed(b.call_connection_id, b.correlation_id)
        status = await post(callback_url(placed), body, local.acs.mint_token())
        await b.wait_ended(WAIT_S)
        await placed.wait_ended(WAIT_S)
    assert status == 403
    assert (b.disconnect, terminations(local, b)) == ("caller", [])


class TestBindings:
    """The rule itself: what this replica knows refuses; what it does not know, it cannot."""

    def test_both_directions_of_a_mismatch_are_refused(self) -> None:
        bindings = CallBindings()
        bindings.bind("call-a", "conn-a")
        bindings.bind("call-b", "conn-b")
        bindings.check("call-a", "conn-a")
        bindings.check("call-a", None)  # an event naming no connection acts on none
        for key, connection in (("call-a", "conn-b"), ("call-a", "conn-x"), ("call-x", "conn-b")):
            with pytest.raises(CrossCallError):
                bindings.check(key, connection)

    def test_an_unknown_pairing_passes_and_bindings_expire_with_their_token(self) -> None:
        now = [0.0]
        bindings = CallBindings(ttl_s=60.0, clock=lambda: now[0])
        bindings.check("elsewhere", "conn-elsewhere")  # answered by another replica
        bindings.bind("call-a", "conn-a")
        now[0] = 61.0
        bindings.check("call-a", "conn-b")  # A's token has expired: it is refused anyway
