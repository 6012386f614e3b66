"""The agent pump: each of Voice Live's events handed to the part of the call that owns it.

Agent audio goes to ``AgentAudio``, barge-in to ``Interruption``, tools and the call's end to
``AgentActions``, the conversation so far to ``CallContext``. Events come through the call's
``VoiceLink``, which also says when a session was lost and replaced, and when no agent can
talk (then the bridge speaks its fallback message, ``fallback``). Following who speaks, the
pump also says when the call is quiet enough for a session swap (``rollover.Quiet``).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from azure.ai.voicelive.models import (
    ResponseFunctionCallItem,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferCommitted,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventInputAudioBufferSpeechStopped,
    ServerEventResponseAudioDone,
    ServerEventResponseAudioTranscriptDone,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventResponseOutputItemAdded,
    ServerEventSessionUpdated,
)

from callbridge.adapters.telemetry import CallTelemetry
from callbridge.adapters.voice_events import AudioDelta, TranscriptDelta, VoiceEvent
from callbridge.adapters.voice_live import (
    LIVENESS_PROBE_EVENT_ID,
    SESSION_UPDATE_EVENT_ID,
    greeting_request,
)
from callbridge.bridge.actions import CallActions
from callbridge.bridge.call_parts import CallParts
from callbridge.bridge.caller_audio import CallerAudio
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.fallback import fall_back
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.bridge.voice_link import (
    AgentUnavailable,
    SessionLost,
    SessionReplaced,
    VoiceLink,
)
from callbridge.core.call_context import CallContext
from callbridge.core.profiles import AgentProfile

log = structlog.get_logger(__name__)

CALLER_QUIET_S = 0.3
"""A session swap waits until ACS has marked the caller's frames silent for this long."""


class AgentPump:
    """Reads the call's Voice Live events until the call ends (see the module docstring)."""

    def __init__(
        self,
        *,
        parts: CallParts,
        link: VoiceLink,
        caller: CallerAudio,
        responses: Responses,
        context: CallContext,
        stats: CallStats,
        profile: AgentProfile,
        call: CallActions,
        telemetry: CallTelemetry | None,
    ) -> None:
        self._parts = parts
        self._link = link
        self._caller = caller
        self._responses = responses
        self._context = context
        self._stats = stats
        self._profile = profile
        self._call = call
        self._telemetry = telemetry
        self._caller_speaking = False
        self.session_ready = asyncio.Event()
        """Set on the first ``session.updated``: the agent is configured and greets."""

    async def run(self) -> None:
        """Hand on every event of the link's stream; then wait for the call to end."""
        async for event in self._link.events():
            match event:
                case SessionLost():
                    self._on_session_lost()
                case SessionReplaced():
                    self._on_session_replaced(event)
                case AgentUnavailable(reason=reason):
                    await self.fall_back(reason)
                case _:
                    try:
                        await self._on_event(event)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        self._stats.malformed_events += 1
                        log.warning(
                            "voice_live.malformed_event",
                            event_type=str(event.type),
                            error=str(exc),
                        )
        # The link ends its stream only once the call is being torn down or after the
        # fallback: wait for the caller's side to end the call.
        await asyncio.Event().wait()

    async def fall_back(self, reason: str) -> None:
        parts = self._parts
        await fall_back(
            reason,
            profile=self._profile,
            codec=parts.codec,
            pacer=parts.pacer,
            actions=parts.actions,
            call=self._call,
            stats=self._stats,
            recorder=parts.recorder,
            telemetry=self._telemetry,
        )

    # --- the moment, for a session swap (``rollover.Quiet``) ------------------------------

    def quiet(self) -> bool:
        caller_quiet = time.monotonic() - self._caller.last_voiced_at >= CALLER_QUIET_S
        return self.turn_over() and not self._caller_speaking and caller_quiet

    def turn_over(self) -> bool:
        return not self._parts.pacer.is_playing() and self._responses.active_id is None

    # --- a session replaced ---------------------------------------------------------------

    def _on_session_lost(self) -> None:
        """What the lost session was saying stays queued and is heard, to its last sample (no
        ``response.audio.done`` will release what the codec and framer still hold, so it is
        released now); in the context (which its replacement is told) the turn ends where the
        audio received ends."""
        for key in self._responses.active_items():
            self._parts.agent_audio.end_of_item(key)
        for key in self._responses.session_replaced():
            received = self._responses.received_ms.get(key, 0.0)
            self._context.agent_heard(key[0], received, received)
        self._parts.agent_audio.discard_partial()
        self._caller_speaking = False

    def _on_session_replaced(self, event: SessionReplaced) -> None:
        """The call goes on with a new session (after a loss, or rolled over at a quiet
        moment, when there is nothing in flight)."""
        if event.kind == "rollover":
            self._on_session_lost()  # a loss was handled as it happened
        self._parts.actions.session_replaced()
        self._stats.outage_ms += event.lost_ms
        log.info(
            "call.session_replaced",
            kind=event.kind,
            session=self._link.current_session,
            outage_ms=round(event.lost_ms),
        )
        if self._parts.recorder is not None:
            self._parts.recorder.event(
                "bridge", f"voice_live_{event.kind}", outage_ms=round(event.lost_ms)
            )
        if self._telemetry is not None:
            self._telemetry.continuity(
                event.kind, event.lost_ms if event.kind == "reconnect" else None
            )

    # --- one event --------------------------------------------------------------------------

    async def _on_event(self, event: VoiceEvent) -> None:
        parts, context, recorder = self._parts, self._context, self._parts.recorder
        match event:
            case AudioDelta():
                parts.agent_audio.on_delta(event)
            case ServerEventResponseAudioDone():
                parts.agent_audio.end_of_item((text(event.item_id), integer(event.content_index)))
            case ServerEventInputAudioBufferSpeechStarted():
                self._caller_speaking = True
                await parts.interruption.on_speech_started()
            case ServerEventInputAudioBufferSpeechStopped():
                self._caller_speaking = False
                await parts.interruption.on_speech_stopped()
            case ServerEventInputAudioBufferCommitted():
                item_id = text(event.item_id)
                context.caller_turn(item_id)
                await parts.interruption.on_committed(item_id)
            case ServerEventResponseCreated():
                response_id = text(event.response.id)
                self._responses.created(response_id)
                parts.actions.on_response_created(response_id)
            case ServerEventResponseDone():
                response_id = text(event.response.id)
                self._responses.done(response_id)
                await parts.actions.after_response(response_id)
            case ServerEventResponseOutputItemAdded(item=ResponseFunctionCallItem() as item):
                parts.actions.on_function_call_item(item)
            case ServerEventResponseFunctionCallArgumentsDone():
                parts.actions.on_tool_call(event)
            case ServerEventSessionUpdated() if not self.session_ready.is_set():
                await self._greet()
            case TranscriptDelta():
                context.agent_said(text(event.item_id), text(event.delta), final=False)
            case ServerEventResponseAudioTranscriptDone():
                item_id, transcript = text(event.item_id), text(event.transcript)
                context.agent_said(item_id, transcript, final=True)
                log.info("agent.transcript", item_id=item_id, transcript=transcript)
                if recorder is not None:
                    recorder.transcript("agent", item_id, transcript)
            case ServerEventConversationItemInputAudioTranscriptionCompleted():
                item_id, transcript = text(event.item_id), text(event.transcript)
                context.caller_said(item_id, transcript)
                log.info("caller.transcript", item_id=item_id, transcript=transcript)
                if recorder is not None:
                    recorder.transcript("caller", item_id, transcript)
                await parts.interruption.on_transcript(item_id, transcript)
            case ServerEventConversationItemTruncated():
                log.info(
                    "voice_live.truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms
                )
            case ServerEventError():
                self._on_error(event)

    async def _greet(self) -> None:
        """The first session is configured: the agent greets the caller, unless the call was
        hung up meanwhile (a replica draining while Voice Live connected)."""
        self.session_ready.set()
        if not self._parts.actions.ending:
            await self._link.create_response(greeting_request(self._profile))

    def _on_error(self, event: ServerEventError) -> None:
        """Most errors are Voice Live refusing one event, and the call goes on; a refused
        ``session.update`` leaves no working agent: the fallback."""
        error = event.error
        event_id = getattr(error, "event_id", None)
        if event_id == LIVENESS_PROBE_EVENT_ID:
            return  # the probe's expected answer: the session is alive
        self._stats.voice_live_errors += 1
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
