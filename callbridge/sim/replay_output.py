"""What ``callbridge replay`` prints and writes: verdicts, reports, the summary, artifacts.

Each call's verdict (``PASS``, ``FAIL`` or ``ERROR``) with its report and failed
expectations as it finishes, then a summary; or, with ``--json``, one JSON document of every
source. With ``--out``, each source's stereo recording (``call.wav``), ``report.json``, the bridge's
recording of the call (``recording/``) and its page (``call.html``) go to a folder named after
its scenario. Problems loading the sources and skipped arguments go
to standard error.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from callbridge.report import CALL_PAGE, RECORDING, keep_recording, write_call_page
from callbridge.sim.replay_results import BrokenCall, Outcome, ReplayResult
from callbridge.sim.report import render_text


def print_skipped(notes: Sequence[str]) -> None:
    """The arguments (or folder entries) left out, each with why."""
    for note in notes:
        print(f"callbridge replay: skipped {note}", file=sys.stderr)


def print_load_problems(problems: Sequence[str]) -> None:
    """Why the sources cannot be replayed (then no call is made)."""
    count = len(problems)
    print(
        f"callbridge replay: {count} problem{'s' if count != 1 else ''}, no call made:",
        file=sys.stderr,
    )
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def print_start(count: int, out: TextIO) -> None:
    """The line before the first call rings."""
    calls = f"{count} call{'s' if count != 1 else ''}"
    print(f"Replaying {calls} through callbridge on loopback (in real time)...\n", file=out)


def print_outcome(outcome: Outcome, out: TextIO) -> None:
    """One call's verdict, its report and the expectations it failed."""
    if isinstance(outcome, BrokenCall):
        print(f"ERROR  {outcome.scenario.name}  ({outcome.source})", file=out)
        print(f"  {outcome.message}\n", file=out, flush=True)
        return
    verdict = "PASS" if outcome.passed else "FAIL"
    print(f"{verdict}  {outcome.scenario.name}  ({outcome.source})", file=out)
    print(render_text(outcome.report), file=out)
    for failure in outcome.failures:
        print(f"  FAILED {failure}", file=out)
    print(file=out, flush=True)


def print_summary(outcomes: Sequence[Outcome], out: TextIO, out_dir: Path | None) -> None:
    """How many passed, which failed and why, and where the artifacts went."""
    passed = sum(1 for o in outcomes if isinstance(o, ReplayResult) and o.passed)
    failed = len(outcomes) - passed
    noun = "scenario" if len(outcomes) == 1 else "scenarios"
    print(f"{len(outcomes)} {noun}: {passed} passed, {failed} failed", file=out)
    for outcome in outcomes:
        if isinstance(outcome, BrokenCall):
            print(f"  ERROR {outcome.scenario.name}: {outcome.message}", file=out)
        elif not outcome.passed:
            names = ", ".join(failure.expectation for failure in outcome.failures)
            print(f"  FAIL {outcome.scenario.name}: {names}", file=out)
    if out_dir is not None:
        print(
            f"Wrote {out_dir}/<scenario>/call.wav (left: caller, right: what the caller heard),"
            f" report.json, {CALL_PAGE} and the bridge's {RECORDING}",
            file=out,
        )


def print_json(outcomes: Sequence[Outcome], out: TextIO) -> None:
    """``--json``: every source's verdict, failures and report, as one line."""
    json.dump({"scenarios": [outcome.to_json() for outcome in outcomes]}, out)
    out.write("\n")


def write_artifacts(out_dir: Path, outcomes: Sequence[Outcome], recordings: Path) -> None:
    """``OUT/<scenario>/report.json`` per source; for a completed call, ``call.wav``, the
    bridge's recording of it (moved from ``recordings``) and its page, ``call.html``."""
    for folder, outcome in zip(_out_folders(out_dir, outcomes), outcomes, strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
        if isinstance(outcome, ReplayResult):
            outcome.result.record.write_stereo_wav(folder / "call.wav")
            call_id = outcome.result.record.call_connection_id
            if keep_recording(recordings, call_id, folder / RECORDING) is not None:
                write_call_page(folder)


def slug(name: str) -> str:
    """A folder name for a scenario: lower case letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].rstrip("-")
    return text or "scenario"


def _out_folders(out_dir: Path, outcomes: Sequence[Outcome]) -> list[Path]:
    """``OUT/<slug of the scenario's name>``, numbered when two scenarios share a name."""
    folders: list[Path] = []
    used: set[str] = set()
    for outcome in outcomes:
        base = name = slug(outcome.scenario.name)
        number = 1
        while name in used:
            number += 1
            name = f"{base}-{number}"
        used.add(name)
        folders.append(out_dir / name)
    return folders
