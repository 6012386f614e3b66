"""The agent's voice on its way to the caller: Voice Live audio -> PCM frames -> the pacer.

Audio deltas arrive in whatever sizes the model streams them. Each is decoded (stateful, one
decoder per call), cut into whole 20 ms ACS frames, built into the outbound ``AudioData``
message once, and queued on the pacer, which releases it in real time. Audio of a response the
caller spoke over is dropped here, so the caller never hears it.
"""

from __future__ import annotations

import time

from callbridge.adapters.telemetry import CallTelemetry
from callbridge.adapters.voice_events import AudioDelta
from callbridge.bridge.event_fields import integer, text
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.core import acs_media
from callbridge.core.codec import Codec
from callbridge.core.framer import Framer
from callbridge.core.pacing import HeldAudio, ItemKey, OutFrame


class AgentAudio:
    """Decodes, frames and queues one call's agent audio; owns the codec's agent direction."""

    def __init__(
        self,
        *,
        codec: Codec,
        pacer: FramePacer,
        responses: Responses,
        stats: CallStats,
        telemetry: CallTelemetry | None,
        started_at: float,
    ) -> None:
        """``started_at``: the monotonic time the call's first audio is measured from."""
        self._codec = codec
        self._framer = Framer(codec.acs_frame_bytes)
        self._pacer = pacer
        self._responses = responses
        self._stats = stats
        self._telemetry = telemetry
        self._started_at = started_at
        self._first_audio_queued = False
        self._framing: ItemKey | None = None
        """The item whose audio the framer holds the start of a frame of."""

    def on_delta(self, event: AudioDelta) -> None:
        """Queue one ``response.audio.delta`` for the caller.

        Raises:
            ValueError, TypeError: the delta carries no base64 audio, or malformed ids.
        """
        response_id = text(event.response_id)
        audio = event.delta
        if not isinstance(audio, bytes):
            raise ValueError("response.audio.delta carries no base64 audio")
        audio_ms = self._codec.output_ms(len(audio))
        if self._responses.is_muted(response_id):
            # Late audio of an interrupted response: the caller must never hear it.
            self._stats.dropped_agent_audio_ms += audio_ms
            return
        key = (text(event.item_id), integer(event.content_index))
        self._responses.item_response[key[0]] = response_id
        received = self._responses.received_ms
        received[key] = received.get(key, 0.0) + audio_ms
        self._stats.agent_audio_ms += audio_ms
        self._framing = key
        self._queue_whole_frames(key, self._codec.decoder.decode(audio))

    def end_of_item(self, key: ItemKey) -> None:
        """The item's audio is complete: release what the codec and framer still hold."""
        if self._responses.is_muted(self._responses.item_response.get(key[0])):
            return
        self._queue_whole_frames(key, self._codec.decoder.flush())
        self._queue_last_frame(key, self._framer)
        self._framing = None

    def resume(self, held: HeldAudio) -> None:
        """Play again what a paused pacer held (``FramePacer.resume``), framed afresh from the
        sample the caller stopped at. An item still arriving goes on seamlessly: the framer's
        part-frame of it follows its held audio."""
        for index, (key, pcm) in enumerate(held):
            if index == len(held) - 1 and key == self._framing:
                self._queue_whole_frames(key, pcm + self._framer.take())
                continue
            framer = Framer(self._framer.frame_bytes)
            self._push_frames(key, framer.push(pcm))
            self._queue_last_frame(key, framer)

    def discard_partial(self) -> None:
        """Forget audio not yet made into frames (the pacer was flushed: a barge-in)."""
        self._codec.decoder.reset()
        self._framer.clear()
        self._framing = None

    def _queue_last_frame(self, key: ItemKey, framer: Framer) -> None:
        rest = framer.flush()
        if rest is not None:
            pcm, real = rest
            self._pacer.push(
                OutFrame(key, self._codec.pcm_ms(real), acs_media.audio_data(pcm), pcm)
            )

    def _queue_whole_frames(self, key: ItemKey, pcm: bytes) -> None:
        if not self._first_audio_queued and self._telemetry is not None:
            self._first_audio_queued = True
            self._telemetry.first_audio((time.monotonic() - self._started_at) * 1000)
        self._push_frames(key, self._framer.push(pcm))

    def _push_frames(self, key: ItemKey, frames: list[bytes]) -> None:
        frame_ms = self._codec.frame_ms
        for frame in frames:
            self._pacer.push(OutFrame(key, frame_ms, acs_media.audio_data(frame), frame))
