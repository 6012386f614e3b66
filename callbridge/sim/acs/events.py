"""The event JSON ACS and Event Grid send, built exactly as documented (pure, no I/O).

Two schemas are in play:

* Event Grid schema (``eventType``, ``eventTime``, ``topic``, ``dataVersion``) for what Event
  Grid delivers to the app's webhook: the subscription validation event and
  ``Microsoft.Communication.IncomingCall``.
* CloudEvents 1.0 (``type``, ``time``, ``source``, ``specversion``) for the mid-call callbacks
  ACS posts to the ``callbackUri`` of a call: ``CallConnected``, ``MediaStreamingStarted``...

Shapes follow the real events recorded by the Python SDK's live tests and the Learn examples
(``tests/conformance/acs/``, checked against this module's output there), and the SDK's
generated models for each event's ``data``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from callbridge.sim.acs.payload import Identifier, phone_identifier
from callbridge.sim.acs.records import EVENT_PREFIX

INCOMING_CALL: Final = EVENT_PREFIX + "IncomingCall"
SUBSCRIPTION_VALIDATION: Final = "Microsoft.EventGrid.SubscriptionValidationEvent"


@dataclass(frozen=True, slots=True)
class ResultInformation:
    """``resultInformation`` of a callback: ACS's outcome code, sub-code and message."""

    code: int
    sub_code: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "subCode": self.sub_code, "message": self.message}


# resultInformation as recorded (azure-sdk-for-python callautomation tests/events, 2025-05-15):
# CallConnected and ParticipantsUpdated carry an empty message; the media-streaming events
# "Action completed successfully."; a normal CallDisconnected subCode 7000.
OK: Final = ResultInformation(200, 0, "Action completed successfully.")
CONNECTED: Final = ResultInformation(200, 0, "")
CALL_ENDED: Final = ResultInformation(200, 7000, "The conversation has ended. DiagCode: 0#7000.@")
MEDIA_SOCKET_FAILED: Final = ResultInformation(
    400, 8581, "Action failed, Transport url is not valid or web socket server is not operational."
)
"""What ACS reports when it cannot open the media WebSocket (python-quickstarts#60)."""
STREAM_UNSUCCESSFUL: Final = ResultInformation(
    500, 8603, "Action failed, not able to establish websocket connection."
)
"""``MediaStreamingFailed`` with ``streamConnectionUnsuccessful`` as recorded in the Java SDK's
tests (azure-sdk-for-java, azure-communication-callautomation,
``CallAutomationEventParserAndProcessorUnitTests.parseMediaStreamingFailedEvent``, 2024-05)."""
STREAM_INTERRUPTED: Final = ResultInformation(
    500, 0, "Media streaming connection interrupted (the stand-in's own result)."
)
"""ACS publishes no result for ``streamConnectionInterrupted``: the stand-in's own."""
TRANSFER_FAILED: Final = ResultInformation(500, 0, "Transfer failed (injected by the stand-in).")
"""The stand-in's own code: ACS's depend on why the transfer target failed."""
CALLEE_UNKNOWN: Final = ResultInformation(404, 0, "The callee could not be reached.")
CALLEE_NO_ANSWER: Final = ResultInformation(408, 0, "The callee did not answer.")
"""The stand-in's own codes for ``CreateCallFailed``, modelled on the SIP status of each case."""


def _now() -> datetime:
    return datetime.now(UTC)


def _event_grid_time() -> str:
    return _now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_validation_event(*, topic: str, validation_url: str) -> dict[str, Any]:
    """The event Event Grid POSTs when a webhook subscription is created or updated."""
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": "",
        "data": {"validationCode": str(uuid.uuid4()), "validationUrl": validation_url},
        "eventType": SUBSCRIPTION_VALIDATION,
        "eventTime": _event_grid_time(),
        "metadataVersion": "1",
        "dataVersion": "1",
    }


def incoming_call_event(
    *,
    topic: str,
    from_number: str,
    to_number: str,
    server_call_id: str,
    correlation_id: str,
    incoming_call_context: str,
    caller_display_name: str,
) -> dict[str, Any]:
    """``Microsoft.Communication.IncomingCall`` in the Event Grid schema, keyed as Learn's
    example and the SDK's 2025 recording (which have no ``customContext``)."""
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": f"/caller/4:{from_number}/recipient/4:{to_number}",
        "data": {
            "to": phone_identifier(to_number),
            "from": phone_identifier(from_number),
            "serverCallId": server_call_id,
            "callerDisplayName": caller_display_name,
            "incomingCallContext": incoming_call_context,
            "correlationId": correlation_id,
        },
        "eventType": INCOMING_CALL,
        "eventTime": _event_grid_time(),
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }


@dataclass(frozen=True, slots=True)
class CallIds:
    """The ids every callback of a call carries."""

    call_connection_id: str
    server_call_id: str
    correlation_id: str


def callback_event(
    name: str,
    ids: CallIds,
    *,
    version: str,
    operation_context: str | None,
    result: ResultInformation = OK,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One CloudEvent for the call's callback URI.

    Args:
        name: the type without its prefix, e.g. ``CallConnected``.
        ids: the call's ids.
        version: ``data.version``. Each recording carries the Call Automation api-version its
            SDK called with (2023-10-03-preview ... 2025-05-15), so the stand-in echoes the
            api-version of the call's answer or create request.
        operation_context: echoed from the request that caused the event; absent when the
            request set none, as recorded.
        result: ``resultInformation``.
        extra: event-specific ``data`` keys (``mediaStreamingUpdate``, ``participants``...).
    """
    event_type = EVENT_PREFIX + name
    source = f"calling/callConnections/{ids.call_connection_id}"
    data: dict[str, Any] = {**(extra or {})}
    if operation_context is not None:
        data["operationContext"] = operation_context
    data |= {
        "version": version,
        "resultInformation": result.to_json(),
        "callConnectionId": ids.call_connection_id,
        "serverCallId": ids.server_call_id,
        "correlationId": ids.correlation_id,
        "publicEventType": event_type,
    }
    return {
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "data": data,
        # Seven decimals and an offset, as ACS writes it: 2025-05-06T16:31:49.4325356+00:00.
        "time": _now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "subject": source,
    }


def participants_update(participants: Sequence[Identifier], sequence_number: int) -> dict[str, Any]:
    """The ``participants`` and ``sequenceNumber`` of ``ParticipantsUpdated``."""
    return {
        "participants": [
            {"identifier": identifier.to_json(), "isMuted": False, "isOnHold": False}
            for identifier in participants
        ],
        "sequenceNumber": sequence_number,
    }


def media_streaming_update(status: str, details: str) -> dict[str, Any]:
    """The ``mediaStreamingUpdate`` of the ``MediaStreaming*`` events."""
    return {
        "mediaStreamingUpdate": {
            "contentType": "Audio",
            "mediaStreamingStatus": status,
            "mediaStreamingStatusDetails": details,
        }
    }


def transfer_details(target: Identifier, transferee_number: str) -> dict[str, Any]:
    """``transferTarget`` and ``transferee`` of ``CallTransferAccepted``."""
    return {"transferTarget": target.to_json(), "transferee": phone_identifier(transferee_number)}
