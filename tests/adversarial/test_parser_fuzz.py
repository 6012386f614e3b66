"""The three parsers that read what others send, fuzzed: no input raises anything but the
parser's own error type.

- ACS media messages (``core.acs_media.parse``): ``WireError`` only.
- Event Grid deliveries and Call Automation callbacks (``core.acs_events``), given whatever
  ``request.json()`` can return: ``parse_deliveries`` never raises (an unusable event is an
  ``OtherDelivery`` saying why), ``parse_callbacks`` raises ``AcsEventError`` only.
- Voice Live server events, read as the bridge reads them (``adapters.voice_events.read_event``:
  a delta by callbridge, the rest by the SDK's models), whose errors on a frame it cannot read
  are ``bridge.voice_session.UNREADABLE_FRAME_ERRORS`` (the SDK's ``ConnectionError`` among
  them; the ``AttributeError`` the SDK's ``recv`` raised on JSON that is not an object was found
  here); then the fields the bridge acts on, read through ``bridge.event_fields``
  (``TypeError``).

Inputs are shapeless (any text, bytes or JSON) and near-valid: the real messages of the
conformance corpus (tests/conformance/) with a few of their fields replaced by values of any
type, deleted, recased or joined by others, which is where a reader that trusts a field breaks.
Derandomized and bounded to a few seconds, so CI sees the same examples every run.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callbridge.adapters.voice_events import AudioDelta, OtherEvent, TranscriptDelta, read_event
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.voice_session import UNREADABLE_FRAME_ERRORS
from callbridge.core import acs_events, acs_media
from tests.conformance.corpus import HERE as CORPUS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- Values and mutations ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
PHONE = {"kind": "phoneNumber", "rawId": "4:+18005550100", "phoneNumber": {"value": "+18005550100"}}
field_values = (
    json_values
    | st.binary(max_size=64).map(lambda data: base64.b64encode(data).decode())
    | st.sampled_from(["", "4:+18005550100", "phoneNumber", "PCM", "completed", "pound", PHONE])
)
"""What a mutation puts in a field: anything, and values each reader looks for."""


def _objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object in ``value``, itself included."""
    if isinstance(value, dict):
        return [value, *(found for item in value.values() for found in _objects(item))]
    if isinstance(value, list):
        return [found for item in value for found in _objects(item)]
    return []


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Any]) -> Any:
    """One of ``seeds`` with up to four of its fields replaced, deleted, recased or added."""
    message = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(_objects(message) or [{}]))
        key = draw(st.sampled_from(sorted(target)) if target else st.text(max_size=10))
        match draw(st.sampled_from(["replace", "delete", "recase", "add"])):
            case "replace":
                target[key] = copy.deepcopy(draw(field_values))
            case "delete":
                target.pop(key, None)
            case "recase":
                target[draw(st.sampled_from([key.upper(), key.lower(), key.title()]))] = target.pop(
                    key, None
                )
            case "add":
                target[draw(st.text(max_size=10))] = copy.deepcopy(draw(field_values))
    return message


def corpus(pattern: str) -> list[Any]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(CORPUS.glob(pattern))]


def frames(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[str | bytes]:
    """``messages`` as JSON text, or any text, bytes or JSON at all."""
    return (
        messages.map(json.dumps)
        | st.text(max_size=200)
        | st.binary(max_size=200)
        | json_values.map(json.dumps)
    )


# --- ACS media --------------------------------------------------------------------------------

MEDIA_SEEDS = corpus("acs/media_[ADM]*.json")
"""Every inbound media message in the corpus (``media_out_*`` are the bridge's own)."""


@FUZZ
@given(frames(mutated(MEDIA_SEEDS)))
def test_acs_media_parse_raises_only_wire_error(frame: str | bytes) -> None:
    with contextlib.suppress(acs_media.WireError):
        acs_media.parse(frame)


# --- Event Grid and Call Automation -----------------------------------------------------------

DELIVERY_SEEDS = [
    *(
        event
        for batch in corpus("acs/eventgrid_SubscriptionValidationEvent.learn.json")
        for event in batch
    ),
    *(event for batch in corpus("acs/eventgrid_IncomingCall.learn.json") for event in batch),
    *(
        {"eventType": acs_events.INCOMING_CALL_EVENT, "data": data}
        for data in corpus("acs/eventgrid_IncomingCall-data.*.json")
    ),
]
"""Single events: a delivery is a list of them."""
CALLBACK_SEEDS = corpus("acs/callback_*.json")


def deliveries(seeds: list[Any]) -> st.SearchStrategy[object]:
    """What ``request.json()`` may hand over: a batch of near-valid events, a lone one, or any
    JSON."""
    events = mutated(seeds)
    return st.lists(events | json_values, max_size=4) | events | json_values


@FUZZ
@given(deliveries(DELIVERY_SEEDS))
def test_event_grid_deliveries_never_raise(body: object) -> None:
    for delivery in acs_events.parse_deliveries(body):
        assert isinstance(
            delivery,
            acs_events.SubscriptionValidation | acs_events.IncomingCall | acs_events.OtherDelivery,
        )


@FUZZ
@given(deliveries(CALLBACK_SEEDS))
def test_callbacks_raise_only_acs_event_error(body: object) -> None:
    with contextlib.suppress(acs_events.AcsEventError):
        acs_events.parse_callbacks(body)


# --- Voice Live -------------------------------------------------------------------------------

SERVER_SEEDS = corpus("voicelive/server_*.json")
BRIDGE_READS = (
    ("item_id", text),
    ("delta", text),
    ("transcript", text),
    ("content_index", integer),
)
"""Fields the bridge acts on, and how it reads them (``bridge.agent_pump``, ``agent_audio``)."""


@FUZZ
@given(frames(mutated(SERVER_SEEDS)))
def test_voice_live_events_raise_only_the_readers_errors(frame: str | bytes) -> None:
    try:
        event = read_event(frame)  # as the session reader reads each frame
    except UNREADABLE_FRAME_ERRORS:
        return
    # What every event is asked before it is handed on (``VoiceLink``): its type, its fields.
    str(event.type)
    for field, read in BRIDGE_READS:
        value = (
            getattr(event, field, None)
            if isinstance(event, AudioDelta | TranscriptDelta | OtherEvent)
            else event.get(field)
        )
        with contextlib.suppress(TypeError):
            read(value)


def test_every_kind_of_message_is_seeded() -> None:
    """The corpus gives each fuzzer the messages it starts from (a renamed folder would
    otherwise leave only shapeless inputs)."""
    kinds = {
        value for message in MEDIA_SEEDS for key, value in message.items() if key.lower() == "kind"
    }
    assert {"AudioData", "AudioMetadata", "DtmfData", "MarkData"} <= kinds
    types = {event.get("eventType") for event in DELIVERY_SEEDS}
    assert {acs_events.VALIDATION_EVENT, acs_events.INCOMING_CALL_EVENT} <= types
    assert len(CALLBACK_SEEDS) > 10
    assert len(SERVER_SEEDS) > 20
