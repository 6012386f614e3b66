"""The subcommands of the real service: ``serve`` runs it, ``dial`` places an outbound call
through it, ``config`` prints and checks its configuration. All three read the environment."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from typing import Final

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from callbridge.adapters.call_automation import CallControl, OperationTimeoutError, PlacedCall
from callbridge.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    PORT,
    CliError,
    Commands,
    cannot_listen,
    subcommand,
)
from callbridge.core.numbers import mask
from callbridge.core.settings import Settings
from callbridge.process import runtime
from callbridge.process.config import ConfigError, load_settings
from callbridge.process.config_view import effective_settings
from callbridge.process.logs import configure_logging
from callbridge.process.server import serve
from callbridge.process.telemetry_export import configure_telemetry
from callbridge.web.outbound import DialError, place_call

__all__ = ["SERVICE_SUBCOMMANDS"]

CONFIGURED_BY_ENV: Final = """\
configuration: environment variables, read once at start-up. Required:
  AZURE_VOICE_LIVE_ENDPOINT, ACS_ENDPOINT, CALLBRIDGE_PUBLIC_URL, and with authentication on
  (CALLBRIDGE_AUTH, default on) ACS_RESOURCE_ID, CALLBRIDGE_SIGNING_KEY and
  CALLBRIDGE_WEBHOOK_SECRET (or CALLBRIDGE_WEBHOOK_ENTRA_TENANT/_AUDIENCE). Optional: the
  routing file CALLBRIDGE_ROUTES, logging LOG_FORMAT, LOG_LEVEL, CALLBRIDGE_LOG_TRANSCRIPTS
  (default off), and the rest in docs/configuration.md.
  `callbridge config` prints the effective configuration (secrets hidden) and checks it."""


# -- running them --


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
        runtime.run(serve(settings), settings.event_loop)
    except OSError as exc:
        raise cannot_listen(settings.host, settings.port, exc) from exc
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


def _load_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise CliError(
            f"{exc}\nFix these and check again with `callbridge config` (docs/configuration.md)."
        ) from exc


# -- their options --


def _add_serve(commands: Commands) -> None:
    serve = subcommand(
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
        "--port", type=PORT, help="port to listen on (default: CALLBRIDGE_PORT, else 8000)"
    )


def _add_dial(commands: Commands) -> None:
    dial = subcommand(
        commands,
        "dial",
        _dial,
        "place an outbound call; the running service bridges it once answered",
        epilog=CONFIGURED_BY_ENV + "\n  Dialling also needs ACS_CALLER_ID.",
    )
    dial.add_argument("number", help="E.164 number to call, e.g. +18005550100")
    dial.add_argument("--profile", help="agent profile (default: the routing table's)")


def _add_config(commands: Commands) -> None:
    subcommand(
        commands,
        "config",
        _config,
        "print the effective configuration (secrets hidden) and check it, starting nothing",
        epilog=CONFIGURED_BY_ENV,
    )


SERVICE_SUBCOMMANDS: Final = (_add_serve, _add_dial, _add_config)
"""Each adds one subcommand, in the order ``--help`` lists them."""
