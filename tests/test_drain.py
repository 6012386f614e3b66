"""Graceful drain end to end: SIGTERM to a real ``callbridge serve`` with a call in progress.

The bridge runs as its own process (``python -m callbridge serve``), configured through the
environment as in production and logging JSON to stderr; ACS and Voice Live are the stand-ins,
in this test's event loop, and a simulated caller is on the line. One run (the ``drain``
fixture, about 5 s) is shared by the tests below, each checking one step of the shutdown
``callbridge.process.server`` promises:

1. before SIGTERM the replica is ready and bridges a call, the caller hearing the greeting;
2. on SIGTERM ``/readyz`` turns 503 (``/healthz`` stays 200) and a new call is rejected as
   busy, while the call in progress goes on for the drain budget;
3. after the budget that call gets the configured goodbye (the agent cut short), is hung up
   through ACS, and its Voice Live session and media socket are closed;
4. the process exits with 0, and every line it logged is JSON carrying the call's ids.

A second run (``drain_during_rejoin``) has SIGTERM come while a call waits for ACS to reconnect
its media socket: no new socket can reach a draining replica, so the call is hung up at once,
not after the rejoin window or the drain budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from callbridge.sim.acs import AcsStandin, MediaDrop, OperationRecord, SimCall
from callbridge.sim.harness import EMULATOR_KEY, LOOPBACK, free_port, serve_env
from callbridge.sim.phone import CallRecord
from callbridge.sim.playout import Spurt
from callbridge.sim.script import At, Clip, Hangup
from callbridge.sim.voicelive import AgentTurn, EmulatorSession, EventRecord, VoiceLiveEmulator
from callbridge.sim.voicelive import connection as emulator_connection
from callbridge.sim.voicelive.wire import summarize
from callbridge.web.webhook import SECRET_HEADER

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
DRAIN_S = 2.0
LOOP_CLOCK_S = 0.002
"""How early a timer of ``serve``'s event loop may fire against the wall clock: uvloop (the
image's loop, ``process/runtime.py``) keeps time and timers in whole milliseconds."""
GOODBYE = "We are restarting, goodbye."
GREETING_MS = 10_000
GREETING_HZ = 440.0
"""The greeting is long enough to be still playing when the drain budget runs out."""
FAREWELL_MS = 800
FAREWELL_HZ = 659.0
"""What the emulator plays for the goodbye response (it plays its script, not the text)."""
CALLER_STAYS_S = 30.0
"""The caller would stay on the line this long: only the shutdown can end the call."""
SETUP_TIMEOUT_S = 15.0
EXIT_BOUND_S = 20.0
"""SIGTERM to process exit, goodbye included."""
RUN_TIMEOUT_S = 50.0
POLL_S = 0.02

VERBATIM_TEXT = "response.pre_generated_assistant_message.text"
"""Kept in the emulator's log of ``response.create`` events (see ``summarize_with_text``)."""

WEBHOOK_EVENTS = frozenset({"call.incoming", "call.busy"})
"""Logged by the IncomingCall webhook, before ACS has given the call a connection id."""
DRAIN_TASK_EVENTS = frozenset({"call.barge_in", "call.hanging_up"})
"""Logged for the call by ``CallBridge.shut_down``, which runs in the server's drain task."""

_BRIDGE_ENV_PREFIXES = ("CALLBRIDGE_", "ACS_", "AZURE_", "AGENT_", "VOICE_LIVE_", "LOG_")
"""Settings only this test gives the process: none leak in from the developer's shell."""


def turn(ms: int, hz: float, text: str) -> AgentTurn:
    return AgentTurn(Clip.tone(ms=ms, sample_rate=RATE, hz=hz).pcm, RATE, text)


TURNS = [
    turn(GREETING_MS, GREETING_HZ, "Hello! Let me tell you at length about everything we do."),
    turn(FAREWELL_MS, FAREWELL_HZ, GOODBYE),
]


# --- What one run observed --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One GET of the bridge's health endpoints, and when (``time.monotonic()``)."""

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
class DrainRun:
    """Everything one drain run observed; times are ``time.monotonic()`` of this process."""

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
    stderr: list[str]

    @property
    def media(self) -> CallRecord:
        assert self.call.media is not None, self.call.media_error
        return self.call.media

    def operation(self, name: str) -> OperationRecord:
        """The one REST operation ``name`` on the call in progress."""
        (op,) = [
            op
            for op in self.operations
            if op.name == name and op.call_connection_id == self.call.call_connection_id
        ]
        return op

    @property
    def goodbye_request(self) -> EventRecord:
        """The last ``response.create`` Voice Live received (the first was the greeting's)."""
        return self.session.received("response.create")[-1]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr]

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry.get("event") == event]

    def timeline(self) -> str:
        """The shutdown, seconds from SIGTERM (printed by the fixture; shown with ``-s``)."""
        t0 = self.sigterm_at
        media = self.call.media
        rows: list[tuple[float | None, str]] = [
            (self.ready_draining.at, f"readyz {self.ready_draining.body}"),
            (self.busy.ended_at, f"new call {self.busy.outcome} ({self.busy.reject_reason})"),
            (self.session.closed_at, "Voice Live session closed"),
            (self.call.ended_at, f"ACS: call ended by {self.call.disconnect}"),
            (self.exited_at, f"process exited with {self.returncode}"),
        ]
        rows += [(op.at, f"ACS REST {op.name} {op.status}") for op in self.operations]
        rows += [
            (e.at, f"Voice Live got {e.type} {dict(e.fields)}")
            for e in self.session.events
            if e.direction == "received" and e.type != "input_audio_buffer.append"
        ]
        if media is not None:
            for spurt in media.spurts:
                rows.append((spurt.started_at, f"phone: spurt {spurt.index} starts"))
                rows.append((spurt.ended_at, f"phone: spurt {spurt.index} {spurt.end}"))
            rows.append((media.ws_closed_at, f"phone: {media.closed_by} {media.close_code}"))
        return "\n".join(
            f"{at - t0:+8.3f}s  {what}"
            for at, what in sorted(rows, key=lambda row: row[0] or 0.0)
            if at is not None
        )


# --- Running it -------------------------------------------------------------------------------


def bridge_env(
    port: int, endpoint: str, acs: AcsStandin, secret: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_BRIDGE_ENV_PREFIXES)}
    return {
        **inherited,
        **serve_env(port, endpoint, acs, secret),
        "CALLBRIDGE_MAX_CALLS": "10",
        "CALLBRIDGE_DRAIN_S": str(DRAIN_S),
        "CALLBRIDGE_DRAIN_GOODBYE": GOODBYE,
        **overrides,
    }


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110  # the stand-ins' records, read live
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout_s} s") from None


async def get(http: aiohttp.ClientSession, url: str) -> Probe:
    async with http.get(url) as response:
        return Probe(time.monotonic(), response.status, await response.json())


async def wait_healthy(
    http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process
) -> None:
    async with asyncio.timeout(SETUP_TIMEOUT_S):
        while True:
            assert process.returncode is None, f"callbridge serve exited: {process.returncode}"
            with contextlib.suppress(aiohttp.ClientError):
                if (await get(http, f"{base}/healthz")).status == 200:
                    return
            await asyncio.sleep(0.1)


async def wait_draining(http: aiohttp.ClientSession, base: str) -> Probe:
    async with asyncio.timeout(5):
        # The signal is handled asynchronously; only the endpoint can tell when.
        while (probe := await get(http, f"{base}/readyz")).status != 503:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        return probe


async def collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode().rstrip("\n"))


@dataclass(frozen=True, slots=True)
class Served:
    """``callbridge serve`` running as a process, with the stand-ins it talks to."""

    emulator: VoiceLiveEmulator
    acs: AcsStandin
    process: asyncio.subprocess.Process
    base: str
    secret: str
    stderr: list[str]
    reader: asyncio.Task[None]
    """Collects ``stderr`` up to its EOF."""

    async def ring(self, seconds: float, **options: Any) -> SimCall:
        """A call from a caller who stays ``seconds``; ``options`` go to ``AcsStandin.ring``."""
        return await self.acs.ring(
            f"{self.base}/api/incomingCall",
            headers={SECRET_HEADER: self.secret},
            to_number=self.acs.acs_number,
            script=[Hangup(At(seconds))],
            hangup_after_s=seconds,
            max_duration_s=seconds + 10,
            **options,
        )

    def logged(self, event: str) -> bool:
        return any(json.loads(line).get("event") == event for line in self.stderr)


@contextlib.asynccontextmanager
async def served(**env: str) -> AsyncIterator[Served]:
    """Start the stand-ins and a bridge process configured with ``env`` (over the defaults of
    ``bridge_env``); kill and stop them all on exit."""
    emulator = VoiceLiveEmulator(
        turns=TURNS, caller_transcripts=[], api_key=EMULATOR_KEY, response_delay_ms=100
    )
    acs = AcsStandin()
    secret = "drain-" + "s" * 32
    stderr: list[str] = []
    process: asyncio.subprocess.Process | None = None
    reader: asyncio.Task[None] | None = None
    try:
        endpoint = await emulator.start(LOOPBACK, 0)
        await acs.start(LOOPBACK, 0)
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callbridge",
            "serve",
            env=bridge_env(port, endpoint, acs, secret, env),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        reader = asyncio.create_task(collect(process.stderr, stderr))
        yield Served(emulator, acs, process, f"http://{LOOPBACK}:{port}", secret, stderr, reader)
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await acs.stop()
        await emulator.stop()


async def run_drain() -> DrainRun:
    async with served() as bridge:
        emulator, acs, process, base = bridge.emulator, bridge.acs, bridge.process, bridge.base
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await wait_healthy(http, base, process)
            ready_idle = await get(http, f"{base}/readyz")

            # 1. A call is answered and bridged, and the caller is hearing the greeting.
            call = await bridge.ring(CALLER_STAYS_S)
            await call.wait_callback("MediaStreamingStarted", SETUP_TIMEOUT_S)
            await until(
                lambda: emulator.session_for(call.correlation_id) is not None,
                SETUP_TIMEOUT_S,
                "Voice Live session",
            )
            session = emulator.session_for(call.correlation_id)
            assert session is not None
            await until(
                lambda: bool(session.responses) and bool(session.responses[0].audio_bytes_sent),
                SETUP_TIMEOUT_S,
                "greeting audio",
            )
            await asyncio.sleep(0.3)  # the phone starts playing 60 ms after audio arrives
            ready_in_call = await get(http, f"{base}/readyz")

            # 2. SIGTERM: not ready, still alive, no new calls; the call goes on.
            sigterm_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            ready_draining = await wait_draining(http, base)
            healthz_draining = await get(http, f"{base}/healthz")
            busy = await bridge.ring(1.0)
            await busy.wait_ended(5)
            await asyncio.sleep(max(0.0, sigterm_at + DRAIN_S - 0.5 - time.monotonic()))
            during = Snapshot(
                at=time.monotonic(),
                state=call.state,
                ended_by=call.disconnect,
                voice_live_closed=session.is_closed,
                process_running=process.returncode is None,
            )

        # 3. After the budget: goodbye, hang-up, Voice Live closed; 4. the process exits.
        async with asyncio.timeout(sigterm_at + EXIT_BOUND_S - time.monotonic()):
            await call.wait_ended(EXIT_BOUND_S)
            await session.wait_closed()
            returncode = await process.wait()
            exited_at = time.monotonic()
            await bridge.reader  # the rest of stderr, up to EOF
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
            stderr=bridge.stderr,
        )


def summarize_with_text(event: Mapping[str, Any]) -> dict[str, object]:
    """The emulator's summary of a received event, plus the text of a ``response.create``
    asking for a verbatim message: the stock summary keeps ids and statuses only."""
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
def drain() -> DrainRun:
    """One drain run, shared: a bridge process, a call in progress, SIGTERM."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emulator_connection, "summarize", summarize_with_text)
        run = asyncio.run(asyncio.wait_for(run_drain(), RUN_TIMEOUT_S))
    print(run.timeline())
    return run


def heard(media: CallRecord, spurt: Spurt) -> np.ndarray[Any, np.dtype[np.int16]]:
    """The audio the caller heard during one talk spurt."""
    assert spurt.ended_at is not None
    start = round((spurt.started_at - media.ws_opened_at) * media.sample_rate)
    end = round((spurt.ended_at - media.ws_opened_at) * media.sample_rate)
    return media.heard_audio[start:end]


def dominant_hz(pcm: np.ndarray[Any, np.dtype[np.int16]], sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / sample_rate)[int(np.argmax(spectrum))])


def log_time(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))


# --- 1. Before SIGTERM ------------------------------------------------------------------------


def test_before_sigterm_the_replica_is_ready_and_bridges_a_call(drain: DrainRun) -> None:
    assert (drain.ready_idle.status, drain.ready_idle.body["status"]) == (200, "ready")
    assert (drain.ready_in_call.status, drain.ready_in_call.body) == (
        200,
        {"calls": 1, "max_calls": 10, "status": "ready"},
    )
    assert drain.call.outcome == "answered"
    assert drain.call.callback_names[:3] == [
        "ParticipantsUpdated",
        "CallConnected",
        "MediaStreamingStarted",
    ]
    greeting = drain.media.spurts[0]
    assert greeting.started_at < drain.sigterm_at, "the caller was hearing the greeting"


# --- 2. On SIGTERM ----------------------------------------------------------------------------


def test_sigterm_turns_readyz_503_while_healthz_stays_200(drain: DrainRun) -> None:
    assert drain.ready_draining.status == 503
    assert drain.ready_draining.body == {"calls": 1, "max_calls": 10, "status": "draining"}
    assert drain.healthz_draining.status == 200
    assert drain.healthz_draining.body == {"status": "ok"}


def test_a_new_call_while_draining_is_rejected_as_busy(drain: DrainRun) -> None:
    busy = drain.busy
    assert (busy.outcome, busy.reject_reason) == ("rejected", "busy")
    assert busy.call_connection_id is None  # never answered
    assert drain.emulator_sessions == 1, "no Voice Live session was opened for it"
    (logged,) = drain.logged("call.busy")
    assert logged["draining"] is True


def test_the_call_in_progress_goes_on_for_the_drain_budget(drain: DrainRun) -> None:
    during = drain.during
    assert during.at - drain.sigterm_at < DRAIN_S
    assert during == Snapshot(
        at=during.at,
        state="connected",
        ended_by=None,
        voice_live_closed=False,
        process_running=True,
    )
    # The caller kept hearing the agent until the budget ran out, and only then was cut.
    greeting = drain.media.spurts[0]
    assert greeting.ended_at is not None
    assert greeting.ended_at - drain.sigterm_at >= DRAIN_S - LOOP_CLOCK_S
    assert drain.goodbye_request.at - drain.sigterm_at >= DRAIN_S - LOOP_CLOCK_S
    # The bridge's own clock: from "draining" to "ending calls" is the budget.
    (draining,) = drain.logged("server.draining")
    (ending,) = drain.logged("server.ending_calls")
    assert (draining["calls"], draining["drain_s"], ending["calls"]) == (1, DRAIN_S, 1)
    budget = (log_time(ending) - log_time(draining)).total_seconds()
    assert DRAIN_S - LOOP_CLOCK_S <= budget < DRAIN_S + 0.5


# --- 3. After the budget ----------------------------------------------------------------------


def test_the_agent_is_cut_short_for_the_configured_goodbye(drain: DrainRun) -> None:
    session, media = drain.session, drain.media
    greeting_response, goodbye_response = session.responses
    # The greeting, still playing, is stopped at the phone, cancelled and truncated to what
    # the caller heard...
    (stop,) = media.stops
    assert stop.spurt == 1
    assert media.spurts[0].end == "stopped"
    assert media.spurts[0].played_ms < GREETING_MS / 2
    (cancel,) = session.cancels
    assert cancel.requested_response_id == greeting_response.response_id
    assert greeting_response.status == "cancelled"
    (truncate,) = session.truncations
    assert truncate.accepted
    assert truncate.item_id == greeting_response.item_id
    assert truncate.audio_end_ms == pytest.approx(media.spurts[0].played_ms, abs=20)
    # ...then the goodbye is asked for, word for word.
    request = drain.goodbye_request
    assert request.fields.get(VERBATIM_TEXT) == GOODBYE
    assert cancel.at <= request.at
    assert goodbye_response.created_at >= request.at
    assert goodbye_response.status == "completed"
    assert goodbye_response.audio_ms_sent == pytest.approx(FAREWELL_MS)


def test_the_goodbye_is_heard_in_full_before_acs_hangs_up(drain: DrainRun) -> None:
    media = drain.media
    assert len(media.spurts) == 2
    goodbye = media.spurts[1]
    assert goodbye.end == "drained"
    assert goodbye.played_ms == pytest.approx(FAREWELL_MS, abs=60)
    assert dominant_hz(heard(media, goodbye), media.sample_rate) == pytest.approx(
        FAREWELL_HZ, abs=10
    )
    assert media.bad_message_count == 0
    # The hang-up goes through ACS (``hang_up(is_for_everyone=True)``: terminate), after the
    # goodbye has played out.
    terminate = drain.operation("terminate")
    assert terminate.status == 204
    assert goodbye.ended_at is not None
    assert goodbye.ended_at <= terminate.at
    assert drain.call.disconnect == "app_terminate"
    (ended,) = drain.logged("call.ended")
    assert ended["ended_by"] == "shutdown"


def test_voice_live_and_the_media_socket_are_closed(drain: DrainRun) -> None:
    session, media = drain.session, drain.media
    terminate = drain.operation("terminate")
    assert session.is_closed
    assert session.closed_at is not None
    assert session.closed_at >= terminate.at
    assert session.violations == []
    assert drain.acs_task_errors == []
    # The bridge hangs up through ACS first, then closes the media socket with 1001. ACS ends
    # the call on the terminate request itself, before answering it, so the stand-in drops
    # the media stream (the phone is ended "network") before the bridge even has the reply:
    # always. The phone then closes the socket with 1000 while the bridge, once it has the
    # reply, closes it with 1001: the two close frames race between two processes. Mostly
    # the phone's arrives first and the bridge echoes 1000 (its close(1001) then finds the
    # socket closed); sometimes (about 1 run in 10) they cross and the phone records the
    # bridge's 1001. Either way the bridge received the phone's 1000: a clean close, never
    # an abnormal one (1006).
    assert media.closed_by == "network"
    assert media.ws_closed_at >= terminate.at
    assert media.close_code in (1000, 1001)
    (hung_up,) = drain.logged("call.media_closed_by_bridge")
    (closed,) = drain.logged("call.media_closed")
    assert hung_up["close_code"] == closed["close_code"] == 1000


# --- 4. Exit and logs -------------------------------------------------------------------------


def test_the_process_exits_with_0_after_the_drain(drain: DrainRun) -> None:
    assert drain.returncode == 0
    assert drain.exited_at - drain.sigterm_at < EXIT_BOUND_S
    server = [e["event"] for e in drain.entries if str(e.get("event")).startswith("server.")]
    assert server == [
        "server.started",
        "server.draining",
        "server.ending_calls",
        "server.drained",
        "server.stopped",
    ]


def test_every_stderr_line_is_one_json_object(drain: DrainRun) -> None:
    assert drain.stderr
    for line in drain.stderr:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"event", "level", "timestamp"} <= entry.keys(), line


def call_lines(drain: DrainRun) -> list[dict[str, Any]]:
    prefixes = ("call.", "agent.", "caller.")
    return [e for e in drain.entries if str(e.get("event")).startswith(prefixes)]


def test_webhook_lines_carry_the_correlation_id(drain: DrainRun) -> None:
    """Before ACS answers there is no connection id; the correlation id is there already."""
    webhook = [e for e in call_lines(drain) if e["event"] in WEBHOOK_EVENTS]
    assert [(e["event"], e["correlation_id"]) for e in webhook] == [
        ("call.incoming", drain.call.correlation_id),
        ("call.busy", drain.busy.correlation_id),
    ]
    assert all("call_connection_id" not in e for e in webhook)


def test_lines_of_an_answered_call_carry_both_ids(drain: DrainRun) -> None:
    """Everything logged for the call by its webhook answer, callbacks and media socket."""
    lines = [e for e in call_lines(drain) if e["event"] not in WEBHOOK_EVENTS | DRAIN_TASK_EVENTS]
    assert {e["event"] for e in lines} >= {
        "call.answered",
        "call.media_connected",
        "call.media_started",
        "agent.transcript",
        "call.media_closed_by_bridge",
        "call.ended",
        "call.media_closed",
    }
    ids = (drain.call.call_connection_id, drain.call.correlation_id)
    missing = [e for e in lines if (e.get("call_connection_id"), e.get("correlation_id")) != ids]
    assert missing == []


def test_lines_logged_by_the_drain_for_a_call_carry_both_ids(drain: DrainRun) -> None:
    lines = [e for e in call_lines(drain) if e["event"] in DRAIN_TASK_EVENTS]
    assert {e["event"] for e in lines} == DRAIN_TASK_EVENTS
    ids = (drain.call.call_connection_id, drain.call.correlation_id)
    missing = [e for e in lines if (e.get("call_connection_id"), e.get("correlation_id")) != ids]
    assert missing == []


# --- 5. A call waiting for its media to rejoin ------------------------------------------------

REJOIN_WINDOW_S = 60.0
LONG_DRAIN_S = 30.0
"""The rejoin window and the drain budget of this run: both far beyond ``EXIT_BOUND_S``, so a
shutdown that waited for either would time the run out."""


@dataclass(frozen=True, slots=True)
class RejoinDrainRun:
    """SIGTERM while the call in progress waits for its media socket to rejoin."""

    call: SimCall
    voice_live_closed: bool
    sigterm_at: float
    exited_at: float
    returncode: int | None
    ended: list[dict[str, Any]]
    """The bridge's ``call.ended`` lines."""


async def run_drain_during_rejoin() -> RejoinDrainRun:
    overrides = {
        "CALLBRIDGE_MEDIA_REJOIN_S": str(REJOIN_WINDOW_S),
        "CALLBRIDGE_DRAIN_S": str(LONG_DRAIN_S),
    }
    async with served(**overrides) as bridge:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await wait_healthy(http, bridge.base, bridge.process)
        # ACS drops the media socket a second in and never opens another; the call stays up.
        call = await bridge.ring(
            CALLER_STAYS_S, media_faults=[MediaDrop(at_s=1.0, rejoin_after_s=None)]
        )
        await until(lambda: bridge.logged("call.media_lost"), SETUP_TIMEOUT_S, "media lost")
        session = bridge.emulator.session_for(call.correlation_id)
        assert session is not None
        sigterm_at = time.monotonic()
        bridge.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(EXIT_BOUND_S):
            await call.wait_ended(EXIT_BOUND_S)
            await session.wait_closed()
            returncode = await bridge.process.wait()
            exited_at = time.monotonic()
            await bridge.reader  # the rest of stderr, up to EOF
        entries = [json.loads(line) for line in bridge.stderr]
        return RejoinDrainRun(
            call=call,
            voice_live_closed=session.is_closed,
            sigterm_at=sigterm_at,
            exited_at=exited_at,
            returncode=returncode,
            ended=[entry for entry in entries if entry.get("event") == "call.ended"],
        )


@pytest.fixture(scope="module")
def drain_during_rejoin() -> RejoinDrainRun:
    return asyncio.run(asyncio.wait_for(run_drain_during_rejoin(), RUN_TIMEOUT_S))


def test_a_call_waiting_for_its_media_to_rejoin_is_hung_up_at_once_on_sigterm(
    drain_during_rejoin: RejoinDrainRun,
) -> None:
    run = drain_during_rejoin
    assert run.call.disconnect == "app_terminate"
    assert run.voice_live_closed
    (ended,) = run.ended
    assert ended["ended_by"] == "shutdown"
    assert run.returncode == 0
    # Neither the rejoin window nor the drain budget held the shutdown.
    assert run.exited_at - run.sigterm_at < min(REJOIN_WINDOW_S, LONG_DRAIN_S)
