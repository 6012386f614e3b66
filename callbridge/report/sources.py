"""Finding the call behind a path: a recording folder, or an artifacts folder holding one.

``callbridge demo --out`` and ``callbridge replay --out`` leave, per call, ``report.json``
(the call report) beside the bridge's recording in ``recording/``; a recordings folder
(``CALLBRIDGE_RECORDINGS_DIR``) holds one recording per call.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.adapters.recording import META, Recording, read_recording

REPORT_JSON = "report.json"


class ReportError(Exception):
    """The path holds no single readable call."""


@dataclass(frozen=True, slots=True)
class FoundCall:
    recording: Recording
    figures: dict[str, Any] | None
    """The call report (``report.json``'s call), when the folder has one."""


def find_call(path: Path) -> FoundCall:
    """The recording at ``path`` (or the one recording inside it) and its report, if any.

    Raises:
        ReportError: no recording there, several, or one that cannot be read.
    """
    if not path.is_dir():
        raise ReportError(f"{path}: not a folder (pass a recording or a --out folder)")
    if (path / META).is_file():
        folder = path
    else:
        inside = sorted(p.parent for p in path.glob(f"*/{META}"))
        if not inside:
            raise ReportError(f"{path}: no recording here (no {META} in it or its folders)")
        if len(inside) > 1:
            names = ", ".join(p.name for p in inside)
            raise ReportError(f"{path}: {len(inside)} recordings ({names}): pass one of them")
        folder = inside[0]
    try:
        recording = read_recording(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ReportError(f"{folder}: cannot read the recording ({exc})") from exc
    return FoundCall(recording, _figures(folder, path))


def _figures(*folders: Path) -> dict[str, Any] | None:
    """The call report beside the recording: ``{"calls": [report]}`` (demo) or
    ``{"report": report, ...}`` (replay)."""
    for folder in dict.fromkeys(folders):
        file = folder / REPORT_JSON
        if not file.is_file():
            continue
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{file}: not readable JSON ({exc})") from exc
        if isinstance(document, dict):
            calls = document.get("calls")
            report = calls[0] if isinstance(calls, list) and calls else document.get("report")
            if isinstance(report, dict):
                return report
    return None


def find_recording(recordings: Path, call_connection_id: str) -> Path | None:
    """The folder in ``recordings`` that holds the call's recording, if it left one."""
    for meta in recordings.glob(f"*/{META}"):
        try:
            found = json.loads(meta.read_text(encoding="utf-8")).get("call_connection_id")
        except (OSError, ValueError):
            continue
        if found == call_connection_id:
            return meta.parent
    return None


def keep_recording(recordings: Path, call_connection_id: str, target: Path) -> Path | None:
    """Move the recording of ``call_connection_id`` out of ``recordings`` to ``target`` (an
    ``--out`` folder's ``recording/``, replaced if a former run left one); None if the call
    left no recording."""
    found = find_recording(recordings, call_connection_id)
    if found is None:
        return None
    if (target / META).is_file():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return found.rename(target)
