"""Voice Live conformance: the emulator sends the documented shapes.

One emulator session on loopback, driven over a raw WebSocket the way callbridge drives Voice
Live (``voicelive_support.record_session``), produces every server event callbridge relies on.
Each event type with a documented example (``voicelive/server_*.json``) is compared with it:
the emulator's event must have every documented key, recursively, with the same JSON type and,
for ``type``/``object``/``status``/``role``, the same value. The tables below list every
departure, each with its reason and source (REF: the API reference 2026-07-15; HOWTO:
voice-live-how-to.md), and the tests check that each table matches what really happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import pytest

from tests.conformance import voicelive_support as vl

NOT_EMULATED: Final[dict[str, str]] = {
    "conversation.item.input_audio_transcription.failed": "sent only for a caller turn whose "
    "transcription is scripted to fail, which this session has not; its shape is held to the "
    "example in tests/test_voicelive_emulator_turns.py",
    "rate_limits.updated": "unknown to SDK 1.3.1; callbridge ignores it "
    "(test_voicelive_bridge_reads.py)",
    "response.animation_viseme.delta": "only with session animation; callbridge never asks",
    "response.audio_timestamp.delta": "only with output_audio_timestamp_types; never set",
    "response.audio_timestamp.done": "only with output_audio_timestamp_types; never set",
    "response.text.delta": "text-only responses are not emulated; callbridge's sessions speak",
    "response.text.done": "text-only responses are not emulated; callbridge's sessions speak",
    "warning": "no concrete warning is documented; the emulator sends none",
}
"""Documented server events the emulator does not send in the recorded session."""

ADAPTED: Final[dict[str, str]] = {
    "server_response.content_part.added.reference.json": "part",
    "server_response.content_part.done.reference.json": "part",
    "server_response.output_item.done.reference.json": "item.content.0",
    "server_response.done.reference.json": "response.output.0.content.0",
}
"""Documented text parts compared as audio parts. REF's examples of these events show a
text-only response; callbridge's sessions answer in audio, so the emulator's part is compared
with REF RealtimeResponseAudioContentPart ("type": "audio", "transcript" "nullable") carrying
the documented text as its transcript, the shape of REF's conversation.item.retrieved example."""


def _user(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["item"].get("role") == "user" and e["item"]["content"][0]["type"] == kind


def _message(event: dict[str, Any]) -> bool:
    return bool(event["item"]["type"] == "message")


def _any(_: dict[str, Any]) -> bool:
    return True


def _custom_voice(event: dict[str, Any]) -> bool:
    return bool(event["session"]["voice"]["type"] == "azure-custom")


PAIRED: Final[dict[str, Callable[[dict[str, Any]], bool]]] = {
    # User text items: assistant and function call items are other shapes, without examples.
    "server_conversation.item.created.reference.json": _user("input_text"),
    # The caller's committed audio.
    "server_conversation.item.created.reference.audio_item.json": _user("input_audio"),
    # Message items; function call items are compared with REF's item table below.
    "server_response.output_item.added.reference.json": _message,
    "server_response.output_item.done.reference.json": _message,
    # The echo of REF's own azure-custom session.update example, which this example shows.
    "server_session.updated.reference.json": _custom_voice,
}
"""Which emulator events a documented example is compared with (default: all of its type)."""

SHAPES: Final = {"session.created": "session.*", "session.updated": "session.*"}
"""Event types whose examples show one object (REF: both carry a RealtimeResponseSession)."""

DIFFERENCES: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("server_session.created.reference.json", "session.voice.type"): (
        "documented 'openai', sent 'azure-standard'",
        "a default no doc states; the emulator's is HOWTO's session example voice "
        "(en-US-Ava:DragonHDLatestNeural); callbridge always sets its voice",
    ),
    ("server_session.created.reference.json", "session.turn_detection.type"): (
        "documented 'azure_semantic_vad', sent 'server_vad'",
        'a default the docs disagree on: HOWTO says "The default value is server_vad"; '
        "callbridge always sets azure_semantic_vad",
    ),
    (
        "server_conversation.item.created.reference.audio_item.json",
        "item.content[input_audio].transcript",
    ): (
        "documented string, sent null",
        'not known at commit: "Transcription runs asynchronously with response creation" '
        "(REF, conversation.item.input_audio_transcription.completed); "
        'RealtimeInputAudioContentPart: "transcript | Optional"',
    ),
    ("server_error.reference.json", "error.param"): (
        "documented string, sent null",
        'an error without one: REF "Parameter related to the error, if any"',
    ),
    ("server_error.reference.json", "error.event_id"): (
        "documented string, sent null",
        'an error no client event_id caused: REF "The ID of the client event that caused the '
        'error, if applicable"',
    ),
}
"""Documented keys the emulator sends with another JSON type or fixed value."""

_USAGE = "REF RealtimeUsage lists it; SDK 1.3.1 requires it"
_TOKENS = "not in REF TokenDetails; SDK 1.3.1 requires it"
_SESSION = "REF RealtimeResponseSession lists it; the emulator's default"
_ECHO = "echoed from REF's azure-custom session.update example (RealtimeAzureCustomVoice)"
EMULATOR_EXTRAS: Final[dict[tuple[str, str], str]] = {
    ("*", "event_id"): "SDK ServerEvent.event_id; HOWTO's server examples carry it",
    ("error", "error.type"): 'REF error properties ("invalid_request_error"); SDK requires it',
    ("response.created", "response.modalities"): 'REF RealtimeResponse: "Optional"',
    ("response.created", "response.output_audio_format"): 'REF RealtimeResponse: "Optional"',
    ("response.created", "response.usage.input_token_details"): _USAGE,
    ("response.created", "response.usage.output_token_details"): _USAGE,
    ("response.done", "response.modalities"): 'REF RealtimeResponse: "Optional"',
    ("response.done", "response.output_audio_format"): 'REF RealtimeResponse: "Optional"',
    ("response.done", "response.output[function_call]"): "the scripted answer calls end_call",
    ("response.done", "response.usage.input_token_details.image_tokens"): _TOKENS,
    ("response.done", "response.usage.input_token_details.cached_tokens_details"): _TOKENS,
    ("response.function_call_arguments.done", "name"): "SDK 1.3.1 requires it; the live test "
    "reads it (test_voicelive.py CORPUS_EXCEPTIONS)",
    ("session.*", "session.expires_at"): 'REF What\'s new: "this version adds expires_at"',
    ("session.*", "session.input_audio_transcription"): f"{_SESSION}: null (off)",
    ("session.*", "session.input_audio_noise_reduction"): f"{_SESSION}: null (off)",
    ("session.*", "session.input_audio_echo_cancellation"): f"{_SESSION}: null (off)",
    ("session.*", "session.tools"): f"{_SESSION}: []",
    ("session.*", "session.tool_choice"): f'{_SESSION}: "auto"',
    ("session.*", "session.turn_detection.create_response"): "REF RealtimeServerVAD",
    ("session.*", "session.turn_detection.interrupt_response"): "REF RealtimeServerVAD",
    ("session.*", "session.turn_detection.auto_truncate"): "REF RealtimeServerVAD",
    ("session.*", "session.voice.temperature"): _ECHO,
    ("session.*", "session.voice.style"): _ECHO,
    ("session.*", "session.avatar.video"): _ECHO,
}
"""Keys the emulator sends beyond every documented example of the event type."""

FUNCTION_CALL_ITEM: Final = {
    "id": "",
    "type": "function_call",
    "object": "realtime.item",
    "name": "",
    "arguments": "",
    "call_id": "",
}
"""REF RealtimeConversationFunctionCallItem, as a shape. Its table says ``object`` "Must be
conversation.item", every REF example of an item says "realtime.item"; the emulator follows the
examples."""
ITEM_STATUS: Final = frozenset({"in_progress", "completed", "incomplete"})  # RealtimeItemStatus

CALLBRIDGE_EVENTS: Final = frozenset(
    {
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.done",
        "conversation.item.truncated",
        "error",
    }
)
"""The server events callbridge's calls depend on, all of which the recorded session holds."""


@pytest.fixture(scope="module")
def recorded() -> vl.Recorded:
    return asyncio.run(vl.record_session())


def documented(name: str) -> dict[str, Any]:
    example = vl.load(name)
    if name in ADAPTED:
        text_part = vl.at(example, ADAPTED[name])
        assert text_part["type"] == "text", f"{name} no longer shows a text part: drop it"
        example = vl.replaced(
            example, ADAPTED[name], {"type": "audio", "transcript": text_part["text"]}
        )
    return example


def shape(event_type: str) -> str:
    return SHAPES.get(event_type, event_type)


def emulated(recorded: vl.Recorded, name: str) -> list[dict[str, Any]]:
    event_type = vl.load(name)["type"]
    paired = PAIRED.get(name, _any)
    return [frame for frame in recorded.frames if frame["type"] == event_type and paired(frame)]


COMPARED: Final = [
    name for name in vl.corpus("server_") if vl.load(name)["type"] not in NOT_EMULATED
]


def test_the_session_produces_every_event_callbridge_relies_on_cleanly(
    recorded: vl.Recorded,
) -> None:
    assert recorded.violations == []
    assert {frame["type"] for frame in recorded.frames} >= CALLBRIDGE_EVENTS


def test_every_documented_event_is_emulated_or_listed(recorded: vl.Recorded) -> None:
    documented_types = {vl.load(name)["type"] for name in vl.corpus("server_")}
    sent = {frame["type"] for frame in recorded.frames}
    assert documented_types - sent == set(NOT_EMULATED)


@pytest.mark.parametrize("name", COMPARED)
def test_the_emulator_sends_every_documented_key(recorded: vl.Recorded, name: str) -> None:
    events = emulated(recorded, name)
    assert events, f"no emulator event pairs with {name}"
    found = {
        (name, difference.path): difference.problem
        for event in events
        for difference in vl.differences(documented(name), event)
    }
    listed = {key: problem for key, (problem, _) in DIFFERENCES.items() if key[0] == name}
    assert found == listed


def test_the_emulator_adds_only_listed_keys(recorded: vl.Recorded) -> None:
    examples: dict[str, list[dict[str, Any]]] = {}
    for name in COMPARED:
        examples.setdefault(shape(vl.load(name)["type"]), []).append(documented(name))
    found: set[tuple[str, str]] = set()
    for name in COMPARED:
        kind = shape(vl.load(name)["type"])
        for event in emulated(recorded, name):
            extras = vl.extra_paths(examples[kind], event)
            found |= {("*" if path == "event_id" else kind, path) for path in extras}
    assert found == set(EMULATOR_EXTRAS)


def test_function_call_items_have_the_references_item_fields(recorded: vl.Recorded) -> None:
    items = [
        frame["item"]
        for frame in recorded.frames
        if frame["type"] in ("response.output_item.added", "response.output_item.done")
        and frame["item"]["type"] == "function_call"
    ]
    assert [item["status"] for item in items] == ["in_progress", "completed"]
    for item in items:
        assert vl.differences(FUNCTION_CALL_ITEM, item) == []
        assert item["status"] in ITEM_STATUS
        assert set(item) == {*FUNCTION_CALL_ITEM, "status"}


def test_the_emulator_errors_carry_the_documented_fields(recorded: vl.Recorded) -> None:
    errors = [frame["error"] for frame in recorded.frames if frame["type"] == "error"]
    assert [(e["param"], e["event_id"]) for e in errors] == [
        (None, None),
        ("audio_end_ms", vl.TOO_FAR_EVENT_ID),
    ]
