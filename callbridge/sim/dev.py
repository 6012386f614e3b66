"""``callbridge dev``: a local phone line: callbridge with the ACS stand-in and the Voice Live
emulator on loopback, in one process, until Ctrl-C.

The service reads the same environment as ``callbridge serve`` (a routing file, a tools module,
pacing, continuity, logging); only where ACS and Voice Live are, and the secrets between them
and callbridge, are filled in here. Calls are recorded into ``./recordings`` unless told
otherwise. ``callbridge ring`` places calls through the control endpoint
(:mod:`callbridge.sim.dev_control`), which it finds through the line file ``dev`` writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from callbridge.core.settings import Settings
from callbridge.process.config import LOG_TRANSCRIPTS, load_settings
from callbridge.process.server import drain
from callbridge.sim.demo import VOICE_LIVE_CONNECT_MS
from callbridge.sim.dev_control import ControlServer
from callbridge.sim.harness import LocalStack
from callbridge.sim.loopback import EMULATOR_KEY, LOOPBACK

LINE_FILE: Final = Path(".callbridge-dev.json")
"""Written by ``dev`` in its working folder (only its owner can read it), read by ``ring`` in
the same folder: the control endpoint's URL and token. Removed when ``dev`` stops."""

RECORDINGS: Final = Path("recordings")

_PLACEHOLDER_SECRET: Final = "x" * 32
"""Stands for the secrets between the stand-ins and callbridge while the user's configuration
is checked: the stand-ins, not yet started, make the real ones."""

_FILLED_IN: Final = {
    # The stand-ins' addresses are not known until they listen; these only let the user's own
    # settings be checked before anything starts. DevStack puts the real ones in.
    "AZURE_VOICE_LIVE_ENDPOINT": f"http://{LOOPBACK}",
    "AZURE_VOICE_LIVE_API_KEY": EMULATOR_KEY,
    "ACS_ENDPOINT": f"http://{LOOPBACK}",
    "ACS_RESOURCE_ID": "local-acs-standin",
    "CALLBRIDGE_PUBLIC_URL": f"https://{LOOPBACK}",
    "CALLBRIDGE_AUTH": "on",
    "CALLBRIDGE_SIGNING_KEY": _PLACEHOLDER_SECRET,
    "CALLBRIDGE_WEBHOOK_SECRET": _PLACEHOLDER_SECRET,
}
_DROPPED: Final = (
    # The ACS stand-in guards its deliveries with the webhook secret, not Entra ID.
    "CALLBRIDGE_WEBHOOK_ENTRA_TENANT",
    "CALLBRIDGE_WEBHOOK_ENTRA_AUDIENCE",
    "ACS_CALLER_ID",
)


def dev_settings(env: Mapping[str, str], recordings_dir: Path | None) -> Settings:
    """The user's ``callbridge serve`` settings from ``env``, with the stand-ins' parts filled
    in and every profile recorded into ``recordings_dir`` (none recorded without one).

    Raises:
        ConfigError: the user's settings (routing file, tools module...) are invalid.
    """
    merged = {key: value for key, value in env.items() if key not in _DROPPED}
    merged.update(_FILLED_IN)
    merged.setdefault(LOG_TRANSCRIPTS, "on")  # a local call is the developer's own
    merged["CALLBRIDGE_RECORD"] = "off" if recordings_dir is None else "on"
    if recordings_dir is not None:
        merged["CALLBRIDGE_RECORDINGS_DIR"] = str(recordings_dir)
    settings = load_settings(merged)
    record = recordings_dir is not None
    routing = settings.routing
    profiles = {name: replace(p, record=record) for name, p in routing.profiles.items()}
    return replace(settings, routing=replace(routing, profiles=profiles))


class DevStack(LocalStack):
    """A :class:`LocalStack` whose callbridge runs on the user's settings."""

    def __init__(self, user: Settings) -> None:
        super().__init__(
            routing=user.routing,
            pacing=user.pacing,
            continuity=user.continuity,
            max_calls=user.max_calls,
            recordings_dir=user.recordings_dir,
            transcription_model=user.voice_live.transcription_model,
            connect_delay_ms=VOICE_LIVE_CONNECT_MS,
        )
        self.user = user

    def settings(self, endpoint: str, public_url: str) -> Settings:
        """The user's settings, pointed at this stack's stand-ins."""
        local = super().settings(endpoint, public_url)
        return replace(
            self.user,
            voice_live=replace(
                self.user.voice_live, endpoint=endpoint, api_key=local.voice_live.api_key
            ),
            acs=replace(local.acs, deadlines=self.user.acs.deadlines),
            auth=local.auth,
            public_url=local.public_url,
            routing=local.routing,
            host=local.host,
            port=local.port,
            # Ctrl-C means now: calls in progress are hung up at once, not given a budget.
            drain_s=0.0,
        )

    async def end_calls(self) -> None:
        """Hang up every call in progress (with ``CALLBRIDGE_DRAIN_GOODBYE``, if set)."""
        await drain(self.replica)


@dataclass(frozen=True, slots=True)
class DevLine:
    """Where a running ``callbridge dev`` is, for its banner and the line file."""

    bridge_url: str
    acs_url: str
    voice_live_url: str
    control_url: str
    token: str
    recordings_dir: Path | None
    routes: str | None

    def banner(self) -> str:
        recordings = "off" if self.recordings_dir is None else f"{self.recordings_dir}/"
        routing = self.routes or "one profile, from the environment"
        return "\n".join(
            [
                "callbridge dev: a local phone line on loopback (Ctrl-C stops it)",
                f"  callbridge    {self.bridge_url}  (webhook /api/incomingCall, media /ws)",
                f"  ACS           {self.acs_url}  (stand-in)",
                f"  Voice Live    {self.voice_live_url}  (emulator)",
                f"  control       {self.control_url}  (token in {LINE_FILE})",
                f"  routing       {routing}",
                f"  recordings    {recordings}",
                "Place a call from this folder:  callbridge ring",
            ]
        )


def write_line_file(path: Path, line: DevLine) -> None:
    """The control URL and token, readable by the owner only (the token lets a process place
    calls and write files as this one)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"control_url": line.control_url, "token": line.token}, file)
        file.write("\n")


def run_dev_line(
    user: Settings, *, routes: str | None, control_port: int = 0, line_file: Path = LINE_FILE
) -> signal.Signals:
    """Run the local phone line until SIGINT or SIGTERM and print where it is; the signal that
    stopped it. ``line_file`` says where it is while it runs.

    Raises:
        OSError: a port cannot be listened on.
    """

    written: list[Path] = []

    def started(line: DevLine) -> None:
        write_line_file(line_file, line)
        written.append(line_file)
        print(line.banner(), flush=True)

    try:
        return asyncio.run(
            run_dev(user, routes=routes, control_port=control_port, on_started=started)
        )
    finally:
        for path in written:  # not another dev's, when this one could not start
            path.unlink(missing_ok=True)


async def run_dev(
    user: Settings,
    *,
    routes: str | None,
    control_port: int = 0,
    on_started: Callable[[DevLine], None],
) -> signal.Signals:
    """Run the local phone line until SIGINT or SIGTERM, then close every server; the signal
    that stopped it. ``on_started`` is told where the line is once every server listens.

    Raises:
        OSError: a port cannot be listened on.
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[signal.Signals] = loop.create_future()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        # Handled here, not as KeyboardInterrupt: every server closes in order, no traceback.
        loop.add_signal_handler(number, _stop, stopped, number)
    token = secrets.token_urlsafe(32)
    stack = DevStack(user)
    try:
        async with stack, ControlServer(stack, token) as control:
            control_url = await control.start(LOOPBACK, control_port)
            on_started(
                DevLine(
                    bridge_url=stack.base_url,
                    acs_url=stack.acs.endpoint,
                    voice_live_url=stack.emulator.endpoint,
                    control_url=control_url,
                    token=token,
                    recordings_dir=user.recordings_dir,
                    routes=routes,
                )
            )
            stopped_by = await stopped
            # Before the control endpoint closes: the rings of these calls get their reports.
            await stack.end_calls()
            return stopped_by
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def _stop(stopped: asyncio.Future[signal.Signals], number: signal.Signals) -> None:
    if not stopped.done():
        stopped.set_result(number)
