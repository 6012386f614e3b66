"""The recording format: file names, constants, and the timeline's typed records.

See ``callbridge.adapters.recording`` for the folder layout and what each line kind holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

FORMAT = "callbridge-recording"
FORMAT_VERSION = 1

META = "meta.json"
CALLER_WAV = "caller.wav"
AGENT_WAV = "agent.wav"
TIMELINE = "timeline.jsonl"
PARTIAL_SUFFIX = ".partial"

SAMPLE_WIDTH = 2
"""PCM16: two bytes per sample, mono."""

WAV_HEADER_BYTES = 44

FLUSH_INTERVAL_S = 0.5
"""Everything written is handed to the OS at least this often while audio flows."""

CALLER_SYNC_TOLERANCE_S = 0.030
"""A caller frame arriving more than this off its span's predicted time starts a new span.
Above one frame, so frames ACS delivers in pairs do not start a span each."""

AGENT_LATE_S = 0.020
"""An agent frame sent more than this after the grid predicts starts a new span: the pacer's
own re-anchoring threshold (one frame), so spans follow its grid."""

RESERVED_KEYS = frozenset({"t", "side", "kind"})
"""Keys every timeline line has; no event field may use them."""

Side: TypeAlias = Literal["acs", "voice_live", "bridge"]
Speaker: TypeAlias = Literal["caller", "agent"]
JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None


@dataclass(frozen=True, slots=True)
class CallerAudioRecord:
    """A span of ``caller.wav`` whose frames arrived back to back from ``t``."""

    t: float
    offset: int
    silent: bool
    frame_bytes: int
    length: int = 0
    """Bytes in the span: up to the next span, or the end of the audio."""


@dataclass(frozen=True, slots=True)
class AgentAudioRecord:
    """A span of ``agent.wav`` of one item, due back to back on the pacer's grid from
    ``start``; ``t`` is when its first frame was sent."""

    t: float
    start: float
    offset: int
    item_id: str
    content_index: int
    response_id: str | None = None
    length: int = 0


@dataclass(frozen=True, slots=True)
class StopAudioRecord:
    t: float
    agent_offset: int


@dataclass(frozen=True, slots=True)
class DtmfRecord:
    t: float
    digit: str


@dataclass(frozen=True, slots=True)
class TranscriptRecord:
    t: float
    speaker: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    t: float
    name: str
    call_id: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResultRecord:
    t: float
    name: str
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class BargeInRecord:
    t: float
    item_id: str
    content_index: int
    heard_ms: float
    audio_end_ms: int
    received_ms: float | None = None
    cancelled_response: bool | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Any other line: a protocol event as passed to ``CallRecorder.event``."""

    t: float
    side: str
    kind: str
    fields: dict[str, Any]


TimelineRecord: TypeAlias = (
    CallerAudioRecord
    | AgentAudioRecord
    | StopAudioRecord
    | DtmfRecord
    | TranscriptRecord
    | ToolCallRecord
    | ToolResultRecord
    | BargeInRecord
    | EventRecord
)

_TYPED: dict[str, type[TimelineRecord]] = {
    "caller_audio": CallerAudioRecord,
    "agent_audio": AgentAudioRecord,
    "stop_audio": StopAudioRecord,
    "dtmf": DtmfRecord,
    "transcript": TranscriptRecord,
    "tool_call": ToolCallRecord,
    "tool_result": ToolResultRecord,
    "barge_in": BargeInRecord,
}


def parse_line(line: object) -> TimelineRecord:
    if not isinstance(line, dict):
        raise TypeError("not a JSON object")
    t, side, kind = float(line["t"]), str(line["side"]), str(line["kind"])
    fields = {key: value for key, value in line.items() if key not in RESERVED_KEYS}
    typed = _TYPED.get(kind)
    if typed is None:
        return EventRecord(t, side, kind, fields)
    names = {f.name for f in dataclasses.fields(typed)} - {"t", "length"}
    return typed(t=t, **{key: value for key, value in fields.items() if key in names})
