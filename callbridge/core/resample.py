"""Resample a whole PCM16 mono clip between any two rates (sans-IO).

For audio known in full, such as a prompt read at start-up; streaming audio between 8 kHz and
the ACS rates goes through ``callbridge.core.g711`` instead. The rate change is a rational
polyphase filter: each output sample is a Kaiser-windowed sinc over its input neighbours,
low-passed below the lower of the two Nyquist rates, so downsampling does not alias (which
``audioop.ratecv``, a plain interpolator, would). Output sample ``n`` sits at input time
``n * from_rate / to_rate``: the signal is not delayed.
"""

from __future__ import annotations

from math import gcd
from typing import Final

import numpy as np
from numpy.typing import NDArray

_ZERO_CROSSINGS: Final = 16
"""Sinc lobes each side of the centre: the filter's length in cycles of its cutoff."""
_ROLLOFF: Final = 0.92
"""Cutoff as a share of the lower Nyquist rate, leaving the window room to reach its stopband."""
_KAISER_BETA: Final = 8.0
"""About 80 dB of stopband for the window; the finite length caps what is reached in practice."""
_CHUNK: Final = 4096
"""Output samples computed per matrix product, bounding the working memory."""


def _phase_taps(up: int, down: int) -> tuple[NDArray[np.float64], int]:
    """One row of taps per output phase ``p / up``, and the half-width in input samples."""
    cutoff = _ROLLOFF * min(1.0, up / down)  # in cycles per input sample, times two
    half = int(np.ceil(_ZERO_CROSSINGS / cutoff))
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)  # input index minus floor(t)
    fraction = np.arange(up, dtype=np.float64)[:, None] / up
    distance = offsets[None, :] - fraction  # input sample's time minus output sample's time
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (distance / half) ** 2, 0.0, None)))
    taps = np.sinc(cutoff * distance) * window / np.i0(_KAISER_BETA)
    # Unity gain at DC in every phase, so a constant level stays exactly that level.
    taps /= taps.sum(axis=1, keepdims=True)
    return taps, half


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """``pcm`` (PCM16 LE mono at ``from_rate``) at ``to_rate``, ``len * to / from`` samples.

    Raises:
        ValueError: a rate is not positive, or ``pcm`` is not whole samples.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    if len(pcm) % 2:
        raise ValueError("PCM16 audio must be a whole number of 2-byte samples")
    if from_rate == to_rate or not pcm:
        return pcm
    common = gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    taps, half = _phase_taps(up, down)
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    padded = np.concatenate([np.zeros(half), samples, np.zeros(half)])
    count = len(samples) * up // down
    out = np.empty(count, np.int16)
    window = np.arange(-half + 1, half + 1)
    for start in range(0, count, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, count))
        base, phase = np.divmod(index * down, up)
        neighbours = padded[base[:, None] + window[None, :] + half]
        values = np.einsum("ij,ij->i", neighbours, taps[phase])
        out[start : start + len(index)] = np.clip(np.rint(values), -32768, 32767)
    return out.astype("<i2").tobytes()
