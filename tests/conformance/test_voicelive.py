"""Voice Live conformance: callbridge against the documented payloads.

The corpus (``voicelive/*.json``, sources in ``voicelive/SOURCES.md``) holds the API reference
2026-07-15's examples (REF, pinned in ``voicelive_support.REFERENCE``), the how-to's (HOWTO,
voice-live-how-to.md @ 00bb5540) and those of Microsoft's ACS accelerator sample. Here:

* server events as callbridge reads them: the SDK's typed class, and the very fields the bridge
  reads, read as it reads them;
* the emulator's strictness is not stricter than reality: every documented example passes the
  emulator's check (``callbridge.sim.validate``) but for the rows of ``CORPUS_EXCEPTIONS``, each
  with its reason and source; the table must match exactly what fails;
* callbridge's own ``session.update`` only says what the documentation says a client may say,
  and callbridge and the emulator agree with REF's transcription-model table.

What the emulator sends is checked against the same corpus in ``test_voicelive_emulator_shapes``.
"""

from __future__ import annotations

from typing import Final, cast

import pytest
from azure.ai.voicelive import models
from azure.ai.voicelive.aio import VoiceLiveConnection
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

from callbridge.adapters.voice_live import SESSION_UPDATE_EVENT_ID, session_request
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.core import session_rules
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile, VoiceLiveAgent
from callbridge.sim.validate import validate_client_event, validate_server_event
from callbridge.sim.voicelive import DOCUMENTED_BEYOND_SDK
from callbridge.sim.voicelive.protocol import transcription_models
from callbridge.tools import END_CALL
from tests.conformance import voicelive_support as vl

_LACKS = "REF documents it, SDK 1.3.1's model lacks it"
_REQUIRES = "SDK 1.3.1 requires it, the documented example omits it"
CORPUS_EXCEPTIONS: Final[dict[tuple[str, str], str]] = {
    # --- Server events: what the emulator's own check of what it sends would refuse.
    (
        "server_conversation.item.created.reference.audio_item.json",
        "conversation.item.created: item.content[0].audio: required field is null",
    ): f'{_REQUIRES} non-null: REF RealtimeInputAudioContentPart "audio | Optional"',
    (
        "server_conversation.item.retrieved.reference.json",
        "conversation.item.retrieved: item.content[0].audio: "
        "unknown field for ResponseAudioContentPart",
    ): f'{_LACKS}: REF RealtimeOutputAudioContentPart "audio | Base64-encoded audio data"',
    (
        "server_error.reference.json",
        "error: error.type: required field missing",
    ): f"{_REQUIRES}: REF's only error example lacks type, its field table lists it",
    (
        "server_rate_limits.updated.reference.json",
        "rate_limits.updated: unknown ServerEvent type",
    ): "REF documents the event; SDK 1.3.1's ServerEventType has no such member",
    (
        "server_response.audio.delta.reference.placeholder.json",
        "response.audio.delta: delta: invalid base64",
    ): 'placeholder: REF\'s second response.audio.delta section has "delta": "<delta>"',
    (
        "server_response.audio_timestamp.done.howto.json",
        "response.audio_timestamp.done: output_index: required field missing",
    ): f"{_REQUIRES}: HOWTO's example is abridged, REF's carries it",
    (
        "server_response.audio_timestamp.done.howto.json",
        "response.audio_timestamp.done: content_index: required field missing",
    ): f"{_REQUIRES}: HOWTO's example is abridged, REF's carries it",
    (
        "server_response.created.reference.json",
        "response.created: response.usage.input_token_details: required field missing",
    ): f"{_REQUIRES}: REF RealtimeUsage lists it",
    (
        "server_response.created.reference.json",
        "response.created: response.usage.output_token_details: required field missing",
    ): f"{_REQUIRES}: REF RealtimeUsage lists it",
    (
        "server_response.done.reference.json",
        "response.done: response.usage.input_token_details.image_tokens: required field missing",
    ): f"{_REQUIRES}: not in REF TokenDetails at all",
    (
        "server_response.done.reference.json",
        "response.done: response.usage.input_token_details.cached_tokens_details: "
        "required field missing",
    ): f"{_REQUIRES}: not in REF TokenDetails at all",
    (
        "server_response.function_call_arguments.done.reference.json",
        "response.function_call_arguments.done: name: required field missing",
    ): f"{_REQUIRES}, and REF's table too; the SDK's live test (tests/live/"
    'test_live_realtime_basic.py @ a7b5972d) asserts .name == "get_weather": the service sends it',
    (
        "server_session.created.reference.json",
        "session.created: session.object: unknown field for ResponseSession",
    ): f'{_LACKS}: REF RealtimeResponseSession "object | Allowed values: realtime.session"',
    # --- Client events: what the emulator refuses unless allow_unknown_client_fields is set.
    (
        "client_response.create.reference.json",
        "response.create: response.max_response_output_tokens: "
        "unknown field for ResponseCreateParams",
    ): f"{_LACKS} (REF RealtimeResponseOptions); SDK 1.3.1 calls it max_output_tokens",
    (
        "client_session.update.autotruncation.appended_text.json",
        "session.update: session.turn_detection.appended_text_after_truncation: "
        "unknown field for AzureSemanticVad",
    ): "how-to-voice-live-auto-truncation.md @ 1015da19 documents it; not in REF, nor SDK 1.3.1",
    (
        "client_session.update.howto.gpt4o_transcribe_fragment.json",
        "session.update: session.input_audio_transcription.prompt: "
        "unknown field for AudioInputTranscriptionOptions",
    ): f'{_LACKS}: REF RealtimeAudioInputTranscriptionSettings "prompt | string"',
    (
        "client_session.update.sample-acs-accelerator.json",
        "session.update: session.turn_detection.end_of_utterance_detection.threshold: "
        "unknown field for AzureSemanticDetection",
    ): "legacy EOU field of the accelerator (api-version 2025-05-01-preview); REF: threshold_level",
    (
        "client_session.update.sample-acs-accelerator.json",
        "session.update: session.turn_detection.end_of_utterance_detection.timeout: "
        "unknown field for AzureSemanticDetection",
    ): "legacy EOU field of the accelerator (api-version 2025-05-01-preview); REF: timeout_ms",
}
"""Documented examples the emulator's strict check (``callbridge.sim.validate``) refuses."""


def exceptions_of(name: str) -> set[str]:
    return {violation for file, violation in CORPUS_EXCEPTIONS if file == name}


# ============================================================================================
# 1. Server events as callbridge reads them
# ============================================================================================


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
    (``bridge/call.py`` ``_on_event``/``_on_error``, ``bridge/actions.py`` ``on_tool_call``)."""
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


def test_a_documented_error_does_not_pass_for_a_refused_session() -> None:
    """Only an error naming callbridge's session.update ends the call."""
    assert BRIDGE_READS["server_error.reference.json"]["event_id"] != SESSION_UPDATE_EVENT_ID


def test_the_bridge_reads_a_tool_call_only_with_the_name_the_reference_leaves_out() -> None:
    """REF's example has no ``name``; the bridge cannot tell which tool was called without it,
    so such an event is counted malformed. The real service sends it (CORPUS_EXCEPTIONS)."""
    name = "server_response.function_call_arguments.done.reference.json"
    with pytest.raises(TypeError, match="expected a string, got NoneType"):
        bridge_reads(vl.deserialize(name))
    event = vl.deserialize({**vl.load(name), "name": END_CALL.name})
    assert bridge_reads(event) == {
        "call_id": "<call_id>",
        "name": "end_call",
        "arguments": "<arguments>",  # a placeholder, not JSON: the tool gets an error result
        "response_id": "<response_id>",
    }


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
    responses = Responses(cast(VoiceLiveConnection, None))  # not used to read deltas
    stats = CallStats()
    audio = AgentAudio(
        codec=codec,
        pacer=pacer,
        responses=responses,
        stats=stats,
        telemetry=None,
        keep_pcm=False,
        started_at=0.0,
    )
    event = vl.deserialize("server_response.audio.delta.reference.json")
    assert isinstance(event, models.ServerEventResponseAudioDelta)
    audio.on_delta(event)
    assert responses.item_response == {"item_DEF456": "resp_ABC123"}
    assert responses.received_ms == {("item_DEF456", 0): 44 / 8}
    assert stats.agent_audio_ms == 44 / 8
    audio.end_of_item(("item_DEF456", 0))  # as response.audio.done: the short tail is queued
    assert pacer.core.queued_frames == 1
    placeholder = vl.deserialize("server_response.audio.delta.reference.placeholder.json")
    assert isinstance(placeholder, models.ServerEventResponseAudioDelta)
    with pytest.raises(ValueError, match="no base64 audio"):
        audio.on_delta(placeholder)


# ============================================================================================
# 2. The emulator's check is not stricter than the documentation
# ============================================================================================


@pytest.mark.parametrize("name", vl.corpus("server_"))
def test_documented_server_event_passes_the_emulators_check(name: str) -> None:
    assert set(validate_server_event(vl.load(name))) == exceptions_of(name)


@pytest.mark.parametrize("name", vl.corpus("client_"))
def test_documented_client_event_passes_the_emulators_check(name: str) -> None:
    assert set(validate_client_event(vl.client_event(name))) == exceptions_of(name)


def test_every_exception_names_a_corpus_file() -> None:
    assert {name for name, _ in CORPUS_EXCEPTIONS} <= set(vl.corpus(""))


def test_the_emulator_option_for_unknown_client_fields_admits_every_documented_one() -> None:
    """``VoiceLiveEmulator(allow_unknown_client_fields=True)`` takes every documented client
    example: all their exceptions are fields SDK 1.3.1 does not know."""
    for name in vl.corpus("client_"):
        assert validate_client_event(vl.client_event(name), allow_unknown_fields=True) == [], name


def test_the_emulator_relaxes_its_check_only_for_documented_shapes() -> None:
    """Each shape the emulator sends against SDK 1.3.1 (``DOCUMENTED_BEYOND_SDK``) is one a
    documented example has too."""
    documented = {v.partition(": ")[2] for (name, v) in CORPUS_EXCEPTIONS if "server_" in name}
    assert documented >= DOCUMENTED_BEYOND_SDK


# ============================================================================================
# 4. callbridge's session.update says only what the documentation lets a client say
# ============================================================================================


def documented_session_paths() -> dict[str, set[str]]:
    """Paths and JSON types of every documented session.update example and REF's table."""
    found = {path: set(types) for path, types in vl.REQUEST_SESSION_TABLE.items()}
    for name in vl.corpus("client_session.update"):
        for path, types in vl.path_types(vl.client_event(name)["session"]).items():
            found.setdefault(path, set()).update(types)
    return found


SESSIONS: Final = {
    "model": (AgentProfile(instructions="Be brief.", tools=(END_CALL.name,)), "gpt-realtime"),
    "agent": (AgentProfile(agent=VoiceLiveAgent("helper", "callcenter")), None),
}


@pytest.mark.parametrize("kind", sorted(SESSIONS))
def test_callbridge_session_update_uses_only_documented_keys(kind: str) -> None:
    profile, model = SESSIONS[kind]
    transcription = session_rules.default_transcription_model(model)
    request = session_request(profile, make_codec("g711_ulaw", 16000), transcription, [END_CALL])
    session = request.as_dict()
    documented = documented_session_paths()
    for path, types in vl.path_types(session).items():
        if path.startswith(vl.OPAQUE):
            continue
        assert path in documented, f"{path} is in no documented session.update nor REF's table"
        assert all(any(vl.compatible(doc, sent) for doc in documented[path]) for sent in types), (
            f"{path}: sent {types}, documented {documented[path]}"
        )
    assert session["turn_detection"]["type"] == "azure_semantic_vad"
    assert (session["input_audio_format"], session["output_audio_format"]) == ("g711_ulaw",) * 2
    # REF: "default: 24000 for pcm16, 8000 for g711_ulaw and g711_alaw"
    assert session["input_audio_sampling_rate"] == 8000
    assert ("instructions" in session) is (kind == "model")  # HOWTO: none with an agent
    assert validate_client_event({"type": "session.update", "session": session}) == []


@pytest.mark.parametrize(
    ("model", "documented"),
    [
        ("gpt-realtime", vl.REALTIME_TRANSCRIPTION),
        ("gpt-realtime-mini", vl.REALTIME_TRANSCRIPTION),
        ("gpt-4.1", vl.OTHER_TRANSCRIPTION),
        ("phi4-mm-realtime", vl.OTHER_TRANSCRIPTION),
        (None, vl.OTHER_TRANSCRIPTION),  # an agent
    ],
)
def test_callbridge_and_the_emulator_take_the_references_transcription_models(
    model: str | None, documented: frozenset[str]
) -> None:
    """REF's table, callbridge's copy (core/session_rules.py) and the emulator's
    (sim/voicelive/protocol.py) agree on every model REF names."""
    named = vl.REALTIME_TRANSCRIPTION | vl.OTHER_TRANSCRIPTION
    callbridge = set(session_rules.supported_transcription_models(model))
    emulator = transcription_models(model)
    assert {m for m in named if m in callbridge} == {m for m in named if m in emulator}
    assert callbridge == set(emulator) == documented
    assert session_rules.default_transcription_model(model) in documented
