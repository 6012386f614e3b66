"""ACS playback marks (beta): measure when the caller hears agent audio instead of estimating it.

Without marks, the heard position of agent audio is its due time plus a configured playout delay
(``CALLBRIDGE_PLAYOUT_DELAY_MS``), an estimate of ACS's buffering. The Call Automation .NET SDK
(beta, Dec 2025) can mark an outbound frame; ACS then answers ``MarkData`` ``completed`` once
that audio has been played, or ``cancelled`` when ``StopAudio`` dropped it. callbridge marks one
frame every ``MARK_EVERY_FRAMES`` of each talk spurt, and each ``completed`` mark is a
measurement of the playout delay: the ack's arrival less the moment the frame's audio ended on
the pacer's grid. The heard position then uses a running median of those measurements.

The public record does not say whether ``completed`` means the frame began or finished playing;
"has been played" reads as finished, so the frame's own duration is taken off. The ack's trip
back from ACS is part of each measurement (a few ms late is the safe side: callbridge then
claims slightly less was heard, never more). The wire shape lives in ``core.acs_media``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from statistics import median
from typing import Final

from callbridge.core.acs_media import MarkStatus

MARK_EVERY_FRAMES: Final = 10
"""One marked frame per 200 ms of each talk spurt (and always its first)."""

WINDOW: Final = 9
"""The running median takes the latest this many measurements: steady, yet follows a change
within about two seconds of talk."""

MAX_PENDING: Final = 256
"""Marks awaiting an answer; the oldest are forgotten beyond this (ACS never answered them)."""

MAX_DELAY_S: Final = 2.0
"""A measurement above this is not a playout delay (a stalled socket): it is ignored."""


@dataclass(slots=True)
class MarkStats:
    """Counters for the call's summary."""

    sent: int = 0
    completed: int = 0
    cancelled: int = 0
    unknown: int = 0
    """Answers naming no mark callbridge is waiting for (late, duplicated, or not ours)."""
    discarded: int = 0
    """Completed marks whose measurement was out of range."""


class PlayoutDelayMeter:
    """Pending marks and the measured playout delay (sans-IO: times are passed in)."""

    __slots__ = ("_next_id", "_pending", "_samples", "stats")

    def __init__(self) -> None:
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._next_id = 0
        self.stats = MarkStats()

    def new_mark(self, played_by: float) -> str:
        """A mark for a frame whose audio ends, on the pacer's grid, at ``played_by``."""
        self._next_id += 1
        mark_id = f"m{self._next_id}"
        self._pending[mark_id] = played_by
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self.stats.sent += 1
        return mark_id

    def answered(self, mark_id: str, status: MarkStatus, at: float) -> None:
        """ACS answered mark ``mark_id`` with ``status`` at ``at``."""
        played_by = self._pending.pop(mark_id, None)
        if played_by is None:
            self.stats.unknown += 1
            return
        if status == "cancelled":
            self.stats.cancelled += 1
            return
        self.stats.completed += 1
        delay = at - played_by
        if not 0.0 <= delay <= MAX_DELAY_S:
            self.stats.discarded += 1
            return
        self._samples.append(delay)

    @property
    def delay_s(self) -> float | None:
        """The measured playout delay, or None before the first measurement."""
        return median(self._samples) if self._samples else None
