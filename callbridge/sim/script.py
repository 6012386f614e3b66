"""The simulated caller's script: what the caller says or presses, and when.

A script is a sequence of steps run one after another: a step is *armed* when the previous one
has finished (the first when the media socket opens) and *fires* when its trigger holds. Triggers
read what the caller has heard so far, so a test can barge in at an exact point of the agent's
speech without knowing when the agent will start talking.

``ScriptRunner`` is sans-IO: the phone calls ``tick`` once per 20 ms frame and sends what it
returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from callbridge.assets import asset_path, read_wav

FRAME_MS = 20
"""ACS media frames carry 20 ms of audio."""

FRAME_S = FRAME_MS / 1000

TIME_SLACK_S = 1e-9
"""Float slack when comparing frame times: ``opened + 5 * 0.02`` may land a hair before
``opened + 0.1``, and ``At(0.1)`` must still fire on frame 5, the frame its time names."""

_DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Clip:
    """A mono PCM16 recording at a known sample rate: something the caller can say."""

    pcm: bytes
    sample_rate: int

    def __post_init__(self) -> None:
        if len(self.pcm) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes")
        if self.sample_rate <= 0:
            raise ValueError(f"bad sample rate {self.sample_rate}")

    @classmethod
    def from_wav(cls, path: Path | str) -> Clip:
        """Load a mono PCM16 WAV file."""
        pcm, rate = read_wav(path)
        return cls(pcm, rate)

    @classmethod
    def asset(cls, name: str) -> Clip:
        """Load one of the shipped lines, e.g. ``Clip.asset("caller_02_interrupt")``."""
        return cls.from_wav(asset_path(name))

    @classmethod
    def tone(
        cls, *, ms: float, sample_rate: int, hz: float = 440.0, amplitude: float = 0.3
    ) -> Clip:
        """A sine tone: a stand-in voice whose every sample is predictable."""
        n = round(ms * sample_rate / 1000)
        wave = amplitude * 32767 * np.sin(2 * np.pi * hz * np.arange(n) / sample_rate)
        return cls(wave.astype("<i2").tobytes(), sample_rate)

    @property
    def duration_ms(self) -> float:
        """Length of the clip in milliseconds."""
        return len(self.pcm) / 2 / self.sample_rate * 1000

    def at_rate(self, sample_rate: int) -> bytes:
        """The clip's PCM16 at another rate.

        Linear interpolation: no anti-alias filter, which is fine for a test caller's voice
        (the 16 kHz assets hold almost nothing above 8 kHz) and keeps numpy the only need.
        """
        if sample_rate == self.sample_rate:
            return self.pcm
        source = np.frombuffer(self.pcm, dtype="<i2").astype(np.float64)
        n_out = round(len(source) * sample_rate / self.sample_rate)
        positions = np.arange(n_out) * (self.sample_rate / sample_rate)
        resampled: npt.NDArray[np.float64] = np.interp(positions, np.arange(len(source)), source)
        return np.round(resampled).astype(np.int16).tobytes()


@dataclass(frozen=True, slots=True)
class At:
    """Fire at a fixed time after the media socket opened (once armed)."""

    s: float


@dataclass(frozen=True, slots=True)
class AfterHeard:
    """Fire once the agent's ``spurt``-th talk spurt (1-based; the greeting is 1) has played
    ``ms`` milliseconds at the phone: a barge-in at an exact point of the agent's speech."""

    ms: float
    spurt: int = 1

    def __post_init__(self) -> None:
        if self.spurt < 1:
            raise ValueError("talk spurts are counted from 1")


@dataclass(frozen=True, slots=True)
class AfterAgentDone:
    """Fire once agent audio has played since the step was armed, then stopped for
    ``pause_ms``: calm turn-taking."""

    pause_ms: float = 500.0


Trigger: TypeAlias = At | AfterHeard | AfterAgentDone
"""When a step fires."""


@dataclass(frozen=True, slots=True)
class Say:
    """The caller speaks a line, from the first 20 ms frame at which ``when`` holds."""

    clip: Clip
    when: Trigger

    def __post_init__(self) -> None:
        if not self.clip.pcm:
            raise ValueError("a line needs some audio")


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller presses a keypad key."""

    digit: str
    when: Trigger

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit.upper() not in _DTMF_DIGITS:
            raise ValueError(f"bad DTMF digit {self.digit!r}")


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller hangs up (the phone closes the socket); later steps never run."""

    when: Trigger


Step: TypeAlias = Say | Dtmf | Hangup
"""One thing the caller does."""


class Ear(Protocol):
    """What the script may know about the agent's audio: what the caller has heard."""

    def heard_ms(self, spurt: int, at: float) -> float:
        """Milliseconds of talk spurt ``spurt`` played by ``at``."""
        ...

    @property
    def playing_until(self) -> float | None:
        """When the agent audio already queued ends playing (None before any arrived)."""
        ...


@dataclass(slots=True)
class StepRecord:
    """When a step of the script was armed, fired and done (``time.monotonic()`` seconds).

    A step that never fired (its trigger never held before the call ended) has
    ``started_at = None``.
    """

    index: int
    step: Step
    armed_at: float | None = None
    """When the previous step finished (the socket opened, for the first step)."""
    started_at: float | None = None
    """Nominal time of the line's first frame, or when the DTMF message was sent."""
    finished_at: float | None = None
    """End of the line's last frame (padded to 20 ms); equal to ``started_at`` for DTMF."""


@dataclass(frozen=True, slots=True)
class Tick:
    """What the caller sends in one 20 ms frame slot."""

    pcm: bytes | None
    """One frame of speech, or None when the caller is silent."""
    digits: tuple[str, ...] = ()
    """DTMF keys pressed in this slot."""
    hangup: bool = False
    """The caller hangs up instead of sending this slot's audio."""


class ScriptRunner:
    """Runs a script frame by frame against what the caller hears."""

    def __init__(self, script: Sequence[Step], *, sample_rate: int, opened_at: float) -> None:
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._opened_at = opened_at
        self._steps = list(script)
        # Resample and pad every line once, before the call, so a tick only slices bytes.
        self._lines = [
            _pad(step.clip.at_rate(sample_rate), self._frame_bytes)
            if isinstance(step, Say)
            else b""
            for step in self._steps
        ]
        self.records = [StepRecord(i, step) for i, step in enumerate(self._steps)]
        self._index = 0
        self._armed_at = opened_at  # when the current step was armed
        self._offset: int | None = None  # byte offset into the line being spoken
        if self.records:
            self.records[0].armed_at = opened_at

    @property
    def done_at(self) -> float | None:
        """When the last step finished (the socket-open time for an empty script)."""
        if not self._steps:
            return self._opened_at
        return self.records[-1].finished_at

    def tick(self, due: float, ear: Ear) -> Tick:
        """Advance to the frame slot starting at ``due`` and return what to send in it."""
        digits: list[str] = []
        while self._offset is None and self._index < len(self._steps):
            record = self.records[self._index]
            if not _holds(record.step.when, due, self._armed_at, self._opened_at, ear):
                break
            record.started_at = due
            match record.step:
                case Say():
                    self._offset = 0
                case Dtmf(digit):
                    digits.append(digit)
                    self._finish(due)
                case Hangup():
                    self._finish(due)
                    return Tick(None, tuple(digits), hangup=True)
        return Tick(self._next_frame(due), tuple(digits))

    def _next_frame(self, due: float) -> bytes | None:
        if self._offset is None:
            return None
        line = self._lines[self._index]
        frame = line[self._offset : self._offset + self._frame_bytes]
        self._offset += self._frame_bytes
        if self._offset >= len(line):
            self._offset = None
            self._finish(due + FRAME_S)
        return frame

    def _finish(self, at: float) -> None:
        self.records[self._index].finished_at = at
        self._index += 1
        self._armed_at = at
        if self._index < len(self.records):
            self.records[self._index].armed_at = at


def _holds(trigger: Trigger, now: float, armed_at: float, opened_at: float, ear: Ear) -> bool:
    match trigger:
        case At(s):
            return now >= opened_at + s - TIME_SLACK_S
        case AfterHeard(ms, spurt):
            return ear.heard_ms(spurt, now) >= ms
        case AfterAgentDone(pause_ms):
            # Audio must have been playing at or after arming: the caller answers the agent's
            # latest turn, not one that finished before the step was reached.
            until = ear.playing_until
            return until is not None and armed_at <= until <= now - pause_ms / 1000 + TIME_SLACK_S


def _pad(pcm: bytes, frame_bytes: int) -> bytes:
    """Zero-pad to whole frames: ACS sends only full 20 ms frames."""
    frames = math.ceil(len(pcm) / frame_bytes)
    return pcm.ljust(frames * frame_bytes, b"\0")
