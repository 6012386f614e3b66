"""pytest fixtures that replay a scenario file or a call recording in one line.

Installed with callbridge and loaded by pytest on its own (the ``pytest11`` entry point
``callbridge``)::

    async def test_barge_in(replay_call):
        result = await replay_call("tests/calls/barge_in.toml")
        assert result.passed, result.failures
        assert result.report.barge_ins[0].truncation_error_ms <= 20

``replay_call(source)`` loads the source (a ``*.toml`` scenario file or a recording folder; a
relative path is taken from pytest's rootdir), runs its call and returns a
:class:`~callbridge.sim.replay.ReplayResult`: ``passed``, ``failures`` (each naming the
expectation, e.g. ``expect.barge_ins[0].truncation_tolerance_ms``, and the barge-in), the
``report`` and the raw records (``result.result.record``, ``.session``, ``.acs``). A source that
cannot be loaded raises :class:`~callbridge.sim.scenario.ScenarioError`, listing its problems.

``replay_call(source, attempts=3)`` runs a call that failed again, up to ``attempts`` runs in
all, but only while its phone fell behind real time (``result.result.record.late_frames``: the
machine held the test process up, so the call's timing was the machine's); each run again is a
:class:`DisturbedReplayWarning` in pytest's summary. A failure with the phone on time is
returned at once: it is callbridge's. The result is the last run's.

Fixtures:

* ``callbridge_stack`` (session scope): the :class:`~callbridge.sim.harness.LocalStack` that
  every test's calls go through: callbridge, the ACS stand-in and the Voice Live emulator on
  loopback, started at its first use and stopped at the end of the test session. Each call is
  answered by its scenario's own profile and scripted with its own turns, so tests share it.
* ``replay_call`` (function scope): the coroutine function above.

Event loops: the stack runs in an event loop of its own, on a background thread, and
``replay_call`` hands each call to it and awaits the result. So it works from a test in any
event loop: pytest-asyncio in ``auto`` or ``strict`` mode, with any loop scope, needs no
``loop_scope`` setting (in strict mode, mark the test ``@pytest.mark.asyncio`` as usual). The
calls also keep their real-time timing whatever the test's own loop is doing. The flip side:
``callbridge_stack``'s coroutines (``call``, ``ring``...) belong to that loop, so do not
``await`` them from a test; use ``replay_call``, and read the stack's records.

pytest loads this module in every session of a project that has callbridge installed, so it
imports callbridge's simulator (and the Azure SDKs behind it) only when a fixture is used.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import pytest

if TYPE_CHECKING:
    from callbridge.sim.harness import LocalStack
    from callbridge.sim.replay import ReplayResult

_T = TypeVar("_T")

START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 30.0


class ReplayCall(Protocol):
    """``replay_call``'s type, for annotating tests."""

    async def __call__(self, source: str | Path, /, *, attempts: int = 1) -> ReplayResult: ...


class DisturbedReplayWarning(UserWarning):
    """A replayed call failed while its phone fell behind real time, and is run again."""


class StackThread:
    """A ``LocalStack`` running in its own event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="callbridge-stack", daemon=True)
        self._stack: LocalStack | None = None

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            raise RuntimeError("the callbridge stack is not running")
        return self._stack

    def start(self) -> LocalStack:
        self._thread.start()
        self._stack = self.submit(self._open()).result(timeout=START_TIMEOUT_S)
        return self._stack

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> Future[_T]:
        """Run ``coroutine`` in the stack's loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` in the stack's loop and await it from the caller's loop."""
        return await asyncio.wrap_future(self.submit(coroutine))

    def stop(self) -> None:
        if self._thread.is_alive():
            self.submit(self._close()).result(timeout=STOP_TIMEOUT_S)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @staticmethod
    async def _open() -> LocalStack:
        from callbridge.sim.harness import LocalStack  # noqa: PLC0415  # see the docstring

        stack = LocalStack()
        await stack.__aenter__()
        return stack

    async def _close(self) -> None:
        # Calls of tests that were cut short (a timeout) are still running: end them first.
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


@pytest.fixture(scope="session")
def _callbridge_thread() -> Iterator[StackThread]:
    runner = StackThread()
    try:
        runner.start()
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="session")
def callbridge_stack(_callbridge_thread: StackThread) -> LocalStack:
    """The test session's ``LocalStack``, started once (see the module docstring)."""
    return _callbridge_thread.stack


@pytest.fixture
def replay_call(
    request: pytest.FixtureRequest,
    callbridge_stack: LocalStack,
    _callbridge_thread: StackThread,
) -> ReplayCall:
    """``await replay_call(source)``: replay a scenario file or recording, a ReplayResult."""
    from callbridge.sim.replay import load_source, replay  # noqa: PLC0415  # see the docstring

    root = request.config.rootpath

    async def replay_source(source: str | Path, *, attempts: int = 1) -> ReplayResult:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        path = Path(source)
        if not path.is_absolute():
            path = root / path
        for attempt in range(1, attempts + 1):
            scenario = load_source(path)
            result = await _callbridge_thread.run(replay(callbridge_stack, scenario, source=path))
            late_frames = result.result.record.late_frames
            if result.passed or not late_frames or attempt == attempts:
                break
            warnings.warn(
                f"{path.name}: run {attempt} of {attempts} failed with its phone {late_frames}"
                f" frames behind real time (the machine held the test up); running it again."
                f" Its failures: {[str(failure) for failure in result.failures]}",
                DisturbedReplayWarning,
                stacklevel=2,
            )
        return result

    return replay_source
