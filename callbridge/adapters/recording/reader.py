"""Reading a recording folder back: its meta, its audio and its timeline records.

A recording still being written, or abandoned by a crash (``.partial``), reads as far as it got.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from callbridge.adapters.recording.files import read_wav_data
from callbridge.adapters.recording.timeline import (
    AGENT_WAV,
    CALLER_WAV,
    FORMAT,
    FORMAT_VERSION,
    META,
    PARTIAL_SUFFIX,
    SAMPLE_WIDTH,
    TIMELINE,
    AgentAudioRecord,
    CallerAudioRecord,
    TimelineRecord,
    parse_line,
)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CallerFrame:
    """One caller frame as ACS delivered it, with its arrival time (recording seconds)."""

    t: float
    pcm: bytes
    silent: bool


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording read back: closed, or ``partial`` (still running, or abandoned by a crash)."""

    path: Path
    partial: bool
    meta: dict[str, Any]
    records: tuple[TimelineRecord, ...]
    caller_pcm: bytes
    agent_pcm: bytes

    @property
    def sample_rate(self) -> int:
        rate = self.meta["sample_rate"]
        assert isinstance(rate, int)
        return rate

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * SAMPLE_WIDTH

    def of(self, kind: type[R]) -> list[R]:
        """The records of one type, in timeline order: ``rec.of(BargeInRecord)``."""
        return [record for record in self.records if isinstance(record, kind)]

    def caller_frames(self) -> Iterator[CallerFrame]:
        """The caller's audio cut back into ACS frames, each with its arrival time."""
        for span in self.of(CallerAudioRecord):
            step = span.frame_bytes or span.length
            for rel in range(0, span.length, max(step, SAMPLE_WIDTH)):
                end = min(rel + step, span.length)
                pcm = self.caller_pcm[span.offset + rel : span.offset + end]
                yield CallerFrame(span.t + rel / self.bytes_per_second, pcm, span.silent)

    def agent_item_pcm(self, item_id: str, content_index: int = 0) -> bytes:
        """All the audio of one agent item content part that was sent to the caller."""
        return b"".join(
            self.agent_pcm[span.offset : span.offset + span.length]
            for span in self.of(AgentAudioRecord)
            if span.item_id == item_id and span.content_index == content_index
        )


def read_recording(path: Path | str) -> Recording:
    """Load a recording folder, closed or partial.

    A partial one (``.partial`` folder, or ``meta.json`` not marked complete) is read as far
    as it got: timeline lines up to the last complete one, audio as written.

    Raises:
        FileNotFoundError: no ``meta.json`` in the folder.
        ValueError: not a recording of a known format, or a closed recording is corrupt.
    """
    folder = Path(path)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: not a callbridge recording")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder}: unsupported format_version {meta.get('format_version')!r}")
    partial = folder.name.endswith(PARTIAL_SUFFIX) or meta.get("complete") is not True
    caller = read_wav_data(folder / CALLER_WAV)
    agent = read_wav_data(folder / AGENT_WAV)
    records = _read_timeline(folder / TIMELINE, strict=not partial)
    return Recording(
        path=folder,
        partial=partial,
        meta=meta,
        records=_with_lengths(records, len(caller), len(agent)),
        caller_pcm=caller,
        agent_pcm=agent,
    )


def _read_timeline(path: Path, *, strict: bool) -> list[TimelineRecord]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if strict:
            raise
        return []
    *lines, tail = data.split(b"\n")
    if tail and strict:
        raise ValueError(f"{path}: the last line is incomplete")
    records: list[TimelineRecord] = []
    for number, raw in enumerate(lines, 1):
        try:
            records.append(parse_line(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            if strict:
                raise ValueError(f"{path}:{number}: bad timeline line ({exc})") from exc
            # A crash can leave a torn or zero-filled tail: keep what came before it.
            break
    return records


def _with_lengths(
    records: list[TimelineRecord], caller_bytes: int, agent_bytes: int
) -> tuple[TimelineRecord, ...]:
    """Fill in each span's length: to the next span of its file, or to the file's end."""
    out = list(records)
    for kind, total in ((CallerAudioRecord, caller_bytes), (AgentAudioRecord, agent_bytes)):
        end = total
        # Backwards: each span ends where the next one of its file begins.
        for i in reversed(range(len(out))):
            span = out[i]
            if isinstance(span, kind):
                assert isinstance(span, CallerAudioRecord | AgentAudioRecord)
                out[i] = dataclasses.replace(span, length=max(0, end - span.offset))
                end = min(span.offset, end)
    return tuple(out)
