"""The call's link to Voice Live: one session at a time, replaced when it dies or grows old.

A call outlives its Voice Live sessions. The link owns the current one and everything that keeps
the caller from noticing when it changes:

- **Reading.** Each session's events are read by a task of its own into one queue
  (``voice_session``); the agent pump reads the queue, so a replaced session's late events are
  dropped, never handled.
- **Liveness.** A session is lost when its socket closes, when nothing readable comes for
  ``MAX_UNREADABLE_IN_A_ROW`` frames, when the WebSocket heartbeat goes unanswered (a frozen
  path; the heartbeat is set from ``voice_live_stall_s``), or when no event comes for
  ``voice_live_stall_s`` where Voice Live owes one (``liveness``).
- **Reconnecting.** A lost session is replaced at once, within ``reconnect_budget_s``: by the
  standby a rollover prepared, if there is one, else by a new session opened with backoff;
  ``session.update`` for the call, the context replayed as conversation items, then the
  caller's audio the old session never answered and the audio that arrived during the outage
  (``caller_audio_backlog``), so the model hears what was said.
- **Rolling over.** Before a session expires a standby is prepared and swapped in at a quiet
  moment (``rollover``).

When a session cannot be replaced within the budget, the stream ends with ``AgentUnavailable``
and the bridge falls back to speaking to the caller itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection
from azure.ai.voicelive.models import (
    ConversationRequestItem,
    RequestSession,
    ResponseCreateParams,
)

from callbridge.adapters.held_session import HeldSession
from callbridge.adapters.voice_appends import append_message
from callbridge.adapters.voice_events import AudioDelta, OtherEvent, TranscriptDelta, VoiceEvent
from callbridge.adapters.voice_live import configure_session, liveness_probe
from callbridge.bridge.caller_audio_backlog import CallerAudioBacklog
from callbridge.bridge.liveness import Liveness, Verdict
from callbridge.bridge.rollover import Quiet, Rollover
from callbridge.bridge.silence_batches import Batch, SilenceBatches
from callbridge.bridge.voice_session import (
    Loss,
    SessionSource,
    VoiceSession,
    open_session,
)
from callbridge.core.settings import ContinuitySettings
from callbridge.core.tasks import OwnedTasks

log = structlog.get_logger(__name__)


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


LinkEvent = VoiceEvent | SessionLost | SessionReplaced | AgentUnavailable


class _Check:
    """Queued every eighth of the stall bound: time to check the session's liveness."""


_CHECK = _Check()
_LIVENESS = -1
"""The session number a liveness check is queued under (no session's)."""


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
        self._current: VoiceSession | None = None
        self._opened = 0
        self._events: asyncio.Queue[
            tuple[int, VoiceEvent | Loss | SessionReplaced | AgentUnavailable | _Check]
        ] = asyncio.Queue()
        self._backlog = CallerAudioBacklog(continuity.reconnect_budget_s)
        self._silence = SilenceBatches()
        self._liveness = Liveness(continuity.voice_live_stall_s, time.monotonic())
        self._rollover = Rollover(self, sessions, continuity.session_max_s)
        self._closing = False
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
        ``events`` (the greeting waits for them); a replacement's are read before it is taken."""
        self._configure = configure
        session, _ = await open_session(self._sessions, deadline, first=first)
        if session is None:
            return False
        if session.held is not first or first.configured_rate != rate:
            try:
                await configure_session(session.connection, configure)
            except VoiceLiveConnectionError as exc:
                log.error("voice_live.send_failed", error=str(exc))
        await self._swap_to(session, resend_unanswered=False, replay=False)
        return True

    def give_up(self, reason: str) -> None:
        """The current session cannot serve the call (the bridge found out): end the stream
        with ``AgentUnavailable``."""
        if self._current is not None:
            self._events.put_nowait((self._current.number, AgentUnavailable(reason)))

    # --- the stream of events -----------------------------------------------------------

    async def events(self) -> AsyncIterator[LinkEvent]:
        """Every event of the call's current session, across replacements, until the link is
        closed or no session can be had (``AgentUnavailable``, then the end)."""
        # Checked often enough that an overdue event is probed, and a dead session found, close
        # to the liveness bounds (quarters of the stall bound); by one timer for the whole
        # stream rather than a timeout around each event read.
        ticker = asyncio.create_task(
            self._tick(self._continuity.voice_live_stall_s / 8), name="voice-live-liveness"
        )
        try:
            while not self._closing and self._current is not None:
                number, item = await self._events.get()
                if isinstance(item, _Check):
                    match self._liveness.check(time.monotonic()):
                        case Verdict.ALIVE:
                            continue
                        case Verdict.PROBE:
                            await self._current.send(liveness_probe())
                            continue
                        case Verdict.STALLED:
                            number = self._current.number
                            item = Loss("stalled", f"{self._continuity.voice_live_stall_s} s")
                if number != self._current.number:
                    continue  # a replaced session's last words
                if isinstance(item, SessionReplaced):
                    yield item
                    continue
                if isinstance(item, AgentUnavailable):
                    yield item
                    return
                if isinstance(item, Loss):
                    yield SessionLost(item.reason)
                    replaced = await self._replace(item)
                    yield replaced
                    if isinstance(replaced, AgentUnavailable):
                        return
                    continue
                self._observe(item)
                yield item
        finally:
            ticker.cancel()

    async def _tick(self, every_s: float) -> None:
        """Queue a liveness check every ``every_s``, events or none."""
        while True:
            await asyncio.sleep(every_s)
            self._events.put_nowait((_LIVENESS, _CHECK))

    def _observe(self, event: VoiceEvent) -> None:
        """Track what the liveness check, the caller audio kept for resending and the silence
        held between turns need."""
        kind = str(event.type)
        self._liveness.on_event(kind, time.monotonic())
        if isinstance(event, AudioDelta | TranscriptDelta):
            return  # the agent talking: nothing more to track
        self._silence.on_event(kind)
        if isinstance(event, OtherEvent):
            return  # none of the rest follows an event by its type alone
        self._backlog.on_event(event)
        if kind in ("session.created", "session.updated") and self._current is not None:
            self._current.note_expiry(event)

    @property
    def unanswered_items(self) -> frozenset[str]:
        """Caller items whose audio a replacement session is given again (so their text is
        left out of the replayed context)."""
        return self._backlog.unanswered_items

    @property
    def current_session(self) -> int:
        """The number of the call's current session (1 for the first)."""
        return self._current.number if self._current is not None else 0

    # --- sending --------------------------------------------------------------------------

    async def append(self, audio: bytes, *, voiced: bool) -> None:
        """One frame of the caller's audio, to exactly one session (silence between turns a
        few frames at a time: ``silence_batches``); ``voiced``: ACS did not mark it silent."""
        self._liveness.on_caller_audio(voiced=voiced, now=time.monotonic())
        await self._send_audio(self._silence.take(audio, silent=not voiced))

    async def _send_audio(self, batch: Batch | None) -> None:
        if batch is None:
            return
        message = append_message(batch.audio)
        if self._backlog.admit(message, batch.frames) and self._current is not None:
            await self._current.send_append(message)

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

    async def delete_item(self, item_id: str) -> bool:
        return await self._call(lambda c: c.conversation.item.delete(item_id=item_id))

    async def create_item(self, item: ConversationRequestItem) -> bool:
        return await self._call(lambda c: c.conversation.item.create(item=item))

    async def _call(self, send: Callable[[VoiceLiveConnection], Awaitable[None]]) -> bool:
        """Send one client event to the current session; False if none could take it (the
        call's context carries what matters to the next session)."""
        session = self._current
        if session is None or self._backlog.holding:
            return False
        try:
            await send(session.connection)
        except VoiceLiveConnectionError as exc:
            log.warning("voice_live.send_failed", error=str(exc))
            return False
        return True

    # --- replacing a session ----------------------------------------------------------------

    async def _replace(self, loss: Loss) -> SessionReplaced | AgentUnavailable:
        """Replace the lost current session within the budget; what happened, for the bridge."""
        started = time.monotonic()
        old = self._current
        assert old is not None  # only the current session's loss is acted on
        log.warning("voice_live.lost", reason=loss.reason, detail=loss.detail)
        self._backlog.hold()
        self._tasks.spawn(old.close(), "close-lost-session")
        # A standby prepared for a rollover that came too late is as good as a new session.
        session, attempts = await self._rollover.take_standby(), 0
        if session is None:
            deadline = started + self._continuity.reconnect_budget_s
            session, attempts = await open_session(
                self._sessions, deadline, configure=self._configure
            )
        if session is None:
            log.error(
                "voice_live.reconnect_failed",
                budget_s=self._continuity.reconnect_budget_s,
                attempts=attempts,
            )
            self._current = None
            return AgentUnavailable(f"lost ({loss.reason}); no new session in time")
        await self._swap_to(session, resend_unanswered=True)
        self.reconnects += 1
        lost_ms = (time.monotonic() - started) * 1000
        log.info(
            "voice_live.reconnected",
            attempts=attempts,
            standby=attempts == 0,
            outage_ms=round(lost_ms),
        )
        return SessionReplaced("reconnect", lost_ms)

    async def _swap_to(
        self, session: VoiceSession, *, resend_unanswered: bool, replay: bool = True
    ) -> None:
        """Make ``session`` current: the context first, then the caller's audio it must hear
        (``CallerAudioBacklog.hand_over``), then live audio; the old session's events are
        dropped from here on."""
        self._backlog.hold()
        old = self._current
        self._current = session
        self._liveness = Liveness(self._continuity.voice_live_stall_s, time.monotonic())
        for item in self._replay() if replay else ():
            with contextlib.suppress(VoiceLiveConnectionError):
                await session.connection.conversation.item.create(item=item)
        await self._backlog.hand_over(
            session.send_append,
            resend_unanswered=resend_unanswered,
        )
        self._install(session)
        if old is not None and old is not session:
            self._tasks.spawn(old.close(), "close-old-session")

    def _install(self, session: VoiceSession) -> None:
        self._opened += 1
        self.sessions_used += 1
        session.start_reading(self._opened, self._events.put_nowait)
        assert self._configure is not None  # set by connect_first, before any session
        self._tasks.spawn(self._rollover.run_for(session, self._configure), "rollover")

    # --- rollover (``rollover.RolloverLink``) ---------------------------------------------

    def watch(self, quiet: Quiet) -> None:
        """Who says when a rollover may swap sessions (set once the call's parts exist)."""
        self._rollover.watch(quiet)

    def is_current(self, session: VoiceSession) -> bool:
        # Holding: the session was lost, or a swap is under way; either way it is not to be
        # rolled over.
        return self._current is session and not self._backlog.holding and not self._closing

    @property
    def answer_owed(self) -> bool:
        """Voice Live owes the call an answer: no session swap now."""
        return self._liveness.answer_owed

    async def roll_over_to(self, standby: VoiceSession) -> None:
        await self._swap_to(standby, resend_unanswered=False)
        self.rollovers += 1
        self._events.put_nowait((standby.number, SessionReplaced("rollover", 0.0)))
        log.info("voice_live.rolled_over", session=standby.number)

    # --- closing --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """The call is over: close the session and stop everything the link runs."""
        # The caller's last silent frames, so the session heard all the caller sent.
        await self._send_audio(self._silence.drain())
        self._closing = True
        session, self._current = self._current, None
        await self._tasks.aclose()
        await self._rollover.aclose()
        if session is not None:
            await session.close()
