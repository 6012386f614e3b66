"""Barge-in figures of a scenario corpus: how often the agent is cut off, and by whom.

:func:`measure` replays scenario files (:mod:`callbridge.sim.replay`) on one ``LocalStack``,
each in both audio formats to Voice Live and with one phone echo for every caller (or none),
and :func:`call_figures` counts, from the phone's and the emulator's records only (never
callbridge's own figures), what each call lived through:

- **agent speech heard**: agent audio played at the phone (``Spurt.played_ms``);
- **barge-ins**: the StopAudio messages the phone received (``CallRecord.stops``). One received
  while the caller's script was saying a line, or up to ``LINE_GRACE_MS`` after it (the time a
  VAD and the bridge take to react), is put down to the caller; any other is a **false
  barge-in**: nobody spoke, so echo, noise or nothing cut the agent off;
- **real barge-ins**: of those put down to the caller, as many as the scenario's
  ``expect.barge_ins`` asks for, against that number: the interruptions the corpus means;
- **VAD turns outside lines**: the emulator's ``speech_started`` events sent while the caller
  said nothing (with the same grace): turns the agent will answer that nobody took.

A caller line is a ``Say`` step with some sound in it (the silent pause between two keys of a
``dtmf`` string is none), from its first frame to the end of its last (``StepRecord``).

Run it on the corpus, without and with a speakerphone echo::

    python -m callbridge.sim.barge_in_figures tests/calls
    python -m callbridge.sim.barge_in_figures --echo 150 -15 tests/calls
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, TextIO, get_args

import numpy as np

from callbridge.core.profiles import AudioFormat
from callbridge.process.logs import configure_logging
from callbridge.sim.call_record import CallRecord
from callbridge.sim.echo import Echo
from callbridge.sim.replay import load_sources, replay_loaded
from callbridge.sim.replay_results import BrokenCall
from callbridge.sim.scenario_schema import Scenario, ScenarioError
from callbridge.sim.script import Say
from callbridge.sim.voicelive import EmulatorSession

LINE_GRACE_MS: Final = 500.0
"""How long after a caller's line a barge-in is still put down to it: the VAD confirms speech
after some of it (100 ms in the emulator), then the bridge and the line carry the StopAudio."""

AUDIO_FORMATS: Final[tuple[AudioFormat, ...]] = get_args(AudioFormat)
DEFAULT_CONCURRENCY: Final = 3


@dataclass(frozen=True, slots=True)
class CallFigures:
    """One replayed call's barge-in figures (``error`` set, and zeros, when it broke)."""

    scenario: str
    audio_format: AudioFormat
    agent_speech_ms: float = 0.0
    barge_ins: int = 0
    false_barge_ins: int = 0
    """Barge-ins while the caller said nothing."""
    caller_barge_ins: int = 0
    """Barge-ins while the caller said a line (or just after)."""
    real_barge_ins: int = 0
    """Of the caller's, as many as the scenario expects."""
    expected_barge_ins: int = 0
    vad_turns_outside_lines: int = 0
    late_frames: int = 0
    """Caller frames the phone sent late: its timing figures for the call are suspect."""
    error: str | None = None


def caller_lines(record: CallRecord) -> list[tuple[float, float]]:
    """When the caller's script said something: ``(start, end)`` of each line with sound."""
    lines = []
    for step in record.steps:
        if not isinstance(step.step, Say) or step.started_at is None:
            continue
        if not np.frombuffer(step.step.clip.pcm, dtype="<i2").any():
            continue
        end = step.finished_at if step.finished_at is not None else record.ws_closed_at
        lines.append((step.started_at, end))
    return lines


def call_figures(
    scenario: Scenario, record: CallRecord, sessions: Sequence[EmulatorSession]
) -> CallFigures:
    """What the phone and the emulator saw of one call of ``scenario``."""
    grace_s = LINE_GRACE_MS / 1000
    lines = caller_lines(record)

    def in_a_line(at: float) -> bool:
        return any(start <= at <= end + grace_s for start, end in lines)

    by_caller = sum(in_a_line(stop.at) for stop in record.stops)
    expected = len(scenario.expectations.barge_ins or ())
    turns = [at for session in sessions for at in session.speech_started_sent_at]
    return CallFigures(
        scenario=scenario.name,
        audio_format=scenario.audio_format,
        agent_speech_ms=sum(spurt.played_ms for spurt in record.spurts),
        barge_ins=len(record.stops),
        false_barge_ins=len(record.stops) - by_caller,
        caller_barge_ins=by_caller,
        real_barge_ins=min(by_caller, expected),
        expected_barge_ins=expected,
        vad_turns_outside_lines=sum(not in_a_line(at) for at in turns),
        late_frames=record.late_frames,
    )


async def measure(
    paths: Sequence[Path],
    *,
    echo: Echo | None,
    audio_formats: Sequence[AudioFormat] = AUDIO_FORMATS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[CallFigures]:
    """Replay every scenario ``paths`` stand for once per audio format, every caller's phone
    given ``echo`` (None: no echo, whatever a file says), and figure each call.

    Raises:
        ScenarioError: a source cannot be loaded (then no call is made).
    """
    loaded = [
        (source, replace(scenario, audio_format=audio_format, echo=echo))
        for source, scenario in load_sources(paths)
        for audio_format in audio_formats
    ]
    figures = []
    for outcome in await replay_loaded(loaded, concurrency=concurrency):
        scenario = outcome.scenario
        if isinstance(outcome, BrokenCall):
            figures.append(CallFigures(scenario.name, scenario.audio_format, error=outcome.message))
        else:
            result = outcome.result
            figures.append(call_figures(scenario, result.record, result.sessions))
    return figures


def print_figures(figures: Sequence[CallFigures], out: TextIO) -> None:
    """Each call's figures, then the totals per audio format."""
    print(
        f"{'scenario':<48} {'format':<9} {'speech s':>8} {'stops':>5} {'false':>5}"
        f" {'caller':>6} {'real':>6} {'VAD+':>4}",
        file=out,
    )
    for call in figures:
        if call.error is not None:
            print(f"{call.scenario:<48} {call.audio_format:<9} BROKEN: {call.error}", file=out)
            continue
        print(
            f"{call.scenario:<48} {call.audio_format:<9} {call.agent_speech_ms / 1000:>8.1f}"
            f" {call.barge_ins:>5} {call.false_barge_ins:>5} {call.caller_barge_ins:>6}"
            f" {call.real_barge_ins:>3}/{call.expected_barge_ins:<2}"
            f" {call.vad_turns_outside_lines:>4}",
            file=out,
        )
    print(file=out)
    for audio_format in sorted({call.audio_format for call in figures}):
        calls = [c for c in figures if c.audio_format == audio_format and c.error is None]
        broken = sum(c.audio_format == audio_format and c.error is not None for c in figures)
        minutes = sum(c.agent_speech_ms for c in calls) / 60_000
        false = sum(c.false_barge_ins for c in calls)
        per_minute = f"{false / minutes:.2f}" if minutes else "-"
        print(
            f"{audio_format}: {len(calls)} calls ({broken} broken),"
            f" agent speech heard {minutes:.2f} min,"
            f" barge-ins {sum(c.barge_ins for c in calls)},"
            f" false {false} ({per_minute} per min of agent speech),"
            f" in caller lines {sum(c.caller_barge_ins for c in calls)},"
            f" real {sum(c.real_barge_ins for c in calls)}"
            f"/{sum(c.expected_barge_ins for c in calls)} expected,"
            f" VAD turns outside lines {sum(c.vad_turns_outside_lines for c in calls)},"
            f" late phone frames {sum(c.late_frames for c in calls)}",
            file=out,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m callbridge.sim.barge_in_figures [--echo DELAY_MS LEVEL_DB] [PATH...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m callbridge.sim.barge_in_figures",
        description="Replay scenario files in both audio formats and count barge-ins, false"
        " and real, from the phone's and the Voice Live emulator's records.",
    )
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("tests/calls")])
    parser.add_argument(
        "--echo",
        nargs=2,
        type=float,
        metavar=("DELAY_MS", "LEVEL_DB"),
        help="every caller is on a speakerphone: e.g. --echo 150 -15 (default: no echo)",
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    args = parser.parse_args(argv)
    try:
        echo = None if args.echo is None else Echo(delay_ms=args.echo[0], level_db=args.echo[1])
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging("console", "ERROR")
    try:
        figures = asyncio.run(measure(args.paths, echo=echo, concurrency=args.concurrency))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    heard = "no echo" if echo is None else f"echo {echo.delay_ms:g} ms, {echo.level_db:g} dB"
    print(f"Barge-ins, {heard}:", file=sys.stdout)
    print_figures(figures, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
