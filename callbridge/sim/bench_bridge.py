"""The bridge under ``callbridge bench``: a ``callbridge serve`` process of its own, measured.

Its CPU time and memory are read from ``/proc`` (Linux), apart from the harness's; its
``call.ended`` log lines carry its own pacer figures. It may run another checkout's code (for
``benchmarks/compare.py``) and be pinned to cores of its own (``cpu_split``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from callbridge.core.profiles import AudioFormat
from callbridge.core.settings import PacingSettings
from callbridge.sim import cpu_split
from callbridge.sim.acs import AcsStandin
from callbridge.sim.harness import LOOPBACK, free_port, serve_env

STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    cpu_s: float
    rss_bytes: int


def has_proc() -> bool:
    """Whether this machine exposes per-process CPU and memory the way bench reads them."""
    return Path("/proc/self/stat").exists()


def usage(pid: int) -> ProcessUsage:
    """CPU seconds and resident memory of a process, from ``/proc``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may contain spaces) start at index 2.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ProcessUsage(cpu_s, rss_pages * os.sysconf("SC_PAGE_SIZE"))


@contextlib.asynccontextmanager
async def bridge_process(
    endpoint: str,
    acs: AcsStandin,
    *,
    audio_format: AudioFormat,
    pacing: PacingSettings,
    signing_key: bytes,
    summaries: list[dict[str, Any]],
    tree: Path | None = None,
    cpus: frozenset[int] | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Run ``callbridge serve`` against the stand-ins; yield the process and its /ws URL.

    The bridge's ``call.ended`` log lines (its own pacer figures) are appended to ``summaries``.
    ``tree``: a checkout whose ``callbridge`` the bridge runs instead of this one (it runs
    there, so the working directory that ``-m`` puts first on the path is that checkout).
    ``cpus``: the cores the bridge runs on (``cpu_split``), from its start.
    """
    port = free_port()
    source = {} if tree is None else {"PYTHONPATH": _path_first(tree)}
    env = {
        **os.environ,
        **source,
        **serve_env(port, endpoint, acs, signing_key.decode()),
        "CALLBRIDGE_MAX_CALLS": "1000",
        "CALLBRIDGE_AUDIO_FORMAT": audio_format,
        "CALLBRIDGE_PACER_LEAD_MS": str(pacing.lead_ms),
        "CALLBRIDGE_PLAYOUT_DELAY_MS": str(pacing.playout_delay_ms),
        "CALLBRIDGE_ACS_MARKS": "on" if pacing.acs_marks else "off",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callbridge",
        "serve",
        env=env,
        cwd=tree,
        stderr=asyncio.subprocess.PIPE,
    )
    cpu_split.pin(process.pid, cpus)
    assert process.stderr is not None
    reader = asyncio.create_task(_collect_call_summaries(process.stderr, summaries))
    try:
        await _wait_healthy(f"http://{LOOPBACK}:{port}/healthz", process)
        yield process, f"ws://{LOOPBACK}:{port}/ws"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader


def _path_first(tree: Path) -> str:
    """``PYTHONPATH`` with ``tree`` ahead of whatever it already held."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(tree), inherited] if inherited else [str(tree)])


async def _collect_call_summaries(
    stream: asyncio.StreamReader, summaries: list[dict[str, Any]]
) -> None:
    """Drain the bridge's JSON log, keeping each call's closing summary."""
    async for line in stream:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "call.ended":
                summaries.append(entry)


async def _wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"callbridge serve exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError("callbridge serve did not become healthy")


async def sample_peak_rss(pid: int, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], usage(pid).rss_bytes)
        await asyncio.sleep(0.25)
