"""G.711 mu-law at 8 kHz <-> PCM16 at the ACS rate (16 or 24 kHz), streaming and stateful.

The rate change uses linear-phase polyphase windowed-sinc FIR filters (designed at import with a
Kaiser window) instead of ``audioop.ratecv`` or ``soxr``: ``ratecv`` is too lossy for the 33 dB
SNR bar, and ``soxr`` streams release audio in ~100 ms bursts, which a real-time 20 ms pacer
cannot absorb. The filters are designed here, in numpy; the per-frame work (filtering, rounding,
saturating and companding) is the C extension ``callbridge.core._g711``: about 2 us per 20 ms
frame each way, where the same work in numpy took about 7 us, nearly all of it numpy's per-call
overhead on a few hundred samples (benchmarks/codec_bench.py). The FIR produces exactly one
output frame per input frame, from the very first one, and delays the signal by a fixed
``resampler_delay_ms`` (1.5 ms each way at both ACS rates). That delay is reported, never padded
or trimmed away, so downstream timing can account for it.

Objects are per call and not thread-safe.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from callbridge.core import _g711
from callbridge.core.acs_media import ACS_RATES

G711_RATE: Final = 8000
"""Sample rate of G.711 audio exchanged with Voice Live."""

_SAMPLE_BYTES: Final = 2

# Filter specs: flat to 3400 Hz, >= 55 dB down from 4600 Hz. Tap counts are chosen so the
# group delay is the same 1.5 ms at both rates (24 taps each side at 16 kHz, 36 at 24 kHz):
# 16 kHz, 49 taps, beta 5.5 -> ripple 0.018 dB, stopband 58.7 dB;
# 24 kHz, 73 taps, beta 5.5 -> ripple 0.017 dB, stopband 58.2 dB.
_CUTOFF_HZ: Final = 4000.0
_KAISER_BETA: Final = 5.5
_NUM_TAPS: Final = {16000: 49, 24000: 73}

_TAPS: Final = np.float32
"""The filters' coefficients as the C extension takes them."""
_ULAW_ZERO: Final = b"\xff"
"""Mu-law's code for 0 (G.711 inverts every bit of the code for +0)."""


def _design_lowpass(rate: int) -> NDArray[np.float64]:
    """Unity-DC-gain Kaiser-windowed sinc low-pass at the 8 kHz Nyquist for ``rate``."""
    num_taps = _NUM_TAPS[rate]
    k = np.arange(num_taps, dtype=np.float64) - (num_taps - 1) / 2
    cutoff = 2.0 * _CUTOFF_HZ / rate
    taps = cutoff * np.sinc(cutoff * k) * np.kaiser(num_taps, _KAISER_BETA)
    taps /= taps.sum()
    return taps


_LOWPASS: Final = {rate: _design_lowpass(rate) for rate in ACS_RATES}


def resampler_delay_ms(acs_rate: int) -> float:
    """The fixed delay each direction's filter adds (1.5 ms at both ACS rates)."""
    return (_NUM_TAPS[acs_rate] - 1) / 2 * 1000 / acs_rate


class UlawEncoder:
    """Decimate PCM16 at the ACS rate to 8 kHz with a streaming FIR, then mu-law compand.

    Output ``m`` of a chunk is the filter over the inputs up to ``phase + factor * m``: the
    first output of a stream is its first sample's, and every ``factor``-th one after it.
    """

    __slots__ = ("_factor", "_history", "_odd", "_phase", "_taps")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        self._taps = lowpass.astype(_TAPS).tobytes()
        self._factor = acs_rate // G711_RATE
        self._history = bytearray(_SAMPLE_BYTES * (len(lowpass) - 1))
        # Offset in the next chunk of the first sample that completes an output sample.
        self._phase = 0
        self._odd = b""

    def encode(self, data: bytes) -> bytes:
        if self._odd or len(data) & 1:
            data = self._odd + data
            cut = len(data) & ~1
            self._odd = data[cut:]
            data = data[:cut]
        phase = self._phase
        encoded = _g711.encode(self._taps, self._factor, phase, self._history, data)
        self._phase = (phase - len(data) // _SAMPLE_BYTES) % self._factor
        return encoded

    def reset(self) -> None:
        self._history[:] = bytes(len(self._history))
        self._phase = 0
        self._odd = b""


class UlawDecoder:
    """Expand mu-law, then interpolate 8 kHz to the ACS rate with a polyphase FIR.

    Each input yields ``factor`` outputs, output ``p`` from sub-filter ``p`` (every
    ``factor``-th tap of the low-pass, from the ``p``-th) over it and the inputs before it.
    """

    __slots__ = ("_factor", "_flush", "_history", "_sub_filters")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        factor = acs_rate // G711_RATE
        per_phase = -(-len(lowpass) // factor)
        padded = np.zeros(per_phase * factor)
        # Zero-stuffing divides the signal power by the factor; the gain restores unity.
        padded[: len(lowpass)] = lowpass * factor
        # Row p, column j: sub-filter p's tap on the input j samples back.
        self._sub_filters = padded.reshape(per_phase, factor).T.astype(_TAPS).tobytes()
        self._factor = factor
        self._history = bytearray(_SAMPLE_BYTES * (per_phase - 1))
        # Mu-law's code for 0: feeding silence until the history is all zeros emits the
        # filter's whole tail (the 1.5 ms delay plus the post-ringing) and leaves the state
        # exactly as a fresh one's.
        self._flush = _ULAW_ZERO * (per_phase - 1)

    def decode(self, data: bytes) -> bytes:
        pcm: bytes = _g711.decode(self._sub_filters, self._factor, self._history, data)
        return pcm

    def flush(self) -> bytes:
        return self.decode(self._flush)

    def reset(self) -> None:
        self._history[:] = bytes(len(self._history))
