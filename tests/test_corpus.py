"""The scenario corpus in tests/calls: every scenario replays through the whole service path and
meets its expectations (the same check `callbridge replay tests/calls/*` makes)."""

from __future__ import annotations

from pathlib import Path

from callbridge.sim.replay import replay_all

CALLS = Path(__file__).parent / "calls"

CONCURRENCY = 8
"""Calls at once, to keep the corpus (some 20 calls of 5 to 25 s) within a minute; each call
still runs in real time, and the bench shows the timing holds at far higher concurrency."""


async def test_every_scenario_in_the_corpus_passes() -> None:
    results = await replay_all([CALLS], concurrency=CONCURRENCY)
    assert len(results) >= 22
    failed = {result.scenario.name: [str(f) for f in result.failures] for result in results}
    assert {name: failures for name, failures in failed.items() if failures} == {}
