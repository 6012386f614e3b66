"""``callbridge replay``: run scenario files and call recordings as calls, and judge them.

A *source* is a scenario file (``*.toml``, see :mod:`callbridge.sim.scenario`) or a
recording folder (one holding ``meta.json``, see :mod:`callbridge.adapters.recording`), which
becomes a scenario whose expectations are what happened on the recorded call. Each source is
one call through the real server path on a :class:`~callbridge.sim.harness.LocalStack`:
IncomingCall, answer, media socket, the bridge, the Voice Live emulator. Its report is then
checked against the scenario's ``[expect]`` table.

Arguments are expanded so that ``callbridge replay tests/calls/*`` works as a shell glob does:

* a ``*.toml`` file is a scenario; a folder holding ``meta.json`` is a recording;
* any other folder stands for the scenario files (``*.toml``) and the recordings directly in
  it, in name order (not recursively; recordings still being written, ``*.partial``, are
  left out);
* anything else (the WAV and transcript files beside the scenarios, a folder of audio) is
  skipped, and said so. A path that does not exist, or arguments with nothing at all to
  replay, are errors.

Every source is loaded and checked before the first call rings, so a bad file costs no call
time: :class:`~callbridge.sim.scenario.ScenarioError` lists the problems of every file at once.

The caller follows the scenario's script and hangs up at its ``hangup`` step; with none, two
seconds after its last step (the simulated phone's default). A call is cut off after at least
60 s, or 30 s after the script's latest ``at_s`` if that is later.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from callbridge.core.profiles import Routing
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.report import CallReport, render_text
from callbridge.sim.scenario import (
    Failure,
    Scenario,
    ScenarioError,
    check_expectations,
    load_scenario,
)
from callbridge.sim.script import At
from callbridge.tools import check_tools

RECORDING_META: Final = "meta.json"
"""The file that makes a folder a call recording."""
PARTIAL_SUFFIX: Final = ".partial"
"""A recording folder's suffix until the recorder closes it."""

MIN_CALL_S: Final = 60.0
"""The shortest time a replayed call may run before the phone gives up on it."""
CALL_SLACK_S: Final = 30.0
"""How long a call may run past its script's latest ``at_s``, and how long past its limit
the replay waits for ACS to report the call ended."""

EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_LOAD_ERROR: Final = 2


# --- Results ---------------------------------------------------------------------------------


class Failures(list[Failure]):
    """A call's failed expectations; shown one per line, so that ``assert result.passed,
    result.failures`` reads as the expectations that failed."""

    def __repr__(self) -> str:
        return "\n".join(str(failure) for failure in self) if self else "no failures"


@dataclass(frozen=True, repr=False)
class ReplayResult:
    """One replayed source: the scenario, the finished call and what it failed."""

    source: Path
    """The scenario file or recording folder."""
    scenario: Scenario
    result: CallResult
    failures: list[Failure]
    """Every expectation the call did not meet, in the order of the ``[expect]`` keys."""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def report(self) -> CallReport:
        """The call's report (``result.report``)."""
        return self.result.report

    def __repr__(self) -> str:
        # The scenario holds its audio: a default repr would print all of it.
        return (
            f"ReplayResult(source={str(self.source)!r}, scenario={self.scenario.name!r},"
            f" passed={self.passed}, failures={[str(f) for f in self.failures]!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """What ``callbridge replay --json`` prints for this source, and ``report.json`` holds."""
        return {
            "name": self.scenario.name,
            "source": str(self.source),
            "passed": self.passed,
            "failures": [
                {"expectation": failure.expectation, "message": failure.message}
                for failure in self.failures
            ],
            "error": None,
            "report": self.report.to_json(),
        }


@dataclass(frozen=True)
class _Broken:
    """A source whose call did not complete, so there is no report to judge."""

    source: Path
    scenario: Scenario
    error: ReplayError

    @property
    def message(self) -> str:
        return self.error.reason

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "source": str(self.source),
            "passed": False,
            "failures": [],
            "error": self.message,
            "report": None,
        }


_Outcome = ReplayResult | _Broken


class ReplayError(RuntimeError):
    """A replayed call did not complete (the bridge never took the call, or it never ended)."""

    def __init__(self, source: Path, error: Exception) -> None:
        self.source = source
        self.reason = f"the call did not complete: {type(error).__name__}: {error}"
        super().__init__(f"{source}: {self.reason}")


# --- Finding and loading sources -------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """What a list of arguments stands for."""

    found: list[Path] = field(default_factory=list)
    """Scenario files and recording folders, in argument order (folders expanded)."""
    skipped: list[str] = field(default_factory=list)
    """Arguments (or folder entries) that are neither, each with why it was left out."""
    problems: list[str] = field(default_factory=list)
    """Arguments that do not exist."""


def is_recording(path: Path) -> bool:
    return path.is_dir() and (path / RECORDING_META).is_file()


def find_sources(paths: Sequence[Path]) -> Sources:
    """Expand the arguments of ``callbridge replay`` (see the module docstring)."""
    sources = Sources()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            sources.found.append(path)

    for path in paths:
        if not path.exists():
            sources.problems.append(f"{path}: no such file or folder")
        elif path.is_file():
            if path.suffix == ".toml":
                add(path)
            else:
                sources.skipped.append(f"{path}: not a scenario file (*.toml)")
        elif is_recording(path):
            add(path)
        else:
            entries = _folder_sources(path, sources.skipped)
            if not entries:
                sources.skipped.append(
                    f"{path}: no scenario files (*.toml) or recordings (folders with"
                    f" {RECORDING_META}) in it"
                )
            for entry in entries:
                add(entry)
    return sources


def _folder_sources(folder: Path, skipped: list[str]) -> list[Path]:
    entries: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix == ".toml":
            entries.append(entry)
        elif is_recording(entry):
            if entry.name.endswith(PARTIAL_SUFFIX):
                skipped.append(f"{entry}: a recording still being written (or abandoned)")
            else:
                entries.append(entry)
    return entries


def load_source(path: Path) -> Scenario:
    """The scenario a source stands for: a ``*.toml`` scenario file, or a recording folder.

    Raises:
        ScenarioError: the source cannot be replayed; the message says why, naming the file
            and field. A folder that is not a recording is an error here: pass its files, or
            give the folder to :func:`replay_all` (or ``callbridge replay``), which expand it.
    """
    if is_recording(path):
        from callbridge.sim.recorded import scenario_from_recording  # noqa: PLC0415

        scenario = scenario_from_recording(path)
    elif path.is_dir():
        raise ScenarioError(
            [
                f"{path}: a folder, not a recording (it has no {RECORDING_META}): pass its"
                f" scenario files ({path}/*.toml), or replay the folder with callbridge replay"
                " or replay_all, which take every scenario file and recording in it"
            ]
        )
    else:
        scenario = load_scenario(path)
    problems = check_tools(Routing.single(scenario.profile))
    if problems:
        raise ScenarioError([f"{path}: agent.tools_module: {problem}" for problem in problems])
    return scenario


def load_sources(paths: Sequence[Path]) -> list[tuple[Path, Scenario]]:
    """Expand ``paths`` and load every source, before any call.

    Raises:
        ScenarioError: listing the problems of every source that cannot be replayed, every
            argument that does not exist, or that there is nothing to replay.
    """
    return _load(paths, find_sources(paths))


def _load(paths: Sequence[Path], sources: Sources) -> list[tuple[Path, Scenario]]:
    problems = list(sources.problems)
    loaded: list[tuple[Path, Scenario]] = []
    for path in sources.found:
        try:
            loaded.append((path, load_source(path)))
        except ScenarioError as exc:
            problems += exc.problems
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if not problems and not loaded:
        problems.append(
            "nothing to replay: no scenario files (*.toml) or recording folders among "
            + " ".join(str(path) for path in paths)
        )
    if problems:
        raise ScenarioError(problems)
    return loaded


# --- Running calls ---------------------------------------------------------------------------


async def replay(stack: LocalStack, scenario: Scenario, *, source: Path) -> ReplayResult:
    """Run ``scenario``'s call on a running ``stack`` and check its expectations.

    The call is answered by the scenario's own agent profile and scripted with its own turns,
    transcripts and pace, so calls of different scenarios can share one stack, concurrently.

    Raises:
        ReplayError: the call did not complete (it had no media, or never ended).
    """
    try:
        result = await _place_call(stack, scenario)
    except (RuntimeError, TimeoutError) as exc:
        raise ReplayError(source, exc) from exc
    failures = Failures(check_expectations(scenario.expectations, result.report))
    return ReplayResult(source=source, scenario=scenario, result=result, failures=failures)


async def _place_call(stack: LocalStack, scenario: Scenario) -> CallResult:
    """Ring ``stack`` with the scenario's call, scripted and paced, and wait for its result."""
    max_duration_s = _max_duration_s(scenario)
    return await stack.call(
        scenario.script,
        profile=scenario.profile,
        turns=scenario.turns,
        caller_transcripts=scenario.caller_transcripts,
        speed=scenario.stream_speed,
        response_delay_ms=scenario.response_delay_ms,
        max_duration_s=max_duration_s,
        timeout_s=max_duration_s + CALL_SLACK_S,
    )


def _max_duration_s(scenario: Scenario) -> float:
    latest = max((step.when.s for step in scenario.script if isinstance(step.when, At)), default=0)
    return max(MIN_CALL_S, latest + CALL_SLACK_S)


async def replay_all(paths: Sequence[Path], *, concurrency: int = 1) -> list[ReplayResult]:
    """Replay every source ``paths`` stand for on one ``LocalStack``; results in source order.

    Every source is loaded first, so a bad file fails before any call. ``concurrency`` calls
    run at once (each still in real time).

    Raises:
        ScenarioError: a source cannot be replayed (see :func:`load_sources`).
        ReplayError: a call did not complete.
    """
    outcomes = await _replay_loaded(load_sources(paths), concurrency=concurrency)
    results: list[ReplayResult] = []
    for outcome in outcomes:
        if isinstance(outcome, _Broken):
            raise outcome.error
        results.append(outcome)
    return results


async def _replay_loaded(
    loaded: Sequence[tuple[Path, Scenario]],
    *,
    concurrency: int,
    on_outcome: Callable[[_Outcome], None] | None = None,
) -> list[_Outcome]:
    """Replay loaded sources on one stack; a call that does not complete is an outcome too,
    so the other sources still run."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    limit = asyncio.Semaphore(concurrency)

    async def one(stack: LocalStack, source: Path, scenario: Scenario) -> _Outcome:
        async with limit:
            try:
                outcome: _Outcome = await replay(stack, scenario, source=source)
            except ReplayError as exc:
                outcome = _Broken(source, scenario, exc)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    async with LocalStack() as stack:
        calls: list[Awaitable[_Outcome]] = [
            one(stack, source, scenario) for source, scenario in loaded
        ]
        return list(await asyncio.gather(*calls))


# --- The command -----------------------------------------------------------------------------


def run_replay(
    paths: Sequence[Path], *, out_dir: Path | None, json_output: bool, concurrency: int
) -> int:
    """``callbridge replay PATH...``: replay every source, print the verdicts; the exit code.

    0 when every call met its expectations, 1 when any did not (or did not complete), 2 when a
    source cannot be loaded (then no call is made).
    """
    out = sys.stdout
    sources = find_sources(paths)
    for note in sources.skipped:
        print(f"callbridge replay: skipped {note}", file=sys.stderr)
    try:
        loaded = _load(paths, sources)
    except ScenarioError as exc:
        count = len(exc.problems)
        print(
            f"callbridge replay: {count} problem{'s' if count != 1 else ''}, no call made:",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_LOAD_ERROR

    if not json_output:
        calls = f"{len(loaded)} call{'s' if len(loaded) != 1 else ''}"
        print(f"Replaying {calls} through callbridge on loopback (in real time)...\n", file=out)

    def show(outcome: _Outcome) -> None:
        if not json_output:
            _print_outcome(outcome, out)

    outcomes = asyncio.run(_replay_loaded(loaded, concurrency=concurrency, on_outcome=show))
    if out_dir is not None:
        for folder, outcome in zip(_out_folders(out_dir, outcomes), outcomes, strict=True):
            _write_artifacts(folder, outcome)
    if json_output:
        json.dump({"scenarios": [outcome.to_json() for outcome in outcomes]}, out)
        out.write("\n")
    else:
        _print_summary(outcomes, out, out_dir)
    failed = any(isinstance(o, _Broken) or not o.passed for o in outcomes)
    return EXIT_FAILED if failed else EXIT_PASSED


def _print_outcome(outcome: _Outcome, out: TextIO) -> None:
    if isinstance(outcome, _Broken):
        print(f"ERROR  {outcome.scenario.name}  ({outcome.source})", file=out)
        print(f"  {outcome.message}\n", file=out, flush=True)
        return
    verdict = "PASS" if outcome.passed else "FAIL"
    print(f"{verdict}  {outcome.scenario.name}  ({outcome.source})", file=out)
    print(render_text(outcome.report), file=out)
    for failure in outcome.failures:
        print(f"  FAILED {failure}", file=out)
    print(file=out, flush=True)


def _print_summary(outcomes: Sequence[_Outcome], out: TextIO, out_dir: Path | None) -> None:
    passed = sum(1 for o in outcomes if isinstance(o, ReplayResult) and o.passed)
    failed = len(outcomes) - passed
    noun = "scenario" if len(outcomes) == 1 else "scenarios"
    print(f"{len(outcomes)} {noun}: {passed} passed, {failed} failed", file=out)
    for outcome in outcomes:
        if isinstance(outcome, _Broken):
            print(f"  ERROR {outcome.scenario.name}: {outcome.message}", file=out)
        elif not outcome.passed:
            names = ", ".join(failure.expectation for failure in outcome.failures)
            print(f"  FAIL {outcome.scenario.name}: {names}", file=out)
    if out_dir is not None:
        print(
            f"Wrote {out_dir}/<scenario>/call.wav (left: caller, right: what the caller heard)"
            " and report.json",
            file=out,
        )


def slug(name: str) -> str:
    """A folder name for a scenario: lower case letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].rstrip("-")
    return text or "scenario"


def _out_folders(out_dir: Path, outcomes: Sequence[_Outcome]) -> list[Path]:
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


def _write_artifacts(folder: Path, outcome: _Outcome) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(outcome, ReplayResult):
        outcome.result.record.write_stereo_wav(folder / "call.wav")
    (folder / "report.json").write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
