"""Outbound calls: ``POST /api/calls`` and ``callbridge dial`` place a call through ACS.

The callee's media socket and callbacks come back to this deployment's public URL, and the call
is bridged exactly like an inbound one.
"""

from __future__ import annotations

import hmac
import uuid

import structlog
from aiohttp import web
from azure.core.exceptions import HttpResponseError

from callbridge.adapters.call_automation import CallControl, OperationTimeoutError, PlacedCall
from callbridge.adapters.prewarm import Prewarmer
from callbridge.core.numbers import mask, parse_e164
from callbridge.core.profiles import AgentProfile, Routing
from callbridge.web.replica import REPLICA

log = structlog.get_logger(__name__)

API_KEY_HEADER = "x-api-key"


class DialError(ValueError):
    """The request cannot become a call; the message says why and is safe to show."""


def dial_profile(routing: Routing, number: str, profile_name: str | None) -> AgentProfile:
    """The named profile, else the one the routing table gives the number, else the default.

    Raises:
        DialError: no such profile, or no profile applies.
    """
    if profile_name is not None:
        try:
            return routing.profile(profile_name)
        except KeyError:
            raise DialError(f"no profile named {profile_name!r}") from None
    profile = routing.profile_for(number)
    if profile is None:
        raise DialError("no profile given and the routing table has no default")
    return profile


async def place_call(
    control: CallControl,
    routing: Routing,
    to: str,
    profile_name: str | None = None,
    prewarm: Prewarmer | None = None,
    *,
    call_key: str | None = None,
) -> PlacedCall:
    """Dial ``to`` (E.164) for the profile; pre-warm Voice Live while the phone rings.
    ``call_key`` keys the call's token (a random one by default).

    Raises:
        DialError: a bad number or profile, or no caller id configured.
        azure.core.exceptions.HttpResponseError: ACS refused the call.
        OperationTimeoutError: ACS did not answer in time.
    """
    number = parse_e164(to)
    if number is None:
        raise DialError("'to' must be an E.164 phone number such as +18005550100")
    profile = dial_profile(routing, number, profile_name)
    try:
        placed = await control.dial(number, profile, call_key=call_key or str(uuid.uuid4()))
    except ValueError as exc:
        raise DialError(str(exc)) from None
    if prewarm is not None and placed.correlation_id:
        prewarm.start(placed.correlation_id, profile)
    return placed


async def create_call(request: web.Request) -> web.Response:
    """``POST /api/calls`` with ``{"to": "+1...", "profile": "name"?}`` → 201 with the ids."""
    replica = request.app[REPLICA]
    auth = replica.settings.auth
    if auth.enabled:
        presented = request.headers.get(API_KEY_HEADER, "")
        if auth.api_key is None:
            log.warning("outbound.disabled", detail="set CALLBRIDGE_API_KEY to enable")
            raise web.HTTPForbidden(text="outbound calling is not enabled on this deployment")
        if not hmac.compare_digest(presented.encode(), auth.api_key.encode()):
            log.warning("outbound.unauthorized")
            raise web.HTTPUnauthorized(text="unauthorized")
    if not replica.accepting_calls():
        log.warning("outbound.busy", draining=replica.draining)
        raise web.HTTPServiceUnavailable(text="busy: at the call limit or shutting down")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    to = body.get("to") if isinstance(body, dict) else None
    profile = body.get("profile") if isinstance(body, dict) else None
    if not isinstance(to, str) or not (profile is None or isinstance(profile, str)):
        raise web.HTTPBadRequest(text='expected {"to": "+E164", "profile": "name"?}')
    call_key = str(uuid.uuid4())
    try:
        placed = await place_call(
            replica.control,
            replica.settings.routing,
            to,
            profile,
            replica.prewarm,
            call_key=call_key,
        )
    except DialError as exc:
        log.warning("outbound.refused", reason=str(exc), to=mask(to))
        raise web.HTTPBadRequest(text=str(exc)) from None
    except HttpResponseError as exc:
        log.error("outbound.acs_refused", status=exc.status_code, to=mask(to))
        raise web.HTTPBadGateway(text="ACS refused the call") from None
    except OperationTimeoutError as exc:
        log.error("outbound.acs_timed_out", error=str(exc), to=mask(to))
        raise web.HTTPGatewayTimeout(text="ACS did not answer in time") from None
    # The call's callbacks may act on this connection only (web.callbacks), and a drain
    # waits for its media socket.
    replica.call_connections.bind(call_key, placed.call_connection_id)
    replica.awaiting_media.expect(call_key)
    return web.json_response(
        {"callConnectionId": placed.call_connection_id, "correlationId": placed.correlation_id},
        status=201,
    )
