"""Call reports: what a simulated call measured, from the two independent witnesses.

Every figure comes from the simulated phone's playout record (what the caller heard, and when)
and the Voice Live emulator's records of the call's sessions (what the model sent and was told;
a call that reconnected or rolled over has several, and the report reads them all). Nothing is
taken from the bridge's own ledger: the report checks the bridge, it does not trust it.

Times are ``time.monotonic()`` seconds; the phone, the emulator and the bridge share the clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from callbridge.adapters.telemetry import CallSummary
from callbridge.core.ended_by import EndedBy
from callbridge.core.numbers import mask
from callbridge.sim.acs import SimCall
from callbridge.sim.barge_ins import BargeInReport, judge_barge_in, stale_audio_ms
from callbridge.sim.continuity import Continuity
from callbridge.sim.phone import CallRecord
from callbridge.sim.voicelive import EmulatorSession


@dataclass(frozen=True, slots=True)
class Pacing:
    """Agent audio as it reached the phone."""

    frames: int
    jitter_p50_ms: float
    """Arrival deviation from the 20 ms grid of each talk spurt (docs/testing.md)."""
    jitter_p99_ms: float
    jitter_max_ms: float
    underruns: int
    """Times the phone's playout ran dry in the middle of a talk spurt."""


@dataclass(frozen=True, slots=True)
class CallSetup:
    """How ACS set the call up and ended it (from the ACS stand-in's record)."""

    direction: str
    outcome: str | None
    """``answered``, ``rejected``, ``redirected``, ``missed`` or ``failed``."""
    answer_ms: float | None
    """IncomingCall delivered (or call placed) -> callbridge's answer (or the callee's)."""
    media_ms: float | None
    """IncomingCall delivered (or call placed) -> media socket open."""
    voice_live_head_start_ms: float | None
    """How long before the media socket opened callbridge began connecting to Voice Live:
    positive when the session was pre-warmed on the IncomingCall."""
    callbacks: list[str]
    """Callback events ACS posted, in order, each with callbridge's HTTP status."""
    disconnect: str | None
    """How ACS disconnected the call: ``caller``, ``app_terminate`` (callbridge hung up for
    everyone), ``transfer``... (``callbridge.sim.acs.Disconnect``)."""
    ended_by: EndedBy | None
    """Who ended the call. The caller and a transfer are ACS's to say; when callbridge hung
    up, its reason (from its own figures, checked against ACS's), else ``end_call`` if Voice
    Live saw the agent call it."""
    transfer_target: str | None


@dataclass(frozen=True, slots=True)
class PlayoutDelay:
    """ACS's playout delay: what callbridge's heard position used, against the line's truth."""

    line_ms: float
    """The phone line's true playout delay (the stand-in's)."""
    configured_ms: float
    """``CALLBRIDGE_PLAYOUT_DELAY_MS``."""
    used_ms: float | None
    """What callbridge's heard position used by the call's end (its own summary)."""
    measured: bool
    """Whether ``used_ms`` was measured from ACS's playback marks."""
    marks_answered: int
    """Marks the line answered (completed or cancelled)."""


def playout_delay(
    record: CallRecord, configured_ms: float, bridge: CallSummary | None
) -> PlayoutDelay:
    return PlayoutDelay(
        line_ms=record.playout_delay_ms,
        configured_ms=configured_ms,
        used_ms=None if bridge is None else bridge.playout_delay_ms,
        measured=bridge is not None and bridge.playout_delay_measured,
        marks_answered=len(record.mark_answers),
    )


@dataclass(frozen=True, slots=True)
class CallReport:
    """The stable per-call report of ``callbridge demo --json`` and ``callbridge bench``."""

    call_id: str
    audio_format: str
    sample_rate: int
    duration_s: float
    first_audio_ms: float | None
    """Media WebSocket open -> first agent audio heard."""
    pacing: Pacing
    barge_ins: list[BargeInReport]
    stale_audio_ms: int
    """Audio of an interrupted reply that reached the phone after ``StopAudio``."""
    protocol_violations: list[str]
    tool_calls: list[str] = field(default_factory=list)
    """The tools the agent called, in order, as Voice Live recorded them."""
    keypad_inputs: list[str] = field(default_factory=list)
    """The text the bridge gave the agent for the caller's keypad presses."""
    setup: CallSetup | None = None
    playout: PlayoutDelay | None = None
    continuity: Continuity | None = None
    truncates: int = 0
    """``conversation.item.truncate`` events Voice Live received."""
    agent_turns: int = 0
    """Responses Voice Live was asked for (the greeting included)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def build_call_report(
    record: CallRecord,
    sessions: Sequence[EmulatorSession],
    *,
    audio_format: str,
    codec_delay_ms: float,
) -> CallReport:
    """Judge one call.

    Args:
        record: the phone's record of the call.
        sessions: the emulator's records of the same call's Voice Live sessions, oldest first
            (none if Voice Live never took the call).
        audio_format: the bridge's Voice Live audio format, for the report.
        codec_delay_ms: the transcoder's fixed delay on the agent path: the caller's playback of
            a reply starts that much before the reply's own first sample, so it is taken off
            the phone's heard time to express it on the reply's timeline.
    """
    jitter = record.jitter_ms
    pacing = Pacing(
        frames=len(record.arrivals),
        jitter_p50_ms=round(percentile(jitter, 50), 2),
        jitter_p99_ms=round(percentile(jitter, 99), 2),
        jitter_max_ms=round(max(jitter, default=0.0), 2),
        underruns=record.underruns,
    )
    first_heard = record.first_audio_heard_at
    violations = [violation for session in sessions for violation in session.violations]
    violations += [f"bridge sent a bad media message: {bad.reason}" for bad in record.bad_messages]
    barge_ins: list[BargeInReport] = []
    for index, stop in enumerate(record.stops):
        previous = barge_ins[-1] if barge_ins else None
        barge_ins.append(
            judge_barge_in(
                stop, index, record, sessions, codec_delay_ms=codec_delay_ms, previous=previous
            )
        )
    for index, barge_in in enumerate(barge_ins, start=1):
        if barge_in.audio_end_ms is None and barge_in.heard_ms > 0 and not barge_in.resumed:
            violations.append(f"barge-in {index}: playback was cut but no truncate was sent")
    return CallReport(
        call_id=record.call_connection_id,
        audio_format=audio_format,
        sample_rate=record.sample_rate,
        duration_s=round(record.ws_closed_at - record.ws_opened_at, 3),
        first_audio_ms=(
            round((first_heard - record.ws_opened_at) * 1000, 1) if first_heard else None
        ),
        pacing=pacing,
        barge_ins=barge_ins,
        stale_audio_ms=round(stale_audio_ms(record, sessions, barge_ins)),
        protocol_violations=violations,
        tool_calls=[call.name for session in sessions for call in session.tool_calls],
        keypad_inputs=[entry.text for session in sessions for entry in session.text_inputs],
        truncates=sum(len(session.truncations) for session in sessions),
        agent_turns=sum(len(session.responses) for session in sessions),
    )


def call_setup(
    call: SimCall, sessions: Sequence[EmulatorSession], bridge: CallSummary | None = None
) -> CallSetup:
    """What ACS saw of the call: setup latencies, callbacks, and how it ended; ``bridge`` is
    callbridge's own summary of the call, if it gave one."""
    start = call.created_at

    def since_start(at: float | None) -> float | None:
        return None if at is None else round((at - start) * 1000, 1)

    media_opened = call.media.ws_opened_at if call.media is not None else None
    connect_requested = sessions[0].upgrade_requested_at if sessions else None
    return CallSetup(
        direction=call.direction,
        outcome=call.outcome,
        answer_ms=since_start(call.answered_at),
        media_ms=since_start(media_opened),
        voice_live_head_start_ms=(
            None
            if media_opened is None or connect_requested is None
            else round((media_opened - connect_requested) * 1000, 1)
        ),
        callbacks=[f"{c.name} {c.status}" for c in call.callbacks],
        disconnect=call.disconnect,
        ended_by=_ended_by(call, sessions, bridge),
        transfer_target=call.transfer_target,
    )


def _ended_by(
    call: SimCall, sessions: Sequence[EmulatorSession], bridge: CallSummary | None
) -> EndedBy | None:
    tools = [tool.name for session in sessions for tool in session.tool_calls]
    match call.disconnect:
        case "caller":
            return EndedBy.CALLER
        case "transfer":
            # ACS saw a transfer; the agent's own tool, or callbridge's fallback path when Voice
            # Live saw no transfer_call (callbridge's summary names it).
            if EndedBy.TRANSFER_CALL in tools or bridge is None or bridge.ended_by is None:
                return EndedBy.TRANSFER_CALL
            return bridge.ended_by
        case "app_hangup" | "app_terminate":
            if bridge is not None and bridge.ended_by is not None:
                return bridge.ended_by
            if tools and tools[-1] == EndedBy.END_CALL:
                return EndedBy.END_CALL
    return None


def render_text(report: CallReport) -> str:
    """A readable summary of one call."""
    pacing = report.pacing
    lines = [
        f"call {report.call_id}  ({report.audio_format}, ACS {report.sample_rate} Hz, "
        f"{report.duration_s:.1f} s)",
        f"  first agent audio heard  {_ms(report.first_audio_ms)} after the media socket opened",
        f"  pacing                   {pacing.frames} frames, jitter p50 {pacing.jitter_p50_ms} ms"
        f" / p99 {pacing.jitter_p99_ms} ms / max {pacing.jitter_max_ms} ms,"
        f" {pacing.underruns} underruns",
    ]
    if not report.barge_ins:
        lines.append("  barge-ins                none")
    for index, b in enumerate(report.barge_ins, start=1):
        if b.resumed:
            lines.append(
                f"  barge-in {index}               false: caller heard {b.heard_ms} ms, then a"
                f" {_ms(b.pause_ms)} pause, and the reply went on (no truncate)"
            )
            continue
        lines.append(
            f"  barge-in {index}               caller heard {b.heard_ms} ms; callbridge told the"
            f" model audio_end_ms={b.audio_end_ms} (error {b.truncation_error_ms} ms)"
        )
        lines.append(
            f"                           StopAudio {_ms(b.stop_latency_ms)} after speech_started;"
            f" {b.overhang_ms} ms played after the caller began"
        )
    lines.append(f"  stale audio after stop   {report.stale_audio_ms} ms")
    if report.playout is not None:
        lines.append(_playout_line(report.playout))
    if report.tool_calls:
        lines.append(f"  tools called             {', '.join(report.tool_calls)}")
    if report.setup is not None:
        lines[1:1] = _setup_lines(report.setup)
    if report.continuity is not None:
        lines += _continuity_lines(report.continuity)
    verdict = "none" if not report.protocol_violations else "; ".join(report.protocol_violations)
    lines.append(f"  protocol violations      {verdict}")
    return "\n".join(lines)


def _playout_line(playout: PlayoutDelay) -> str:
    used = "unknown" if playout.used_ms is None else _ms(round(playout.used_ms, 1))
    how = (
        f"measured {used} from {playout.marks_answered} marks"
        if playout.measured
        else f"used {used}"
    )
    return (
        f"  playout delay            line {_ms(playout.line_ms)}; callbridge {how}"
        f" (configured {_ms(playout.configured_ms)})"
    )


def _setup_lines(setup: CallSetup) -> list[str]:
    return [
        f"  {setup.direction + ' call':25}{setup.outcome}: answered {_ms(setup.answer_ms)},"
        f" media socket open {_ms(setup.media_ms)} after the IncomingCall",
        f"  Voice Live pre-warm      connecting began {_ms(setup.voice_live_head_start_ms)}"
        " before the media socket opened",
        f"  ACS callbacks            {', '.join(setup.callbacks) or 'none'}",
        f"  ended by                 {setup.ended_by or 'unknown'} (ACS: {setup.disconnect})"
        + (f" (transferred to {mask(setup.transfer_target)})" if setup.transfer_target else ""),
    ]


def _continuity_lines(continuity: Continuity) -> list[str]:
    greetings = f"{continuity.greetings} greeting" + ("" if continuity.greetings == 1 else "s")
    refused = (
        f", {continuity.refused_connects} connects refused" if continuity.refused_connects else ""
    )
    faults = f"; faults: {', '.join(continuity.faults)}" if continuity.faults else ""
    told = (
        f"; later sessions told {', '.join(map(str, continuity.told_turns))} earlier turns"
        if continuity.told_turns
        else ""
    )
    lines = [
        f"  Voice Live sessions      {continuity.sessions} ({greetings}{refused}){told}{faults}",
        f"  media sockets            {continuity.media_sockets}",
        f"  longest silence          {_ms(continuity.longest_silence_ms)} waiting for the agent",
        f"  caller audio lost        {_ms(continuity.caller_audio_lost_ms)} in callbridge,"
        f" {_ms(continuity.caller_audio_lost_on_line_ms)} on the line",
    ]
    if continuity.fallback_clip_ms is not None:
        lines.append(
            f"  fallback clip            heard {_ms(continuity.fallback_heard_ms)}"
            f" of {_ms(continuity.fallback_clip_ms)}"
        )
    return lines


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
