"""Voice Live's server events as the bridge reads them: the SDK's typed models for the events
whose fields it acts on, except the two that come most often; the type alone for the rest.

``response.audio.delta`` carries the agent's audio, several times a second for as long as the
agent talks. The SDK's ``recv`` (azure-ai-voicelive 1.3.1, ``aio/_patch.py``) turns every frame
into a typed model: ``json.loads``, then ``ServerEvent._deserialize``, which walks the model's
fields and decodes the base64 audio. For a delta that costs about seven times a plain JSON read
(``benchmarks/message_bench.py``: 43.9 against 6.1 µs for 100 ms of G.711). So a delta is read
here into ``AudioDelta``, with the fields the bridge uses (the API reference 2026-07-15,
``response.audio.delta``: ``response_id``, ``item_id``, ``output_index``, ``content_index``,
``delta`` as base64 audio); the other events it reads fields of go through the SDK's models
exactly as ``recv`` sends them, its private ``_deserialize`` included (the SDK is pinned, so that
stays put).
``response.audio_transcript.delta``, the text of what the agent says, comes as often as the
audio (a piece with each delta) and is read the same way into ``TranscriptDelta`` (the reference's
``item_id`` and ``delta``; the bridge uses nothing else of it).

Of the other events, only those whose fields the bridge reads (``MODELLED``) go through the
SDK's models; the rest it acts on by their type alone, or not at all, and reads into
``OtherEvent`` without building a model: a response brings several of them
(``conversation.item.created``, ``response.content_part.added`` and ``.done``,
``response.output_item.done``, the caller's transcription deltas), and their models cost 30 to
140 µs each. Read through the models, they took 7 % of the bridge's CPU in a 20-call bench
(``benchmarks/compare.py``). An event of a type Voice Live adds later is an ``OtherEvent``
too: the bridge did nothing with it before either.

A tolerant reader: the delta's ids are kept as they came, for the bridge to check as it checks
any event's (``bridge.event_fields``); audio that is missing or not base64 is ``None``, which the
bridge counts as a malformed event, as it did the SDK's. A frame that is not JSON at all is
refused as ``recv`` refuses it: ``ConnectionError``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final, cast

from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import ServerEvent

from callbridge.core import wire_json

AUDIO_DELTA: Final = "response.audio.delta"
TRANSCRIPT_DELTA: Final = "response.audio_transcript.delta"


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """One ``response.audio.delta``: a piece of an agent audio item."""

    response_id: object
    item_id: object
    output_index: object
    content_index: object
    delta: bytes | None
    """The audio, decoded from base64; ``None`` when the event carried none."""
    type: str = AUDIO_DELTA


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """One ``response.audio_transcript.delta``: a piece of the text of an agent audio item."""

    item_id: object
    delta: object
    type: str = TRANSCRIPT_DELTA


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A server event whose body the bridge does not read: only its ``type``."""

    type: str


MODELLED: Final = frozenset(
    {
        # session.expires_at (``bridge.voice_session``); the first session.updated greets.
        "session.created",
        "session.updated",
        "error",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.done",
        # A function call's item (``bridge.actions``).
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.audio.done",
        "response.audio_transcript.done",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.truncated",
    }
)
"""The events the bridge reads fields of (``bridge.agent_pump`` and the parts it hands them
to), through the SDK's typed models."""

VoiceEvent = ServerEvent | AudioDelta | TranscriptDelta | OtherEvent
"""A server event as the bridge handles it."""


def read_event(frame: bytes | str) -> VoiceEvent:
    """One WebSocket frame of the session, as an event.

    Raises:
        azure.ai.voicelive.aio.ConnectionError: the frame is not a JSON object (as ``recv``).
    """
    try:
        payload = wire_json.loads(frame)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise VoiceLiveConnectionError(f"Failed to parse message: {exc}") from exc
    if not isinstance(payload, dict):
        raise VoiceLiveConnectionError("Failed to parse message: not a JSON object")
    kind = payload.get("type")
    if kind == TRANSCRIPT_DELTA:
        return TranscriptDelta(item_id=payload.get("item_id"), delta=payload.get("delta"))
    if kind == AUDIO_DELTA:
        return AudioDelta(
            response_id=payload.get("response_id"),
            item_id=payload.get("item_id"),
            output_index=payload.get("output_index"),
            content_index=payload.get("content_index"),
            delta=_audio(payload.get("delta")),
        )
    if isinstance(kind, str) and kind not in MODELLED:
        return OtherEvent(kind)
    try:
        event = ServerEvent._deserialize(payload, [])  # type: ignore[no-untyped-call]
        return cast("ServerEvent", event)
    except (ValueError, TypeError) as exc:
        raise VoiceLiveConnectionError(f"Failed to parse message: {exc}") from exc


def _audio(delta: object) -> bytes | None:
    if not isinstance(delta, str):
        return None
    try:
        return base64.b64decode(delta)
    except (binascii.Error, ValueError):
        return None
