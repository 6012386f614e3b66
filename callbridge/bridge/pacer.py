"""FramePacer: drives the sans-IO ``PacerCore`` on the event loop and sends what it releases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from callbridge.core.acs_media import MarkData
from callbridge.core.pacing import Heard, HeldAudio, OutFrame, PacerCore
from callbridge.core.played_audio import PlayedAudio

Send = Callable[[str], Awaitable[None]]


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FramePacer:
    """Drives a ``PacerCore`` on the event loop's monotonic clock and sends what it releases.

    The loop sleeps until the next frame is due (``loop.call_at``), never a fixed interval, so
    timing errors do not accumulate. ``push`` and ``flush`` wake it early.
    """

    __slots__ = ("_generation", "_loop", "_on_sent", "_send", "_waiter", "core")

    def __init__(
        self,
        send: Send,
        *,
        lead_ms: float,
        playout_delay_ms: float,
        marks: bool = False,
        played: PlayedAudio | None = None,
        on_sent: Callable[[OutFrame], None] | None = None,
    ) -> None:
        self.core = PacerCore(
            lead_ms=lead_ms, playout_delay_ms=playout_delay_ms, marks=marks, played=played
        )
        self._send = send
        self._on_sent = on_sent
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._generation = 0

    def now(self) -> float:
        return self._loop.time()

    def push(self, frame: OutFrame) -> None:
        self.core.push(frame)
        if self._waiter is not None:
            _resolve(self._waiter)

    def on_mark(self, mark: MarkData) -> None:
        """ACS answered a playback mark (see ``core.playback_marks``)."""
        self.core.on_mark(mark, self.now())

    def is_playing(self) -> bool:
        return self.core.is_playing(self.now())

    @property
    def paused(self) -> bool:
        """Held since ``pause``, until ``resume`` or ``flush``."""
        return self.core.paused

    def flush(self) -> list[Heard]:
        """Drop queued (or held) audio at once and return what the caller heard of each cut
        item."""
        # A release in progress must not send the rest of its batch after a flush.
        self._generation += 1
        return self.core.flush(self.now())

    def pause(self) -> list[Heard]:
        """Stop releasing at once and hold what the caller has not heard (``PacerCore.pause``)."""
        self._generation += 1
        return self.core.pause(self.now())

    def resume(self) -> HeldAudio:
        """Release again; the held audio is the caller's to frame and push anew."""
        held = self.core.resume()
        if self._waiter is not None:
            _resolve(self._waiter)
        return held

    async def run(self) -> None:
        """Release frames until cancelled."""
        loop = self._loop
        while True:
            frames, wake = self.core.poll(loop.time())
            generation = self._generation
            for frame in frames:
                if generation != self._generation:
                    break
                await self._send(frame.message)
                if self._on_sent is not None:
                    self._on_sent(frame)
            waiter = self._waiter = loop.create_future()
            timer = loop.call_at(wake, _resolve, waiter) if wake is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
