"""What Event Grid and Call Automation POST to callbridge, read into typed values (pure).

Two schemas (examples and recordings in ``tests/conformance/acs/``):

* Event Grid schema (``eventType``, ``data``) for what Event Grid delivers to the webhook:
  the subscription validation handshake and ``Microsoft.Communication.IncomingCall`` (Learn,
  ``event-grid/webhook-event-delivery``, ``event-grid/communication-services-voice-video-events``).
  The CloudEvents schema spells the type ``type``; both are read.
* CloudEvents 1.0 for the callbacks ACS posts to a call's ``callbackUri``: always a JSON array
  (the Python SDK's live-test recordings; the Learn examples), each event's ``data`` carrying the
  call's ids, ``resultInformation`` and, on the media-streaming events, ``mediaStreamingUpdate``.

A tolerant reader: fields the bridge does not need may be missing or of another type (older API
versions send no ``resultInformation`` on ``CallConnected`` or ``CallDisconnected``); only an
event without a ``data`` object is unusable. A bounded one: a body holding more events than
its sender ever sends is refused whole (``TooManyEventsError``), before any of them is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from callbridge.core.numbers import number_from_identifier

EVENT_PREFIX: Final = "Microsoft.Communication."
VALIDATION_EVENT: Final = "Microsoft.EventGrid.SubscriptionValidationEvent"
INCOMING_CALL_EVENT: Final = EVENT_PREFIX + "IncomingCall"

MAX_EVENTS_PER_DELIVERY: Final = 5000
"""Event Grid's own ceiling. It delivers one event per request unless the subscription turns on
batching, and then at most its "max events per batch", which must be between 1 and 5,000 and
"will never be exceeded" (Learn, ``event-grid/delivery-and-retry``, "Output batching"). A
bigger delivery is not from Event Grid."""

MAX_EVENTS_PER_CALLBACK: Final = 10
"""Not published. ACS posts each callback as an array of one CloudEvent in every Learn example
and SDK live-test recording (``tests/conformance/acs/SOURCES.md``); 10 leaves room for a
batching ACS has never documented, and bounds the work one request can ask for."""

TOO_MANY_FOR_EVENT_GRID: Final = (
    f"more than {MAX_EVENTS_PER_DELIVERY} events in one delivery: Event Grid sends no more"
)
TOO_MANY_FOR_ACS: Final = (
    f"more than {MAX_EVENTS_PER_CALLBACK} events in one callback: ACS sends one"
)


class AcsEventError(ValueError):
    """A body that holds no usable events; the message says why and holds no values."""


class TooManyEventsError(AcsEventError):
    """More events in one body than its sender ever puts there."""


@dataclass(frozen=True, slots=True)
class SubscriptionValidation:
    """Event Grid's handshake: echo ``validation_code`` to prove the webhook is ours."""

    validation_code: str


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A call ringing on one of the resource's numbers (or identities)."""

    incoming_call_context: str
    correlation_id: str
    dialed: str | None
    """The E.164 number called; None when the callee is not a phone number (an ACS user)."""
    caller: str | None
    """The caller's E.164 number; None when not a phone (anonymous, an ACS user)."""
    server_call_id: str | None


@dataclass(frozen=True, slots=True)
class OtherDelivery:
    """An event of a type the webhook does not act on, or one too malformed to act on."""

    event_type: str | None
    problem: str | None = None
    """Why it cannot be used, for an event of a known type; None when merely not ours."""


Delivery: TypeAlias = SubscriptionValidation | IncomingCall | OtherDelivery


@dataclass(frozen=True, slots=True)
class ResultInformation:
    """ACS's outcome of the operation an event reports."""

    code: int | None
    sub_code: int | None
    message: str | None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One Call Automation callback, as callbridge reads it."""

    name: str
    """The event type without ``Microsoft.Communication.``: ``CallConnected``..."""
    call_connection_id: str | None
    correlation_id: str | None
    server_call_id: str | None
    operation_context: str | None
    result: ResultInformation | None
    media_streaming_status: str | None
    """``mediaStreamingUpdate.mediaStreamingStatus`` (``mediaStreamingStarted``...)."""
    media_streaming_details: str | None
    version: str | None


def parse_deliveries(body: object) -> list[Delivery]:
    """An Event Grid delivery: an array of events (a single event object is read as one).
    Events that cannot be used come back as ``OtherDelivery`` with the problem.

    Raises:
        TooManyEventsError: more than ``MAX_EVENTS_PER_DELIVERY`` events.
    """
    return [
        parse_delivery(event)
        for event in _bounded(body, MAX_EVENTS_PER_DELIVERY, TOO_MANY_FOR_EVENT_GRID)
    ]


def parse_delivery(event: object) -> Delivery:
    """One event of an Event Grid delivery; one that cannot be used is an ``OtherDelivery``."""
    if not isinstance(event, Mapping):
        return OtherDelivery(None, "not an event object")
    event_type = _text(event, "eventType") or _text(event, "type")
    data = event.get("data")
    if not isinstance(data, Mapping):
        return OtherDelivery(event_type, "no data object")
    if event_type == VALIDATION_EVENT:
        code = _text(data, "validationCode")
        if code is None:
            return OtherDelivery(event_type, "no validationCode")
        return SubscriptionValidation(code)
    if event_type == INCOMING_CALL_EVENT:
        context = _text(data, "incomingCallContext")
        correlation_id = _text(data, "correlationId")
        if context is None or correlation_id is None:
            return OtherDelivery(event_type, "no incomingCallContext or correlationId")
        return IncomingCall(
            incoming_call_context=context,
            correlation_id=correlation_id,
            dialed=_number(data.get("to")),
            caller=_number(data.get("from")),
            server_call_id=_text(data, "serverCallId"),
        )
    return OtherDelivery(event_type)


def parse_callbacks(body: object) -> list[CallEvent]:
    """A callback POST: an array of CloudEvents (a single event object is read as one).

    Raises:
        TooManyEventsError: more than ``MAX_EVENTS_PER_CALLBACK`` events.
        AcsEventError: no CloudEvent in the body has a ``data`` object.
    """
    events = [
        _call_event(event)
        for event in _bounded(body, MAX_EVENTS_PER_CALLBACK, TOO_MANY_FOR_ACS)
        if isinstance(event, Mapping) and isinstance(event.get("data"), Mapping)
    ]
    if not events:
        raise AcsEventError("expected an array of CloudEvents with data")
    return events


def _call_event(event: Mapping[str, Any]) -> CallEvent:
    data: Mapping[str, Any] = event["data"]
    result = data.get("resultInformation")
    update = data.get("mediaStreamingUpdate")
    update = update if isinstance(update, Mapping) else {}
    return CallEvent(
        name=(_text(event, "type") or "").removeprefix(EVENT_PREFIX),
        call_connection_id=_text(data, "callConnectionId"),
        correlation_id=_text(data, "correlationId"),
        server_call_id=_text(data, "serverCallId"),
        operation_context=_text(data, "operationContext"),
        result=(
            ResultInformation(
                code=_integer(result, "code"),
                sub_code=_integer(result, "subCode"),
                message=_text(result, "message"),
            )
            if isinstance(result, Mapping)
            else None
        ),
        media_streaming_status=_text(update, "mediaStreamingStatus"),
        media_streaming_details=_text(update, "mediaStreamingStatusDetails"),
        version=_text(data, "version"),
    )


def _bounded(body: object, limit: int, reason: str) -> list[object]:
    events: list[object] = body if isinstance(body, list) else [body]
    if len(events) > limit:
        raise TooManyEventsError(reason)
    return events


def _number(identifier: object) -> str | None:
    return number_from_identifier(identifier) if isinstance(identifier, Mapping) else None


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def _integer(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
