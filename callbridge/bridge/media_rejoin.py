"""ACS's media socket lost mid-call: wait for ACS to open a new one (a rejoin), or end the call.

ACS can lose a call's media WebSocket without the call ending, and open a new one for the same
call. Once a socket closes and the bridge did not close it itself:

- if ACS says the call is over (``CallDisconnected`` within ``DISCONNECT_GRACE_S``, or the call
  is gone when asked over REST), the caller hung up;
- otherwise the call waits ``media_rejoin_s`` for a new socket, which the media socket's handler
  hands over (``rejoin``). Agent audio queued for the lost socket is dropped, and the model told
  what was heard. Without a new socket in time, the call is hung up (``ended_by=media_lost``).

A replica that drains waits for no socket: it is not ready, so the load balancer sends ACS's new
socket to another replica, and it is stopping anyway. A call that lost its socket while the
replica drains, or was waiting when the drain began, is hung up at once (``ended_by=shutdown``)
rather than holding the shutdown for the rejoin window.

ACS sends a frame every 20 ms, silence included, so a socket silent for ``media_stall_s`` is
dead though open: it is closed, and then judged like any lost socket (``watch_for_stall``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp
import structlog
from aiohttp import web

from callbridge.adapters.telemetry import CallTelemetry
from callbridge.bridge.actions import CallActions, hang_up
from callbridge.bridge.call_parts import CallParts
from callbridge.bridge.caller_audio import CallerAudio
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.stats import CallStats
from callbridge.core import acs_media
from callbridge.core.ended_by import EndedBy
from callbridge.core.settings import ContinuitySettings

log = structlog.get_logger(__name__)

DISCONNECT_GRACE_S = 0.5
"""After the media socket closes, how long ACS's ``CallDisconnected`` may take to arrive before
ACS is asked whether the call goes on (a caller hanging up closes both, about together)."""

MEDIA_WATCH_S = 0.5
"""How often the media socket's silence is checked (``media_stall_s``), and a wait for a
rejoin whether the replica began to drain."""

_Rejoin = tuple[web.WebSocketResponse, asyncio.Event]
"""A new media socket for the call, and the event set when the bridge is done with it."""


class MediaRejoin:
    """One call's wait for a new media socket after it lost one (see the module docstring)."""

    def __init__(
        self,
        *,
        line: MediaLine,
        caller: CallerAudio,
        call: CallActions,
        continuity: ContinuitySettings,
        stats: CallStats,
        telemetry: CallTelemetry | None,
        rejoinable: bool,
        draining: Callable[[], bool],
    ) -> None:
        """``rejoinable``: ACS may open a new media socket for this call (False for a socket
        that named no ACS call). ``draining``: whether the replica is draining."""
        self._line = line
        self._caller = caller
        self._call = call
        self._continuity = continuity
        self._stats = stats
        self._telemetry = telemetry
        self._rejoinable = rejoinable
        self._draining = draining
        self._rejoin: asyncio.Future[_Rejoin | None] | None = None
        """Open while a new socket would be taken; it comes to that socket, or to None when ACS
        ends the call."""
        self._rejoined: dict[web.WebSocketResponse, asyncio.Event] = {}
        """Sockets that rejoined the call, each with the event that lets its handler go."""
        self._disconnected = asyncio.Event()

    async def after_loss(
        self, parts: CallParts, lost: web.WebSocketResponse
    ) -> web.WebSocketResponse | None:
        """``lost`` closed, and not by the bridge: the socket that takes its place, or None once
        the call is over (the caller hung up, or no socket came in time: then hung up)."""
        if (done := self._rejoined.pop(lost, None)) is not None:
            done.set()  # the bridge is done with this socket: its handler may return
        # ACS may reconnect at once: a new socket is taken from now on.
        self._rejoin = asyncio.get_running_loop().create_future()
        if not await self._call_goes_on():
            self._rejoin = None
            log.info("call.caller_hung_up", close_code=lost.close_code)
            return None
        return await self._await_rejoin(parts, lost)

    def can_rejoin(self) -> bool:
        """Whether the call is waiting for ACS to reconnect its media."""
        return self._rejoin is not None and not self._rejoin.done()

    async def rejoin(self, socket: web.WebSocketResponse) -> None:
        """A new media socket for this call (``can_rejoin``): returns once the bridge is done
        with it (the call ended, or this socket was lost too)."""
        done = asyncio.Event()
        if self._rejoin is None or self._rejoin.done():
            return
        self._rejoin.set_result((socket, done))
        await done.wait()

    async def call_disconnected(self) -> None:
        """ACS says the call is over (``CallDisconnected``): stop waiting, close the socket."""
        self._disconnected.set()
        if self._rejoin is not None and not self._rejoin.done():
            self._rejoin.set_result(None)
        socket = self._line.socket
        if socket is not None and not socket.closed:
            await socket.close(code=aiohttp.WSCloseCode.OK, message=b"call disconnected")

    def release_sockets(self) -> None:
        """The call is over: the socket that rejoined it last, if any, is let go."""
        for done in self._rejoined.values():
            done.set()

    async def watch_for_stall(self) -> None:
        """Close the current socket once it has been silent for ``media_stall_s``."""
        stall_s = self._continuity.media_stall_s
        while True:
            await asyncio.sleep(MEDIA_WATCH_S)
            socket = self._line.socket
            silent_s = time.monotonic() - self._caller.last_frame_at
            if socket is None or socket.closed or silent_s < stall_s:
                continue
            log.warning("acs.media_stalled", silent_s=round(silent_s, 1))
            self._stats.media_stalls += 1
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"media stalled")

    async def _call_goes_on(self) -> bool:
        """After the socket closed: is the call still connected at ACS (unknown: assume so)?"""
        if not self._rejoinable:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DISCONNECT_GRACE_S):
                await self._disconnected.wait()
        if self._disconnected.is_set():
            return False
        return await self._call.connected() is not False

    async def _await_rejoin(
        self, parts: CallParts, lost: web.WebSocketResponse
    ) -> web.WebSocketResponse | None:
        """Wait for ACS to reconnect the call's media; hang up if no socket comes in time, or
        none can come (the replica drains)."""
        wait_s = self._continuity.media_rejoin_s
        log.warning("call.media_lost", close_code=lost.close_code, rejoin_s=wait_s)
        lost_at = time.monotonic()
        self._line.socket = None
        # Nobody hears what is queued: it is dropped and the model told what was heard.
        await parts.interruption.interrupt(barge_in=False)
        rejoin = self._rejoin
        assert rejoin is not None  # opened when the socket closed
        try:
            await self._until_rejoined(rejoin, lost_at + wait_s)
        finally:
            self._rejoin = None
        if rejoin.done():
            rejoined = rejoin.result()
            if rejoined is None:
                return None  # ACS ended the call
            return await self._take(parts, *rejoined, lost_at=lost_at)
        draining = self._draining()
        log.error("call.media_not_rejoined", waited_s=wait_s, draining=draining)
        self._stats.ended_by = EndedBy.SHUTDOWN if draining else EndedBy.MEDIA_LOST
        parts.actions.ending = True
        await hang_up(self._call)
        return None

    async def _take(
        self,
        parts: CallParts,
        socket: web.WebSocketResponse,
        done: asyncio.Event,
        *,
        lost_at: float,
    ) -> web.WebSocketResponse:
        """The call goes on on ``socket``, if it is fit for the call (else it is closed, and
        judged like any closed socket)."""
        self._rejoined[socket] = done
        first = await self._caller.first_message(socket)
        if first is None:
            return socket  # closed at once
        if isinstance(first, acs_media.AudioMetadata) and first.sample_rate != parts.codec.acs_rate:
            log.error("call.rejoin_refused", reason="another sample rate", rate=first.sample_rate)
            await socket.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"sample rate")
            return socket
        self._line.socket = socket
        outage_ms = (time.monotonic() - lost_at) * 1000
        self._stats.rejoins += 1
        log.info("call.media_rejoined", outage_ms=round(outage_ms))
        if parts.recorder is not None:
            parts.recorder.event("bridge", "media_rejoined", outage_ms=round(outage_ms))
        if self._telemetry is not None:
            self._telemetry.continuity("rejoin", outage_ms)
        if isinstance(first, acs_media.AudioData):
            await self._caller.forward(parts, first)
        return socket

    async def _until_rejoined(
        self, rejoin: asyncio.Future[_Rejoin | None], deadline: float
    ) -> None:
        """Until ``rejoin`` is settled, ``deadline`` (monotonic) passes, or the replica drains:
        nothing announces a drain, so it is looked for every ``MEDIA_WATCH_S``."""
        while not rejoin.done() and not self._draining():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait([rejoin], timeout=min(left, MEDIA_WATCH_S))
