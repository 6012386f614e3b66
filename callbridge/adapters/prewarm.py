"""Voice Live sessions opened ahead of the media socket, so the greeting starts at once.

When an IncomingCall arrives (or an outbound call is placed), the replica that handles it starts
connecting to Voice Live and configuring the session while ACS answers and opens the media
socket. If that socket lands on the same replica it claims the ready session; otherwise the
session expires after ``ttl_s`` and the other replica connects on its own. Correctness never
depends on which replica gets what; only the greeting's latency does.
"""

from __future__ import annotations

import asyncio

import structlog

from callbridge.adapters.held_session import HeldSession, call_sessions
from callbridge.adapters.voice_live import session_request
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings
from callbridge.tools import profile_tools

log = structlog.get_logger(__name__)


class PrewarmedSession(HeldSession):
    """A Voice Live session being opened and configured for one call, closed after ``ttl_s``
    unless a media socket claims it."""

    def __init__(
        self,
        settings: VoiceLiveSettings,
        profile: AgentProfile,
        correlation_id: str,
        ttl_s: float,
        heartbeat_s: float | None = None,
    ) -> None:
        self.profile = profile
        self.correlation_id = correlation_id
        self._claimed = asyncio.Event()
        self._ttl_s = ttl_s
        codec = make_codec(profile.audio_format, profile.media_rate)
        super().__init__(
            call_sessions(settings, profile, correlation_id, heartbeat_s).opener,
            name=f"prewarm-{correlation_id}",
            configure=session_request(
                profile, codec, settings.transcription_model_for(profile), profile_tools(profile)
            ),
            configured_rate=profile.media_rate,
        )

    def claim(self) -> bool:
        """Keep the session past its time to live; False if it has already closed."""
        self._claimed.set()
        return not self.closed

    async def release(self) -> None:
        # An unclaimed session waits out its time to live (below): releasing it must not.
        self._claimed.set()
        await super().release()

    async def _wait_until_released(self) -> None:
        try:
            await asyncio.wait_for(self._claimed.wait(), self._ttl_s)
        except TimeoutError:
            log.info("voice_live.prewarm_expired", ttl_s=self._ttl_s)
            return
        await super()._wait_until_released()


class Prewarmer:
    """This replica's pre-warmed sessions, by the call's correlation id."""

    def __init__(
        self, settings: VoiceLiveSettings, *, ttl_s: float, heartbeat_s: float | None = None
    ) -> None:
        self._settings = settings
        self._ttl_s = ttl_s
        self._heartbeat_s = heartbeat_s
        self._sessions: dict[str, PrewarmedSession] = {}

    @property
    def pending(self) -> int:
        """Sessions warming for calls whose media socket has not come: calls answered or placed
        here, until a socket claims the session, ACS says the call failed or ended, or the
        session expires (``ttl_s``) or fails."""
        return len(self._sessions)

    def start(self, correlation_id: str, profile: AgentProfile) -> None:
        """Start opening a session for a call about to be answered (once per call)."""
        if correlation_id in self._sessions:
            return
        session = PrewarmedSession(
            self._settings, profile, correlation_id, self._ttl_s, self._heartbeat_s
        )
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
