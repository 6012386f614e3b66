"""A Voice Live connection opened, configured and held by a task of its own.

The SDK's connection is an async context manager, which must be entered and exited by one task.
A call's session is opened ahead of need (pre-warmed when the call rings, or a standby before a
session rollover) and used by others, so a dedicated task holds it from open to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import structlog
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection
from azure.ai.voicelive.models import RequestSession

from callbridge.adapters.voice_live import configure_session, open_voice_live
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings

log = structlog.get_logger(__name__)

SessionOpener = Callable[[], AbstractAsyncContextManager[VoiceLiveConnection]]
"""Opens one Voice Live connection (``callbridge.adapters.voice_live.open_voice_live``)."""


class HeldSession:
    """One Voice Live connection, opening in the background until ``release``.

    ``configure``: the ``session.update`` sent as soon as it is open, for ``configured_rate``
    (the ACS rate its audio formats suit); None leaves configuring to whoever uses it.
    """

    def __init__(
        self,
        open_session: SessionOpener,
        *,
        name: str,
        configure: RequestSession | None = None,
        configured_rate: int | None = None,
    ) -> None:
        self.configured_rate = configured_rate if configure is not None else None
        self._ready: asyncio.Future[VoiceLiveConnection] = asyncio.Future()
        self._released = asyncio.Event()
        self._task = asyncio.create_task(self._hold(open_session, configure), name=name)

    @property
    def closed(self) -> bool:
        """The connection has closed (or never opened)."""
        return self._task.done()

    def on_closed(self, callback: Callable[[], None]) -> None:
        self._task.add_done_callback(lambda _: callback())

    async def connection(self) -> VoiceLiveConnection:
        """The connection, once open (and configured).

        Raises:
            TimeoutError, azure.ai.voicelive.aio.ConnectionError: opening it failed.
        """
        return await asyncio.shield(self._ready)

    async def release(self) -> None:
        """Close the connection (or stop opening it)."""
        self._released.set()
        if not self._ready.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _hold(self, open_session: SessionOpener, configure: RequestSession | None) -> None:
        try:
            async with open_session() as connection:
                if configure is not None:
                    await configure_session(connection, configure)
                self._ready.set_result(connection)
                await self._wait_until_released()
        except Exception as exc:  # reported to whoever awaits the connection
            if not self._ready.done():
                self._ready.set_exception(exc)
                # Retrieved here so an unused failure is not reported as never retrieved.
                self._ready.exception()
            log.warning("voice_live.open_failed", error=str(exc) or type(exc).__name__)
        finally:
            if not self._ready.done():  # released before it opened
                self._ready.set_exception(VoiceLiveConnectionError("released before it opened"))
                self._ready.exception()

    async def _wait_until_released(self) -> None:
        await self._released.wait()


@dataclass(frozen=True, slots=True)
class CallSessions:
    """Opens Voice Live sessions for one call: its profile, its correlation id."""

    opener: SessionOpener

    def open(self) -> HeldSession:
        return HeldSession(self.opener, name="voice-live-session")


def call_sessions(
    settings: VoiceLiveSettings,
    profile: AgentProfile,
    correlation_id: str,
    heartbeat_s: float | None,
) -> CallSessions:
    """``heartbeat_s``: see ``open_voice_live``."""

    def opener() -> AbstractAsyncContextManager[VoiceLiveConnection]:
        return open_voice_live(
            settings, profile, correlation_id=correlation_id, heartbeat_s=heartbeat_s
        )

    return CallSessions(opener)
