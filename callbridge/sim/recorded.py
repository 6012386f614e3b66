"""Recorded calls as scenarios: replay a call recording against today's callbridge.

:func:`scenario_from_recording` rebuilds a call from its recording folder (see
:mod:`callbridge.adapters.recording`) as a :class:`~callbridge.sim.scenario.Scenario`: the same
caller, the same agent, and expectations that are what happened on the recorded call. Run through a
``LocalStack``, a change in callbridge's behaviour shows as a failed expectation::

    scenario = scenario_from_recording(Path("recordings/20261121T101500Z_4c1f0b00"))
    result = await stack.call(
        scenario.script,
        profile=scenario.profile,
        turns=scenario.turns,
        caller_transcripts=scenario.caller_transcripts,
    )
    assert check_expectations(scenario.expectations, result.report) == []

This module puts the scenario together; each part has its own module, whose docstring gives
its rules:

* the recording is read and checked by :mod:`~callbridge.sim.recorded_file`;
* **the caller** (:mod:`~callbridge.sim.recorded_caller`) says exactly the audio ACS
  delivered, at the time it arrived, presses the keys that were pressed, and hangs up where
  their audio ends; if the agent ended or transferred the call, the caller stays on the line
  ``end_grace_s`` longer, for the replayed agent to end it as it did. A call ended some other
  way (time limit, shutdown, the Voice Live session ending) or of unknown ending: the caller
  hangs up where their recorded audio ends;
* **the agent** (:mod:`~callbridge.sim.recorded_agent`) plays one turn per recorded
  response, with its audio, transcript and tool call;
* **the expectations** (:mod:`~callbridge.sim.recorded_expectations`) are what happened: its
  barge-ins (each truncated within ``truncation_tolerance_ms``, 20 ms unless given), tool
  calls, ending, first audio (plus ``first_audio_margin_ms``), no stale audio and no protocol
  violations.

**The profile**: the recording's ``audio_format`` and ``sample_rate`` (the ACS media rate),
the tools that were called plus ``end_call``, and ``tools_module`` from the argument, else
from ``meta.extra.tools_module``. Tools other than ``end_call`` and ``transfer_call`` need
one; without it the recording cannot be replayed (a ``ScenarioError`` names the tools).
``transfer_call`` transfers to ``DEFAULT_TRANSFER_TO``.

**A partial recording** (``.partial``, or never closed: the process died) replays as far as
it got: its caller hangs up where the recorded audio ends, and the expectations are only about
what it holds (its barge-ins and tool calls); ``ended_by`` is checked only if the
``call_ended`` event made it to disk. A recording in which the agent never spoke gets one
silent turn, so the emulator has something to play.

Limits: the replayed agent answers with the emulator's timing (``response_delay_ms``, the
stream speed), not the original model's, while the caller keeps the original timing; a caller
line that answered the agent may thus come a little earlier or later relative to the agent
than it did. A replay runs in real time: a runner must let the phone stay on as long as the
script (``callbridge replay`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from callbridge.adapters.recording import META, PARTIAL_SUFFIX, Recording
from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import BUILTIN_TOOLS
from callbridge.sim.recorded_agent import BARGE_IN_PAD_MS, TOOL_CALL_SLACK_S, agent_turns
from callbridge.sim.recorded_caller import GAP_TOLERANCE_S, caller_side
from callbridge.sim.recorded_expectations import (
    REPLAYABLE_ENDS,
    ended_by,
    recorded_expectations,
    tools_called,
)
from callbridge.sim.recorded_file import meta_extra, read_replayable
from callbridge.sim.scenario_schema import (
    DEFAULT_RESPONSE_DELAY_MS,
    DEFAULT_STREAM_SPEED,
    DEFAULT_TRANSFER_TO,
    Scenario,
    ScenarioError,
)

__all__ = [
    "BARGE_IN_PAD_MS",
    "DEFAULT_END_GRACE_S",
    "DEFAULT_FIRST_AUDIO_MARGIN_MS",
    "DEFAULT_TRUNCATION_TOLERANCE_MS",
    "GAP_TOLERANCE_S",
    "REPLAYABLE_ENDS",
    "TOOL_CALL_SLACK_S",
    "scenario_from_recording",
]

DEFAULT_TRUNCATION_TOLERANCE_MS: Final = 20.0
"""The most a replayed barge-in's ``audio_end_ms`` may be off what the caller heard."""

DEFAULT_FIRST_AUDIO_MARGIN_MS: Final = 500.0
"""Added to the original first audio for ``max_first_audio_ms`` (see
:mod:`callbridge.sim.recorded_expectations`)."""

DEFAULT_END_GRACE_S: Final = 5.0
"""How long past the recorded end the caller stays on when the agent ended the call."""


def scenario_from_recording(
    path: Path,
    *,
    truncation_tolerance_ms: float = DEFAULT_TRUNCATION_TOLERANCE_MS,
    first_audio_margin_ms: float = DEFAULT_FIRST_AUDIO_MARGIN_MS,
    end_grace_s: float = DEFAULT_END_GRACE_S,
    tools_module: str | None = None,
) -> Scenario:
    """The scenario that replays the call recorded in the folder ``path``.

    The caller says what ACS delivered, when it arrived; the agent replays its responses;
    the expectations are what happened on the recorded call (see the module docstring for
    where every rule is). A partial recording (the process died mid-call) replays as far as
    it got, with expectations only about what it holds.

    Args:
        truncation_tolerance_ms: for every barge-in, the most ``|audio_end_ms - heard_ms|``
            may be.
        first_audio_margin_ms: added to the original first audio for ``max_first_audio_ms``.
        end_grace_s: how long past the recorded end the caller waits for the agent to hang
            up or transfer, when that is how the call ended.
        tools_module: the module defining the call's user tools, overriding the recording's
            ``meta.extra.tools_module`` (needed when the recording does not name it).

    Raises:
        ScenarioError: ``path`` is not a recording, is corrupt, or used tools that cannot be
            replayed; each line names the file and the problem.
    """
    recording = read_replayable(Path(path))
    agent_ends = ended_by(recording) in (EndedBy.END_CALL, EndedBy.TRANSFER_CALL)
    caller = caller_side(recording, stay_on_s=end_grace_s if agent_ends else 0.0)
    turns = agent_turns(recording)
    tools = tuple(dict.fromkeys((*tools_called(recording), "end_call")))
    module = _tools_module(recording, tools, tools_module)
    return Scenario(
        name=recording.path.name.removesuffix(PARTIAL_SUFFIX),
        path=recording.path,
        description=_description(recording),
        audio_format="pcm16" if recording.meta["audio_format"] == "pcm16" else "g711_ulaw",
        media_rate=24000 if recording.sample_rate == 24000 else 16000,
        script=caller.script,
        turns=turns,
        tools=tools,
        tools_module=module,
        transfer_to=DEFAULT_TRANSFER_TO if "transfer_call" in tools else None,
        response_delay_ms=DEFAULT_RESPONSE_DELAY_MS,
        stream_speed=DEFAULT_STREAM_SPEED,
        expectations=recorded_expectations(
            recording,
            origin=caller.origin,
            truncation_tolerance_ms=truncation_tolerance_ms,
            first_audio_margin_ms=first_audio_margin_ms,
        ),
        caller_transcripts=caller.transcripts,
    )


def _description(recording: Recording) -> str:
    meta = recording.meta
    text = (
        f"Replay of call {meta.get('call_connection_id')} (profile {meta.get('profile')}),"
        f" recorded {meta.get('started_at')} with callbridge {meta.get('callbridge_version')}"
    )
    if recording.partial:
        text += "; a partial recording: the call was replayed as far as it was recorded"
    return text


def _tools_module(recording: Recording, tools: Sequence[str], given: str | None) -> str | None:
    """The tools module the replay needs, if any: ``given``, else the recording's.

    Raises:
        ScenarioError: user tools were called and no module is known, or it is no module
            name.
    """
    module = given
    if module is None:
        recorded = meta_extra(recording).get("tools_module", recording.meta.get("tools_module"))
        module = recorded if isinstance(recorded, str) and recorded else None
    user = [name for name in tools if name not in BUILTIN_TOOLS]
    meta = recording.path / META
    if module is not None and not all(part.isidentifier() for part in module.split(".")):
        raise ScenarioError([f"{meta}: tools_module: {module!r} is not a Python module name"])
    if user and module is None:
        names = ", ".join(f'"{name}"' for name in user)
        raise ScenarioError(
            [
                f"{meta}: the call used {names}, which"
                f" {'is not a built-in tool' if len(user) == 1 else 'are not built-in tools'}"
                f" ({', '.join(BUILTIN_TOOLS)}), and the recording does not name the"
                " tools_module that defines them (meta.extra.tools_module): pass"
                " tools_module= to replay it"
            ]
        )
    return module if user else None
