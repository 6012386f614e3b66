"""CallBridge: one phone call bridged to its Voice Live sessions.

The bridge only orchestrates. Three tasks per call, owned here and cancelled together:
- the caller's side: ACS media frames -> codec -> ``input_audio_buffer.append`` (silent frames
  too, so Voice Live's VAD measures the caller's pauses from real audio; ``CallerAudio``),
  keypad digits to the ``Keypad``; socket after socket, when ACS loses one and opens another
  (``MediaRejoin``);
- the agent's side: Voice Live's events, each handed to the part that owns it (``AgentPump``);
  Voice Live itself is reached through the call's ``VoiceLink``, which replaces a session that
  dies or grows old;
- the pacer: releases agent audio to ACS in real time and keeps the heard-position ledger.

Tool calls, keypad input, the call's time limit and the watchdogs run as short-lived helper
tasks the bridge also owns, so a slow tool never holds up barge-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from callbridge.adapters.held_session import HeldSession
from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.adapters.voice_live import context_items, session_request
from callbridge.bridge.actions import CallActions, hang_up
from callbridge.bridge.agent_pump import AgentPump
from callbridge.bridge.call_parts import CallParts, start_parts
from callbridge.bridge.caller_audio import CallerAudio
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.media_rejoin import MediaRejoin
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats, call_summary, log_call_ended
from callbridge.bridge.voice_link import VoiceLink
from callbridge.bridge.voice_session import SessionSource
from callbridge.core import acs_media
from callbridge.core.call_context import CallContext
from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import ContinuitySettings, PacingSettings
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import profile_tools

log = structlog.get_logger(__name__)

SESSION_CONFIGURED_TIMEOUT_S = 5.0
"""How long the first session may take to confirm its configuration before the fallback."""


class CallBridge:
    """Bridges one ACS media WebSocket to the call's Voice Live sessions until the call ends."""

    def __init__(
        self,
        *,
        acs: web.WebSocketResponse,
        first_session: HeldSession,
        sessions: SessionSource,
        profile: AgentProfile,
        pacing: PacingSettings,
        continuity: ContinuitySettings,
        transcription_model: str,
        actions: CallActions,
        draining: Callable[[], bool],
        telemetry: CallTelemetry | None = None,
        open_recorder: Callable[[int], CallRecorder] | None = None,
        rejoinable: bool = True,
    ) -> None:
        """``first_session``: the call's pre-warmed session (configured for its profile's
        rate), or one being opened; ``sessions`` opens the ones that replace it.
        ``draining``: whether the replica is draining (then a socket ACS lost is not waited
        for: a new one goes elsewhere). ``rejoinable``: ACS may open a new media socket for this
        call if this one is lost (False for a socket that named no ACS call)."""
        self._acs = MediaLine(acs)
        self._first_session = first_session
        self._profile = profile
        self._pacing = pacing
        self._continuity = continuity
        self._transcription_model = transcription_model
        self._call = actions
        self._telemetry = telemetry
        self._open_recorder = open_recorder
        # The call's ids, bound by the task that owns the call; re-bound where another task
        # (a replica draining) acts on the call, so its log lines still name the call.
        self._log_context = structlog.contextvars.get_contextvars()
        self._started_at = time.monotonic()
        self._tools = {spec.name: spec for spec in profile_tools(profile)}
        self.stats = CallStats()
        self.context = CallContext()
        self._helpers = OwnedTasks()
        self._link = VoiceLink(
            sessions=sessions,
            continuity=continuity,
            replay=lambda: context_items(
                self.context.entries(leave_out=self._link.unanswered_items)
            ),
        )
        self._responses = Responses(self._link)
        self._caller = CallerAudio(voice=self._link, stats=self.stats)
        self._media_rejoin = MediaRejoin(
            line=self._acs,
            caller=self._caller,
            call=actions,
            continuity=continuity,
            stats=self.stats,
            telemetry=telemetry,
            rejoinable=rejoinable,
            draining=draining,
        )
        self._parts: CallParts | None = None
        """Set once the first media frame says which rate ACS uses."""
        self._pump: AgentPump | None = None
        """Set with the parts; its ``session_ready`` says the agent has begun to speak."""

    async def run(self) -> CallStats:
        """Bridge until the call ends; always logs its ``call.ended`` and returns its stats."""
        try:
            await self._run()
        finally:
            self._media_rejoin.release_sockets()
            self.stats.sessions = self._link.sessions_used
            self.stats.reconnects = self._link.reconnects
            self.stats.rollovers = self._link.rollovers
            log_call_ended(self.stats, self._parts.pacer.core if self._parts else None)
            await self._link.aclose()
            await self._first_session.release()
        return self.stats

    async def _run(self) -> None:
        socket = self._acs.socket
        assert socket is not None  # the socket the call was bridged on
        first = await self._caller.first_message(socket)
        if first is None:
            return
        media_started = time.monotonic()
        rate = (
            first.sample_rate
            if isinstance(first, acs_media.AudioMetadata)
            else acs_media.DEFAULT_ACS_RATE
        )
        parts = self._parts = self._start_parts(rate)
        log.info("call.media_started", sample_rate=rate, audio_format=self._profile.audio_format)
        pump = self._pump = AgentPump(
            parts=parts,
            link=self._link,
            caller=self._caller,
            responses=self._responses,
            context=self.context,
            stats=self.stats,
            profile=self._profile,
            call=self._call,
            telemetry=self._telemetry,
        )
        self._link.watch(pump)
        request = session_request(
            self._profile, parts.codec, self._transcription_model, list(self._tools.values())
        )
        # A caller must not wait longer for the agent than for a stalled one.
        deadline = media_started + self._continuity.reconnect_budget_s
        connected = self._link.connect_first(
            self._first_session, request, rate=rate, deadline=deadline
        )
        if isinstance(first, acs_media.AudioData):
            await self._caller.forward(parts, first)
        self._helpers.spawn(parts.actions.time_limit(), "time-limit")
        self._helpers.spawn(self._media_rejoin.watch_for_stall(), "media-watchdog")
        try:
            await _run_until_first_done(
                caller=self._caller_side(parts, socket),
                agent=self._agent_side(pump, connected),
                pacer=parts.pacer.run(),
            )
        finally:
            parts.keypad.close()
            parts.actions.close()
            await self._helpers.aclose()
            if parts.recorder is not None:
                parts.recorder.event("bridge", "call_ended", ended_by=self.stats.ended_by)
                await parts.recorder.aclose()

    def _start_parts(self, rate: int) -> CallParts:
        return start_parts(
            rate,
            profile=self._profile,
            pacing=self._pacing,
            tools=self._tools,
            acs=self._acs,
            link=self._link,
            call=self._call,
            context=self.context,
            responses=self._responses,
            stats=self.stats,
            helpers=self._helpers,
            telemetry=self._telemetry,
            open_recorder=self._open_recorder,
            started_at=self._started_at,
        )

    async def _caller_side(self, parts: CallParts, socket: web.WebSocketResponse | None) -> None:
        """The caller's audio until the call ends. ACS may lose the media socket without the
        call ending: then the call waits ``media_rejoin_s`` for a new one."""
        while socket is not None:
            await self._caller.pump(socket, parts)
            if self._acs.ended or parts.actions.ending:
                log.info("call.media_closed_by_bridge", close_code=socket.close_code)
                return
            socket = await self._media_rejoin.after_loss(parts, socket)

    async def _agent_side(self, pump: AgentPump, connected: Coroutine[Any, Any, bool]) -> None:
        if not await connected:
            await pump.fall_back("Voice Live could not be reached in time")
            return
        self._helpers.spawn(self._await_session(pump), "session-watchdog")
        await pump.run()

    async def _await_session(self, pump: AgentPump) -> None:
        """No ``session.updated`` in time: the agent will never speak."""
        try:
            async with asyncio.timeout(SESSION_CONFIGURED_TIMEOUT_S):
                await pump.session_ready.wait()
        except TimeoutError:
            log.error("voice_live.session_not_configured", timeout_s=SESSION_CONFIGURED_TIMEOUT_S)
            self._link.give_up("Voice Live did not confirm the session's configuration")

    # --- told by the replica's handlers -------------------------------------------------------

    def can_rejoin(self) -> bool:
        """Whether the call is waiting for ACS to reconnect its media."""
        return self._media_rejoin.can_rejoin()

    async def rejoin(self, socket: web.WebSocketResponse) -> None:
        """A new media socket for this call (``can_rejoin``): returns once the bridge is done
        with it."""
        await self._media_rejoin.rejoin(socket)

    async def call_disconnected(self) -> None:
        """ACS says the call is over (``CallDisconnected``): end the bridge now."""
        with structlog.contextvars.bound_contextvars(**self._log_context):
            await self._media_rejoin.call_disconnected()

    async def shut_down(self, goodbye: str | None) -> None:
        """This replica is stopping: the configured goodbye (cutting the agent short), then
        hang up and close the media socket with 1001. A call waiting for its media to rejoin
        is hung up by that wait; one whose agent has not spoken yet (Voice Live still
        connecting) is hung up without a goodbye, and its agent never starts."""
        with structlog.contextvars.bound_contextvars(**self._log_context):
            if self.can_rejoin():
                # No socket to say goodbye on: the wait for one ends as it sees the replica
                # drain, and hangs up (``MediaRejoin``).
                return
            if self._parts is not None:
                agent_spoke = self._pump is not None and self._pump.session_ready.is_set()
                await self._parts.actions.shut_down(goodbye if agent_spoke else None)
                return
            # No media yet, so nothing was said: hang up without a goodbye.
            self.stats.ended_by = EndedBy.SHUTDOWN
            log.info("call.hanging_up", reason=EndedBy.SHUTDOWN)
            await hang_up(self._call)
            await self._acs.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")

    def summary(self) -> CallSummary:
        """The call's figures for telemetry (pacing figures only once media flowed)."""
        return call_summary(self.stats, self._parts.pacer.core if self._parts else None)

    async def transfer_failed(self) -> None:
        """ACS could not complete a transfer it had accepted: the caller is still here."""
        if self._parts is not None:
            await self._parts.actions.transfer_failed()


async def _run_until_first_done(**coroutines: Coroutine[Any, Any, None]) -> None:
    """Run named tasks until one finishes; cancel and await the rest; re-raise a failure."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coroutines.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
