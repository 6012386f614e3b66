"""The strict Voice Live event validator: valid events pass, each kind of violation is caught."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from azure.ai.voicelive import models as sdk_models
from azure.ai.voicelive._utils.model_base import Model

from callbridge.sim.validate import (
    describe_model_fields,
    validate_client_event,
    validate_server_event,
)

AUDIO_B64 = base64.b64encode(b"\xff" * 160).decode()

ASSISTANT_ITEM: dict[str, Any] = {
    "id": "item_1",
    "object": "realtime.item",
    "type": "message",
    "role": "assistant",
    "status": "incomplete",
    "content": [{"type": "audio", "transcript": "Hello"}],
}

ZERO_DETAILS = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}

RESPONSE_DONE: dict[str, Any] = {
    "type": "response.done",
    "event_id": "event_1",
    "response": {
        "id": "resp_1",
        "object": "realtime.response",
        "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"},
        "output": [ASSISTANT_ITEM],
        "usage": {
            "total_tokens": 3,
            "input_tokens": 0,
            "output_tokens": 3,
            "input_token_details": {
                "cached_tokens": 0,
                **ZERO_DETAILS,
                "cached_tokens_details": ZERO_DETAILS,
            },
            "output_token_details": {"text_tokens": 1, "audio_tokens": 2},
        },
    },
}

VALID_SERVER_EVENTS: list[dict[str, Any]] = [
    {"type": "input_audio_buffer.speech_started", "audio_start_ms": 200, "item_id": "item_2"},
    {
        "type": "response.audio.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": AUDIO_B64,
    },
    RESPONSE_DONE,
    {"type": "conversation.item.created", "previous_item_id": None, "item": ASSISTANT_ITEM},
    {
        "type": "error",
        "error": {"type": "invalid_request_error", "code": "x", "message": "bad", "param": None},
    },
    {
        "type": "session.updated",
        "session": {
            "id": "sess_1",
            "model": "gpt-realtime",
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            "temperature": 1,  # an int is a valid JSON number for a float field
            "max_response_output_tokens": "inf",
            "expires_at": 1_900_000_000,
        },
    },
]

VALID_CLIENT_EVENTS: list[dict[str, Any]] = [
    {"type": "input_audio_buffer.append", "audio": AUDIO_B64, "event_id": "c1"},
    {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 0},
    {"type": "response.cancel"},
    {"type": "response.create", "response": None},
    {
        "type": "session.update",
        "session": {
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "voice": "alloy",
            "turn_detection": {
                "type": "azure_semantic_vad",
                "interrupt_response": True,
                "end_of_utterance_detection": {"model": "semantic_detection_v1"},
            },
            "tools": [{"type": "function", "name": "end_call", "parameters": {}}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c", "output": "{}"},
    },
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    },
]


@pytest.mark.parametrize("event", VALID_SERVER_EVENTS, ids=lambda e: e["type"])
def test_valid_server_events_pass(event: dict[str, Any]) -> None:
    assert validate_server_event(event) == []


@pytest.mark.parametrize("event", VALID_CLIENT_EVENTS, ids=lambda e: e["type"])
def test_valid_client_events_pass(event: dict[str, Any]) -> None:
    assert validate_client_event(event) == []


def with_changes(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, **changes}


def without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


SPEECH_STARTED = VALID_SERVER_EVENTS[0]
AUDIO_DELTA = VALID_SERVER_EVENTS[1]
TRUNCATE = VALID_CLIENT_EVENTS[1]


def response_done_with_output(item: dict[str, Any]) -> dict[str, Any]:
    return {**RESPONSE_DONE, "response": {**RESPONSE_DONE["response"], "output": [item]}}


INVALID_SERVER_EVENTS: list[tuple[str, Any, str]] = [
    (
        "str for int",
        with_changes(SPEECH_STARTED, audio_start_ms="200"),
        "input_audio_buffer.speech_started: audio_start_ms: expected int, got str",
    ),
    (
        "bool for int",
        with_changes(SPEECH_STARTED, audio_start_ms=True),
        "audio_start_ms: expected int, got bool",
    ),
    ("float for int", with_changes(SPEECH_STARTED, audio_start_ms=2.5), "expected int, got float"),
    ("int for str", with_changes(SPEECH_STARTED, item_id=5), "item_id: expected str, got int"),
    ("missing required", without(SPEECH_STARTED, "item_id"), "item_id: required field missing"),
    (
        "null required",
        with_changes(SPEECH_STARTED, item_id=None),
        "item_id: required field is null",
    ),
    ("invalid base64", with_changes(AUDIO_DELTA, delta="not base64!!"), "delta: invalid base64"),
    ("base64 not str", with_changes(AUDIO_DELTA, delta=[1, 2]), "delta: expected base64 string"),
    ("unknown type", {"type": "foo.bar"}, "foo.bar: unknown ServerEvent type"),
    ("missing type", {"item_id": "x"}, "<event>: type: expected str, got null"),
    ("not an object", ["type"], "<event>: expected a JSON object, got list"),
    ("unknown field", with_changes(SPEECH_STARTED, extra=1), "extra: unknown field"),
    (
        "nested list element",
        response_done_with_output(
            {**ASSISTANT_ITEM, "content": [{"type": "audio", "transcript": 7}]}
        ),
        "response.output[0].content[0].transcript: expected str, got int",
    ),
    (
        "unknown nested discriminator",
        response_done_with_output({**ASSISTANT_ITEM, "type": "telepathy"}),
        "response.output[0].type: unknown ResponseItem type 'telepathy'",
    ),
    (
        "literal mismatch",
        response_done_with_output({**ASSISTANT_ITEM, "object": "realtime.thing"}),
        "response.output[0].object: 'realtime.thing' is not one of ['realtime.item']",
    ),
    (
        "list expected",
        {**RESPONSE_DONE, "response": {**RESPONSE_DONE["response"], "output": {}}},
        "response.output: expected list, got object",
    ),
    (
        "unix timestamp",
        {"type": "session.created", "session": {"expires_at": "soon"}},
        "session.expires_at: expected unix timestamp (number), got str",
    ),
]


@pytest.mark.parametrize(
    ("event", "expected"),
    [(event, expected) for _, event, expected in INVALID_SERVER_EVENTS],
    ids=[name for name, _, _ in INVALID_SERVER_EVENTS],
)
def test_invalid_server_events_are_caught(event: Any, expected: str) -> None:
    violations = validate_server_event(event)
    assert any(expected in v for v in violations), violations


INVALID_CLIENT_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "truncate ms as str",
        with_changes(TRUNCATE, audio_end_ms="12"),
        "conversation.item.truncate: audio_end_ms: expected int, got str",
    ),
    ("truncate missing item", without(TRUNCATE, "item_id"), "item_id: required field missing"),
    ("unknown client type", {"type": "response.explode"}, "unknown ClientEvent type"),
    (
        "server event sent by client",
        {"type": "response.done", "response": {}},
        "unknown ClientEvent type",
    ),
    (
        "union member with wrong field",
        {"type": "session.update", "session": {"voice": {"type": "openai", "name": 5}}},
        "session.voice.name: expected str, got int",
    ),
    (
        "unmodelled turn detection",
        {"type": "session.update", "session": {"turn_detection": {"type": "semantic_vad"}}},
        "session.turn_detection.type: unknown TurnDetection type 'semantic_vad'",
    ),
    (
        "second-level discriminator",
        {"type": "conversation.item.create", "item": {"type": "message", "role": "robot"}},
        "item.role: unknown ConversationRequestItem role 'robot'",
    ),
    (
        "bool for int in nested model",
        {
            "type": "session.update",
            "session": {"turn_detection": {"type": "server_vad", "silence_duration_ms": False}},
        },
        "session.turn_detection.silence_duration_ms: expected int, got bool",
    ),
]


@pytest.mark.parametrize(
    ("event", "expected"),
    [(event, expected) for _, event, expected in INVALID_CLIENT_EVENTS],
    ids=[name for name, _, _ in INVALID_CLIENT_EVENTS],
)
def test_invalid_client_events_are_caught(event: dict[str, Any], expected: str) -> None:
    violations = validate_client_event(event)
    assert any(expected in v for v in violations), violations


def test_unknown_fields_can_be_allowed() -> None:
    event = with_changes(TRUNCATE, appended_text="...")
    assert validate_client_event(event) != []
    assert validate_client_event(event, allow_unknown_fields=True) == []


def test_every_sdk_model_compiles() -> None:
    """Guards the SDK pin: every annotation of every model is understood by the validator."""
    models = [
        cls
        for name in dir(sdk_models)
        if isinstance(cls := getattr(sdk_models, name), type) and issubclass(cls, Model)
    ]
    assert len(models) > 150
    for model in models:
        describe_model_fields(model)
    assert describe_model_fields(sdk_models.ServerEventConversationItemTruncated) == {
        "type": ("'conversation.item.truncated'", True),
        "event_id": ("str | null", False),
        "item_id": ("str", True),
        "content_index": ("int", True),
        "audio_end_ms": ("int", True),
    }
