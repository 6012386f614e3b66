"""``POST /api/callbacks/{token}``: ACS's mid-call events (CloudEvents arrays).

Stateless on purpose: any replica may receive any call's callback, so actions go through ACS's
REST API by ``callConnectionId``. Only notices for a call bridged on this replica (a failed
transfer, a call that ended before its media arrived) also touch local state.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from callbridge.core.acs_events import AcsEventError, CallEvent, ResultInformation, parse_callbacks
from callbridge.core.call_token import AuthError, CallClaims, verify_call_token
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
        body = await request.json()
    except ValueError:
        log.warning("callback.malformed", reason="body is not JSON")
        raise web.HTTPBadRequest(text="body is not JSON") from None
    try:
        events = parse_callbacks(body)
    except AcsEventError:
        log.warning("callback.malformed", reason="no CloudEvents with data")
        raise web.HTTPBadRequest(text="expected an array of CloudEvents") from None
    if claims is not None:
        for event in events:
            try:
                claims.check_call(event.correlation_id)
            except AuthError as exc:
                log.warning("callback.unauthorized", reason=str(exc))
                raise web.HTTPUnauthorized(text="unauthorized") from None
    for event in events:
        await _handle(replica, event)
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


async def _handle(replica: Replica, event: CallEvent) -> None:
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
                await _forget(replica, correlation_id)
            case "AnswerFailed" | "CreateCallFailed":
                log.error("call.setup_failed", event_type=name, **_result_fields(result))
                await _forget(replica, correlation_id)
            case "CallDisconnected":
                log.info("call.disconnected")
                await _forget(replica, correlation_id)
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


async def _forget(replica: Replica, correlation_id: str | None) -> None:
    """The call will never (again) open a media socket: close its pre-warmed session."""
    if correlation_id is not None:
        await replica.prewarm.discard(correlation_id)


def _result_fields(result: ResultInformation | None) -> dict[str, Any]:
    if result is None:
        return {"code": None, "sub_code": None, "message": None}
    return {"code": result.code, "sub_code": result.sub_code, "message": result.message}
