"""What every subcommand shares: the exit codes, ``CliError``, the help formatter, the
argument types, and the checks of inputs several subcommands take (``--out``, the transcript
setting, a port to listen on)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeAlias

from callbridge.process.config import ConfigError, log_transcripts

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

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns: each module's ``_add_<name>`` functions add to it."""


class CliError(Exception):
    """An expected failure: the message says what failed and what to do; ``code`` is the exit
    code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- the parser --


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, where it has one, and keeps the epilog's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def subcommand(
    commands: Commands,
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
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help=verbose)
    parser.set_defaults(run=run)
    return parser


def whole_number(
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


def duration(unit: str, maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type for a duration in ``unit``, from 0 (up to ``maximum``, if any)."""
    allowed = f"0 or more {unit}" if maximum is None else f"from 0 to {maximum:g} {unit}"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not (math.isfinite(value) and value >= 0 and (maximum is None or value <= maximum)):
            raise argparse.ArgumentTypeError(f"{text} must be {allowed}")
        return value

    return convert


milliseconds: Final = duration("milliseconds")
seconds: Final = duration("seconds", 600)


PORT: Final = whole_number(0, 65535)
"""An argparse type for a TCP port (0: any free one)."""


# -- inputs several subcommands check --


def transcripts_logged(*, default: bool) -> bool:
    """CALLBRIDGE_LOG_TRANSCRIPTS, with this command's default."""
    try:
        return log_transcripts(default=default)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def cannot_listen(host: str, port: int, exc: OSError) -> CliError:
    """The failure of a server that could not take its port."""
    reason = exc.strerror or str(exc)
    return CliError(
        f"cannot listen on {host}:{port}: {reason}; stop what holds the port, or choose "
        "another with --port",
        EXIT_UNAVAILABLE,
    )


def output_dir(path: Path) -> Path:
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
