"""Scripted responses on one connection: create, stream faster than real time, cancel."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from callbridge.sim.voicelive.audio import AudioFormat
from callbridge.sim.voicelive.conversation import Conversation, message_item
from callbridge.sim.voicelive.protocol import Ids, InvalidRequestError, Settings
from callbridge.sim.voicelive.records import CancelRecord, EmulatorSession, ResponseRecord
from callbridge.sim.voicelive.wire import Wire, cancel_and_wait

_log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class _ActiveResponse:
    record: ResponseRecord
    audio: bytes
    audio_format: AudioFormat
    transcript: str
    output_added: bool = False
    transcript_sent: str = ""
    audio_bytes_emitted: int = 0


class Responses:
    """Plays the scripted turns as responses; at most one is active at a time.

    The first response plays the first turn, each later one the next, and the last turn
    repeats once they run out. Audio streams from a task that :meth:`close` cancels.
    """

    def __init__(
        self,
        *,
        wire: Wire,
        conversation: Conversation,
        ids: Ids,
        settings: Settings,
        record: EmulatorSession,
    ) -> None:
        self._wire = wire
        self._conversation = conversation
        self._ids = ids
        self._settings = settings
        self._record = record
        self._active: _ActiveResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = 0

    @property
    def is_active(self) -> bool:
        return self._active is not None

    async def on_create(self, params: Mapping[str, Any], fmt: AudioFormat) -> None:
        """``response.create``: refused while a response is active, unless it cancels it."""
        if self._active is not None:
            if not params.get("cancel_previous"):
                raise InvalidRequestError(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self._active.record.response_id}",
                )
            await self.cancel("client_cancelled")
        self.start(fmt)

    async def on_cancel(self, requested_id: str | None) -> None:
        """``response.cancel``: cancels the active response (the one named, if any)."""
        active = self._active.record.response_id if self._active else None
        self._record.cancels.append(CancelRecord(time.monotonic(), requested_id, active))
        if active is None or (requested_id is not None and requested_id != active):
            raise InvalidRequestError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        await self.cancel("client_cancelled")

    def start(self, fmt: AudioFormat) -> None:
        turns = self._settings.turns
        turn_index = min(self._started, len(turns) - 1)
        self._started += 1
        audio = self._settings.turn_audio(turn_index, fmt)
        record = ResponseRecord(
            response_id=self._ids.new("resp"),
            item_id=self._ids.new("item"),
            turn_index=turn_index,
            output_format=fmt.name,
            bytes_per_ms=fmt.bytes_per_ms,
            audio_ms_total=len(audio) / fmt.bytes_per_ms,
            created_at=time.monotonic(),
        )
        self._record.responses.append(record)
        response = _ActiveResponse(record, audio, fmt, turns[turn_index].transcript)
        self._active = response
        self._wire.emit({"type": "response.created", "response": _response_object(response, [])})
        self._task = asyncio.create_task(
            self._run(response), name=f"voicelive-emulator-{record.response_id}"
        )

    async def cancel(self, reason: str) -> None:
        """Stop the active response, if any, and finish it as ``cancelled``."""
        response = self._active
        if response is None:
            return
        await cancel_and_wait(self._task)
        self._finish(response, "cancelled", reason)

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self, response: _ActiveResponse) -> None:
        try:
            await self._stream(response)
        except Exception as exc:
            # A bug in a background task must not vanish silently with the task.
            self._wire.record_internal_error(f"streaming {response.record.response_id}", exc)

    async def _stream(self, response: _ActiveResponse) -> None:
        await asyncio.sleep(self._settings.response_delay_ms / 1000)
        self._open_output_item(response)
        bytes_per_ms = response.audio_format.bytes_per_ms
        chunks = list(_chunks(response.audio, bytes_per_ms, self._settings.chunk_pattern_ms))
        pieces = _transcript_pieces(response.transcript, len(chunks))
        ids = _content_ids(response.record)
        loop = asyncio.get_running_loop()
        started = loop.time()
        audio_ms_emitted = 0.0
        for chunk, text in zip(chunks, pieces, strict=True):
            # Deltas leave faster than real time, paced against the response start (no drift).
            due = started + audio_ms_emitted / 1000 / self._settings.speed
            await asyncio.sleep(max(0.0, due - loop.time()))
            if text:
                response.transcript_sent += text
                self._wire.emit({"type": "response.audio_transcript.delta", **ids, "delta": text})
            self._emit_audio_delta(response, chunk)
            audio_ms_emitted += len(chunk) / bytes_per_ms
        self._finish(response, "completed")

    def _open_output_item(self, response: _ActiveResponse) -> None:
        record = response.record
        item = message_item(record.item_id, "assistant", "in_progress", [])
        created = self._conversation.add(record.item_id, item, response=record)
        response.output_added = True
        self._wire.emit(
            {
                "type": "response.output_item.added",
                "response_id": record.response_id,
                "output_index": 0,
                "item": item,
            }
        )
        self._wire.emit(created)
        self._wire.emit(
            {
                "type": "response.content_part.added",
                **_content_ids(record),
                "part": {"type": "audio", "transcript": ""},
            }
        )

    def _emit_audio_delta(self, response: _ActiveResponse, chunk: bytes) -> None:
        record = response.record
        response.audio_bytes_emitted += len(chunk)
        self._wire.emit(
            {
                "type": "response.audio.delta",
                **_content_ids(record),
                "delta": base64.b64encode(chunk).decode("ascii"),
            },
            on_sent=lambda at: record.note_audio_sent(at, len(chunk)),
            audio_bytes=len(chunk),
        )

    def _finish(self, response: _ActiveResponse, status: str, reason: str | None = None) -> None:
        """Emit whatever closing events the response still owes, then ``response.done``."""
        record = response.record
        output: list[dict[str, Any]] = []
        if response.output_added:
            part = {"type": "audio", "transcript": response.transcript_sent}
            ids = _content_ids(record)
            self._wire.emit({"type": "response.audio.done", **ids})
            self._wire.emit(
                {
                    "type": "response.audio_transcript.done",
                    **ids,
                    "transcript": response.transcript_sent,
                }
            )
            self._wire.emit({"type": "response.content_part.done", **ids, "part": part})
            item_status = "completed" if status == "completed" else "incomplete"
            item = message_item(record.item_id, "assistant", item_status, [part])
            self._conversation.update(record.item_id, item)
            self._wire.emit(
                {
                    "type": "response.output_item.done",
                    "response_id": record.response_id,
                    "output_index": 0,
                    "item": item,
                }
            )
            output.append(item)
        record.status = status
        record.status_reason = reason

        def mark_done(at: float) -> None:
            record.done_at = at

        self._wire.emit(
            {"type": "response.done", "response": _response_object(response, output, reason)},
            on_sent=mark_done,
        )
        self._active = None


def _content_ids(record: ResponseRecord) -> dict[str, Any]:
    return {
        "response_id": record.response_id,
        "item_id": record.item_id,
        "output_index": 0,
        "content_index": 0,
    }


def _response_object(
    response: _ActiveResponse, output: list[dict[str, Any]], cancel_reason: str | None = None
) -> dict[str, Any]:
    record = response.record
    body: dict[str, Any] = {
        "id": record.response_id,
        "object": "realtime.response",
        "status": record.status,
        "status_details": None,
        "output": output,
        "modalities": ["text", "audio"],
        "output_audio_format": record.output_format,
    }
    if record.status == "cancelled":
        body["status_details"] = {
            "type": "cancelled",
            "reason": cancel_reason or "client_cancelled",
        }
    if record.status != "in_progress":
        body["usage"] = _usage(response)
    return body


def _usage(response: _ActiveResponse) -> dict[str, Any]:
    # Plausible, deterministic counts: ~1 audio token per 50 ms, ~1 text token per word.
    text_tokens = len(response.transcript_sent.split())
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


def _chunks(audio: bytes, bytes_per_ms: int, pattern_ms: Sequence[int]) -> Iterator[bytes]:
    """Cut audio into irregular chunks (cycling ``pattern_ms``), like the service's deltas."""
    offset = 0
    index = 0
    while offset < len(audio):
        size = pattern_ms[index % len(pattern_ms)] * bytes_per_ms
        yield audio[offset : offset + size]
        offset += size
        index += 1


_WORD_WITH_LEADING_SPACE: Final = re.compile(r"\s*\S+")


def _transcript_pieces(transcript: str, count: int) -> list[str]:
    """Split a transcript into ``count`` pieces (some maybe empty) that join back exactly."""
    words = _WORD_WITH_LEADING_SPACE.findall(transcript)
    # Ceiling division front-loads the words, so the first audio delta has text with it.
    bounds = [-(-i * len(words) // count) for i in range(count + 1)]
    return ["".join(words[bounds[i] : bounds[i + 1]]) for i in range(count)]
