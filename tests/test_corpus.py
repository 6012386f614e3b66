"""The scenario corpus in tests/calls: every scenario replays through the whole service path and
meets its expectations (the check `callbridge replay tests/calls/*` makes), one test each, so
the test workers share them out and a failure names its scenario.

They go through callbridge's own pytest plugin (``replay_call``), as users' tests do."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbridge.pytest_plugin import ReplayCall

CALLS = Path(__file__).parent / "calls"
SCENARIOS = sorted(CALLS.glob("*.toml"))


def test_the_corpus_has_a_scenario_for_each_behaviour_it_proves() -> None:
    assert len(SCENARIOS) >= 25


ATTEMPTS = 3
"""The most runs of one scenario: the first, and one more after each that failed while its
phone fell behind real time (``replay_call``'s ``attempts``)."""


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.stem for path in SCENARIOS])
async def test_the_scenario_meets_its_expectations(replay_call: ReplayCall, scenario: Path) -> None:
    """A failed run whose phone fell behind real time (the test process was held up) runs
    again, up to ``ATTEMPTS`` times, as users' tests can ask too; a failure with the phone on
    time fails at once."""
    result = await replay_call(scenario, attempts=ATTEMPTS)
    late_frames = result.result.record.late_frames
    assert [str(failure) for failure in result.failures] == [], f"{late_frames} late frames"
