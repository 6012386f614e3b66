"""Agent profiles, and the routing table that picks one for each dialed number.

One callbridge deployment can answer several numbers with different agents: the routing table
maps each dialed number to a named profile. The table is built once, at start-up (from the
environment, or from the routing file: ``callbridge.process.routing_file``), and shared
read-only by every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from callbridge.core.codec import AudioFormat
from callbridge.core.interruption_policy import InterruptionSettings
from callbridge.core.numbers import is_e164, parse_e164

__all__ = [
    "BUILTIN_TOOLS",
    "DEFAULT_INSTRUCTIONS",
    "DEFAULT_VOICE",
    "AgentProfile",
    "AudioFormat",
    "CallLimits",
    "MediaRate",
    "Routing",
    "Unrouted",
    "VoiceLiveAgent",
]

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
    echo_reference: bool = True
    """In ``pcm16``, send Voice Live what the caller's phone played as an echo reference, for
    its own echo cancellation (a preview feature of the service; ``bridge.caller_echo``). Off,
    or in ``g711_ulaw``, callbridge cancels the echo itself."""
    model: str | None = None
    """Overrides ``VOICE_LIVE_MODEL`` for this profile; ignored when ``agent`` is set."""
    agent: VoiceLiveAgent | None = None
    tools: tuple[str, ...] = ()
    """Tool names offered to the model: ``end_call``, ``transfer_call`` or user tools."""
    tools_module: str | None = None
    """Importable Python module whose tools (see ``callbridge.tools``) the profile may use."""
    transfer_to: str | None = None
    """E.164 number (or ACS raw id) that ``transfer_call`` transfers the caller to."""
    fallback_audio: str | None = None
    """Path of a WAV (PCM16 mono, 8-48 kHz, at most 30 s) the bridge plays itself when no agent
    can talk: Voice Live unreachable, its configuration refused, or the reconnect budget spent.
    None plays the shipped default clip (``callbridge.adapters.fallback_audio``)."""
    fallback_transfer_to: str | None = None
    """E.164 number (or ACS raw id) the caller is transferred to after the fallback clip; None
    hangs up instead."""
    limits: CallLimits = CallLimits()
    interruptions: InterruptionSettings = field(default_factory=InterruptionSettings)
    """How a real interruption is told from a backchannel or a cough
    (``callbridge.core.interruption_policy``)."""
    record: bool = False
    """Record this profile's calls (see ``callbridge.adapters.recording``): off by default, since a
    recording holds the caller's voice and words."""

    @property
    def sends_echo_reference(self) -> bool:
        """Voice Live gets the caller's echo reference as a second channel and cancels the echo
        itself: ``echo_reference`` in ``pcm16`` (the service takes stereo input in no other
        format)."""
        return self.echo_reference and self.audio_format == "pcm16"


BUILTIN_TOOLS: Final = ("end_call", "transfer_call")
"""Tools callbridge implements itself; any other tool name comes from a profile's tools_module."""

Unrouted = Literal["reject", "redirect"]
"""What happens to a call to a number that no listed route or default profile covers."""


@dataclass(frozen=True, slots=True)
class Routing:
    """Which agent profile answers a call, by the number the caller dialed."""

    profiles: Mapping[str, AgentProfile]
    """Every profile, by name (``AgentProfile.name``)."""
    numbers: Mapping[str, str]
    """Canonical E.164 number -> profile name."""
    default_profile: str | None
    """Answers every number that ``numbers`` does not list; None leaves those unrouted."""
    redirect_to: str | None = None
    """E.164 number that unrouted calls are redirected to; None rejects them."""

    def __post_init__(self) -> None:
        # Copied and read-only: one table is shared by every call and must not change under them.
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        problems = [
            f"profiles[{key!r}] is named {profile.name!r}"
            for key, profile in self.profiles.items()
            if profile.name != key
        ]
        problems += [
            f"numbers[{number!r}] is not E.164 or names an unknown profile {name!r}"
            for number, name in self.numbers.items()
            if not is_e164(number) or name not in self.profiles
        ]
        if self.default_profile is not None and self.default_profile not in self.profiles:
            problems.append(f"default_profile {self.default_profile!r} is not a profile")
        if self.redirect_to is not None and not is_e164(self.redirect_to):
            problems.append("redirect_to is not an E.164 number")
        if problems:
            raise ValueError("inconsistent routing: " + "; ".join(problems))

    def profile_for(self, dialed: str) -> AgentProfile | None:
        """The profile that answers a call to ``dialed`` (E.164 or ACS raw id ``4:+...``).

        A listed number gets its own profile, any other number the default profile. None means
        nobody answers: redirect the call to ``redirect_to`` if set, otherwise reject it.
        """
        number = parse_e164(dialed)
        name = self.numbers.get(number) if number is not None else None
        if name is None:
            name = self.default_profile
        return None if name is None else self.profiles[name]

    def profile(self, name: str) -> AgentProfile:
        """The profile called ``name``, e.g. the one a call's token was signed for.

        Raises:
            KeyError: if there is no such profile.
        """
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(f"unknown agent profile {name!r}") from None

    @classmethod
    def single(cls, profile: AgentProfile) -> Routing:
        """Routing without a file: ``profile`` answers every number."""
        return cls(
            profiles={profile.name: profile},
            numbers={},
            default_profile=profile.name,
            redirect_to=None,
        )
