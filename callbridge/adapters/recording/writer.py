"""``CallRecorder``: writes one call's recording folder as the call goes.

See ``callbridge.adapters.recording`` for the format; every method runs on the event loop and
returns quickly, and a full or failing disk stops the recording, never the call.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from callbridge import __version__
from callbridge.adapters.recording.files import (
    free_name,
    make_folder,
    open_wav,
    patch_wav_sizes,
    sync_close,
    sync_dir,
    utc,
    write_json,
)
from callbridge.adapters.recording.scrub import clean, clean_mapping, is_audio_event
from callbridge.adapters.recording.timeline import (
    AGENT_LATE_S,
    AGENT_WAV,
    CALLER_SYNC_TOLERANCE_S,
    CALLER_WAV,
    FLUSH_INTERVAL_S,
    FORMAT,
    FORMAT_VERSION,
    JSON,
    META,
    RESERVED_KEYS,
    SAMPLE_WIDTH,
    TIMELINE,
    Side,
    Speaker,
)

log = structlog.get_logger(__name__)


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
        self._dir, self._final = make_folder(Path(root), started, call_connection_id)
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
            "started_at": utc(started),
            "monotonic_start": self._t0,
            "files": {"caller": CALLER_WAV, "agent": AGENT_WAV, "timeline": TIMELINE},
            "extra": clean(dict(extra or {})),
            "complete": False,
        }
        write_json(self._dir / META, self._meta, sync=False)
        self._caller = open_wav(self._dir / CALLER_WAV, sample_rate)
        self._agent = open_wav(self._dir / AGENT_WAV, sample_rate)
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
        if reserved := RESERVED_KEYS.intersection(fields):
            raise ValueError(f"reserved timeline field names: {sorted(reserved)}")
        if self._stopped:
            return
        cleaned = clean_mapping(fields, audio=is_audio_event(kind))
        self._record(side, kind, cleaned)

    def dtmf(self, digit: str) -> None:
        """A keypad digit from ACS (recorded as pressed: it may be part of a PIN)."""
        self._record("acs", "dtmf", {"digit": str(digit)})

    def transcript(self, speaker: Speaker, item_id: str, text: str) -> None:
        """A finished transcript of the caller's or the agent's turn."""
        self._record(
            "voice_live",
            "transcript",
            {"speaker": speaker, "item_id": item_id, "text": clean(text)},
        )

    def tool_call(self, *, name: str, call_id: str, arguments: str) -> None:
        """The model called a tool (``response.function_call_arguments.done``)."""
        self._record(
            "voice_live",
            "tool_call",
            {"name": name, "call_id": call_id, "arguments": clean(arguments)},
        )

    def tool_result(self, *, name: str, call_id: str, output: str) -> None:
        """The bridge returned a tool's output to the model (``function_call_output``)."""
        self._record(
            "bridge",
            "tool_result",
            {"name": name, "call_id": call_id, "output": clean(output)},
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
            "heard_ms": clean(heard_ms),
            "audio_end_ms": audio_end_ms,
        }
        if received_ms is not None:
            fields["received_ms"] = clean(received_ms)
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
                patch_wav_sizes(file, size)
                sync_close(file)
            self._timeline.flush()
            sync_close(self._timeline)
            self._meta.update(
                {
                    "ended_at": utc(datetime.now(UTC)),
                    "duration_s": round(now - self._t0, 6),
                    "caller_bytes": self._caller_bytes,
                    "agent_bytes": self._agent_bytes,
                    "caller_ms": round(self._caller_bytes / self._bytes_per_s * 1000, 3),
                    "agent_ms": round(self._agent_bytes / self._bytes_per_s * 1000, 3),
                    "counts": dict(sorted(self._counts.items())),
                    "complete": True,
                }
            )
            write_json(self._dir / META, self._meta, sync=True)
            sync_dir(self._dir)
            final = free_name(self._final)
            os.rename(self._dir, final)
            sync_dir(final.parent)
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
            patch_wav_sizes(self._caller, self._caller_bytes)
            self._agent.flush()
            patch_wav_sizes(self._agent, self._agent_bytes)
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
