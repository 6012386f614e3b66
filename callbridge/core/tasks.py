"""Background tasks owned by one object (a call, a replica), cancelled together at its end."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class OwnedTasks:
    """Keeps references to its tasks (so none is garbage-collected mid-flight), logs any that
    fail, and cancels and awaits those still running on ``aclose``."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task.failed", task=task.get_name(), error=repr(error))

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Cancel every task still running and wait for them (at most ``timeout_s``)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*tasks, return_exceptions=True)
