"""``callbridge demo``: one scripted support call through the real bridge, with a barge-in."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile, AudioFormat, MediaRate
from callbridge.report import CALL_PAGE, RECORDING, keep_recording, write_call_page
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
    *,
    audio_format: AudioFormat = "g711_ulaw",
    sample_rate: MediaRate = 16000,
    recordings_dir: Path | None = None,
) -> CallResult:
    """Ring callbridge with a simulated IncomingCall on loopback and return the call's result;
    with ``recordings_dir``, the bridge records the call there."""
    profile = AgentProfile(
        tools=("end_call",),
        audio_format=audio_format,
        media_rate=sample_rate,
        record=recordings_dir is not None,
    )
    async with LocalStack(
        profile=profile, connect_delay_ms=VOICE_LIVE_CONNECT_MS, recordings_dir=recordings_dir
    ) as stack:
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
    if out_dir is None:
        result = asyncio.run(run_demo_call(audio_format=audio_format, sample_rate=sample_rate))
    else:
        result = _recorded_call(out_dir, audio_format, sample_rate)
    document = {"calls": [result.report.to_json()]}
    if out_dir is not None:
        result.record.write_stereo_wav(out_dir / "call.wav")
        (out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n")
        write_call_page(out_dir)
    if json_output:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(render_text(result.report))
        if out_dir is not None:
            print(f"\nWrote {out_dir / 'call.wav'} (left: caller, right: what the caller heard)")
            print(f"  and {out_dir / 'report.json'}, the call's page {out_dir / CALL_PAGE}")
            print(f"  and the bridge's recording of it, {out_dir / RECORDING}")
    report = result.report
    healthy = (
        report.barge_ins
        and not report.protocol_violations
        and report.setup is not None
        and report.setup.ended_by == EndedBy.END_CALL
    )
    return 0 if healthy else 1


def _recorded_call(out_dir: Path, audio_format: AudioFormat, sample_rate: MediaRate) -> CallResult:
    """The demo call, recorded by the bridge into ``out_dir/recording`` (the page's source)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        result = asyncio.run(
            run_demo_call(
                audio_format=audio_format, sample_rate=sample_rate, recordings_dir=Path(scratch)
            )
        )
        keep_recording(Path(scratch), result.record.call_connection_id, out_dir / RECORDING)
    return result
