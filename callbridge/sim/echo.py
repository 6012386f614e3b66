"""Speakerphone echo: what the simulated phone plays comes back into its microphone.

A caller on a speakerphone, or on a handset whose echo canceller lets some through, sends back a
delayed, quieter copy of what their phone plays. Their own microphone picks it up, so it reaches
ACS inside the caller's audio, and ACS streams that audio as it gets it, mixed with the other
participants' into one stream or per participant (MicrosoftDocs/azure-docs, articles/
communication-services/concepts/call-automation/audio-streaming-concept.md, "Supported
formats"): neither ACS nor the bridge gets the echo apart from the caller's voice. Whether ACS
or the carrier cancels some echo on a phone leg is not published; the stand-in passes it
through whole, the worst case a bridge must live with.

ACS's ``silent`` says the audio buffer "contains only silence" (``AudioData.IsSilent``, in
Azure/azure-sdk-for-net, sdk/communication/Azure.Communication.CallAutomation/src/Models/
Streaming/Media/AudioData.cs, and on Learn:
https://learn.microsoft.com/dotnet/api/azure.communication.callautomation.audiodata): a
property of the buffer, not of who made the sound. How ACS judges silence (digital zeros, or a
level threshold) is not published; we chose the strictest reading, so the phone marks a frame
silent only when it holds neither the caller's line nor any echo, however quiet. What the
caller said is still known from the phone's record: ``CallRecord.steps`` say when each of
their lines was spoken.

Sample n of the call (sample 0 at the media socket's opening) carries, on top of the caller's
line, ``round(gain * heard[n - delay])``, where ``heard`` is what the caller heard
(``Playout.heard_audio``) and ``delay`` is ``Echo.delay_ms`` in whole samples; the sum is
clipped to PCM16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from callbridge.sim.playout import Playout
from callbridge.sim.script import FRAME_MS

MIN_DELAY_MS: Final = FRAME_MS
"""The phone sends each frame as its slot begins, so the echo in it must come from audio played
at least one frame earlier: audio played later might still be cut by a StopAudio."""


@dataclass(frozen=True, slots=True)
class Echo:
    """The phone's own playback, heard again by its microphone (a speakerphone)."""

    delay_ms: float
    """From when the phone plays a sample to when it sends it back; at least ``MIN_DELAY_MS``.
    Rounded to whole samples at the call's rate."""
    level_db: float
    """How loud the echo is against what the phone played, at most 0 dB: -15 sends it back at
    about 0.18 of its amplitude."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay_ms) or self.delay_ms < MIN_DELAY_MS:
            raise ValueError(f"an echo's delay_ms must be >= {MIN_DELAY_MS}, not {self.delay_ms}")
        if not math.isfinite(self.level_db) or self.level_db > 0:
            raise ValueError(f"an echo's level_db must be <= 0, not {self.level_db}")

    @property
    def gain(self) -> float:
        """The echo's amplitude against what was played."""
        return float(10 ** (self.level_db / 20))

    def delay_samples(self, sample_rate: int) -> int:
        """The delay in whole samples at ``sample_rate``."""
        return round(self.delay_ms * sample_rate / 1000)


class EchoPath:
    """The echo of one call, a frame at a time, from what its ``Playout`` has played."""

    def __init__(self, echo: Echo, playout: Playout, *, sample_rate: int, opened_at: float) -> None:
        self._gain = echo.gain
        self._delay = echo.delay_samples(sample_rate)
        self._playout = playout
        self._opened_at = opened_at

    def frame(self, first: int, count: int, *, at: float) -> npt.NDArray[np.int16]:
        """The echo in samples ``first`` to ``first + count`` of the call, the frame sent at
        ``at``; frames must come in order."""
        # Played before `at`, so already final: a later StopAudio cannot unplay it.
        heard = self._playout.heard_window(self._opened_at, first - self._delay, count, until=at)
        return np.round(heard * self._gain).astype(np.int16)


def mix(line: bytes | None, echo: npt.NDArray[np.int16]) -> bytes:
    """One frame as the microphone picks it up: the caller's line (if any) plus the echo,
    clipped to PCM16."""
    total = echo.astype(np.int32)
    if line is not None:
        total += np.frombuffer(line, dtype="<i2")
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()
