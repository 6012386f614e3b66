"""What a call page shows, worked out from a recording: turns, interruptions, events, figures.

Everything is on the recording's clock (seconds since it started). The agent's audio is placed
where the pacer sent it; the caller hears it one ACS playout delay later (the configured one,
``meta.extra.playout_delay_ms``), which is what a turn's latency counts. Where the caller
stopped speaking comes from the caller's own audio (see :mod:`callbridge.report.audio`), not
from Voice Live's turn detection, which decides some hundreds of ms later.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from callbridge.adapters.recording import (
    AgentAudioRecord,
    BargeInRecord,
    CallerAudioRecord,
    DtmfRecord,
    EventRecord,
    Recording,
    StopAudioRecord,
    ToolCallRecord,
    ToolResultRecord,
    TranscriptRecord,
)
from callbridge.report.audio import samples, speech_segments

Speaker = Literal["caller", "agent"]
MarkKind = Literal["stop_audio", "tool", "dtmf", "end", "event"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One side speaking: the caller's speech, or one agent item as sent."""

    speaker: Speaker
    start: float
    end: float
    text: str | None
    latency_ms: float | None = None
    """Agent turns: the caller stopped speaking -> the caller heard this turn begin."""
    speech_end: float | None = None
    """Agent turns: when the caller stopped speaking before it (where the latency starts)."""


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller cut the agent: what they heard, and what the model was told."""

    stop_at: float | None
    """When ``StopAudio`` went to ACS."""
    at: float
    heard_ms: float
    audio_end_ms: int
    received_ms: float | None
    heard_text: str
    """The start of the item's transcript, cut where ``audio_end_ms`` falls (an estimate:
    the recording has no word timings, so the cut is proportional to the audio)."""
    unheard_text: str


@dataclass(frozen=True, slots=True)
class Pause:
    """A false interruption: the agent paused for the caller, then went on (no truncate)."""

    stop_at: float
    resumed_at: float | None
    decided_ms: int | None
    """How long the bridge waited before deciding the interruption was false."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment on the timeline: ``StopAudio``, a tool call, a keypad press, the end."""

    at: float
    kind: MarkKind
    label: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CallView:
    """A recorded call, ready to draw; ``figures`` is the call report, when there is one."""

    title: str
    facts: dict[str, str]
    duration_s: float
    sample_rate: int
    playout_s: float
    """The configured ACS playout delay: the caller hears agent audio this long after it is
    sent."""
    caller_track: np.ndarray
    """The caller's samples placed on the call's clock (silence where nothing arrived)."""
    agent_track: np.ndarray
    """The agent's samples placed where the pacer sent them."""
    turns: list[Turn]
    barge_ins: list[BargeIn]
    pauses: list[Pause]
    marks: list[Mark]
    pacing: dict[str, str]
    figures: dict[str, Any] | None = field(default=None)


def build_view(recording: Recording, figures: dict[str, Any] | None = None) -> CallView:
    """The page's view of ``recording``; ``figures``: its call report (``report.json``)."""
    meta = recording.meta
    extra = meta.get("extra") or {}
    playout_s = float(extra.get("playout_delay_ms") or 0.0) / 1000
    rate = recording.sample_rate
    duration = _duration(recording)
    caller_track, caller_spans = _place_caller(recording, duration)
    agent_track = _place_agent(recording, duration)
    speech = speech_segments(caller_track, rate, caller_spans)
    transcripts = recording.of(TranscriptRecord)
    caller_turns = _caller_turns(speech, [t for t in transcripts if t.speaker == "caller"])
    agent_turns = _agent_turns(recording, transcripts, caller_turns, playout_s)
    marks = _marks(recording)
    pauses = _pauses(recording)
    ended = next((m for m in marks if m.kind == "end"), None)
    return CallView(
        title=f"Call {meta.get('call_connection_id', '?')}",
        facts={
            "profile": str(meta.get("profile", "?")),
            "started": str(meta.get("started_at", "?")),
            "duration": f"{duration:.1f} s",
            "audio": f"{meta.get('audio_format', '?')} to Voice Live, ACS PCM16 {rate} Hz",
            "ended by": ended.label.removeprefix("call ended: ") if ended else "not recorded",
            "recording": "partial (still running, or abandoned)"
            if recording.partial
            else "complete",
        },
        duration_s=duration,
        sample_rate=rate,
        playout_s=playout_s,
        caller_track=caller_track,
        agent_track=agent_track,
        turns=sorted(caller_turns + agent_turns, key=lambda turn: turn.start),
        barge_ins=_barge_ins(recording, transcripts),
        pauses=pauses,
        marks=marks,
        pacing=_pacing(recording, extra, agent_turns, resumed=len(pauses)),
        figures=figures,
    )


def _duration(recording: Recording) -> float:
    declared = recording.meta.get("duration_s")
    if isinstance(declared, int | float) and declared > 0:
        return float(declared)
    ends = [r.t for r in recording.records]
    ends += [r.t + r.length / recording.bytes_per_second for r in recording.of(CallerAudioRecord)]
    ends += [
        r.start + r.length / recording.bytes_per_second for r in recording.of(AgentAudioRecord)
    ]
    return max(ends, default=0.0) or 0.001


def _place_caller(
    recording: Recording, duration: float
) -> tuple[np.ndarray, list[tuple[float, int, int]]]:
    """The caller's track on the clock, and the spans placed (start, first sample, count)."""
    rate = recording.sample_rate
    source = samples(recording.caller_pcm)
    track = np.zeros(round(duration * rate) + 1, dtype=np.int16)
    placed: list[tuple[float, int, int]] = []
    for span in recording.of(CallerAudioRecord):
        first, count = span.offset // 2, span.length // 2
        at = round(span.t * rate)
        count = max(0, min(count, track.size - at))
        track[at : at + count] = source[first : first + count]
        placed.append((span.t, at, count))
    return track, placed


def _place_agent(recording: Recording, duration: float) -> np.ndarray:
    rate = recording.sample_rate
    source = samples(recording.agent_pcm)
    track = np.zeros(round(duration * rate) + 1, dtype=np.int16)
    for span in recording.of(AgentAudioRecord):
        first, at = span.offset // 2, round(span.start * rate)
        count = max(0, min(span.length // 2, track.size - at))
        track[at : at + count] = source[first : first + count]
    return track


def _caller_turns(speech: list[Any], transcripts: list[TranscriptRecord]) -> list[Turn]:
    """Speech segments, each with the transcript that came after it (the latest segment not
    yet given one that began before the transcript arrived)."""
    texts: list[str | None] = [None] * len(speech)
    orphans: list[Turn] = []
    for transcript in transcripts:
        candidates = [
            i for i, s in enumerate(speech) if s.start <= transcript.t and texts[i] is None
        ]
        if candidates:
            texts[candidates[-1]] = transcript.text
        else:
            orphans.append(Turn("caller", transcript.t, transcript.t, transcript.text))
    turns = [Turn("caller", s.start, s.end, text) for s, text in zip(speech, texts, strict=True)]
    return turns + orphans


def _agent_turns(
    recording: Recording,
    transcripts: list[TranscriptRecord],
    caller_turns: list[Turn],
    playout_s: float,
) -> list[Turn]:
    """One turn per agent item; its latency from the last caller speech that ended after the
    previous agent turn began (none when the caller had said nothing since: a greeting)."""
    bps = recording.bytes_per_second
    spans: dict[str, list[AgentAudioRecord]] = {}
    for span in recording.of(AgentAudioRecord):
        spans.setdefault(span.item_id, []).append(span)
    text = {t.item_id: t.text for t in transcripts if t.speaker == "agent"}
    speech_ends = sorted(turn.end for turn in caller_turns if turn.end > turn.start)
    turns: list[Turn] = []
    previous_start = -1.0
    for item_id, item_spans in spans.items():
        start = item_spans[0].start
        end = max(s.start + s.length / bps for s in item_spans)
        low = bisect.bisect_right(speech_ends, previous_start)
        high = bisect.bisect_right(speech_ends, start)
        speech_end = speech_ends[high - 1] if high > low else None
        latency = None if speech_end is None else round((start + playout_s - speech_end) * 1000)
        turns.append(Turn("agent", start, end, text.get(item_id), latency, speech_end))
        previous_start = start
    return turns


def _barge_ins(recording: Recording, transcripts: list[TranscriptRecord]) -> list[BargeIn]:
    stops = [stop.t for stop in recording.of(StopAudioRecord)]
    text = {t.item_id: t.text for t in transcripts if t.speaker == "agent"}
    out: list[BargeIn] = []
    for record in recording.of(BargeInRecord):
        before = bisect.bisect_right(stops, record.t)
        heard, unheard = _cut(text.get(record.item_id, ""), record.audio_end_ms, record)
        out.append(
            BargeIn(
                stop_at=stops[before - 1] if before else None,
                at=record.t,
                heard_ms=record.heard_ms,
                audio_end_ms=record.audio_end_ms,
                received_ms=record.received_ms,
                heard_text=heard,
                unheard_text=unheard,
            )
        )
    return out


def _cut(text: str, audio_end_ms: int, record: BargeInRecord) -> tuple[str, str]:
    """``text`` split at the word nearest ``audio_end_ms`` of the item's audio."""
    total = record.received_ms or 0.0
    if not text or total <= 0:
        return text, ""
    at = round(len(text) * min(1.0, audio_end_ms / total))
    space = text.rfind(" ", 0, at + 1)
    at = space + 1 if space > 0 else at
    return text[:at], text[at:]


def _pauses(recording: Recording) -> list[Pause]:
    stops = [stop.t for stop in recording.of(StopAudioRecord)]
    starts = sorted(span.t for span in recording.of(AgentAudioRecord))
    out: list[Pause] = []
    for record in recording.of(EventRecord):
        if record.kind != "interruption_decided" or record.fields.get("verdict") != "false":
            continue
        before = bisect.bisect_right(stops, record.t)
        if not before:
            continue
        after = bisect.bisect_left(starts, record.t)
        paused = record.fields.get("paused_ms")
        out.append(
            Pause(
                stop_at=stops[before - 1],
                resumed_at=starts[after] if after < len(starts) else None,
                decided_ms=paused if isinstance(paused, int) else None,
            )
        )
    return out


def _marks(recording: Recording) -> list[Mark]:
    results = {r.call_id: r.output for r in recording.of(ToolResultRecord)}
    marks: list[Mark] = []
    for record in recording.records:
        match record:
            case StopAudioRecord():
                marks.append(Mark(record.t, "stop_audio", "StopAudio"))
            case ToolCallRecord():
                output = results.get(record.call_id)
                detail = f"arguments {record.arguments}" + (
                    f"; returned {output}" if output else ""
                )
                marks.append(Mark(record.t, "tool", f"tool {record.name}", detail))
            case DtmfRecord():
                marks.append(Mark(record.t, "dtmf", f"keypad {record.digit}"))
            case EventRecord(kind="call_ended"):
                ended_by = record.fields.get("ended_by") or "unknown"
                marks.append(Mark(record.t, "end", f"call ended: {ended_by}"))
            case EventRecord(kind="interruption_decided" | "recording_closed"):
                continue  # drawn as a barge-in or a pause; the recording's own bookkeeping
            case EventRecord():
                marks.append(Mark(record.t, "event", record.kind, _fields(record.fields)))
    return marks


def _fields(fields: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in fields.items())


def _pacing(
    recording: Recording, extra: dict[str, Any], agent_turns: list[Turn], *, resumed: int
) -> dict[str, str]:
    """What the recording says of the pacer: its settings, and the spans that started late
    (every span past an item's first, except where a paused item resumed)."""
    spans = recording.of(AgentAudioRecord)
    items = len({(s.item_id, s.content_index) for s in spans})
    latencies = [t.latency_ms for t in agent_turns if t.latency_ms is not None]
    pacing = {
        "lead": f"{extra.get('lead_ms', '?')} ms",
        "playout delay (configured)": f"{extra.get('playout_delay_ms', '?')} ms",
        "agent audio": f"{len(recording.agent_pcm) / recording.bytes_per_second:.1f} s"
        f" in {items} items",
        "spans started late (> 1 frame behind the grid)": str(max(0, len(spans) - items - resumed)),
    }
    if latencies:
        ordered = sorted(latencies)
        pacing["turn latency"] = (
            f"median {ordered[len(ordered) // 2]:.0f} ms, max {ordered[-1]:.0f} ms"
            f" over {len(ordered)} turns"
        )
    return pacing
