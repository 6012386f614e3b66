"""The bench's split of the machine's cores between the bridge and the harness."""

from __future__ import annotations

import argparse
import os

import pytest

from callbridge.cli import main
from callbridge.cli.base import EXIT_USAGE
from callbridge.sim import cpu_split

needs_affinity = pytest.mark.skipif(not cpu_split.can_split(), reason="Linux only")


@pytest.mark.parametrize(
    ("text", "cores"),
    [("0", {0}), ("0,2", {0, 2}), ("0-2", {0, 1, 2}), ("1,3-4", {1, 3, 4})],
)
def test_core_lists_read_as_taskset_writes_them(text: str, cores: set[int]) -> None:
    assert cpu_split.cpu_list(text) == frozenset(cores)


@pytest.mark.parametrize("text", ["", "a", "-1", "2-1", "0,", "0-1-2"])
def test_a_bad_core_list_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a list of cores"):
        cpu_split.cpu_list(text)


@needs_affinity
def test_the_harness_gets_the_cores_the_bridge_leaves() -> None:
    usable = frozenset(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.skip("one core: nothing to split")
    bridge = frozenset({min(usable)})
    assert cpu_split.harness_cpus(bridge) == usable - bridge
    with pytest.raises(ValueError, match="leave the harness one"):
        cpu_split.harness_cpus(usable)
    with pytest.raises(ValueError, match="are not among"):
        cpu_split.harness_cpus(frozenset({max(usable) + 1}))


@needs_affinity
def test_the_harness_is_put_back_on_its_cores_after_the_bench() -> None:
    before = os.sched_getaffinity(0)
    one = frozenset({min(before)})
    with cpu_split.harness_on(one):
        assert os.sched_getaffinity(0) == one
    assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), cpu_split.harness_on(one):
        raise RuntimeError
    assert os.sched_getaffinity(0) == before


@needs_affinity
def test_bench_refuses_cores_it_cannot_give_before_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    every = ",".join(str(core) for core in sorted(os.sched_getaffinity(0)))
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--bridge-cpus", every])
    assert exit_.value.code == EXIT_USAGE
    assert "--bridge-cpus: the bridge would take every core" in capsys.readouterr().err
