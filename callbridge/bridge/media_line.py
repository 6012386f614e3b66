"""The call's ACS media socket, which ACS may replace while the call goes on.

ACS can lose a call's media WebSocket without the call ending, and open a new one (a rejoin).
The parts of the bridge that talk to the caller hold the line, not a socket: while it is
detached, what they send is dropped (nobody could hear it) and the call goes on.
"""

from __future__ import annotations

import aiohttp
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)


class MediaLine:
    """The call's current ACS media socket, if any."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket: web.WebSocketResponse | None = socket
        self.ended = False
        """The bridge closed the line itself: the call is over (hung up or handed on)."""

    async def send_str(self, data: str) -> None:
        """Send to the caller's current socket; nothing while detached or closing (the reader
        notices the socket's end and decides what happens to the call)."""
        socket = self.socket
        if socket is None or socket.closed:
            return
        try:
            await socket.send_str(data)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            log.debug("acs.send_failed", error=str(exc))

    async def close(self, *, code: int, message: bytes) -> None:
        """End the call's media: close the current socket; no rejoin is waited for."""
        self.ended = True
        socket = self.socket
        if socket is not None and not socket.closed:
            await socket.close(code=code, message=message)

    @property
    def close_code(self) -> int | None:
        return self.socket.close_code if self.socket is not None else None
