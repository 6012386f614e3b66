"""Faults a test injects into a call's media line at the phone's end: drops and stalls.

``Phone(faults=...)`` takes them, timed from the first media socket's opening; the ACS stand-in
re-exports them (``callbridge.sim.acs``) for its calls' ``media_faults``. The phone's line
carries out the drops (``callbridge.sim.phone_line``) and its microphone the stalls
(``callbridge.sim.microphone``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

DROP_CLOSE_CODE: Final = 1001
"""The close code of an injected drop. ACS does not publish what it sends when its side of the
media socket goes away mid-call; RFC 6455 §7.4.1 names 1001 (going away) for an endpoint that
leaves, e.g. a server going down, which is what a media processor failing over is."""


@dataclass(frozen=True, slots=True)
class MediaDrop:
    """ACS's side closes the media socket ``at_s`` seconds after the first one opened, while
    the call goes on.

    With ``abort`` the TCP connection just ends, without a close frame. ``rejoin_after_s``
    after the drop ACS opens a new socket to the same URL, with a fresh token and the same
    call headers, and sends ``AudioMetadata`` again; None: it never does, and the call stays
    up without media until someone hangs up. The caller's script keeps its own clock: what the
    caller says meanwhile is lost (``CallRecord.lost_voiced_ms``).
    """

    at_s: float
    rejoin_after_s: float | None = 0.5
    abort: bool = False


@dataclass(frozen=True, slots=True)
class MediaStall:
    """The phone sends no frames from ``at_s`` for ``for_s`` seconds (None: for good), while
    the socket stays open and the caller still hears what the bridge sends."""

    at_s: float
    for_s: float | None


MediaFault: TypeAlias = MediaDrop | MediaStall
