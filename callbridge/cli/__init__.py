"""Command line: ``callbridge serve | dial | config | demo | replay | report | bench | emulate |
dev | ring``.

Each subcommand is one ``_add_<name>`` function, which declares its options, and one
``_<name>`` function, which runs it, in the module for its kind of job: ``service`` (the real
service), ``calls`` (simulated calls and their pages), ``local`` (the local phone line);
``base`` holds what they share. Expected failures (a bad path, an invalid file, a port in use,
a service that cannot be reached) raise ``CliError``: ``main`` prints it as one line (or one
list of problems) and exits with its documented code; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from callbridge.cli.base import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    HelpFormatter,
)
from callbridge.cli.calls import CALL_SUBCOMMANDS
from callbridge.cli.local import LOCAL_SUBCOMMANDS
from callbridge.cli.service import SERVICE_SUBCOMMANDS

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "SUBCOMMANDS",
    "CliError",
    "build_parser",
    "main",
]

SUBCOMMANDS: Final = (*SERVICE_SUBCOMMANDS, *CALL_SUBCOMMANDS, *LOCAL_SUBCOMMANDS)
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
        formatter_class=HelpFormatter,
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
