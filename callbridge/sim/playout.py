"""ACS's outbound playout buffer and the caller's ear, as a sans-IO model.

``Playout`` is fed the bridge's messages with the moment each was received and computes, from
those stamps alone, what the caller heard and when: talk spurts, underruns, jitter against the
20 ms grid, and what each StopAudio cut. The simulated phone (``callbridge.sim.phone``) drives it
from its socket; tests can drive it by hand with exact times.

All times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

SpurtEnd: TypeAlias = Literal["drained", "stopped", "hangup"]
"""How a talk spurt ended: played out, flushed by StopAudio, or cut by the end of the call."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One ``AudioData`` message from the bridge."""

    at: float
    """When it was received."""
    nbytes: int
    ms: float
    """Audio it carried."""


@dataclass(slots=True)
class Spurt:
    """A stretch of agent playback whose internal gaps stay under ``spurt_gap_ms``.

    Filled in while the call runs; final once ``end`` is set.
    """

    index: int
    """1-based: the greeting is spurt 1."""
    started_at: float
    """When the caller started hearing it (jitter-buffer fill included)."""
    played_ms: float = 0.0
    """What the caller heard of it; set when it ends."""
    received_ms: float = 0.0
    end: SpurtEnd | None = None
    ended_at: float | None = None
    """When playback stopped: drained, flushed or cut off."""
    underruns: int = 0
    """Times the queue ran dry and playback resumed within this spurt."""
    arrivals: list[Arrival] = field(default_factory=list)
    jitter_ms: list[float] = field(default_factory=list)
    """Per message: |arrival - its slot on the spurt's 20 ms grid| (see ``Playout``)."""


@dataclass(frozen=True, slots=True)
class StopRecord:
    """One StopAudio from the bridge and what it cut."""

    at: float
    spurt: int | None
    """Index of the spurt it cut; None if nothing was queued or playing."""
    heard_ms: float
    """What the caller had heard of that spurt at that instant: truncation ground truth."""
    discarded_ms: float
    """Queued audio it dropped unheard."""


@dataclass(slots=True)
class _Segment:
    """One AudioData message scheduled for playback."""

    start: float
    pcm: bytes
    duration: float
    cut_at: float = math.inf

    def played_s(self, at: float) -> float:
        return min(max(min(at, self.cut_at) - self.start, 0.0), self.duration)


class Playout:
    """ACS's outbound playout queue and the caller's ear, computed from arrival times (sans-IO).

    Audio arriving into an empty queue starts playing ``playout_delay_ms`` later (the jitter
    buffer fills); audio arriving while the queue holds audio plays straight after it. StopAudio
    empties the queue at the instant it arrives.

    Jitter: within a spurt, message n (counting the 20 ms units of audio received before it) is
    expected at ``first_arrival + max(0, n * 20 ms - lead_ms)``, since a paced bridge may run
    ``lead_ms`` ahead. The grid re-anchors when playback resumes after an underrun: the gap is
    counted as an underrun, and jitter keeps measuring pacing rather than repeating the gap.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        playout_delay_ms: float = 60.0,
        spurt_gap_ms: float = 250.0,
        lead_ms: float = 40.0,
    ) -> None:
        self._rate = sample_rate
        self._bytes_per_s = sample_rate * 2
        self._delay = playout_delay_ms / 1000
        # New audio would start playing `delay` after it arrives, so once the queue has been dry
        # for `gap - delay` the playback gap can no longer stay under `gap`: the spurt is over.
        self._close_after = max(spurt_gap_ms - playout_delay_ms, 0.0) / 1000
        self._lead_ms = lead_ms
        self.spurts: list[Spurt] = []
        self.stops: list[StopRecord] = []
        self.arrivals: list[Arrival] = []
        self._segments: list[_Segment] = []
        self._open: Spurt | None = None
        self._open_from = 0  # index in _segments of the open spurt's first segment
        self._window_from = 0  # segments before it were heard in full before the last window
        self._busy_until = -math.inf  # when the queued audio ends playing
        self._grid_at = 0.0
        self._grid_ms = 0.0

    @property
    def playing_until(self) -> float | None:
        """When the audio already queued ends playing (None before any audio arrived)."""
        return None if self._busy_until == -math.inf else self._busy_until

    def heard_ms(self, spurt: int, at: float) -> float:
        """Milliseconds of spurt ``spurt`` (1-based) played by ``at`` (0 if it has not begun)."""
        if spurt > len(self.spurts):
            return 0.0
        record = self.spurts[spurt - 1]
        if record is not self._open:
            return record.played_ms
        return self._open_played_s(at) * 1000

    def on_audio(self, at: float, pcm: bytes) -> float:
        """Queue an AudioData message received at ``at``; when it will have played."""
        self.advance(at)
        duration = len(pcm) / self._bytes_per_s
        # ms from integers, so whole 20 ms frames add up to exact whole milliseconds
        arrival = Arrival(at, len(pcm), len(pcm) * 1000 / self._bytes_per_s)
        self.arrivals.append(arrival)
        queued = at < self._busy_until
        start = self._busy_until if queued else at + self._delay
        spurt = self._open
        if spurt is None:
            spurt = self._open = Spurt(index=len(self.spurts) + 1, started_at=start)
            self.spurts.append(spurt)
            self._open_from = len(self._segments)
            self._grid_at, self._grid_ms = at, 0.0
        elif not queued:
            spurt.underruns += 1
            self._grid_at, self._grid_ms = at, 0.0
        expected = self._grid_at + max(0.0, self._grid_ms - self._lead_ms) / 1000
        spurt.jitter_ms.append(abs(at - expected) * 1000)
        self._grid_ms += arrival.ms
        spurt.arrivals.append(arrival)
        spurt.received_ms += arrival.ms
        self._segments.append(_Segment(start, pcm, duration))
        self._busy_until = start + duration
        return self._busy_until

    def on_stop(self, at: float) -> None:
        """Apply a StopAudio received at ``at``."""
        self.advance(at)
        spurt = self._open
        if spurt is None or at >= self._busy_until:
            if spurt is not None:
                # Drained but still inside its gap window: it ends here, so audio after the
                # StopAudio starts a new spurt, as the bridge means it to.
                self._close(spurt, "drained", self._busy_until)
            self.stops.append(StopRecord(at, None, 0.0, 0.0))
            return
        heard_ms = self._cut(spurt, at, "stopped")
        self.stops.append(StopRecord(at, spurt.index, heard_ms, spurt.received_ms - heard_ms))

    def advance(self, at: float) -> None:
        """Close the open spurt if its gap window has passed by ``at``."""
        spurt = self._open
        if spurt is not None and at >= self._busy_until + self._close_after:
            self._close(spurt, "drained", self._busy_until)

    def finish(self, at: float) -> None:
        """The call ended at ``at``: whatever is still queued is never heard."""
        self.advance(at)
        spurt = self._open
        if spurt is None:
            return
        if at < self._busy_until:
            self._cut(spurt, at, "hangup")
        else:
            self._close(spurt, "drained", self._busy_until)

    def heard_audio(self, start: float, end: float) -> npt.NDArray[np.int16]:
        """What the caller heard between ``start`` and ``end``, one sample per index."""
        count = max(round((end - start) * self._rate), 0)
        return self._render(start, 0, count, until=end, segments=0)

    def heard_window(
        self, origin: float, first: int, count: int, *, until: float
    ) -> npt.NDArray[np.int16]:
        """Samples ``first`` to ``first + count`` of what the caller heard by ``until``, sample 0
        at ``origin`` (samples before it are silence): for every sample played before
        ``until``, exactly what ``heard_audio(origin, ...)`` gives once the call is over.

        For a reader walking the call forward, a window at a time (the phone's echo): no window
        may start earlier, or have an earlier ``until``, than the one before, and ``until`` may
        not come before the window's end, because audio heard in full before a window is
        skipped for good, so each window costs only the audio around it.
        """
        # Rounding moves a segment's samples by at most one each way: keep a margin of two.
        window_at = origin + (first - 2) / self._rate
        segments = self._segments
        while self._window_from < len(segments):
            segment = segments[self._window_from]
            if segment.start + segment.played_s(until) > window_at:
                break
            self._window_from += 1
        return self._render(origin, first, count, until=until, segments=self._window_from)

    def _render(
        self, origin: float, first: int, count: int, *, until: float, segments: int
    ) -> npt.NDArray[np.int16]:
        """Samples ``first`` to ``first + count`` heard by ``until`` (sample 0 at ``origin``),
        from the segments from index ``segments`` on; a later segment overwrites an earlier."""
        out = np.zeros(count, dtype=np.int16)
        end = first + count
        for segment in self._segments[segments:]:
            start = round((segment.start - origin) * self._rate)
            if start >= end and segment.cut_at == math.inf:
                break  # everything after an uncut segment was queued behind it
            low = max(start, first)
            high = min(start + round(segment.played_s(until) * self._rate), end)
            if high > low:
                pcm = np.frombuffer(segment.pcm, dtype="<i2")
                out[low - first : high - first] = pcm[low - start : high - start]
        return out

    def _open_played_s(self, at: float) -> float:
        return sum(segment.played_s(at) for segment in self._segments[self._open_from :])

    def _cut(self, spurt: Spurt, at: float, end: SpurtEnd) -> float:
        """Flush the queue at ``at``; return the ms of ``spurt`` heard."""
        for segment in self._segments[self._open_from :]:
            segment.cut_at = at
        heard_ms = self._open_played_s(at) * 1000
        self._busy_until = at
        self._close(spurt, end, at, heard_ms)
        return heard_ms

    def _close(
        self, spurt: Spurt, end: SpurtEnd, at: float, played_ms: float | None = None
    ) -> None:
        spurt.end = end
        spurt.ended_at = at
        spurt.played_ms = spurt.received_ms if played_ms is None else played_ms
        self._open = None
