"""The pytest plugin, as a user's project uses it: a pytest run in a fresh folder.

The ``pytest11`` entry point may or may not be installed, so each run blocks it
(``-p no:callbridge``) and loads the module by name: the plugin is then loaded exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
