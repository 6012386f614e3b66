"""Judging each time the agent was stopped: how fast, how exactly, and whether it went on.

From the phone's record (each ``StopAudio`` and what had been heard) and the emulator's
(``speech_started``, truncations, and when each reply's audio began): a barge-in is cut where
the caller stopped hearing it, or, for a false interruption, the same reply plays on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from callbridge.sim.phone import CallRecord, StopRecord
from callbridge.sim.voicelive import EmulatorSession, SpeechRecord


@dataclass(frozen=True, slots=True)
class BargeInReport:
    """One interruption, judged against the phone's ground truth."""

    stop_latency_ms: float | None
    """Emulator sent ``speech_started`` -> the phone received ``StopAudio``."""
    audio_end_ms: int | None
    """What callbridge sent in ``conversation.item.truncate`` (None: it sent none)."""
    heard_ms: int
    """What the caller actually heard of the interrupted reply (phone playout record)."""
    truncation_error_ms: int | None
    """``|audio_end_ms - heard_ms|``."""
    overhang_ms: int
    """Agent audio the caller heard after ``speech_started`` was sent."""
    resumed: bool = False
    """A false interruption: no truncate was sent, and the same reply went on playing after
    the ``StopAudio`` (before any new reply's audio existed)."""
    pause_ms: float | None = None
    """For a resumed one: the silence the caller heard, ``StopAudio`` to playback again."""


def _speech_before(sessions: Sequence[EmulatorSession], at: float) -> SpeechRecord | None:
    started = [
        s
        for session in sessions
        for s in session.speech
        if s.started_sent_at is not None and s.started_sent_at <= at
    ]
    return max(started, key=lambda s: s.started_sent_at or 0.0, default=None)


def judge_barge_in(
    stop: StopRecord,
    index: int,
    record: CallRecord,
    sessions: Sequence[EmulatorSession],
    *,
    codec_delay_ms: float,
    previous: BargeInReport | None = None,
) -> BargeInReport:
    """``previous``: the barge-in before this one. If it was resumed and this one cuts the
    spurt that resumed it, the reply was heard across both spurts."""
    heard_ms = round(max(0.0, stop.heard_ms - codec_delay_ms)) if stop.spurt is not None else 0
    earlier = record.stops[index - 1] if index else None
    if (
        previous is not None
        and previous.resumed
        and earlier is not None
        and earlier.spurt is not None
        and stop.spurt == earlier.spurt + 1
    ):
        heard_ms += previous.heard_ms
    speech = _speech_before(sessions, stop.at)
    started_at = speech.started_sent_at if speech else None
    audio_end_ms: int | None = None
    overhang_ms = 0
    next_stop_at = _next_stop_at(record, index)
    if started_at is not None:
        truncates = sorted(
            (
                t
                for session in sessions
                for t in session.truncations
                if started_at <= t.at < next_stop_at
            ),
            key=lambda t: t.at,
        )
        if truncates:
            audio_end_ms = truncates[0].audio_end_ms
        spurt = next((s for s in record.spurts if s.index == stop.spurt), None)
        if spurt is not None:
            # Playback within a spurt is continuous (underruns are reported separately).
            overhang_s = stop.at - max(started_at, spurt.started_at)
            overhang_ms = round(min(max(0.0, overhang_s * 1000), stop.heard_ms))
    resumed = audio_end_ms is None and _after_stop_ms(stop, index, record, sessions) > 0
    after = [s.started_at for s in record.spurts if s.started_at > stop.at]
    return BargeInReport(
        stop_latency_ms=round((stop.at - started_at) * 1000, 2) if started_at else None,
        audio_end_ms=audio_end_ms,
        heard_ms=heard_ms,
        truncation_error_ms=abs(audio_end_ms - heard_ms) if audio_end_ms is not None else None,
        overhang_ms=overhang_ms,
        resumed=resumed,
        pause_ms=round((min(after) - stop.at) * 1000, 1) if resumed and after else None,
    )


def _next_stop_at(record: CallRecord, index: int) -> float:
    return record.stops[index + 1].at if index + 1 < len(record.stops) else math.inf


def _after_stop_ms(
    stop: StopRecord, index: int, record: CallRecord, sessions: Sequence[EmulatorSession]
) -> float:
    """Audio arriving after a StopAudio and before the next reply's audio could exist (or the
    next StopAudio): the next reply's first delta left the emulator at a known time, so
    anything the phone received before it can only be the cut reply's."""
    speech = _speech_before(sessions, stop.at)
    since = speech.started_sent_at if speech and speech.started_sent_at else stop.at
    later = [
        r.first_audio_delta_at
        for session in sessions
        for r in session.responses
        if r.created_at > since and r.first_audio_delta_at is not None
    ]
    window_end = min([*later, _next_stop_at(record, index)])
    return sum(a.ms for a in record.arrivals if stop.at < a.at < window_end)


def stale_audio_ms(
    record: CallRecord, sessions: Sequence[EmulatorSession], barge_ins: Sequence[BargeInReport]
) -> float:
    """The cut replies' audio that reached the phone after their StopAudio; a resumed reply
    (a false interruption) is not cut, so what it plays on is not stale."""
    return sum(
        _after_stop_ms(stop, index, record, sessions)
        for index, (stop, barge_in) in enumerate(zip(record.stops, barge_ins, strict=True))
        if not barge_in.resumed
    )
