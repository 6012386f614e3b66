"""The call's link to Voice Live: one session at a time, replaced when it dies or grows old.

A call outlives its Voice Live sessions. The link owns the current one and everything that keeps
the caller from noticing when it changes:

- **Reading.** Each session's events are read by a task of its own into one queue; the agent
  pump reads the queue, so a replaced session's late events are dropped, never handled.
- **Liveness.** A session is lost when its socket closes, when nothing readable comes for
  ``MAX_UNREADABLE_IN_A_ROW`` frames, when the WebSocket heartbeat goes unanswered (a frozen
  path; the heartbeat is set from ``voice_live_stall_s``), or when no event comes for
  ``voice_live_stall_s`` while a response is expected (after the caller's turn was committed,
  after ``response.create``, during a response). Voice Live is quiet while the caller talks, so
  silence is judged only where an answer is owed.
- **Reconnecting.** A lost session is replaced at once, with backoff, within
  ``reconnect_budget_s``: a new connection, ``session.update`` for the call, the context
  replayed as conversation items, then the caller's audio the old session never answered and the
  audio that arrived during the outage, so the model hears what was said. Audio is never sent
  to two sessions: while no session can take it, it is held (bounded by the budget).
- **Rolling over.** Before a session expires (its ``expires_at``, or ``session_max_s`` after it
  opened, whichever is sooner, less a margin) a standby session is opened and configured, and
  swapped in at a quiet moment (``Quiet``); past a hard deadline, at the end of an agent turn.

When a session cannot be replaced within the budget, the stream ends with ``AgentUnavailable``
and the bridge falls back to speaking to the caller itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import structlog
from azure.ai.voicelive.aio import ConnectionClosed, VoiceLiveConnection
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    ConversationRequestItem,
    RequestSession,
    ResponseCreateParams,
    ServerEvent,
    ServerEventError,
)

from callbridge.adapters.held_session import HeldSession
from callbridge.adapters.voice_live import (
    SESSION_UPDATE_EVENT_ID,
    configure_session,
    liveness_probe,
)
from callbridge.bridge.liveness import Liveness, Verdict
from callbridge.core.settings import ContinuitySettings
from callbridge.core.tasks import OwnedTasks

log = structlog.get_logger(__name__)

MAX_UNREADABLE_IN_A_ROW = 100
"""Consecutive undecodable Voice Live frames after which the connection is deemed broken."""

RESEND_MAX_S = 10.0
"""The most caller audio not yet answered that is kept to resend to a replacement session."""

RECONNECT_BACKOFF_S = (0.0, 0.25, 0.5, 1.0, 2.0)
"""Waits before each reconnect attempt (the last repeats) while the budget lasts."""

ROLLOVER_MARGIN_S = 60.0
"""A standby session is prepared this long before the current one expires (at most a quarter
of the session's lifetime, for short ones)."""

QUIET_POLL_S = 0.1
"""How often a prepared rollover checks for a quiet moment."""

FRAME_S = 0.02
"""One ACS media frame: caller audio is appended to Voice Live one frame at a time."""

LossReason = Literal["closed", "unreadable", "stalled", "expired"]


@dataclass(frozen=True, slots=True)
class SessionReplaced:
    """The stream goes on with events of a new session; the old one's state is gone."""

    kind: Literal["reconnect", "rollover"]
    lost_ms: float
    """How long the call had no working session (0 for a rollover)."""


@dataclass(frozen=True, slots=True)
class SessionLost:
    """The current session is gone; a replacement is being sought. Whatever the bridge knows
    of the lost session belongs in the context now: the replacement is told it next."""

    reason: str


@dataclass(frozen=True, slots=True)
class AgentUnavailable:
    """No session could be had within the budget: the last item of the stream."""

    reason: str


LinkEvent = ServerEvent | SessionLost | SessionReplaced | AgentUnavailable


@dataclass(frozen=True, slots=True)
class _Lost:
    """Queued by a session's reader when its socket is gone."""

    reason: LossReason
    detail: str = ""


class SessionSource(Protocol):
    """Opens the call's Voice Live sessions (connecting in the background)."""

    def open(self) -> HeldSession: ...


class Quiet(Protocol):
    """What the bridge knows of the call's moment, for a session swap."""

    def quiet(self) -> bool:
        """Nobody is talking: no agent audio playing, no response, the caller silent."""
        ...

    def turn_over(self) -> bool:
        """The agent is not talking and no response is being generated."""
        ...


class _Session:
    """One open Voice Live session of the call, and the task reading it."""

    def __init__(self, held: HeldSession, connection: VoiceLiveConnection) -> None:
        self.held = held
        self.connection = connection
        self.number = 0
        """Set when the session becomes the call's current one: its events are queued with it."""
        self.opened_at = time.monotonic()
        self.expires_at: float | None = None
        """Monotonic time the service said it expires, once known."""
        self.reader: asyncio.Task[None] | None = None
        self.closed = False


class VoiceLink:
    """The call's current Voice Live session and its replacements (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: SessionSource,
        continuity: ContinuitySettings,
        replay: Callable[[], list[ConversationRequestItem]],
    ) -> None:
        """``replay``: the context a new session is given (``adapters.voice_live.context_items``
        of the call's ``CallContext``)."""
        self._sessions = sessions
        self._continuity = continuity
        self._replay = replay
        self._configure: RequestSession | None = None
        self._current: _Session | None = None
        self._opened = 0
        self._events: asyncio.Queue[
            tuple[int, ServerEvent | _Lost | SessionReplaced | AgentUnavailable]
        ] = asyncio.Queue()
        self._held_audio: deque[str] | None = self._new_hold()
        """Caller audio waiting for a session (None: the current session takes it)."""
        self._unanswered: deque[str] = deque(maxlen=round(RESEND_MAX_S / FRAME_S))
        """Caller audio since the model last started answering: resent to a replacement."""
        self._unanswered_items: list[str] = []
        self._liveness = Liveness(continuity.voice_live_stall_s, time.monotonic())
        self._closing = False
        self._quiet: Quiet | None = None
        self._tasks = OwnedTasks()
        self.sessions_used = 0
        self.reconnects = 0
        self.rollovers = 0

    # --- opening ----------------------------------------------------------------------

    async def connect_first(
        self, first: HeldSession, configure: RequestSession, *, rate: int, deadline: float
    ) -> bool:
        """Take the call's first session (waiting for a pre-warmed one rather than racing it),
        retrying within ``deadline`` (monotonic); send ``configure`` unless the session was
        configured for ACS's ``rate`` already. False if no session could be had in time.

        The first session's ``session.created``/``session.updated`` reach the bridge through
        ``events`` (the greeting waits for them); a replacement's are read here instead."""
        self._configure = configure
        session, _ = await self._open_within(deadline, first=first, confirm=False)
        if session is None:
            return False
        if session.held is not first or first.configured_rate != rate:
            try:
                await configure_session(session.connection, configure)
            except VoiceLiveConnectionError as exc:
                log.error("voice_live.send_failed", error=str(exc))
        await self._swap_to(session, resend=[], replay=False)
        return True

    async def _open_within(
        self, deadline: float, *, first: HeldSession | None = None, confirm: bool
    ) -> tuple[_Session | None, int]:
        """A session open before ``deadline`` (monotonic), retrying with backoff; ``first`` (a
        session already opening) is tried first. ``confirm``: configure it and wait for Voice
        Live to confirm. The session (None if none in time) and the attempts made."""
        held = first
        attempt = 0
        while True:
            attempt += 1
            held = held or self._sessions.open()
            connection = await _ready(held, deadline)
            session = None if connection is None else _Session(held, connection)
            if session is not None and (not confirm or await self._prepare(session, deadline)):
                return session, attempt
            await held.release()
            held = None
            wait = RECONNECT_BACKOFF_S[min(attempt - 1, len(RECONNECT_BACKOFF_S) - 1)]
            if time.monotonic() + wait >= deadline:
                return None, attempt
            await asyncio.sleep(wait)

    def _new_hold(self) -> deque[str]:
        """Holds the caller's audio while no session can take it, as long as the budget."""
        return deque(maxlen=round(self._continuity.reconnect_budget_s / FRAME_S) + 1)

    def give_up(self, reason: str) -> None:
        """The current session cannot serve the call (the bridge found out): end the stream
        with ``AgentUnavailable``."""
        if self._current is not None:
            self._events.put_nowait((self._current.number, AgentUnavailable(reason)))

    def _install(self, session: _Session) -> None:
        self._opened += 1
        self.sessions_used += 1
        session.number = self._opened
        self._current = session
        session.reader = asyncio.create_task(
            self._read(session), name=f"voice-live-reader-{session.number}"
        )
        self._tasks.spawn(self._roll_over_in_time(session), "rollover")

    # --- the stream of events -----------------------------------------------------------

    async def events(self) -> AsyncIterator[LinkEvent]:
        """Every event of the call's current session, across replacements, until the link is
        closed or no session can be had (``AgentUnavailable``, then the end)."""
        # Fine enough that an overdue event is probed, and a dead session found, close to the
        # liveness bounds (quarters of the stall bound).
        poll_s = self._continuity.voice_live_stall_s / 8
        while not self._closing and self._current is not None:
            try:
                async with asyncio.timeout(poll_s):
                    number, item = await self._events.get()
            except TimeoutError:
                match self._liveness.check(time.monotonic()):
                    case Verdict.ALIVE:
                        continue
                    case Verdict.PROBE:
                        await self._send(liveness_probe())
                        continue
                    case Verdict.STALLED:
                        number = self._current.number
                        item = _Lost("stalled", f"{self._continuity.voice_live_stall_s} s")
            if number != self._current.number:
                continue  # a replaced session's last words
            if isinstance(item, SessionReplaced):
                yield item
                continue
            if isinstance(item, AgentUnavailable):
                yield item
                return
            if isinstance(item, _Lost):
                yield SessionLost(item.reason)
                replaced = await self._replace(item)
                yield replaced
                if isinstance(replaced, AgentUnavailable):
                    return
                continue
            self._observe(item)
            yield item

    def _observe(self, event: ServerEvent) -> None:
        """Track what the liveness check and the caller audio kept for resending need."""
        self._liveness.on_event(str(event.type), time.monotonic())
        match event.type:
            case "input_audio_buffer.committed":
                if isinstance(item_id := event.get("item_id"), str):
                    self._unanswered_items.append(item_id)
            case "response.created":
                self._unanswered.clear()
                self._unanswered_items.clear()
            case "session.created" | "session.updated" if self._current is not None:
                _note_expiry(self._current, event)

    @property
    def unanswered_items(self) -> frozenset[str]:
        """Caller items whose audio a replacement session is given again (so their text is
        left out of the replayed context)."""
        return frozenset(self._unanswered_items)

    # --- sending --------------------------------------------------------------------------

    async def append(self, audio: bytes, *, voiced: bool) -> None:
        """One frame of the caller's audio, to exactly one session; ``voiced``: ACS did not
        mark it silent."""
        self._liveness.on_caller_audio(voiced=voiced, now=time.monotonic())
        encoded = base64.b64encode(audio).decode()
        if self._held_audio is not None:
            self._held_audio.append(encoded)
            return
        self._unanswered.append(encoded)
        await self._send({"type": "input_audio_buffer.append", "audio": encoded})

    async def create_response(self, response: ResponseCreateParams | None = None) -> bool:
        self._liveness.on_response_requested(time.monotonic())
        return await self._call(lambda c: c.response.create(response=response))

    async def cancel_response(self, response_id: str) -> bool:
        return await self._call(lambda c: c.response.cancel(response_id=response_id))

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> bool:
        return await self._call(
            lambda c: c.conversation.item.truncate(
                item_id=item_id, content_index=content_index, audio_end_ms=audio_end_ms
            )
        )

    async def create_item(self, item: ConversationRequestItem) -> bool:
        return await self._call(lambda c: c.conversation.item.create(item=item))

    @property
    def answer_owed(self) -> bool:
        """Voice Live owes the call an answer: no session swap now."""
        return self._liveness.answer_owed

    async def _send(self, event: dict[str, str]) -> None:
        session = self._current
        if session is None:
            return
        try:
            await session.connection.send(event)
        except VoiceLiveConnectionError as exc:
            # The reader sees the socket go too and replaces the session; nothing more here.
            log.debug("voice_live.send_failed", error=str(exc))

    async def _call(self, send: Callable[[VoiceLiveConnection], Awaitable[None]]) -> bool:
        """Send one client event to the current session; False if none could take it (the
        call's context carries what matters to the next session)."""
        session = self._current
        if session is None or self._held_audio is not None:
            return False
        try:
            await send(session.connection)
        except VoiceLiveConnectionError as exc:
            log.warning("voice_live.send_failed", error=str(exc))
            return False
        return True

    # --- reading one session --------------------------------------------------------------

    async def _read(self, session: _Session) -> None:
        unreadable_in_a_row = 0
        put = self._events.put_nowait
        while True:
            try:
                event = await session.connection.recv()
            except ConnectionClosed as exc:
                put((session.number, _Lost("closed", f"code {exc.code}")))
                return
            except (VoiceLiveConnectionError, AttributeError, TypeError, ValueError) as exc:
                # The SDK raises on undecodable frames; one bad event must not end the call.
                unreadable_in_a_row += 1
                log.warning("voice_live.malformed_event", error=str(exc))
                if unreadable_in_a_row >= MAX_UNREADABLE_IN_A_ROW:
                    put((session.number, _Lost("unreadable", f"{unreadable_in_a_row} frames")))
                    return
                continue
            unreadable_in_a_row = 0
            if _expired(event):
                put((session.number, _Lost("expired", "the service said the session expired")))
            put((session.number, event))

    # --- replacing a session ----------------------------------------------------------------

    async def _replace(self, lost: _Lost) -> SessionReplaced | AgentUnavailable:
        """Reconnect within the budget; what happened, for the bridge."""
        started = time.monotonic()
        old = self._current
        assert old is not None  # only the current session's loss is acted on
        log.warning("voice_live.lost", reason=lost.reason, detail=lost.detail)
        self._held_audio = self._new_hold()
        self._tasks.spawn(_close(old), "close-lost-session")
        deadline = started + self._continuity.reconnect_budget_s
        session, attempts = await self._open_within(deadline, confirm=True)
        if session is None:
            log.error(
                "voice_live.reconnect_failed",
                budget_s=self._continuity.reconnect_budget_s,
                attempts=attempts,
            )
            self._current = None
            self._held_audio = None
            return AgentUnavailable(f"lost ({lost.reason}); no new session in time")
        await self._swap_to(session, resend=list(self._unanswered))
        self.reconnects += 1
        lost_ms = (time.monotonic() - started) * 1000
        log.info("voice_live.reconnected", attempts=attempts, outage_ms=round(lost_ms))
        return SessionReplaced("reconnect", lost_ms)

    async def _prepare(self, session: _Session, deadline: float) -> bool:
        """Configure a new session; True once Voice Live confirmed it before ``deadline``."""
        assert self._configure is not None  # set by connect_first
        connection = session.connection
        try:
            await configure_session(connection, self._configure)
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                while True:
                    event = await connection.recv()
                    if event.type in ("session.created", "session.updated"):
                        _note_expiry(session, event)
                    if event.type == "session.updated":
                        return True
                    if isinstance(event, ServerEventError) and _refused_configuration(event):
                        log.error("voice_live.session_rejected", message=event.error.message)
                        return False
        except (TimeoutError, VoiceLiveConnectionError) as exc:
            log.warning("voice_live.prepare_failed", error=str(exc) or type(exc).__name__)
            return False

    async def _swap_to(self, session: _Session, *, resend: list[str], replay: bool = True) -> None:
        """Make ``session`` current: the context first, then the caller audio to resend and
        the audio held meanwhile, then live audio; the old session's events are dropped from
        here on."""
        if self._held_audio is None:
            self._held_audio = deque()
        old = self._current
        self._current = session
        self._liveness = Liveness(self._continuity.voice_live_stall_s, time.monotonic())
        for item in self._replay() if replay else ():
            with contextlib.suppress(VoiceLiveConnectionError):
                await session.connection.conversation.item.create(item=item)
        self._unanswered.clear()
        self._unanswered_items.clear()
        held, self._held_audio = self._held_audio, None
        for encoded in [*resend, *held]:
            self._unanswered.append(encoded)
            with contextlib.suppress(VoiceLiveConnectionError):
                await session.connection.send(
                    {"type": "input_audio_buffer.append", "audio": encoded}
                )
        self._install(session)
        if old is not None and old is not session:
            self._tasks.spawn(_close(old), "close-old-session")

    # --- rollover -----------------------------------------------------------------------------

    def watch(self, quiet: Quiet) -> None:
        """Who says when a rollover may swap sessions (set once the call's parts exist)."""
        self._quiet = quiet

    @property
    def current_session(self) -> int:
        """The number of the call's current session (1 for the first)."""
        return self._current.number if self._current is not None else 0

    async def _roll_over_in_time(self, session: _Session) -> None:
        """Prepare a standby before ``session`` expires and swap at a quiet moment."""
        lifetime = self._continuity.session_max_s
        await asyncio.sleep(min(1.0, lifetime / 4))  # session.created/updated name its expiry
        while True:
            expires = session.opened_at + lifetime
            if session.expires_at is not None:
                expires = min(expires, session.expires_at)
            margin = min(ROLLOVER_MARGIN_S, (expires - session.opened_at) / 4)
            delay = expires - margin - time.monotonic()
            if delay <= 0:
                break
            await asyncio.sleep(min(delay, 1.0))  # re-read: expires_at may come later
        if self._current is not session or self._closing:
            return
        hard_deadline = expires - margin / 2
        held = self._sessions.open()
        connection = await _ready(held, hard_deadline)
        standby = None if connection is None else _Session(held, connection)
        if standby is None or not await self._prepare(standby, hard_deadline):
            log.warning("voice_live.rollover_not_ready")
            await held.release()
            return  # the expiring session is replaced as a loss, when it goes
        quiet = self._quiet
        while self._current is session and not self._closing:
            if self._liveness.answer_owed:
                pass  # an answer is on its way from this session: never swap it away
            elif (
                quiet is None
                or quiet.quiet()
                or (time.monotonic() >= hard_deadline and quiet.turn_over())
            ):
                break
            await asyncio.sleep(QUIET_POLL_S)
        if self._current is not session or self._closing:
            await held.release()
            return
        await self._swap_to(standby, resend=[])
        self.rollovers += 1
        self._events.put_nowait((standby.number, SessionReplaced("rollover", 0.0)))
        log.info("voice_live.rolled_over", session=standby.number)

    # --- closing --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """The call is over: close the session and stop everything the link runs."""
        self._closing = True
        session, self._current = self._current, None
        await self._tasks.aclose()
        if session is not None:
            await _close(session)


async def _ready(held: HeldSession, deadline: float) -> VoiceLiveConnection | None:
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await held.connection()
    except (TimeoutError, VoiceLiveConnectionError) as exc:
        log.warning("voice_live.unavailable", error=str(exc) or type(exc).__name__)
        return None


async def _close(session: _Session) -> None:
    """Stop reading the session and close it (once: a lost session is closed as soon as it is
    lost, before its replacement takes its place)."""
    if session.closed:
        return
    session.closed = True
    if session.reader is not None:
        session.reader.cancel()
        await asyncio.gather(session.reader, return_exceptions=True)
    await session.held.release()


def _note_expiry(session: _Session, event: ServerEvent) -> None:
    """``expires_at`` is epoch seconds on the wire (API reference 2026-07-15, session object);
    SDK 1.3.1 reads it as a ``datetime``. Either is taken; the link times on the monotonic
    clock."""
    expires_at = getattr(getattr(event, "session", None), "expires_at", None)
    if isinstance(expires_at, datetime):
        expires_at = expires_at.timestamp()
    if not isinstance(expires_at, int | float) or expires_at <= 0:
        return
    session.expires_at = time.monotonic() + (expires_at - time.time())


def _expired(event: ServerEvent) -> bool:
    """An ``error`` saying the session has expired (the code is not published for Voice Live;
    OpenAI Realtime's is ``session_expired``)."""
    if not isinstance(event, ServerEventError):
        return False
    return getattr(event.error, "code", None) == "session_expired"


def _refused_configuration(event: ServerEventError) -> bool:
    return getattr(event.error, "event_id", None) == SESSION_UPDATE_EVENT_ID
