"""Call recordings: one self-contained folder per call, written as the call goes.

A recording holds everything needed to rebuild a call as a test scenario: what ACS sent (the
caller's audio with its timing, keypad digits), what the bridge sent back (the agent's audio per
item with its timing, ``StopAudio``), and a JSONL timeline of the protocol events on both sides,
transcripts, tool calls and barge-ins.

Folder layout (``<root>/<UTC start>_<call connection id>/``; ``.partial`` suffix until closed)::

    meta.json        call ids, profile, rates, formats, start time, callbridge version;
                     finalised at close (duration, byte counts, line counts, "complete")
    caller.wav       the caller's PCM16 mono as received from ACS, at the ACS rate
    agent.wav        the PCM16 mono the bridge sent to ACS, at the ACS rate
    timeline.jsonl   one JSON object per line: {"t", "side", "kind", ...}

``t`` is seconds on the monotonic clock since the recording started (``meta.monotonic_start``
is the clock's reading at ``t = 0``); lines are written in order, so ``t`` never decreases.
Audio never goes into the timeline: it is referenced by byte offset into a WAV file's data.

The WAV files are streamed: each is its 44-byte header followed by the audio as it arrives.
The header's sizes are patched at every periodic flush and at close, so even an abandoned
recording is a playable WAV up to its last flush. Nothing is copied or converted at close, so
closing costs the same for a two-hour call as for a short one.

Timing without a line per frame: a ``caller_audio`` line starts a *span* of ``caller.wav``
whose frames arrived back to back (the frame at byte ``o`` of a span arrived at
``t + (o - offset) / bytes_per_second``). A new span starts on the first frame, when ACS's
``silent`` flag or the frame size changes, and when a frame arrives more than
``CALLER_SYNC_TOLERANCE_S`` off that prediction (a gap, a stall, a burst), so a replay can
place every frame within that tolerance of its real arrival. ``agent_audio`` spans do the
same for ``agent.wav`` on the pacer's grid: one starts on each new item (or content part),
after ``StopAudio``, and when a frame leaves more than ``AGENT_LATE_S`` after the grid
predicts (a new talk spurt or a re-anchored pacer). Frames released early (the pacer's lead)
do not start a span, so ``start`` is the grid time the span's first frame was due, which may
differ from ``t``, the moment the line was written.

Timeline line kinds (``side``: ``acs``, ``voice_live`` or ``bridge``):

=================  ==========  ============================================================
kind               side        fields
=================  ==========  ============================================================
caller_audio       acs         offset, silent, frame_bytes
agent_audio        acs         offset, start, item_id, content_index [, response_id]
stop_audio         acs         agent_offset (bytes of agent.wav sent before StopAudio)
dtmf               acs         digit
transcript         voice_live  speaker ("caller" | "agent"), item_id, text
tool_call          voice_live  name, call_id, arguments (the model's JSON string)
tool_result        bridge      name, call_id, output (the JSON string returned to the model)
barge_in           bridge      item_id, content_index, heard_ms, audio_end_ms
                               [, received_ms, cancelled_response]
recording_closed   bridge      caller_bytes, agent_bytes
(any other)        any         whatever was passed to ``CallRecorder.event``
=================  ==========  ============================================================

Durability: files are written through ordinary buffers and flushed together every
``FLUSH_INTERVAL_S`` while audio flows (ACS streams frames, silent ones included, for the
whole call), so a crashed process loses at most about that much. ``fsync`` happens only at
close, which then renames ``<name>.partial`` to ``<name>`` atomically. A recording that could
not be written (a full disk) stops recording; the call itself goes on.

Privacy: a recording holds the caller's voice, the transcripts, the tools' arguments and
outputs, and the keypad digits the caller pressed. Digits may be a PIN or a card number; they
are recorded all the same, because a replay has to press them. Call ids and the profile name
identify the call; no phone number is recorded. Treat the recordings folder accordingly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import math
import os
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias, TypeVar

import structlog

from callbridge import __version__

log = structlog.get_logger(__name__)

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

MIN_BASE64_CHARS = 64
"""Event fields holding a base64-looking string at least this long are omitted as audio."""

_AUDIO_WRITE_BUFFER = 1 << 16
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_AUDIO_KEYS = frozenset({"audio", "audiodata"})
"""Keys whose string values are audio whatever their length (case-insensitive)."""
_AUDIO_EVENT_KEYS = frozenset({"audio", "delta", "data"})
"""Inside an audio-carrying event or ACS ``audioData`` body, these string values are audio."""
_RESERVED = frozenset({"t", "side", "kind"})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")

Side: TypeAlias = Literal["acs", "voice_live", "bridge"]
Speaker: TypeAlias = Literal["caller", "agent"]
JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None


class CallRecorder:
    """Writes one call's recording folder.

    Every method runs on the event loop and returns quickly; ``caller_audio`` and
    ``agent_audio`` run once per 20 ms frame and write no JSON unless a span starts. Not
    thread-safe. Once closed (or after a write failed) every recording method does nothing.

    Raises (constructor only):
        OSError: the folder could not be created.
        ValueError: a sample rate that is not positive.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        call_connection_id: str,
        correlation_id: str | None,
        profile: str,
        sample_rate: int,
        audio_format: str,
        extra: Mapping[str, object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sample_rate``: the ACS PCM16 rate of both WAV files; ``audio_format``: what
        Voice Live exchanges (``g711_ulaw`` or ``pcm16``); ``extra``: more call facts for
        ``meta.json`` (pacing settings, direction...); ``clock``: the monotonic clock, the
        event loop's by default.
        """
        if sample_rate <= 0:
            raise ValueError(f"bad sample rate {sample_rate}")
        self._clock = clock
        self._t0 = clock()
        self._bytes_per_s = float(sample_rate * SAMPLE_WIDTH)
        started = datetime.now(UTC)
        self._dir, self._final = _make_folder(Path(root), started, call_connection_id)
        self._meta: dict[str, JSON] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "callbridge_version": __version__,
            "call_connection_id": call_connection_id,
            "correlation_id": correlation_id,
            "profile": profile,
            "sample_rate": sample_rate,
            "sample_width": SAMPLE_WIDTH,
            "channels": 1,
            "audio_format": audio_format,
            "started_at": _utc(started),
            "monotonic_start": self._t0,
            "files": {"caller": CALLER_WAV, "agent": AGENT_WAV, "timeline": TIMELINE},
            "extra": _clean(dict(extra or {})),
            "complete": False,
        }
        _write_json(self._dir / META, self._meta, sync=False)
        self._caller = _open_wav(self._dir / CALLER_WAV, sample_rate)
        self._agent = _open_wav(self._dir / AGENT_WAV, sample_rate)
        self._timeline: IO[bytes] = open(self._dir / TIMELINE, "xb")  # noqa: SIM115
        self._counts: Counter[str] = Counter()
        self._closed = False
        self._failed = False
        self._stopped = False
        """Closed or failed: every recording method returns at once."""
        self._next_flush = self._t0 + FLUSH_INTERVAL_S
        self._caller_bytes = 0
        self._caller_silent: bool | None = None
        self._caller_frame_bytes = 0
        self._caller_sync = (0.0, 0)
        self._caller_due = -math.inf
        self._agent_bytes = 0
        self._agent_key: tuple[str, int] | None = None
        self._agent_sync = (0.0, 0)
        self._agent_due = -math.inf

    @property
    def path(self) -> Path:
        """The recording's folder: ``<name>.partial`` until closed, then ``<name>``."""
        return self._dir

    @property
    def active(self) -> bool:
        """False once closed, or once a write failed."""
        return not self._stopped

    # --- Audio (the hot path) --------------------------------------------------------------

    def caller_audio(self, pcm: bytes, *, silent: bool) -> None:
        """One frame of the caller's PCM16 as ACS sent it, in arrival order."""
        if self._stopped:
            return
        now = self._clock()
        size = len(pcm)
        if (
            silent != self._caller_silent
            or size != self._caller_frame_bytes
            or abs(now - self._caller_due) > CALLER_SYNC_TOLERANCE_S
        ):
            self._caller_silent = silent
            self._caller_frame_bytes = size
            self._caller_sync = (now, self._caller_bytes)
            self._line(
                now,
                "acs",
                "caller_audio",
                {"offset": self._caller_bytes, "silent": silent, "frame_bytes": size},
            )
        self._caller_bytes += size
        sync_t, sync_offset = self._caller_sync
        self._caller_due = sync_t + (self._caller_bytes - sync_offset) / self._bytes_per_s
        try:
            self._caller.write(pcm)
        except OSError as exc:
            self._fail(exc)
            return
        if now >= self._next_flush:
            self._flush(now)

    def agent_audio(
        self, pcm: bytes, *, item_id: str, content_index: int, response_id: str | None = None
    ) -> None:
        """One frame of PCM16 the bridge sent to ACS, when it sent it, in sending order."""
        if self._stopped:
            return
        now = self._clock()
        late = now - self._agent_due > AGENT_LATE_S
        key = self._agent_key
        if late or key is None or key[0] != item_id or key[1] != content_index:
            # A new item on a running grid starts where the grid is, not when it was sent.
            start = now if late else self._agent_due
            self._agent_key = (item_id, content_index)
            self._agent_sync = (start, self._agent_bytes)
            fields: dict[str, JSON] = {
                "offset": self._agent_bytes,
                "start": round(start - self._t0, 6),
                "item_id": item_id,
                "content_index": content_index,
            }
            if response_id is not None:
                fields["response_id"] = response_id
            self._line(now, "acs", "agent_audio", fields)
        self._agent_bytes += len(pcm)
        sync_t, sync_offset = self._agent_sync
        self._agent_due = sync_t + (self._agent_bytes - sync_offset) / self._bytes_per_s
        try:
            self._agent.write(pcm)
        except OSError as exc:
            self._fail(exc)
            return
        if now >= self._next_flush:
            self._flush(now)

    def stop_audio(self) -> None:
        """The bridge sent ACS ``StopAudio``: the next agent frame starts a new span."""
        if self._stopped:
            return
        self._agent_due = -math.inf
        self._agent_key = None
        self._record("acs", "stop_audio", {"agent_offset": self._agent_bytes})

    # --- Timeline ------------------------------------------------------------------------

    def event(self, side: Side, kind: str, **fields: object) -> None:
        """One protocol event, e.g. ``event("voice_live", "response.created", response_id=r)``.

        Fields may be any JSON-like values, mappings (SDK models included) and sequences;
        bytes and base64 audio are replaced by ``{"omitted_bytes": n}`` or
        ``{"omitted_base64_chars": n}``, so audio never lands in the timeline.

        Raises:
            ValueError: a field is named ``t``, ``side`` or ``kind``.
        """
        if reserved := _RESERVED.intersection(fields):
            raise ValueError(f"reserved timeline field names: {sorted(reserved)}")
        if self._stopped:
            return
        cleaned = _clean_mapping(fields, audio=_is_audio_event(kind))
        self._record(side, kind, cleaned)

    def dtmf(self, digit: str) -> None:
        """A keypad digit from ACS (recorded as pressed: it may be part of a PIN)."""
        self._record("acs", "dtmf", {"digit": str(digit)})

    def transcript(self, speaker: Speaker, item_id: str, text: str) -> None:
        """A finished transcript of the caller's or the agent's turn."""
        self._record(
            "voice_live",
            "transcript",
            {"speaker": speaker, "item_id": item_id, "text": _clean(text)},
        )

    def tool_call(self, *, name: str, call_id: str, arguments: str) -> None:
        """The model called a tool (``response.function_call_arguments.done``)."""
        self._record(
            "voice_live",
            "tool_call",
            {"name": name, "call_id": call_id, "arguments": _clean(arguments)},
        )

    def tool_result(self, *, name: str, call_id: str, output: str) -> None:
        """The bridge returned a tool's output to the model (``function_call_output``)."""
        self._record(
            "bridge",
            "tool_result",
            {"name": name, "call_id": call_id, "output": _clean(output)},
        )

    def barge_in(
        self,
        *,
        item_id: str,
        heard_ms: float,
        audio_end_ms: int,
        content_index: int = 0,
        received_ms: float | None = None,
        cancelled_response: bool | None = None,
    ) -> None:
        """The caller interrupted: what they heard of the item and what the model was told."""
        fields: dict[str, JSON] = {
            "item_id": item_id,
            "content_index": content_index,
            "heard_ms": _clean(heard_ms),
            "audio_end_ms": audio_end_ms,
        }
        if received_ms is not None:
            fields["received_ms"] = _clean(received_ms)
        if cancelled_response is not None:
            fields["cancelled_response"] = cancelled_response
        self._record("bridge", "barge_in", fields)

    # --- Closing -------------------------------------------------------------------------

    def close(self) -> Path:
        """Finish the recording and return its folder; idempotent.

        Flushes, fixes the WAV headers, finalises ``meta.json``, fsyncs, then renames the
        ``.partial`` folder to its final name in one step. A recording whose writes failed
        stays ``.partial`` (and readable). Blocks on fsync: from a coroutine, use ``aclose``.
        """
        if self._closed:
            return self._dir
        self._closed = True
        now = self._clock()
        if not self._failed:
            self._line(
                now,
                "bridge",
                "recording_closed",
                {"caller_bytes": self._caller_bytes, "agent_bytes": self._agent_bytes},
            )
        self._stopped = True
        if self._failed:
            self._close_quietly()
            return self._dir
        try:
            for file, size in (
                (self._caller, self._caller_bytes),
                (self._agent, self._agent_bytes),
            ):
                file.flush()
                _patch_wav_sizes(file, size)
                _sync_close(file)
            self._timeline.flush()
            _sync_close(self._timeline)
            self._meta.update(
                {
                    "ended_at": _utc(datetime.now(UTC)),
                    "duration_s": round(now - self._t0, 6),
                    "caller_bytes": self._caller_bytes,
                    "agent_bytes": self._agent_bytes,
                    "caller_ms": round(self._caller_bytes / self._bytes_per_s * 1000, 3),
                    "agent_ms": round(self._agent_bytes / self._bytes_per_s * 1000, 3),
                    "counts": dict(sorted(self._counts.items())),
                    "complete": True,
                }
            )
            _write_json(self._dir / META, self._meta, sync=True)
            _sync_dir(self._dir)
            final = _free_name(self._final)
            os.rename(self._dir, final)
            _sync_dir(final.parent)
        except OSError as exc:
            self._fail(exc)
            self._close_quietly()
            return self._dir
        self._dir = final
        log.info("recording.closed", path=str(final), duration_s=round(now - self._t0, 1))
        return final

    async def aclose(self) -> Path:
        """``close`` in a worker thread, so its fsyncs do not hold up the event loop."""
        return await asyncio.to_thread(self.close)

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- Internals -----------------------------------------------------------------------

    def _record(self, side: Side, kind: str, fields: dict[str, JSON]) -> None:
        if self._stopped:
            return
        now = self._clock()
        self._line(now, side, kind, fields)
        if now >= self._next_flush:
            self._flush(now)

    def _line(self, now: float, side: Side, kind: str, fields: dict[str, JSON]) -> None:
        line: dict[str, JSON] = {"t": round(now - self._t0, 6), "side": side, "kind": kind}
        line.update(fields)
        data = json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            self._timeline.write(data.encode() + b"\n")
        except OSError as exc:
            self._fail(exc)
            return
        self._counts[kind] += 1

    def _flush(self, now: float) -> None:
        """Hand everything to the OS, audio first: the timeline's spans then point into audio
        that is on disk (a reader clips spans to the audio there is in any case)."""
        self._next_flush = now + FLUSH_INTERVAL_S
        try:
            self._caller.flush()
            _patch_wav_sizes(self._caller, self._caller_bytes)
            self._agent.flush()
            _patch_wav_sizes(self._agent, self._agent_bytes)
            self._timeline.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Stop recording (the call goes on); what reached the disk stays readable."""
        if self._failed:
            return
        self._failed = self._stopped = True
        log.error("recording.failed", path=str(self._dir), error=str(exc) or type(exc).__name__)

    def _close_quietly(self) -> None:
        for file in (self._caller, self._agent, self._timeline):
            try:
                file.close()
            except OSError:
                # A full disk: the data it still held is lost, what was written stays.
                continue


# --- Reading -------------------------------------------------------------------------------


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
    caller = _read_wav_data(folder / CALLER_WAV)
    agent = _read_wav_data(folder / AGENT_WAV)
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
            records.append(_parse_line(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            if strict:
                raise ValueError(f"{path}:{number}: bad timeline line ({exc})") from exc
            # A crash can leave a torn or zero-filled tail: keep what came before it.
            break
    return records


def _parse_line(line: object) -> TimelineRecord:
    if not isinstance(line, dict):
        raise TypeError("not a JSON object")
    t, side, kind = float(line["t"]), str(line["side"]), str(line["kind"])
    fields = {key: value for key, value in line.items() if key not in _RESERVED}
    typed = _TYPED.get(kind)
    if typed is None:
        return EventRecord(t, side, kind, fields)
    names = {f.name for f in dataclasses.fields(typed)} - {"t", "length"}
    return typed(t=t, **{key: value for key, value in fields.items() if key in names})


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


def _read_wav_data(path: Path) -> bytes:
    """The PCM after the header, whole samples only (the header's sizes may lag a crash)."""
    data = path.read_bytes()
    if len(data) < WAV_HEADER_BYTES or data[:4] != b"RIFF" or data[36:40] != b"data":
        raise ValueError(f"{path}: not a recording WAV file")
    pcm = data[WAV_HEADER_BYTES:]
    return pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]


# --- Files ---------------------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _make_folder(root: Path, started: datetime, call_id: str) -> tuple[Path, Path]:
    """Create ``root/<UTC>_<call id>[-n].partial``; return it and its final name."""
    root.mkdir(parents=True, exist_ok=True)
    safe_id = _UNSAFE_NAME.sub("_", call_id)[:96] or "call"
    base = f"{started:%Y%m%dT%H%M%SZ}_{safe_id}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        final = root / name
        partial = root / f"{name}{PARTIAL_SUFFIX}"
        if final.exists():
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            continue
        return partial, final
    raise FileExistsError(f"{root}: no free recording name for {base}")


def _free_name(final: Path) -> Path:
    """``final``, or ``final-n`` if something took that name meanwhile."""
    candidate, n = final, 1
    while candidate.exists():
        n += 1
        candidate = final.with_name(f"{final.name}-{n}")
    return candidate


def _wav_header(sample_rate: int, data_bytes: int) -> bytes:
    byte_rate = sample_rate * SAMPLE_WIDTH
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _riff_size(data_bytes)),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, byte_rate, SAMPLE_WIDTH, 16),
            b"data",
            struct.pack("<I", min(data_bytes, 0xFFFFFFFF)),
        )
    )


def _riff_size(data_bytes: int) -> int:
    return min(data_bytes + WAV_HEADER_BYTES - 8, 0xFFFFFFFF)


def _open_wav(path: Path, sample_rate: int) -> IO[bytes]:
    file = open(path, "xb", buffering=_AUDIO_WRITE_BUFFER)  # noqa: SIM115
    file.write(_wav_header(sample_rate, 0))
    file.flush()  # a valid (empty) WAV from the start
    return file


def _patch_wav_sizes(file: IO[bytes], data_bytes: int) -> None:
    """Point the header at the audio written so far (call after a flush)."""
    file.seek(4)
    file.write(struct.pack("<I", _riff_size(data_bytes)))
    file.seek(40)
    file.write(struct.pack("<I", min(data_bytes, 0xFFFFFFFF)))
    file.seek(0, os.SEEK_END)


def _sync_close(file: IO[bytes]) -> None:
    os.fsync(file.fileno())
    file.close()


def _sync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, value: Mapping[str, JSON], *, sync: bool) -> None:
    """Replace ``path`` in one step, so a reader sees the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(value, file, ensure_ascii=False, indent=2, allow_nan=False)
        file.write("\n")
        file.flush()
        if sync:
            os.fsync(file.fileno())
    os.replace(tmp, path)


# --- Keeping audio out of the timeline -----------------------------------------------------


def _is_audio_event(kind: object) -> bool:
    """``response.audio.delta`` and the like carry audio; transcript deltas do not."""
    return isinstance(kind, str) and kind.lower().endswith("audio.delta")


def _clean_mapping(value: Mapping[Any, Any], *, audio: bool) -> dict[str, JSON]:
    audio = audio or _is_audio_event(value.get("type"))
    out: dict[str, JSON] = {}
    for raw_key, item in value.items():
        key = str(raw_key)
        folded = key.lower()
        if isinstance(item, str) and (
            folded in _AUDIO_KEYS or (audio and folded in _AUDIO_EVENT_KEYS)
        ):
            out[key] = {"omitted_base64_chars": len(item)}
        elif isinstance(item, Mapping):
            out[key] = _clean_mapping(item, audio=audio or folded == "audiodata")
        else:
            out[key] = _clean(item)
    return out


def _clean(value: object) -> JSON:
    """``value`` as JSON, with bytes and base64-looking strings replaced by their size."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if len(value) >= MIN_BASE64_CHARS and _BASE64.fullmatch(value):
            return {"omitted_base64_chars": len(value)}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"omitted_bytes": len(value)}
    if isinstance(value, enum.Enum):
        return _clean(value.value)
    if isinstance(value, Mapping):
        return _clean_mapping(value, audio=False)
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _clean_mapping(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, audio=False
        )
    return _clean(str(value))
