"""CallBridge: one phone call bridged to one Voice Live session.

The bridge only orchestrates. Three tasks per call, owned here and cancelled together:
- the caller pump: ACS media frames -> codec -> ``input_audio_buffer.append`` (silent frames
  too, so Voice Live's VAD measures the caller's pauses from real audio); keypad digits to the
  ``Keypad``;
- the agent pump: Voice Live events, each handed to the part that owns it: agent audio
  (``AgentAudio``), barge-in (``Interruption``), tools and the call's end (``AgentActions``);
- the pacer: releases agent audio to ACS in real time and keeps the heard-position ledger.

Tool calls, keypad input and the call's time limit run as short-lived helper tasks the bridge
also owns, so a slow tool never holds up barge-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.aio import ConnectionClosed, VoiceLiveConnection
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    ResponseFunctionCallItem,
    ServerEvent,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventResponseAudioDelta,
    ServerEventResponseAudioDone,
    ServerEventResponseAudioTranscriptDone,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventResponseOutputItemAdded,
    ServerEventSessionUpdated,
)

from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.adapters.voice_live import (
    SESSION_UPDATE_EVENT_ID,
    configure_session,
    greeting_request,
    session_request,
)
from callbridge.bridge.actions import AgentActions, CallActions, hang_up
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.caller_audio import CallerAudio
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.interruption import Interruption
from callbridge.bridge.keypad import Keypad
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats, call_summary, log_call_ended
from callbridge.core import acs_media
from callbridge.core.codec import Codec, make_codec
from callbridge.core.ended_by import EndedBy
from callbridge.core.pacing import OutFrame
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import PacingSettings
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import profile_tools

log = structlog.get_logger(__name__)

SESSION_CONFIGURED_TIMEOUT_S = 5.0
"""How long the session may take to confirm its configuration before the call ends."""

MAX_UNREADABLE_IN_A_ROW = 100
"""Consecutive undecodable Voice Live frames after which the connection is deemed broken."""


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
    """Bridges one ACS media WebSocket to one Voice Live connection until either side ends."""

    def __init__(
        self,
        *,
        acs: web.WebSocketResponse,
        voice: VoiceLiveConnection,
        profile: AgentProfile,
        pacing: PacingSettings,
        transcription_model: str,
        actions: CallActions,
        configured_rate: int | None = None,
        telemetry: CallTelemetry | None = None,
        open_recorder: Callable[[int], CallRecorder] | None = None,
    ) -> None:
        """``configured_rate``: the ACS rate the Voice Live session was already configured
        for (a pre-warmed session); if ACS streams at that rate, no ``session.update`` is sent.
        """
        self._acs = acs
        self._voice = voice
        self._profile = profile
        self._pacing = pacing
        self._transcription_model = transcription_model
        self._call = actions
        self._configured_rate = configured_rate
        self._telemetry = telemetry
        self._open_recorder = open_recorder
        self._recorder: CallRecorder | None = None
        # The call's ids, bound by the task that owns the call; re-bound where another task
        # (a replica draining) acts on the call, so its log lines still name the call.
        self._log_context = structlog.contextvars.get_contextvars()
        self._started_at = time.monotonic()
        self._tools = {spec.name: spec for spec in profile_tools(profile)}
        self.stats = CallStats()
        self._helpers = OwnedTasks()
        self._responses = Responses(voice)
        self._caller = CallerAudio(acs=acs, voice=voice, stats=self.stats)
        self._session_ready = asyncio.Event()
        """Set on the first ``session.updated``: the agent is configured and greets."""
        self._media: _Media | None = None
        """Set once the first media frame says which rate ACS uses."""

    async def run(self) -> CallStats:
        """Bridge until the caller or Voice Live hangs up; always returns the call's stats."""
        first = await self._caller.first_message()
        if first is None:
            return self.stats
        rate = (
            first.sample_rate
            if isinstance(first, acs_media.AudioMetadata)
            else acs_media.DEFAULT_ACS_RATE
        )
        media = self._media = self._start_media(rate)
        log.info("call.media_started", sample_rate=rate, audio_format=self._profile.audio_format)
        if rate != self._configured_rate:
            await configure_session(
                self._voice,
                session_request(
                    self._profile,
                    media.codec,
                    self._transcription_model,
                    list(self._tools.values()),
                ),
            )
        if isinstance(first, acs_media.AudioData):
            await self._caller.forward(media.codec, first, self._recorder)
        self._helpers.spawn(media.actions.time_limit(), "time-limit")
        self._helpers.spawn(self._await_session(media), "session-watchdog")
        try:
            await _run_until_first_done(
                caller=self._caller.pump(
                    media.codec, media.keypad, media.pacer.on_mark, self._recorder
                ),
                agent=self._agent_pump(media),
                pacer=media.pacer.run(),
            )
        finally:
            media.keypad.close()
            media.actions.close()
            await self._helpers.aclose()
            if self._recorder is not None:
                self._recorder.event("bridge", "call_ended", ended_by=self.stats.ended_by)
                await self._recorder.aclose()
        log_call_ended(self.stats, media.pacer.core)
        return self.stats

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
            voice=self._voice,
            codec=codec,
            pacer=pacer,
            agent_audio=agent_audio,
            responses=self._responses,
            stats=self.stats,
            telemetry=self._telemetry,
            recorder=self._recorder,
        )
        keypad = Keypad(
            voice=self._voice,
            responses=self._responses,
            stats=self.stats,
            helpers=self._helpers,
            recorder=self._recorder,
        )
        actions = AgentActions(
            acs=self._acs,
            voice=self._voice,
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

    async def _agent_pump(self, media: _Media) -> None:
        unreadable_in_a_row = 0
        while True:
            try:
                event = await self._voice.recv()
            except ConnectionClosed as exc:
                log.info("voice_live.closed", code=exc.code)
                break
            except (VoiceLiveConnectionError, AttributeError, TypeError, ValueError) as exc:
                # The SDK raises on undecodable frames; one bad event must not end the call.
                self.stats.malformed_events += 1
                unreadable_in_a_row += 1
                log.warning("voice_live.malformed_event", error=str(exc))
                if unreadable_in_a_row >= MAX_UNREADABLE_IN_A_ROW:
                    # Nothing readable for this long: the connection itself is broken.
                    log.error("voice_live.unreadable", events=unreadable_in_a_row)
                    break
                continue
            unreadable_in_a_row = 0
            try:
                await self._on_event(media, event)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.stats.malformed_events += 1
                log.warning(
                    "voice_live.malformed_event", event_type=str(event.get("type")), error=str(exc)
                )
        if not self._acs.closed and not media.actions.ending:
            # Without an agent the caller would sit in silence: end the call itself.
            await media.actions.end_call(EndedBy.VOICE_SESSION_ENDED, force=True)

    async def _on_event(self, media: _Media, event: ServerEvent) -> None:
        match event:
            case ServerEventResponseAudioDelta():
                media.agent_audio.on_delta(event)
            case ServerEventResponseAudioDone():
                media.agent_audio.end_of_item((text(event.item_id), integer(event.content_index)))
            case ServerEventInputAudioBufferSpeechStarted():
                await media.interruption.interrupt()
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
                await self._voice.response.create(response=greeting_request(self._profile))
            case ServerEventResponseAudioTranscriptDone():
                log.info("agent.transcript", item_id=event.item_id, text=event.transcript)
                if self._recorder is not None:
                    self._recorder.transcript("agent", text(event.item_id), text(event.transcript))
            case ServerEventConversationItemInputAudioTranscriptionCompleted():
                log.info("caller.transcript", item_id=event.item_id, text=event.transcript)
                if self._recorder is not None:
                    self._recorder.transcript("caller", text(event.item_id), text(event.transcript))
            case ServerEventConversationItemTruncated():
                log.info(
                    "voice_live.truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms
                )
            case ServerEventError():
                await self._on_error(media, event)

    async def _on_error(self, media: _Media, event: ServerEventError) -> None:
        """Most errors are Voice Live refusing one event, and the call goes on; a refused
        ``session.update`` leaves no working agent, so the call ends."""
        self.stats.voice_live_errors += 1
        error = event.error
        fields = {
            "error_type": getattr(error, "type", None),
            "code": getattr(error, "code", None),
            "message": getattr(error, "message", None),
            "param": getattr(error, "param", None),
        }
        if getattr(error, "event_id", None) != SESSION_UPDATE_EVENT_ID:
            log.error("voice_live.error", **fields)
            return
        log.error("voice_live.session_rejected", **fields)
        await media.actions.end_call(EndedBy.VOICE_SESSION_UNAVAILABLE, force=True)

    async def _await_session(self, media: _Media) -> None:
        """No ``session.updated`` in time: the agent will never speak, so end the call."""
        try:
            async with asyncio.timeout(SESSION_CONFIGURED_TIMEOUT_S):
                await self._session_ready.wait()
        except TimeoutError:
            log.error("voice_live.session_not_configured", timeout_s=SESSION_CONFIGURED_TIMEOUT_S)
            await media.actions.end_call(EndedBy.VOICE_SESSION_UNAVAILABLE, force=True)

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
