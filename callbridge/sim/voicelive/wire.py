"""One connection's socket side: ordered, validated sends and the session's event log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import WSCloseCode, web

from callbridge.sim.validate import validate_client_event, validate_server_event
from callbridge.sim.voicelive.protocol import Ids
from callbridge.sim.voicelive.records import Direction, EmulatorSession, EventRecord

_log = structlog.get_logger(__name__)


DOCUMENTED_BEYOND_SDK: Final = frozenset(
    {
        # RealtimeResponseSession: "object | string | ... Allowed values: realtime.session".
        "session.object: unknown field for ResponseSession",
        # conversation.item.created "Example with Audio Item": "audio": null (and
        # RealtimeInputAudioContentPart: "audio | string | Optional."); SDK: required.
        "item.content[0].audio: required field is null",
        # conversation.item.retrieved example; RealtimeOutputAudioContentPart: "audio | string |
        # Base64-encoded audio data".
        "item.content[0].audio: unknown field for ResponseAudioContentPart",
    }
)
"""Server-event shapes the API reference 2026-07-15 documents and SDK 1.3.1's models refuse.
The emulator sends them as documented, so its self-check lets exactly these through; each one is
also a violation of a documented example (``tests/conformance/test_voicelive.py`` checks that)."""


CLIENT_FIELDS_BEYOND_SDK: Final = frozenset(
    {
        # RealtimeServerVAD: "speech_duration_ms | integer | Optional. Minimum speech duration
        # (default: 200)"; SDK 1.3.1's ServerVad lacks it (its Azure semantic VADs have it).
        "session.turn_detection.speech_duration_ms: unknown field for ServerVad",
    }
)
"""Client fields the API reference 2026-07-15 documents and SDK 1.3.1's models refuse: the
service takes them, so the emulator does too."""


def client_violations(event: Mapping[str, Any], *, allow_unknown_fields: bool) -> list[str]:
    """The SDK-model violations of a client event, less the documented fields."""
    return [
        violation
        for violation in validate_client_event(event, allow_unknown_fields=allow_unknown_fields)
        if violation.partition(": ")[2] not in CLIENT_FIELDS_BEYOND_SDK
    ]


def sdk_violations(event: Mapping[str, Any]) -> list[str]:
    """The SDK-model violations of a server event the emulator sends, less the documented ones."""
    return [
        violation
        for violation in validate_server_event(event)
        if violation.partition(": ")[2] not in DOCUMENTED_BEYOND_SDK
    ]


@dataclass(frozen=True, slots=True)
class _Outgoing:
    text: str
    type: str
    fields: Mapping[str, object]
    on_sent: Callable[[float], None] | None = None


@dataclass(frozen=True, slots=True)
class _CloseRequest:
    code: int
    reason: str


class Wire:
    """Stamps, validates, queues and writes server events; records both directions.

    Every emit is synchronous and ordered: a writer task drains the outbox and stamps each
    event when it really leaves. Delayed events use loop timers. :meth:`close` cancels them,
    stops the writer and closes the socket; after it, emits are dropped. Injected faults
    :meth:`mute` it (nothing more leaves, queued events included; a close still does),
    :meth:`drop` the socket or :meth:`abort` its transport.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        record: EmulatorSession,
        ids: Ids,
        transport: asyncio.Transport | None,
    ) -> None:
        self.ws = ws
        self._record = record
        self._ids = ids
        self._transport = transport
        self._outbox: asyncio.Queue[_Outgoing | _CloseRequest] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._closing = False
        self._muted = False
        record._attach(self)

    def start(self) -> None:
        self._writer_task = asyncio.create_task(
            self._write_loop(), name=f"voicelive-emulator-writer-{self._record.index}"
        )

    async def close(self) -> None:
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await cancel_and_wait(self._writer_task)
        if not self.ws.closed:
            await self.ws.close(code=WSCloseCode.GOING_AWAY)

    def send_raw(self, text: str) -> None:
        self._outbox.put_nowait(_Outgoing(text=text, type="(raw)", fields={"bytes": len(text)}))

    def request_close(self, code: int, reason: str) -> None:
        self._outbox.put_nowait(_CloseRequest(code, reason))

    def mute(self) -> None:
        """Send nothing more: later emits and events still queued are discarded."""
        self._muted = True

    def drop(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` now, discarding the events still queued."""
        self.mute()
        self.request_close(code, reason)

    def abort(self) -> None:
        """Cut the connection with no close frame, as a TCP reset does."""
        self.mute()
        if self._transport is not None:
            self._transport.abort()

    async def _write_loop(self) -> None:
        while True:
            outgoing = await self._outbox.get()
            if isinstance(outgoing, _CloseRequest):
                await self.ws.close(code=outgoing.code, message=outgoing.reason.encode())
                return
            if self._muted:
                continue
            # Stamped before the hand-over: once the frame is in the socket the peer can read
            # and answer it before this task resumes, and a reply must never seem to precede
            # the event that caused it.
            at = time.monotonic()
            try:
                await self.ws.send_str(outgoing.text)
            except ConnectionError:
                return  # the reader sees the close and shuts the connection down
            self._record.events.append(EventRecord(at, "sent", outgoing.type, outgoing.fields))
            if outgoing.on_sent is not None:
                outgoing.on_sent(at)

    # ------------------------------------------------------------------ sending

    def emit(
        self,
        event: dict[str, Any],
        *,
        on_sent: Callable[[float], None] | None = None,
        audio_bytes: int | None = None,
    ) -> None:
        """Stamp, validate and queue a server event; ``on_sent`` gets the time it left."""
        if self._closing or self._muted:
            return
        event["event_id"] = self._ids.new("event")
        violations = sdk_violations(event)
        if violations:
            # An emulator bug: record it loudly so every test run that hits it fails.
            self.record_violations("sent", violations)
        fields = summarize(event)
        if audio_bytes is not None:
            fields["audio_bytes"] = audio_bytes
        text = json.dumps(event, separators=(",", ":"))
        self._outbox.put_nowait(_Outgoing(text, event["type"], fields, on_sent))

    def emit_error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        *,
        error_type: str = "invalid_request_error",
    ) -> None:
        # Every field of the API reference 2026-07-15's error example (code, message, param,
        # event_id), null where there is none ("if any", "if applicable"), plus the type its
        # field table lists and SDK 1.3.1 requires.
        error: dict[str, Any] = {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        }
        self.emit({"type": "error", "error": error})

    def emit_later(self, delay_s: float, event: dict[str, Any]) -> None:
        self.call_later(delay_s, lambda: self.emit(event))

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` in ``delay_s`` unless the connection closes first."""
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    # ------------------------------------------------------------------ recording

    def log_received(self, event_type: str, fields: Mapping[str, object]) -> None:
        self._record.events.append(EventRecord(time.monotonic(), "received", event_type, fields))

    def record_violations(self, direction: Direction, violations: Sequence[str]) -> None:
        self._record.violations.extend(f"{direction} {v}" for v in violations)
        _log.warning(
            "voicelive_emulator.protocol_violation",
            session=self._record.index,
            direction=direction,
            violations=list(violations),
        )

    def record_internal_error(self, context: str, exc: Exception) -> None:
        self._record.violations.append(f"emulator internal error {context}: {exc!r}")
        _log.exception(
            "voicelive_emulator.internal_error", session=self._record.index, context=context
        )


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait for it, without swallowing our own cancellation."""
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait([task])


_SUMMARY_KEYS: Final = (
    "item_id",
    "response_id",
    "previous_item_id",
    "call_id",
    "audio_start_ms",
    "audio_end_ms",
    "content_index",
    "output_index",
    "transcript",
)
_NESTED_SUMMARY_KEYS: Final = (
    "id",
    "type",
    "role",
    "status",
    "code",
    "message",
    "input_audio_format",
    "output_audio_format",
)


def summarize(event: Mapping[str, Any]) -> dict[str, object]:
    """The fields worth keeping in the event log: ids, timings, statuses; never audio."""
    fields: dict[str, object] = {k: event[k] for k in _SUMMARY_KEYS if k in event}
    for container in ("response", "item", "error", "session"):
        nested = event.get(container)
        if isinstance(nested, Mapping):
            for key in _NESTED_SUMMARY_KEYS:
                if key in nested:
                    fields[f"{container}.{key}"] = nested[key]
            details = nested.get("status_details")
            if isinstance(details, Mapping) and "reason" in details:
                fields[f"{container}.status_details.reason"] = details["reason"]
    audio = event.get("audio")
    if event.get("type") == "input_audio_buffer.append" and isinstance(audio, str):
        fields["audio_bytes"] = len(audio) * 3 // 4 - audio[-2:].count("=")  # base64-decoded
    return fields
