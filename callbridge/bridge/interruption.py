"""The interruption policy: pause when the caller speaks over the agent, then decide.

On Voice Live's ``speech_started`` while agent audio is queued or playing:

1. **pause** at once: ACS is told ``StopAudio``, and what the caller has not heard is held from
   the exact sample they stopped at, with the deltas still arriving (``FramePacer.pause``);
   nothing is cancelled or truncated yet;
2. **decide** (``core.interruption_policy``) from the caller's frames as the bridge measures
   them, Voice Live's ``speech_stopped`` and the transcript, within the profile's window;
3. a **real** interruption is cut where the caller stopped hearing it: the held audio dropped,
   the responses muted (their late deltas dropped), ``response.cancel`` if one is still being
   generated, and ``conversation.item.truncate`` for each cut item at the integer ms the caller
   heard (never more than Voice Live generated); the caller's turn is then answered;
4. a **false** one (a backchannel, a cough, noise) resumes the held audio from that same sample:
   no cancel, no truncate, and the model never answers it. The session is configured with
   ``create_response: false``, so Voice Live answers no turn by itself: callbridge asks for an
   answer when a turn is committed, except for the turn a false interruption committed, which is
   deleted from the conversation once its transcript confirms it held nothing to answer (a
   transcript with real words overturns the verdict: the agent is cut there and answers).

When nothing is playing, a response still being generated would talk over the caller, so it is
cancelled; there is nothing to stop at the phone and nothing to truncate.
"""

from __future__ import annotations

import time

import structlog

from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallTelemetry
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import BargeIn, CallStats
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core import acs_media
from callbridge.core.call_context import CallContext
from callbridge.core.codec import Codec
from callbridge.core.interruption_policy import (
    Decision,
    InterruptionSettings,
    PendingInterruption,
    Verdict,
)
from callbridge.core.pacing import Heard

log = structlog.get_logger(__name__)


class Interruption:
    """Carries out barge-ins for one call (see the module docstring)."""

    def __init__(
        self,
        *,
        acs: MediaLine,
        voice: VoiceLink,
        context: CallContext,
        codec: Codec,
        pacer: FramePacer,
        agent_audio: AgentAudio,
        responses: Responses,
        stats: CallStats,
        telemetry: CallTelemetry | None,
        recorder: CallRecorder | None,
        settings: InterruptionSettings,
    ) -> None:
        self._acs = acs
        self._voice = voice
        self._context = context
        self._codec = codec
        self._pacer = pacer
        self._agent_audio = agent_audio
        self._responses = responses
        self._stats = stats
        self._telemetry = telemetry
        self._recorder = recorder
        self._settings = settings
        self._pending: PendingInterruption | None = None
        self._pending_item: str | None = None
        """The caller's turn the pending interruption committed, once Voice Live says so."""
        self._unanswered: set[str] = set()
        """Turns of false interruptions, left unanswered until their transcripts confirm it."""
        self._speech_ms = 0.0
        self._last_voiced_at: float | None = None

    # --- what the caller says ---------------------------------------------------------------

    async def on_caller_frame(self, pcm: bytes) -> None:
        """Every frame of the caller's audio: the soonest measure of whether they talk."""
        now = time.monotonic()
        voiced = self._settings.is_voiced(pcm)
        quiet_s = self._settings.caller_quiet_ms / 1000
        if voiced:
            if self._last_voiced_at is None or now - self._last_voiced_at > quiet_s:
                self._speech_ms = 0.0
            self._speech_ms += self._codec.frame_ms
            self._last_voiced_at = now
        if self._pending is not None:
            decision = self._pending.on_caller_frame(
                voiced=voiced, frame_ms=self._codec.frame_ms, now=now
            )
            await self._carry_out(decision)

    async def on_speech_started(self) -> None:
        """Voice Live heard the caller start: pause the agent and decide, or (nothing playing)
        stop a response that would talk over them."""
        if self._pending is not None and self._pending.decision is None:
            return  # still deciding: the same interruption goes on
        if not self._pacer.is_playing():
            cancelled = await self._responses.cancel_active()
            if cancelled is not None and self._telemetry is not None:
                self._telemetry.barge_in(heard_ms=0.0, truncated=False)
            return
        self._pacer.pause()
        await self._stop_at_acs()
        now = time.monotonic()
        recent = self._last_voiced_at is not None and (
            now - self._last_voiced_at <= self._settings.caller_quiet_ms / 1000
        )
        self._pending = PendingInterruption(
            self._settings,
            started_at=now,
            voiced_ms=self._speech_ms if recent else 0.0,
            last_voiced_at=self._last_voiced_at if recent else None,
        )
        self._pending_item = None
        log.info("call.paused_for_caller", speech_ms=round(self._pending.voiced_ms))

    async def on_speech_stopped(self) -> None:
        if self._pending is not None:
            await self._carry_out(self._pending.on_speech_stopped(time.monotonic()))

    async def on_committed(self, item_id: str) -> None:
        """A caller turn is committed: answer it, unless it is a false interruption's."""
        pending = self._pending
        if pending is not None and self._pending_item is None:
            self._pending_item = item_id
            if pending.decision is None:
                return  # answered (or not) when decided
            if pending.decision.verdict is Verdict.FALSE:
                self._unanswered.add(item_id)
                return
        await self._responses.request()

    async def on_transcript(self, item_id: str, transcript: str) -> None:
        """The caller's words for a turn: they may decide, or overturn, an interruption."""
        pending = self._pending
        if pending is not None and item_id == self._pending_item:
            await self._carry_out(pending.on_transcript(transcript, time.monotonic()))
        if item_id in self._unanswered and self._settings.is_backchannel(transcript):
            self._unanswered.discard(item_id)
            # Nothing to answer: the model must not take it for a turn later either.
            await self._voice.delete_item(item_id)

    # --- deciding ---------------------------------------------------------------------------

    async def _carry_out(self, decision: Decision | None) -> None:
        pending = self._pending
        if decision is None or pending is None:
            return
        paused_ms = round((decision.at - pending.started_at) * 1000)
        log.info(
            "call.interruption_decided",
            verdict=decision.verdict.value,
            reason=decision.reason,
            paused_ms=paused_ms,
        )
        if self._recorder is not None:
            self._recorder.event(
                "bridge",
                "interruption_decided",
                verdict=decision.verdict.value,
                reason=decision.reason,
                paused_ms=paused_ms,
            )
        if self._telemetry is not None:
            self._telemetry.interruption_decided(
                verdict=decision.verdict.value, reason=decision.reason, paused_ms=paused_ms
            )
        item = self._pending_item
        if decision.verdict is Verdict.FALSE:
            self._stats.false_interruptions += 1
            self._agent_audio.resume(self._pacer.resume())
            if item is not None:
                self._unanswered.add(item)
            return
        # Paused, or (a false verdict overturned by the transcript) talking again: cut either way.
        await self.interrupt()
        if item is not None:
            self._unanswered.discard(item)
            await self._responses.request()

    # --- cutting ----------------------------------------------------------------------------

    async def interrupt(self, *, barge_in: bool = True) -> None:
        """Cut the agent where the caller stopped hearing it: stop generation, tell the model
        what was heard.

        ``barge_in`` False: the same cut for another cause (the media socket was lost), not
        counted or recorded as the caller speaking over the agent."""
        if self._pending is not None and self._pending.decision is None:
            self._pending = None  # whatever was being decided, the agent is cut now
        if not self._pacer.is_playing():
            cancelled = await self._responses.cancel_active()
            if cancelled is not None and barge_in and self._telemetry is not None:
                self._telemetry.barge_in(heard_ms=0.0, truncated=False)
            return
        paused = self._pacer.paused
        cut = self._pacer.flush()
        if not paused:  # a paused agent was stopped at ACS already
            await self._stop_at_acs()
        self._agent_audio.discard_partial()
        for heard in cut:
            response_id = self._responses.item_response.get(heard.item_id)
            if response_id is not None:
                self._responses.mute(response_id)
        cancelled = await self._responses.cancel_active()
        for heard in cut:
            await self._truncate(heard, cancelled=cancelled is not None, barge_in=barge_in)

    async def _stop_at_acs(self) -> None:
        """Tell ACS to drop what it still holds of the agent's audio."""
        await self._acs.send_str(acs_media.STOP_AUDIO)
        if self._recorder is not None:
            self._recorder.stop_audio()

    async def _truncate(self, heard: Heard, *, cancelled: bool, barge_in: bool) -> None:
        key = (heard.item_id, heard.content_index)
        received_ms = self._responses.received_ms.get(key, 0.0)
        # The codec delays audio by a fixed amount: the caller's heard PCM starts that much
        # later than the item's audio. Never claim more than Voice Live generated.
        position = heard.heard_ms - self._codec.decoder_delay_ms
        audio_end_ms = int(max(0.0, min(position, received_ms)))
        self._context.agent_heard(heard.item_id, audio_end_ms, received_ms)
        if self._responses.in_current_session(heard.item_id):
            # Items of a replaced session are unknown to the current one: the context has them.
            await self._voice.truncate(heard.item_id, heard.content_index, audio_end_ms)
        if not barge_in:
            log.info("call.cut_unheard", item_id=heard.item_id, audio_end_ms=audio_end_ms)
            return
        self._stats.barge_ins.append(
            BargeIn(
                item_id=heard.item_id,
                heard_ms=heard.heard_ms,
                audio_end_ms=audio_end_ms,
                received_ms=received_ms,
                cancelled_response=cancelled,
            )
        )
        if self._telemetry is not None:
            self._telemetry.barge_in(heard_ms=heard.heard_ms, truncated=True)
        if self._recorder is not None:
            self._recorder.barge_in(
                item_id=heard.item_id,
                content_index=heard.content_index,
                heard_ms=heard.heard_ms,
                audio_end_ms=audio_end_ms,
                received_ms=received_ms,
                cancelled_response=cancelled,
            )
        log.info(
            "call.barge_in",
            item_id=heard.item_id,
            audio_end_ms=audio_end_ms,
            received_ms=round(received_ms),
            cancelled_response=cancelled,
        )
