"""Command line: ``callbridge serve | dial | config | demo | replay | report | bench | emulate |
dev | ring``.

Each subcommand is one ``_add_<name>`` function, which declares its options, and one
``_<name>`` function, which runs it. Expected failures (a bad path, an invalid file, a port in
use, a service that cannot be reached) raise ``CliError``: ``main`` prints it as one line (or
one list of problems) and exits with its documented code; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import traceback
import wave
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final, TypeAlias

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from callbridge.adapters.call_automation import CallControl, OperationTimeoutError, PlacedCall
from callbridge.core.numbers import mask, parse_e164
from callbridge.core.settings import Settings
from callbridge.process.config import ConfigError, load_settings, log_transcripts
from callbridge.process.config_view import effective_settings
from callbridge.process.logs import configure_logging
from callbridge.process.server import serve
from callbridge.process.telemetry_export import configure_telemetry
from callbridge.report import ReportError, write_call_page
from callbridge.sim.bench import MIN_SECONDS, has_proc, run_bench
from callbridge.sim.demo import CALLER_PATIENCE_S, run_demo
from callbridge.sim.dev import LINE_FILE, RECORDINGS, dev_settings, run_dev_line
from callbridge.sim.dev_calls import RingRequest
from callbridge.sim.harness import DIALED_NUMBER, demo_turns
from callbridge.sim.replay import run_replay
from callbridge.sim.ring import RingError, ask_dev, check_request, find_line, print_result
from callbridge.sim.scenario_schema import ScenarioError
from callbridge.sim.voicelive import AgentTurn, load_turns, serve_emulator
from callbridge.web.outbound import DialError, place_call

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""The command ran, and what it checked failed: a demo or replayed call went wrong, ACS
refused a dialled call."""
EXIT_USAGE: Final = 2
"""Bad arguments, configuration or files; nothing was started. (argparse exits 2 too.)"""
EXIT_UNAVAILABLE: Final = 3
"""A port is in use, or a service cannot be reached."""
EXIT_INTERRUPTED: Final = 130
"""Stopped with Ctrl-C (128 + SIGINT, as shells report it)."""

EXIT_CODES: Final = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_FAILED}    the command ran and what it checked failed (a call went wrong, ACS refused)
  {EXIT_USAGE}    bad arguments, configuration or files: nothing was started
  {EXIT_UNAVAILABLE}    a port is in use, or a service cannot be reached
  {EXIT_INTERRUPTED}  stopped with Ctrl-C
Add --verbose to see the traceback of a failure."""

CONFIGURED_BY_ENV: Final = """\
configuration: environment variables, read once at start-up. Required:
  AZURE_VOICE_LIVE_ENDPOINT, ACS_ENDPOINT, CALLBRIDGE_PUBLIC_URL, and with authentication on
  (CALLBRIDGE_AUTH, default on) ACS_RESOURCE_ID, CALLBRIDGE_SIGNING_KEY and
  CALLBRIDGE_WEBHOOK_SECRET (or CALLBRIDGE_WEBHOOK_ENTRA_TENANT/_AUDIENCE). Optional: the
  routing file CALLBRIDGE_ROUTES, logging LOG_FORMAT, LOG_LEVEL, CALLBRIDGE_LOG_TRANSCRIPTS
  (default off), and the rest in README's Configuration table.
  `callbridge config` prints the effective configuration (secrets hidden) and checks it."""


_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """An expected failure: the message says what failed and what to do; ``code`` is the exit
    code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- the subcommands --


def _serve(args: argparse.Namespace) -> int:
    settings = _load_settings()
    # Flags override the environment.
    settings = replace(
        settings,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
    )
    configure_logging(settings.log_format, settings.log_level, transcripts=settings.log_transcripts)
    configure_telemetry(settings.appinsights_connection_string)
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        raise _cannot_listen(settings.host, settings.port, exc) from exc
    return EXIT_OK


def _dial(args: argparse.Namespace) -> int:
    settings = _load_settings()
    configure_logging(settings.log_format, settings.log_level, transcripts=settings.log_transcripts)

    async def dial() -> PlacedCall:
        control = CallControl(settings)
        try:
            return await place_call(control, settings.routing, args.number, args.profile)
        finally:
            await control.aclose()

    endpoint = settings.acs.endpoint
    try:
        placed = asyncio.run(dial())
    except DialError as exc:
        raise CliError(str(exc)) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise CliError(
            f"cannot reach ACS at {endpoint} ({exc.message}); check ACS_ENDPOINT and the network",
            EXIT_UNAVAILABLE,
        ) from exc
    except OperationTimeoutError as exc:
        raise CliError(
            f"ACS at {endpoint} did not answer in time ({exc}); try again, or check ACS's status",
            EXIT_UNAVAILABLE,
        ) from exc
    except HttpResponseError as exc:
        raise CliError(
            f"ACS refused the call ({exc.status_code}: {exc.reason}); check ACS_CALLER_ID, "
            "the access key or role, and the number",
            EXIT_FAILED,
        ) from exc
    # The running service at CALLBRIDGE_PUBLIC_URL bridges the call once it is answered.
    print(f"Calling {mask(args.number)}: callConnectionId {placed.call_connection_id}")
    return EXIT_OK


def _config(_: argparse.Namespace) -> int:
    settings = _load_settings()
    for name, value in effective_settings(settings):
        print(f"{name} = {value}")
    print("callbridge config: the configuration is valid", file=sys.stderr)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    out_dir = None if args.out is None else _output_dir(args.out)
    transcripts = _log_transcripts(default=True)
    configure_logging("console", "INFO" if args.verbose else "WARNING", transcripts=transcripts)
    return run_demo(
        json_output=args.json,
        out_dir=out_dir,
        audio_format=args.audio_format,
        sample_rate=args.sample_rate,
    )


def _replay(args: argparse.Namespace) -> int:
    out_dir = None if args.out is None else _output_dir(args.out)
    # Console logging at WARNING, as for the demo: the report, not the log, is the output.
    configure_logging("console", "WARNING", transcripts=_log_transcripts(default=True))
    return run_replay(
        args.paths, out_dir=out_dir, json_output=args.json, concurrency=args.concurrency
    )


def _report(args: argparse.Namespace) -> int:
    try:
        page = write_call_page(args.path, args.out)
    except (ReportError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"Wrote {page}")
    return 0


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
        )
    )


def _emulate(args: argparse.Namespace) -> int:
    turns = _turns(args.turn) if args.turn else demo_turns()
    configure_logging(args.log_format, "INFO", transcripts=_log_transcripts(default=True))

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
        raise _cannot_listen(args.host, args.port, exc) from exc
    return EXIT_OK


def _dev(args: argparse.Namespace) -> int:
    recordings = None if args.no_record else _recordings_dir(args.recordings)
    try:
        settings = dev_settings(os.environ, recordings)
    except ConfigError as exc:
        raise CliError(
            f"{exc}\n`callbridge dev` reads the environment `callbridge serve` does, filling in "
            "where ACS and Voice Live are (README: Configuration)."
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
    out_dir = None if args.out is None else _output_dir(args.out).resolve()
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


# -- what the subcommands share --


def _load_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise CliError(
            f"{exc}\nFix these and check again with `callbridge config` (README: Configuration)."
        ) from exc


def _log_transcripts(*, default: bool) -> bool:
    try:
        return log_transcripts(default=default)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _cannot_listen(host: str, port: int, exc: OSError) -> CliError:
    reason = exc.strerror or str(exc)
    return CliError(
        f"cannot listen on {host}:{port}: {reason}; stop what holds the port, or choose "
        "another with --port",
        EXIT_UNAVAILABLE,
    )


def _output_dir(path: Path) -> Path:
    """``--out DIR``, created now: a bad path fails before a call, not after it."""
    if path.exists() and not path.is_dir():
        raise CliError(f"--out {path}: a file is in the way; name a folder (created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {path}: cannot create the folder: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK):
        raise CliError(f"--out {path}: the folder is not writable")
    return path


def _e164(text: str) -> str:
    number = parse_e164(text)
    if number is None:
        raise CliError(f"{text!r} is not an E.164 number, e.g. {DIALED_NUMBER}")
    return number


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


def _turns(paths: Sequence[Path]) -> list[AgentTurn]:
    try:
        return load_turns(paths)
    except (OSError, EOFError, wave.Error, ValueError) as exc:
        raise CliError(f"--turn: cannot read the WAV file: {exc}; give PCM16 mono WAVs") from exc


# -- the parser --


def _whole_number(
    minimum: int, maximum: int | None = None, *, why: str = ""
) -> Callable[[str], int]:
    """An argparse type for whole numbers in a range; its messages name no internals."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}{why}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above {maximum}")
        return value

    return convert


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more milliseconds")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{text} must be from 0 to 600 seconds")
    return value


_PORT: Final = _whole_number(0, 65535)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, where it has one, and keeps the epilog's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _subcommand(
    commands: _Commands,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    *,
    epilog: str = "",
    verbose: str = "show the traceback of a failure",
) -> argparse.ArgumentParser:
    """A subcommand with the options every one has (``--verbose``) and the exit codes."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"{epilog}\n\n{EXIT_CODES}" if epilog else EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help=verbose)
    parser.set_defaults(run=run)
    return parser


def _add_serve(commands: _Commands) -> None:
    serve = _subcommand(
        commands,
        "serve",
        _serve,
        "run the service until SIGTERM, then drain",
        epilog=CONFIGURED_BY_ENV,
    )
    serve.add_argument(
        "--host", help="address to listen on (default: CALLBRIDGE_HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_PORT, help="port to listen on (default: CALLBRIDGE_PORT, else 8000)"
    )


def _add_dial(commands: _Commands) -> None:
    dial = _subcommand(
        commands,
        "dial",
        _dial,
        "place an outbound call; the running service bridges it once answered",
        epilog=CONFIGURED_BY_ENV + "\n  Dialling also needs ACS_CALLER_ID.",
    )
    dial.add_argument("number", help="E.164 number to call, e.g. +18005550100")
    dial.add_argument("--profile", help="agent profile (default: the routing table's)")


def _add_config(commands: _Commands) -> None:
    _subcommand(
        commands,
        "config",
        _config,
        "print the effective configuration (secrets hidden) and check it, starting nothing",
        epilog=CONFIGURED_BY_ENV,
    )


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
        type=_whole_number(1),
        choices=[16000, 24000],
        default=16000,
        help="ACS's media sample rate, in Hz",
    )


def _add_demo(commands: _Commands) -> None:
    demo = _subcommand(
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


def _add_replay(commands: _Commands) -> None:
    replay = _subcommand(
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
        "--concurrency", type=_whole_number(1), default=1, help="calls replayed at once"
    )


def _add_report(commands: _Commands) -> None:
    report = _subcommand(
        commands,
        "report",
        _report,
        "draw a recorded call (or a demo/replay --out folder) as one HTML page",
    )
    report.add_argument("path", type=Path, metavar="PATH", help="recording or --out folder")
    report.add_argument("--out", type=Path, metavar="FILE", help="default: PATH/call.html")


def _add_bench(commands: _Commands) -> None:
    bench = _subcommand(
        commands, "bench", _bench, "N concurrent simulated calls against one bridge process"
    )
    _add_call_options(bench)
    bench.add_argument("--calls", type=_whole_number(1), default=10, help="calls placed at once")
    bench.add_argument(
        "--seconds",
        type=_whole_number(MIN_SECONDS, why=" (one exchange with a barge-in takes about 17 s)"),
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
        type=_milliseconds,
        metavar="MS",
        help="the phone lines' true playout delay (default: the configured 60 ms)",
    )


def _add_emulate(commands: _Commands) -> None:
    emulate = _subcommand(commands, "emulate", _emulate, "run the Voice Live emulator alone")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulate.add_argument("--port", type=_PORT, default=8765, help="port to listen on")
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


def _add_dev(commands: _Commands) -> None:
    dev = _subcommand(
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
        type=_PORT,
        default=0,
        metavar="PORT",
        help="loopback port `callbridge ring` talks to (0: any free one)",
    )


def _add_ring(commands: _Commands) -> None:
    ring = _subcommand(
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
        type=_seconds,
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


SUBCOMMANDS: Final = (
    _add_serve,
    _add_dial,
    _add_config,
    _add_demo,
    _add_replay,
    _add_report,
    _add_bench,
    _add_emulate,
    _add_dev,
    _add_ring,
)
"""Each adds one subcommand; ``--help`` lists them in this order."""


def _version() -> str:
    try:
        return version("callbridge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge",
        description="Bridge ACS phone calls to Azure AI Voice Live.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"callbridge {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"callbridge {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
