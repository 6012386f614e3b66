"""G.711 mu-law at 8 kHz <-> PCM16 at the ACS rate (16 or 24 kHz), streaming and stateful.

The rate change uses linear-phase polyphase windowed-sinc FIR filters (designed at import with a
Kaiser window) instead of ``audioop.ratecv`` or ``soxr``: ``ratecv`` is too lossy for the 33 dB
SNR bar, and ``soxr`` streams release audio in ~100 ms bursts, which a real-time 20 ms pacer
cannot absorb. Each chunk is filtered by one small BLAS matrix product, and the samples are
converted and saturated by audioop in C: per 20 ms frame that is about the cost of ``ratecv``
(benchmarks/codec_bench.py). The FIR produces exactly one output frame per input frame, from
the very first one, and delays the signal by a fixed ``resampler_delay_ms`` (1.5 ms each way at
both ACS rates). That delay is reported, never padded or trimmed away, so downstream timing can
account for it.

Objects are per call and not thread-safe.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from callbridge.core.acs_media import ACS_RATES
from callbridge.core.pcm import audioop

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

_BLOCK: Final = 16
"""Output samples (encoder) or input samples (decoder) in one row of the matrix product.

Longer rows multiply more zeros, shorter ones make more rows; 16 makes a 20 ms frame ten rows
in both directions at both rates, and measured fastest of 8 to 80 with 8 to 20 within noise."""

_INITIAL_CAPACITY: Final = 1600
"""Input samples the buffers hold at first (100 ms at 16 kHz, 200 ms of mu-law); they grow."""

_Float = np.float32
_INT16_IN_INT32: Final = 65536.0
"""audioop's 4-byte samples carry 16-bit audio in their top half."""


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


class _Plan(NamedTuple):
    """Views into a filter's buffers for one chunk size and phase, reused while they repeat."""

    key: tuple[int, int]
    chunk: NDArray[np.float32]
    """Where the chunk's input samples go, right after the history."""
    windows: NDArray[np.float32]
    """One overlapping read-only window of input per row of outputs."""
    rows: NDArray[np.float32]
    outputs: NDArray[np.float32]
    """The chunk's outputs: the rows, flat, without those past the chunk's end."""
    kept: NDArray[np.float32]
    """The chunk's last ``hist`` samples, the next chunk's history."""
    history: NDArray[np.float32]


class _BlockFir:
    """A streaming FIR whose outputs are computed a row at a time by one matrix product.

    The buffer holds ``hist`` samples of history, then the chunk. Row ``r`` of outputs reads
    the window of ``width`` (the matrix's height) samples starting ``phase + r * hop`` into the
    buffer, so one product of the overlapping windows with the matrix yields every output. A
    last row may read past the chunk, into stale samples; the outputs it feeds are dropped.
    """

    __slots__ = ("_buf", "_hist", "_hop", "_matrix", "_plan")

    def __init__(self, matrix: NDArray[np.float64], hist: int, hop: int) -> None:
        self._matrix = matrix.astype(_Float)
        self._hist = hist
        self._hop = hop
        self._buf: NDArray[np.float32] = np.zeros(hist + _INITIAL_CAPACITY, _Float)
        self._plan: _Plan | None = None

    def plan(self, n: int, phase: int, count: int) -> _Plan:
        """Views for ``n`` new samples yielding ``count`` outputs, the first at ``phase``."""
        plan = self._plan
        if plan is not None and plan.key == (n, phase):
            return plan
        hist, hop = self._hist, self._hop
        width, per_row = self._matrix.shape
        rows = -(-count // per_row)
        needed = max(phase + (rows - 1) * hop + width, hist + n)
        if needed > len(self._buf):
            buf = np.zeros(max(needed, 2 * len(self._buf)), _Float)
            buf[:hist] = self._buf[:hist]
            self._buf = buf
        buf = self._buf
        item = buf.itemsize
        out = np.empty((rows, per_row), _Float)
        plan = _Plan(
            key=(n, phase),
            chunk=buf[hist : hist + n],
            windows=as_strided(
                buf[phase:], shape=(rows, width), strides=(hop * item, item), writeable=False
            ),
            rows=out,
            outputs=out.reshape(-1)[:count],
            kept=buf[n : n + hist],
            history=buf[:hist],
        )
        self._plan = plan
        return plan

    def run(self, plan: _Plan) -> bytes:
        """Filter the samples written into ``plan.chunk`` and keep their tail as history.

        Returns the outputs as audioop 4-byte samples, the 16-bit value in the top half,
        saturated: numpy's float-to-int16 cast neither rounds nor saturates, and doing both in
        numpy costs as much as the filter, while ``audioop.mul`` clips in C ("samples are
        truncated in case of overflow", Python's audioop documentation). The int32 cast
        truncates toward zero: an error under 1 LSB, far below mu-law's own steps.
        """
        np.dot(plan.windows, self._matrix, out=plan.rows)
        np.copyto(plan.history, plan.kept)
        words: bytes = audioop.mul(plan.outputs.astype(np.int32).data, 4, _INT16_IN_INT32)
        return words

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0


class UlawEncoder:
    """Decimate PCM16 at the ACS rate to 8 kHz with a streaming FIR, then mu-law compand.

    Output ``m`` of a chunk is the filter over the inputs up to ``phase + factor * m``. Its
    column of the matrix holds the taps, reversed (windows are oldest first), at the offset of
    that output's newest input in its row's window.
    """

    __slots__ = ("_factor", "_fir", "_odd", "_phase")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        factor = acs_rate // G711_RATE
        hist = len(lowpass) - 1
        matrix = np.zeros(((_BLOCK - 1) * factor + hist + 1, _BLOCK))
        for b in range(_BLOCK):
            matrix[factor * b : factor * b + hist + 1, b] = lowpass[::-1]
        self._fir = _BlockFir(matrix, hist, hop=factor * _BLOCK)
        self._factor = factor
        # Offset in the next chunk of the first sample that completes an output sample.
        self._phase = 0
        self._odd = b""

    def encode(self, data: bytes) -> bytes:
        if self._odd or len(data) & 1:
            data = self._odd + data
            cut = len(data) & ~1
            self._odd = data[cut:]
            data = data[:cut]
        n = len(data) // _SAMPLE_BYTES
        factor, phase = self._factor, self._phase
        plan = self._fir.plan(n, phase, (n - phase + factor - 1) // factor)
        np.copyto(plan.chunk, np.frombuffer(data, "<i2"))
        self._phase = (phase - n) % factor
        encoded: bytes = audioop.lin2ulaw(self._fir.run(plan), 4)
        return encoded

    def reset(self) -> None:
        self._fir.reset()
        self._phase = 0
        self._odd = b""


class UlawDecoder:
    """Expand mu-law, then interpolate 8 kHz to the ACS rate with a polyphase FIR.

    Each input yields ``factor`` outputs, one per polyphase sub-filter over it and the inputs
    before it. A row takes ``_BLOCK`` inputs; its ``factor`` columns per input hold the
    sub-filters, reversed, at that input's offset in the window.
    """

    __slots__ = ("_factor", "_fir", "_hist")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        factor = acs_rate // G711_RATE
        per_phase = -(-len(lowpass) // factor)
        padded = np.zeros(per_phase * factor)
        # Zero-stuffing divides the signal power by the factor; the gain restores unity.
        padded[: len(lowpass)] = lowpass * factor
        # Row j, column p: phase p's tap on the input j samples back; oldest first below.
        sub_filters = padded.reshape(per_phase, factor)[::-1]
        hist = per_phase - 1
        matrix = np.zeros((_BLOCK + hist, _BLOCK * factor))
        for b in range(_BLOCK):
            matrix[b : b + per_phase, b * factor : (b + 1) * factor] = sub_filters
        self._fir = _BlockFir(matrix, hist, hop=_BLOCK)
        self._factor = factor
        self._hist = hist

    def decode(self, data: bytes) -> bytes:
        n = len(data)
        plan = self._fir.plan(n, 0, n * self._factor)
        np.copyto(plan.chunk, np.frombuffer(audioop.ulaw2lin(data, 2), "<i2"))
        return self._emit(plan)

    def flush(self) -> bytes:
        # Feeding silence until the history is all zeros emits the filter's whole tail (the
        # 1.5 ms delay plus the post-ringing) and leaves the state exactly as a fresh one.
        hist = self._hist
        plan = self._fir.plan(hist, 0, hist * self._factor)
        plan.chunk[:] = 0.0
        return self._emit(plan)

    def _emit(self, plan: _Plan) -> bytes:
        pcm: bytes = audioop.lin2lin(self._fir.run(plan), 4, 2)
        return pcm

    def reset(self) -> None:
        self._fir.reset()
