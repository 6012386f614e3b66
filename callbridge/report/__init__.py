"""Call pages: one self-contained HTML page that shows a recorded call.

``callbridge report PATH`` and the ``--out`` folders of ``callbridge demo`` and ``callbridge
replay`` write one: both sides' waveforms on one time axis, the turns with their transcripts
and latencies, each barge-in with what the caller heard and what the model was told, the
pauses of false interruptions, ``StopAudio``, tool calls, keypad presses and the call's end,
and the pacing figures (and the call report's, when there is one beside the recording).
"""

from __future__ import annotations

from pathlib import Path

from callbridge.report.page import render_page
from callbridge.report.sources import (
    REPORT_JSON,
    FoundCall,
    ReportError,
    find_call,
    keep_recording,
)
from callbridge.report.view import CallView, build_view

__all__ = [
    "CALL_PAGE",
    "RECORDING",
    "REPORT_JSON",
    "CallView",
    "FoundCall",
    "ReportError",
    "build_view",
    "call_page",
    "find_call",
    "keep_recording",
    "render_page",
    "write_call_page",
]

CALL_PAGE = "call.html"
RECORDING = "recording"
"""Where an ``--out`` folder keeps the call's recording."""


def call_page(path: Path) -> str:
    """The page of the call at ``path`` (see :func:`find_call`).

    Raises:
        ReportError: no single readable recording at ``path``.
    """
    found = find_call(path)
    return render_page(build_view(found.recording, found.figures))


def write_call_page(path: Path, out: Path | None = None) -> Path:
    """Write the page of the call at ``path`` to ``out`` (default ``path/call.html``).

    Raises:
        ReportError: no single readable recording at ``path``.
        OSError: the page could not be written.
    """
    target = out if out is not None else path / CALL_PAGE
    target.write_text(call_page(path), encoding="utf-8")
    return target
