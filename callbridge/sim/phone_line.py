"""The phone's end of one call's media line: the sockets ACS opens, drops and opens again.

A call starts on one media WebSocket. A ``MediaDrop`` (``callbridge.sim.media_faults``) closes
it under the running call, and ACS may then open a new one to the same URL with the same call
headers. ``PhoneLine`` keeps at most one socket open, starts each with ``AudioMetadata``, reads
each with a task of its own, carries out the drops and rejoins the faults ask for, and keeps a
``SocketRecord`` of every socket. What the caller says and hears belongs to the call, not to a
socket: the line only carries it, and hands every message from the bridge on, stamped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from socket import SHUT_RDWR
from typing import Literal, TypeAlias

import aiohttp
import structlog

from callbridge.sim.call_record import RefusedRejoin, SocketEnd, SocketRecord
from callbridge.sim.media_faults import DROP_CLOSE_CODE, MediaDrop, MediaFault
from callbridge.sim.media_messages import metadata_message

logger = structlog.get_logger(__name__)

LineChange: TypeAlias = Literal["interrupted", "reestablished", "refused"]
"""What happened to the call's media line, as ``Phone.run(on_line=...)`` reports it: a socket
dropped, a new one replaced it, or the bridge refused the new one."""

WebSocket: TypeAlias = aiohttp.ClientWebSocketResponse[Literal[True]]

OnMessage: TypeAlias = Callable[[float, str | bytes], None]
"""Told of each text or binary message from the bridge, with when it was received."""


@dataclass(frozen=True, slots=True)
class Dialler:
    """How ACS opens the media sockets of one call: to the bridge's URL, with the call's ids."""

    session: aiohttp.ClientSession
    url: str
    call_connection_id: str
    """``x-ms-call-connection-id`` on every socket of the call."""
    correlation_id: str
    """``x-ms-call-correlation-id`` on every socket of the call."""
    timeout_s: float
    """Bound on each WebSocket handshake."""

    async def connect(self, headers: Mapping[str, str]) -> WebSocket:
        """Open one media socket with the call's headers and ``headers``."""
        # ws_close bounds the closing handshake, so a silent bridge cannot hold the call open.
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        all_headers = {
            "x-ms-call-connection-id": self.call_connection_id,
            "x-ms-call-correlation-id": self.correlation_id,
            **headers,
        }
        async with asyncio.timeout(self.timeout_s):
            return await self.session.ws_connect(self.url, headers=all_headers, timeout=timeout)


@dataclass(eq=False, slots=True)
class _Socket:
    """One open media socket and the task reading it."""

    ws: WebSocket
    opened_at: float
    reader: asyncio.Task[None] | None = None
    end: SocketEnd | None = None
    """Set by whoever on the phone's side closes it; None when the bridge did."""


class PhoneLine:
    """The phone's end of one call's media line: one socket open at a time, or none.

    Each socket's ``AudioMetadata`` announces ``sample_rate`` and ``frame_bytes``; each socket
    after a drop carries the extra upgrade headers ``rejoin_headers()`` gives. ``on_message``
    hears every message from the bridge, on every socket; ``on_line`` is told of each drop, new
    socket and refused new socket, as they happen.
    """

    def __init__(
        self,
        dialler: Dialler,
        *,
        sample_rate: int,
        frame_bytes: int,
        rejoin_headers: Callable[[], Mapping[str, str]],
        on_message: OnMessage,
        on_line: Callable[[LineChange], None] | None,
    ) -> None:
        self._dialler = dialler
        self._sample_rate = sample_rate
        self._frame_bytes = frame_bytes
        self._rejoin_headers = rejoin_headers
        self._on_message = on_message
        self._on_line = on_line
        self._log = logger.bind(call_connection_id=dialler.call_connection_id)
        self._socket: _Socket | None = None
        self.sockets: list[SocketRecord] = []
        """Every socket that has closed, in order."""
        self.refused_rejoins: list[RefusedRejoin] = []
        self.final_close_code: int | None = None
        """Close code of the socket open when the call ended; None when none was."""
        self.bridge_gone = asyncio.Event()
        """Set when the bridge closes a socket."""

    @property
    def is_open(self) -> bool:
        """Whether a socket is open to carry the caller's frames."""
        return self._socket is not None

    async def attach(self, ws: WebSocket, opened_at: float) -> None:
        """Start streaming on a new socket: ``AudioMetadata`` first, then the call's frames."""
        await ws.send_str(metadata_message(self._sample_rate, self._frame_bytes))
        socket = _Socket(ws, opened_at)
        socket.reader = asyncio.create_task(self._read(socket), name="phone-receive")
        self._socket = socket

    async def send(self, message: str) -> None:
        """Send one message on the socket open now.

        Raises:
            ConnectionResetError: no socket is open, or it closed under the message.
        """
        if self._socket is None:
            raise ConnectionResetError("no media socket is open")
        await self._socket.ws.send_str(message)

    async def send_frame(self, messages: Sequence[str]) -> bool:
        """Send one frame slot's messages, in order, on the socket open now (if any); whether
        they were sent."""
        socket = self._socket
        if socket is None:
            return False
        # A socket closing under the frame (the bridge closed it, or a drop) loses the frame;
        # the reader or the drop records how the socket ended.
        try:
            for message in messages:
                await socket.ws.send_str(message)
        except ConnectionResetError:
            return False
        return True

    async def run_drops(self, faults: Sequence[MediaFault], opened_at: float) -> None:
        """Drop the line as the faults say, timed from ``opened_at``, and rejoin after each
        drop that says so."""
        drops = sorted((f for f in faults if isinstance(f, MediaDrop)), key=_at)
        for drop in drops:
            await _sleep_until(opened_at + drop.at_s)
            if self._socket is None:  # already down: nothing to drop
                continue
            dropped_at = await self._drop(self._socket, drop.abort)
            if drop.rejoin_after_s is not None:
                await _sleep_until(dropped_at + drop.rejoin_after_s)
                await self._rejoin()

    async def hang_up(self, ended_at: float, end: SocketEnd) -> None:
        """The call is over: close the socket open now, if any, and record it as ending by
        ``end`` (unless the bridge closed it first)."""
        socket, self._socket = self._socket, None
        if socket is None:
            return
        socket.end = socket.end or end
        # Closing wakes the reader with a CLOSING message, so it returns on its own;
        # cancelling it instead would make aiohttp record an abnormal closure (1006).
        await socket.ws.close()
        self.final_close_code = socket.ws.close_code
        await _stop_reader(socket)
        self.sockets.append(
            SocketRecord(socket.opened_at, ended_at, socket.end, socket.ws.close_code)
        )

    async def _drop(self, socket: _Socket, abort: bool) -> float:
        self._socket = None
        at = time.monotonic()
        socket.end = "aborted" if abort else "dropped"
        self._log.info("phone.media_dropped", abort=abort)
        if abort:
            # The TCP connection ends with no close frame: the bridge sees an abnormal closure.
            socket.ws.get_extra_info("socket").shutdown(SHUT_RDWR)
            code = None
        else:
            await socket.ws.close(code=DROP_CLOSE_CODE)
            code = DROP_CLOSE_CODE
        await _stop_reader(socket)
        self.sockets.append(SocketRecord(socket.opened_at, at, socket.end, code))
        self._tell("interrupted")
        return at

    async def _rejoin(self) -> None:
        try:
            ws = await self._dialler.connect(self._rejoin_headers())
            # A bridge that accepts and at once closes the socket refuses it all the same.
            await self.attach(ws, time.monotonic())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._log.info("phone.rejoin_refused", error=error)
            self.refused_rejoins.append(RefusedRejoin(time.monotonic(), error))
            self._tell("refused")
            return
        self._log.info("phone.rejoined")
        self._tell("reestablished")

    async def _read(self, socket: _Socket) -> None:
        """ACS's inbound side of one socket: stamp every message from the bridge, hand it on."""
        try:
            while True:
                msg = await socket.ws.receive()
                at = time.monotonic()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_message(at, msg.data)
                else:
                    if msg.type is aiohttp.WSMsgType.ERROR:
                        self._log.warning("phone.socket_error", error=str(msg.data))
                    return
        finally:
            if socket.end is None:  # nobody on the phone's side closed it: the bridge did
                socket.end = "bridge"
                self.bridge_gone.set()

    def _tell(self, change: LineChange) -> None:
        if self._on_line is not None:
            self._on_line(change)


async def _stop_reader(socket: _Socket) -> None:
    assert socket.reader is not None
    socket.reader.cancel()
    await asyncio.gather(socket.reader, return_exceptions=True)


def _at(fault: MediaDrop) -> float:
    return fault.at_s


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(at - time.monotonic(), 0.0))
