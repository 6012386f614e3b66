"""A callback may act only on the call its token is for.

The attack: call A's callback URL (its signed token in the path) and A's ``correlationId``,
with a replayed ACS JWT (those are not tied to a call), and call B's ``callConnectionId`` in
a ``MediaStreamingFailed``, which makes callbridge hang the named connection up. The
connection id ACS gave each call at answer (or create) is what the event's must match.

ACS spreads a call's callbacks over the replicas, so the attack most often lands on a replica
that answered neither call: that one asks ACS what call the named connection is before it acts
(``TestAnotherReplica``). Both replicas serve the same stand-ins and share the signing key, as
the replicas of one deployment do.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from callbridge.core.call_bindings import CallBindings, ConnectionOwner, CrossCallError
from callbridge.core.call_token import CallClaims
from callbridge.sim.acs import RestFault, SimCall
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.harness import LOOPBACK, LocalStack
from callbridge.sim.script import At, Hangup
from callbridge.web.app import create_app
from tests.adversarial.support import tone_stack as stack

WAIT_S = 15.0
CALLEE = "+14255550150"


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


@asynccontextmanager
async def another_replica(local: LocalStack) -> AsyncIterator[str]:
    """A second replica of ``local``'s deployment (same settings, stand-ins and signing key) on
    its own loopback port; its base URL. It answers and places no call itself."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    base_url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    app = create_app(local.settings(local.emulator.endpoint, "https" + base_url[4:]))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield base_url
    finally:
        await runner.cleanup()


def on_replica(base_url: str, call: SimCall) -> str:
    """``call``'s callback URL, as the load balancer would hand it to the replica at
    ``base_url``."""
    return base_url + urlsplit(callback_url(call)).path


def lookups(local: LocalStack, call: SimCall) -> list[tuple[str, int]]:
    """The call-properties requests callbridge made about ``call``, with ACS's answers."""
    return [
        (op.name, op.status)
        for op in local.acs.operations
        if op.call_connection_id == call.call_connection_id and op.name == "get"
    ]


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


class TestAnotherReplica:
    """The attack lands on a replica that answered neither call."""

    async def test_it_asks_acs_once_and_refuses_then_acts_on_the_tokens_own_call(self) -> None:
        """A's token with B's connection: ACS says B is another call, 403, twice, with one
        question to ACS; B talks on. A's own connection: ACS says it is A's, and A is ended."""
        async with stack() as local, another_replica(local) as replica:
            a = await local.ring([Hangup(At(4.0))])
            b = await local.ring([Hangup(At(2.5))])
            for call in (a, b):
                await call.wait_callback("MediaStreamingStarted", WAIT_S)
            jwt = local.acs.mint_token()
            attack = media_failed(b.call_connection_id, a.correlation_id)
            with capture_logs() as logs:
                first = await post(on_replica(replica, a), attack, jwt)
                again = await post(on_replica(replica, a), attack, jwt)
            asked_about_b = lookups(local, b)
            await b.wait_ended(WAIT_S)
            own = media_failed(a.call_connection_id, a.correlation_id)
            own_status = await post(on_replica(replica, a), own, jwt)
            await a.wait_ended(WAIT_S)
        assert (first, again) == (403, 403)
        assert asked_about_b == [("get", 200)]
        refusals = [line for line in logs if line["event"] == "callback.cross_call_refused"]
        assert [r["call_connection_id"] for r in refusals] == [b.call_connection_id] * 2
        assert (b.disconnect, terminations(local, b), b.media is not None) == ("caller", [], True)
        assert own_status == 200
        assert lookups(local, a) == [("get", 200)]
        assert a.disconnect == "app_terminate"

    async def test_an_outbound_token_is_held_against_the_callback_url_acs_was_given(self) -> None:
        """An outbound token binds no correlation id: ACS's callback URL for B names B's
        token, not the placed call's, so B's ids under the placed call's token are refused."""
        async with stack() as local, another_replica(local) as replica:
            placed = await local.dial(CALLEE, [Hangup(At(3.0))])
            b = await local.ring([Hangup(At(2.0))])
            await b.wait_callback("MediaStreamingStarted", WAIT_S)
            body = media_failed(b.call_connection_id, b.correlation_id)
            status = await post(on_replica(replica, placed), body, local.acs.mint_token())
            await b.wait_ended(WAIT_S)
            await placed.wait_ended(WAIT_S)
        assert status == 403
        assert lookups(local, b) == [("get", 200)]
        assert (b.disconnect, terminations(local, b)) == ("caller", [])

    async def test_when_acs_cannot_say_nothing_is_done(self) -> None:
        """ACS refuses the call-properties request: 503, logged, no hang-up of anything (the
        hang-up would have gone to that same ACS, and a wrong one cannot be undone)."""
        async with stack() as local, another_replica(local) as replica:
            refused = RestFault("get_call", 403, times=None)
            a = await local.ring([Hangup(At(2.0))], rest_faults=[refused])
            await a.wait_callback("MediaStreamingStarted", WAIT_S)
            own = media_failed(a.call_connection_id, a.correlation_id)
            with capture_logs() as logs:
                status = await post(on_replica(replica, a), own, local.acs.mint_token())
            await a.wait_ended(WAIT_S)
        assert status == 503
        assert [line["event"] for line in logs if line["event"].startswith("callback.")] == [
            "callback.call_unverified"
        ]
        assert (a.disconnect, terminations(local, a)) == ("caller", [])


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
        # answered by another replica: only ACS can tell
        assert bindings.check("elsewhere", "conn-elsewhere") is False
        bindings.bind("call-a", "conn-a")
        now[0] = 61.0
        # A's token has expired: it is refused anyway
        assert bindings.check("call-a", "conn-b") is False

    def test_what_acs_says_is_bound_either_way(self) -> None:
        inbound = CallClaims("corr-a", "default", "inbound", expires_at=0)
        bindings = CallBindings()
        assert bindings.check("corr-a", "conn-b") is False
        with pytest.raises(CrossCallError):
            bindings.learn(inbound, ConnectionOwner("conn-b", "corr-b", call_key="corr-b"))
        with pytest.raises(CrossCallError):  # now known: refused without asking again
            bindings.check("corr-a", "conn-b")
        bindings.learn(inbound, ConnectionOwner("conn-a", "corr-a", call_key=None))
        assert bindings.check("corr-a", "conn-a") is True
        outbound = CallClaims("random-key", "default", "outbound", expires_at=0)
        with pytest.raises(CrossCallError):  # its correlation id proves nothing
            bindings.learn(outbound, ConnectionOwner("conn-c", "random-key", call_key=None))
        bindings.learn(outbound, ConnectionOwner("conn-d", "corr-d", call_key="random-key"))
        assert bindings.check("random-key", "conn-d") is True
