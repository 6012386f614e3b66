"""``callbridge serve``: run the service until SIGTERM, then drain.

Container platforms send SIGTERM and wait a grace period before killing the process. A replica
that simply stopped would cut every caller off mid-sentence, so on SIGTERM callbridge:

1. turns ``/readyz`` to 503 and refuses new calls (IncomingCall rejected as busy);
2. lets the calls in progress go on for up to ``CALLBRIDGE_DRAIN_S``;
3. ends the ones still running: the configured goodbye, hang-up through ACS, Voice Live
   closed, media socket closed with 1001;
4. stops serving.

A call counts from its answer to its bridge's end: a call answered before SIGTERM whose media
socket comes during the drain (its bridge starting late, its Voice Live still connecting) is
covered like the others, and ended at once if it comes after the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from aiohttp import web

from callbridge.adapters.telemetry import prepare_telemetry
from callbridge.core import wire_json
from callbridge.core.settings import Settings
from callbridge.core.tasks import OwnedTasks
from callbridge.process import runtime
from callbridge.web.app import create_app
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

END_CALLS_TIMEOUT_S = 30.0
"""Bound on ending the calls left after the drain budget (goodbyes included), and on waiting
for the media sockets of calls answered before it."""

_POLL_S = 0.1


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or ``stop`` is set), then drain and exit."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        # Built now, not at the first call: it would be imported and built mid-call, and
        # left out of the frozen heap.
        prepare_telemetry()
        log.info(
            "server.started",
            host=settings.host,
            port=settings.port,
            event_loop=runtime.chosen_loop(settings.event_loop),
            json_reader="orjson" if wire_json.fast() else "json",
            frozen_objects=runtime.settle_heap(),
        )
        await stop.wait()
        await drain(app[REPLICA])
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("server.stopped")


async def drain(replica: Replica) -> None:
    """Refuse new calls, give the running ones the drain budget, then end the rest."""
    replica.draining = True
    budget = replica.settings.drain_s
    log.info("server.draining", calls=len(replica.bridges), drain_s=budget)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(budget):
            # Calls end on their own schedule; nothing signals "the last one", so poll.
            while replica.has_calls():  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S)
    if replica.has_calls():
        log.info("server.ending_calls", calls=len(replica.bridges))
        await _end_calls(replica)
    log.info("server.drained")


async def _end_calls(replica: Replica) -> None:
    """End every call left, and every call that turns up while they end: a call answered
    before the drain may open its media socket only now, its bridge starting after the budget.
    Each bridge is told once (``CallBridge.shut_down``: no goodbye from an agent that has not
    spoken yet)."""
    goodbye = replica.settings.drain_goodbye
    told: set[str] = set()
    ending = OwnedTasks()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_CALLS_TIMEOUT_S):
                while replica.has_calls():
                    for call_id, bridge in list(replica.bridges.items()):
                        if call_id not in told:
                            told.add(call_id)
                            ending.spawn(bridge.shut_down(goodbye), "end-call")
                    await asyncio.sleep(_POLL_S)
    finally:
        await ending.aclose()
