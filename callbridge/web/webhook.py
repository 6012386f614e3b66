"""``POST /api/incomingCall``: Event Grid's handshake, and the IncomingCalls it delivers.

Event Grid waits for the response and retries on failure, and a call rings for only 30 s, so
the handler responds at once and each call is set up in the background (``call_setup``).

The work one delivery can cause is bounded, whoever holds the webhook secret: JSON content
types only (415), at most Event Grid's 5,000 events (413; aiohttp already refuses a body over
1 MiB, Event Grid's largest preferred batch size), read in slices with the event loop let run
between them, the events it does not act on logged as one line, and calls taken only while the
replica has a set-up slot free: the rest of the delivery gets 429, and Event Grid delivers it
again (the calls already taken are then duplicates, answered once).
"""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from typing import Final

import structlog
from aiohttp import web

from callbridge.core.acs_events import (
    MAX_EVENTS_PER_DELIVERY,
    TOO_MANY_FOR_EVENT_GRID,
    VALIDATION_EVENT,
    IncomingCall,
    OtherDelivery,
    SubscriptionValidation,
    parse_delivery,
)
from callbridge.core.json_elements import json_elements
from callbridge.core.jwt_policy import JwtError, SigningKeysUnavailable, bearer_token
from callbridge.web.call_setup import MAX_SETUPS_IN_FLIGHT, take_calls
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

SECRET_HEADER = "x-callbridge-secret"
SECRET_QUERY = "secret"

JSON_CONTENT_TYPES: Final = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
"""Event Grid sends ``application/json; charset=utf-8`` with its own schema and
``application/cloudevents+json; charset=utf-8`` with CloudEvents (Learn,
``event-grid/cloud-event-schema``); a batch in CloudEvents' HTTP binding is
``application/cloudevents-batch+json`` (CloudEvents 1.0, ``http-protocol-binding.md``, 3.3)."""

READ_SLICE: Final = 200
"""Events read between two turns of the event loop, so that a delivery at the cap never holds
the loop (and the pacers of the calls on it) for longer than one slice takes: about a
millisecond."""

_TYPES: Final = 8
_TYPE_CHARS: Final = 100
"""The ignored events' log line names the ``_TYPES`` commonest types, ``_TYPE_CHARS`` each."""


async def incoming_call(request: web.Request) -> web.Response:
    replica = request.app[REPLICA]
    await _require_event_grid(request, replica)
    if request.content_type not in JSON_CONTENT_TYPES:
        log.warning("webhook.malformed", reason="not a JSON content type")
        raise web.HTTPUnsupportedMediaType(text="expected application/json")
    try:
        delivery = await _read(await request.text())
    except ValueError:  # not UTF-8, or not JSON
        log.warning("webhook.malformed", reason="body is not JSON")
        raise web.HTTPBadRequest(text="body is not JSON") from None
    not_taken = take_calls(replica, delivery.calls)
    if not_taken:
        log.warning(
            "webhook.calls_not_taken",
            calls=not_taken,
            reason=f"{MAX_SETUPS_IN_FLIGHT} call set-ups in flight",
        )
        raise web.HTTPTooManyRequests(
            text=f"{not_taken} calls not taken: this replica is setting up "
            f"{MAX_SETUPS_IN_FLIGHT} calls already; deliver again"
        )
    if delivery.validation_code is not None:
        log.info("webhook.subscription_validated")
        return web.json_response({"validationResponse": delivery.validation_code})
    return web.Response(status=200)


class _Delivery:
    """What one delivery asks for: calls to take, perhaps the handshake, and what is not ours."""

    def __init__(self) -> None:
        self.calls: list[IncomingCall] = []
        self.validation_code: str | None = None
        self.ignored: Counter[str] = Counter()
        """Events of types the webhook does not act on, by type."""
        self.malformed: Counter[str] = Counter()
        """Events of a type it acts on but cannot use, by problem."""

    def log_ignored(self) -> None:
        """One line for all the events not acted on, whatever their number, naming a few of
        their types, each cut short (a type is the sender's text)."""
        if not self.ignored and not self.malformed:
            return
        (log.warning if self.malformed else log.info)(
            "webhook.ignored_events",
            events=self.ignored.total() + self.malformed.total(),
            types={kind[:_TYPE_CHARS]: n for kind, n in self.ignored.most_common(_TYPES)},
            more_types=max(len(self.ignored) - _TYPES, 0),
            malformed=dict(self.malformed),
        )


async def _read(body: str) -> _Delivery:
    """Read a delivery an event at a time, letting the event loop run after each slice; all
    of it is read before any of it is acted on.

    Raises:
        ValueError: the body is not JSON.
        web.HTTPRequestEntityTooLarge: more events than Event Grid ever sends (read no further).
        web.HTTPBadRequest: a validation event without its code.
    """
    delivery = _Delivery()
    for index, event in enumerate(json_elements(body)):
        if index == MAX_EVENTS_PER_DELIVERY:
            log.warning("webhook.malformed", reason=TOO_MANY_FOR_EVENT_GRID)
            raise web.HTTPRequestEntityTooLarge(
                MAX_EVENTS_PER_DELIVERY, text=TOO_MANY_FOR_EVENT_GRID
            )
        if index and index % READ_SLICE == 0:
            await asyncio.sleep(0)
        match parse_delivery(event):
            case SubscriptionValidation(validation_code=code):
                delivery.validation_code = code
            case IncomingCall() as call:
                delivery.calls.append(call)
            case OtherDelivery(event_type=kind, problem=str(problem)) if kind == VALIDATION_EVENT:
                log.warning("webhook.malformed_event", event_type=kind, reason=problem)
                raise web.HTTPBadRequest(text="validation event without a validationCode")
            case OtherDelivery(event_type=kind, problem=None):
                delivery.ignored[str(kind)] += 1
            case OtherDelivery(problem=str(problem)):
                delivery.malformed[problem] += 1
    delivery.log_ignored()
    return delivery


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
