"""CallBridge: one phone call bridged to one Voice Live session.

The bridge only orchestrates. Three tasks per call, owned here and cancelled together:
- the caller pump: ACS media frames -> codec -> ``input_audio_buffer.append`` (silent frames
  too, so Voice Live's VAD measures the caller's pauses from real audio); keypad digits to the
  ``Keypad``;
- the agent pump: Voice Live events, each handed to the part that owns it: agent audio
  (``AgentAudio``), barge-in (``Interruption``), tools and the call's end (``AgentActions``),
  the conversation so far (``CallContext``); Voice Live itself is reached through the call's
  ``VoiceLink``, which replaces a session that dies or grows old, and when no agent can talk
  the bridge speaks its fallback message (``fallback``);
- the pacer: releases agent audio to ACS in real time and keeps the heard-position ledger.

Tool calls, keypad input and the call's time limit run as short-lived helper tasks the bridge
also owns, so a slow tool never holds up barge-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.models import (
    ResponseFunctionCallItem,
    ServerEvent,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferCommitted,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventInputAudioBufferSpeechStopped,
    ServerEventResponseAudioDelta,
    ServerEventResponseAudioDone,
    ServerEventResponseAudioTranscriptDelta,
    ServerEventResponseAudioTranscriptDone,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventResponseOutputItemAdded,
    ServerEventSessionUpdated,
)

from callbridge.adapters.held_session import HeldSession
from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.adapters.voice_live import (
    LIVENESS_PROBE_EVENT_ID,
    SESSION_UPDATE_EVENT_ID,
    context_items,
    greeting_request,
    session_request,
)
from callbridge.bridge.actions import AgentActions, CallActions, hang_up
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.caller_audio import CallerAudio
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.fallback import fall_back
from callbridge.bridge.interruption import Interruption
from callbridge.bridge.keypad import Keypad
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats, call_summary, log_call_ended
from callbridge.bridge.voice_link import (
    AgentUnavailable,
    SessionLost,
    SessionReplaced,
    SessionSource,
    VoiceLink,
)
from callbridge.core import acs_media
from callbridge.core.call_context import CallContext
from callbridge.core.codec import Codec, make_codec
from callbridge.core.ended_by import EndedBy
from callbridge.core.pacing import OutFrame
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import ContinuitySettings, PacingSettings
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import profile_tools

log = structlog.get_logger(__name__)

SESSION_CONFIGURED_TIMEOUT_S = 5.0
"""How long the first session may take to confirm its configuration before the fallback."""

CALLER_QUIET_S = 0.3
"""A session swap waits until ACS has marked the caller's frames silent for this long."""

DISCONNECT_GRACE_S = 0.5
"""After the media socket closes, how long ACS's ``CallDisconnected`` may take to arrive before
ACS is asked whether the call goes on (a caller hanging up closes both, about together)."""

MEDIA_WATCH_S = 0.5
"""How often the media socket's silence is checked (``media_stall_s``)."""

_Rejoin = tuple[web.WebSocketResponse, asyncio.Event]
"""A new media socket for the call, and the event the bridge sets when it is done with it."""


@dataclass(frozen=True, slots=True)
class _Media:
    """The parts of a call that exist once ACS's first media frame says which rate it uses."""

    codec: Codec
    pacer: FramePacer
    agent_audio: AgentAudio
    interruption: Interruption
    keypad: Keypad
    actions: AgentActions


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
        telemetry: CallTelemetry | None = None,
        open_recorder: Callable[[int], CallRecorder] | None = None,
        rejoinable: bool = True,
    ) -> None:
        """``first_session``: the call's pre-warmed session (configured for its profile's
        rate), or one being opened; ``sessions`` opens the ones that replace it.
        ``rejoinable``: ACS may open a new media socket for this call if this one is lost
        (False for a socket that named no ACS call)."""
        self._acs = MediaLine(acs)
        self._rejoinable = rejoinable
        self._rejoin: asyncio.Future[_Rejoin | None] | None = None
        self._sockets_done: list[asyncio.Event] = []
        self._disconnected = asyncio.Event()
        self._first_session = first_session
        self._profile = profile
        self._pacing = pacing
        self._continuity = continuity
        self._transcription_model = transcription_model
        self._call = actions
        self._telemetry = telemetry
        self._open_recorder = open_recorder
        self._recorder: CallRecorder | None = None
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
        self._caller_speaking = False
        self._session_ready = asyncio.Event()
        """Set on the first ``session.updated``: the agent is configured and greets."""
        self._media: _Media | None = None
        """Set once the first media frame says which rate ACS uses."""

    async def run(self) -> CallStats:
        """Bridge until the call ends; always logs its ``call.ended`` and returns its stats."""
        try:
            await self._run()
        finally:
            for done in self._sockets_done:
                done.set()
            self.stats.sessions = self._link.sessions_used
            self.stats.reconnects = self._link.reconnects
            self.stats.rollovers = self._link.rollovers
            log_call_ended(self.stats, self._media.pacer.core if self._media else None)
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
        media = self._media = self._start_media(rate)
        log.info("call.media_started", sample_rate=rate, audio_format=self._profile.audio_format)
        self._link.watch(self)
        request = session_request(
            self._profile, media.codec, self._transcription_model, list(self._tools.values())
        )
        # A caller must not wait longer for the agent than for a stalled one.
        deadline = media_started + self._continuity.reconnect_budget_s
        connected = self._link.connect_first(
            self._first_session, request, rate=rate, deadline=deadline
        )
        if isinstance(first, acs_media.AudioData):
            await self._caller.forward(media.codec, first, self._recorder)
        self._helpers.spawn(media.actions.time_limit(), "time-limit")
        self._helpers.spawn(self._watch_media(), "media-watchdog")
        try:
            await _run_until_first_done(
                caller=self._caller_side(media, socket),
                agent=self._agent_pump(media, connected),
                pacer=media.pacer.run(),
            )
        finally:
            media.keypad.close()
            media.actions.close()
            await self._helpers.aclose()
            if self._recorder is not None:
                self._recorder.event("bridge", "call_ended", ended_by=self.stats.ended_by)
                await self._recorder.aclose()

    def _start_media(self, rate: int) -> _Media:
        codec = make_codec(self._profile.audio_format, rate)
        self._recorder = self._start_recording(rate)
        pacer = FramePacer(
            self._acs.send_str,
            lead_ms=self._pacing.lead_ms,
            playout_delay_ms=self._pacing.playout_delay_ms,
            marks=self._pacing.acs_marks,
            on_sent=self._record_sent_frame if self._recorder is not None else None,
        )
        agent_audio = AgentAudio(
            codec=codec,
            pacer=pacer,
            responses=self._responses,
            stats=self.stats,
            telemetry=self._telemetry,
            keep_pcm=self._recorder is not None,
            started_at=self._started_at,
        )
        interruption = Interruption(
            acs=self._acs,
            voice=self._link,
            context=self.context,
            codec=codec,
            pacer=pacer,
            agent_audio=agent_audio,
            responses=self._responses,
            stats=self.stats,
            telemetry=self._telemetry,
            recorder=self._recorder,
        )
        keypad = Keypad(
            voice=self._link,
            context=self.context,
            responses=self._responses,
            stats=self.stats,
            helpers=self._helpers,
            recorder=self._recorder,
        )
        actions = AgentActions(
            acs=self._acs,
            voice=self._link,
            context=self.context,
            profile=self._profile,
            tools=self._tools,
            call=self._call,
            pacer=pacer,
            frame_ms=codec.frame_ms,
            interruption=interruption,
            responses=self._responses,
            stats=self.stats,
            helpers=self._helpers,
            recorder=self._recorder,
        )
        return _Media(codec, pacer, agent_audio, interruption, keypad, actions)

    def _start_recording(self, rate: int) -> CallRecorder | None:
        if self._open_recorder is None:
            return None
        try:
            recorder = self._open_recorder(rate)
        except OSError as exc:  # a full or read-only disk must not stop the call
            log.error("recording.unavailable", error=str(exc))
            return None
        log.info("recording.started", path=str(recorder.path))
        return recorder

    def _record_sent_frame(self, frame: OutFrame) -> None:
        assert self._recorder is not None  # installed only with a recorder
        item_id, content_index = frame.key
        self._recorder.agent_audio(
            frame.pcm,
            item_id=item_id,
            content_index=content_index,
            response_id=self._responses.item_response.get(item_id),
        )

    # --- the caller's side, socket after socket ------------------------------------------------

    async def _caller_side(self, media: _Media, socket: web.WebSocketResponse | None) -> None:
        """The caller's audio until the call ends. ACS may lose the media socket without the
        call ending: then the call waits ``media_rejoin_s`` for a new one."""
        while socket is not None:
            await self._caller.pump(
                socket, media.codec, media.keypad, media.pacer.on_mark, self._recorder
            )
            if self._acs.ended or media.actions.ending:
                log.info("call.media_closed_by_bridge", close_code=socket.close_code)
                return
            # ACS may reconnect at once: a new socket is taken from now on.
            self._rejoin = asyncio.get_running_loop().create_future()
            if not await self._call_goes_on():
                self._rejoin = None
                log.info("call.caller_hung_up", close_code=socket.close_code)
                return
            socket = await self._await_rejoin(media, socket)

    async def _call_goes_on(self) -> bool:
        """After the socket closed: is the call still connected at ACS (unknown: assume so)?"""
        if not self._rejoinable:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DISCONNECT_GRACE_S):
                await self._disconnected.wait()
        if self._disconnected.is_set():
            return False
        return await self._call.connected() is not False

    async def _await_rejoin(
        self, media: _Media, lost: web.WebSocketResponse
    ) -> web.WebSocketResponse | None:
        """Wait for ACS to reconnect the call's media; hang up if it does not in time."""
        wait_s = self._continuity.media_rejoin_s
        log.warning("call.media_lost", close_code=lost.close_code, rejoin_s=wait_s)
        lost_at = time.monotonic()
        self._acs.socket = None
        # Nobody hears what is queued: it is dropped and the model told what was heard.
        await media.interruption.interrupt(barge_in=False)
        assert self._rejoin is not None  # opened when the socket closed
        try:
            async with asyncio.timeout(wait_s):
                rejoined = await self._rejoin
        except TimeoutError:
            rejoined = None
            log.error("call.media_not_rejoined", waited_s=wait_s)
            self.stats.ended_by = EndedBy.MEDIA_LOST
            media.actions.ending = True
            await hang_up(self._call)
        finally:
            self._rejoin = None
        if rejoined is None:
            return None
        socket, done = rejoined
        self._sockets_done.append(done)
        first = await self._caller.first_message(socket)
        if first is None:
            return socket  # closed at once: judged again like any closed socket
        if isinstance(first, acs_media.AudioMetadata) and first.sample_rate != media.codec.acs_rate:
            log.error("call.rejoin_refused", reason="another sample rate", rate=first.sample_rate)
            await socket.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"sample rate")
            return socket
        self._acs.socket = socket
        outage_ms = (time.monotonic() - lost_at) * 1000
        self.stats.rejoins += 1
        log.info("call.media_rejoined", outage_ms=round(outage_ms))
        if self._recorder is not None:
            self._recorder.event("bridge", "media_rejoined", outage_ms=round(outage_ms))
        if self._telemetry is not None:
            self._telemetry.continuity("rejoin", outage_ms)
        if isinstance(first, acs_media.AudioData):
            await self._caller.forward(media.codec, first, self._recorder)
        return socket

    def can_rejoin(self) -> bool:
        """Whether the call is waiting for ACS to reconnect its media."""
        return self._rejoin is not None and not self._rejoin.done()

    async def rejoin(self, socket: web.WebSocketResponse) -> None:
        """A new media socket for this call (``can_rejoin``): returns once the bridge is done
        with it (the call ended, or this socket was lost too)."""
        done = asyncio.Event()
        if self._rejoin is None or self._rejoin.done():
            return
        self._rejoin.set_result((socket, done))
        await done.wait()

    async def call_disconnected(self) -> None:
        """ACS says the call is over (``CallDisconnected``): end the bridge now."""
        self._disconnected.set()
        with structlog.contextvars.bound_contextvars(**self._log_context):
            if self._rejoin is not None and not self._rejoin.done():
                self._rejoin.set_result(None)
            socket = self._acs.socket
            if socket is not None and not socket.closed:
                await socket.close(code=aiohttp.WSCloseCode.OK, message=b"call disconnected")

    async def _watch_media(self) -> None:
        """ACS sends a frame every 20 ms, silence included: a socket silent for
        ``media_stall_s`` is dead though open, and is closed like a lost one."""
        stall_s = self._continuity.media_stall_s
        while True:
            await asyncio.sleep(MEDIA_WATCH_S)
            socket = self._acs.socket
            silent_s = time.monotonic() - self._caller.last_frame_at
            if socket is None or socket.closed or silent_s < stall_s:
                continue
            log.warning("acs.media_stalled", silent_s=round(silent_s, 1))
            self.stats.media_stalls += 1
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"media stalled")

    # --- the moment, for a session swap (``voice_link.Quiet``) ------------------------------

    def quiet(self) -> bool:
        caller_quiet = time.monotonic() - self._caller.last_voiced_at >= CALLER_QUIET_S
        return self.turn_over() and not self._caller_speaking and caller_quiet

    def turn_over(self) -> bool:
        media = self._media
        playing = media is not None and media.pacer.is_playing()
        return not playing and self._responses.active_id is None

    # --- Voice Live's events ------------------------------------------------------------------

    async def _agent_pump(self, media: _Media, connected: Coroutine[Any, Any, bool]) -> None:
        if not await connected:
            await self._fall_back(media, "Voice Live could not be reached in time")
            return
        self._helpers.spawn(self._await_session(), "session-watchdog")
        async for event in self._link.events():
            match event:
                case SessionLost():
                    self._on_session_lost(media)
                case SessionReplaced():
                    self._on_session_replaced(media, event)
                case AgentUnavailable(reason=reason):
                    await self._fall_back(media, reason)
                case _:
                    try:
                        await self._on_event(media, event)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        self.stats.malformed_events += 1
                        log.warning(
                            "voice_live.malformed_event",
                            event_type=str(event.get("type")),
                            error=str(exc),
                        )
        # The link ends its stream only once the call is being torn down or after the
        # fallback: wait for the caller's side to end the call.
        await asyncio.Event().wait()

    async def _fall_back(self, media: _Media, reason: str) -> None:
        await fall_back(
            reason,
            profile=self._profile,
            codec=media.codec,
            pacer=media.pacer,
            actions=media.actions,
            call=self._call,
            stats=self.stats,
            recorder=self._recorder,
            telemetry=self._telemetry,
        )

    def _on_session_lost(self, media: _Media) -> None:
        """What the lost session was saying stays queued and is heard; in the context (which
        its replacement is told) the turn ends where the audio received ends."""
        for key in self._responses.session_replaced():
            received = self._responses.received_ms.get(key, 0.0)
            self.context.agent_heard(key[0], received, received)
        media.agent_audio.discard_partial()
        self._caller_speaking = False

    def _on_session_replaced(self, media: _Media, event: SessionReplaced) -> None:
        """The call goes on with a new session (after a loss, or rolled over at a quiet
        moment, when there is nothing in flight)."""
        if event.kind == "rollover":
            self._on_session_lost(media)  # a loss was handled as it happened
        media.actions.session_replaced()
        self.stats.outage_ms += event.lost_ms
        log.info(
            "call.session_replaced",
            kind=event.kind,
            session=self._link.current_session,
            outage_ms=round(event.lost_ms),
        )
        if self._recorder is not None:
            self._recorder.event(
                "bridge", f"voice_live_{event.kind}", outage_ms=round(event.lost_ms)
            )
        if self._telemetry is not None:
            self._telemetry.continuity(
                event.kind, event.lost_ms if event.kind == "reconnect" else None
            )

    async def _on_event(self, media: _Media, event: ServerEvent) -> None:
        match event:
            case ServerEventResponseAudioDelta():
                media.agent_audio.on_delta(event)
            case ServerEventResponseAudioDone():
                media.agent_audio.end_of_item((text(event.item_id), integer(event.content_index)))
            case ServerEventInputAudioBufferSpeechStarted():
                self._caller_speaking = True
                await media.interruption.interrupt()
            case ServerEventInputAudioBufferSpeechStopped():
                self._caller_speaking = False
            case ServerEventInputAudioBufferCommitted():
                self.context.caller_turn(text(event.item_id))
            case ServerEventResponseCreated():
                response_id = text(event.response.id)
                self._responses.created(response_id)
                media.actions.on_response_created(response_id)
            case ServerEventResponseDone():
                response_id = text(event.response.id)
                self._responses.done(response_id)
                await media.actions.after_response(response_id)
            case ServerEventResponseOutputItemAdded(item=ResponseFunctionCallItem() as item):
                media.actions.on_function_call_item(item)
            case ServerEventResponseFunctionCallArgumentsDone():
                media.actions.on_tool_call(event)
            case ServerEventSessionUpdated() if not self._session_ready.is_set():
                self._session_ready.set()
                await self._link.create_response(greeting_request(self._profile))
            case ServerEventResponseAudioTranscriptDelta():
                self.context.agent_said(text(event.item_id), text(event.delta), final=False)
            case ServerEventResponseAudioTranscriptDone():
                item_id, transcript = text(event.item_id), text(event.transcript)
                self.context.agent_said(item_id, transcript, final=True)
                log.info("agent.transcript", item_id=item_id, text=transcript)
                if self._recorder is not None:
                    self._recorder.transcript("agent", item_id, transcript)
            case ServerEventConversationItemInputAudioTranscriptionCompleted():
                item_id, transcript = text(event.item_id), text(event.transcript)
                self.context.caller_said(item_id, transcript)
                log.info("caller.transcript", item_id=item_id, text=transcript)
                if self._recorder is not None:
                    self._recorder.transcript("caller", item_id, transcript)
            case ServerEventConversationItemTruncated():
                log.info(
                    "voice_live.truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms
                )
            case ServerEventError():
                self._on_error(event)

    def _on_error(self, event: ServerEventError) -> None:
        """Most errors are Voice Live refusing one event, and the call goes on; a refused
        ``session.update`` leaves no working agent: the fallback."""
        error = event.error
        event_id = getattr(error, "event_id", None)
        if event_id == LIVENESS_PROBE_EVENT_ID:
            return  # the probe's expected answer: the session is alive
        self.stats.voice_live_errors += 1
        fields = {
            "error_type": getattr(error, "type", None),
            "code": getattr(error, "code", None),
            "message": getattr(error, "message", None),
            "param": getattr(error, "param", None),
        }
        if event_id != SESSION_UPDATE_EVENT_ID:
            log.error("voice_live.error", **fields)
            return
        log.error("voice_live.session_rejected", **fields)
        self._link.give_up("Voice Live refused the session's configuration")

    async def _await_session(self) -> None:
        """No ``session.updated`` in time: the agent will never speak."""
        try:
            async with asyncio.timeout(SESSION_CONFIGURED_TIMEOUT_S):
                await self._session_ready.wait()
        except TimeoutError:
            log.error("voice_live.session_not_configured", timeout_s=SESSION_CONFIGURED_TIMEOUT_S)
            self._link.give_up("Voice Live did not confirm the session's configuration")

    async def shut_down(self, goodbye: str | None) -> None:
        """This replica is stopping: the configured goodbye (cutting the agent short), then
        hang up and close the media socket with 1001."""
        with structlog.contextvars.bound_contextvars(**self._log_context):
            if self._media is not None:
                await self._media.actions.shut_down(goodbye)
                return
            # No media yet, so nothing was said: hang up without a goodbye.
            self.stats.ended_by = EndedBy.SHUTDOWN
            log.info("call.hanging_up", reason=EndedBy.SHUTDOWN)
            await hang_up(self._call)
            await self._acs.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")
            if self._rejoin is not None and not self._rejoin.done():
                self._rejoin.set_result(None)

    def summary(self) -> CallSummary:
        """The call's figures for telemetry (pacing figures only once media flowed)."""
        return call_summary(self.stats, self._media.pacer.core if self._media else None)

    async def transfer_failed(self) -> None:
        """ACS could not complete a transfer it had accepted: the caller is still here."""
        if self._media is not None:
            await self._media.actions.transfer_failed()


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
