"""What a loaded scenario holds: the caller's script, the agent's turns, the expectations.

These are the types a scenario file (:mod:`callbridge.sim.scenario`) and a call recording
(:mod:`callbridge.sim.recorded`) both become, with the defaults for what a file leaves out and
the error that says why a file cannot be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile, AudioFormat, MediaRate
from callbridge.sim.acs import MediaFault, RestFault
from callbridge.sim.echo import Echo
from callbridge.sim.script import Step
from callbridge.sim.voicelive import Fault
from callbridge.sim.voicelive.audio import AgentTurn

OLD_ENDED_BY: Final = {"agent": EndedBy.END_CALL, "transfer": EndedBy.TRANSFER_CALL}
"""Words scenario files used for ``expect.ended_by`` before callbridge had one vocabulary:
still read, with a warning."""

DEFAULT_TOOLS: Final = ("end_call",)
"""Offered when ``agent.tools`` is not set, as in ``LocalStack``'s default profile."""

DEFAULT_TRANSFER_TO: Final = "+18005550199"
"""Where ``transfer_call`` transfers the caller when ``agent.transfer_to`` is not set."""

DEFAULT_RESPONSE_DELAY_MS: Final = 200
DEFAULT_STREAM_SPEED: Final = 2.0

DTMF_GAP_MS: Final = 100
"""Time between the key presses of one ``dtmf`` step."""

DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
"""The keypad keys a caller can press (upper case)."""

DEFAULT_AUDIO_END_TOLERANCE_MS: Final = 20.0
"""How far the ``audio_end_ms`` callbridge sends may be off a barge-in's expected
``audio_end_ms`` when the expectation sets no ``truncation_tolerance_ms``."""


@dataclass(frozen=True, slots=True)
class BargeInExpectation:
    """What one barge-in must show; None checks nothing (the barge-in must still happen)."""

    truncation_tolerance_ms: float | None = None
    """The most ``|audio_end_ms - heard_ms|`` may be; a missing truncate fails."""
    max_stop_latency_ms: float | None = None
    """The most ``speech_started`` -> ``StopAudio`` at the phone may take."""
    audio_end_ms: float | None = None
    """The ``audio_end_ms`` callbridge must send, give or take ``truncation_tolerance_ms``
    (20 ms if unset): pins where a known call is cut."""


@dataclass(frozen=True, slots=True)
class Faults:
    """A scenario's ``[[faults]]``, by the stand-in that injects them."""

    voice_live: tuple[Fault, ...] = ()
    media: tuple[MediaFault, ...] = ()
    rest: tuple[RestFault, ...] = ()


@dataclass(frozen=True, slots=True)
class Expectations:
    """The ``[expect]`` table. None means not checked."""

    barge_ins: tuple[BargeInExpectation, ...] | None = None
    """Exactly this many barge-ins, the n-th judged by the n-th expectation."""
    tools_called: tuple[str, ...] | None = None
    """Exactly these tool calls, in this order."""
    ended_by: EndedBy | None = None
    max_first_audio_ms: float | None = None
    stale_audio_ms: float | None = None
    """At most this much stale audio after ``StopAudio``."""
    protocol_violations: int | None = 0
    """At most this many protocol violations: 0 unless the file says otherwise."""
    max_silence_ms: float | None = None
    """The longest the caller may wait for the agent in silence (``Continuity``)."""
    caller_audio_lost_ms: float | None = None
    """At most this much caller audio may reach callbridge and no Voice Live session."""
    greetings: int | None = None
    """Exactly this many greetings."""
    sessions: int | None = None
    """Exactly this many Voice Live sessions."""
    fallback_in_full: bool | None = None
    """True: the call ended on the fallback path after the caller heard the whole clip."""
    false_interruptions_resumed: int | None = None
    """Exactly this many barge-ins the agent resumed from (a backchannel, a cough)."""
    resume_gap_ms: float | None = None
    """The longest pause a resumed barge-in may leave at the phone."""
    truncates: int | None = None
    """Exactly this many truncations Voice Live received."""
    agent_turns: int | None = None
    """Exactly this many responses (the greeting included): an answered backchannel fails."""


@dataclass(frozen=True)
class Scenario:
    """A loaded, checked scenario file."""

    name: str
    path: Path
    description: str
    audio_format: AudioFormat
    media_rate: MediaRate
    script: list[Step]
    """The caller's steps. A ``dtmf`` string is one ``Dtmf`` step per key, 100 ms apart: by
    their ``At`` times after ``at_s``, else with a silent 100 ms ``Say`` between two keys."""
    turns: list[AgentTurn]
    tools: tuple[str, ...]
    tools_module: str | None
    transfer_to: str | None
    """Set when ``transfer_call`` is offered."""
    response_delay_ms: int
    stream_speed: float
    expectations: Expectations
    caller_transcripts: list[str]
    """What the emulator transcribes the caller's n-th line as, one per ``say`` step."""
    echo: Echo | None = None
    """``caller.echo``: the caller's phone sends back what it plays (a speakerphone)."""
    faults: Faults = Faults()
    fallback_audio: str | None = None
    """The profile's ``fallback_audio``: a WAV path (resolved against the scenario file)."""
    fallback_transfer_to: str | None = None

    @property
    def profile(self) -> AgentProfile:
        """The agent profile that answers the scenario's call."""
        return AgentProfile(
            audio_format=self.audio_format,
            media_rate=self.media_rate,
            tools=self.tools,
            tools_module=self.tools_module,
            transfer_to=self.transfer_to,
            fallback_audio=self.fallback_audio,
            fallback_transfer_to=self.fallback_transfer_to,
        )


class ScenarioError(ValueError):
    """A scenario file cannot be used. The message lists every problem, one per line, as
    ``<file>: <dotted.field>: <problem>``; ``problems`` holds the same lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)
