"""The audio side of a call page: waveform envelopes and where the caller spoke.

Both work on PCM16 mono. An envelope is what a waveform drawing needs and nothing more: the
lowest and highest sample in each pixel column, so a five-minute call draws from a few
thousand numbers instead of millions of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callbridge.adapters.recording import SAMPLE_WIDTH

FRAME_S = 0.020
"""Voice activity is decided per 20 ms, the ACS media frame."""

VOICED_DBFS = -45.0
"""A frame louder than this (RMS, dB below full scale) is speech. Telephone speech sits
around -30 to -15 dBFS and line noise well below -50; the margin keeps quiet words in."""

JOIN_GAP_S = 0.35
"""Pauses shorter than this inside a turn (between words, a breath) do not end it."""

MIN_SPEECH_S = 0.10
"""Shorter bursts (a click, a cough) are not a turn."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """Per pixel column, the lowest and highest sample, scaled to -1..1."""

    lows: tuple[float, ...]
    highs: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech, in seconds on the recording's clock."""

    start: float
    end: float


def samples(pcm: bytes) -> np.ndarray:
    """PCM16 little-endian bytes as int16 samples (a trailing odd byte is dropped)."""
    whole = len(pcm) - len(pcm) % SAMPLE_WIDTH
    return np.frombuffer(pcm[:whole], dtype="<i2")


def envelope(track: np.ndarray, columns: int) -> Envelope:
    """``track`` cut into ``columns`` equal stretches, each reduced to its min and max.

    Columns past the end of the audio (a track shorter than the call) are silent.
    """
    if columns < 1:
        raise ValueError(f"columns must be at least 1, not {columns}")
    lows = np.zeros(columns)
    highs = np.zeros(columns)
    if track.size:
        edges = np.linspace(0, track.size, columns + 1).astype(np.int64)
        filled = edges[1:] > edges[:-1]
        starts = edges[:-1][filled]
        lows[filled] = np.minimum.reduceat(track, starts) / 32768.0
        highs[filled] = np.maximum.reduceat(track, starts) / 32768.0
    return Envelope(tuple(lows.tolist()), tuple(highs.tolist()))


def speech_segments(
    track: np.ndarray, sample_rate: int, placed: list[tuple[float, int, int]]
) -> list[Segment]:
    """Where the caller spoke: 20 ms frames above ``VOICED_DBFS``, joined across short pauses.

    ``placed`` maps the track onto the recording's clock: ``(t, first_sample, count)`` per
    span of samples that arrived back to back from ``t`` (the recording's caller spans).
    """
    frame = max(1, round(sample_rate * FRAME_S))
    threshold = 32768.0 * 10 ** (VOICED_DBFS / 20)
    voiced: list[float] = []
    for t, first, count in placed:
        span = track[first : first + count].astype(np.float64)
        whole = span.size - span.size % frame
        if not whole:
            continue
        rms = np.sqrt(np.mean(span[:whole].reshape(-1, frame) ** 2, axis=1))
        voiced += [t + index * FRAME_S for index in np.flatnonzero(rms > threshold).tolist()]
    segments: list[Segment] = []
    for start in voiced:
        if segments and start - segments[-1].end <= JOIN_GAP_S:
            segments[-1] = Segment(segments[-1].start, start + FRAME_S)
        else:
            segments.append(Segment(start, start + FRAME_S))
    return [s for s in segments if s.end - s.start >= MIN_SPEECH_S]
