"""What happened on each emulator connection, recorded for tests and reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from aiohttp import WSCloseCode

Direction: TypeAlias = Literal["sent", "received"]
FaultKind: TypeAlias = Literal["drop", "hang", "freeze", "slow_accept", "expire"]
ResponseTrigger: TypeAlias = Literal["response.create", "server_vad"]


class SocketSide(Protocol):
    """What a session's test hooks need from its connection's socket side (the ``Wire``)."""

    def send_raw(self, text: str) -> None: ...

    def request_close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event on the wire. ``at`` is ``time.monotonic()`` when it was sent or received."""

    at: float
    direction: Direction
    type: str
    fields: Mapping[str, object]


@dataclass(slots=True)
class SpeechRecord:
    """A caller turn found by the VAD. Times are ``time.monotonic()`` when events were sent.

    ``audio_end_ms`` stays None for speech that was never heard to its end (the client cleared
    or committed the buffer first, or the session ended). ``transcript`` is what the script says
    the turn said once it is committed (sent as its transcription if the session asked for
    one), None while it is not or when its transcription is scripted to fail.
    """

    item_id: str
    onset_ms: int
    audio_start_ms: int
    started_sent_at: float | None = None
    audio_end_ms: int | None = None
    stopped_sent_at: float | None = None
    transcript: str | None = None


@dataclass(slots=True)
class ResponseRecord:
    """One response: timing of its audio deltas and how much audio actually left.

    ``call_response_index`` numbers the responses of the call, across its sessions (0 is the
    greeting); ``turn_index`` is the scripted turn it plays. ``trigger``: the client's
    ``response.create`` or the server's VAD (``create_response``). ``caller_turns_before``:
    caller turns committed in this session before the response was created.
    ``context_item_ids``: the conversation's items, in order, when the response was created:
    what the model answered (a caller turn the client deleted is not among them).
    """

    response_id: str
    item_id: str
    call_response_index: int
    turn_index: int
    trigger: ResponseTrigger
    caller_turns_before: int
    output_format: str
    bytes_per_ms: int
    audio_ms_total: float
    created_at: float
    first_audio_delta_at: float | None = None
    last_audio_delta_at: float | None = None
    audio_bytes_sent: int = 0
    status: str = "in_progress"
    status_reason: str | None = None
    done_at: float | None = None
    context_item_ids: tuple[str, ...] = ()

    @property
    def audio_ms_sent(self) -> float:
        """Ms of this response's audio written to the socket so far."""
        return self.audio_bytes_sent / self.bytes_per_ms

    def note_audio_sent(self, at: float, byte_count: int) -> None:
        if self.first_audio_delta_at is None:
            self.first_audio_delta_at = at
        self.last_audio_delta_at = at
        self.audio_bytes_sent += byte_count


@dataclass(frozen=True, slots=True)
class TruncateRecord:
    """A ``conversation.item.truncate`` received, with what had been sent for the item."""

    at: float
    item_id: str
    content_index: int
    audio_end_ms: int
    audio_ms_sent: float | None
    accepted: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRecord:
    """A ``response.cancel`` received; ``active_response_id`` is None when nothing was active."""

    at: float
    requested_response_id: str | None
    active_response_id: str | None


@dataclass(slots=True)
class ToolCallRecord:
    """A function call the emulated model made, and the output the client sent back.

    ``called_at`` is when ``response.function_call_arguments.done`` left the socket;
    ``output_at`` when the ``function_call_output`` item was received (both monotonic).
    """

    call_id: str
    name: str
    arguments: dict[str, Any]
    response_id: str
    item_id: str
    called_at: float
    output: str | None = None
    output_at: float | None = None
    output_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class TextInputRecord:
    """A user ``message`` item with ``input_text`` content created by the client.

    ``text`` joins the item's ``input_text`` parts; ``at`` is when the item was received.
    """

    text: str
    at: float
    item_id: str


@dataclass(frozen=True, slots=True)
class ClientItemRecord:
    """A conversation item the client created (``conversation.item.create``), as received.

    ``role`` is set for messages. ``text`` joins a message's ``input_text`` / ``text`` parts and
    the transcripts of its ``input_audio`` parts; for a ``function_call_output`` it is the
    output, for a ``function_call`` the arguments. ``call_id`` and ``name`` are set for function
    calls and outputs (``name`` for calls only).
    """

    at: float
    item_id: str
    type: str
    role: str | None = None
    text: str | None = None
    call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AppendRecord:
    """One ``input_audio_buffer.append`` as received: when, and the audio bytes it carried
    (decoded from base64, still in the session's input format), so a call's report can tell
    what the model heard from what the caller said (``callbridge.sim.continuity``)."""

    at: float
    audio: bytes
    ms: float


@dataclass(frozen=True, slots=True)
class EchoCancellation:
    """A session's ``input_audio_echo_cancellation`` as configured (see :mod:`.echo`):
    ``reference_source`` ``server`` with ``channels`` 1, or ``client`` with 2."""

    reference_source: Literal["server", "client"]
    channels: Literal[1, 2]

    @property
    def client_reference(self) -> bool:
        """The client sends the echo reference as channel 1 of stereo input."""
        return self.reference_source == "client"


@dataclass(frozen=True, slots=True)
class EchoPath:
    """The echo canceller's latest estimate: the reference reaches the microphone ``lag_ms``
    later, scaled by ``gain`` (0 while the reference is silent)."""

    lag_ms: float
    gain: float


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """An injected fault that fired on a session: ``at`` is ``time.monotonic()``."""

    kind: FaultKind
    at: float
    detail: str


@dataclass(frozen=True, slots=True)
class RefusedUpgrade:
    """An upgrade a ``Refuse`` fault turned away (there is no session record for it)."""

    at: float
    client_request_id: str | None
    call_session_index: int
    status: int


@dataclass(eq=False)
class EmulatorSession:
    """Everything recorded on one emulator connection, plus test hooks to poke it.

    ``index`` numbers connections from 0 in the order the emulator accepted them.
    ``client_request_id`` is the ``x-ms-client-request-id`` header of the WebSocket upgrade
    (the bridge sends its call connection id there), or None; sessions that share it belong to
    one call, and ``call_session_index`` numbers the call's upgrade attempts from 0 (refused
    ones count). ``caller_turns`` counts the caller turns committed in this session;
    ``client_items`` the items the client created, in order; ``appends`` the caller audio it
    appended; ``faults`` the injected faults
    that fired. ``upgrade_requested_at`` is
    when the upgrade request arrived, before any ``connect_delay_ms``; ``opened_at`` is when
    the WebSocket was established. ``offered_tools`` names the function tools of the current
    session configuration (set by the client's latest ``session.update``). ``features`` are the
    preview feature flags of the upgrade URL (``features=name:true,...``);
    ``echo_cancellation`` the session's current ``input_audio_echo_cancellation`` (None: off);
    ``echo_path`` the echo canceller's latest estimate, with a client reference. ``notes``
    explains what the emulator deliberately did not do, such as a scripted tool call it skipped
    because the client did not offer that tool, or a caller turn it started no response for.
    Lists grow as events happen; read them after the call (or live, from the same loop).
    """

    index: int
    model: str
    opened_at: float
    agent: str | None = None
    """The Voice Live agent (``agent-name``) the session talks to, if any."""
    client_request_id: str | None = None
    call_session_index: int = 0
    upgrade_requested_at: float | None = None
    closed_at: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    speech: list[SpeechRecord] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    truncations: list[TruncateRecord] = field(default_factory=list)
    cancels: list[CancelRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    text_inputs: list[TextInputRecord] = field(default_factory=list)
    client_items: list[ClientItemRecord] = field(default_factory=list)
    appends: list[AppendRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    caller_turns: int = 0
    offered_tools: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()
    echo_cancellation: EchoCancellation | None = None
    echo_path: EchoPath | None = None
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _wire: SocketSide | None = field(default=None, repr=False)
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    @property
    def speech_started_sent_at(self) -> list[float]:
        """When each ``input_audio_buffer.speech_started`` was written to the socket."""
        return [s.started_sent_at for s in self.speech if s.started_sent_at is not None]

    @property
    def greetings(self) -> list[ResponseRecord]:
        """Responses the client created before the caller said anything in this session: the
        greeting, or a reconnected session speaking first."""
        return [
            r
            for r in self.responses
            if r.trigger == "response.create" and r.caller_turns_before == 0
        ]

    @property
    def audio_ms_sent_by_item(self) -> dict[str, float]:
        """Ms of assistant audio sent per item id."""
        return {r.item_id: r.audio_ms_sent for r in self.responses}

    def tool_call(self, call_id: str) -> ToolCallRecord | None:
        """The function call the emulated model made with this ``call_id``, if any."""
        return next((c for c in self.tool_calls if c.call_id == call_id), None)

    def sent(self, event_type: str | None = None) -> list[EventRecord]:
        return self._events("sent", event_type)

    def received(self, event_type: str | None = None) -> list[EventRecord]:
        return self._events("received", event_type)

    def _events(self, direction: Direction, event_type: str | None) -> list[EventRecord]:
        return [
            e
            for e in self.events
            if e.direction == direction and (event_type is None or e.type == event_type)
        ]

    async def send_raw(self, text: str) -> None:
        """Queue a raw text frame after everything already queued (robustness tests)."""
        if self._wire is None or self.is_closed:
            raise RuntimeError(f"emulator session {self.index} is closed")
        self._wire.send_raw(text)

    async def close(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        """Close the connection from the service side once queued events are sent."""
        if self._wire is not None and not self.is_closed:
            self._wire.request_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _attach(self, wire: SocketSide) -> None:
        self._wire = wire

    def _mark_closed(self) -> None:
        self.closed_at = time.monotonic()
        self._wire = None
        self._closed.set()
