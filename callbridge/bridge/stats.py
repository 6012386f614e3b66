"""What happened on one call, as the bridge saw it: counters, barge-ins and tool calls.

Logged when the call ends (``call.ended``) and turned into telemetry; tests and reports judge
the call from the stand-ins' own records instead, never from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from callbridge.adapters.telemetry import CallSummary
from callbridge.core.ended_by import EndedBy
from callbridge.core.pacing import PacerCore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BargeIn:
    """One interruption: what was cut, and what Voice Live was told."""

    item_id: str
    heard_ms: float
    audio_end_ms: int
    received_ms: float
    cancelled_response: bool


@dataclass(frozen=True, slots=True)
class ToolCallStat:
    """One tool call: which, and whether it succeeded."""

    name: str
    call_id: str
    ok: bool


@dataclass(slots=True)
class CallStats:
    """What happened on one call; logged when it ends and read by tests and reports."""

    caller_frames: int = 0
    silent_frames: int = 0
    malformed_media: int = 0
    unknown_media: int = 0
    dtmf_digits: int = 0
    tool_calls: list[ToolCallStat] = field(default_factory=list)
    ended_by: EndedBy | None = None
    """Why the bridge ended the call; None when the caller (or ACS) did."""
    malformed_events: int = 0
    voice_live_errors: int = 0
    agent_audio_ms: float = 0.0
    dropped_agent_audio_ms: float = 0.0
    barge_ins: list[BargeIn] = field(default_factory=list)
    false_interruptions: int = 0
    """Times the caller spoke over the agent without interrupting (a backchannel, a cough):
    the agent paused, then went on."""
    sessions: int = 0
    """Voice Live sessions the call used."""
    reconnects: int = 0
    rollovers: int = 0
    outage_ms: float = 0.0
    """Time the call had no working Voice Live session, summed over reconnects."""
    fallback: str | None = None
    """Why callbridge spoke its fallback message, if it did."""
    rejoins: int = 0
    """Times ACS reconnected the call's media socket."""
    media_stalls: int = 0
    """Times the media socket went silent and was closed."""


def call_summary(stats: CallStats, pacer: PacerCore | None) -> CallSummary:
    """The call's figures for telemetry (pacing figures only once media flowed)."""
    pacing = pacer.stats if pacer is not None else None
    return CallSummary(
        caller_frames=stats.caller_frames,
        malformed_media=stats.malformed_media,
        malformed_events=stats.malformed_events,
        voice_live_errors=stats.voice_live_errors,
        dropped_agent_audio_ms=stats.dropped_agent_audio_ms,
        barge_ins=len(stats.barge_ins),
        tool_calls=len(stats.tool_calls),
        pacer_max_late_ms=pacing.max_late_ms if pacing else None,
        pacer_reanchors=pacing.reanchors if pacing else 0,
        pacer_starved=pacing.starved if pacing else 0,
        ended_by=stats.ended_by,
        playout_delay_ms=pacer.playout_delay_ms if pacer is not None else None,
        playout_delay_measured=pacer is not None and pacer.playout_delay_measured,
    )


def log_call_ended(stats: CallStats, pacer: PacerCore | None) -> None:
    """The call's one ``call.ended`` line (pacing figures only once media flowed)."""
    log.info(
        "call.ended",
        caller_frames=stats.caller_frames,
        silent_frames=stats.silent_frames,
        malformed_media=stats.malformed_media,
        malformed_events=stats.malformed_events,
        voice_live_errors=stats.voice_live_errors,
        agent_audio_ms=round(stats.agent_audio_ms),
        dropped_agent_audio_ms=round(stats.dropped_agent_audio_ms),
        barge_ins=len(stats.barge_ins),
        false_interruptions=stats.false_interruptions,
        dtmf_digits=stats.dtmf_digits,
        tool_calls=len(stats.tool_calls),
        ended_by=stats.ended_by,
        sessions=stats.sessions,
        reconnects=stats.reconnects,
        rollovers=stats.rollovers,
        outage_ms=round(stats.outage_ms),
        fallback=stats.fallback,
        rejoins=stats.rejoins,
        media_stalls=stats.media_stalls,
        **({} if pacer is None else _pacing_fields(pacer)),
    )


def _pacing_fields(pacer: PacerCore) -> dict[str, object]:
    pacing, marks = pacer.stats, pacer.marks
    fields: dict[str, object] = {
        "frames_sent": pacing.frames,
        "spurts": pacing.spurts,
        "pacer_reanchors": pacing.reanchors,
        "pacer_starved": pacing.starved,
        "pacer_max_late_ms": round(pacing.max_late_ms, 1),
        "playout_delay_ms": round(pacer.playout_delay_ms, 1),
        "playout_delay_measured": pacer.playout_delay_measured,
    }
    if marks is not None:
        fields.update(
            marks_sent=marks.stats.sent,
            marks_completed=marks.stats.completed,
            marks_cancelled=marks.stats.cancelled,
        )
    return fields
