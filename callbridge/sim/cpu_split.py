"""The bench's bridge on cores of its own, the harness on the others (Linux).

On a small machine the emulator and the phones compete with the bridge for the same cores, and
their scheduling delay shows up as the bridge's jitter. A replica in production has its vCPU to
itself: pinning the bridge to some cores and the harness to the rest measures that. The bridge
is pinned once started; the harness (this process, and the phones' process it spawns after)
for the length of the bench, then put back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator


def can_split() -> bool:
    """Whether this platform lets a process choose its cores (Linux does)."""
    return hasattr(os, "sched_setaffinity")


def cpu_list(text: str) -> frozenset[int]:
    """Cores written as ``taskset -c`` takes them: ``0``, ``0,2``, ``0-1``.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not such a list.
    """
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError
            cpus.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of cores (such as 0, 0,2 or 0-1)"
        ) from None
    return frozenset(cpus)


def bridge_cpus(text: str) -> frozenset[int]:
    """An argparse type for the bridge's cores (``cpu_list``), refused before the bench starts
    unless the bridge can have them and leave the harness some (``harness_cpus``)."""
    cpus = cpu_list(text)
    try:
        harness_cpus(cpus)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return cpus


def harness_cpus(bridge: frozenset[int]) -> frozenset[int]:
    """The cores left for the harness when the bridge takes ``bridge``.

    Raises:
        ValueError: the platform cannot pin, ``bridge`` names a core this process may not use,
            or it leaves none for the harness.
    """
    if not can_split():
        raise ValueError("pinning the bridge to cores needs Linux (sched_setaffinity)")
    usable = frozenset(os.sched_getaffinity(0))
    if not bridge <= usable:
        raise ValueError(f"cores {sorted(bridge - usable)} are not among {sorted(usable)}")
    rest = usable - bridge
    if not rest:
        raise ValueError(
            f"the bridge would take every core ({sorted(usable)}): leave the harness one"
        )
    return rest


@contextlib.contextmanager
def harness_on(cpus: frozenset[int] | None) -> Iterator[None]:
    """This process on ``cpus`` (``None``: unchanged) until the block ends."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Process ``pid`` on ``cpus`` (``None``: unchanged)."""
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)
