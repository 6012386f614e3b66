"""What the caller has heard of the agent, sample by sample: the echo reference (sans-IO).

The pacer decides when each agent frame plays (its due time plus ACS's playout delay), and a
``StopAudio`` ends playback at a known moment, so callbridge can say which agent sample the
caller's phone was playing at any moment. That is the signal a speakerphone echoes back, so it
is the reference an echo canceller needs (``core.echo_canceller``, and Voice Live's own when it
takes a client reference).

Times become sample positions at one ``rate`` counted from an ``epoch`` (a monotonic time), so
the caller's audio and the agent's can be lined up to the sample: position ``p`` is the instant
``epoch + p / rate``. A frame sent while the phone still has audio queued plays straight after
that audio, as a playout queue does: frames sent back to back (the pacer's 20 ms grid) stay
back to back, whatever the rounding of the grid's float times, and a frame the pacer sent late
(a busy event loop; its grid re-anchors) still follows on without a gap, as the caller hears
it. Only a frame sent after the queue ran dry starts afresh, at the time the pacer expects.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np
from numpy.typing import NDArray

KEEP_S: Final = 2.0
"""Audio is kept this long after it ended: the reader asks for windows close to now."""
REREAD_MS: Final = 100
"""How far back of its last window the reader may ask again (``bridge.caller_echo`` moves its
count back when it started late): windows skip what ended before that, not before their own
start, so a move back finds the audio still there, for about five more segments per window."""


class PlayedAudio:
    """The agent's audio as the caller's phone plays it: a timeline of PCM16 samples."""

    __slots__ = ("_epoch", "_keep", "_rate", "_segments", "reread")

    def __init__(self, rate: int, *, epoch: float) -> None:
        self._rate = rate
        self._epoch = epoch
        self._keep = round(KEEP_S * rate)
        self.reread = rate * REREAD_MS // 1000
        """``REREAD_MS`` in samples."""
        self._segments: deque[tuple[int, NDArray[np.int16]]] = deque()
        """``(first position, samples)`` in time order, never overlapping."""

    def position(self, at: float) -> int:
        """The sample position of the monotonic time ``at``."""
        return round((at - self._epoch) * self._rate)

    @property
    def end(self) -> int:
        """The position just after the last sample played, or to be played (0: none yet)."""
        if not self._segments:
            return 0
        first, samples = self._segments[-1]
        return first + samples.size

    def add(self, starts_at: float, pcm: bytes, *, sent_at: float) -> None:
        """``pcm`` was sent to the phone at ``sent_at``, to play from ``starts_at`` if
        nothing is playing by then (monotonic times)."""
        samples = np.frombuffer(pcm, dtype="<i2")
        first = self.position(starts_at)
        end = self.end
        if self._segments and (first <= end + 1 or self.position(sent_at) < end):
            first = end  # queued behind what is still playing: back to back
        if samples.size:
            self._segments.append((first, samples))
        while self._segments and self._segments[0][0] + self._segments[0][1].size < (
            first - self._keep
        ):
            self._segments.popleft()

    def cut(self, at: float) -> None:
        """Playback stopped at the monotonic time ``at``: nothing after it was heard."""
        position = self.position(at)
        while self._segments:
            first, samples = self._segments[-1]
            if first >= position:
                self._segments.pop()
                continue
            if first + samples.size > position:
                self._segments[-1] = (first, samples[: position - first])
            break

    def window(self, first: int, count: int) -> NDArray[np.int16]:
        """The ``count`` samples from position ``first``: silence where nothing played."""
        out = np.zeros(count, dtype=np.int16)
        end = first + count
        segments = self._segments
        # The reader moves forward, or back by at most ``REREAD_MS``: what ended before that is
        # never asked for again.
        forgotten = first - self.reread
        while segments and segments[0][0] + segments[0][1].size <= forgotten:
            segments.popleft()
        for start, samples in segments:
            stop = start + samples.size
            if stop <= first:
                continue
            if start >= end:
                break
            lo, hi = max(start, first), min(stop, end)
            out[lo - first : hi - first] = samples[lo - start : hi - start]
        return out
