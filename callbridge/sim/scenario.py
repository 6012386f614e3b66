"""Scenario files: one simulated call written down as TOML, and what its report must show.

A scenario says what the caller does (lines from WAV files, keypad presses, hanging up, each
once its trigger holds), what the agent says (one WAV per response, optionally ending in a tool
call), what goes wrong (faults the stand-ins inject) and what the call's report must show.
:func:`load_scenario` reads and checks a file and reports every problem in it at once;
:func:`check_expectations` judges a finished call's :class:`~callbridge.sim.report.CallReport`
against the file's ``[expect]`` table. Running the call is not done here: a runner gives
``turns``, ``caller_transcripts``, ``profile``, ``response_delay_ms``, ``stream_speed`` and
``faults`` to a ``LocalStack`` and ``script`` to its ``call``.

The format, by example (paths are relative to the scenario file)::

    name = "caller interrupts, then keys in an order number"   # optional; default: file name
    description = "The caller cuts the answer short; the agent looks the order up, hangs up."
    audio_format = "g711_ulaw"   # optional: "g711_ulaw" (default) or "pcm16", to Voice Live
    media_rate = 16000           # optional: 16000 (default) or 24000, the ACS media stream

    [caller]
    # The caller's script, run in order: a step starts waiting when the one before it has
    # finished, and does one thing (say, dtmf or hangup) once its one trigger holds:
    #   at_s = 12.0                 12 s after the media socket opened
    #   after_heard_ms = 2500       once the caller has heard 2.5 s of the agent's talk spurt
    #                               number `spurt` (from 1: the greeting is 1; default 1)
    #   after_agent_done_ms = 400   once the agent has spoken, then been quiet for 400 ms
    # A line's transcript (what the emulator's transcription reports) is the step's
    # transcript, else question.txt beside question.wav (empty: no words, a cough), else a
# placeholder.
    steps = [
      { say = "audio/question.wav", after_agent_done_ms = 400 },
      { say = "audio/interrupt.wav", after_heard_ms = 2500, spurt = 2, transcript = "Wait." },
      { dtmf = "42#", after_agent_done_ms = 300 },   # one key press per character, 100 ms apart
      { hangup = true, at_s = 55 },   # stay on the line for the agent to hang up first
    ]
    # Optional: the caller is on a speakerphone. What their phone plays comes back in what it
    # sends, delay_ms later (at least 20) and level_db quieter (at most 0); the frames it is in
    # are not marked silent (ACS marks a frame silent when it holds only silence).
    echo = { delay_ms = 150, level_db = -15 }

    [agent]
    tools = ["end_call", "lookup_order"]   # offered to the model; default ["end_call"]
    tools_module = "myapp.tools"   # needed for tools other than end_call and transfer_call
    # transfer_to = "+18005550199" # where transfer_call goes (this is the default)
    # fallback_audio = "audio/sorry.wav"      # what callbridge plays when no agent can talk
    # fallback_transfer_to = "+18005550123"   # then transfer there (default: hang up)
    response_delay_ms = 200        # optional: the model's thinking time before each response
    stream_speed = 2.0             # optional: audio streams this much faster than real time

    [[agent.turns]]                # one per response, in order
    audio = "audio/greeting.wav"   # transcript: greeting.txt beside it, or transcript = "..."

    [[agent.turns]]
    audio = "audio/answer.wav"     # long enough to be interrupted 2.5 s in

    [[agent.turns]]
    audio = "audio/ask_order_number.wav"

    [[agent.turns]]
    audio = "audio/looking_it_up.wav"
    tool = { name = "lookup_order", arguments = { order_id = "42" } }   # after the audio

    [[agent.turns]]
    audio = "audio/goodbye.wav"
    tool = "end_call"

    [[faults]]                     # optional: what goes wrong, and when (scenario_faults)
    kind = "voice_live_drop"       # voice_live_drop/_hang/_freeze/_slow_accept/_refuse/_expire,
    during_response = 1            # media_drop, media_stall, acs_rest_error, acs_rest_slow
    after_audio_ms = 1500

    [expect]                       # every key optional
    barge_ins = [{ truncation_tolerance_ms = 20, max_stop_latency_ms = 300 }]  # or a count: 0
    # audio_end_ms = 2500 in a barge-in pins the truncation itself (± the tolerance, 20 ms)
    tools_called = ["lookup_order", "end_call"]   # exactly these, in this order
    ended_by = "end_call"          # "caller", "end_call", "transfer_call"... (EndedBy's words)
    max_first_audio_ms = 1500
    stale_audio_ms = 0             # at most
    protocol_violations = 0        # at most; 0 when not set
    max_silence_ms = 1500          # the longest the caller waits for the agent in silence
    caller_audio_lost_ms = 0       # at most: reached callbridge, heard by no session
    greetings = 1                  # exactly
    sessions = 2                   # Voice Live sessions, exactly
    # fallback_in_full = true      # the call ended on the fallback path, the clip heard whole

Caller lines may be PCM16 mono WAVs at any rate (the phone resamples them); agent turns are
PCM16 mono at 8-48 kHz. The n-th barge-in expectation judges the n-th barge-in; ``{}`` asks
only that it happens. Unknown keys are errors, so a misspelt expectation cannot pass unchecked.

Extension point: a recorded call as the source of the caller's audio or of the agent's turns
will be ``caller.recording = "path"`` (instead of ``caller.steps``) and ``agent.recording =
"path"`` (instead of ``agent.turns``). Both keys are free: nothing reads them yet, so today
they are reported as unknown keys, and files written now stay valid once they exist.

This module is the format's entry point; the work is done next to it: the types a scenario
becomes are in :mod:`~callbridge.sim.scenario_schema`, each table is read by its own module
(:mod:`~callbridge.sim.scenario_caller`, :mod:`~callbridge.sim.scenario_agent`,
:mod:`~callbridge.sim.scenario_faults`, :mod:`~callbridge.sim.scenario_expect`, on
:mod:`~callbridge.sim.scenario_reader`), and :mod:`~callbridge.sim.expectations` judges a
report (the continuity figures are :mod:`~callbridge.sim.continuity`'s). Every public name is
importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, get_args

from callbridge.core.profiles import AudioFormat, MediaRate
from callbridge.process.toml_file import Problems, is_whole_number, read_toml_file
from callbridge.sim.expectations import Failure, check_expectations
from callbridge.sim.scenario_agent import AgentReader
from callbridge.sim.scenario_caller import CallerReader
from callbridge.sim.scenario_expect import ExpectReader
from callbridge.sim.scenario_faults import FaultsReader
from callbridge.sim.scenario_reader import ScenarioReader, show
from callbridge.sim.scenario_schema import (
    DEFAULT_AUDIO_END_TOLERANCE_MS,
    DEFAULT_RESPONSE_DELAY_MS,
    DEFAULT_STREAM_SPEED,
    DEFAULT_TOOLS,
    DEFAULT_TRANSFER_TO,
    DTMF_GAP_MS,
    BargeInExpectation,
    Expectations,
    Faults,
    Scenario,
    ScenarioError,
)

__all__ = [
    "DEFAULT_AUDIO_END_TOLERANCE_MS",
    "DEFAULT_RESPONSE_DELAY_MS",
    "DEFAULT_STREAM_SPEED",
    "DEFAULT_TOOLS",
    "DEFAULT_TRANSFER_TO",
    "DTMF_GAP_MS",
    "BargeInExpectation",
    "Expectations",
    "Failure",
    "Faults",
    "Scenario",
    "ScenarioError",
    "check_expectations",
    "load_scenario",
]

_TOP_KEYS: Final = (
    "name",
    "description",
    "audio_format",
    "media_rate",
    "caller",
    "agent",
    "faults",
    "expect",
)


def load_scenario(path: Path) -> Scenario:
    """Read and check the scenario file at ``path``.

    Raises:
        ScenarioError: listing every problem in the file, not just the first.
    """
    problems = Problems(path)
    document = read_toml_file(path, problems.file, "scenario")
    scenario = None if document is None else _ScenarioFile(path, problems).scenario(document)
    if scenario is None or problems.lines:
        raise ScenarioError(problems.lines)
    return scenario


class _ScenarioFile(ScenarioReader):
    """Turns a parsed scenario document into a ``Scenario``, recording every problem: the
    top-level keys here, each table by its own reader."""

    def scenario(self, document: Mapping[str, Any]) -> Scenario | None:
        self.unknown_keys(document, "", _TOP_KEYS)
        name = self.string(document, "", "name")
        description = self.string(document, "", "description")
        audio_format = self.choice(document, "", "audio_format", get_args(AudioFormat))
        media_rate = self.media_rate(document)
        caller = self.table(document, "", "caller") or {}
        caller_table = CallerReader(self.path, self.problems).caller(caller)
        agent_reader = AgentReader(self.path, self.problems)
        agent = agent_reader.agent(document)
        expect_reader = ExpectReader(self.path, self.problems, agent_reader.offered)
        expectations = expect_reader.expectations(document)
        faults = FaultsReader(self.path, self.problems).faults(document)
        if self.problems.lines:
            return None
        return Scenario(
            name=name or self.path.stem,
            path=self.path,
            description=description or "",
            audio_format="pcm16" if audio_format == "pcm16" else "g711_ulaw",
            media_rate=24000 if media_rate == 24000 else 16000,
            script=caller_table.script,
            turns=agent.turns,
            tools=agent.tools,
            tools_module=agent.tools_module,
            transfer_to=agent.transfer_to,
            response_delay_ms=agent.response_delay_ms,
            stream_speed=agent.stream_speed,
            expectations=expectations,
            caller_transcripts=caller_table.transcripts,
            echo=caller_table.echo,
            faults=faults,
            fallback_audio=agent.fallback_audio,
            fallback_transfer_to=agent.fallback_transfer_to,
        )

    def media_rate(self, document: Mapping[str, Any]) -> int | None:
        value = document.get("media_rate")
        if value is None:
            return None
        rates: tuple[int, ...] = get_args(MediaRate)
        if not is_whole_number(value) or value not in rates:
            allowed = " or ".join(str(rate) for rate in rates)
            self.problems.at("media_rate", f"must be {allowed}, not {show(value)}")
            return None
        return value
