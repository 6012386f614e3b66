"""One emulator connection: reads client events and answers them as Voice Live does."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from callbridge.sim.voicelive.audio import output_audio_format
from callbridge.sim.voicelive.caller_input import CallerInput
from callbridge.sim.voicelive.conversation import (
    Conversation,
    client_item_record,
    item_from_request,
    retrieved_payload,
)
from callbridge.sim.voicelive.echo import echo_cancellation
from callbridge.sim.voicelive.faults import Fault, FaultSchedule
from callbridge.sim.voicelive.protocol import (
    CallProgress,
    Ids,
    InvalidRequestError,
    Settings,
    default_session,
    function_tool_names,
    session_payload,
    updated_session,
)
from callbridge.sim.voicelive.records import EmulatorSession, TextInputRecord, TruncateRecord
from callbridge.sim.voicelive.responses import Responses
from callbridge.sim.voicelive.transcription import Transcriber
from callbridge.sim.voicelive.wire import Wire, client_violations, summarize

_log = structlog.get_logger(__name__)


class Connection:
    """Speaks the Voice Live protocol on one WebSocket.

    The aiohttp handler task runs :meth:`run`: it reads and dispatches client events until
    the socket closes. Sending belongs to :class:`Wire`, the input audio and turn detection to
    :class:`CallerInput`, responses to :class:`Responses`, injected faults to
    :class:`FaultSchedule`; it keeps the session's configuration and the conversation items
    the client asks about. The call's ``progress`` is shared with the
    call's other sessions. The socket must not answer pings itself (``autoping=False``): the
    read loop does, unless a ``Freeze`` fault has fired.
    """

    def __init__(
        self,
        *,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        record: EmulatorSession,
        settings: Settings,
        progress: CallProgress,
        faults: Sequence[Fault] = (),
    ) -> None:
        self._record = record
        self._settings = settings
        self._progress = progress
        self._ids = Ids(record.index)
        self._wire = Wire(ws, record, self._ids, transport)
        self._faults = FaultSchedule(faults, wire=self._wire, record=record, on_freeze=self._freeze)
        self._conversation = Conversation()
        self._responses = Responses(
            wire=self._wire,
            conversation=self._conversation,
            ids=self._ids,
            settings=settings,
            record=record,
            progress=progress,
            on_audio_sent=self._faults.on_audio_sent,
        )
        self._input = CallerInput(
            wire=self._wire,
            ids=self._ids,
            record=record,
            settings=settings,
            conversation=self._conversation,
            responses=self._responses,
            transcriber=Transcriber(
                wire=self._wire,
                settings=settings,
                progress=progress,
                record=record,
                conversation=self._conversation,
            ),
        )
        self._frozen = False
        record.config = default_session(
            f"sess_{record.index:03d}", record.model, self._faults.lifetime_s
        )
        self._apply_session_config()

    async def run(self) -> None:
        self._wire.start()
        self._faults.start()
        _log.info("voicelive_emulator.connection_opened", session=self._record.index)
        try:
            created = {"type": "session.created", "session": session_payload(self._record.config)}
            self._wire.emit(created)
            await self._read_loop()
        finally:
            self._faults.close()
            await self._wire.close()
            await self._responses.close()
            self._record._mark_closed()
            _log.info(
                "voicelive_emulator.connection_closed",
                session=self._record.index,
                violations=len(self._record.violations),
            )

    def _freeze(self) -> None:
        self._frozen = True

    async def _read_loop(self) -> None:
        async for message in self._wire.ws:
            if self._frozen:
                continue  # a frozen path: nothing read is acted on, pings go unanswered
            match message.type:
                case WSMsgType.PING:
                    await self._wire.ws.pong(message.data)
                case WSMsgType.TEXT:
                    await self._on_text(message.data)
                case WSMsgType.BINARY:
                    self._reject_frame("binary frame (Voice Live events are text)", "(binary)")
                case WSMsgType.ERROR:
                    _log.warning(
                        "voicelive_emulator.socket_error",
                        session=self._record.index,
                        error=str(self._wire.ws.exception()),
                    )
                    return

    async def _on_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError as exc:
            self._reject_frame(f"malformed JSON: {exc}", "(malformed)")
            return
        if not isinstance(event, dict):
            self._reject_frame(f"event is a JSON {type(event).__name__}, not an object", "(json)")
            return
        event_type = str(event.get("type"))
        self._wire.log_received(event_type, summarize(event))
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        violations = client_violations(
            event, allow_unknown_fields=self._settings.allow_unknown_client_fields
        )
        if violations:
            self._wire.record_violations("received", violations)
            self._wire.emit_error(
                "invalid_value", "; ".join(violations), client_event_id=client_event_id
            )
            return
        try:
            await self._dispatch(event)
        except InvalidRequestError as exc:
            self._wire.emit_error(exc.code, exc.message, exc.param, client_event_id)
        except Exception as exc:
            self._wire.record_internal_error(f"handling {event_type}", exc)
            self._wire.emit_error(
                "internal_error", str(exc), None, client_event_id, error_type="server_error"
            )

    def _reject_frame(self, problem: str, record_type: str) -> None:
        self._wire.log_received(record_type, {})
        self._wire.record_violations("received", [problem])
        self._wire.emit_error("invalid_event", problem)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        match event["type"]:
            case "session.update":
                self._on_session_update(event["session"])
            case "input_audio_buffer.append":
                await self._input.append(event["audio"])
            case "input_audio_buffer.commit":
                self._input.commit()
            case "input_audio_buffer.clear":
                self._input.clear()
            case "response.create":
                await self._responses.on_create(event.get("response") or {}, self._output_format)
            case "response.cancel":
                await self._responses.on_cancel(event.get("response_id"))
            case "conversation.item.truncate":
                self._on_truncate(event["item_id"], event["content_index"], event["audio_end_ms"])
            case "conversation.item.create":
                self._on_item_create(event.get("item"), event.get("previous_item_id"))
            case "conversation.item.delete":
                self._conversation.delete(event["item_id"])
                self._wire.emit({"type": "conversation.item.deleted", "item_id": event["item_id"]})
            case "conversation.item.retrieve":
                item = self._retrieved_item(event["item_id"])
                self._wire.emit({"type": "conversation.item.retrieved", "item": item})
            case other:
                raise InvalidRequestError(
                    "unsupported_event", f"the Voice Live emulator does not implement {other}"
                )

    # ------------------------------------------------------------------ session

    def _on_session_update(self, update: Mapping[str, Any]) -> None:
        record = self._record
        locked = self._input.audio_appended
        config = updated_session(
            record.config, update, input_locked=locked, agent=record.agent is not None
        )
        echo = echo_cancellation(
            config, features=record.features, current=record.echo_cancellation, input_locked=locked
        )
        record.config = config
        record.echo_cancellation = echo
        self._apply_session_config()
        updated = {"type": "session.updated", "session": session_payload(config)}
        delay_ms = self._settings.session_updated_delay_ms
        if delay_ms is None:
            _log.warning("voicelive_emulator.session_updated_withheld")
        elif delay_ms:
            self._wire.emit_later(delay_ms / 1000, updated)
        else:
            self._wire.emit(updated)

    def _apply_session_config(self) -> None:
        config = self._record.config
        self._record.offered_tools = function_tool_names(config.get("tools"))
        self._output_format = output_audio_format(config["output_audio_format"])
        self._input.configure(config, self._record.echo_cancellation, self._output_format)

    # ------------------------------------------------------------------ conversation items

    def _on_truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        item = self._conversation.get(item_id)
        sent_ms = item.response.audio_ms_sent if item and item.response else None
        rejection: InvalidRequestError | None = None
        try:
            self._conversation.truncate(item_id, content_index, audio_end_ms)
        except InvalidRequestError as exc:
            rejection = exc
        self._record.truncations.append(
            TruncateRecord(
                at=time.monotonic(),
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
                audio_ms_sent=sent_ms,
                accepted=rejection is None,
                error=rejection.message if rejection else None,
            )
        )
        if rejection is not None:
            raise rejection
        self._wire.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    def _retrieved_item(self, item_id: str) -> dict[str, Any]:
        item = self._conversation.require(item_id)
        response = item.response
        if response is None:
            return item.payload
        fmt = output_audio_format(response.output_format)
        return retrieved_payload(item, self._settings.turn_audio(response.turn_index, fmt))

    def _on_item_create(self, item: Mapping[str, Any] | None, previous_item_id: str | None) -> None:
        if item is None:
            raise InvalidRequestError("missing_required_parameter", "item is required", "item")
        received_at = time.monotonic()
        if item["type"] == "function_call_output" and not self._conversation.has_function_call(
            item["call_id"]
        ):
            # The service checks that the output answers a function call in the conversation.
            raise InvalidRequestError(
                "invalid_value",
                f"function_call_output call_id {item['call_id']!r} matches no function_call "
                "item in the conversation",
                "item.call_id",
            )
        item_id = item.get("id") or self._ids.new("item")
        payload = item_from_request(item_id, item)
        self._wire.emit(self._conversation.add(item_id, payload, after=previous_item_id))
        self._record.client_items.append(client_item_record(payload, received_at))
        match payload["type"]:
            case "function_call_output":
                self._record_tool_output(payload, received_at)
            case "message" if payload["role"] == "user":
                texts = [p["text"] for p in payload["content"] if p.get("type") == "input_text"]
                if texts:
                    self._record.text_inputs.append(
                        TextInputRecord(text="".join(texts), at=received_at, item_id=item_id)
                    )

    def _record_tool_output(self, payload: Mapping[str, Any], received_at: float) -> None:
        call = self._record.tool_call(payload["call_id"])
        if call is None:
            return  # the output answers a function_call item the client created itself
        if call.output is not None:
            self._record.notes.append(
                f"{payload['id']}: a second output for call {call.call_id} ({call.name}); "
                f"the first, from {call.output_item_id}, stays recorded"
            )
            return
        call.output = payload["output"]
        call.output_at = received_at
        call.output_item_id = payload["id"]
