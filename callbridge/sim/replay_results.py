"""What replaying a source gives: a judged call, or a call that did not complete.

:class:`ReplayResult` holds a replayed source's scenario, its finished call and the
expectations it failed; :class:`BrokenCall` a source whose call did not complete
(:class:`ReplayError`), so there is no report to judge. Both are what ``callbridge replay
--json`` prints for a source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.sim.expectations import Failure
from callbridge.sim.harness import CallResult
from callbridge.sim.report import CallReport
from callbridge.sim.scenario_schema import Scenario


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
class BrokenCall:
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


Outcome = ReplayResult | BrokenCall
"""What replaying one source gave."""


class ReplayError(RuntimeError):
    """A replayed call did not complete (the bridge never took the call, or it never ended)."""

    def __init__(self, source: Path, error: Exception) -> None:
        self.source = source
        self.reason = f"the call did not complete: {type(error).__name__}: {error}"
        super().__init__(f"{source}: {self.reason}")
