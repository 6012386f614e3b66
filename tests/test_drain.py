"""Graceful drain end to end: SIGTERM to a real ``callbridge serve`` with a call in progress.

The bridge runs as its own process (``python -m callbridge serve``), configured through the
environment as in production and logging JSON to stderr; ACS and Voice Live are the stand-ins,
in this test's event loop, and a simulated caller is on the line. One run (``drain``) is shared
by the tests below, each checking one step of the shutdown ``callbridge.server`` promises:

1. before SIGTERM the replica is ready and bridges a call;
2. on SIGTERM ``/readyz`` turns 503 (``/healthz`` stays 200) and new calls are refused as busy,
   while the call in progress goes on for the drain budget;
3. after the budget that call gets the configured goodbye (the agent cut short), is hung up
   through ACS, and its Voice Live session and media socket are closed;
4. the process exits with 0, and every line it logged is JSON carrying the call's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from callbridge.sim.acs import AcsStandin, OperationRecord, SimCall
from callbridge.sim.harness import EMULATOR_KEY, LOOPBACK
from callbridge.sim.phone import CallRecord
from callbridge.sim.script import At, Clip, Hangup
from callbridge.sim.voicelive import AgentTurn, EmulatorSession, EventRecord, VoiceLiveEmulator
from callbridge.sim.voicelive import connection as emulator_connection
from callbridge.sim.voicelive.wire import summarize
from callbridge.telephony.webhook import SECRET_HEADER

_T = TypeVar("_T")

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
DRAIN_S = 2.0
GOODBYE = "We are restarting, goodbye."
GREETING_MS = 10_000
"""Long enough to be still playing when the drain budget runs out (the goodbye cuts it)."""
FAREWELL_MS = 800
"""The emulator's audio for the goodbye response."""
SETUP_TIMEOUT_S = 15.0
EXIT_BOUND_S = 20.0
"""SIGTERM to process exit."""
RUN_TIMEOUT_S = 50.0
POLL_S = 0.02
CALLER_HANGS_UP_S = 30.0
"""The caller would stay on the line this long: only the shutdown can end the call."""

VERBATIM_TEXT = "response.pre_generated_assistant_message.text"
"""Added to the emulator's log of ``response.create`` events (see ``summarize_with_text``)."""

WEBHOOK_EVENTS = frozenset({"call.incoming", "call.busy"})
"""Logged by the webhook before ACS has given the call a connection id."""

_BRIDGE_ENV_PREFIXES = ("CALLBRIDGE_", "ACS_", "AZURE_", "AGENT_", "VOICE_LIVE_", "LOG_")
"""Settings only this test may give the process (not the developer's environment)."""


def turn(ms: int, hz: float, text: str) -> AgentTurn:
    return AgentTurn(Clip.tone(ms=ms, sample_rate=RATE, hz=hz).pcm, RATE, text)


TURNS = [
    turn(GREETING_MS, 440, "Hello! Let me tell you at length about everything we offer."),
    turn(FAREWELL_MS, 659, GOODBYE),
]


# --- What one run observed --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """An HTTP GET of the bridge: status and JSON body, and when (``time.monotonic()``)."""

    at: float
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The call in progress as the stand-ins saw it at one moment of the drain."""

    at: float
    state: str | None
    ended_by: str | None
    voice_live_closed: bool
    process_running: bool


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float
    """When the test read it (``time.monotonic()``)."""
    text: str


@dataclass(frozen=True, slots=True)
class DrainRun:
    ready_idle: Probe
    ready_in_call: Probe
    sigterm_at: float
    ready_draining: Probe
    healthz_draining: Probe
    busy: SimCall
    during: Snapshot
    call: SimCall
    session: EmulatorSession
    emulator_sessions: int
    operations: list[OperationRecord]
    acs_task_errors: list[BaseException]
    returncode: int | None
    exited_at: float
    log: list[LogLine]

    @property
    def media(self) -> CallRecord:
        assert self.call.media is not None, self.call.media_error
        return self.call.media

    @property
    def terminate(self) -> OperationRecord:
        ops = [op for op in self.operations if op.call_connection_id == self.call.call_connection_id]
        (terminate,) = [op for op in ops if op.name == "terminate"]
        return terminate

    @property
    def goodbye_request(self) -> EventRecord:
        return self.session.received("response.create")[-1]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line.text) for line in self.log]

    def events(self) -> list[str]:
        return [str(entry.get("event")) for entry in self.entries]


# --- Running it -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def bridge_env(port: int, endpoint: str, acs: AcsStandin, secret: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_BRIDGE_ENV_PREFIXES)}
    return {
        **inherited,
        "AZURE_VOICE_LIVE_ENDPOINT": endpoint,
        "AZURE_VOICE_LIVE_API_KEY": EMULATOR_KEY,
        "ACS_ENDPOINT": acs.endpoint,
        "ACS_ACCESS_KEY": acs.access_key,
        "ACS_RESOURCE_ID": acs.resource_id,
        "ACS_JWT_ISSUER": acs.issuer,
        "ACS_JWKS_URL": acs.jwks_url,
        "CALLBRIDGE_PUBLIC_URL": f"http://{LOOPBACK}:{port}",
        "CALLBRIDGE_HOST": LOOPBACK,
        "CALLBRIDGE_PORT": str(port),
        "CALLBRIDGE_SIGNING_KEY": secret,
        "CALLBRIDGE_WEBHOOK_SECRET": secret,
        "CALLBRIDGE_MAX_CALLS": "10",
        "CALLBRIDGE_DRAIN_S": str(DRAIN_S),
        "CALLBRIDGE_DRAIN_GOODBYE": GOODBYE,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


async def until(check: Callable[[], _T | None], timeout_s: float, what: str) -> _T:
    """Poll ``check`` until it returns something (not None/False); fail after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while not (value := check()):
                await asyncio.sleep(POLL_S)
            return value
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def get(http: aiohttp.ClientSession, url: str) -> Probe:
    async with http.get(url) as response:
        body = await response.json()
        return Probe(time.monotonic(), response.status, body)


async def collect(stream: asyncio.StreamReader, into: list[LogLine]) -> None:
    while line := await stream.readline():
        into.append(LogLine(time.monotonic(), line.decode().rstrip("\n")))


async def wait_healthy(http: aiohttp.ClientSession, base: str, process: Any) -> None:
    async def healthy() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            return (await get(http, f"{base}/healthz")).status == 200
        return False

    async with asyncio.timeout(SETUP_TIMEOUT_S):
        while not await healthy():
            assert process.returncode is None, f"callbridge serve exited: {process.returncode}"
            await asyncio.sleep(0.1)


async def run_drain() -> DrainRun:
    emulator = VoiceLiveEmulator(
        turns=TURNS,
        caller_transcripts=["caller"],
        api_key=EMULATOR_KEY,
        speed=2.0,
        response_delay_ms=100,
    )
    acs = AcsStandin()
    secret = "drain-test-secret-" + "x" * 32
    log: list[LogLine] = []
    process: asyncio.subprocess.Process | None = None
    reader: asyncio.Task[None] | None = None
    try:
        endpoint = await emulator.start(LOOPBACK, 0)
        await acs.start(LOOPBACK, 0)
        port = free_port()
        base = f"http://{LOOPBACK}:{port}"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callbridge",
            "serve",
            env=bridge_env(port, endpoint, acs, secret),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        reader = asyncio.create_task(collect(process.stderr, log))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await wait_healthy(http, base, process)
            ready_idle = await get(http, f"{base}/readyz")

            # 1. A call is answered and bridged; the caller is hearing the greeting.
            call = await acs.ring(
                f"{base}/api/incomingCall",
                headers={SECRET_HEADER: secret},
                to_number=acs.acs_number,
                script=[Hangup(At(CALLER_HANGS_UP_S))],
                hangup_after_s=CALLER_HANGS_UP_S,
                max_duration_s=CALLER_HANGS_UP_S + 10,
            )
            await call.wait_callback("MediaStreamingStarted", SETUP_TIMEOUT_S)
            session = await until(
                lambda: emulator.session_for(call.correlation_id), SETUP_TIMEOUT_S, "Voice Live"
            )
            await until(
                lambda: session.responses and session.responses[0].first_audio_delta_at,
                SETUP_TIMEOUT_S,
                "the greeting's audio",
            )
            await asyncio.sleep(0.3)  # the phone's playout delay is 60 ms
            ready_in_call = await get(http, f"{base}/readyz")

            # 2. SIGTERM: draining.
            sigterm_at = time.monotonic()
            process.send_signal(signal.SIGTERM)

            async def draining() -> Probe | None:
                probe = await get(http, f"{base}/readyz")
                return probe if probe.status == 503 else None

            async with asyncio.timeout(5):
                while (ready_draining := await draining()) is None:
                    await asyncio.sleep(POLL_S)
            healthz_draining = await get(http, f"{base}/healthz")
            busy = await acs.ring(
                f"{base}/api/incomingCall",
                headers={SECRET_HEADER: secret},
                to_number=acs.acs_number,
                script=[Hangup(At(1.0))],
            )
            await busy.wait_ended(5)
            await sleep_until(sigterm_at + DRAIN_S - 0.5)
            during = Snapshot(
                at=time.monotonic(),
                state=call.state,
                ended_by=call.ended_by,
                voice_live_closed=session.is_closed,
                process_running=process.returncode is None,
            )

        # 3. After the budget: goodbye, hang-up, everything closed; 4. the process exits.
        remaining = sigterm_at + EXIT_BOUND_S - time.monotonic()
        await call.wait_ended(remaining)
        async with asyncio.timeout(sigterm_at + EXIT_BOUND_S - time.monotonic()):
            await session.wait_closed()
            returncode = await process.wait()
            exited_at = time.monotonic()
            await reader
        return DrainRun(
            ready_idle=ready_idle,
            ready_in_call=ready_in_call,
            sigterm_at=sigterm_at,
            ready_draining=ready_draining,
            healthz_draining=healthz_draining,
            busy=busy,
            during=during,
            call=call,
            session=session,
            emulator_sessions=len(emulator.sessions),
            operations=list(acs.operations),
            acs_task_errors=list(acs.task_errors),
            returncode=returncode,
            exited_at=exited_at,
            log=log,
        )
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await acs.stop()
        await emulator.stop()


def summarize_with_text(event: Mapping[str, Any]) -> dict[str, object]:
    """The emulator's event summary, plus the text of a ``response.create`` that asks for a
    verbatim message (the stock summary keeps ids and statuses only)."""
    fields = summarize(event)
    response = event.get("response")
    if event.get("type") == "response.create" and isinstance(response, Mapping):
        message = response.get("pre_generated_assistant_message")
        if isinstance(message, Mapping):
            parts = message.get("content") or []
            fields[VERBATIM_TEXT] = "".join(
                str(part.get("text", "")) for part in parts if isinstance(part, Mapping)
            )
    return fields


@pytest.fixture(scope="module")
def drain() -> Iterator[DrainRun]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emulator_connection, "summarize", summarize_with_text)
        run = asyncio.run(asyncio.wait_for(run_drain(), RUN_TIMEOUT_S))
    print_timeline(run)
    yield run


def print_timeline(run: DrainRun) -> None:
    t0 = run.sigterm_at

    def rel(at: float | None) -> str:
        return "-" if at is None else f"{at - t0:+.3f}s"

    media = run.call.media
    print("SIGTERM", rel(t0))
    print("readyz 503", rel(run.ready_draining.at), run.ready_draining.body)
    print("busy rejected", rel(run.busy.ended_at))
    print("during", rel(run.during.at), run.during)
    for event in run.session.events:
        if event.direction == "received" and event.type != "input_audio_buffer.append":
            print("vl received", rel(event.at), event.type, dict(event.fields))
    for response in run.session.responses:
        print("vl response", response.turn_index, rel(response.created_at), response.status)
    for op in run.operations:
        print("acs op", rel(op.at), op.name, op.status)
    if media is not None:
        for spurt in media.spurts:
            print("spurt", spurt.index, rel(spurt.started_at), rel(spurt.ended_at), spurt.end,
                  round(spurt.played_ms))
        for stop in media.stops:
            print("stop", rel(stop.at), stop.spurt)
        print("phone", media.ended_by, media.close_code, rel(media.ws_closed_at))
    print("call ended", rel(run.call.ended_at), run.call.ended_by, run.call.callback_names)
    print("vl closed", rel(run.session.closed_at))
    print("exit", rel(run.exited_at), run.returncode)
    for line in run.log:
        print(rel(line.at), line.text)


# --- The tests --------------------------------------------------------------------------------


def test_timeline(drain: DrainRun) -> None:
    assert drain.returncode == 0
