"""Reading a call recording for a replay, and checking it as far as a replay relies on it.

:func:`read_replayable` reads a recording folder (see :mod:`callbridge.adapters.recording`)
and checks what the replay of :mod:`callbridge.sim.recorded` uses: ``meta.json``'s rate,
format and sample layout, and the fields of every typed timeline line (the recording's reader
checks only their names). Every problem is a :class:`~callbridge.sim.scenario_schema.ScenarioError`
line naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, get_args

from callbridge.adapters.recording import (
    AGENT_WAV,
    CALLER_WAV,
    META,
    SAMPLE_WIDTH,
    TIMELINE,
    AgentAudioRecord,
    BargeInRecord,
    CallerAudioRecord,
    DtmfRecord,
    Recording,
    StopAudioRecord,
    TimelineRecord,
    ToolCallRecord,
    ToolResultRecord,
    TranscriptRecord,
    read_recording,
)
from callbridge.core.profiles import AudioFormat, MediaRate
from callbridge.process.toml_file import is_finite_number, is_whole_number
from callbridge.sim.scenario_schema import DTMF_KEYS, ScenarioError

_FILES: Final = f"{META}, {CALLER_WAV}, {AGENT_WAV} and {TIMELINE}"
_SPEAKERS: Final = ("caller", "agent")


def read_replayable(folder: Path) -> Recording:
    """The recording in ``folder``, checked as far as a replay relies on it."""
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "a file, not a recording folder"
        raise ScenarioError([f"{folder}: not a callbridge recording: {what}"])
    meta_path = folder / META
    if not meta_path.is_file():
        raise ScenarioError(
            [f"{folder}: not a callbridge recording: it has no {META} (nor, so, any call)"]
        )
    try:
        recording = read_recording(folder)
    except FileNotFoundError as exc:
        missing = exc.filename or folder
        raise ScenarioError([f"{missing}: missing: a recording has {_FILES}"]) from exc
    except OSError as exc:
        raise ScenarioError(
            [f"{exc.filename or folder}: cannot read: {exc.strerror or exc}"]
        ) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{meta_path}: corrupt: not UTF-8 text ({exc.reason})"]) from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError([f"{meta_path}: corrupt: not JSON ({exc})"]) from exc
    except (TypeError, KeyError, AttributeError) as exc:
        # Audio lines whose offsets are not numbers (the reader adds up their lengths).
        raise ScenarioError(
            [f"{folder / TIMELINE}: corrupt: an audio line's offset is not a byte count ({exc})"]
        ) from exc
    except ValueError as exc:
        message = str(exc)
        raise ScenarioError(
            [message if message.startswith(str(folder)) else f"{folder}: {message}"]
        ) from exc
    problems = _meta_problems(recording.meta, meta_path)
    problems += _record_problems(recording.records, folder / TIMELINE)
    if not problems and not recording.records:
        problems.append(
            f"{folder / TIMELINE}: nothing was recorded (no audio, no events): there is no call"
            " to replay"
        )
    if problems:
        raise ScenarioError(problems)
    return recording


def _meta_problems(meta: Mapping[str, Any], path: Path) -> list[str]:
    problems: list[str] = []
    rate = meta.get("sample_rate")
    rates: tuple[int, ...] = get_args(MediaRate)
    if not is_whole_number(rate) or rate not in rates:
        problems.append(
            f"{path}: sample_rate: must be an ACS media rate"
            f" ({' or '.join(map(str, rates))}), not {rate!r}"
        )
    audio_format = meta.get("audio_format")
    formats: tuple[str, ...] = get_args(AudioFormat)
    if audio_format not in formats:
        problems.append(
            f"{path}: audio_format: must be {' or '.join(formats)}, not {audio_format!r}"
        )
    if meta.get("sample_width", SAMPLE_WIDTH) != SAMPLE_WIDTH or meta.get("channels", 1) != 1:
        problems.append(f"{path}: the audio must be PCM16 mono")
    return problems


def _is_key(value: str) -> bool:
    return len(value) == 1 and value.upper() in DTMF_KEYS


_Check = tuple[str, str, Any]
"""A field, what it must be, and a predicate."""

_CHECKS: Final[Mapping[type, tuple[_Check, ...]]] = {
    CallerAudioRecord: (
        ("offset", "an even byte offset", lambda v: is_whole_number(v) and v >= 0 and v % 2 == 0),
        ("silent", "true or false", lambda v: isinstance(v, bool)),
        ("frame_bytes", "a byte count", lambda v: is_whole_number(v) and v >= 0),
    ),
    AgentAudioRecord: (
        ("offset", "a byte offset", lambda v: is_whole_number(v) and v >= 0),
        ("start", "a time in seconds", is_finite_number),
        ("item_id", "an item id", lambda v: isinstance(v, str) and v != ""),
        ("content_index", "a content index", lambda v: is_whole_number(v) and v >= 0),
        ("response_id", "a response id", lambda v: v is None or isinstance(v, str)),
    ),
    StopAudioRecord: (("agent_offset", "a byte offset", lambda v: is_whole_number(v) and v >= 0),),
    DtmfRecord: (
        ("digit", "a keypad key (0-9, *, #, A-D)", lambda v: isinstance(v, str) and _is_key(v)),
    ),
    TranscriptRecord: (
        ("speaker", "caller or agent", lambda v: v in _SPEAKERS),
        ("item_id", "an item id", lambda v: isinstance(v, str)),
        ("text", "text", lambda v: isinstance(v, str)),
    ),
    ToolCallRecord: (
        ("name", "a tool name", lambda v: isinstance(v, str) and v != ""),
        ("call_id", "a call id", lambda v: isinstance(v, str)),
    ),
    ToolResultRecord: (
        ("name", "a tool name", lambda v: isinstance(v, str)),
        ("call_id", "a call id", lambda v: isinstance(v, str)),
    ),
    BargeInRecord: (
        ("item_id", "an item id", lambda v: isinstance(v, str) and v != ""),
        ("content_index", "a content index", lambda v: is_whole_number(v) and v >= 0),
        ("heard_ms", "milliseconds", is_finite_number),
        ("received_ms", "milliseconds", lambda v: v is None or is_finite_number(v)),
    ),
}


def _record_problems(records: Sequence[TimelineRecord], path: Path) -> list[str]:
    """Typed lines whose fields a replay cannot use (the reader checks only their names)."""
    problems: list[str] = []
    for record in records:
        kind = getattr(record, "kind", None) or _KINDS.get(type(record), type(record).__name__)
        if not math.isfinite(record.t):
            problems.append(f"{path}: a {kind} line: t must be a finite time, not {record.t!r}")
            continue
        for name, what, ok in _CHECKS.get(type(record), ()):
            value = getattr(record, name)
            if not ok(value):
                problems.append(
                    f"{path}: the {kind} line at t={record.t:g} s: {name} must be {what},"
                    f" not {value!r}"
                )
    return problems


_KINDS: Final[Mapping[type, str]] = {
    CallerAudioRecord: "caller_audio",
    AgentAudioRecord: "agent_audio",
    StopAudioRecord: "stop_audio",
    DtmfRecord: "dtmf",
    TranscriptRecord: "transcript",
    ToolCallRecord: "tool_call",
    ToolResultRecord: "tool_result",
    BargeInRecord: "barge_in",
}


def meta_extra(recording: Recording) -> Mapping[str, Any]:
    """``meta.json``'s ``extra`` table: what the recorder was told about the call (empty when
    there is none)."""
    extra = recording.meta.get("extra")
    return extra if isinstance(extra, dict) else {}
