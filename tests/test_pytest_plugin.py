"""The pytest plugin, as a user's project uses it: a pytest run in a fresh folder.

The ``pytest11`` entry point may or may not be installed, so each run blocks it
(``-p no:callbridge``) and loads the module by name: the plugin is then loaded exactly once.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from callbridge.pytest_plugin import DisturbedReplayWarning, ReplayCall, StackThread
from callbridge.sim.harness import LocalStack
from tests.test_replay import IMPOSSIBLE_STOP_MS, write_barge_in, write_short

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "no:callbridge", "-p", "callbridge.pytest_plugin", "-p", "no:cacheprovider")
RUN_TIMEOUT_S = 50

CONFTEST = """
import pytest

import callbridge.sim.harness as harness

STARTS = []
_enter = harness.LocalStack.__aenter__


async def counting_enter(self):
    STARTS.append(self)
    return await _enter(self)


harness.LocalStack.__aenter__ = counting_enter


@pytest.fixture
def stack_starts():
    return STARTS
"""

AUTO_MODE_TESTS = """
from callbridge.pytest_plugin import ReplayCall
from callbridge.sim.harness import LocalStack

SEEN = []


async def test_first(replay_call: ReplayCall, callbridge_stack: LocalStack, stack_starts):
    result = await replay_call("calls/short.toml")
    assert result.passed, result.failures
    assert result.report.setup.ended_by == "caller"
    SEEN.append(callbridge_stack)


async def test_second_shares_the_stack(replay_call, callbridge_stack, stack_starts):
    result = await replay_call("calls/short.toml")
    assert result.passed, result.failures
    assert SEEN == [callbridge_stack]
    assert stack_starts == [callbridge_stack], "the stack started once"


async def test_impossible_stop_latency(replay_call):
    result = await replay_call("calls/strict-stop.toml")
    assert result.report.barge_ins[0].truncation_error_ms <= 20
    assert result.passed, result.failures
"""

STRICT_MODE_TESTS = """
import pytest


@pytest.mark.asyncio
async def test_in_a_function_loop(replay_call):
    result = await replay_call("calls/short.toml")
    assert result.passed, result.failures


@pytest.mark.asyncio(loop_scope="module")
async def test_in_a_module_loop(replay_call, stack_starts):
    result = await replay_call("calls/short.toml")
    assert result.passed, result.failures
    assert len(stack_starts) == 1
"""


BAD_SCENARIO_TEST = """
async def test_bad(replay_call):
    await replay_call("calls/bad.toml")
"""


def write_calls(folder: Path) -> None:
    write_short(folder / "calls")
    write_barge_in(folder / "calls", name="strict stop", stop_ms=IMPOSSIBLE_STOP_MS)


def test_replay_call_in_auto_mode_shares_one_stack_and_names_failures_and_problems(
    pytester: pytest.Pytester,
) -> None:
    """One run (each starts a Python and a stack): calls that pass, a call that fails an
    expectation, and a scenario that cannot be loaded."""
    write_calls(pytester.path)
    (pytester.path / "calls" / "bad.toml").write_text("[expect]\nbarge_in = 1\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_calls=AUTO_MODE_TESTS, test_bad=BAD_SCENARIO_TEST)
    result = pytester.runpytest_subprocess(
        *PLUGIN_ARGS,
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        timeout=RUN_TIMEOUT_S,
    )
    result.assert_outcomes(passed=2, failed=2)
    output = result.stdout.str()
    # The call that fails its expectation names the expectation and the barge-in.
    assert "test_impossible_stop_latency" in output
    assert "expect.barge_ins[0].max_stop_latency_ms" in output
    assert "barge-in 1: StopAudio" in output
    # The scenario that cannot be loaded errors its test, listing its problems.
    result.stdout.fnmatch_lines(["*test_bad*", "*ScenarioError*", "*expect.barge_in: unknown key*"])


def test_replay_call_in_strict_mode_from_any_loop_scope(pytester: pytest.Pytester) -> None:
    write_calls(pytester.path)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_calls=STRICT_MODE_TESTS)
    result = pytester.runpytest_subprocess(
        *PLUGIN_ARGS,
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        timeout=RUN_TIMEOUT_S,
    )
    result.assert_outcomes(passed=2)


# --- running a call the machine held up again (in this process: the plugin is installed) -------

STALL_S = 0.3
"""Longer than a frame by far: the phone falls behind real time."""


async def test_a_failed_call_is_run_again_only_while_its_phone_fell_behind_real_time(
    replay_call: ReplayCall,
    callbridge_stack: LocalStack,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The stack's loop is held up a second into the first run: that run fails with late
    frames, so it runs again (a warning says so); the next run fails with the phone on time,
    and is returned. A run on a busy machine may be held up by the machine too, so the count
    of runs is read from the warnings, never assumed."""
    strict = write_barge_in(tmp_path, name="strict stop", stop_ms=IMPOSSIBLE_STOP_MS)
    calls_before = len(callbridge_stack.acs.calls)
    stack_thread: StackThread = request.getfixturevalue("_callbridge_thread")
    loop = stack_thread.loop
    loop.call_soon_threadsafe(loop.call_later, 1.0, time.sleep, STALL_S)
    with warnings_recorded() as warned:
        result = await replay_call(strict, attempts=3)
    disturbed = reruns(warned)
    runs = len(disturbed) + 1
    assert 2 <= runs <= 3
    assert disturbed[0].startswith("strict-stop.toml: run 1 of 3 failed with its phone ")
    assert "expect.barge_ins[0].max_stop_latency_ms" in disturbed[0]
    assert len(callbridge_stack.acs.calls) == calls_before + runs
    assert not result.passed
    assert result.result.record.late_frames == 0 or runs == 3


async def test_a_call_that_passes_or_fails_on_time_runs_once(
    replay_call: ReplayCall, callbridge_stack: LocalStack, tmp_path: Path
) -> None:
    short = write_short(tmp_path)
    strict = write_barge_in(tmp_path, name="strict stop", stop_ms=IMPOSSIBLE_STOP_MS)
    for source, passes in ((short, True), (strict, False)):
        calls_before = len(callbridge_stack.acs.calls)
        with warnings_recorded() as warned:
            result = await replay_call(source, attempts=3)
        assert result.passed is passes
        late = reruns(warned)
        # Run again only for a failure with late frames (a busy machine can cause some).
        assert len(callbridge_stack.acs.calls) == calls_before + 1 + len(late)
        if not late:
            assert result.result.record.late_frames == 0 or passes


async def test_attempts_below_one_are_refused(replay_call: ReplayCall, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1, not 0"):
        await replay_call(write_short(tmp_path), attempts=0)


@contextmanager
def warnings_recorded() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning in the block, kept from pytest's summary (on Python 3.13 the Call
    Automation SDK warns of its own ``utcnow``)."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        yield warned


def reruns(warned: list[warnings.WarningMessage]) -> list[str]:
    """The messages of the ``DisturbedReplayWarning``s among ``warned``: one per run again."""
    return [str(w.message) for w in warned if issubclass(w.category, DisturbedReplayWarning)]
