"""Voice Live conformance: server events as callbridge reads them.

Every documented server event (``voicelive/*.json``, sources in ``voicelive/SOURCES.md``) becomes
the SDK's typed class, and the bridge reads the very fields it acts on, as it reads them; where
the reference leaves a field out that the service sends (a tool call's ``name``), the bridge reads
it from elsewhere. The emulator's checks and callbridge's own ``session.update`` are in
``test_voicelive``; what the emulator sends, in ``test_voicelive_emulator_shapes``.
"""

from __future__ import annotations

import json
from typing import Any, Final, cast

import pytest
from azure.ai.voicelive import models
from azure.ai.voicelive.models import (
    ServerEvent,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventResponseAudioDone,
    ServerEventResponseAudioTranscriptDone,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventSessionUpdated,
)
from structlog.testing import capture_logs

from callbridge.adapters.voice_events import (
    AUDIO_DELTA,
    MODELLED,
    TRANSCRIPT_DELTA,
    AudioDelta,
    OtherEvent,
    TranscriptDelta,
    read_event,
)
from callbridge.adapters.voice_live import SESSION_UPDATE_EVENT_ID
from callbridge.bridge import actions, agent_pump, voice_session
from callbridge.bridge.actions import AgentActions
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core.call_context import CallContext
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import END_CALL
from tests.conformance import voicelive_support as vl


@pytest.mark.parametrize("name", vl.corpus("server_"))
def test_the_sdk_types_every_documented_server_event(name: str) -> None:
    event = vl.deserialize(name)
    class_name = "ServerEvent" + "".join(
        part.capitalize() for part in event.type.replace(".", "_").split("_")
    )
    expected = getattr(models, class_name, None)
    if event.type == "rate_limits.updated":  # unknown to SDK 1.3.1: a bare ServerEvent
        assert (expected, type(event)) == (None, ServerEvent)
    else:
        assert type(event) is expected


def bridge_reads(event: ServerEvent) -> dict[str, object]:
    """The fields callbridge reads from an event it acts on, read as it reads them
    (``bridge/call.py`` ``_on_event``/``_on_error``, ``bridge/actions.py`` ``on_tool_call``).
    Copied from those, so a change to what the bridge reads must be made here too."""
    match event:
        case ServerEventResponseAudioDone():
            return {"item_id": text(event.item_id), "content_index": integer(event.content_index)}
        case ServerEventResponseCreated() | ServerEventResponseDone():
            return {"response.id": text(event.response.id)}
        case ServerEventResponseFunctionCallArgumentsDone():
            arguments = event.arguments if isinstance(event.arguments, str) else ""
            return {
                "call_id": text(event.call_id),
                "name": text(event.name),
                "arguments": arguments,
                "response_id": text(event.response_id),
            }
        case (
            ServerEventResponseAudioTranscriptDone()
            | ServerEventConversationItemInputAudioTranscriptionCompleted()
        ):
            return {"item_id": text(event.item_id), "transcript": text(event.transcript)}
        case ServerEventConversationItemTruncated():  # logged as they come
            return {"item_id": event.item_id, "audio_end_ms": event.audio_end_ms}
        case ServerEventError():
            fields = ("type", "code", "message", "param", "event_id")
            return {field: getattr(event.error, field, None) for field in fields}
        case ServerEventInputAudioBufferSpeechStarted() | ServerEventSessionUpdated():
            return {}  # acted on (barge-in; the greeting) without reading a field
    raise AssertionError(f"callbridge does not act on {event.type}")


_TRANSCRIPT = "Hello! I'm doing well, thank you for asking. How can I help you today?"
BRIDGE_READS: Final[dict[str, dict[str, object]]] = {
    "server_input_audio_buffer.speech_started.reference.json": {},
    "server_session.updated.reference.json": {},
    "server_response.audio.done.reference.json": {"item_id": "item_DEF456", "content_index": 0},
    # Placeholder ids ("<item_id>") are still strings: what matters is that they read.
    "server_response.audio.done.reference.placeholder.json": {
        "item_id": "<item_id>",
        "content_index": 0,
    },
    "server_response.created.reference.json": {"response.id": "resp_ABC123"},
    "server_response.done.reference.json": {"response.id": "resp_ABC123"},
    "server_response.audio_transcript.done.reference.json": {
        "item_id": "item_DEF456",
        "transcript": _TRANSCRIPT,
    },
    "server_response.audio_transcript.done.reference.placeholder.json": {
        "item_id": "<item_id>",
        "transcript": "<transcript>",
    },
    "server_conversation.item.input_audio_transcription.completed.reference.json": {
        "item_id": "<item_id>",
        "transcript": "<transcript>",
    },
    "server_conversation.item.truncated.reference.json": {
        "item_id": "<item_id>",
        "audio_end_ms": 0,
    },
    # No error.type in REF's example (see CORPUS_EXCEPTIONS): the bridge logs None for it.
    "server_error.reference.json": {
        "type": None,
        "code": "<code>",
        "message": "<message>",
        "param": "<param>",
        "event_id": "<event_id>",
    },
}
"""What callbridge reads from each documented example of an event it acts on. The audio deltas
and the function call are tested on their own below."""


@pytest.mark.parametrize("name", sorted(BRIDGE_READS))
def test_the_bridge_reads_the_documented_event(name: str) -> None:
    assert bridge_reads(vl.deserialize(name)) == BRIDGE_READS[name]


@pytest.mark.parametrize("name", vl.corpus("server_"))
def test_the_session_reader_models_only_the_events_whose_fields_the_bridge_reads(
    name: str,
) -> None:
    payload = vl.load(name)
    event = read_event(json.dumps(payload))
    kind = payload["type"]
    if kind in (AUDIO_DELTA, TRANSCRIPT_DELTA):
        assert isinstance(event, AudioDelta | TranscriptDelta)
    elif kind in MODELLED:
        assert type(event) is type(vl.deserialize(name))
    else:
        assert event == OtherEvent(kind)


def test_every_event_the_bridge_reads_fields_of_is_modelled() -> None:
    """The events of ``BRIDGE_READS``, and every SDK event class the modules that handle events
    name (to match an event against, or to read it as), come through the models."""
    read = {vl.load(name)["type"] for name in BRIDGE_READS}
    type_of = {cast(type, cls): kind for kind, cls in ServerEvent.__mapping__.items()}
    named = {
        type_of[value]
        for module in (agent_pump, actions, voice_session)
        for value in vars(module).values()
        if isinstance(value, type) and value in type_of
    }
    assert "response.done" in named  # the scan finds what the pump matches
    assert read | named <= MODELLED


def test_the_documented_transcript_delta_is_read_without_the_sdks_models() -> None:
    # As the session reader reads it (``adapters.voice_events``); the bridge takes the item and
    # the text (``agent_pump``: ``context.agent_said``).
    frame = json.dumps(vl.load("server_response.audio_transcript.delta.reference.json"))
    event = read_event(frame)
    assert isinstance(event, TranscriptDelta)
    assert (event.type, text(event.item_id), text(event.delta)) == (
        "response.audio_transcript.delta",
        "item_DEF456",
        "Hello! I'm doing",
    )
    sdk = vl.deserialize("server_response.audio_transcript.delta.reference.json")
    assert isinstance(sdk, models.ServerEventResponseAudioTranscriptDelta)
    assert (sdk.item_id, sdk.delta) == (event.item_id, event.delta)


def test_a_documented_error_does_not_pass_for_a_refused_session() -> None:
    """Only an error naming callbridge's session.update ends the call."""
    assert BRIDGE_READS["server_error.reference.json"]["event_id"] != SESSION_UPDATE_EVENT_ID


def test_the_bridge_names_a_tool_call_from_its_item_when_the_done_event_leaves_it_out() -> None:
    """REF's ``response.function_call_arguments.done`` has no ``name`` (example and field table);
    SDK 1.3.1 requires it and its live test reads it. ``AgentActions`` itself takes the name from
    the function-call item the response announced (``response.output_item.added``, REF's
    function-call item table); with neither, the event is malformed."""
    done = vl.load("server_response.function_call_arguments.done.reference.json")
    added = {
        **vl.load("server_response.output_item.added.reference.json"),
        "item": {
            "id": done["item_id"],
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": done["call_id"],
            "name": END_CALL.name,
            "arguments": "",
        },
    }
    unused = cast(Any, None)  # on_tool_call reaches neither the sockets nor the pacer
    actions = AgentActions(
        acs=unused,
        voice=unused,
        context=CallContext(),
        profile=AgentProfile(instructions="Be brief.", tools=(END_CALL.name,)),
        tools={END_CALL.name: END_CALL},
        call=unused,
        pacer=unused,
        codec=unused,
        interruption=unused,
        responses=unused,
        stats=CallStats(),
        helpers=OwnedTasks(),
        recorder=None,
    )
    with pytest.raises(TypeError, match="expected a string, got NoneType"):
        actions.on_tool_call(
            cast(ServerEventResponseFunctionCallArgumentsDone, vl.deserialize(done))
        )
    item_added = vl.deserialize(added)
    assert isinstance(item_added, models.ServerEventResponseOutputItemAdded)
    assert isinstance(item_added.item, models.ResponseFunctionCallItem)
    actions.on_function_call_item(item_added.item)
    with capture_logs() as logs:
        actions.on_tool_call(
            cast(ServerEventResponseFunctionCallArgumentsDone, vl.deserialize(done))
        )
    assert [(log["event"], log["tool"], log["call_id"]) for log in logs] == [
        ("agent.tool_call", "end_call", "<call_id>")
    ]
    # With "name", as the service sends it, the bridge reads it as it comes.
    assert bridge_reads(vl.deserialize({**done, "name": END_CALL.name}))["name"] == "end_call"


def test_rate_limits_updated_reaches_the_bridge_as_an_event_it_ignores() -> None:
    event = vl.deserialize("server_rate_limits.updated.reference.json")
    with pytest.raises(AssertionError, match=r"does not act on rate_limits\.updated"):
        bridge_reads(event)


async def test_the_bridge_plays_the_documented_audio_delta_and_refuses_the_placeholder() -> None:
    """``AgentAudio.on_delta`` itself: REF's delta (a 44-byte WAV header in base64, played as
    g711 bytes) is 5.5 ms of audio of item_DEF456; the placeholder "<delta>" is no base64."""

    async def send(_: str) -> None:
        raise AssertionError("the pacer is not running")

    codec = make_codec("g711_ulaw", 16000)
    pacer = FramePacer(send, lead_ms=40, playout_delay_ms=60)
    responses = Responses(cast(VoiceLink, None))  # not used to read deltas
    stats = CallStats()
    audio = AgentAudio(
        codec=codec,
        pacer=pacer,
        responses=responses,
        stats=stats,
        telemetry=None,
        started_at=0.0,
    )
    event = read_event(json.dumps(vl.load("server_response.audio.delta.reference.json")))
    assert isinstance(event, AudioDelta)  # read as the session reader reads it
    audio.on_delta(event)
    assert responses.item_response == {"item_DEF456": "resp_ABC123"}
    assert responses.received_ms == {("item_DEF456", 0): 44 / 8}
    assert stats.agent_audio_ms == 44 / 8
    audio.end_of_item(("item_DEF456", 0))  # as response.audio.done: the short tail is queued
    assert pacer.core.queued_frames == 1
    placeholder = read_event(
        json.dumps(vl.load("server_response.audio.delta.reference.placeholder.json"))
    )
    assert isinstance(placeholder, AudioDelta)
    with pytest.raises(ValueError, match="no base64 audio"):
        audio.on_delta(placeholder)
