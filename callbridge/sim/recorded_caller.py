"""The caller's side of a replayed recording: what ACS delivered, said back when it arrived.

:func:`caller_side` turns a recording's caller audio, keypad digits and caller transcripts
into the script the simulated phone runs. The replay's clock starts at the recorded caller's
first frame: ACS starts streaming when the media socket opens, and so does the simulated
phone, so ``At`` times (seconds after the media socket opened) are recording times less that
first frame's. The caller says exactly the audio ACS delivered, at the time it arrived:

* ``caller.wav`` is cut into ``Say`` lines of whole 20 ms frames, each started ``At`` its
  arrival time (on the phone's 20 ms grid). A line runs on while the audio arrived back to
  back; a new one starts after a gap in the audio. The phone streams every 20 ms, so the
  replayed audio cannot arrive in bursts as recorded audio may; each stretch is placed at the
  earliest time consistent with its arrival: no later than it arrived, nor later than what
  arrived after it allows (audio held up in a stall and then delivered in a burst is placed
  where it was spoken). Timing errors therefore never add up past one gap.
* Stretches ACS marked ``silent`` that hold only zeros are not said: the phone sends those
  silent frames itself, as ACS did. Any other audio, silent-flagged or not, is said as is.
* Keypad digits become ``Dtmf`` steps at their place in the caller's audio. Steps run in
  order and a line is done only once all of it has been sent, so a digit pressed while the
  caller's audio was being said splits that line in two: the audio before the digit, the
  digit, then the rest ``At`` the frame that followed the digit. Nothing is shifted; the
  phone sends the digit just before that frame, as ACS did.
* The caller hangs up ``At`` the end of their audio (or of the recording, if they said
  nothing), ``stay_on_s`` later when the replayed agent is to end the call as it did.
* The caller's transcripts (``transcript`` lines of speaker ``caller``) are, in order, the
  emulator's transcripts of the caller's turns.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from callbridge.adapters.recording import (
    CALLER_SYNC_TOLERANCE_S,
    SAMPLE_WIDTH,
    CallerAudioRecord,
    DtmfRecord,
    Recording,
    TimelineRecord,
    TranscriptRecord,
)
from callbridge.sim.script import FRAME_MS, FRAME_S, At, Clip, Dtmf, Hangup, Say, Step

GAP_TOLERANCE_S: Final = CALLER_SYNC_TOLERANCE_S
"""Caller audio arriving more than this after the line being said would end starts a new
line ``At`` its own time (the recorder's own tolerance for a span)."""


@dataclass(frozen=True, slots=True)
class CallerSide:
    """The recorded caller, as a scenario's caller."""

    script: list[Step]
    """``Say`` and ``Dtmf`` steps in order, then the ``Hangup``."""
    transcripts: list[str]
    origin: float
    """The recording time that is the replay's time 0: the caller's first frame (0 without
    caller audio)."""


def caller_side(recording: Recording, *, stay_on_s: float) -> CallerSide:
    """The caller's script, hanging up ``stay_on_s`` after their recorded audio ends."""
    caller = _CallerAudio(recording)
    origin = caller.origin if caller.origin is not None else 0.0
    digits = caller.digits(recording.records)
    script, said_until = _caller_script(caller, digits, origin)
    end = said_until
    if caller.end is not None:
        end = max(end, caller.end - origin)
    elif recording.records:
        end = max(end, recording.records[-1].t - origin)
    script.append(Hangup(At(round(_grid(end) + stay_on_s, 6))))
    transcripts = [line.text for line in recording.of(TranscriptRecord) if line.speaker == "caller"]
    return CallerSide(script=script, transcripts=transcripts, origin=origin)


@dataclass(frozen=True, slots=True)
class _Placed:
    """A span of ``caller.wav`` placed on the replay's timeline (recording seconds)."""

    offset: int
    length: int
    at: float
    silent: bool

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(slots=True)
class _Line:
    """Caller audio said back to back from ``at`` (recording seconds)."""

    start: int
    end: int
    at: float


@dataclass(frozen=True, slots=True)
class _Digit:
    digit: str
    pos: int
    """Bytes of ``caller.wav`` that arrived before it."""
    at: float


class _CallerAudio:
    """Where each byte of ``caller.wav`` goes on the replay's timeline."""

    def __init__(self, recording: Recording) -> None:
        self.pcm = recording.caller_pcm
        self.rate = recording.sample_rate
        self.bps = float(recording.bytes_per_second)
        self.frame_bytes = self.rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        spans = [span for span in recording.of(CallerAudioRecord) if span.length > 0]
        # Backwards: nothing is placed later than it arrived, nor later than the audio after
        # it allows (a burst after a stall goes back to where it was spoken).
        placed: list[_Placed] = []
        later = math.inf
        for span in reversed(spans):
            at = min(span.t, later - span.length / self.bps)
            placed.append(_Placed(span.offset, span.length, at, span.silent))
            later = at
        placed.reverse()
        self.spans = placed
        self._offsets = [span.offset for span in placed]

    @property
    def origin(self) -> float | None:
        """When the first caller frame arrived: the replay's time 0."""
        return self.spans[0].at if self.spans else None

    @property
    def end(self) -> float | None:
        """When the last caller frame ended."""
        if not self.spans:
            return None
        last = self.spans[-1]
        return last.at + last.length / self.bps

    def start_after(self, pos: int) -> float:
        """When the byte at ``pos`` was placed (inf past the end)."""
        index = bisect.bisect_right(self._offsets, pos) - 1
        if index < 0:
            return self.spans[0].at if self.spans else math.inf
        span = self.spans[index]
        if pos >= span.end:
            return math.inf
        return span.at + (pos - span.offset) / self.bps

    def end_before(self, pos: int) -> float:
        """When the audio before ``pos`` ended (-inf before the start)."""
        index = bisect.bisect_left(self._offsets, pos) - 1
        if index < 0:
            return -math.inf
        span = self.spans[index]
        return span.at + (min(pos, span.end) - span.offset) / self.bps

    def lines(self) -> list[_Line]:
        """The audio the phone has to say: back-to-back runs, without the zero silent spans
        (the phone's own silent frames)."""
        lines: list[_Line] = []
        for span in self.spans:
            if span.silent and self.pcm.count(0, span.offset, span.end) == span.length:
                continue
            last = lines[-1] if lines else None
            if (
                last is not None
                and last.end == span.offset
                and span.at <= last.at + (last.end - last.start) / self.bps + GAP_TOLERANCE_S
            ):
                last.end = span.end
            else:
                lines.append(_Line(span.offset, span.end, span.at))
        return lines

    def digits(self, records: Sequence[TimelineRecord]) -> list[_Digit]:
        """Each keypad digit with its place in the caller's audio: the frames that arrived
        before it (by time, within the span it came in), and its time there."""
        digits: list[_Digit] = []
        span: CallerAudioRecord | None = None
        for record in records:
            if isinstance(record, CallerAudioRecord) and record.length > 0:
                span = record
            elif isinstance(record, DtmfRecord):
                if span is None:
                    pos = 0
                else:
                    step = span.frame_bytes or self.frame_bytes
                    frames = max(0, round((record.t - span.t) * self.bps / step))
                    pos = span.offset + min(frames * step, span.length)
                pos -= pos % SAMPLE_WIDTH
                at = min(max(record.t, self.end_before(pos)), self.start_after(pos))
                digits.append(_Digit(record.digit.upper(), pos, at))
        return digits


def _grid(seconds: float) -> float:
    """A time on the phone's 20 ms frame grid (the phone acts on whole frames only)."""
    return round(round(max(seconds, 0.0) / FRAME_S) * FRAME_S, 6)


def _caller_script(
    audio: _CallerAudio, digits: Sequence[_Digit], origin: float
) -> tuple[list[Step], float]:
    """The caller's ``Say`` and ``Dtmf`` steps in order, and when the last one ends (replay
    seconds)."""
    steps: list[tuple[int, int, int, Step]] = []
    """(position in caller.wav, digits before audio, sequence, step)"""
    inside: dict[int, float] = {}
    end = 0.0
    for line in audio.lines():
        start = _grid(line.at - origin)
        cuts = sorted({d.pos for d in digits if line.start < d.pos < line.end})
        bounds = [line.start, *cuts, line.end]
        for a, b in itertools.pairwise(bounds):
            at = round(start + (a - line.start) / audio.bps, 6)
            if a != line.start:
                inside[a] = at
            clip = Clip(audio.pcm[a:b], audio.rate)
            steps.append((a, 1, len(steps), Say(clip, At(at))))
        end = max(end, start + (line.end - line.start) / audio.bps)
    for digit in digits:
        at = inside.get(digit.pos, _grid(digit.at - origin))
        steps.append((digit.pos, 0, len(steps), Dtmf(digit.digit, At(at))))
        end = max(end, at)
    steps.sort(key=lambda entry: entry[:3])
    return [step for *_, step in steps], end
