"""The subcommands of the local phone line, the stand-ins run as services on loopback:
``dev`` runs callbridge with both of them, ``ring`` places a simulated call into a running
``dev``, and ``emulate`` runs the Voice Live emulator alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from callbridge.cli.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    PORT,
    CliError,
    Commands,
    cannot_listen,
    output_dir,
    seconds,
    subcommand,
    transcripts_logged,
)
from callbridge.core.numbers import parse_e164
from callbridge.process.config import ConfigError
from callbridge.process.logs import configure_logging
from callbridge.sim.demo import CALLER_PATIENCE_S
from callbridge.sim.demo_conversation import demo_turns
from callbridge.sim.dev import LINE_FILE, RECORDINGS, dev_settings, run_dev_line
from callbridge.sim.dev_calls import RingRequest
from callbridge.sim.harness import DIALED_NUMBER
from callbridge.sim.ring import RingError, ask_dev, check_request, find_line, print_result
from callbridge.sim.scenario_schema import ScenarioError
from callbridge.sim.voicelive import AgentTurn, load_turns, serve_emulator

__all__ = ["LOCAL_SUBCOMMANDS"]


# -- running them --


def _emulate(args: argparse.Namespace) -> int:
    turns = _turns(args.turn) if args.turn else demo_turns()
    configure_logging(args.log_format, "INFO", transcripts=transcripts_logged(default=True))

    def announce(endpoint: str) -> None:
        print(f"Voice Live emulator at {endpoint} (api-key: {args.api_key})", flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the emulator is stopped
            asyncio.run(
                serve_emulator(
                    args.host, args.port, turns, api_key=args.api_key, on_started=announce
                )
            )
    except OSError as exc:
        raise cannot_listen(args.host, args.port, exc) from exc
    return EXIT_OK


def _dev(args: argparse.Namespace) -> int:
    recordings = None if args.no_record else _recordings_dir(args.recordings)
    try:
        settings = dev_settings(os.environ, recordings)
    except ConfigError as exc:
        raise CliError(
            f"{exc}\n`callbridge dev` reads the environment `callbridge serve` does, filling in "
            "where ACS and Voice Live are (docs/configuration.md)."
        ) from exc
    configure_logging(settings.log_format, settings.log_level, transcripts=settings.log_transcripts)
    try:
        stopped_by = run_dev_line(
            settings, routes=os.environ.get("CALLBRIDGE_ROUTES"), control_port=args.control_port
        )
    except OSError as exc:
        raise CliError(
            f"cannot start the local line: {exc.strerror or exc}; free the port, or choose "
            "another with --control-port",
            EXIT_UNAVAILABLE,
        ) from exc
    return EXIT_INTERRUPTED if stopped_by == signal.SIGINT else EXIT_OK


def _ring(args: argparse.Namespace) -> int:
    if args.scenario is not None and (args.number is not None or args.say):
        raise CliError("--scenario brings its own caller and agent: give no number or --say")
    number = _e164(args.number or DIALED_NUMBER)
    caller = None if args.from_number is None else _e164(args.from_number)
    out_dir = None if args.out is None else output_dir(args.out).resolve()
    request = RingRequest(
        to=number,
        from_number=caller,
        say=[path.resolve() for path in args.say],
        scenario=None if args.scenario is None else args.scenario.resolve(),
        out=out_dir,
        hangup_after_s=args.hangup_after,
    )
    try:
        check_request(request)
        control_url, token = find_line(LINE_FILE, args.to)
        result = asyncio.run(ask_dev(control_url, token, request))
    except ScenarioError as exc:
        raise CliError(
            "--scenario: the file cannot be used:\n  " + "\n  ".join(exc.problems)
        ) from exc
    except ValueError as exc:
        raise CliError(f"--say: {exc}") from exc
    except RingError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE if exc.unavailable else EXIT_FAILED) from exc
    print_result(result, json_output=args.json, cwd=Path.cwd())
    return EXIT_FAILED if result["failures"] else EXIT_OK


def _turns(paths: Sequence[Path]) -> list[AgentTurn]:
    try:
        return load_turns(paths)
    except (OSError, EOFError, wave.Error, ValueError) as exc:
        raise CliError(f"--turn: cannot read the WAV file: {exc}; give PCM16 mono WAVs") from exc


def _recordings_dir(path: Path) -> Path:
    """``--recordings DIR``, created now and made absolute (``ring`` may run elsewhere)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(
            f"--recordings {path}: cannot create the folder: {exc.strerror or exc}"
        ) from exc
    if not os.access(path, os.W_OK):
        raise CliError(f"--recordings {path}: the folder is not writable")
    return path.resolve()


def _e164(text: str) -> str:
    number = parse_e164(text)
    if number is None:
        raise CliError(f"{text!r} is not an E.164 number, e.g. {DIALED_NUMBER}")
    return number


# -- their options --


def _add_emulate(commands: Commands) -> None:
    emulate = subcommand(commands, "emulate", _emulate, "run the Voice Live emulator alone")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulate.add_argument("--port", type=PORT, default=8765, help="port to listen on")
    emulate.add_argument("--api-key", default="local-emulator-key", help="the key it accepts")
    emulate.add_argument(
        "--turn",
        type=Path,
        action="append",
        default=[],
        metavar="WAV",
        help="a scripted agent turn, PCM16 mono (repeatable; default: the shipped demo turns)",
    )
    emulate.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        default="auto",
        help="auto: console on a terminal, else JSON",
    )


def _add_dev(commands: Commands) -> None:
    dev = subcommand(
        commands,
        "dev",
        _dev,
        "run callbridge with the ACS and Voice Live stand-ins on loopback: a local phone line",
        epilog=(
            "Runs until Ctrl-C (exit 130) or SIGTERM (exit 0); calls in progress are hung up.\n"
            "configuration: the environment `callbridge serve` reads (CALLBRIDGE_ROUTES,\n"
            "  AGENT_TOOLS_MODULE, AGENT_*, pacing, logging...), with where ACS and Voice\n"
            "  Live are and the secrets between them filled in. CALLBRIDGE_LOG_TRANSCRIPTS is\n"
            f"  on by default. The control URL and token go to {LINE_FILE}, for `ring`."
        ),
    )
    dev.add_argument(
        "--recordings",
        type=Path,
        default=RECORDINGS,
        metavar="DIR",
        help="record every call into this folder",
    )
    dev.add_argument("--no-record", action="store_true", help="record nothing")
    dev.add_argument(
        "--control-port",
        type=PORT,
        default=0,
        metavar="PORT",
        help="loopback port `callbridge ring` talks to (0: any free one)",
    )


def _add_ring(commands: Commands) -> None:
    ring = subcommand(
        commands,
        "ring",
        _ring,
        "place a simulated call into a running `callbridge dev` and print its report",
        epilog=(
            f"Finds `callbridge dev` through {LINE_FILE} in this folder (elsewhere: --to and\n"
            "CALLBRIDGE_DEV_TOKEN). Without --say or --scenario, the demo's caller talks to the\n"
            "demo's agent; with --say, the demo's agent answers your lines."
        ),
    )
    ring.add_argument(
        "number", nargs="?", metavar="NUMBER", help=f"the number dialed (default: {DIALED_NUMBER})"
    )
    ring.add_argument(
        "--say",
        type=Path,
        action="append",
        default=[],
        metavar="WAV",
        help="a caller line, PCM16 mono, said once the agent is quiet (repeatable; its "
        "transcript: the .txt beside it)",
    )
    ring.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="a scenario file: its caller, agent and checks",
    )
    ring.add_argument("--from", dest="from_number", metavar="NUMBER", help="the caller's number")
    ring.add_argument(
        "--hangup-after",
        type=seconds,
        default=CALLER_PATIENCE_S,
        metavar="S",
        help="the caller hangs up this long after their last line",
    )
    ring.add_argument("--to", metavar="URL", help=f"dev's control URL (default: {LINE_FILE}'s)")
    ring.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write call.wav, report.json, the recording and call.html into this folder",
    )
    ring.add_argument("--json", action="store_true", help="print the report as JSON")


LOCAL_SUBCOMMANDS: Final = (_add_emulate, _add_dev, _add_ring)
"""Each adds one subcommand, in the order ``--help`` lists them."""
