"""``callbridge replay``: run scenario files and call recordings as calls, and judge them.

Each source (a scenario file or a recording folder: see :mod:`callbridge.sim.replay_sources`
for how arguments are expanded and loaded) is one call through the real server path on a
:class:`~callbridge.sim.harness.LocalStack`: IncomingCall, answer, media socket, the bridge,
the Voice Live emulator. Its report is then checked against the scenario's ``[expect]`` table
(:mod:`callbridge.sim.expectations`), giving a :class:`~callbridge.sim.replay_results.ReplayResult`;
:mod:`callbridge.sim.replay_output` prints and writes the verdicts.

Every source is loaded and checked before the first call rings, so a bad file costs no call
time: :class:`~callbridge.sim.scenario.ScenarioError` lists the problems of every file at once.

The caller follows the scenario's script and hangs up at its ``hangup`` step; with none, two
seconds after its last step (the simulated phone's default). A call is cut off after at least
60 s, or 30 s after the script's latest ``at_s`` if that is later.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from callbridge.sim.expectations import check_expectations
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.replay_output import (
    print_json,
    print_load_problems,
    print_outcome,
    print_skipped,
    print_start,
    print_summary,
    slug,
    write_artifacts,
)
from callbridge.sim.replay_results import (
    BrokenCall,
    Failures,
    Outcome,
    ReplayError,
    ReplayResult,
)
from callbridge.sim.replay_sources import (
    PARTIAL_SUFFIX,
    RECORDING_META,
    Sources,
    find_sources,
    is_recording,
    load_found,
    load_source,
    load_sources,
)
from callbridge.sim.scenario_schema import Scenario, ScenarioError
from callbridge.sim.script import At

__all__ = [
    "CALL_SLACK_S",
    "EXIT_FAILED",
    "EXIT_LOAD_ERROR",
    "EXIT_PASSED",
    "MIN_CALL_S",
    "PARTIAL_SUFFIX",
    "RECORDING_META",
    "Failures",
    "ReplayError",
    "ReplayResult",
    "Sources",
    "find_sources",
    "is_recording",
    "load_source",
    "load_sources",
    "replay",
    "replay_all",
    "run_replay",
    "slug",
]

MIN_CALL_S: Final = 60.0
"""The shortest time a replayed call may run before the phone gives up on it."""
CALL_SLACK_S: Final = 30.0
"""How long a call may run past its script's latest ``at_s``, and how long past its limit
the replay waits for ACS to report the call ended."""

EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_LOAD_ERROR: Final = 2


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
    profile = scenario.profile
    if stack.recordings_dir is not None:
        profile = replace(profile, record=True)
    return await stack.call(
        scenario.script,
        profile=profile,
        turns=scenario.turns,
        caller_transcripts=scenario.caller_transcripts,
        speed=scenario.stream_speed,
        response_delay_ms=scenario.response_delay_ms,
        faults=scenario.faults.voice_live,
        media_faults=scenario.faults.media,
        rest_faults=scenario.faults.rest,
        echo=scenario.echo,
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
    outcomes = await replay_loaded(load_sources(paths), concurrency=concurrency)
    results: list[ReplayResult] = []
    for outcome in outcomes:
        if isinstance(outcome, BrokenCall):
            raise outcome.error
        results.append(outcome)
    return results


async def replay_loaded(
    loaded: Sequence[tuple[Path, Scenario]],
    *,
    concurrency: int,
    on_outcome: Callable[[Outcome], None] | None = None,
    recordings_dir: Path | None = None,
) -> list[Outcome]:
    """Replay loaded sources on one stack; a call that does not complete is an outcome too,
    so the other sources still run. With ``recordings_dir``, the bridge records every call
    there."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    limit = asyncio.Semaphore(concurrency)

    async def one(stack: LocalStack, source: Path, scenario: Scenario) -> Outcome:
        async with limit:
            try:
                outcome: Outcome = await replay(stack, scenario, source=source)
            except ReplayError as exc:
                outcome = BrokenCall(source, scenario, exc)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    async with LocalStack(recordings_dir=recordings_dir) as stack:
        calls: list[Awaitable[Outcome]] = [
            one(stack, source, scenario) for source, scenario in loaded
        ]
        return list(await asyncio.gather(*calls))


def run_replay(
    paths: Sequence[Path], *, out_dir: Path | None, json_output: bool, concurrency: int
) -> int:
    """``callbridge replay PATH...``: replay every source, print the verdicts; the exit code.

    0 when every call met its expectations, 1 when any did not (or did not complete), 2 when a
    source cannot be loaded (then no call is made).
    """
    out = sys.stdout
    sources = find_sources(paths)
    print_skipped(sources.skipped)
    try:
        loaded = load_found(paths, sources)
    except ScenarioError as exc:
        print_load_problems(exc.problems)
        return EXIT_LOAD_ERROR

    if not json_output:
        print_start(len(loaded), out)

    def show(outcome: Outcome) -> None:
        if not json_output:
            print_outcome(outcome, out)

    if out_dir is None:
        outcomes = asyncio.run(replay_loaded(loaded, concurrency=concurrency, on_outcome=show))
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir) as recordings:
            outcomes = asyncio.run(
                replay_loaded(
                    loaded,
                    concurrency=concurrency,
                    on_outcome=show,
                    recordings_dir=Path(recordings),
                )
            )
            write_artifacts(out_dir, outcomes, Path(recordings))
    if json_output:
        print_json(outcomes, out)
    else:
        print_summary(outcomes, out, out_dir)
    failed = any(isinstance(o, BrokenCall) or not o.passed for o in outcomes)
    return EXIT_FAILED if failed else EXIT_PASSED
