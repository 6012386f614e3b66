"""``callbridge bench``: N concurrent simulated calls against one real bridge process.

The bridge runs as a separate ``callbridge serve`` process (``bench_bridge``) so its CPU time
and memory can be read on their own (from ``/proc``, so this tool needs Linux); the emulator and
the phones run here. Each call barges in on every long answer, so the figures cover the whole
barge-in path.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from callbridge.core.profiles import AudioFormat
from callbridge.core.settings import PacingSettings
from callbridge.process import runtime
from callbridge.process.logs import configure_logging
from callbridge.sim import bench_bridge, cpu_split
from callbridge.sim.acs import AcsStandin
from callbridge.sim.demo_conversation import demo_caller_transcripts, demo_turns
from callbridge.sim.harness import (
    DEFAULT_PROFILE,
    EMULATOR_KEY,
    LOOPBACK,
    MEDIA_TOKEN_S,
    judge_call,
    signed_media_url,
)
from callbridge.sim.phone import CallRecord, Phone
from callbridge.sim.report import CallReport, percentile
from callbridge.sim.script import AfterAgentDone, AfterHeard, At, Clip, Hangup, Say, Step
from callbridge.sim.voicelive import VoiceLiveEmulator

BARGE_IN_AFTER_MS = 1500.0
FIRST_CYCLE_S = 17.0
"""About how long the first exchange takes: the greeting, a question, the answer cut at 1.5 s,
the caller's interruption and the agent's follow-up (16.6 s measured on loopback)."""
CYCLE_S = 12.5
"""About how long each later exchange takes (no greeting)."""
MIN_SECONDS = 18
"""The shortest call the bench places: one exchange, with a little slack."""
RAMP_S = 1.0
"""By default calls start spread over this long, rather than in one instant: a steep arrival
of calls, which ``--ramp-s`` softens to measure steady calls at a calmer rate."""


def bench_cycles(seconds: float) -> int:
    """How many exchanges fit in a call of ``seconds`` (at least one)."""
    return 1 + max(0, int((seconds - FIRST_CYCLE_S) // CYCLE_S))


def bench_script(seconds: float) -> list[Step]:
    """A call of ``seconds``: question, answer cut at 1.5 s, follow-up, as many times as fit;
    then the caller waits and hangs up ``seconds`` after the media socket opened."""
    question = Clip.asset("caller_01_question")
    interrupt = Clip.asset("caller_02_interrupt")
    steps: list[Step] = []
    for cycle in range(bench_cycles(seconds)):
        answer_spurt = 2 + 2 * cycle  # the greeting is spurt 1
        steps.append(Say(question, AfterAgentDone(pause_ms=400)))
        steps.append(Say(interrupt, AfterHeard(ms=BARGE_IN_AFTER_MS, spurt=answer_spurt)))
    steps.append(Hangup(At(seconds)))
    return steps


def _call_phones(phone: Phone, signing_key: bytes, acs: AcsStandin, calls: int) -> list[Phone]:
    """One phone per call, each with its own correlation id, call token and ACS JWT, as ACS
    opens the media socket once a call is answered."""
    phones = []
    for _ in range(calls):
        correlation_id = str(uuid.uuid4())
        url = signed_media_url(phone.url, signing_key, correlation_id, DEFAULT_PROFILE.name)
        jwt = acs.mint_token(lifetime_s=MEDIA_TOKEN_S)
        phones.append(
            replace(
                phone,
                url=url,
                correlation_id=correlation_id,
                headers={"Authorization": f"Bearer {jwt}"},
            )
        )
    return phones


def _place_calls(phones: Sequence[Phone], ramp_s: float) -> list[CallRecord]:
    """Run every phone, starts spread over ``ramp_s`` (in the phones' own process)."""
    configure_logging("console", "WARNING")
    # As the bridge does (``runtime.settle_heap``): a collection walking the phones' start-up
    # heap would stall them for tens of ms, and their own lag would read as the bridge's jitter.
    runtime.settle_heap()

    async def staggered(phone: Phone, delay_s: float) -> CallRecord:
        await asyncio.sleep(delay_s)
        return await phone.run()

    async def place_all() -> list[CallRecord]:
        return await asyncio.gather(
            *(staggered(phone, ramp_s * n / len(phones)) for n, phone in enumerate(phones))
        )

    return asyncio.run(place_all())


def summarise(
    reports: Sequence[CallReport],
    *,
    bridge_calls: Sequence[dict[str, Any]],
    harness_late_frames: int,
    usage: bench_bridge.ProcessUsage,
    idle_rss: int,
    peak_rss: int,
) -> dict[str, Any]:
    """Aggregate per-call figures (p50/p99) and the bridge's resource use."""

    dist = _distribution
    barge_ins = [b for r in reports for b in r.barge_ins]
    call_minutes = sum(r.duration_s for r in reports) / 60
    return {
        "calls": len(reports),
        "call_seconds_mean": round(sum(r.duration_s for r in reports) / max(1, len(reports)), 1),
        "first_audio_ms": dist([r.first_audio_ms for r in reports if r.first_audio_ms]),
        "jitter_p99_ms": dist([r.pacing.jitter_p99_ms for r in reports]),
        "jitter_max_ms": dist([r.pacing.jitter_max_ms for r in reports]),
        "underruns": sum(r.pacing.underruns for r in reports),
        "barge_ins": len(barge_ins),
        "stop_latency_ms": dist([b.stop_latency_ms for b in barge_ins if b.stop_latency_ms]),
        "truncation_error_ms": dist(
            [b.truncation_error_ms for b in barge_ins if b.truncation_error_ms is not None]
        ),
        "overhang_ms": dist([b.overhang_ms for b in barge_ins]),
        "barge_ins_without_truncate": sum(1 for b in barge_ins if b.audio_end_ms is None),
        "stale_audio_ms": sum(r.stale_audio_ms for r in reports),
        "protocol_violations": sum(len(r.protocol_violations) for r in reports),
        # The bridge's own view: how late its pacer released frames against the grid.
        "bridge_pacer_max_late_ms": dist([c.get("pacer_max_late_ms", 0.0) for c in bridge_calls]),
        "bridge_pacer_reanchors": sum(c.get("pacer_reanchors", 0) for c in bridge_calls),
        # Caller frames the phones themselves sent late: the harness's own lag, which also
        # shows up as jitter measured at the phone.
        "harness_late_frames": harness_late_frames,
        "bridge_cpu_s": round(usage.cpu_s, 2),
        "bridge_cpu_s_per_call_minute": round(usage.cpu_s / call_minutes, 3)
        if call_minutes
        else None,
        "bridge_rss_idle_mb": round(idle_rss / 2**20, 1),
        "bridge_rss_peak_mb": round(peak_rss / 2**20, 1),
        "bridge_rss_per_call_mb": round((peak_rss - idle_rss) / 2**20 / max(1, len(reports)), 2),
    }


def _distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values, default=0.0), 2),
    }


async def run_bench(
    *,
    calls: int,
    seconds: int,
    json_output: bool,
    audio_format: AudioFormat,
    sample_rate: int,
    acs_marks: bool = False,
    line_playout_delay_ms: float | None = None,
    ramp_s: float = RAMP_S,
    bridge_cpus: frozenset[int] | None = None,
) -> int:
    """Run the benchmark and print its figures.

    ``acs_marks``: the bridge marks frames and measures ACS's playout delay from the answers;
    ``line_playout_delay_ms``: the phone lines' true playout delay, by default the one the
    bridge is configured with (set it apart to see how far a wrong estimate moves truncation);
    ``ramp_s``: the calls start spread over this long; ``bridge_cpus``: the bridge runs on
    these cores, the harness on the others (``cpu_split``).
    """
    summary = await bench_figures(
        calls=calls,
        seconds=seconds,
        audio_format=audio_format,
        sample_rate=sample_rate,
        acs_marks=acs_marks,
        line_playout_delay_ms=line_playout_delay_ms,
        ramp_s=ramp_s,
        bridge_cpus=bridge_cpus,
    )
    if json_output:
        print(json.dumps(summary))
    else:
        print(f"callbridge bench: {calls} concurrent calls, {seconds} s each, {audio_format}")
        for key, value in summary.items():
            print(f"  {key:32} {value}")
    return 0


async def bench_figures(
    *,
    calls: int,
    seconds: int,
    audio_format: AudioFormat,
    sample_rate: int,
    acs_marks: bool = False,
    line_playout_delay_ms: float | None = None,
    ramp_s: float = RAMP_S,
    bridge_tree: Path | None = None,
    bridge_cpus: frozenset[int] | None = None,
) -> dict[str, Any]:
    """The benchmark's figures, as `run_bench` prints them.

    ``bridge_tree``: a checkout of another commit whose bridge to measure; the stand-ins and
    phones stay this checkout's, so two commits are measured by the same harness.
    ``bridge_cpus``: the bridge's cores; the harness takes the others while the bench runs.

    Raises:
        ValueError: ``bridge_cpus`` cannot be given to the bridge (``cpu_split.harness_cpus``).
    """
    pacing = PacingSettings(acs_marks=acs_marks)
    line_delay_ms = (
        pacing.playout_delay_ms if line_playout_delay_ms is None else line_playout_delay_ms
    )
    turns = demo_turns()
    bridge_calls: list[dict[str, Any]] = []
    signing_key = secrets.token_urlsafe(32).encode()
    harness = None if bridge_cpus is None else cpu_split.harness_cpus(bridge_cpus)
    with cpu_split.harness_on(harness):
        emulator = VoiceLiveEmulator(
            turns=[turns[0], *[turn for _ in range(bench_cycles(seconds)) for turn in turns[1:3]]],
            caller_transcripts=demo_caller_transcripts(),
            api_key=EMULATOR_KEY,
        )
        endpoint = await emulator.start(LOOPBACK, 0)
        acs = AcsStandin()
        try:
            await acs.start(LOOPBACK, 0)
            async with bench_bridge.bridge_process(
                endpoint,
                acs,
                audio_format=audio_format,
                pacing=pacing,
                signing_key=signing_key,
                summaries=bridge_calls,
                tree=bridge_tree,
                cpus=bridge_cpus,
            ) as (process, ws_url):
                before = bench_bridge.usage(process.pid)
                peak = [before.rss_bytes]
                sampler = asyncio.create_task(bench_bridge.sample_peak_rss(process.pid, peak))
                phone = Phone(
                    ws_url,
                    script=bench_script(seconds),
                    sample_rate=sample_rate,
                    lead_ms=pacing.lead_ms,
                    playout_delay_ms=line_delay_ms,
                    max_duration_s=seconds * 3 + 30,
                )
                phones = _call_phones(phone, signing_key, acs, calls)
                # The emulator and the ACS stand-in run in this process: the same reason as the
                # phones' (a 48 ms collection 9 s into a 20-call bench held them up).
                runtime.settle_heap()
                # The phones get a process of their own: sharing the emulator's event loop, their
                # own lag would show up as jitter that the bridge did not cause.
                spawn = multiprocessing.get_context("spawn")
                try:
                    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                        loop = asyncio.get_running_loop()
                        records = await loop.run_in_executor(pool, _place_calls, phones, ramp_s)
                    results = await asyncio.gather(
                        *(judge_call(record, emulator, audio_format) for record in records)
                    )
                finally:
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                after = bench_bridge.usage(process.pid)
        finally:
            await acs.stop()
            await emulator.stop()
    usage = bench_bridge.ProcessUsage(after.cpu_s - before.cpu_s, after.rss_bytes)
    late = sum(result.record.late_frames for result in results)
    reports = [result.report for result in results]
    summary = summarise(
        reports,
        bridge_calls=bridge_calls,
        harness_late_frames=late,
        usage=usage,
        idle_rss=before.rss_bytes,
        peak_rss=peak[0],
    )
    summary["playout_delay_ms"] = {
        "line": line_delay_ms,
        "configured": pacing.playout_delay_ms,
        "acs_marks": acs_marks,
        "bridge_used": _distribution([c.get("playout_delay_ms", 0.0) for c in bridge_calls]),
        "bridge_measured_calls": sum(bool(c.get("playout_delay_measured")) for c in bridge_calls),
    }
    return summary
