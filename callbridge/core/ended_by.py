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
    VOICE_SESSION_ENDED = "voice_session_ended"
    """Voice Live closed the session mid-call; callbridge hung up rather than leave silence."""
    VOICE_SESSION_UNAVAILABLE = "voice_session_unavailable"
    """No usable Voice Live session: it could not be reached, or refused its configuration."""
    SHUTDOWN = "shutdown"
    """The replica shut down (drained) while the call was going on."""
