"""The shape of a scripted response, without any I/O: its state and its JSON.

``ActiveResponse`` is what a response in progress has sent so far; the functions build its
``response`` object (with usage), cut its audio, transcript and function call arguments into
the pieces the deltas carry, and say whether the model may call a scripted tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from callbridge.sim.voicelive.audio import AudioFormat, ToolCall
from callbridge.sim.voicelive.records import ResponseRecord

_ARGUMENT_DELTA_CHARS: Final = 8  # arguments stream in small pieces, like model tokens


@dataclass(eq=False, slots=True)
class ActiveResponse:
    """A response in progress: its script, the tools it may call, and what it has sent."""

    record: ResponseRecord
    audio: bytes
    audio_format: AudioFormat
    transcript: str
    tool_call: ToolCall | None
    offered_tools: tuple[str, ...]
    tool_choice: object
    output_added: bool = False
    message_closed: bool = False
    transcript_sent: str = ""
    audio_bytes_emitted: int = 0
    output: list[dict[str, Any]] = field(default_factory=list)


def tool_refusal(name: str, offered: Sequence[str], tool_choice: object) -> str | None:
    """Why the model cannot call ``name`` in this response, or None when it can."""
    if name not in offered:
        return f"the response offers no such function tool (offered: {list(offered)})"
    if tool_choice == "none":
        return "tool_choice is 'none'"
    if isinstance(tool_choice, Mapping) and tool_choice.get("name") not in (None, name):
        return f"tool_choice forces {tool_choice['name']!r}"
    return None


def argument_pieces(arguments: str) -> list[str]:
    """The arguments JSON cut into the pieces of ``response.function_call_arguments.delta``."""
    size = _ARGUMENT_DELTA_CHARS
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def content_ids(record: ResponseRecord) -> dict[str, Any]:
    """The ids of the response's audio content part (output 0, content 0)."""
    return {
        "response_id": record.response_id,
        "item_id": record.item_id,
        "output_index": 0,
        "content_index": 0,
    }


def response_object(response: ActiveResponse, cancel_reason: str | None = None) -> dict[str, Any]:
    """The ``response`` object of ``response.created`` and ``response.done``."""
    record = response.record
    body: dict[str, Any] = {
        "id": record.response_id,
        "object": "realtime.response",
        "status": record.status,
        "status_details": None,
        "output": list(response.output),
        "modalities": ["text", "audio"],
        "output_audio_format": record.output_format,
        # Also on response.created, all zero: the API reference 2026-07-15's response.created
        # example carries "usage" {total_tokens, input_tokens, output_tokens: 0}.
        "usage": _usage(response),
    }
    if record.status == "cancelled":
        body["status_details"] = {
            "type": "cancelled",
            "reason": cancel_reason or "client_cancelled",
        }
    return body


def _usage(response: ActiveResponse) -> dict[str, Any]:
    # Plausible, deterministic counts: ~1 audio token per 50 ms, ~1 text token per word or
    # per 4 characters of function call arguments.
    text_tokens = len(response.transcript_sent.split()) + sum(
        -(-len(item["arguments"]) // 4)
        for item in response.output
        if item["type"] == "function_call"
    )
    audio_tokens = round(response.audio_bytes_emitted / response.audio_format.bytes_per_ms / 50)
    output_tokens = text_tokens + audio_tokens
    zero_details = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
    return {
        "total_tokens": output_tokens,
        "input_tokens": 0,
        "output_tokens": output_tokens,
        "input_token_details": {
            "cached_tokens": 0,
            **zero_details,
            "cached_tokens_details": dict(zero_details),
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }


def audio_chunks(audio: bytes, bytes_per_ms: int, pattern_ms: Sequence[int]) -> Iterator[bytes]:
    """Cut audio into irregular chunks (cycling ``pattern_ms``), like the service's deltas."""
    offset = 0
    index = 0
    while offset < len(audio):
        size = pattern_ms[index % len(pattern_ms)] * bytes_per_ms
        yield audio[offset : offset + size]
        offset += size
        index += 1


_WORD_WITH_LEADING_SPACE: Final = re.compile(r"\s*\S+")


def transcript_pieces(transcript: str, count: int) -> list[str]:
    """Split a transcript into ``count`` pieces (some maybe empty) that join back exactly."""
    words = _WORD_WITH_LEADING_SPACE.findall(transcript)
    # Ceiling division front-loads the words, so the first audio delta has text with it.
    bounds = [-(-i * len(words) // count) for i in range(count + 1)]
    return ["".join(words[bounds[i] : bounds[i + 1]]) for i in range(count)]
