"""Where the agent's echo sits in the caller's audio: the delay search of ``core.echo_canceller``.

The last ``ANALYSIS_MS`` of the caller's audio is cross-correlated with the reference (what the
phone played) at every delay up to ``MAX_DELAY_MS``, on copies decimated to about
``SEARCH_RATE``: a speech envelope's peak needs no more, and it costs a sixth. A voice repeats
itself every pitch period, so the decimated search can rank a delay a period off near the true
one: its best ``CANDIDATES`` are each refined to the sample at the full rate, and the caller
(``core.echo_canceller``) believes the one that explains the most of the caller's energy.

Before the waveform search, a cheap test of the loudness envelopes: when the caller's audio
does not rise and fall with the reference at any delay (they are talking over the agent),
there is no echo worth searching for.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np

# Imported here, not on first use through ``np.fft`` (numpy loads it lazily): a call's first
# delay search would otherwise import it in the middle of the call.
from numpy.fft import irfft, rfft
from numpy.typing import NDArray

ANALYSIS_MS: Final = 200
MAX_DELAY_MS: Final = 500
"""Longer than any echo path a phone call has (speakerphone plus network, well under 300 ms)."""
BLOCK_MS: Final = 10
MIN_ENVELOPE_MATCH: Final = 0.5
SEARCH_RATE: Final = 4000
"""About the rate the delay search runs at."""
CANDIDATES: Final = 4
"""How many of its best delays the decimated search hands on to be refined to the sample."""
QUIET_RMS: Final = 1.0
"""Below this the reference carries nothing worth fitting."""

Samples = NDArray[np.float32]


class Finding(NamedTuple):
    """One delay and how well the reference, delayed by it, explains the caller's audio."""

    delay: int
    """In samples."""
    explained: float
    """The caller's energy the delayed reference explains (0: none)."""
    gain: float
    """The delayed reference's best-fitting scale: the echo's level."""


class DelaySearch:
    """The delay search at one sample rate. ``mic`` is always the caller's latest
    ``analysis`` samples, ``reference`` the reference's latest ``searched``, both ending at the
    same sample."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._decimation = max(1, rate // SEARCH_RATE)
        self.analysis = rate * ANALYSIS_MS // 1000
        self.max_delay = rate * MAX_DELAY_MS // 1000
        self.searched = self.analysis + self.max_delay

    def envelopes_match(self, mic: Samples, reference: Samples) -> bool:
        """Whether the loudness of the caller's audio, ``BLOCK_MS`` at a time, follows the
        reference's at some delay (Pearson's r at least ``MIN_ENVELOPE_MATCH``): an echo does,
        a caller talking over the agent does not. A twentieth of the waveform search's cost, so
        double-talk and a noisy line cost little."""
        block = self._rate * BLOCK_MS // 1000
        mic_envelope = np.sqrt(np.square(mic, dtype=np.float64).reshape(-1, block).sum(axis=1))
        ref = np.sqrt(np.square(reference, dtype=np.float64).reshape(-1, block).sum(axis=1))
        # r at each delay from running sums over the reference's envelope, not one window per
        # delay (numpy's per-call overhead was most of this test's cost): with the caller's
        # envelope centred, sum(window * envelope) is the windows' centred product too.
        n = mic_envelope.size
        centred = mic_envelope - mic_envelope.mean()
        products = np.correlate(ref, centred, "valid")
        sums, squares = _window_sums(ref, n), _window_sums(ref * ref, n)
        spreads = squares - sums * sums / n
        # A window whose envelope hardly moves (flat, or silent) explains no rise and fall.
        moving = spreads > 1e-9 * squares
        spread = np.sqrt(np.maximum(spreads, 0.0) * float(centred @ centred))
        r = np.divide(products, spread, out=np.zeros(products.size), where=moving & (spread > 0))
        return float(r.max(initial=0.0)) >= MIN_ENVELOPE_MATCH

    def candidates(self, mic: Samples, reference: Samples) -> list[int]:
        """The ``CANDIDATES`` delays, in samples, the decimated search finds most likely."""
        q = self._decimation
        near, ref = _decimated(mic, q), _decimated(reference, q)
        # correlation[j] = sum(near * ref[j : j + len(near)]); delay = (max_lag - j) * q.
        size = 1 << (ref.size + near.size - 1).bit_length()
        spectrum = rfft(ref, size) * np.conj(rfft(near, size))
        max_lag = self.max_delay // q
        correlation = irfft(spectrum, size)[: max_lag + 1]
        energy = _window_sums(ref * ref, near.size)
        floor = near.size * QUIET_RMS**2
        explained = np.where(energy > floor, correlation**2 / np.maximum(energy, floor), 0.0)
        best = np.argpartition(explained, -CANDIDATES)[-CANDIDATES:]
        best = best[np.argsort(explained[best])[::-1]]
        return [(max_lag - int(j)) * q for j in best if explained[j] > 0]

    def refine(
        self, mic: Samples, reference: Samples, around: int, *, span: int | None = None
    ) -> Finding:
        """The delay within ``span`` (default: the decimation) of ``around`` that explains the
        most of the caller's audio, to the sample."""
        span = self._decimation if span is None else span
        low, high = max(0, around - span), min(around + span, self.max_delay)
        near = mic.astype(np.float64)
        end = reference.size
        ref = reference[end - self.analysis - high : end - low].astype(np.float64)
        # products[i] = sum(near * ref[i : i + len(near)]), the delay ``high - i``.
        products = np.correlate(ref, near, "valid")
        energy = _window_sums(ref * ref, near.size)
        floor = near.size * QUIET_RMS**2
        explained = np.where(energy > floor, products**2 / np.maximum(energy, floor), 0.0)
        best = int(np.argmax(explained))
        if explained[best] <= 0.0:
            return Finding(around, 0.0, 0.0)
        return Finding(high - best, float(explained[best]), float(products[best] / energy[best]))


def _decimated(samples: Samples, q: int) -> NDArray[np.float64]:
    """The mean of each ``q`` samples: one matrix product (``mean(axis=1)`` over rows this
    short costs six times as much)."""
    means: NDArray[np.float64] = samples.reshape(-1, q).astype(np.float64) @ np.full(q, 1 / q)
    return means


def _window_sums(values: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """The sum of each ``width`` consecutive ``values``, from the first window to the last."""
    running = np.concatenate(([0.0], np.cumsum(values)))
    sums: NDArray[np.float64] = running[width:] - running[:-width]
    return sums
