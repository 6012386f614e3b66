"""Session rollover: the call's next Voice Live session, ready before the current one expires.

A session expires at its ``expires_at``, or ``session_max_s`` after it opened, whichever is
sooner. ``ROLLOVER_MARGIN_S`` before that (a quarter of the lifetime, for short ones) a standby
session is opened and configured; it is swapped in at a quiet moment (``Quiet``), or, past a
hard deadline (half the margin before expiry), at the end of an agent turn. Never while Voice
Live owes the call an answer: that answer would be lost with the old session.

If the current session is lost before the swap (it expired while the agent talked on, or it
dropped), the standby replaces it: the link takes it with ``take_standby`` rather than opening
yet another session.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog
from azure.ai.voicelive.models import RequestSession

from callbridge.bridge.voice_session import SessionSource, VoiceSession, open_once

log = structlog.get_logger(__name__)

ROLLOVER_MARGIN_S = 60.0
"""A standby session is prepared this long before the current one expires (at most a quarter
of the session's lifetime, for short ones)."""

QUIET_POLL_S = 0.1
"""How often a prepared rollover checks for a quiet moment."""

EXPIRY_NOTICE_S = 1.0
"""How long a new session is given to name its expiry (``session.created``/``updated``) before
the rollover is scheduled (at most a quarter of the lifetime, for short ones)."""


class Quiet(Protocol):
    """What the bridge knows of the call's moment, for a session swap."""

    def quiet(self) -> bool:
        """Nobody is talking: no agent audio playing, no response, the caller silent."""
        ...

    def turn_over(self) -> bool:
        """The agent is not talking and no response is being generated."""
        ...


class RolloverLink(Protocol):
    """What a rollover needs of the call's link to Voice Live."""

    def is_current(self, session: VoiceSession) -> bool:
        """``session`` is the call's current one and serving it (not lost, not being swapped
        out), and the link is not closing."""
        ...

    @property
    def answer_owed(self) -> bool:
        """The current session owes the call an answer."""
        ...

    async def roll_over_to(self, standby: VoiceSession) -> None:
        """Make ``standby`` the call's current session."""
        ...


class Rollover:
    """Prepares each session's standby in time and swaps it in (see the module docstring)."""

    def __init__(self, link: RolloverLink, sessions: SessionSource, lifetime_s: float) -> None:
        self._link = link
        self._sessions = sessions
        self._lifetime_s = lifetime_s
        self._quiet: Quiet | None = None
        self._standby: VoiceSession | None = None
        """Prepared and not yet swapped in."""

    def watch(self, quiet: Quiet) -> None:
        """Who says when a swap may happen (set once the call's parts exist)."""
        self._quiet = quiet

    async def run_for(self, session: VoiceSession, configure: RequestSession) -> None:
        """Roll ``session`` over before it expires (its standby configured with
        ``configure``); nothing if it stops being current first."""
        due = await self._when_due(session)
        if due is None:
            return
        expires, margin = due
        hard_deadline = expires - margin / 2
        standby = await open_once(self._sessions.open(), hard_deadline, configure)
        if standby is None:
            log.warning("voice_live.rollover_not_ready")
            return  # the expiring session is replaced as a loss, when it goes
        if not self._link.is_current(session):
            await standby.close()
            return
        self._standby = standby
        await self._until_swap_moment(session, hard_deadline)
        if self._standby is not standby:
            return  # a replacement for the lost session took it
        self._standby = None
        if not self._link.is_current(session):
            await standby.close()
            return
        await self._link.roll_over_to(standby)

    async def take_standby(self) -> VoiceSession | None:
        """The prepared standby, for the replacement of a session lost before the swap; None
        if there is none, or it closed while it waited."""
        standby, self._standby = self._standby, None
        if standby is not None and standby.held.closed:
            await standby.close()
            return None
        return standby

    async def aclose(self) -> None:
        """The call is over: close a standby that was never swapped in."""
        standby, self._standby = self._standby, None
        if standby is not None:
            await standby.close()

    async def _when_due(self, session: VoiceSession) -> tuple[float, float] | None:
        """Sleep until the standby is due: the session's expiry and the margin; None if the
        session stopped being current first."""
        await asyncio.sleep(min(EXPIRY_NOTICE_S, self._lifetime_s / 4))
        while self._link.is_current(session):
            expires = session.expires(self._lifetime_s)
            margin = min(ROLLOVER_MARGIN_S, (expires - session.opened_at) / 4)
            delay = expires - margin - time.monotonic()
            if delay <= 0:
                return expires, margin
            await asyncio.sleep(min(delay, 1.0))  # re-read: expires_at may come later
        return None

    async def _until_swap_moment(self, session: VoiceSession, hard_deadline: float) -> None:
        """Until a quiet moment, or past ``hard_deadline`` the end of an agent turn, or until
        ``session`` is no longer current."""
        while self._link.is_current(session):
            quiet = self._quiet
            if self._link.answer_owed:
                pass  # an answer is on its way from this session: never swap it away
            elif (
                quiet is None
                or quiet.quiet()
                or (time.monotonic() >= hard_deadline and quiet.turn_over())
            ):
                return
            await asyncio.sleep(QUIET_POLL_S)
