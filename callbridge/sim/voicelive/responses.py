"""Scripted responses on one connection: create, stream faster than real time, cancel."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from callbridge.sim.voicelive.audio import AudioFormat, ToolCall
from callbridge.sim.voicelive.conversation import Conversation, function_call_item, message_item
from callbridge.sim.voicelive.protocol import (
    CallProgress,
    Ids,
    InvalidRequestError,
    Settings,
    function_tool_names,
)
from callbridge.sim.voicelive.records import (
    CancelRecord,
    EmulatorSession,
    ResponseRecord,
    ResponseTrigger,
    ToolCallRecord,
)
from callbridge.sim.voicelive.response_parts import (
    ActiveResponse,
    argument_pieces,
    audio_chunks,
    content_ids,
    response_object,
    tool_refusal,
    transcript_pieces,
)
from callbridge.sim.voicelive.wire import Wire, cancel_and_wait

_log = structlog.get_logger(__name__)


class Responses:
    """Plays the scripted turns as responses; at most one is active at a time.

    The call's first response plays the first turn, each later one the next (counted across
    the call's sessions), and the last turn repeats once they run out. Audio streams from a
    task that :meth:`close` cancels; ``on_audio_sent`` hears of each delta that left. A turn
    with a ``tool_call`` ends its response with a ``function_call`` output item, if the
    response was offered that function.
    """

    def __init__(
        self,
        *,
        wire: Wire,
        conversation: Conversation,
        ids: Ids,
        settings: Settings,
        record: EmulatorSession,
        progress: CallProgress,
        on_audio_sent: Callable[[ResponseRecord], None],
    ) -> None:
        self._wire = wire
        self._conversation = conversation
        self._ids = ids
        self._settings = settings
        self._record = record
        self._progress = progress
        self._on_audio_sent = on_audio_sent
        self._active: ActiveResponse | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active_id(self) -> str | None:
        """The id of the response in progress, if any."""
        return self._active.record.response_id if self._active else None

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
        self.start(fmt, "response.create", params)

    async def on_cancel(self, requested_id: str | None) -> None:
        """``response.cancel``: cancels the active response (the one named, if any)."""
        active = self.active_id
        self._record.cancels.append(CancelRecord(time.monotonic(), requested_id, active))
        if active is None or (requested_id is not None and requested_id != active):
            raise InvalidRequestError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        await self.cancel("client_cancelled")

    def start(
        self,
        fmt: AudioFormat,
        trigger: ResponseTrigger,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Start the call's next scripted response; ``params`` are ``response.create``'s
        overrides."""
        params = params or {}
        turns = self._settings.turns
        call_response_index = self._progress.responses_started
        self._progress.responses_started += 1
        turn_index = min(call_response_index, len(turns) - 1)
        audio = self._settings.turn_audio(turn_index, fmt)
        record = ResponseRecord(
            response_id=self._ids.new("resp"),
            item_id=self._ids.new("item"),
            call_response_index=call_response_index,
            turn_index=turn_index,
            trigger=trigger,
            caller_turns_before=self._record.caller_turns,
            output_format=fmt.name,
            bytes_per_ms=fmt.bytes_per_ms,
            audio_ms_total=len(audio) / fmt.bytes_per_ms,
            created_at=time.monotonic(),
            context_item_ids=self._conversation.item_ids,
        )
        self._record.responses.append(record)
        # The tools a response may call are fixed when it is created: the response's own
        # tools and tool_choice if response.create gives them, else the session's.
        config = self._record.config
        tools = params.get("tools")
        tool_choice = params.get("tool_choice")
        response = ActiveResponse(
            record=record,
            audio=audio,
            audio_format=fmt,
            transcript=turns[turn_index].transcript,
            tool_call=turns[turn_index].tool_call,
            offered_tools=function_tool_names(config.get("tools") if tools is None else tools),
            tool_choice=config.get("tool_choice", "auto") if tool_choice is None else tool_choice,
        )
        self._active = response
        self._wire.emit({"type": "response.created", "response": response_object(response)})
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
        self._give_back_unannounced()

    def _give_back_unannounced(self) -> None:
        """Responses the client never heard of (their ``response.created`` never left: the
        session hung or dropped first) do not use up the call's turns: the session that
        replaces this one plays them, as the service would answer the caller's turn afresh."""
        announced = {
            event.fields.get("response.id") for event in self._record.sent("response.created")
        }
        for record in reversed(self._record.responses):
            latest = record.call_response_index == self._progress.responses_started - 1
            if record.response_id in announced or not latest:
                return
            self._progress.responses_started -= 1

    async def _run(self, response: ActiveResponse) -> None:
        try:
            await self._stream(response)
        except Exception as exc:
            # A bug in a background task must not vanish silently with the task.
            self._wire.record_internal_error(f"streaming {response.record.response_id}", exc)

    async def _stream(self, response: ActiveResponse) -> None:
        await asyncio.sleep(self._settings.response_delay_ms / 1000)
        self._open_output_item(response)
        bytes_per_ms = response.audio_format.bytes_per_ms
        chunks = list(audio_chunks(response.audio, bytes_per_ms, self._settings.chunk_pattern_ms))
        pieces = transcript_pieces(response.transcript, len(chunks))
        ids = content_ids(response.record)
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
        # From here on nothing awaits: a cancel either came before (no function call at all)
        # or finds the response done.
        self._close_message_item(response, "completed")
        if response.tool_call is not None:
            self._call_tool(response, response.tool_call)
        self._finish(response, "completed")

    def _open_output_item(self, response: ActiveResponse) -> None:
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
                **content_ids(record),
                "part": {"type": "audio", "transcript": ""},
            }
        )

    def _emit_audio_delta(self, response: ActiveResponse, chunk: bytes) -> None:
        record = response.record
        response.audio_bytes_emitted += len(chunk)

        def mark_sent(at: float) -> None:
            record.note_audio_sent(at, len(chunk))
            self._on_audio_sent(record)

        self._wire.emit(
            {
                "type": "response.audio.delta",
                **content_ids(record),
                "delta": base64.b64encode(chunk).decode("ascii"),
            },
            on_sent=mark_sent,
            audio_bytes=len(chunk),
        )

    def _close_message_item(self, response: ActiveResponse, item_status: str) -> None:
        """Emit the closing events of the assistant audio item (output 0)."""
        record = response.record
        part = {"type": "audio", "transcript": response.transcript_sent}
        ids = content_ids(record)
        self._wire.emit({"type": "response.audio.done", **ids})
        self._wire.emit(
            {
                "type": "response.audio_transcript.done",
                **ids,
                "transcript": response.transcript_sent,
            }
        )
        self._wire.emit({"type": "response.content_part.done", **ids, "part": part})
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
        response.output.append(item)
        response.message_closed = True

    def _call_tool(self, response: ActiveResponse, call: ToolCall) -> None:
        """Emit a ``function_call`` output item, as the model does, if the call is allowed."""
        record = response.record
        refusal = tool_refusal(call.name, response.offered_tools, response.tool_choice)
        if refusal is not None:
            note = (
                f"{record.response_id}: turn {record.turn_index} scripts a call to "
                f"{call.name!r}, but {refusal}; the model made no call"
            )
            self._record.notes.append(note)
            _log.info("voicelive_emulator.tool_call_skipped", session=self._record.index, note=note)
            return
        item_id = self._ids.new("item")
        call_id = self._ids.new("call")
        arguments = call.arguments_json
        output_index = len(response.output)
        item = function_call_item(item_id, call_id, call.name, "", "in_progress")
        created = self._conversation.add(item_id, item)
        self._wire.emit(
            {
                "type": "response.output_item.added",
                "response_id": record.response_id,
                "output_index": output_index,
                "item": item,
            }
        )
        self._wire.emit(created)
        ids = {
            "response_id": record.response_id,
            "item_id": item_id,
            "output_index": output_index,
            "call_id": call_id,
        }
        for piece in argument_pieces(arguments):
            self._wire.emit(
                {"type": "response.function_call_arguments.delta", **ids, "delta": piece}
            )
        tool_record = ToolCallRecord(
            call_id=call_id,
            name=call.name,
            arguments=json.loads(arguments),
            response_id=record.response_id,
            item_id=item_id,
            called_at=time.monotonic(),
        )
        self._record.tool_calls.append(tool_record)

        def mark_called(at: float) -> None:
            tool_record.called_at = at

        self._wire.emit(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "arguments": arguments,
                "name": call.name,
            },
            on_sent=mark_called,
        )
        done_item = function_call_item(item_id, call_id, call.name, arguments, "completed")
        self._conversation.update(item_id, done_item)
        self._wire.emit(
            {
                "type": "response.output_item.done",
                "response_id": record.response_id,
                "output_index": output_index,
                "item": done_item,
            }
        )
        response.output.append(done_item)
        _log.info(
            "voicelive_emulator.tool_called",
            session=self._record.index,
            call_id=call_id,
            name=call.name,
        )

    def _finish(self, response: ActiveResponse, status: str, reason: str | None = None) -> None:
        """Emit whatever closing events the response still owes, then ``response.done``."""
        record = response.record
        if response.output_added and not response.message_closed:
            self._close_message_item(
                response, "completed" if status == "completed" else "incomplete"
            )
        record.status = status
        record.status_reason = reason

        def mark_done(at: float) -> None:
            record.done_at = at

        self._wire.emit(
            {"type": "response.done", "response": response_object(response, reason)},
            on_sent=mark_done,
        )
        self._active = None
