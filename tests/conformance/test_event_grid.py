"""Event Grid deliveries: callbridge reads the documented ones (Learn, in ``acs/``) and the real
IncomingCall data the SDK's live tests recorded; the ACS stand-in delivers the same shape."""

from __future__ import annotations

import copy

from callbridge.core.acs_events import (
    IncomingCall,
    OtherDelivery,
    SubscriptionValidation,
    parse_deliveries,
)
from callbridge.sim.acs import AcsStandin
from callbridge.sim.acs.events import subscription_validation_event
from callbridge.sim.harness import LocalStack
from callbridge.web.webhook import SECRET_HEADER
from tests.conformance.corpus import load, shape_differences


def test_the_documented_incoming_call_is_read() -> None:
    """Learn's example: an ACS user calling an ACS user, so no phone number either side."""
    body = load("acs/eventgrid_IncomingCall.learn.json")
    data = body[0]["data"]
    assert parse_deliveries(body) == [
        IncomingCall(
            incoming_call_context=data["incomingCallContext"],
            correlation_id="d732db64-4803-462d-be9c-518943ea2b7a",
            dialed=None,
            caller=None,
            server_call_id=data["serverCallId"],
        )
    ]


def test_a_phone_call_is_routed_by_the_number_in_its_identifier() -> None:
    """The same event for a phone call: ``to`` and ``from`` as phoneNumber identifiers, shaped
    as the PSTN recording's participants."""
    body = load("acs/eventgrid_IncomingCall.learn.json")
    pstn = load("acs/callback_ParticipantsUpdated.2023-10-03-preview.pstn.sdk_recording.json")
    [phone] = [
        p["identifier"] for p in pstn["data"]["participants"] if "phoneNumber" in p["identifier"]
    ]
    body[0]["data"]["to"] = phone
    body[0]["data"]["from"] = copy.deepcopy(phone) | {
        "rawId": "4:+14255550123",
        "phoneNumber": {"value": "+14255550123"},
    }
    [call] = parse_deliveries(body)
    assert isinstance(call, IncomingCall)
    assert (call.dialed, call.caller) == ("+18662315126", "+14255550123")


def test_the_recorded_incoming_call_data_is_read() -> None:
    """The live tests' dispatcher kept only the event's data; wrapped as Event Grid sends it."""
    data = load("acs/eventgrid_IncomingCall-data.sdk_recording.json")
    event = {"eventType": "Microsoft.Communication.IncomingCall", "data": data}
    [call] = parse_deliveries([event])
    assert isinstance(call, IncomingCall)
    assert call.correlation_id == data["correlationId"]
    assert call.incoming_call_context == "REDACTED"  # redacted by the SDK team, still a string


def test_the_documented_validation_handshake_is_read() -> None:
    body = load("acs/eventgrid_SubscriptionValidationEvent.learn.json")
    response = load("acs/eventgrid_SubscriptionValidationResponse.learn.json")
    assert parse_deliveries(body) == [SubscriptionValidation(response["validationResponse"])]


def test_unknown_and_broken_events_are_told_apart() -> None:
    body = [{"eventType": "Microsoft.Communication.CallEnded", "data": {}}, {"eventType": "x"}, 7]
    assert parse_deliveries(body) == [
        OtherDelivery("Microsoft.Communication.CallEnded"),
        OtherDelivery("x", "no data object"),
        OtherDelivery(None, "not an event object"),
    ]


async def test_the_webhook_answers_the_documented_handshake() -> None:
    """Through callbridge's own webhook: 200 with the code echoed (Learn: 202 is not accepted)."""
    body = load("acs/eventgrid_SubscriptionValidationEvent.learn.json")
    async with LocalStack() as local:
        delivered = await local.acs.deliver(
            local.webhook_url,
            body,
            headers={SECRET_HEADER: local.webhook_secret},
        )
    assert (delivered.status, delivered.body) == (
        200,
        load("acs/eventgrid_SubscriptionValidationResponse.learn.json"),
    )


async def test_the_acs_standin_delivers_the_documented_shapes() -> None:
    """The stand-in's IncomingCall and validation events have the documented keys and types
    (its phone identifiers those of the PSTN recording)."""
    standin = AcsStandin()
    call = standin.incoming_call(to_number="+18005550100")
    assert call.incoming_event is not None
    ours = copy.deepcopy(call.incoming_event)
    real = load("acs/eventgrid_IncomingCall.learn.json")[0]
    pstn = load("acs/callback_ParticipantsUpdated.2023-10-03-preview.pstn.sdk_recording.json")
    [phone] = [
        p["identifier"] for p in pstn["data"]["participants"] if "phoneNumber" in p["identifier"]
    ]
    real["data"]["to"] = real["data"]["from"] = phone
    assert shape_differences(real, ours) == []
    validation = subscription_validation_event(topic="t", validation_url="https://x/validate")
    documented = load("acs/eventgrid_SubscriptionValidationEvent.learn.json")[0]
    assert shape_differences(documented, validation) == []
