"""``POST /api/callbacks/{token}``: ACS's mid-call events (CloudEvents arrays).

Stateless on purpose: any replica may receive any call's callback, so actions go through ACS's
REST API by ``callConnectionId``. Only notices for a call bridged on this replica (a failed
transfer, a call that ended before its media arrived) also touch local state.

A callback acts only on the call its path token is for: the token must fit the event's
``correlationId``, and the event's ``callConnectionId`` must be the one ACS gave that call
(``core.call_bindings``). ACS spreads a call's callbacks over the replicas, so most land on one
that neither answered nor placed the call: before such a replica acts on a connection it knows
nothing of, it asks ACS what call that connection is (``CallControl.call_ids``), once per
connection. At most ``MAX_EVENTS_PER_CALLBACK`` events a request (413).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import structlog
from aiohttp import web

from callbridge.core.acs_events import (
    MAX_EVENTS_PER_CALLBACK,
    AcsEventError,
    CallEvent,
    ResultInformation,
    TooManyEventsError,
    parse_callbacks,
)
from callbridge.core.call_bindings import ConnectionOwner, CrossCallError, callback_call_key
from callbridge.core.call_token import AuthError, CallClaims, verify_call_token
from callbridge.core.json_elements import json_elements
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

_STREAM_INTERRUPTED = frozenset({"streamConnectionInterrupted"})
"""``mediaStreamingStatusDetails`` of a media socket lost mid-call, which ACS may re-establish
(``streamConnectionReestablished`` on a ``MediaStreamingStarted``). The values are listed by the
Call Automation SDKs (Python 1.6.0 ``MediaStreamingStatusDetails``; Java's enum of the same
name); Learn documents neither the values nor when each is sent, so only this one is read as
recoverable, and every other failure detail still hangs the call up."""


async def callback(request: web.Request) -> web.Response:
    replica = request.app[REPLICA]
    claims = _call_claims(request, replica)
    await replica.require_acs_token(request)
    try:
        # One more event than the cap is enough to refuse the body: read no further.
        body = list(islice(json_elements(await request.text()), MAX_EVENTS_PER_CALLBACK + 1))
    except ValueError:  # not UTF-8, or not JSON
        log.warning("callback.malformed", reason="body is not JSON")
        raise web.HTTPBadRequest(text="body is not JSON") from None
    try:
        events = parse_callbacks(body)
    except TooManyEventsError as exc:
        log.warning("callback.malformed", reason=str(exc))
        raise web.HTTPRequestEntityTooLarge(MAX_EVENTS_PER_CALLBACK, text=str(exc)) from None
    except AcsEventError:
        log.warning("callback.malformed", reason="no CloudEvents with data")
        raise web.HTTPBadRequest(text="expected an array of CloudEvents") from None
    if claims is not None:
        for event in events:
            await _require_own_call(replica, claims, event)
    for event in events:
        await _handle(replica, event, claims.call_key if claims else event.correlation_id)
    return web.Response(status=200)


def _call_claims(request: web.Request, replica: Replica) -> CallClaims | None:
    """The path's call token, which ties the callback to the call it was issued for."""
    if not replica.settings.auth.enabled:
        return None
    try:
        return verify_call_token(request.match_info["token"], replica.settings.auth.signing_key)
    except AuthError as exc:
        log.warning("callback.unauthorized", reason=str(exc))
        raise web.HTTPUnauthorized(text="unauthorized") from None


async def _require_own_call(replica: Replica, claims: CallClaims, event: CallEvent) -> None:
    """Refuse the whole request if one of its events is about another call than the token's.

    Raises:
        web.HTTPUnauthorized: the token was minted for another correlation id.
        web.HTTPForbidden: the event names a connection that is not the token's call's.
        web.HTTPServiceUnavailable: the event would act on a connection this replica knows
            nothing of, and ACS cannot say right now which call it is.
    """
    try:
        claims.check_call(event.correlation_id)
    except AuthError as exc:
        log.warning("callback.unauthorized", reason=str(exc))
        raise web.HTTPUnauthorized(text="unauthorized") from None
    connection_id = event.call_connection_id
    try:
        if replica.call_connections.check(claims.call_key, connection_id):
            return
        if connection_id is None or not _acts_on_connection(replica, event):
            return
        owner = await _ask_acs(replica, connection_id, event)
        if owner is not None:
            replica.call_connections.learn(claims, owner)
    except CrossCallError as exc:
        # 403, not 409: the request did authenticate (ACS's JWT, a valid call token), but that
        # token may not act on that call, and no change of state will ever let it; a 409 would
        # say a retry could succeed once the conflict is resolved.
        log.warning(
            "callback.cross_call_refused",
            event_type=event.name,
            correlation_id=event.correlation_id,
            call_connection_id=connection_id,
            reason=str(exc),
        )
        raise web.HTTPForbidden(text="this callback's token is for another call") from None


def _acts_on_connection(replica: Replica, event: CallEvent) -> bool:
    """Whether ``_handle`` does anything to the named connection: hangs it up, or tells its
    bridge here. Other events only log (or close a pre-warmed session of the token's own call),
    so ACS need not be asked about them."""
    match event.name:
        case "MediaStreamingFailed":
            return event.media_streaming_details not in _STREAM_INTERRUPTED
        case "CallDisconnected" | "CallTransferFailed":
            return event.call_connection_id in replica.bridges
        case _:
            return False


async def _ask_acs(
    replica: Replica, connection_id: str, event: CallEvent
) -> ConnectionOwner | None:
    """What call ACS says ``connection_id`` is; None if ACS says it no longer exists.

    A connection that is gone can come to no harm: its hang-up is a no-op, and a bridge here
    under that id has lost its call anyway. ACS not answering is another matter: the event is
    refused with 503 and nothing is done. The action would have gone to that same ACS; a wrong
    hang-up cannot be taken back, and the call's own bridge still ends it if its media fails.
    Whether ACS retries a refused callback is not published.

    Raises:
        web.HTTPServiceUnavailable: ACS did not say (timeout, refusal, failure).
    """
    try:
        ids = await replica.control.call_ids(connection_id)
    except Exception as exc:  # unreachable, throttled, failing: act on nothing
        log.warning(
            "callback.call_unverified",
            event_type=event.name,
            call_connection_id=connection_id,
            error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        raise web.HTTPServiceUnavailable(text="cannot check the call with ACS") from None
    if ids is None:
        log.info(
            "callback.connection_gone", event_type=event.name, call_connection_id=connection_id
        )
        return None
    signing_key = replica.settings.auth.signing_key
    return ConnectionOwner(
        connection_id, ids.correlation_id, callback_call_key(ids.callback_url, signing_key)
    )


async def _handle(replica: Replica, event: CallEvent, call_key: str | None) -> None:
    """Act on one event; ``call_key`` is the call the path's token is for (with authentication
    off, the event's correlation id)."""
    call_id, correlation_id, name = event.call_connection_id, event.correlation_id, event.name
    result = event.result
    with structlog.contextvars.bound_contextvars(
        call_connection_id=call_id, correlation_id=correlation_id
    ):
        match name:
            case "CallConnected" | "MediaStreamingStarted" | "MediaStreamingStopped":
                log.info("acs.event", event_type=name)
            case "CallTransferAccepted":
                log.info("call.transfer_accepted")
            case "MediaStreamingFailed" if event.media_streaming_details in _STREAM_INTERRUPTED:
                # The socket dropped mid-call and ACS may open a new one: the bridge keeps the
                # call for CALLBRIDGE_MEDIA_REJOIN_S, then hangs up itself if none came.
                log.warning(
                    "call.media_interrupted",
                    details=event.media_streaming_details,
                    **_result_fields(result),
                )
            case "MediaStreamingFailed":
                # The call is connected but no audio can flow: nobody can talk to the agent.
                log.error(
                    "call.media_failed",
                    details=event.media_streaming_details,
                    **_result_fields(result),
                )
                if call_id is not None:
                    replica.tasks.spawn(_hang_up(replica, call_id), "hang-up")
                await _forget(replica, call_key, correlation_id)
            case "AnswerFailed" | "CreateCallFailed":
                log.error("call.setup_failed", event_type=name, **_result_fields(result))
                await _forget(replica, call_key, correlation_id)
            case "CallDisconnected":
                log.info("call.disconnected")
                await _forget(replica, call_key, correlation_id)
                bridge = replica.bridges.get(call_id or "")
                if bridge is not None:
                    await bridge.call_disconnected()
            case "CallTransferFailed":
                log.error("call.transfer_failed", **_result_fields(result))
                bridge = replica.bridges.get(call_id or "")
                if bridge is not None:
                    await bridge.transfer_failed()
            case "PlayFailed":
                log.error("call.play_failed", **_result_fields(result))
            case _:
                log.info("callback.ignored_event", event_type=name)


async def _hang_up(replica: Replica, call_id: str) -> None:
    try:
        await replica.control.hang_up(call_id)
    except Exception as exc:  # logged; ACS ends an idle call on its own eventually
        log.error("acs.hang_up_failed", call_connection_id=call_id, error=str(exc))


async def _forget(replica: Replica, call_key: str | None, correlation_id: str | None) -> None:
    """The call will never (again) open a media socket: stop awaiting it, close its pre-warmed
    session."""
    if call_key is not None:
        replica.awaiting_media.discard(call_key)
    if correlation_id is not None:
        await replica.prewarm.discard(correlation_id)


def _result_fields(result: ResultInformation | None) -> dict[str, Any]:
    if result is None:
        return {"code": None, "sub_code": None, "message": None}
    return {"code": result.code, "sub_code": result.sub_code, "message": result.message}
