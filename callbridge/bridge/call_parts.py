"""The parts of a call that exist once media flows, and how they are wired to each other.

ACS's first media frame says which rate the call's audio has; only then can the codec, the
pacer and everything that plays or cuts agent audio be built. ``start_parts`` builds them once
per call; they last across media sockets that rejoin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallTelemetry
from callbridge.bridge.actions import AgentActions, CallActions
from callbridge.bridge.agent_audio import AgentAudio
from callbridge.bridge.caller_echo import CallerEcho
from callbridge.bridge.interruption import Interruption
from callbridge.bridge.keypad import Keypad
from callbridge.bridge.media_line import MediaLine
from callbridge.bridge.pacer import FramePacer
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core.call_context import CallContext
from callbridge.core.codec import Codec, make_codec
from callbridge.core.pacing import OutFrame
from callbridge.core.played_audio import PlayedAudio
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import PacingSettings
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import Tool

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CallParts:
    """The parts of a call that exist once ACS's first media frame says which rate it uses."""

    codec: Codec
    echo: CallerEcho
    pacer: FramePacer
    agent_audio: AgentAudio
    interruption: Interruption
    keypad: Keypad
    actions: AgentActions
    recorder: CallRecorder | None
    """The call's recording, when its profile records calls (and the disk allows)."""


def start_parts(
    rate: int,
    *,
    profile: AgentProfile,
    pacing: PacingSettings,
    tools: dict[str, Tool],
    acs: MediaLine,
    link: VoiceLink,
    call: CallActions,
    context: CallContext,
    responses: Responses,
    stats: CallStats,
    helpers: OwnedTasks,
    telemetry: CallTelemetry | None,
    open_recorder: Callable[[int], CallRecorder] | None,
    started_at: float,
) -> CallParts:
    """The call's parts for ACS's ``rate`` (its recording started, if it is recorded)."""
    codec = make_codec(profile.audio_format, rate)
    recorder = _start_recording(open_recorder, rate)
    played = PlayedAudio(rate, epoch=started_at)
    echo = CallerEcho(
        played,
        rate=rate,
        encoder=codec.encoder,
        client_reference=profile.sends_echo_reference,
    )
    pacer = FramePacer(
        acs.send_str,
        lead_ms=pacing.lead_ms,
        playout_delay_ms=pacing.playout_delay_ms,
        marks=pacing.acs_marks,
        played=played,
        on_sent=None if recorder is None else _sent_frame_recorder(recorder, responses),
    )
    agent_audio = AgentAudio(
        codec=codec,
        pacer=pacer,
        responses=responses,
        stats=stats,
        telemetry=telemetry,
        started_at=started_at,
    )
    interruption = Interruption(
        acs=acs,
        voice=link,
        context=context,
        codec=codec,
        pacer=pacer,
        agent_audio=agent_audio,
        responses=responses,
        stats=stats,
        telemetry=telemetry,
        recorder=recorder,
        settings=profile.interruptions,
    )
    keypad = Keypad(
        voice=link,
        context=context,
        responses=responses,
        stats=stats,
        helpers=helpers,
        recorder=recorder,
    )
    actions = AgentActions(
        acs=acs,
        voice=link,
        context=context,
        profile=profile,
        tools=tools,
        call=call,
        pacer=pacer,
        codec=codec,
        interruption=interruption,
        responses=responses,
        stats=stats,
        helpers=helpers,
        recorder=recorder,
    )
    return CallParts(codec, echo, pacer, agent_audio, interruption, keypad, actions, recorder)


def _start_recording(
    open_recorder: Callable[[int], CallRecorder] | None, rate: int
) -> CallRecorder | None:
    if open_recorder is None:
        return None
    try:
        recorder = open_recorder(rate)
    except OSError as exc:  # a full or read-only disk must not stop the call
        log.error("recording.unavailable", error=str(exc))
        return None
    log.info("recording.started", path=str(recorder.path))
    return recorder


def _sent_frame_recorder(
    recorder: CallRecorder, responses: Responses
) -> Callable[[OutFrame], None]:
    """Records each agent frame as it is sent, with the item and response it belongs to."""

    def record(frame: OutFrame) -> None:
        item_id, content_index = frame.key
        recorder.agent_audio(
            frame.pcm,
            item_id=item_id,
            content_index=content_index,
            response_id=responses.item_response.get(item_id),
        )

    return record
