"""A/B bench: ``callbridge bench`` against two commits, in one run on one machine.

Run from a checkout, after ``pip install -e .``::

    python benchmarks/compare.py REF_A REF_B [--rounds 3] [--calls 20] [--seconds 20]

Each ref (a commit: commit a change before measuring it) is checked out into a temporary git
worktree, removed afterwards, and its C extension (the codec's) compiled there. The harness (the
Voice Live emulator, the ACS stand-in and the phones) is the checkout's own, so both commits are
measured by the same instrument; only the bridge process differs. It runs from the ref's
worktree with ``PYTHONPATH`` pointing there, in this interpreter's environment. That is the
choice rather than a fresh virtualenv per ref: nothing is downloaded (the bench runs offline),
it takes no time, and both sides get the very same dependencies, so a difference in the figures
is the code's. A ref that changes dependencies must be measured with them installed here.

Rounds alternate which ref goes first (A B, B A, ...), so a machine that gets busier or quieter
over the run favours neither. For each figure the table shows the median over the rounds for A
and for B, and their ratio B / A. Shared machines are noisy: compare ratios from one run, not
figures from different runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.core.codec import ACS_RATES
from callbridge.process.logs import configure_logging
from callbridge.sim import cpu_split
from callbridge.sim.bench import RAMP_S, bench_figures
from callbridge.sim.bench_bridge import has_proc

Summary = dict[str, Any]
"""One bench run's figures, as ``callbridge bench --json`` prints them."""
Runner = Callable[[Path], Summary]
"""Runs the bench once against the bridge in a checkout."""


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    key: str
    stat: str | None = None
    """Which statistic of a per-call distribution (p50, p99, max); None for a plain number."""

    def read(self, summary: Summary) -> float:
        value = summary[self.key]
        if self.stat is not None:
            value = value[self.stat]
        return float("nan") if value is None else float(value)


FIGURES = (
    Figure("bridge CPU s per call-minute", "bridge_cpu_s_per_call_minute"),
    Figure("jitter p99 ms at the phone, median call", "jitter_p99_ms", "p50"),
    Figure("pacer lateness ms, worst call", "bridge_pacer_max_late_ms", "max"),
    Figure("pacer re-anchors", "bridge_pacer_reanchors"),
    Figure("truncation error ms, p99", "truncation_error_ms", "p99"),
    Figure("stale audio ms", "stale_audio_ms"),
    Figure("memory MB per call", "bridge_rss_per_call_mb"),
    # Not the bridge's: frames the phones sent late. High means the machine, not the code.
    Figure("harness late frames", "harness_late_frames"),
)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    a: float
    b: float

    @property
    def ratio(self) -> float:
        """B / A; NaN when A is zero (a count of zero has no ratio)."""
        return self.b / self.a if self.a else float("nan")


def measure(trees: Mapping[str, Path], rounds: int, run: Runner) -> dict[str, list[Summary]]:
    """Each tree's summaries over ``rounds`` rounds, alternating which tree runs first."""
    names = list(trees)
    results: dict[str, list[Summary]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            print(f"round {index + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            results[name].append(run(trees[name]))
    return results


def compare(a: Sequence[Summary], b: Sequence[Summary]) -> list[Row]:
    """Each figure's median over the rounds, for A and for B."""
    return [
        Row(
            figure.label,
            statistics.median(figure.read(s) for s in a),
            statistics.median(figure.read(s) for s in b),
        )
        for figure in FIGURES
    ]


def format_table(rows: Sequence[Row], name_a: str, name_b: str, rounds: int) -> str:
    width = max(len(row.label) for row in rows)
    lines = [
        f"A = {name_a}",
        f"B = {name_b}",
        f"median of {rounds} round(s) each",
        f"{'figure':<{width}}  {'A':>10}  {'B':>10}  {'B/A':>6}",
    ]
    for row in rows:
        ratio = "-" if math.isnan(row.ratio) else f"{row.ratio:.2f}"
        lines.append(f"{row.label:<{width}}  {row.a:>10.3f}  {row.b:>10.3f}  {ratio:>6}")
    return "\n".join(lines)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def checkouts(repo: Path, commits: Sequence[str]) -> Iterator[list[Path]]:
    """A detached worktree of each commit, removed on the way out."""
    trees: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="callbridge-compare-") as scratch:
        try:
            for index, commit in enumerate(commits):
                tree = Path(scratch) / f"{index}-{commit[:12]}"
                _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
                trees.append(tree)
                build_extensions(tree)
            yield trees
        finally:
            for tree in trees:
                _git(repo, "worktree", "remove", "--force", str(tree))


def build_extensions(tree: Path) -> None:
    """Compile a commit's C extensions in its worktree, if it has any: a commit holds their
    sources, and the bridge imports them from the tree, as ``pip install -e`` would have built
    them."""
    tool = tomllib.loads((tree / "pyproject.toml").read_text()).get("tool", {})
    if not tool.get("setuptools", {}).get("ext-modules"):
        return
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "--quiet",
            "build_ext",
            "--inplace",
        ],
        cwd=tree,
        capture_output=True,
        check=True,
    )


def check_bridge_source(tree: Path) -> None:
    """Fail early unless a bridge started in ``tree`` imports ``callbridge`` from ``tree``.

    An installer's import hook could otherwise win over ``PYTHONPATH`` and measure the
    installed copy twice.
    """
    probe = "import callbridge; print(callbridge.__file__)"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"a bridge in {tree} would import callbridge from {found}")


def bench_runner(args: argparse.Namespace) -> Runner:
    def run(tree: Path) -> Summary:
        return asyncio.run(
            bench_figures(
                calls=args.calls,
                seconds=args.seconds,
                audio_format=args.audio_format,
                sample_rate=args.sample_rate,
                ramp_s=args.ramp_s,
                bridge_tree=tree,
                bridge_cpus=args.bridge_cpus,
            )
        )

    return run


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref_a", help="the baseline commit (A)")
    parser.add_argument("ref_b", help="the commit to compare with it (B)")
    parser.add_argument("--rounds", type=int, default=3, help="bench runs per ref (default 3)")
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (default 20)")
    parser.add_argument("--seconds", type=int, default=20, help="seconds per call (default 20)")
    parser.add_argument("--audio-format", default="g711_ulaw", choices=("g711_ulaw", "pcm16"))
    parser.add_argument("--sample-rate", type=int, default=16000, choices=ACS_RATES)
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=RAMP_S,
        help=f"calls start over this long (default {RAMP_S})",
    )
    parser.add_argument(
        "--bridge-cpus",
        type=cpu_split.bridge_cpus,
        metavar="CPUS",
        help="run each bridge on these cores (such as 0), the harness on the others (Linux)",
    )
    parser.add_argument("--json", action="store_true", help="also print every round's figures")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if not has_proc():
        print("the bench reads CPU and memory from /proc: it needs Linux", file=sys.stderr)
        return 2
    configure_logging("console", "WARNING")
    repo = Path(_git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    refs = (args.ref_a, args.ref_b)
    commits = [_git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}") for ref in refs]
    names = [f"{ref} ({commit[:10]})" for ref, commit in zip(refs, commits, strict=True)]
    with checkouts(repo, commits) as trees:
        for tree in trees:
            check_bridge_source(tree)
        results = measure(dict(zip(names, trees, strict=True)), args.rounds, bench_runner(args))
    summaries_a, summaries_b = (results[name] for name in names)
    print(format_table(compare(summaries_a, summaries_b), *names, args.rounds))
    if args.json:
        print(json.dumps({"a": summaries_a, "b": summaries_b}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
