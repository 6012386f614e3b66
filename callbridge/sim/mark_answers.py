"""ACS's answers to playback marks, on the phone's side (beta).

The bridge may mark an outbound frame; ACS answers ``MarkData`` ``completed`` once that frame
has been played, or ``cancelled`` when ``StopAudio`` dropped it first (the .NET Call Automation
SDK, beta, Dec 2025: ``tests/conformance/acs/media_MarkData.dotnet_test.json``). The phone
knows from its playout model when each frame finishes playing, and answers at that moment, so
callbridge's measured playout delay can be checked against the phone's true one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

MarkStatus = Literal["completed", "cancelled"]


@dataclass(frozen=True, slots=True)
class MarkAnswer:
    """One answer the phone gave: ``at`` is ``time.monotonic()`` when it was sent."""

    mark_id: str
    status: MarkStatus
    at: float


def mark_message(mark_id: str, status: MarkStatus) -> str:
    """``MarkData`` as ACS sends it: camelCase keys, PascalCase kind, as the .NET parser reads."""
    return json.dumps({"kind": "MarkData", "markData": {"id": mark_id, "status": status}})


class MarkAnswers:
    """Answers the marks of one call: each when its frame has played, or at a StopAudio."""

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._pending: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.answers: list[MarkAnswer] = []

    def queued(self, mark_id: str, played_at: float) -> None:
        """A marked frame finishes playing at ``played_at`` (``time.monotonic()``)."""
        # The loop's clock is time.monotonic(), so the answer goes out at the very moment.
        timer = self._loop.call_at(played_at, self._answer, mark_id, "completed")
        self._pending[mark_id] = (played_at, timer)

    def stopped(self, at: float) -> None:
        """A StopAudio at ``at`` dropped every marked frame that had not finished playing."""
        for mark_id, (played_at, timer) in list(self._pending.items()):
            if played_at > at:
                timer.cancel()
                self._answer(mark_id, "cancelled")

    async def aclose(self) -> None:
        """The call is over: unanswered marks stay unanswered; answers in flight finish."""
        for _, timer in self._pending.values():
            timer.cancel()
        self._pending.clear()
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _deliver(self, message: str) -> None:
        # The bridge may have closed the socket meanwhile: then nobody is waiting for it.
        with contextlib.suppress(ConnectionError):
            await self._send(message)

    def _answer(self, mark_id: str, status: MarkStatus) -> None:
        if self._pending.pop(mark_id, None) is None:
            return
        self.answers.append(MarkAnswer(mark_id, status, self._loop.time()))
        task = self._loop.create_task(self._deliver(mark_message(mark_id, status)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
