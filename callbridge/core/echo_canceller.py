"""Takes the agent's own voice, echoed back by the caller's phone, out of the caller's audio.

A speakerphone (or a handset that lets some through) sends back a delayed, quieter and filtered
copy of what it plays. Neither ACS nor callbridge gets it apart from the caller's voice, and a
turn detector takes it for the caller talking over the agent. callbridge paces the agent's audio,
so it knows which sample the phone was playing when (``core.played_audio``): lined up with the
caller's audio, that is the reference an echo canceller needs.

Two stages, per 20 ms frame of the caller's audio and the reference at the same positions:

1. **The echo's delay** (``core.echo_delay``): the delay at which one copy of the reference
   best explains the last ``ANALYSIS_MS`` of the caller's audio, believed only when it explains
   at least ``MIN_EXPLAINED`` of the caller's energy: caller speech, noise and silence never
   do. The search runs only while what is left of the caller's audio is loud enough to matter
   (``WORTH_CANCELLING_RMS``): from the first such frame of each talk spurt, since the phone's
   jitter buffer starts afresh with each spurt and moves the echo by a few ms; then, while
   nothing convincing is found, at doubling intervals up to ``GIVE_UP_FOR_MS`` (a noisy line
   costs little); once found, every ``RECHECK_EVERY_MS``. While nothing has played within
   reach the histories are not kept, and when the agent speaks again they start from silence:
   the caller's words from before the gap would otherwise fill the first searches' window and
   hide the new spurt's echo from them.
2. **The echo's shape**, a ``TAPS_MS`` filter around that delay adapted by normalised least
   mean squares (block NLMS): it learns the filtering of the echo path and the fraction of a
   sample the delay search cannot see, and its output is subtracted from the caller's audio.
   It adapts only while the caller is quiet: when the caller's audio is louder than the
   loudest echo the path could make (a Geigel double-talk test with the measured echo level
   and a ``DOUBLE_TALK_MARGIN``), it is the caller talking, and the filter holds still so it
   cannot learn to cancel them. At each talk spurt's start the filter has to prove itself: a
   search that finds the echo within the filter's span while the filter leaves much of it
   (a move of a few samples does that) seats a tap at the delay found, at once.

With no echo found, or no agent audio within reach of the delay, the caller's audio passes
unchanged, sample for sample. Should the filter ever add energy instead of removing it, it is
reset to the delay search's single tap, and that frame passes unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np
from numpy.typing import NDArray

from callbridge.core.codec import FRAME_MS
from callbridge.core.echo_delay import QUIET_RMS, DelaySearch, Finding
from callbridge.core.pcm import rms

TAPS_MS: Final = 8
RECHECK_EVERY_MS: Final = 500
GIVE_UP_FOR_MS: Final = 2000
"""The longest the search rests after finding nothing (a new spurt wakes it at once)."""
SPURT_GAP_MS: Final = 200
"""The reference silent this long, then sounding again: a new talk spurt."""
MIN_EXPLAINED: Final = 0.5
STEP: Final = 1.0
"""NLMS step size: half the way to the best fit each frame; stable for any input level."""
DOUBLE_TALK_MARGIN: Final = 2.0
"""The caller talks when their audio peaks above twice (6 dB over) the loudest echo the
measured path predicts."""
WORTH_CANCELLING_RMS: Final = 50.0
"""The search runs only while this much is left: fainter echo does nothing to a turn detector
(a voiced frame is eight times louder), and a quiet line costs no searching."""
MISSED_ECHO_RMS: Final = 200.0
"""This much left in a frame the caller did not talk in is echo the filter missed: search now,
before a turn detector hears it (a voiced frame is twice as loud)."""
MISSED_FRACTION: Final = 0.25
"""... and less than 6 dB under what came in."""
HISTORY_SLACK_FRAMES: Final = 10
"""Frames the histories take in before their samples are moved back to the buffer's front: the
move costs one copy of a history every ten frames, rather than every frame."""


class _Found(Enum):
    """What a delay search found."""

    NOTHING = "nothing"
    IN_PLACE = "in_place"
    MOVED = "moved"


@dataclass(frozen=True, slots=True)
class EchoPath:
    """The echo as measured: how late and how loud the reference comes back."""

    delay_ms: float
    level_db: float


class _Window:
    """The latest ``size`` samples of a stream, oldest first, as one array view.

    Appending does not shift them all each frame: the buffer has ``slack`` samples more, the
    view slides along it, and only when it reaches the end are its samples moved back to the
    front, once every ``slack`` samples."""

    __slots__ = ("_buffer", "_end", "_size")

    def __init__(self, size: int, *, slack: int) -> None:
        self._buffer: NDArray[np.float32] = np.zeros(size + slack, dtype=np.float32)
        self._size = size
        self._end = size

    def push(self, new: NDArray[np.int16]) -> None:
        n = new.size
        if self._end + n > self._buffer.size:
            keep = self._size - n
            self._buffer[:keep] = self._buffer[self._end - keep : self._end]
            self._end = keep
        self._buffer[self._end : self._end + n] = new
        self._end += n

    def clear(self) -> None:
        """Silence in place of every sample."""
        self._buffer.fill(0.0)

    def drop_latest(self, count: int) -> None:
        """Forget the latest ``count`` samples; silence comes in at the oldest end."""
        count = min(count, self._size)
        kept = self.latest[: self._size - count].copy()
        self._buffer[:count] = 0.0
        self._buffer[count : self._size] = kept
        self._end = self._size

    @property
    def latest(self) -> NDArray[np.float32]:
        return self._buffer[self._end - self._size : self._end]


class EchoCanceller:
    """Cancels the reference's echo in the caller's audio (see the module docstring)."""

    def __init__(self, rate: int) -> None:
        frame = rate * FRAME_MS // 1000
        self._frame = frame
        self._rate = rate
        self._taps = rate * TAPS_MS // 1000
        self._delays = DelaySearch(rate)
        # Both histories end at the current frame: the reference's is long enough for a search
        # and the filter, the caller's for the search's analysis.
        searched = self._delays.searched
        self._history = frame * math.ceil((searched + self._taps) / frame) + frame
        self._mic_window = _Window(self._delays.analysis, slack=HISTORY_SLACK_FRAMES * frame)
        self._ref_window = _Window(self._history, slack=HISTORY_SLACK_FRAMES * frame)
        self._silence: NDArray[np.int16] = np.zeros(frame, dtype=np.int16)
        self._since_reference = self._history
        """Samples since the reference last carried sound (it cannot echo after its reach)."""
        self._reach = self._delays.max_delay + self._taps + frame
        """The longest a sample of the reference can take to come back in the filter's span."""
        self._spurt_gap = rate * SPURT_GAP_MS // 1000
        self._frames_to_search = 0
        self._search_interval = 1
        """Frames from one search to the next."""
        self._weights: NDArray[np.float32] | None = None
        self._first_lag = 0
        """The delay, in samples, of the filter's first tap."""
        self._gain = 0.0
        """The delay search's gain: the echo level the double-talk test expects."""
        self._missed = False
        """The latest frame kept loud echo the caller did not make: the filter is off."""
        self._left_fraction = 0.0
        """What the filter left of the latest frame's energy."""
        self._caller_talks = False
        """The latest frame was louder than the echo could make it: the caller talks."""
        self._proven = False
        """A search has found the filter doing its job since the agent's talk spurt began."""
        self.path: EchoPath | None = None
        """The echo found, if any; ``None`` until one is."""

    def process(
        self, mic: NDArray[np.int16], reference: NDArray[np.int16] | None
    ) -> NDArray[np.int16]:
        """One frame of the caller's audio without the echo of ``reference`` (the agent audio
        the phone played at the same positions; ``None``: it played nothing), of any length."""
        frame = self._frame
        if mic.size > frame:  # ACS sends 20 ms; anything longer is taken a frame at a time
            parts = range(0, mic.size, frame)
            pieces = [
                self.process(
                    mic[i : i + frame], None if reference is None else reference[i : i + frame]
                )
                for i in parts
            ]
            return np.concatenate(pieces)
        if not mic.size:
            return mic
        if not self._take_in(mic, reference):
            return mic  # nothing played recently enough to echo now
        cleaned = mic if self._weights is None else self._cancel(mic)
        self._frames_to_search -= 1
        if self._search_due(cleaned):
            # What the search finds serves from the next frame on.
            recheck = RECHECK_EVERY_MS // FRAME_MS
            match self._search():
                case _Found.MOVED:  # check again soon, until what is left is faint
                    self._search_interval = 1
                case _Found.IN_PLACE:  # the filter is right: the caller talks, or it adapts
                    self._search_interval = recheck
                case _Found.NOTHING:
                    longest = GIVE_UP_FOR_MS // FRAME_MS
                    self._search_interval = min(2 * self._search_interval, longest)
            self._frames_to_search = self._search_interval
        return cleaned

    def _take_in(self, mic: NDArray[np.int16], reference: NDArray[np.int16] | None) -> bool:
        """Add a frame to the histories and note the talk spurts; False when nothing played
        within reach (then the histories are left as they are)."""
        reach = self._reach
        # count_nonzero, not ``any``: numpy's ``any`` costs four times as much per frame.
        if reference is not None and np.count_nonzero(reference):
            if self._since_reference > reach:
                self._forget_histories()
            if self._since_reference >= self._spurt_gap:
                self._search_now()  # a new spurt
                self._proven = False
            self._since_reference = 0
        else:
            self._since_reference += mic.size
        if self._since_reference > reach:
            return False
        self._push(mic, self._silence[: mic.size] if reference is None else reference)
        return True

    def _search_due(self, cleaned: NDArray[np.int16]) -> bool:
        """At once when the filter missed; else on the search's own schedule, while enough
        is left to matter."""
        if self._missed:
            return True
        return self._frames_to_search <= 0 and rms(cleaned.tobytes()) >= WORTH_CANCELLING_RMS

    def _search_now(self) -> None:
        """The next frame searches, and the one after, until something is found."""
        self._frames_to_search, self._search_interval = 0, 1

    def placed_earlier(self, samples: int) -> None:
        """From now on the caller's audio is placed ``samples`` earlier against the reference,
        its samples continuous (their count had started late): the echo comes back that much
        sooner after the reference. The reference's history drops its latest ``samples``, now
        ahead of the caller's, and the filter moves with the echo: left alone, it would cancel
        a copy shifted by them and leak the echo until a search found it again."""
        self._ref_window.drop_latest(samples)
        if self._weights is not None:
            if self._first_lag >= samples:
                self._first_lag -= samples
                self._update_path()
            else:  # the filter would reach past the reference's latest sample
                self._weights = None
        self._search_now()  # to check it

    def lost(self, reference: NDArray[np.int16]) -> None:
        """``reference.size`` samples of the caller's audio never came (lost on the way), and
        ``reference`` is what the phone played over them: the histories take silence for the
        caller and that reference, so the echo's delay stays where it was."""
        tail = reference[-self._history :]
        for i in range(0, tail.size, self._frame):
            chunk = tail[i : i + self._frame]
            self._take_in(self._silence[: chunk.size], chunk)
        self._search_now()  # to check it

    def _forget_histories(self) -> None:
        """Back after a gap the histories did not follow (nothing played within reach, so
        nothing was pushed): what they hold is from before it, the caller's last words perhaps,
        and would fill the next search's analysis window, which only this spurt's echo should
        fill. Over the gap nothing played, and nothing the caller said there can be echo."""
        self._mic_window.clear()
        self._ref_window.clear()

    def _push(self, mic: NDArray[np.int16], reference: NDArray[np.int16]) -> None:
        self._mic_window.push(mic)
        self._ref_window.push(reference)

    @property
    def _mic(self) -> NDArray[np.float32]:
        """The caller's latest samples, ending with the current frame."""
        return self._mic_window.latest

    @property
    def _ref(self) -> NDArray[np.float32]:
        """The reference's latest samples, ending with the current frame."""
        return self._ref_window.latest

    def _search(self) -> _Found:
        """Find the delay (and gain) at which the reference best explains the caller's audio,
        and move the filter there. The delays the filter covers compete too: while the best
        lies among them, it stays and keeps what it has learnt."""
        found = self._weights is not None
        delays = self._delays
        mic, reference = self._mic, self._ref[-delays.searched :]
        near = mic.astype(np.float64)
        mic_energy = float(near @ near)
        if mic_energy <= mic.size * QUIET_RMS**2 or not delays.envelopes_match(mic, reference):
            return _Found.NOTHING
        centre = self._first_lag + self._taps // 2
        findings = [
            delays.refine(mic, reference, coarse) for coarse in delays.candidates(mic, reference)
        ]
        if found:
            findings.append(delays.refine(mic, reference, centre, span=self._taps // 4))
        # None at all when no delay puts enough of the reference against the caller's audio
        # (a spurt's faint first samples, after a gap the histories forgot).
        best = max(findings, key=lambda finding: finding.explained, default=None)
        if best is None or best.explained < MIN_EXPLAINED * mic_energy:
            return _Found.NOTHING
        # Until the filter is seen doing its job in this spurt (leaving no more than a quarter,
        # or than one tap would; the caller talking is not its fault), a finding within its
        # span seats a tap all the same: see the module docstring.
        self._proven = self._proven or (
            found
            and (
                self._caller_talks
                or self._left_fraction <= max(MISSED_FRACTION, 1.0 - best.explained / mic_energy)
            )
        )
        in_span = abs(best.delay - centre) <= self._taps // 4
        if found and in_span and self._proven and not self._missed:
            return _Found.IN_PLACE
        self._seat(best)
        return _Found.MOVED

    def _seat(self, finding: Finding) -> None:
        """A filter of one tap at the delay found, its gain the finding's."""
        self._gain = finding.gain
        self._first_lag = max(0, finding.delay - self._taps // 2)
        self._weights = np.zeros(self._taps, dtype=np.float32)
        self._weights[finding.delay - self._first_lag] = finding.gain
        self._update_path()

    def _cancel(self, mic: NDArray[np.int16]) -> NDArray[np.int16]:
        weights = self._weights
        assert weights is not None
        n, taps = mic.size, self._taps
        start = self._history - n - self._first_lag - taps + 1
        x = self._ref[start : start + n + taps - 1]
        echo = np.convolve(x, weights, "valid")
        near = mic.astype(np.float32)
        error = near - echo
        recent = x[taps - 1 :]
        power = float(recent @ recent)
        left, heard = float(error @ error), float(near @ near)
        self._left_fraction = left / heard if heard > 0.0 else 0.0
        if left > 2.0 * heard + n:
            self._weights, self._missed = None, False
            self._search_now()  # the path moved: find it again
            return mic
        loudest_echo = abs(self._gain) * float(np.abs(x).max(initial=0.0))
        caller_talks = float(np.abs(near).max(initial=0.0)) > DOUBLE_TALK_MARGIN * loudest_echo
        self._caller_talks = caller_talks
        # Loud, barely reduced, and not the caller: the echo has moved from under the filter
        # (a new talk spurt starts the phone's jitter buffer afresh, a few ms off).
        self._missed = (
            not caller_talks and left >= n * MISSED_ECHO_RMS**2 and left > MISSED_FRACTION * heard
        )
        if not caller_talks and power > n * QUIET_RMS**2:
            weights += (STEP / (taps * power)) * np.correlate(x, error, "valid")[::-1]
        cleaned: NDArray[np.int16] = np.clip(np.rint(error), -32768, 32767).astype(np.int16)
        return cleaned

    def _update_path(self) -> None:
        weights = self._weights
        assert weights is not None
        strongest = int(np.argmax(np.abs(weights)))
        level = float(np.sqrt(weights @ weights))
        self.path = EchoPath(
            delay_ms=(self._first_lag + strongest) * 1000 / self._rate,
            level_db=20 * math.log10(level) if level > 0 else -math.inf,
        )
