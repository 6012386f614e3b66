"""``POST /api/incomingCall``: Event Grid's handshake, and IncomingCall → route → answer.

Event Grid waits for the response and retries on failure, and a call rings for only 30 s, so
the handler answers 200 at once and answers (or rejects) the call in the background. Batches
are handled event by event; a duplicate delivery of one call is answered once.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from callbridge.routing import AgentProfile
from callbridge.services import SERVICES, Services
from callbridge.telemetry import record_answer_latency, record_rejected
from callbridge.telephony.control import RejectReason
from callbridge.telephony.jwt_auth import JwtError, SigningKeysUnavailable, bearer_token
from callbridge.telephony.numbers import mask, number_from_identifier

log = structlog.get_logger(__name__)

SECRET_HEADER = "x-callbridge-secret"
SECRET_QUERY = "secret"

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
INCOMING_CALL_EVENT = "Microsoft.Communication.IncomingCall"


async def incoming_call(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await _require_event_grid(request, services)
    try:
        body = await request.json()
    except ValueError:
        log.warning("webhook.malformed", reason="body is not JSON")
        raise web.HTTPBadRequest(text="body is not JSON") from None
    events = body if isinstance(body, list) else [body]
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            log.warning("webhook.malformed_event", reason="not an event object with data")
            continue
        # Event Grid schema says eventType; the CloudEvents schema says type.
        event_type = event.get("eventType") or event.get("type")
        data: dict[str, Any] = event["data"]
        if event_type == VALIDATION_EVENT:
            code = data.get("validationCode")
            if not isinstance(code, str):
                raise web.HTTPBadRequest(text="validation event without a validationCode")
            log.info("webhook.subscription_validated")
            return web.json_response({"validationResponse": code})
        if event_type == INCOMING_CALL_EVENT:
            _on_incoming_call(services, data)
        else:
            log.info("webhook.ignored_event", event_type=str(event_type))
    return web.Response(status=200)


async def cloud_events_handshake(request: web.Request) -> web.Response:
    """The CloudEvents-schema handshake: allow the origin Event Grid announces."""
    await _require_event_grid(request, request.app[SERVICES])
    origin = request.headers.get("WebHook-Request-Origin", "")
    return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})


async def _require_event_grid(request: web.Request, services: Services) -> None:
    """The shared secret (header or query parameter) or an Entra ID token, if auth is on."""
    auth = services.settings.auth
    if not auth.enabled:
        return
    if auth.webhook_secret is not None:
        presented = request.headers.get(SECRET_HEADER) or request.query.get(SECRET_QUERY) or ""
        if hmac.compare_digest(presented.encode(), auth.webhook_secret.encode()):
            return
    reason = "wrong or missing secret"
    if services.webhook_jwt is not None:
        try:
            await services.webhook_jwt.validate(bearer_token(request.headers))
        except SigningKeysUnavailable as exc:
            log.error("webhook.signing_keys_unavailable", error=str(exc))
            raise web.HTTPServiceUnavailable(text="signing keys unavailable") from None
        except JwtError as exc:
            reason = str(exc)
        else:
            return
    log.warning("webhook.unauthorized", reason=reason)
    raise web.HTTPUnauthorized(text="unauthorized")


def _on_incoming_call(services: Services, data: Mapping[str, Any]) -> None:
    context = data.get("incomingCallContext")
    correlation_id = data.get("correlationId")
    if not isinstance(context, str) or not isinstance(correlation_id, str):
        log.warning("webhook.malformed_event", reason="IncomingCall without context or id")
        return
    if not services.incoming.first_time(correlation_id):
        log.info("call.duplicate_delivery", correlation_id=correlation_id)
        return
    to = data.get("to")
    dialed = number_from_identifier(to) if isinstance(to, Mapping) else None
    routing = services.settings.routing
    profile = routing.profile_for(dialed) if dialed is not None else None
    fields = {"correlation_id": correlation_id, "to": mask(dialed or "")}
    if profile is None:
        if routing.redirect_to is not None:
            log.info("call.unrouted_redirecting", **fields, target=mask(routing.redirect_to))
            services.tasks.spawn(
                _redirect(services, context, routing.redirect_to, correlation_id), "redirect"
            )
        else:
            log.info("call.unrouted_rejecting", **fields)
            services.tasks.spawn(_reject(services, context, correlation_id, "none"), "reject")
        return
    if not services.accepting_calls():
        log.warning("call.busy", **fields, draining=services.draining)
        services.tasks.spawn(_reject(services, context, correlation_id, "busy"), "reject")
        return
    log.info("call.incoming", **fields, profile=profile.name)
    services.prewarm.start(correlation_id, profile)
    services.answering += 1
    services.tasks.spawn(_answer(services, context, correlation_id, profile), "answer")


async def _answer(
    services: Services, context: str, correlation_id: str, profile: AgentProfile
) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        received = time.monotonic()
        try:
            call_id = await services.control.answer(
                context, correlation_id=correlation_id, profile=profile
            )
        except Exception as exc:  # ACS refused or is unreachable: nothing else to do for it
            log.error("call.answer_failed", error=str(exc) or type(exc).__name__)
            await services.prewarm.discard(correlation_id)
            return
        finally:
            services.answering -= 1
        record_answer_latency((time.monotonic() - received) * 1000, direction="inbound")
        log.info("call.answered", call_connection_id=call_id, profile=profile.name)


async def _reject(
    services: Services, context: str, correlation_id: str, reason: RejectReason
) -> None:
    record_rejected("unrouted" if reason == "none" else reason)
    try:
        await services.control.reject(context, reason)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.reject_failed", correlation_id=correlation_id, error=str(exc))


async def _redirect(services: Services, context: str, target: str, correlation_id: str) -> None:
    try:
        await services.control.redirect(context, target)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.redirect_failed", correlation_id=correlation_id, error=str(exc))
