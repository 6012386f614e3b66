"""G.711 mu-law at 8 kHz <-> PCM16 at the ACS rate (16 or 24 kHz), streaming and stateful.

The rate change uses linear-phase polyphase windowed-sinc FIR filters (designed at import with a
Kaiser window) instead of ``audioop.ratecv`` or ``soxr``: ``ratecv`` is too lossy for the 33 dB
SNR bar, and ``soxr`` streams release audio in ~100 ms bursts, which a real-time 20 ms pacer
cannot absorb. The FIR produces exactly one output frame per input frame, from the very first
one, and delays the signal by a fixed ``resampler_delay_ms`` (1.5 ms each way at both ACS
rates). That delay is reported, never padded or trimmed away, so downstream timing can account
for it.

Objects are per call and not thread-safe.
"""

from __future__ import annotations

import warnings
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from callbridge.core.acs_media import ACS_RATES

with warnings.catch_warnings():
    # 3.11/3.12 warn that the stdlib module is going away; audioop-lts replaces it on 3.13+.
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

G711_RATE: Final = 8000
"""Sample rate of G.711 audio exchanged with Voice Live."""

_SAMPLE_BYTES: Final = 2
_FRAME_SAMPLES: Final = {rate: rate // 50 for rate in ACS_RATES}
"""PCM16 samples in one 20 ms ACS frame."""

# Filter specs: flat to 3400 Hz, >= 55 dB down from 4600 Hz. Tap counts are chosen so the
# group delay is the same 1.5 ms at both rates (24 taps each side at 16 kHz, 36 at 24 kHz):
# 16 kHz, 49 taps, beta 5.5 -> ripple 0.018 dB, stopband 58.7 dB;
# 24 kHz, 73 taps, beta 5.5 -> ripple 0.017 dB, stopband 58.2 dB.
_CUTOFF_HZ: Final = 4000.0
_KAISER_BETA: Final = 5.5
_NUM_TAPS: Final = {16000: 49, 24000: 73}

# Decoder buffers start at 200 ms of mu-law and grow to the largest chunk seen.
_DECODER_INITIAL_CAPACITY: Final = 1600

_Float = np.float32
_INT16_MIN: Final = np.float32(-32768.0)
_INT16_MAX: Final = np.float32(32767.0)


def _design_lowpass(rate: int) -> NDArray[np.float32]:
    """Unity-DC-gain Kaiser-windowed sinc low-pass at the 8 kHz Nyquist for ``rate``."""
    num_taps = _NUM_TAPS[rate]
    k = np.arange(num_taps, dtype=np.float64) - (num_taps - 1) / 2
    cutoff = 2.0 * _CUTOFF_HZ / rate
    taps = cutoff * np.sinc(cutoff * k) * np.kaiser(num_taps, _KAISER_BETA)
    taps /= taps.sum()
    return taps.astype(_Float)


_LOWPASS: Final = {rate: _design_lowpass(rate) for rate in ACS_RATES}

# Table built from audioop so decoding is bit-identical to audioop.ulaw2lin, but can write
# straight into the filter buffer (np.take with out=) instead of allocating an int16 copy.
_ULAW_TO_FLOAT: Final = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), "<i2").astype(_Float)


def resampler_delay_ms(acs_rate: int) -> float:
    """The fixed delay each direction's filter adds (1.5 ms at both ACS rates)."""
    return (_NUM_TAPS[acs_rate] - 1) / 2 * 1000 / acs_rate


def _to_int16(src: NDArray[np.float32], dst: NDArray[np.int16]) -> None:
    # Filter overshoot on near-full-scale input must saturate, not wrap around.
    np.rint(src, out=src)
    np.minimum(src, _INT16_MAX, out=src)
    np.maximum(src, _INT16_MIN, out=src)
    np.copyto(dst, src, casting="unsafe")


class UlawEncoder:
    """Decimate PCM16 at the ACS rate to 8 kHz with a streaming FIR, then mu-law compand."""

    __slots__ = (
        "_acc",
        "_buf",
        "_capacity",
        "_factor",
        "_hist",
        "_odd",
        "_out",
        "_phase",
        "_taps",
        "_windows",
    )

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        self._factor = acs_rate // G711_RATE
        self._hist = len(lowpass) - 1
        # Windows are read oldest-first, so the dot product needs the taps reversed.
        self._taps = np.ascontiguousarray(lowpass[::-1])
        # Offset in the next chunk of the first sample that completes an output sample.
        self._phase = 0
        self._odd = b""
        self._capacity = 0
        self._buf: NDArray[np.float32] = np.zeros(self._hist, _Float)
        self._acc: NDArray[np.float32] = np.empty(0, _Float)
        self._out: NDArray[np.int16] = np.empty(0, np.int16)
        self._windows: tuple[NDArray[np.float32], ...] = ()
        self._grow(_FRAME_SAMPLES[acs_rate])

    def _grow(self, capacity: int) -> None:
        hist, factor = self._hist, self._factor
        buf = np.zeros(hist + capacity, _Float)
        buf[:hist] = self._buf[:hist]
        item = buf.itemsize
        # One overlapping read-only window view per phase, so the hot path only slices.
        self._windows = tuple(
            as_strided(
                buf[phase:],
                shape=((capacity - phase + factor - 1) // factor, hist + 1),
                strides=(factor * item, item),
                writeable=False,
            )
            for phase in range(factor)
        )
        out_capacity = -(-capacity // factor)
        self._buf = buf
        self._acc = np.empty(out_capacity, _Float)
        self._out = np.empty(out_capacity, np.int16)
        self._capacity = capacity

    def encode(self, data: bytes) -> bytes:
        if self._odd or len(data) & 1:
            data = self._odd + data
            cut = len(data) & ~1
            self._odd = data[cut:]
            data = data[:cut]
        n = len(data) // _SAMPLE_BYTES
        if n > self._capacity:
            self._grow(max(n, 2 * self._capacity))
        hist, factor, phase, buf = self._hist, self._factor, self._phase, self._buf
        np.copyto(buf[hist : hist + n], np.frombuffer(data, "<i2"))
        count = (n - phase + factor - 1) // factor
        acc = self._acc[:count]
        np.dot(self._windows[phase][:count], self._taps, out=acc)
        buf[:hist] = buf[n : n + hist]
        self._phase = (phase - n) % factor
        out = self._out[:count]
        _to_int16(acc, out)
        encoded: bytes = audioop.lin2ulaw(out.data, _SAMPLE_BYTES)
        return encoded

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0
        self._phase = 0
        self._odd = b""


class UlawDecoder:
    """Expand mu-law, then interpolate 8 kHz to the ACS rate with a polyphase FIR."""

    __slots__ = ("_acc", "_buf", "_capacity", "_factor", "_hist", "_out", "_phases", "_windows")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        factor = acs_rate // G711_RATE
        per_phase = -(-len(lowpass) // factor)
        padded = np.zeros(per_phase * factor, _Float)
        # Zero-stuffing divides the signal power by the factor; the gain restores unity.
        padded[: len(lowpass)] = lowpass * factor
        # Column p holds phase p's sub-filter, reversed to match oldest-first windows, so
        # one (n, taps) @ (taps, factor) product yields the interleaved output samples.
        self._phases = np.ascontiguousarray(padded.reshape(per_phase, factor)[::-1])
        self._factor = factor
        self._hist = per_phase - 1
        self._capacity = 0
        self._buf: NDArray[np.float32] = np.zeros(self._hist, _Float)
        self._acc: NDArray[np.float32] = np.empty((0, factor), _Float)
        self._out: NDArray[np.int16] = np.empty(0, np.int16)
        self._windows: NDArray[np.float32] = np.empty((0, per_phase), _Float)
        self._grow(_DECODER_INITIAL_CAPACITY)

    def _grow(self, capacity: int) -> None:
        hist = self._hist
        buf = np.zeros(hist + capacity, _Float)
        buf[:hist] = self._buf[:hist]
        item = buf.itemsize
        self._windows = as_strided(
            buf, shape=(capacity, hist + 1), strides=(item, item), writeable=False
        )
        self._buf = buf
        self._acc = np.empty((capacity, self._factor), _Float)
        self._out = np.empty(capacity * self._factor, np.int16)
        self._capacity = capacity

    def decode(self, data: bytes) -> bytes:
        n = len(data)
        if n > self._capacity:
            self._grow(max(n, 2 * self._capacity))
        hist = self._hist
        new = self._buf[hist : hist + n]
        np.take(_ULAW_TO_FLOAT, np.frombuffer(data, np.uint8), out=new, mode="clip")
        return self._emit(n)

    def flush(self) -> bytes:
        # Feeding silence until the history is all zeros emits the filter's whole tail (the
        # 1.5 ms delay plus the post-ringing) and leaves the state exactly as a fresh one.
        hist = self._hist
        self._buf[hist : 2 * hist] = 0.0
        return self._emit(hist)

    def _emit(self, n: int) -> bytes:
        hist, buf = self._hist, self._buf
        acc = self._acc[:n]
        np.dot(self._windows[:n], self._phases, out=acc)
        buf[:hist] = buf[n : n + hist]
        out = self._out[: n * self._factor]
        _to_int16(acc.reshape(-1), out)
        return out.tobytes()

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0
