"""The pacing core: when each agent frame is due, and what the caller has heard (sans-IO).

ACS never acknowledges playback, so callbridge decides when each 20 ms frame leaves and
derives from that when the caller hears it:

- Frame ``n`` of a talk spurt is *due* at ``anchor + n * 20 ms`` on the monotonic clock and is
  released up to ``lead_ms`` early, so ACS always holds a small cushion and never starves.
- The caller hears a frame from its due time plus ACS's playout delay (an estimate, configurable).
- If releasing falls more than one frame behind the grid (the event loop stalled, or the model's
  audio arrived late), the grid is re-anchored at *now* rather than bursting the backlog out.
- A ledger keeps, per ``(item_id, content_index)``, where that item's frames sit on the grid, so
  the heard position of the item at time ``t`` is known to within a frame.
- What was released is written, sample by sample at the moment it plays, to a
  ``PlayedAudio`` if given one: the reference for the caller's echo.
- Playback can be *paused* (the caller may be interrupting): what the caller has not heard yet,
  from the exact sample they stopped at, is held with what arrives meanwhile, and handed back on
  *resume* to be framed again; or dropped, if the interruption was real (``flush``).

``PacerCore`` is sans-IO: every method takes ``now``, so tests need no clock.
``callbridge.bridge.pacer.FramePacer`` drives it on the event loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from callbridge.core import acs_media
from callbridge.core.codec import FRAME_MS
from callbridge.core.playback_marks import MARK_EVERY_FRAMES, PlayoutDelayMeter
from callbridge.core.played_audio import PlayedAudio

_FRAME_S = FRAME_MS / 1000
RELEASE_SLACK_S = 0.001
"""A frame may go this much before its release time (its due time less the lead). uvloop's
clock counts whole milliseconds and rounds a timer's delay to one, running a delay under half a
millisecond at once (uvloop 0.23, ``loop.pyx``: ``time`` and ``call_later``): a frame whose
release time lies a fraction of a millisecond past ``now`` (as the grid's float sums often put
it) was polled for again at once, time and again, until the clock ticked over. In a 20-call
bench that was sixteen polls per frame sent, and the largest share of the bridge's CPU left. A
millisecond early is nothing against the lead (``lead_ms``, 40 by default)."""

ItemKey = tuple[str, int]
"""``(item_id, content_index)`` of a Voice Live audio content part."""

HeldAudio = list[tuple[ItemKey, bytes]]
"""Agent audio not yet heard, per item in playback order: PCM16 with no padding."""


@dataclass(frozen=True, slots=True)
class OutFrame:
    """One frame ready for ACS: the prebuilt wire message and the agent audio it carries."""

    key: ItemKey
    audio_ms: float
    message: str
    pcm: bytes = b""
    """The frame's PCM (what ``message`` carries, not encoded again); a test that needs no
    audio may leave it out."""


@dataclass(frozen=True, slots=True)
class Heard:
    """How much of one agent audio item the caller had heard when playback was cut."""

    item_id: str
    content_index: int
    heard_ms: float
    released_ms: float


@dataclass(slots=True)
class PacerStats:
    """Counters for metrics and reports."""

    frames: int = 0
    spurts: int = 0
    reanchors: int = 0
    """Times the pacer fell more than a frame behind while it had audio queued."""
    starved: int = 0
    """Times the queue ran dry mid-item and audio came back after it was due."""
    max_late_ms: float = 0.0
    """Worst release lateness, in ms, against the earliest moment each frame could go; a stall
    that re-anchored the grid counts in full."""


@dataclass(slots=True)
class _ItemLedger:
    """Where one item's released frames sit on the grid: ``(start_due, audio_ms)`` runs."""

    runs: list[tuple[float, float]] = field(default_factory=list)
    last_due: float = float("-inf")
    released_ms: float = 0.0

    def add(self, due: float, audio_ms: float) -> None:
        # Frames of a run are back to back, so a run is fully described by its start and length.
        if self.runs and abs(due - self.last_due - _FRAME_S) < 1e-6:
            start, length = self.runs[-1]
            self.runs[-1] = (start, length + audio_ms)
        else:
            self.runs.append((due, audio_ms))
        self.last_due = due
        self.released_ms += audio_ms

    def heard_ms(self, now: float, playout_delay_s: float) -> float:
        heard = 0.0
        for start, length in self.runs:
            heard += min(length, max(0.0, (now - start - playout_delay_s) * 1000))
        return heard

    def keep_heard(self, now: float, playout_delay_s: float) -> None:
        """Forget what was released but not heard by ``now`` (playback paused there)."""
        runs = []
        for start, length in self.runs:
            heard = min(length, max(0.0, (now - start - playout_delay_s) * 1000))
            if heard > 0:
                runs.append((start, heard))
        self.runs = runs
        self.last_due = float("-inf")
        self.released_ms = sum(length for _, length in runs)

    def ends_at(self, playout_delay_s: float) -> float:
        start, length = self.runs[-1]
        return start + playout_delay_s + length / 1000


class PacerCore:
    """The pacing decisions and the ledger, with time passed in explicitly."""

    __slots__ = (
        "_anchor",
        "_configured_delay_s",
        "_drained",
        "_held",
        "_index",
        "_last_key",
        "_lead_s",
        "_ledger",
        "_paused_cut",
        "_played",
        "_playout_delay_s",
        "_queue",
        "_unheard",
        "marks",
        "stats",
    )

    def __init__(
        self,
        *,
        lead_ms: float = 40.0,
        playout_delay_ms: float = 60.0,
        marks: bool = False,
        played: PlayedAudio | None = None,
    ) -> None:
        """``playout_delay_ms``: the configured estimate of ACS's playout delay; ``marks``:
        mark frames for ACS to acknowledge, and use the delay they measure instead;
        ``played``: where to write what the caller hears, when."""
        if lead_ms < 0 or playout_delay_ms < 0:
            raise ValueError("lead_ms and playout_delay_ms must be >= 0")
        self._lead_s = lead_ms / 1000
        self._configured_delay_s = self._playout_delay_s = playout_delay_ms / 1000
        self.marks = PlayoutDelayMeter() if marks else None
        self._played = played
        self._queue: deque[OutFrame] = deque()
        self._ledger: dict[ItemKey, _ItemLedger] = {}
        self._anchor: float | None = None
        self._index = 0
        self._drained = True
        self._last_key: ItemKey | None = None
        self._unheard: deque[tuple[float, OutFrame]] = deque()
        """Released frames not yet played to their end, with their due times."""
        self._held: list[tuple[ItemKey, bytearray]] | None = None
        """While paused: the audio to resume with; None when not paused."""
        self._paused_cut: list[Heard] = []
        self.stats = PacerStats()

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    def push(self, frame: OutFrame) -> None:
        """Queue a frame; it is released by ``poll`` when due (held, while paused)."""
        if self._held is not None:
            _hold(self._held, frame.key, _real_pcm(frame))
            return
        self._queue.append(frame)

    @property
    def paused(self) -> bool:
        return self._held is not None

    def _due(self, index: int) -> float:
        assert self._anchor is not None
        return self._anchor + index * _FRAME_S

    def poll(self, now: float) -> tuple[list[OutFrame], float | None]:
        """Release the frames that may go now.

        Returns:
            The frames to send, in order, and when to poll next (``None``: nothing queued).
        """
        delay_s = self._playout_delay_s
        unheard = self._unheard
        while unheard and unheard[0][0] + delay_s + unheard[0][1].audio_ms / 1000 <= now:
            unheard.popleft()
        if not self._queue:
            return [], None
        if self._anchor is None:
            self._start_spurt(now)
        elif now > self._due(self._index) + _FRAME_S:
            # Behind by more than a frame: re-anchor, never burst the backlog at the caller.
            if not self._drained:
                # The pacer stalled with audio queued: the frame it owed waited this long,
                # which the new grid would otherwise hide (its first frame is never late).
                self.stats.reanchors += 1
                self._note_late(now, self._due(self._index))
            elif self._queue[0].key == self._last_key:
                self.stats.starved += 1
            self._start_spurt(now)
        released: list[OutFrame] = []
        while self._queue:
            due = self._due(self._index)
            if now < due - self._lead_s - RELEASE_SLACK_S:
                break
            frame = self._queue.popleft()
            self._record(frame, due, now)
            if self.marks is not None and self._index % MARK_EVERY_FRAMES == 0:
                mark_id = self.marks.new_mark(played_by=due + frame.audio_ms / 1000)
                frame = replace(frame, message=acs_media.with_mark(frame.message, mark_id))
            self._note_late(now, due)
            self._index += 1
            released.append(frame)
        if released:
            self._last_key = released[-1].key
        # Drained: the model's audio, not the pacer, decides when the grid continues.
        self._drained = not self._queue
        wake = self._due(self._index) - self._lead_s if self._queue else None
        return released, wake

    def _note_late(self, now: float, due: float) -> None:
        """A frame due at ``due`` goes (or is owed) at ``now``: keep the worst lateness,
        measured from when the frame could first go. Lead-fill frames at the start of a spurt
        were not late: they did not exist earlier."""
        assert self._anchor is not None
        late_ms = (now - max(due - self._lead_s, self._anchor)) * 1000
        self.stats.max_late_ms = max(self.stats.max_late_ms, late_ms)

    def _start_spurt(self, now: float) -> None:
        self._anchor = now
        self._index = 0
        self.stats.spurts += 1
        self._prune(now)

    def _record(self, frame: OutFrame, due: float, now: float) -> None:
        ledger = self._ledger.get(frame.key)
        if ledger is None:
            ledger = self._ledger[frame.key] = _ItemLedger()
        ledger.add(due, frame.audio_ms)
        self._unheard.append((due, frame))
        if self._played is not None:
            self._played.add(due + self._playout_delay_s, frame.pcm, sent_at=now)
        self.stats.frames += 1

    def _prune(self, now: float) -> None:
        # Items the caller has heard to the end can no longer be interrupted. An item with
        # frames still queued has not been heard to its end, even if what was released so far
        # has played out (a stall longer than the playout delay): its earlier runs still count.
        queued = {frame.key for frame in self._queue}
        done = [
            key
            for key, ledger in self._ledger.items()
            if key not in queued and ledger.ends_at(self._playout_delay_s) <= now
        ]
        for key in done:
            del self._ledger[key]

    @property
    def playout_delay_ms(self) -> float:
        """The playout delay the heard position uses: measured if marks have measured it."""
        return self._playout_delay_s * 1000

    @property
    def playout_delay_measured(self) -> bool:
        """Whether ``playout_delay_ms`` comes from ACS's playback marks, not the configuration."""
        return self.marks is not None and self.marks.delay_s is not None

    def on_mark(self, mark: acs_media.MarkData, now: float) -> None:
        """ACS answered a mark at ``now``: a measurement of its playout delay, if ``completed``."""
        if self.marks is None:
            return
        self.marks.answered(mark.mark_id, mark.status, now)
        measured = self.marks.delay_s
        self._playout_delay_s = self._configured_delay_s if measured is None else measured

    def is_playing(self, now: float) -> bool:
        """True while agent audio is queued here, held (paused) or still playing out at ACS."""
        if self._queue or self._held is not None:
            return True
        return any(ledger.ends_at(self._playout_delay_s) > now for ledger in self._ledger.values())

    def heard_ms(self, key: ItemKey, now: float) -> float:
        """Estimated ms of the item the caller has heard by ``now``."""
        ledger = self._ledger.get(key)
        return ledger.heard_ms(now, self._playout_delay_s) if ledger else 0.0

    def pause(self, now: float) -> list[Heard]:
        """Stop releasing and hold what the caller has not heard, from the exact sample they
        stopped at (the caller will hear nothing more once ACS is told ``StopAudio``).

        Returns:
            For every item not yet heard to its end, what the caller heard of it by ``now``.
        """
        if self._held is not None:
            return self._paused_cut
        if self._played is not None:
            self._played.cut(now)
        cut = self._cut(now)
        held: list[tuple[ItemKey, bytearray]] = []
        for due, frame in self._unheard:
            played_ms = (now - due - self._playout_delay_s) * 1000
            if played_ms >= frame.audio_ms:
                continue
            pcm = _real_pcm(frame)
            _hold(held, frame.key, pcm[_sample_offset(frame, pcm, played_ms) :])
        for frame in self._queue:
            _hold(held, frame.key, _real_pcm(frame))
        for ledger in self._ledger.values():
            ledger.keep_heard(now, self._playout_delay_s)
        self._reset_grid()
        self._held = held
        self._paused_cut = cut
        return cut

    def resume(self) -> HeldAudio:
        """Play again: the audio held since ``pause``, for the caller to frame and push anew
        (frames pushed after this are queued as usual)."""
        held = self._held or []
        self._held = None
        self._paused_cut = []
        return [(key, bytes(pcm)) for key, pcm in held if pcm]

    def flush(self, now: float) -> list[Heard]:
        """Drop everything queued or held and forget the grid (barge-in).

        Returns:
            For every item not yet heard to its end, what the caller heard of it by ``now``
            (while paused: by the moment playback paused).
        """
        cut = self._paused_cut if self._held is not None else self._cut(now)
        if self._played is not None:
            self._played.cut(now)
        self._held = None
        self._paused_cut = []
        self._ledger.clear()
        self._reset_grid()
        return cut

    def _reset_grid(self) -> None:
        self._queue.clear()
        self._unheard.clear()
        self._anchor = None
        self._index = 0

    def _cut(self, now: float) -> list[Heard]:
        """What the caller heard by ``now`` of every item not yet heard to its end."""
        cut = [
            Heard(
                item_id=key[0],
                content_index=key[1],
                heard_ms=ledger.heard_ms(now, self._playout_delay_s),
                released_ms=ledger.released_ms,
            )
            for key, ledger in self._ledger.items()
            if ledger.ends_at(self._playout_delay_s) > now
        ]
        for key in dict.fromkeys(frame.key for frame in self._queue):
            if key not in self._ledger:
                cut.append(Heard(key[0], key[1], heard_ms=0.0, released_ms=0.0))
        return cut


def _real_pcm(frame: OutFrame) -> bytes:
    """The frame's audio without the silence that pads an item's last frame."""
    pcm = frame.pcm or acs_media.audio_data_pcm(frame.message)
    real = round(frame.audio_ms * len(pcm) / FRAME_MS) // 2 * 2
    return pcm[:real]


def _sample_offset(frame: OutFrame, pcm: bytes, played_ms: float) -> int:
    """The byte offset of the first sample not yet heard, ``played_ms`` into the frame."""
    if played_ms <= 0 or not pcm:
        return 0
    bytes_per_ms = len(pcm) / frame.audio_ms
    return int(played_ms * bytes_per_ms) // 2 * 2


def _hold(held: list[tuple[ItemKey, bytearray]], key: ItemKey, pcm: bytes) -> None:
    if held and held[-1][0] == key:
        held[-1][1].extend(pcm)
    else:
        held.append((key, bytearray(pcm)))
