"""A deterministic energy VAD, timed by the audio timeline rather than the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np

from callbridge.sim.voicelive.audio import Int16Samples


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """Speech confirmed; it began at ``onset_ms`` on the audio timeline."""

    onset_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Silence lasted long enough; detected at ``end_ms`` after ``speech_ms`` of speech."""

    end_ms: int
    speech_ms: int


VadEvent: TypeAlias = SpeechOnset | SpeechEnd


class EnergyVad:
    """RMS-threshold voice activity detection in 20 ms windows of the audio timeline.

    Speech counts once ``min_speech_ms`` of consecutive windows are voiced; it ends after
    ``silence_ms`` of consecutive unvoiced windows. Positions are ms of audio fed since the
    first sample, so the result depends only on the audio, never on when it arrived.
    """

    WINDOW_MS: Final = 20

    def __init__(
        self, *, sample_rate: int, threshold_rms: float, min_speech_ms: int, silence_ms: int
    ) -> None:
        self.threshold_rms = threshold_rms
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms
        self._window = sample_rate * self.WINDOW_MS // 1000
        self._pending: Int16Samples = np.empty(0, dtype=np.int16)
        self._position_ms = 0
        self._in_speech = False
        self._run_start_ms = 0
        self._voiced_ms = 0
        self._silent_ms = 0

    def reset_speech(self) -> None:
        """Forget a speech run in progress (the buffer was committed or cleared)."""
        self._in_speech = False
        self._voiced_ms = 0
        self._silent_ms = 0

    def feed(self, samples: Int16Samples) -> list[VadEvent]:
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = buffered.size - buffered.size % self._window
        self._pending = buffered[whole:].copy()
        if not whole:
            return []
        windows = buffered[:whole].astype(np.float64).reshape(-1, self._window)
        # RMS >= threshold, compared as energies: the same test (the sums of squares of int16
        # are exact in float64) without numpy's mean and square root, which cost the emulator
        # more than the rest of its work on an append.
        energy = np.einsum("ij,ij->i", windows, windows)
        voiced = energy >= self.threshold_rms**2 * self._window
        events: list[VadEvent] = []
        for is_voiced in voiced.tolist():
            event = self._step(bool(is_voiced))
            if event is not None:
                events.append(event)
        return events

    def _step(self, voiced: bool) -> VadEvent | None:
        window_start = self._position_ms
        self._position_ms += self.WINDOW_MS
        if not self._in_speech:
            if not voiced:
                self._voiced_ms = 0
                return None
            if self._voiced_ms == 0:
                self._run_start_ms = window_start
            self._voiced_ms += self.WINDOW_MS
            if self._voiced_ms < self.min_speech_ms:
                return None
            self._in_speech = True
            self._silent_ms = 0
            return SpeechOnset(onset_ms=self._run_start_ms)
        if voiced:
            self._silent_ms = 0
            return None
        self._silent_ms += self.WINDOW_MS
        if self._silent_ms < self.silence_ms:
            return None
        speech_ms = self._position_ms - self._silent_ms - self._run_start_ms
        self.reset_speech()
        return SpeechEnd(end_ms=self._position_ms, speech_ms=speech_ms)
