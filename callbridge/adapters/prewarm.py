"""Voice Live sessions opened ahead of the media socket, so the greeting starts at once.

When an IncomingCall arrives (or an outbound call is placed), the replica that handles it starts
connecting to Voice Live and configuring the session while ACS answers and opens the media
socket. If that socket lands on the same replica it claims the ready session; otherwise the
session expires after ``ttl_s`` and the other replica connects on its own. Correctness never
depends on which replica gets what; only the greeting's latency does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from azure.ai.voicelive.aio import VoiceLiveConnection

from callbridge.adapters.voice_live import configure_session, open_voice_live, session_request
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings
from callbridge.tools import profile_tools

log = structlog.get_logger(__name__)


class PrewarmedSession:
    """A Voice Live connection being opened (and configured) for one call."""

    def __init__(
        self,
        settings: VoiceLiveSettings,
        profile: AgentProfile,
        correlation_id: str,
        ttl_s: float,
    ) -> None:
        self.profile = profile
        self.correlation_id = correlation_id
        self._ready: asyncio.Future[VoiceLiveConnection] = asyncio.Future()
        self._released = asyncio.Event()
        self._claimed = asyncio.Event()
        self._task = asyncio.create_task(
            self._hold(settings, ttl_s), name=f"prewarm-{correlation_id}"
        )

    @property
    def media_rate(self) -> int:
        """The ACS rate the session's audio formats were configured for."""
        return self.profile.media_rate

    def claim(self) -> bool:
        """Keep the session past its time to live; False if it has already closed."""
        self._claimed.set()
        return not self._task.done()

    def on_closed(self, callback: Callable[[], None]) -> None:
        self._task.add_done_callback(lambda _: callback())

    async def connection(self) -> VoiceLiveConnection:
        """The configured connection, once open.

        Raises:
            TimeoutError, azure.ai.voicelive.aio.ConnectionError: opening it failed.
        """
        return await asyncio.shield(self._ready)

    async def release(self) -> None:
        """Close the connection (the call has ended, or nobody claimed it)."""
        self._released.set()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _hold(self, settings: VoiceLiveSettings, ttl_s: float) -> None:
        # The connection lives in this task from open to close, so its context manager is
        # entered and exited by one task whoever uses it.
        try:
            async with open_voice_live(
                settings, self.profile, correlation_id=self.correlation_id
            ) as connection:
                codec = make_codec(self.profile.audio_format, self.profile.media_rate)
                await configure_session(
                    connection,
                    session_request(
                        self.profile,
                        codec,
                        settings.transcription_model_for(self.profile),
                        profile_tools(self.profile),
                    ),
                )
                self._ready.set_result(connection)
                try:
                    await asyncio.wait_for(self._claimed.wait(), ttl_s)
                except TimeoutError:
                    log.info("voice_live.prewarm_expired", ttl_s=ttl_s)
                    return
                await self._released.wait()
        except Exception as exc:  # reported to whoever claims the session
            if not self._ready.done():
                self._ready.set_exception(exc)
                # Retrieved here so an unclaimed failure is not reported as never retrieved.
                self._ready.exception()
            log.warning("voice_live.prewarm_failed", error=str(exc) or type(exc).__name__)


class Prewarmer:
    """This replica's pre-warmed sessions, by the call's correlation id."""

    def __init__(self, settings: VoiceLiveSettings, *, ttl_s: float) -> None:
        self._settings = settings
        self._ttl_s = ttl_s
        self._sessions: dict[str, PrewarmedSession] = {}

    def start(self, correlation_id: str, profile: AgentProfile) -> None:
        """Start opening a session for a call about to be answered (once per call)."""
        if correlation_id in self._sessions:
            return
        session = PrewarmedSession(self._settings, profile, correlation_id, self._ttl_s)
        self._sessions[correlation_id] = session
        session.on_closed(lambda: self._forget(correlation_id, session))

    async def claim(
        self, correlation_id: str | None, profile: AgentProfile
    ) -> PrewarmedSession | None:
        """Take the call's pre-warmed session, if this replica has one for that profile."""
        if correlation_id is None:
            return None
        session = self._sessions.pop(correlation_id, None)
        if session is None:
            return None
        if session.profile != profile or not session.claim():
            # Expired, or warmed for another profile than the token names: never talk with
            # the wrong agent.
            await session.release()
            return None
        return session

    async def discard(self, correlation_id: str) -> None:
        """The call ended or failed before its media socket came: close its session now."""
        session = self._sessions.pop(correlation_id, None)
        if session is not None:
            await session.release()

    async def aclose(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(session.release() for session in sessions))

    def _forget(self, correlation_id: str, session: PrewarmedSession) -> None:
        if self._sessions.get(correlation_id) is session:
            del self._sessions[correlation_id]
