"""Agent profiles, and the routing table that picks one for each dialed number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AudioFormat = Literal["g711_ulaw", "pcm16"]
"""The audio format between callbridge and Voice Live."""

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise phone agent. The caller hears you through a phone line: "
    "keep answers short, speak naturally, and never read out markup or lists."
)

DEFAULT_VOICE = "en-US-Ava:DragonHDLatestNeural"

MediaRate = Literal[16000, 24000]
"""The PCM16 rates ACS media streaming offers (``pcm16KMono`` / ``pcm24KMono``)."""


@dataclass(frozen=True, slots=True)
class VoiceLiveAgent:
    """A Voice Live agent (Azure AI Foundry) that answers instead of a bare model."""

    name: str
    project: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Bounds on one call, so a stuck or abusive call cannot hold a replica's capacity."""

    max_call_s: float = 3600.0
    """The call is ended (goodbye, then hang-up) after this long."""
    tool_timeout_s: float = 10.0
    """A tool that takes longer returns an error result to the model."""


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Who answers a call: prompt, voice, greeting, model or agent, tools and audio format."""

    name: str = "default"
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = DEFAULT_VOICE
    greeting: str | None = None
    """Spoken verbatim first; without it the model greets in its own words."""
    audio_format: AudioFormat = "g711_ulaw"
    """The audio format between callbridge and Voice Live."""
    media_rate: MediaRate = 16000
    """The PCM16 rate ACS streams at for this profile's calls."""
    model: str | None = None
    """Overrides ``VOICE_LIVE_MODEL`` for this profile; ignored when ``agent`` is set."""
    agent: VoiceLiveAgent | None = None
    tools: tuple[str, ...] = ()
    """Tool names offered to the model: ``end_call``, ``transfer_call`` or user tools."""
    tools_module: str | None = None
    """Importable Python module whose tools (see ``callbridge.voice.tools``) the profile may use."""
    transfer_to: str | None = None
    """E.164 number (or ACS raw id) that ``transfer_call`` transfers the caller to."""
    limits: CallLimits = CallLimits()
