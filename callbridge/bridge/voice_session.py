"""One Voice Live session of a call, as the call's link uses it: opened, confirmed, read, closed.

- **Opening.** ``open_session`` retries with backoff until a deadline: the first session of a
  call, and the one that replaces a lost session. ``open_once`` is one attempt (a rollover's
  standby gets one). A session that fails, or whose caller stops waiting for it, is released
  here: nobody else holds it.
- **Confirming.** A session replacing another is configured for the call and taken only once
  Voice Live answered with ``session.updated``; its ``session.created``/``session.updated`` are
  read here, before anyone else reads it.
- **Reading.** Once the session is the call's, a task of its own reads it into the link's
  queue, tagged with the session's number; a socket that closes, or sends nothing readable for
  ``MAX_UNREADABLE_IN_A_ROW`` frames, is queued as a ``Loss``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import structlog
from azure.ai.voicelive.aio import ConnectionClosed, VoiceLiveConnection
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import RequestSession, ServerEvent, ServerEventError

from callbridge.adapters.held_session import HeldSession
from callbridge.adapters.voice_appends import AppendWriter
from callbridge.adapters.voice_events import (
    AudioDelta,
    OtherEvent,
    TranscriptDelta,
    VoiceEvent,
    read_event,
)
from callbridge.adapters.voice_live import SESSION_UPDATE_EVENT_ID, configure_session

log = structlog.get_logger(__name__)

MAX_UNREADABLE_IN_A_ROW = 100
"""Consecutive undecodable Voice Live frames after which the connection is deemed broken."""

UNREADABLE_FRAME_ERRORS = (VoiceLiveConnectionError, AttributeError, TypeError, ValueError)
"""What the SDK's ``recv`` raises on a frame it cannot read (1.3.1: ``ConnectionError`` for one
that is not JSON, ``AttributeError`` for JSON that is not an object, such as ``null``): one
unreadable frame, counted, never the end of the call. Pinned by tests/adversarial/
test_parser_fuzz.py."""

OPEN_BACKOFF_S = (0.0, 0.25, 0.5, 1.0, 2.0)
"""Waits before each attempt to open a session (the last repeats) while the deadline allows."""

LossReason = Literal["closed", "unreadable", "stalled", "expired"]


@dataclass(frozen=True, slots=True)
class Loss:
    """A session is gone: queued by its reader, or found by the link's liveness check."""

    reason: LossReason
    detail: str = ""


Queued = tuple[int, VoiceEvent | Loss]
"""What a session's reader queues: the session's number, and its event or its loss."""


class SessionSource(Protocol):
    """Opens the call's Voice Live sessions (connecting in the background)."""

    def open(self) -> HeldSession: ...


class VoiceSession:
    """One open Voice Live session of the call, and the task reading it."""

    def __init__(self, held: HeldSession, connection: VoiceLiveConnection) -> None:
        self.held = held
        self.connection = connection
        self._appends = AppendWriter(connection)
        self.number = 0
        """Set when the session becomes the call's current one: its events are queued with it."""
        self.opened_at = time.monotonic()
        self.expires_at: float | None = None
        """Monotonic time the service said it expires, once known."""
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    def start_reading(self, number: int, put: Callable[[Queued], None]) -> None:
        """The session is the call's now, as number ``number``: read it into ``put``."""
        self.number = number
        self._reader = asyncio.create_task(self._read(put), name=f"voice-live-reader-{number}")

    async def confirm(self, configure: RequestSession, deadline: float) -> bool:
        """Configure the session; True once Voice Live confirmed it before ``deadline``."""
        try:
            await configure_session(self.connection, configure)
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                while True:
                    event = read_event(await self.connection.recv_bytes())
                    if isinstance(event, AudioDelta | TranscriptDelta | OtherEvent):
                        continue  # nothing is said before the session is configured
                    if event.type in ("session.created", "session.updated"):
                        self.note_expiry(event)
                    if event.type == "session.updated":
                        return True
                    if isinstance(event, ServerEventError) and _refused_configuration(event):
                        log.error("voice_live.session_rejected", message=event.error.message)
                        return False
        except (TimeoutError, VoiceLiveConnectionError) as exc:
            log.warning("voice_live.prepare_failed", error=str(exc) or type(exc).__name__)
            return False

    def note_expiry(self, event: ServerEvent) -> None:
        """``expires_at`` is epoch seconds on the wire (API reference 2026-07-15, session
        object); SDK 1.3.1 reads it as a ``datetime``. Either is taken; the link times on the
        monotonic clock."""
        expires_at = getattr(getattr(event, "session", None), "expires_at", None)
        if isinstance(expires_at, datetime):
            expires_at = expires_at.timestamp()
        if not isinstance(expires_at, int | float) or expires_at <= 0:
            return
        self.expires_at = time.monotonic() + (expires_at - time.time())

    def expires(self, lifetime_s: float) -> float:
        """When the session expires (monotonic): its ``expires_at``, or ``lifetime_s`` after it
        opened, whichever is sooner."""
        expires = self.opened_at + lifetime_s
        return expires if self.expires_at is None else min(expires, self.expires_at)

    async def send(self, event: dict[str, str]) -> None:
        """Send one client event; a failure is the reader's to notice (the socket is gone)."""
        try:
            await self.connection.send(event)
        except VoiceLiveConnectionError as exc:
            log.debug("voice_live.send_failed", error=str(exc))

    async def send_append(self, message: bytes) -> None:
        """Send one ``input_audio_buffer.append`` (``adapters.voice_appends``); a failure is the
        reader's to notice, as for ``send``."""
        try:
            await self._appends.send(message)
        except VoiceLiveConnectionError as exc:
            log.debug("voice_live.send_failed", error=str(exc))

    async def close(self) -> None:
        """Stop reading the session and close it (once: a lost session is closed as soon as
        it is lost, before its replacement takes its place)."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.held.release()

    async def _read(self, put: Callable[[Queued], None]) -> None:
        unreadable_in_a_row = 0
        while True:
            try:
                event = read_event(await self.connection.recv_bytes())
            except ConnectionClosed as exc:
                put((self.number, Loss("closed", f"code {exc.code}")))
                return
            except UNREADABLE_FRAME_ERRORS as exc:
                unreadable_in_a_row += 1
                log.warning("voice_live.malformed_event", error=str(exc))
                if unreadable_in_a_row >= MAX_UNREADABLE_IN_A_ROW:
                    put((self.number, Loss("unreadable", f"{unreadable_in_a_row} frames")))
                    return
                continue
            unreadable_in_a_row = 0
            if _expired(event):
                put((self.number, Loss("expired", "the service said the session expired")))
            put((self.number, event))


async def open_session(
    sessions: SessionSource,
    deadline: float,
    *,
    first: HeldSession | None = None,
    configure: RequestSession | None = None,
) -> tuple[VoiceSession | None, int]:
    """A session open before ``deadline`` (monotonic), retrying with backoff; ``first`` (a
    session already opening) is tried first. ``configure``: see ``open_once``. The session
    (None if none in time) and the attempts made."""
    held = first
    attempt = 0
    while True:
        attempt += 1
        session = await open_once(held or sessions.open(), deadline, configure)
        if session is not None:
            return session, attempt
        held = None
        wait = OPEN_BACKOFF_S[min(attempt - 1, len(OPEN_BACKOFF_S) - 1)]
        if time.monotonic() + wait >= deadline:
            return None, attempt
        await asyncio.sleep(wait)


async def open_once(
    held: HeldSession, deadline: float, configure: RequestSession | None
) -> VoiceSession | None:
    """``held`` once connected before ``deadline``, and, given ``configure``, configured and
    confirmed; otherwise (or if the wait is cancelled) it is released, and None."""
    session: VoiceSession | None = None
    try:
        connection = await _connected(held, deadline)
        if connection is not None:
            opened = VoiceSession(held, connection)
            if configure is None or await opened.confirm(configure, deadline):
                session = opened
    finally:
        if session is None:
            await held.release()
    return session


async def _connected(held: HeldSession, deadline: float) -> VoiceLiveConnection | None:
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await held.connection()
    except (TimeoutError, VoiceLiveConnectionError) as exc:
        log.warning("voice_live.unavailable", error=str(exc) or type(exc).__name__)
        return None


def _expired(event: VoiceEvent) -> bool:
    """An ``error`` saying the session has expired (the code is not published for Voice Live;
    OpenAI Realtime's is ``session_expired``)."""
    if not isinstance(event, ServerEventError):
        return False
    return getattr(event.error, "code", None) == "session_expired"


def _refused_configuration(event: ServerEventError) -> bool:
    return getattr(event.error, "event_id", None) == SESSION_UPDATE_EVENT_ID
