"""Who or what ended a call: one word for it everywhere.

The bridge records it, logs it (``call.ended``) and exports it (``callbridge.ended_by``);
recordings keep it, call reports judge it, and scenario files expect it.
"""

from __future__ import annotations

from enum import StrEnum


class EndedBy(StrEnum):
    CALLER = "caller"
    """The caller hung up (or the network dropped them)."""
    END_CALL = "end_call"
    """The agent hung up, with its ``end_call`` tool, once its goodbye was heard."""
    TRANSFER_CALL = "transfer_call"
    """The agent handed the caller on, with its ``transfer_call`` tool."""
    TIME_LIMIT = "time_limit"
    """The profile's ``max_call_s`` ran out: a goodbye, then a hang-up."""
    VOICE_SESSION_UNAVAILABLE = "voice_session_unavailable"
    """No agent could talk: Voice Live could not be reached, refused the session's
    configuration, or was lost and not replaced within the reconnect budget. callbridge played
    the fallback message, then hung up."""
    FALLBACK_TRANSFER = "fallback_transfer"
    """No agent could talk (as above): callbridge played the fallback message, then
    transferred the caller to the profile's ``fallback_transfer_to``."""
    MEDIA_LOST = "media_lost"
    """ACS's media socket closed or went silent and no new one came within the rejoin window,
    while ACS still had the call: callbridge hung up."""
    SHUTDOWN = "shutdown"
    """The replica shut down (drained) while the call was going on."""
