"""``callbridge demo``: one scripted support call through the real bridge, with a barge-in."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile, AudioFormat, MediaRate
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.report import render_text
from callbridge.sim.script import AfterAgentDone, AfterHeard, Clip, Say, Step

BARGE_IN_AFTER_MS = 2500.0
"""The caller cuts the agent's long answer this far into it: mid-sentence."""


VOICE_LIVE_CONNECT_MS = 300
"""The emulator's handshake time, about what a real Voice Live connection takes: the demo
shows that pre-warming on IncomingCall hides it from the caller."""

CALLER_PATIENCE_S = 10.0
"""The caller stays on the line this long after their last words: the agent hangs up first."""


def demo_script() -> list[Step]:
    """Greeting, a question, an answer interrupted mid-sentence, a follow-up, thanks; the
    agent says goodbye and hangs up (``end_call``)."""
    return [
        Say(Clip.asset("caller_01_question"), AfterAgentDone(pause_ms=400)),
        Say(Clip.asset("caller_02_interrupt"), AfterHeard(ms=BARGE_IN_AFTER_MS, spurt=2)),
        Say(Clip.asset("caller_03_thanks"), AfterAgentDone(pause_ms=400)),
    ]


async def run_demo_call(
    *, audio_format: AudioFormat = "g711_ulaw", sample_rate: MediaRate = 16000
) -> CallResult:
    """Ring callbridge with a simulated IncomingCall on loopback and return the call's result."""
    profile = AgentProfile(tools=("end_call",), audio_format=audio_format, media_rate=sample_rate)
    async with LocalStack(profile=profile, connect_delay_ms=VOICE_LIVE_CONNECT_MS) as stack:
        return await stack.call(demo_script(), hangup_after_s=CALLER_PATIENCE_S)


def run_demo(
    *,
    json_output: bool,
    out_dir: Path | None,
    audio_format: AudioFormat,
    sample_rate: MediaRate,
) -> int:
    """Run the demo and print its report; non-zero exit if the call went wrong."""
    if not json_output:
        print("Ringing callbridge with a simulated IncomingCall (about 25 s of real time)...")
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
    report = result.report
    healthy = (
        report.barge_ins
        and not report.protocol_violations
        and report.setup is not None
        and report.setup.ended_by == EndedBy.END_CALL
    )
    return 0 if healthy else 1
