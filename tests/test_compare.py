"""Tests for benchmarks/compare.py, the A/B bench of two commits."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from callbridge.sim.bench_bridge import has_proc

ROOT = Path(__file__).resolve().parents[1]
TINY_BENCH = ("--rounds", "1", "--calls", "1", "--seconds", "4")


def _load_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmarks_compare", ROOT / "benchmarks" / "compare.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the class is being made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compare = _load_compare()


def _summary(cpu: float, jitter: float, reanchors: int) -> dict[str, Any]:
    def dist(value: float) -> dict[str, float]:
        return {"p50": value, "p99": value, "max": value}

    return {
        "bridge_cpu_s_per_call_minute": cpu,
        "jitter_p99_ms": dist(jitter),
        "bridge_pacer_max_late_ms": dist(4.0),
        "bridge_pacer_reanchors": reanchors,
        "truncation_error_ms": dist(10.0),
        "stale_audio_ms": 0,
        "bridge_rss_per_call_mb": 2.0,
        "harness_late_frames": 0,
    }


def test_rounds_alternate_and_the_table_holds_medians_and_ratios() -> None:
    """A B, then B A, ...; each figure is the median over rounds, with B / A beside it."""
    order: list[str] = []
    figures = {
        Path("a"): iter([_summary(1.0, 8.0, 0), _summary(3.0, 9.0, 0), _summary(2.0, 7.0, 0)]),
        Path("b"): iter([_summary(0.4, 2.0, 0), _summary(0.6, 3.0, 0), _summary(0.5, 4.0, 0)]),
    }

    def fake_bench(tree: Path) -> dict[str, Any]:
        order.append(str(tree))
        return next(figures[tree])

    results = compare.measure({"A": Path("a"), "B": Path("b")}, 3, fake_bench)
    assert order == ["a", "b", "b", "a", "a", "b"]
    rows = {row.label: row for row in compare.compare(results["A"], results["B"])}
    cpu = rows["bridge CPU s per call-minute"]
    assert (cpu.a, cpu.b) == (2.0, 0.5)
    assert cpu.ratio == pytest.approx(0.25)
    assert rows["jitter p99 ms at the phone, median call"].ratio == pytest.approx(3.0 / 8.0)
    assert math.isnan(rows["pacer re-anchors"].ratio)
    table = compare.format_table(list(rows.values()), "main", "fast", 3)
    assert "bridge CPU s per call-minute" in table
    assert "0.25" in table
    assert "median of 3 round(s)" in table


def test_a_figure_the_bench_could_not_compute_reads_as_nan() -> None:
    """No call-minutes means no CPU per call-minute: NaN, not a crash or a zero."""
    summary = _summary(1.0, 1.0, 0) | {"bridge_cpu_s_per_call_minute": None}
    assert math.isnan(compare.FIGURES[0].read(summary))


@pytest.mark.skipif(not has_proc(), reason="the bench reads /proc")
@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
@pytest.mark.timeout(150)
def test_compare_runs_end_to_end_on_two_checkouts() -> None:
    """HEAD against HEAD, one round of one short call each: the table comes out, whole."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "benchmarks/compare.py", "HEAD", "HEAD", *TINY_BENCH],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("A = HEAD (")
    assert lines[1].startswith("B = HEAD (")
    for figure in compare.FIGURES:
        row = next(line for line in lines if line.startswith(figure.label))
        a, b = row[len(figure.label) :].split()[:2]
        assert float(a) >= 0.0
        assert float(b) >= 0.0
    cpu_row = next(line for line in lines if line.startswith("bridge CPU s per call-minute"))
    assert float(cpu_row.split()[-3]) > 0.0
    assert "round 1/1" in done.stderr
    # The temporary worktrees are gone again.
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "callbridge-compare-" not in listed.stdout
