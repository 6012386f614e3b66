"""The interruption policy: when the caller speaks over the agent, stop it exactly where heard.

On Voice Live's ``speech_started`` while agent audio is queued or playing, in this order:

1. drop everything queued in the pacer, and tell ACS ``StopAudio`` at once, so the caller
   stops hearing the agent within a frame;
2. mute the responses whose audio was cut, so their late deltas are dropped;
3. ``response.cancel``, only if a response is still being generated (else Voice Live errors);
4. ``conversation.item.truncate`` for each cut item, at the integer ms the caller heard (from
   the pacer's ledger, less the codec's delay), never more than Voice Live generated.

When nothing is playing, a response still being generated would talk over the caller, so it is
cancelled; there is nothing to stop at the phone and nothing to truncate.
"""

from __future__ import annotations

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

    async def interrupt(self, *, barge_in: bool = True) -> None:
        """Barge-in: stop the caller's playback, stop generation, tell the model what was heard.

        ``barge_in`` False: the same cut for another cause (the media socket was lost), not
        counted or recorded as the caller speaking over the agent."""
        if not self._pacer.is_playing():
            # Nothing to stop at the phone; a response still being generated would talk over
            # the caller, so it is cancelled, but there is nothing to truncate.
            cancelled = await self._responses.cancel_active()
            if cancelled is not None and barge_in and self._telemetry is not None:
                self._telemetry.barge_in(heard_ms=0.0, truncated=False)
            return
        cut = self._pacer.flush()
        await self._acs.send_str(acs_media.STOP_AUDIO)
        if self._recorder is not None:
            self._recorder.stop_audio()
        self._agent_audio.discard_partial()
        for heard in cut:
            response_id = self._responses.item_response.get(heard.item_id)
            if response_id is not None:
                self._responses.mute(response_id)
        cancelled = await self._responses.cancel_active()
        for heard in cut:
            await self._truncate(heard, cancelled=cancelled is not None, barge_in=barge_in)

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
