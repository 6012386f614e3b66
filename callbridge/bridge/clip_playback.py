"""A recorded clip played to the caller through the pacer, after whatever is already queued.

Two moments have callbridge speak instead of the agent: the fallback (no agent can talk,
``bridge.fallback``) and the hold (a hang-up ACS has not carried out yet, ``bridge.actions``).
Both play the profile's fallback clip on the pacer's grid, so the caller hears it as they hear
the agent, and a recorded call keeps it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from callbridge.adapters.fallback_audio import FallbackClip, fallback_clip
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.pacer import FramePacer
from callbridge.core import acs_media
from callbridge.core.codec import Codec
from callbridge.core.pacing import OutFrame
from callbridge.core.profiles import AgentProfile

FALLBACK_ITEM = ("callbridge-fallback", 0)
"""The pacer's item key of a clip (it is no Voice Live item)."""

HOLD_PAUSE_S = 1.0
"""The silence between two plays of the clip on hold."""


def queue_clip(clip: FallbackClip, *, codec: Codec, pacer: FramePacer) -> None:
    """Queue ``clip`` for the caller."""
    for frame in clip.frames(codec.acs_rate):
        pacer.push(OutFrame(FALLBACK_ITEM, codec.frame_ms, acs_media.audio_data(frame), frame))


def hang_up_clip(profile: AgentProfile) -> FallbackClip:
    """The clip a caller hears before callbridge hangs up: the profile's own fallback clip, or
    the shipped goodbye (never the shipped transfer clip: nobody is being put through)."""
    return fallback_clip(replace(profile, fallback_transfer_to=None))


async def play_on_hold(
    clip: FallbackClip, *, line: MediaLine, codec: Codec, pacer: FramePacer
) -> None:
    """``clip`` over and over, ``HOLD_PAUSE_S`` apart, until the line closes."""
    while _open(line):
        queue_clip(clip, codec=codec, pacer=pacer)
        while pacer.is_playing() and _open(line):  # noqa: ASYNC110
            await asyncio.sleep(codec.frame_ms / 1000)
        await asyncio.sleep(HOLD_PAUSE_S)


def _open(line: MediaLine) -> bool:
    socket = line.socket
    return not line.ended and socket is not None and not socket.closed
