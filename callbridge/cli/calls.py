"""The subcommands that place simulated calls through the real bridge on loopback, or draw
one: ``demo`` (a scripted call), ``replay`` (scenarios and recordings, checked), ``report``
(a recorded call as one HTML page) and ``bench`` (many calls at once, measured)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Final

from callbridge.cli.base import (
    EXIT_OK,
    CliError,
    Commands,
    milliseconds,
    output_dir,
    seconds,
    subcommand,
    transcripts_logged,
    whole_number,
)
from callbridge.process.logs import configure_logging
from callbridge.report import ReportError, write_call_page
from callbridge.sim import cpu_split
from callbridge.sim.bench import MIN_SECONDS, RAMP_S, run_bench
from callbridge.sim.bench_bridge import has_proc
from callbridge.sim.demo import run_demo
from callbridge.sim.replay import run_replay

__all__ = ["CALL_SUBCOMMANDS"]


# -- running them --


def _demo(args: argparse.Namespace) -> int:
    out_dir = None if args.out is None else output_dir(args.out)
    if out_dir is None and os.environ.get("CALLBRIDGE_RECORD", "").lower() == "on":
        # The variable is the service's (serve, dev); a demo call is recorded with --out.
        print(
            "callbridge demo: CALLBRIDGE_RECORD is for serve and dev; to keep the demo call's"
            " recording, give --out DIR (it goes in DIR/recording/)",
            file=sys.stderr,
        )
    transcripts = transcripts_logged(default=True)
    configure_logging("console", "INFO" if args.verbose else "WARNING", transcripts=transcripts)
    return run_demo(
        json_output=args.json,
        out_dir=out_dir,
        audio_format=args.audio_format,
        sample_rate=args.sample_rate,
    )


def _replay(args: argparse.Namespace) -> int:
    out_dir = None if args.out is None else output_dir(args.out)
    # Console logging at WARNING, as for the demo: the report, not the log, is the output.
    configure_logging("console", "WARNING", transcripts=transcripts_logged(default=True))
    return run_replay(
        args.paths, out_dir=out_dir, json_output=args.json, concurrency=args.concurrency
    )


def _report(args: argparse.Namespace) -> int:
    try:
        page = write_call_page(args.path, args.out)
    except (ReportError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"Wrote {page}")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    if not has_proc():
        raise CliError("callbridge bench reads CPU and memory from /proc: it needs Linux")
    configure_logging("console", "WARNING")
    return asyncio.run(
        run_bench(
            calls=args.calls,
            seconds=args.seconds,
            json_output=args.json,
            audio_format=args.audio_format,
            sample_rate=args.sample_rate,
            acs_marks=args.acs_marks,
            line_playout_delay_ms=args.line_playout_delay_ms,
            ramp_s=args.ramp_s,
            bridge_cpus=args.bridge_cpus,
        )
    )


# -- their options --


def _add_call_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that place simulated calls."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--audio-format",
        choices=["g711_ulaw", "pcm16"],
        default="g711_ulaw",
        help="the audio format callbridge asks Voice Live for",
    )
    parser.add_argument(
        "--sample-rate",
        type=whole_number(1),
        choices=[16000, 24000],
        default=16000,
        help="ACS's media sample rate, in Hz",
    )


def _add_demo(commands: Commands) -> None:
    demo = subcommand(
        commands,
        "demo",
        _demo,
        "run a scripted call with a barge-in through the real bridge, on loopback",
        epilog="CALLBRIDGE_LOG_TRANSCRIPTS (default on here) shows what was said in the logs.",
        verbose="show the bridge's logs, and the traceback of a failure",
    )
    _add_call_options(demo)
    demo.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write call.wav, report.json, the recording and call.html into this folder",
    )


def _add_replay(commands: Commands) -> None:
    replay = subcommand(
        commands,
        "replay",
        _replay,
        "replay scenario files and call recordings on loopback and check their expectations",
    )
    replay.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="scenario files, recordings, folders"
    )
    replay.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write call.wav, report.json, the recording and call.html per call here",
    )
    replay.add_argument("--json", action="store_true", help="print the results as JSON")
    replay.add_argument(
        "--concurrency", type=whole_number(1), default=1, help="calls replayed at once"
    )


def _add_report(commands: Commands) -> None:
    report = subcommand(
        commands,
        "report",
        _report,
        "draw a recorded call (or a demo/replay --out folder) as one HTML page",
    )
    report.add_argument("path", type=Path, metavar="PATH", help="recording or --out folder")
    report.add_argument("--out", type=Path, metavar="FILE", help="default: PATH/call.html")


def _add_bench(commands: Commands) -> None:
    bench = subcommand(
        commands, "bench", _bench, "N concurrent simulated calls against one bridge process"
    )
    _add_call_options(bench)
    bench.add_argument("--calls", type=whole_number(1), default=10, help="calls placed at once")
    bench.add_argument(
        "--seconds",
        type=whole_number(MIN_SECONDS, why=" (one exchange with a barge-in takes about 17 s)"),
        default=20,
        help="how long each call lasts; the caller hangs up then",
    )
    bench.add_argument(
        "--acs-marks",
        action="store_true",
        help="mark frames and measure ACS's playout delay (CALLBRIDGE_ACS_MARKS=on)",
    )
    bench.add_argument(
        "--line-playout-delay-ms",
        type=milliseconds,
        metavar="MS",
        help="the phone lines' true playout delay (default: the configured 60 ms)",
    )
    bench.add_argument(
        "--ramp-s",
        type=seconds,
        default=RAMP_S,
        metavar="S",
        help="the calls start spread over this long (a steep arrival by default)",
    )
    bench.add_argument(
        "--bridge-cpus",
        type=cpu_split.bridge_cpus,
        metavar="CPUS",
        help="run the bridge on these cores (such as 0) and the emulator and phones on the"
        " others, as a replica has its vCPU to itself (Linux)",
    )


CALL_SUBCOMMANDS: Final = (_add_demo, _add_replay, _add_report, _add_bench)
"""Each adds one subcommand, in the order ``--help`` lists them."""
