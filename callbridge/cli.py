"""Command line: ``callbridge serve | dial | demo | replay | report | bench | emulate``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from azure.core.exceptions import HttpResponseError

from callbridge.adapters.call_automation import CallControl, PlacedCall
from callbridge.core.numbers import mask
from callbridge.core.settings import Settings
from callbridge.process.config import ConfigError, load_settings
from callbridge.process.logs import configure_logging
from callbridge.process.server import serve
from callbridge.process.telemetry_export import configure_telemetry
from callbridge.report import ReportError, write_call_page
from callbridge.sim.bench import has_proc, run_bench
from callbridge.sim.demo import run_demo
from callbridge.sim.harness import demo_turns
from callbridge.sim.replay import run_replay
from callbridge.sim.voicelive import load_turns, serve_emulator
from callbridge.tools import check_tools
from callbridge.web.outbound import DialError, place_call


def _settings() -> Settings | None:
    """Settings from the environment, or None after printing every problem."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"callbridge: {exc}", file=sys.stderr)
        return None
    if problems := check_tools(settings.routing):
        print("callbridge: invalid configuration:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return None
    return settings


def _serve(_: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    configure_telemetry(settings.appinsights_connection_string)
    asyncio.run(serve(settings))
    return 0


def _dial(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)

    async def dial() -> PlacedCall:
        control = CallControl(settings)
        try:
            return await place_call(control, settings.routing, args.number, args.profile)
        finally:
            await control.aclose()

    try:
        placed = asyncio.run(dial())
    except DialError as exc:
        print(f"callbridge dial: {exc}", file=sys.stderr)
        return 2
    except HttpResponseError as exc:
        print(f"callbridge dial: ACS refused the call ({exc.status_code})", file=sys.stderr)
        return 1
    # The running service at CALLBRIDGE_PUBLIC_URL bridges the call once it is answered.
    print(f"Calling {mask(args.number)}: callConnectionId {placed.call_connection_id}")
    return 0


def _emulate(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, "INFO")
    turns = load_turns(args.turn) if args.turn else demo_turns()

    def announce(endpoint: str) -> None:
        print(f"Voice Live emulator at {endpoint} (api-key: {args.api_key})", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_emulator(args.host, args.port, turns, api_key=args.api_key, on_started=announce)
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    configure_logging("console", "INFO" if args.verbose else "WARNING")
    return run_demo(
        json_output=args.json,
        out_dir=args.out,
        audio_format=args.audio_format,
        sample_rate=args.sample_rate,
    )


def _replay(args: argparse.Namespace) -> int:
    # Console logging at WARNING, as for the demo: the report, not the log, is the output.
    configure_logging("console", "WARNING")
    return run_replay(
        args.paths, out_dir=args.out, json_output=args.json, concurrency=args.concurrency
    )


def _report(args: argparse.Namespace) -> int:
    try:
        page = write_call_page(args.path, args.out)
    except (ReportError, OSError) as exc:
        print(f"callbridge report: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {page}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if not has_proc():
        print("callbridge bench reads CPU and memory from /proc: it needs Linux", file=sys.stderr)
        return 2
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
        )
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge", description="Bridge ACS phone calls to Azure AI Voice Live."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service (configured by environment)")
    serve.set_defaults(run=_serve)

    dial = commands.add_parser(
        "dial", help="place an outbound call, bridged by the running service (configured by env)"
    )
    dial.add_argument("number", help="E.164 number to call, e.g. +18005550100")
    dial.add_argument("--profile", help="agent profile (default: the routing table's)")
    dial.set_defaults(run=_dial)

    replay = commands.add_parser(
        "replay", help="replay scenario files and call recordings on loopback; check expectations"
    )
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    replay.add_argument("--out", type=Path, metavar="DIR", help="write call.wav and report.json")
    replay.add_argument("--json", action="store_true", help="print the results as JSON")
    replay.add_argument("--concurrency", type=_positive_int, default=1, help="calls at once")
    replay.set_defaults(run=_replay)

    report = commands.add_parser(
        "report", help="draw a recorded call (or a demo/replay --out folder) as one HTML page"
    )
    report.add_argument("path", type=Path, metavar="PATH", help="recording or --out folder")
    report.add_argument("--out", type=Path, metavar="FILE", help="default: PATH/call.html")
    report.set_defaults(run=_report)

    emulate = commands.add_parser("emulate", help="run the Voice Live emulator alone")
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8765)
    emulate.add_argument("--api-key", default="local-emulator-key")
    emulate.add_argument(
        "--turn",
        type=Path,
        action="append",
        default=[],
        help="WAV file of a scripted agent turn (repeatable; default: the shipped demo turns)",
    )
    emulate.add_argument("--log-format", choices=["auto", "console", "json"], default="auto")
    emulate.set_defaults(run=_emulate)

    for name, helptext in (
        ("demo", "run a scripted call with a barge-in through the real bridge, on loopback"),
        ("bench", "N concurrent simulated calls against one bridge process"),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--json", action="store_true", help="print the report as JSON")
        sub.add_argument("--audio-format", choices=["g711_ulaw", "pcm16"], default="g711_ulaw")
        sub.add_argument("--sample-rate", type=int, choices=[16000, 24000], default=16000)
        if name == "demo":
            sub.add_argument("--out", type=Path, help="write call.wav and report.json here")
            sub.add_argument("--verbose", action="store_true", help="show the bridge's logs")
            sub.set_defaults(run=_demo)
        else:
            sub.add_argument("--calls", type=_positive_int, default=10)
            sub.add_argument("--seconds", type=_positive_int, default=20)
            sub.add_argument(
                "--acs-marks",
                action="store_true",
                help="mark frames and measure ACS's playout delay (CALLBRIDGE_ACS_MARKS=on)",
            )
            sub.add_argument(
                "--line-playout-delay-ms",
                type=float,
                help="the phone lines' true playout delay (default: the configured 60 ms)",
            )
            sub.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.run(args)
    return result
