"""``POST /api/incomingCall``: Event Grid's handshake, and IncomingCall → route → answer.

Event Grid waits for the response and retries on failure, and a call rings for only 30 s, so
the handler answers 200 at once and answers (or rejects) the call in the background. Batches
are handled event by event; a duplicate delivery of one call is answered once.
"""

from __future__ import annotations

import hmac
import time

import structlog
from aiohttp import web

from callbridge.adapters.call_automation import RejectReason
from callbridge.adapters.telemetry import record_answer_latency, record_rejected
from callbridge.core.acs_events import (
    VALIDATION_EVENT,
    IncomingCall,
    OtherDelivery,
    SubscriptionValidation,
    parse_deliveries,
)
from callbridge.core.jwt_policy import JwtError, SigningKeysUnavailable, bearer_token
from callbridge.core.numbers import mask
from callbridge.core.profiles import AgentProfile
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

SECRET_HEADER = "x-callbridge-secret"
SECRET_QUERY = "secret"


async def incoming_call(request: web.Request) -> web.Response:
    replica = request.app[REPLICA]
    await _require_event_grid(request, replica)
    try:
        body = await request.json()
    except ValueError:
        log.warning("webhook.malformed", reason="body is not JSON")
        raise web.HTTPBadRequest(text="body is not JSON") from None
    for delivery in parse_deliveries(body):
        match delivery:
            case SubscriptionValidation(validation_code=code):
                log.info("webhook.subscription_validated")
                return web.json_response({"validationResponse": code})
            case IncomingCall():
                _on_incoming_call(replica, delivery)
            case OtherDelivery(problem=str(problem)) if delivery.event_type == VALIDATION_EVENT:
                log.warning("webhook.malformed_event", reason=problem)
                raise web.HTTPBadRequest(text="validation event without a validationCode")
            case OtherDelivery(problem=str(problem)):
                log.warning(
                    "webhook.malformed_event", event_type=str(delivery.event_type), reason=problem
                )
            case OtherDelivery():
                log.info("webhook.ignored_event", event_type=str(delivery.event_type))
    return web.Response(status=200)


async def cloud_events_handshake(request: web.Request) -> web.Response:
    """The CloudEvents-schema handshake: allow the origin Event Grid announces."""
    await _require_event_grid(request, request.app[REPLICA])
    origin = request.headers.get("WebHook-Request-Origin", "")
    return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})


async def _require_event_grid(request: web.Request, replica: Replica) -> None:
    """The shared secret (header or query parameter) or an Entra ID token, if auth is on."""
    auth = replica.settings.auth
    if not auth.enabled:
        return
    if auth.webhook_secret is not None:
        presented = request.headers.get(SECRET_HEADER) or request.query.get(SECRET_QUERY) or ""
        if hmac.compare_digest(presented.encode(), auth.webhook_secret.encode()):
            return
    reason = "wrong or missing secret"
    if replica.webhook_jwt is not None:
        try:
            await replica.webhook_jwt.validate(bearer_token(request.headers))
        except SigningKeysUnavailable as exc:
            log.error("webhook.signing_keys_unavailable", error=str(exc))
            raise web.HTTPServiceUnavailable(text="signing keys unavailable") from None
        except JwtError as exc:
            reason = str(exc)
        else:
            return
    log.warning("webhook.unauthorized", reason=reason)
    raise web.HTTPUnauthorized(text="unauthorized")


def _on_incoming_call(replica: Replica, call: IncomingCall) -> None:
    context, correlation_id, dialed = call.incoming_call_context, call.correlation_id, call.dialed
    if not replica.incoming.first_time(correlation_id):
        log.info("call.duplicate_delivery", correlation_id=correlation_id)
        return
    routing = replica.settings.routing
    profile = routing.profile_for(dialed) if dialed is not None else None
    fields = {"correlation_id": correlation_id, "to": mask(dialed or "")}
    if profile is None:
        if routing.redirect_to is not None:
            log.info("call.unrouted_redirecting", **fields, target=mask(routing.redirect_to))
            replica.tasks.spawn(
                _redirect(replica, context, routing.redirect_to, correlation_id), "redirect"
            )
        else:
            log.info("call.unrouted_rejecting", **fields)
            replica.tasks.spawn(_reject(replica, context, correlation_id, "none"), "reject")
        return
    if not replica.accepting_calls():
        log.warning("call.busy", **fields, draining=replica.draining)
        replica.tasks.spawn(_reject(replica, context, correlation_id, "busy"), "reject")
        return
    log.info("call.incoming", **fields, profile=profile.name)
    replica.prewarm.start(correlation_id, profile)
    replica.answering += 1
    replica.tasks.spawn(_answer(replica, context, correlation_id, profile), "answer")


async def _answer(
    replica: Replica, context: str, correlation_id: str, profile: AgentProfile
) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        received = time.monotonic()
        try:
            call_id = await replica.control.answer(
                context, correlation_id=correlation_id, profile=profile
            )
        except Exception as exc:  # ACS refused or is unreachable: nothing else to do for it
            log.error("call.answer_failed", error=str(exc) or type(exc).__name__)
            await replica.prewarm.discard(correlation_id)
            return
        finally:
            replica.answering -= 1
        record_answer_latency((time.monotonic() - received) * 1000, direction="inbound")
        log.info("call.answered", call_connection_id=call_id, profile=profile.name)


async def _reject(
    replica: Replica, context: str, correlation_id: str, reason: RejectReason
) -> None:
    record_rejected("unrouted" if reason == "none" else reason)
    try:
        await replica.control.reject(context, reason)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.reject_failed", correlation_id=correlation_id, error=str(exc))


async def _redirect(replica: Replica, context: str, target: str, correlation_id: str) -> None:
    try:
        await replica.control.redirect(context, target)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.redirect_failed", correlation_id=correlation_id, error=str(exc))
