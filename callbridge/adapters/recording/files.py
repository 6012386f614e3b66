"""The recording's files: its folder, streamed WAV files, durable JSON and renames.

A WAV file is written as its header followed by the audio as it arrives; the header's sizes are
patched at each flush, so an abandoned file is a playable WAV up to its last flush.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO

from callbridge.adapters.recording.timeline import (
    JSON,
    PARTIAL_SUFFIX,
    SAMPLE_WIDTH,
    WAV_HEADER_BYTES,
)

_AUDIO_WRITE_BUFFER = 1 << 16
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_folder(root: Path, started: datetime, call_id: str) -> tuple[Path, Path]:
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


def free_name(final: Path) -> Path:
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


def open_wav(path: Path, sample_rate: int) -> IO[bytes]:
    file = open(path, "xb", buffering=_AUDIO_WRITE_BUFFER)  # noqa: SIM115
    file.write(_wav_header(sample_rate, 0))
    file.flush()  # a valid (empty) WAV from the start
    return file


def patch_wav_sizes(file: IO[bytes], data_bytes: int) -> None:
    """Point the header at the audio written so far (call after a flush)."""
    file.seek(4)
    file.write(struct.pack("<I", _riff_size(data_bytes)))
    file.seek(40)
    file.write(struct.pack("<I", min(data_bytes, 0xFFFFFFFF)))
    file.seek(0, os.SEEK_END)


def sync_close(file: IO[bytes]) -> None:
    os.fsync(file.fileno())
    file.close()


def sync_dir(path: Path) -> None:
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


def write_json(path: Path, value: Mapping[str, JSON], *, sync: bool) -> None:
    """Replace ``path`` in one step, so a reader sees the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(value, file, ensure_ascii=False, indent=2, allow_nan=False)
        file.write("\n")
        file.flush()
        if sync:
            os.fsync(file.fileno())
    os.replace(tmp, path)


def read_wav_data(path: Path) -> bytes:
    """The PCM after the header, whole samples only (the header's sizes may lag a crash)."""
    data = path.read_bytes()
    if len(data) < WAV_HEADER_BYTES or data[:4] != b"RIFF" or data[36:40] != b"data":
        raise ValueError(f"{path}: not a recording WAV file")
    pcm = data[WAV_HEADER_BYTES:]
    return pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]
