"""When no agent can talk, callbridge speaks to the caller itself: never silence.

Voice Live unreachable at the start, its configuration refused, or a lost session not replaced
within the reconnect budget: the profile's fallback clip is played over the media socket, after
whatever agent audio was already queued, and once the caller has heard it the call is
transferred to ``fallback_transfer_to`` through ACS or, without one (or if ACS refuses the
transfer), hung up.
"""

from __future__ import annotations

import structlog

from callbridge.adapters.fallback_audio import fallback_clip
from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallTelemetry
from callbridge.bridge.actions import AgentActions, CallActions
from callbridge.bridge.clip_playback import queue_clip
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.stats import CallStats
from callbridge.core.codec import Codec
from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile

log = structlog.get_logger(__name__)


async def fall_back(
    reason: str,
    *,
    profile: AgentProfile,
    codec: Codec,
    pacer: FramePacer,
    actions: AgentActions,
    call: CallActions,
    stats: CallStats,
    recorder: CallRecorder | None,
    telemetry: CallTelemetry | None,
) -> None:
    """Play the fallback clip, then transfer or hang up (see the module docstring)."""
    if actions.ending or stats.fallback is not None:
        return
    stats.fallback = reason
    target = profile.fallback_transfer_to
    log.error("call.fallback", reason=reason, transfer=target is not None)
    if recorder is not None:
        recorder.event("bridge", "fallback", reason=reason)
    if telemetry is not None:
        telemetry.continuity("fallback")
    queue_clip(fallback_clip(profile), codec=codec, pacer=pacer)
    if target is not None and await actions.played_out():
        try:
            await call.transfer(target)
        except Exception as exc:  # any refusal by ACS: hang up rather than leave silence
            log.error("acs.transfer_failed", error=str(exc) or type(exc).__name__)
        else:
            actions.ending = True
            stats.ended_by = EndedBy.FALLBACK_TRANSFER
            log.info("call.transferred", to="fallback_transfer_to")
            return
    await actions.end_call(EndedBy.VOICE_SESSION_UNAVAILABLE, force=True)
