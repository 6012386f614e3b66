"""``callbridge demo``: one scripted support call through the real bridge, with a barge-in."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from callbridge.routing import AudioFormat
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.report import render_text
from callbridge.sim.script import AfterAgentDone, AfterHeard, Clip, Hangup, Say, Step

BARGE_IN_AFTER_MS = 2500.0
"""The caller cuts the agent's long answer this far into it: mid-sentence."""


def demo_script() -> list[Step]:
    """Greeting, a question, an answer interrupted mid-sentence, a follow-up, goodbye."""
    return [
        Say(Clip.asset("caller_01_question"), AfterAgentDone(pause_ms=400)),
        Say(Clip.asset("caller_02_interrupt"), AfterHeard(ms=BARGE_IN_AFTER_MS, spurt=2)),
        Say(Clip.asset("caller_03_thanks"), AfterAgentDone(pause_ms=400)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]


async def run_demo_call(
    *, audio_format: AudioFormat = "g711_ulaw", sample_rate: int = 16000
) -> CallResult:
    """Run the demo call on loopback and return its result."""
    async with LocalStack(audio_format=audio_format) as stack:
        phone = stack.phone(demo_script(), sample_rate=sample_rate)
        return await stack.call(phone)


def run_demo(
    *,
    json_output: bool,
    out_dir: Path | None,
    audio_format: AudioFormat,
    sample_rate: int,
) -> int:
    """Run the demo and print its report; non-zero exit if the call went wrong."""
    if not json_output:
        print("Placing a simulated call through callbridge (about 25 s of real time)...")
    result = asyncio.run(run_demo_call(audio_format=audio_format, sample_rate=sample_rate))
    document = {"calls": [result.report.to_json()]}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result.record.write_stereo_wav(out_dir / "call.wav")
        (out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    if json_output:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(render_text(result.report))
        if out_dir is not None:
            print(f"\nWrote {out_dir / 'call.wav'} (left: caller, right: what the caller heard)")
            print(f"  and {out_dir / 'report.json'}")
    healthy = result.report.barge_ins and not result.report.protocol_violations
    return 0 if healthy else 1
