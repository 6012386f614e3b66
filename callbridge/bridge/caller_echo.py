"""The caller's audio without the agent's echo, and the audio Voice Live is sent for it.

A caller on a speakerphone sends the agent's voice back, delayed and quieter. Taken for the
caller, it would stop the agent mid-sentence again and again (a barge-in), become a turn of its
own, and bury what the caller really says under the agent's words. Only callbridge knows what
the phone played, when (``core.played_audio``, written by the pacer), so only callbridge can
line that up with the caller's audio. With it:

- **pcm16 with a client reference** (the profile's ``echo_reference``, on by default): Voice
  Live gets interleaved stereo, the caller's audio on channel 0 and what their phone played at
  the same instants on channel 1, and cancels the echo itself (``input_audio_echo_cancellation``
  with ``reference_source: client``, ``channels: 2``; ``adapters.voice_live``);
- **otherwise** (``g711_ulaw`` takes no second channel): callbridge cancels it
  (``core.echo_canceller``) and Voice Live gets the caller's audio without it, so the echo
  starts no barge-in and no turn, while a caller who talks over the agent is heard whole.

Either way the bridge's own measures of the caller (``bridge.interruption``'s voiced frames)
read the cancelled audio, so an echo never counts as the caller talking.

The caller's audio is placed on the played audio's sample clock by counting its samples, not
by each frame's arrival: network jitter or a busy event loop would move the reference by whole
samples and spoil the cancelling. The count may be off by a constant (the first frame came
late): that only moves the echo's delay as the canceller sees it, and it finds that delay
whatever it is. What must not happen is the count moving for nothing, since every move moves
the echo under the canceller's filter. So it moves only for what cannot be jitter: a frame
earlier than the count by more than ``EARLY_MS`` (a frame cannot arrive before it was
captured: the count started late), or frames all later than the count by more than
``LOST_FRAMES`` for ``LOST_WINDOW_FRAMES`` (audio lost on the way). The canceller follows
each move exactly: a count that started late moves the echo's delay, as it sees it, by as
much, and its filter moves with it; lost audio leaves the delay where it was, with silence
in the caller's history for it. Either way a search checks the filter at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import structlog
from numpy.typing import NDArray

from callbridge.core.codec import FRAME_MS, CallerEncoder
from callbridge.core.echo_canceller import EchoCanceller, EchoPath
from callbridge.core.played_audio import PlayedAudio

log = structlog.get_logger(__name__)

EARLY_MS: Final = 10.0
LOST_FRAMES: Final = 3
LOST_WINDOW_FRAMES: Final = 25


@dataclass(frozen=True, slots=True)
class CallerFrame:
    """One frame of the caller as the bridge measures it and as Voice Live gets it."""

    cleaned: bytes
    """PCM16 at the ACS rate, the agent's echo taken out."""
    for_voice_live: bytes
    """Encoded for the session's ``input_audio_format`` (stereo with the reference, if so)."""


class CallerEcho:
    """Lines the caller's audio up with what their phone played and takes the echo out."""

    def __init__(
        self,
        played: PlayedAudio,
        *,
        rate: int,
        encoder: CallerEncoder,
        client_reference: bool,
    ) -> None:
        """``client_reference``: Voice Live is sent the reference as channel 1 and cancels the
        echo itself (the session must be configured for it)."""
        self._played = played
        self._frame = rate * FRAME_MS // 1000
        self._encoder = encoder
        self._client_reference = client_reference
        self._canceller = EchoCanceller(rate)
        self._next: int | None = None
        """The sample position the caller's next frame starts at."""
        self._early = round(EARLY_MS * rate / 1000)
        self._least_late: int | None = None
        """The least lateness, in samples, of the frames since ``_late_since``."""
        self._late_frames = 0
        self.path: EchoPath | None = None
        """The echo found on the line, once one is."""
        self._canceller_failed = False

    def take(self, pcm: bytes, arrived_at: float) -> CallerFrame:
        """The caller's frame ``pcm``, received at the monotonic time ``arrived_at``."""
        mic = np.frombuffer(pcm, dtype="<i2")
        first = self._place(mic.size, arrived_at)
        # Nothing played from here on (the agent is quiet): no window to build or scan.
        played = self._played.end > first
        reference = self._played.window(first, mic.size) if played else None
        cleaned = self._cancel(mic, reference)
        if self._client_reference:
            stereo = np.zeros(2 * mic.size, dtype="<i2")
            stereo[0::2] = mic
            if reference is not None:
                stereo[1::2] = reference
            return CallerFrame(cleaned.tobytes(), stereo.tobytes())
        cleaned_pcm = pcm if cleaned is mic else cleaned.astype("<i2").tobytes()
        return CallerFrame(cleaned_pcm, self._encoder.encode(cleaned_pcm))

    def _cancel(
        self, mic: NDArray[np.int16], reference: NDArray[np.int16] | None
    ) -> NDArray[np.int16]:
        """The caller's audio without the echo; as it came once the canceller has failed: a
        fault in it costs the call its echo cancelling, never the call."""
        if self._canceller_failed:
            return mic
        try:
            cleaned = self._canceller.process(mic, reference)
        except Exception as exc:  # a bug in the canceller must not end the call
            log.error("call.echo_canceller_failed", exc_info=exc)
            self._canceller_failed = True
            return mic
        self._note_path()
        return cleaned

    def _place(self, samples: int, arrived_at: float) -> int:
        """The sample position of the frame's first sample (see the module docstring)."""
        arrived_end = self._played.position(arrived_at)
        if self._next is None:
            self._next = arrived_end - samples
        late = arrived_end - (self._next + samples)
        if late < -self._early:
            # At most as far back as the played audio keeps (a count later still moves on with
            # the next frame).
            self._place_earlier(min(-late, self._played.reread))
        else:
            least = late if self._least_late is None else min(self._least_late, late)
            self._least_late, self._late_frames = least, self._late_frames + 1
            if self._late_frames >= LOST_WINDOW_FRAMES:
                if least > LOST_FRAMES * self._frame:
                    self._skip_lost(least)
                self._least_late, self._late_frames = None, 0
        first = self._next
        self._next += samples
        return first

    def _place_earlier(self, samples: int) -> None:
        """The count started late: the caller's audio moves earlier, and the echo in it with
        it, so the canceller moves its filter too."""
        assert self._next is not None
        self._next -= samples
        self._least_late, self._late_frames = None, 0
        self._canceller.placed_earlier(samples)

    def _skip_lost(self, samples: int) -> None:
        """``samples`` of the caller's audio were lost: the count goes on past them, and the
        canceller takes silence in their place, against what the phone played meanwhile."""
        assert self._next is not None
        self._canceller.lost(self._played.window(self._next, samples))
        self._next += samples
        self._least_late, self._late_frames = None, 0

    def _note_path(self) -> None:
        path = self._canceller.path
        if path is None or path == self.path:
            return
        log.info(
            "call.echo_found" if self.path is None else "call.echo_moved",
            delay_ms=round(path.delay_ms, 1),
            level_db=round(path.level_db, 1),
        )
        self.path = path
