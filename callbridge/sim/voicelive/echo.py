"""Echo cancellation: the session's ``input_audio_echo_cancellation`` and, for a client-supplied
reference, a stand-in that takes the reference's echo out of the microphone.

What the API reference 2026-07-15 says (RealtimeInputAudioEchoCancellationSettings, its "Valid
combinations" table and note, and input_audio_buffer.append):

* ``type`` must be ``server_echo_cancellation``; ``reference_source`` is ``server`` (the default,
  "the internal TTS loopback") or ``client`` ("channel 1 of the stereo input stream");
  ``channels`` is ``1`` (the default) or ``2`` ("Must be 1 or 2");
* only ``server``/``1`` and ``client``/``2`` are valid: ``server``/``2`` is refused with
  ``invalid_ec_channels_requires_client``, ``client``/``1`` with ``invalid_ec_reference_channels``;
* ``channels`` 2 'Requires ``reference_source: "client"`` and ``input_audio_format:
  "pcm16"``' (so says SDK 1.3.1's ``AudioEchoCancellation`` too); both "require the
  client_ec_reference preview feature flag": ``&features=client_ec_reference:true`` on the
  WebSocket URL;
* "Changing channels or reference_source mid-session is not supported";
* with ``channels`` 2 the audio is "interleaved stereo PCM16 ([mic₀, ref₀, mic₁, ref₁, …]) and
  each chunk must have a byte length divisible by 4".

Not published, and chosen here: the error the service sends for a client reference without the
feature flag, for ``channels`` 2 with G.711 input, for an unknown ``reference_source`` or
``channels``, for a mid-session change and for a stereo chunk of the wrong length (each is an
``invalid_value`` error naming the field, the code the emulator uses for refusals the reference
does not name); "mid-session" is read as "once audio has been appended", as the emulator reads
the same words about the input format.

The canceller is a stand-in for the service's acoustic echo canceller, not a model of it: it
assumes the echo is the reference delayed and scaled (one lag, one gain), finds the lag and gain
that best explain the microphone over the last ``ANALYSIS_MS`` (lags up to ``MAX_LAG_MS``), and
subtracts that. Real echo paths filter and smear the sound; the service's canceller adapts to
that, this one leaves it in. With ``reference_source`` ``server`` nothing is removed: the
emulator does not model the service's use of its own output as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from callbridge.sim.voicelive.audio import Int16Samples
from callbridge.sim.voicelive.protocol import InvalidRequestError
from callbridge.sim.voicelive.records import EchoCancellation, EchoPath

CLIENT_REFERENCE_FEATURE: Final = "client_ec_reference"
"""The feature flag (``features=client_ec_reference:true``) a client reference needs."""

_PARAM: Final = "session.input_audio_echo_cancellation"


def echo_cancellation(
    config: Mapping[str, Any],
    *,
    features: frozenset[str],
    current: EchoCancellation | None,
    input_locked: bool,
) -> EchoCancellation | None:
    """The echo cancellation a session ``config`` asks for, or raise as the service would.

    ``current`` is the session's setting so far; ``input_locked``: audio has been appended.
    """
    settings = config.get("input_audio_echo_cancellation")
    wanted = None if not isinstance(settings, Mapping) else _parse(settings)
    if wanted is not None and wanted.client_reference:
        if CLIENT_REFERENCE_FEATURE not in features:
            raise InvalidRequestError(
                "invalid_value",
                "reference_source 'client' needs the preview feature flag: add "
                f"features={CLIENT_REFERENCE_FEATURE}:true to the WebSocket URL",
                f"{_PARAM}.reference_source",
            )
        if config.get("input_audio_format") != "pcm16":
            raise InvalidRequestError(
                "invalid_value",
                "channels 2 needs input_audio_format 'pcm16' (interleaved stereo PCM16)",
                f"{_PARAM}.channels",
            )
    if input_locked and _layout(wanted) != _layout(current):
        raise InvalidRequestError(
            "invalid_value",
            "channels and reference_source cannot change mid-session",
            _PARAM,
        )
    return wanted


def _layout(setting: EchoCancellation | None) -> tuple[str, int]:
    """What fixes the input stream's layout; off is the documented default, server/1."""
    return ("server", 1) if setting is None else (setting.reference_source, setting.channels)


def _parse(settings: Mapping[str, Any]) -> EchoCancellation:
    # Absent or null: the documented defaults.
    source = settings.get("reference_source")
    source = "server" if source is None else source
    channels = settings.get("channels")
    channels = 1 if channels is None else channels
    if source not in ("server", "client"):
        raise InvalidRequestError(
            "invalid_value",
            f"reference_source must be 'server' or 'client', not {source!r}",
            f"{_PARAM}.reference_source",
        )
    if channels not in (1, 2):
        raise InvalidRequestError(
            "invalid_value", f"channels must be 1 or 2, not {channels!r}", f"{_PARAM}.channels"
        )
    if source == "server" and channels == 2:
        raise InvalidRequestError(
            "invalid_ec_channels_requires_client",
            "channels 2 is only meaningful with reference_source 'client'",
            f"{_PARAM}.channels",
        )
    if source == "client" and channels == 1:
        raise InvalidRequestError(
            "invalid_ec_reference_channels",
            "a client reference must come as channel 1 of stereo input (channels 2)",
            f"{_PARAM}.channels",
        )
    return EchoCancellation("client" if source == "client" else "server", 2 if channels == 2 else 1)


class EchoCanceller:
    """Subtracts the reference, at its best-fitting lag and gain, from the microphone.

    Works in 20 ms frames of the audio timeline (a partial frame waits for the next chunk), so the
    result depends only on the audio, never on how it was sliced. Every ``REESTIMATE_MS`` it
    re-fits the echo path: over the last ``ANALYSIS_MS`` of microphone, the lag in
    ``[0, MAX_LAG_MS]`` whose delayed reference explains the most microphone energy by least
    squares, and that fit's gain. Caller speech is uncorrelated with the reference, so it biases
    the fit little: the canceller keeps working while the caller talks over the agent.
    """

    FRAME_MS: Final = 20
    ANALYSIS_MS: Final = 200
    MAX_LAG_MS: Final = 500
    REESTIMATE_MS: Final = 100
    _SILENT_REFERENCE_RMS: Final = 1.0  # below this the reference carries no echo worth fitting

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._frame = sample_rate * self.FRAME_MS // 1000
        self._analysis = sample_rate * self.ANALYSIS_MS // 1000
        self._max_lag = sample_rate * self.MAX_LAG_MS // 1000
        # History long enough for the analysis window at the largest lag.
        self._history = self._analysis + self._max_lag
        self._mic: NDArray[np.float64] = np.zeros(self._history)
        self._ref: NDArray[np.float64] = np.zeros(self._history)
        self._pending = np.empty((0, 2), dtype=np.int16)
        self._frames_done = 0
        self._lag = 0
        self._gain = 0.0
        self.path: EchoPath | None = None

    def process(self, stereo: Int16Samples) -> Int16Samples:
        """Interleaved ``[mic, ref]`` samples in, the microphone without the echo out (whole
        frames only)."""
        pairs = np.concatenate((self._pending, stereo.reshape(-1, 2)))
        whole = pairs.shape[0] - pairs.shape[0] % self._frame
        self._pending = pairs[whole:].copy()
        cleaned = [
            self._frame_out(pairs[i : i + self._frame]) for i in range(0, whole, self._frame)
        ]
        if not cleaned:
            return np.empty(0, dtype=np.int16)
        return np.concatenate(cleaned)

    def _frame_out(self, frame: Int16Samples) -> Int16Samples:
        n = self._frame
        self._mic = np.concatenate((self._mic[n:], frame[:, 0].astype(np.float64)))
        self._ref = np.concatenate((self._ref[n:], frame[:, 1].astype(np.float64)))
        if self._frames_done % (self.REESTIMATE_MS // self.FRAME_MS) == 0:
            self._estimate()
        self._frames_done += 1
        end = self._history - self._lag
        echo = self._gain * self._ref[end - n : end]
        cleaned = np.clip(np.rint(self._mic[-n:] - echo), -32768, 32767)
        return cleaned.astype(np.int16)

    def _estimate(self) -> None:
        mic = self._mic[-self._analysis :]
        ref = self._ref
        # correlation[j] = sum(mic * ref[j : j + analysis]); lag = max_lag - j.
        size = 1 << (ref.size + mic.size - 1).bit_length()
        spectrum = np.fft.rfft(ref, size) * np.conj(np.fft.rfft(mic, size))
        correlation = np.fft.irfft(spectrum, size)[: self._max_lag + 1]
        squares = np.concatenate(([0.0], np.cumsum(ref * ref)))
        energy = squares[self._analysis :] - squares[: -self._analysis]  # per window start j
        floor = self._analysis * self._SILENT_REFERENCE_RMS**2
        explained = np.where(energy > floor, correlation**2 / np.maximum(energy, floor), 0.0)
        best = int(np.argmax(explained))
        if explained[best] <= 0.0:
            self._lag, self._gain = 0, 0.0
        else:
            self._lag, self._gain = self._max_lag - best, float(correlation[best] / energy[best])
        self.path = EchoPath(lag_ms=self._lag * 1000 / self._rate, gain=self._gain)
