"""A drain that begins while a call is still on its way: its answer in flight, or its media
socket up and its Voice Live session still connecting (slow to accept).

The drain covers every call that exists at any moment of it (``callbridge.process.server``):
such a call runs under the drain like the others, and once the budget is spent it is hung up
at once. Its agent, which never spoke, says nothing (there is no goodbye to cut short), and the
process exits within the budget plus a moment, not when Voice Live finally answers, nor at
aiohttp's 60 s shutdown limit.

A call answered before the drain whose pre-warmed session failed, and whose media socket comes
only after the budget, is still awaited (for as long as a call would ring) and ended the same way.

Each test runs the real ``serve`` (the code behind ``callbridge serve``) in this event loop,
with ACS and Voice Live the stand-ins, and sets its stop event as SIGTERM would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.profiles import AgentProfile
from callbridge.process.server import serve
from callbridge.sim.acs import SimCall
from callbridge.sim.harness import LOOPBACK, LocalStack, free_port
from callbridge.sim.script import At, Hangup
from callbridge.sim.voicelive import Fault, Refuse, SlowAccept
from callbridge.web.replica import AwaitedMedia
from tests.tone_calls import turn

pytestmark = pytest.mark.timeout(40)

DRAIN_S = 1.0
SLOW_ACCEPT_MS = 8000
"""Voice Live accepts the call's session this late: far past the drain budget."""
EXIT_BOUND_S = DRAIN_S + 3.0
"""Stop to exit: the budget, then a hang-up through ACS."""
CALLER_STAYS_S = 20.0
"""Only the shutdown can end the call."""
SETUP_TIMEOUT_S = 10.0
LATE_SOCKET_S = 2.5
"""ACS opens the media socket this long after ``CallConnected``: past the drain budget."""


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(SETUP_TIMEOUT_S):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(
    stop: asyncio.Event, faults: Sequence[Fault]
) -> AsyncIterator[tuple[LocalStack, asyncio.Task[None]]]:
    """``serve`` on a loopback port, stopped by ``stop``, with the stand-ins it talks to; its
    Voice Live sessions meet ``faults``."""
    stack = LocalStack(
        turns=[turn(600, 440, "Hello, how can I help?")],
        caller_transcripts=[],
        profile=AgentProfile(tools=()),
        faults=faults,
    )
    server: asyncio.Task[None] | None = None
    try:
        endpoint = await stack.emulator.start(LOOPBACK, 0)
        await stack.acs.start(LOOPBACK, 0)
        port = free_port()
        stack.base_url = f"http://{LOOPBACK}:{port}"
        settings = dataclasses.replace(
            stack.settings(endpoint, stack.public_url),
            port=port,
            drain_s=DRAIN_S,
            drain_goodbye="We are restarting, goodbye.",
        )
        server = asyncio.create_task(serve(settings, stop=stop))
        await wait_healthy(f"{stack.base_url}/healthz")
        yield stack, server
    finally:
        stop.set()
        if server is not None:
            await asyncio.gather(server, return_exceptions=True)
        await stack.acs.stop()
        await stack.emulator.stop()


@dataclasses.dataclass(frozen=True, slots=True)
class DrainRace:
    call: SimCall
    exit_s: float
    """Stop to ``serve`` returning."""
    responses: int
    """Responses Voice Live was asked for on the call."""
    held: bool
    """The bridge put the caller on hold: ACS took longer than ``HOLD_AFTER_S`` to accept the
    hang-up (a loaded machine), so the caller heard the hold clip meanwhile, by design."""

    def heard_nothing_but_the_hold(self) -> bool:
        """Nothing reached the phone, unless the bridge had the caller on hold (then its clip
        plays while ACS takes the hang-up: by design, and only on a machine slow enough)."""
        assert self.call.media is not None
        return self.call.media.spurts == [] or self.held


def put_on_hold(logs: Sequence[Mapping[str, object]]) -> bool:
    """Whether the bridge logged putting the caller on hold (``bridge/actions.py``)."""
    return any(entry["event"] == "call.on_hold" for entry in logs)


async def race(begin: Literal["answering", "connecting"]) -> DrainRace:
    stop = asyncio.Event()
    slow = SlowAccept(delay_ms=SLOW_ACCEPT_MS, session=None)
    with capture_logs() as logs:
        async with serving(stop, [slow]) as (stack, server):
            call = await stack.ring([Hangup(At(CALLER_STAYS_S))], hangup_after_s=CALLER_STAYS_S)
            if begin == "connecting":
                await call.wait_callback("MediaStreamingStarted", SETUP_TIMEOUT_S)
            stopped_at = time.monotonic()
            stop.set()
            await asyncio.wait_for(asyncio.shield(server), EXIT_BOUND_S + 10)
            exit_s = time.monotonic() - stopped_at
            await call.wait_ended(SETUP_TIMEOUT_S)
            sessions = stack.emulator.sessions_for(call.correlation_id)
            responses = sum(len(session.responses) for session in sessions)
    print(f"drain begun while {begin}: exit after {exit_s:.2f} s")
    return DrainRace(call, exit_s, responses, put_on_hold(logs))


@pytest.mark.parametrize("begin", ["answering", "connecting"])
async def test_a_call_still_connecting_is_hung_up_silently_and_the_process_exits(
    begin: Literal["answering", "connecting"],
) -> None:
    """``answering``: the drain begins as the IncomingCall is answered; ``connecting``: once
    its media socket is up and Voice Live is still connecting."""
    run = await race(begin)
    call, media = run.call, run.call.media
    # The call was bridged (the drain did not leave ACS a silent, connected line)...
    assert media is not None, call.media_error
    # ...and hung up through ACS once the budget was spent.
    assert call.disconnect == "app_terminate"
    assert [(op.name, op.status) for op in call.operations] == [
        ("answer", 200),
        ("terminate", 204),
    ]
    # The agent never spoke: nothing reached the phone (but the hold clip, if ACS was slow to
    # accept the hang-up), no response was asked of Voice Live.
    assert run.heard_nothing_but_the_hold()
    assert run.responses == 0
    assert run.exit_s < EXIT_BOUND_S


async def test_a_call_whose_prewarmed_session_failed_is_awaited_past_the_budget() -> None:
    """Voice Live refuses the call's pre-warmed session; the drain begins once ACS has connected
    the call, and its media socket comes after the budget. The drain waits for it, the bridge
    starts, and the call is hung up at once (no silent, connected line left behind)."""
    stop = asyncio.Event()
    with capture_logs() as logs:
        async with serving(stop, [Refuse(status=503, session=0)]) as (stack, server):
            call = await stack.ring(
                [Hangup(At(CALLER_STAYS_S))],
                hangup_after_s=CALLER_STAYS_S,
                media_after_s=LATE_SOCKET_S,
            )
            await call.wait_callback("CallConnected", SETUP_TIMEOUT_S)
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                # The pre-warmed session failed; nothing signals it but the emulator's record.
                while not stack.emulator.refused_upgrades:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            stopped_at = time.monotonic()
            stop.set()
            await asyncio.wait_for(asyncio.shield(server), LATE_SOCKET_S + EXIT_BOUND_S + 10)
            exit_s = time.monotonic() - stopped_at
            await call.wait_ended(SETUP_TIMEOUT_S)
            sessions = stack.emulator.sessions_for(call.correlation_id)
            responses = sum(len(session.responses) for session in sessions)
    print(f"late media socket: exit after {exit_s:.2f} s")
    run = DrainRace(call, exit_s, responses, put_on_hold(logs))
    assert call.media is not None, call.media_error
    assert call.disconnect == "app_terminate"
    assert [(op.name, op.status) for op in call.operations] == [
        ("answer", 200),
        ("terminate", 204),
    ]
    assert run.heard_nothing_but_the_hold()
    assert exit_s < LATE_SOCKET_S + EXIT_BOUND_S


def test_a_socket_is_awaited_until_it_comes_or_its_window_passes() -> None:
    awaited = AwaitedMedia(window_s=60.0)
    awaited.expect("call-a")
    awaited.expect("call-b")
    awaited.discard("call-a")  # its socket came
    assert awaited.count() == 1
    lapsed = AwaitedMedia(window_s=0.0)  # went to another replica, say
    lapsed.expect("call-c")
    assert lapsed.count() == 0
