"""Scenario files: one simulated call written down as TOML, and what its report must show.

A scenario says what the caller does (lines from WAV files, keypad presses, hanging up, each
once its trigger holds), what the agent says (one WAV per response, optionally ending in a tool
call) and what the call's report must show. :func:`load_scenario` reads and checks a file and
reports every problem in it at once; :func:`check_expectations` judges a finished call's
:class:`~callbridge.sim.report.CallReport` against the file's ``[expect]`` table. Running the
call is not done here: a runner gives ``turns``, ``caller_transcripts``, ``profile``,
``response_delay_ms`` and ``stream_speed`` to a ``LocalStack`` and ``script`` to its ``call``.

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
    # transcript, else question.txt beside question.wav, else a placeholder.
    steps = [
      { say = "audio/question.wav", after_agent_done_ms = 400 },
      { say = "audio/interrupt.wav", after_heard_ms = 2500, spurt = 2, transcript = "Wait." },
      { dtmf = "42#", after_agent_done_ms = 300 },   # one key press per character, 100 ms apart
      { hangup = true, at_s = 55 },   # stay on the line for the agent to hang up first
    ]

    [agent]
    tools = ["end_call", "lookup_order"]   # offered to the model; default ["end_call"]
    tools_module = "myapp.tools"   # needed for tools other than end_call and transfer_call
    # transfer_to = "+18005550199" # where transfer_call goes (this is the default)
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

    [expect]                       # every key optional
    barge_ins = [{ truncation_tolerance_ms = 20, max_stop_latency_ms = 300 }]  # or a count: 0
    # audio_end_ms = 2500 in a barge-in pins the truncation itself (± the tolerance, 20 ms)
    tools_called = ["lookup_order", "end_call"]   # exactly these, in this order
    ended_by = "agent"             # "caller", "agent" (end_call) or "transfer" (transfer_call)
    max_first_audio_ms = 1500
    stale_audio_ms = 0             # at most
    protocol_violations = 0        # at most; 0 when not set

Caller lines may be PCM16 mono WAVs at any rate (the phone resamples them); agent turns are
PCM16 mono at 8-48 kHz. The n-th barge-in expectation judges the n-th barge-in; ``{}`` asks
only that it happens. Unknown keys are errors, so a misspelt expectation cannot pass unchecked.

Extension point: a recorded call as the source of the caller's audio or of the agent's turns
will be ``caller.recording = "path"`` (instead of ``caller.steps``) and ``agent.recording =
"path"`` (instead of ``agent.turns``). Both keys are free: nothing reads them yet, so today
they are reported as unknown keys, and files written now stay valid once they exist.
"""

from __future__ import annotations

import math
import re
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeGuard, cast, get_args

from callbridge.core.numbers import parse_e164
from callbridge.core.profiles import BUILTIN_TOOLS, AgentProfile, AudioFormat, MediaRate
from callbridge.process.toml_file import did_you_mean, read_toml_file
from callbridge.sim.report import BargeInReport, CallReport
from callbridge.sim.script import (
    AfterAgentDone,
    AfterHeard,
    At,
    Clip,
    Dtmf,
    Hangup,
    Say,
    Step,
    Trigger,
)
from callbridge.sim.voicelive.audio import AgentTurn, ToolCall

EndedBy = Literal["caller", "agent", "transfer"]
"""Who a scenario expects to end the call."""

ACS_ENDED_BY: Final[Mapping[EndedBy, str]] = {
    "caller": "caller",
    "agent": "app_terminate",
    "transfer": "transfer",
}
"""``CallSetup.ended_by`` for each ``expect.ended_by``: the agent ends a call with
``end_call``, which callbridge carries out as a hang-up for everyone (``app_terminate``)."""

DEFAULT_TOOLS: Final = ("end_call",)
"""Offered when ``agent.tools`` is not set, as in ``LocalStack``'s default profile."""

DEFAULT_TRANSFER_TO: Final = "+18005550199"
"""Where ``transfer_call`` transfers the caller when ``agent.transfer_to`` is not set."""

DEFAULT_RESPONSE_DELAY_MS: Final = 200
DEFAULT_STREAM_SPEED: Final = 2.0

DTMF_GAP_MS: Final = 100
"""Time between the key presses of one ``dtmf`` step."""

_SILENCE_RATE: Final = 16000
_SILENCE: Final = Clip(bytes(2 * _SILENCE_RATE * DTMF_GAP_MS // 1000), _SILENCE_RATE)
"""The caller keeps quiet between two key presses of one ``dtmf`` step."""

_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_TOOL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_MAX_SHOWN: Final = 40

_TOP_KEYS: Final = (
    "name",
    "description",
    "audio_format",
    "media_rate",
    "caller",
    "agent",
    "expect",
)
_CALLER_KEYS: Final = ("steps",)
_ACTIONS: Final = ("say", "dtmf", "hangup")
_TRIGGERS: Final = ("at_s", "after_heard_ms", "after_agent_done_ms")
_STEP_KEYS: Final = (*_ACTIONS, "transcript", *_TRIGGERS, "spurt")
_AGENT_KEYS: Final = (
    "turns",
    "tools",
    "tools_module",
    "transfer_to",
    "response_delay_ms",
    "stream_speed",
)
_TURN_KEYS: Final = ("audio", "transcript", "tool")
_TOOL_KEYS: Final = ("name", "arguments")
_EXPECT_KEYS: Final = (
    "barge_ins",
    "tools_called",
    "ended_by",
    "max_first_audio_ms",
    "stale_audio_ms",
    "protocol_violations",
)
_BARGE_IN_KEYS: Final = ("truncation_tolerance_ms", "max_stop_latency_ms", "audio_end_ms")
DEFAULT_AUDIO_END_TOLERANCE_MS: Final = 20.0


# --- What a scenario holds -------------------------------------------------------------------


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

    @property
    def profile(self) -> AgentProfile:
        """The agent profile that answers the scenario's call."""
        return AgentProfile(
            audio_format=self.audio_format,
            media_rate=self.media_rate,
            tools=self.tools,
            tools_module=self.tools_module,
            transfer_to=self.transfer_to,
        )


class ScenarioError(ValueError):
    """A scenario file cannot be used. The message lists every problem, one per line, as
    ``<file>: <dotted.field>: <problem>``; ``problems`` holds the same lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def load_scenario(path: Path) -> Scenario:
    """Read and check the scenario file at ``path``.

    Raises:
        ScenarioError: listing every problem in the file, not just the first.
    """
    problems = _Problems(path)
    document = read_toml_file(path, problems.file, "scenario")
    scenario = None if document is None else _Loader(path, problems).scenario(document)
    if scenario is None or problems.lines:
        raise ScenarioError(problems.lines)
    return scenario


# --- Checking a call against the expectations ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """An expectation the call did not meet."""

    expectation: str
    """The dotted name of the expectation, e.g. ``expect.barge_ins[0].truncation_tolerance_ms``."""
    message: str

    def __str__(self) -> str:
        return f"{self.expectation}: {self.message}"


def check_expectations(expect: Expectations, report: CallReport) -> list[Failure]:
    """Every expectation ``report`` fails, in the order of the ``[expect]`` keys; [] if none."""
    failures: list[Failure] = []
    if expect.barge_ins is not None:
        failures += _check_barge_ins(expect.barge_ins, report)
    if expect.tools_called is not None and list(expect.tools_called) != report.tool_calls:
        failures.append(
            Failure(
                "expect.tools_called",
                f"expected {_names(expect.tools_called)}, the agent called"
                f" {_names(report.tool_calls)}",
            )
        )
    if expect.ended_by is not None:
        failures += _check_ended_by(expect.ended_by, report)
    limit = expect.max_first_audio_ms
    if limit is not None:
        first = report.first_audio_ms
        if first is None:
            failures.append(Failure("expect.max_first_audio_ms", "the caller heard no agent audio"))
        elif first > limit:
            failures.append(
                Failure(
                    "expect.max_first_audio_ms",
                    f"first agent audio heard {_ms(first)} after the media socket opened"
                    f" > maximum {_ms(limit)}",
                )
            )
    limit = expect.stale_audio_ms
    if limit is not None and report.stale_audio_ms > limit:
        failures.append(
            Failure(
                "expect.stale_audio_ms",
                f"{_ms(report.stale_audio_ms)} of stale audio reached the phone after StopAudio"
                f" > maximum {_ms(limit)}",
            )
        )
    allowed = expect.protocol_violations
    violations = report.protocol_violations
    if allowed is not None and len(violations) > allowed:
        failures.append(
            Failure(
                "expect.protocol_violations",
                f"{_count(len(violations), 'protocol violation')} > maximum {allowed}: "
                + "; ".join(violations),
            )
        )
    return failures


def _check_audio_end(
    want: BargeInExpectation, got: BargeInReport, where: str, label: str
) -> list[Failure]:
    if want.audio_end_ms is None:
        return []
    tolerance = want.truncation_tolerance_ms
    if tolerance is None:
        tolerance = DEFAULT_AUDIO_END_TOLERANCE_MS
    if got.audio_end_ms is None:
        message = (
            f"{label}: callbridge sent no truncate, expected audio_end_ms={want.audio_end_ms:g}"
        )
    elif abs(got.audio_end_ms - want.audio_end_ms) > tolerance:
        message = (
            f"{label}: callbridge truncated at audio_end_ms={got.audio_end_ms}, expected"
            f" {want.audio_end_ms:g} ± {_ms(tolerance)} (the caller heard {got.heard_ms} ms)"
        )
    else:
        return []
    return [Failure(f"{where}.audio_end_ms", message)]


def _check_barge_ins(expected: Sequence[BargeInExpectation], report: CallReport) -> list[Failure]:
    failures: list[Failure] = []
    if len(expected) != len(report.barge_ins):
        failures.append(
            Failure(
                "expect.barge_ins",
                f"expected {_count(len(expected), 'barge-in')},"
                f" the call had {len(report.barge_ins)}",
            )
        )
    for index, (want, got) in enumerate(zip(expected, report.barge_ins, strict=False)):
        where = f"expect.barge_ins[{index}]"
        label = f"barge-in {index + 1}"
        tolerance = want.truncation_tolerance_ms
        if tolerance is not None:
            error = got.truncation_error_ms
            if error is None:
                failures.append(
                    Failure(
                        f"{where}.truncation_tolerance_ms",
                        f"{label}: callbridge sent no truncate"
                        f" (the caller heard {got.heard_ms} ms of the reply)",
                    )
                )
            elif error > tolerance:
                failures.append(
                    Failure(
                        f"{where}.truncation_tolerance_ms",
                        f"{label}: truncation error {error} ms > tolerance {_ms(tolerance)}"
                        f" (the caller heard {got.heard_ms} ms, callbridge truncated at"
                        f" audio_end_ms={got.audio_end_ms})",
                    )
                )
        failures += _check_audio_end(want, got, where, label)
        limit = want.max_stop_latency_ms
        if limit is not None:
            latency = got.stop_latency_ms
            if latency is None:
                failures.append(
                    Failure(
                        f"{where}.max_stop_latency_ms",
                        f"{label}: no stop latency (no speech_started preceded the StopAudio)",
                    )
                )
            elif latency > limit:
                failures.append(
                    Failure(
                        f"{where}.max_stop_latency_ms",
                        f"{label}: StopAudio {_ms(latency)} after speech_started"
                        f" > maximum {_ms(limit)}",
                    )
                )
    return failures


def _check_ended_by(expected: EndedBy, report: CallReport) -> list[Failure]:
    if report.setup is None:
        return [
            Failure(
                "expect.ended_by",
                "the report has no call setup (the call did not go through ACS),"
                " so who ended it is unknown",
            )
        ]
    want = ACS_ENDED_BY[expected]
    if report.setup.ended_by == want:
        return []
    return [
        Failure(
            "expect.ended_by",
            f'expected the call to be ended by "{expected}" (ACS: {want}),'
            f" it was ended by {report.setup.ended_by or 'nobody'}",
        )
    ]


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]" if names else "no tools"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _ms(value: float) -> str:
    return f"{int(value)} ms" if float(value).is_integer() else f"{value:.1f} ms"


# --- Reading the file ------------------------------------------------------------------------


def _show(value: object) -> str:
    """``value`` as TOML would write it, shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > _MAX_SHOWN:
            value = value[: _MAX_SHOWN - 1] + "\N{HORIZONTAL ELLIPSIS}"
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass: `at_s = true` is not a time.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int


class _Problems:
    """Collects problems as ``<file>: <dotted.field>: <problem>`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def file(self, problem: str) -> None:
        self.lines.append(f"{self.path}: {problem}")

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{self.path}: {where}: {problem}")


@dataclass(slots=True)
class _Agent:
    tools: tuple[str, ...] = DEFAULT_TOOLS
    tools_module: str | None = None
    transfer_to: str | None = None
    response_delay_ms: int = DEFAULT_RESPONSE_DELAY_MS
    stream_speed: float = DEFAULT_STREAM_SPEED
    turns: list[AgentTurn] = field(default_factory=list)


class _Loader:
    """Turns a parsed scenario document into a ``Scenario``, recording every problem.

    Readers take the table holding a value, the dotted name of that table and the key; they
    return None both when the key is absent and when its value is invalid (after recording
    why), and the loader carries on, so one run reports every problem in the file.
    """

    def __init__(self, path: Path, problems: _Problems) -> None:
        self.path = path
        self.folder = path.parent
        self.problems = problems
        self.offered: tuple[str, ...] | None = DEFAULT_TOOLS
        """``agent.tools``; None when that is invalid, which turns off the checks against it
        (a list that could not be read would make every tool look unoffered)."""

    def scenario(self, document: Mapping[str, Any]) -> Scenario | None:
        self.unknown_keys(document, "", _TOP_KEYS)
        name = self.string(document, "", "name")
        description = self.string(document, "", "description")
        audio_format = self.choice(document, "", "audio_format", get_args(AudioFormat))
        media_rate = self.media_rate(document)
        caller = self.table(document, "", "caller") or {}
        script, transcripts = self.caller(caller)
        agent = self.agent(document)
        expectations = self.expectations(document)
        if self.problems.lines:
            return None
        return Scenario(
            name=name or self.path.stem,
            path=self.path,
            description=description or "",
            audio_format="pcm16" if audio_format == "pcm16" else "g711_ulaw",
            media_rate=24000 if media_rate == 24000 else 16000,
            script=script,
            turns=agent.turns,
            tools=agent.tools,
            tools_module=agent.tools_module,
            transfer_to=agent.transfer_to,
            response_delay_ms=agent.response_delay_ms,
            stream_speed=agent.stream_speed,
            expectations=expectations,
            caller_transcripts=transcripts,
        )

    def media_rate(self, document: Mapping[str, Any]) -> int | None:
        value = document.get("media_rate")
        if value is None:
            return None
        rates: tuple[int, ...] = get_args(MediaRate)
        if not _is_int(value) or value not in rates:
            allowed = " or ".join(str(rate) for rate in rates)
            self.problems.add("media_rate", f"must be {allowed}, not {_show(value)}")
            return None
        return value

    # -- the caller --

    def caller(self, caller: Mapping[str, Any]) -> tuple[list[Step], list[str]]:
        """``[caller]``: the script, and a transcript for each line the caller says."""
        self.unknown_keys(caller, "caller", _CALLER_KEYS)
        raw_steps = self.array(caller, "caller", "steps") or []
        script: list[Step] = []
        transcripts: list[str] = []
        hung_up_at: str | None = None
        dead_reported = False
        for index, raw in enumerate(raw_steps):
            where = f"caller.steps[{index}]"
            if not isinstance(raw, dict):
                self.problems.add(
                    where,
                    'must be a table such as { say = "hello.wav", at_s = 1.0 },'
                    f" not {_show(raw)}",
                )
                continue
            if hung_up_at is not None and not dead_reported:
                self.problems.add(
                    where,
                    f"comes after the hang-up at {hung_up_at}, so it would never run;"
                    " the hang-up must be the last step",
                )
                dead_reported = True
            steps, transcript = self.step(raw, where)
            script += steps
            if transcript is not None:
                transcripts.append(transcript)
            if "hangup" in raw and hung_up_at is None:
                hung_up_at = where
        return script, transcripts

    def step(self, raw: Mapping[str, Any], where: str) -> tuple[list[Step], str | None]:
        """One step of the script (several for a ``dtmf`` string) and, for a line, what it
        says."""
        self.unknown_keys(raw, where, _STEP_KEYS)
        actions = [key for key in _ACTIONS if key in raw]
        if not actions:
            self.problems.add(where, "needs an action: say, dtmf or hangup")
        elif len(actions) > 1:
            self.problems.add(
                where, f"has {' and '.join(actions)}; a step does one thing (say, dtmf or hangup)"
            )
        if "transcript" in raw and "say" not in raw:
            self.problems.add(f"{where}.transcript", "only goes with say")
        trigger = self.trigger(raw, where)
        if len(actions) != 1:
            return [], None
        match actions[0]:
            case "say":
                line = self.say(raw, where)
                if line is None or trigger is None:
                    return [], None
                return [Say(line[0], trigger)], line[1]
            case "dtmf":
                keys = self.dtmf(raw, where)
                if keys is None or trigger is None:
                    return [], None
                return _key_presses(keys, trigger), None
        if raw["hangup"] is not True:
            self.problems.add(
                f"{where}.hangup",
                f"must be true, not {_show(raw['hangup'])} (remove the step instead)",
            )
            return [], None
        return ([Hangup(trigger)] if trigger is not None else []), None

    def trigger(self, raw: Mapping[str, Any], where: str) -> Trigger | None:
        present = [key for key in _TRIGGERS if key in raw]
        values = {key: self.number(raw, where, key, minimum=0.0) for key in present}
        spurt = self.spurt(raw, where)
        if "spurt" in raw and "after_heard_ms" not in raw:
            self.problems.add(f"{where}.spurt", "only goes with after_heard_ms")
        if not present:
            self.problems.add(where, "needs a trigger: at_s, after_heard_ms or after_agent_done_ms")
            return None
        if len(present) > 1:
            self.problems.add(where, f"has {' and '.join(present)}; a step has one trigger")
            return None
        key, value = present[0], values[present[0]]
        if value is None or ("spurt" in raw and spurt is None):
            return None
        match key:
            case "at_s":
                return At(value)
            case "after_heard_ms":
                return AfterHeard(ms=value, spurt=spurt or 1)
        return AfterAgentDone(pause_ms=value)

    def spurt(self, raw: Mapping[str, Any], where: str) -> int | None:
        value = raw.get("spurt")
        if value is None:
            return None
        if not _is_int(value) or value < 1:
            self.problems.add(
                f"{where}.spurt",
                f"must be a whole number >= 1 (the greeting is 1), not {_show(value)}",
            )
            return None
        return value

    def say(self, raw: Mapping[str, Any], where: str) -> tuple[Clip, str] | None:
        """The line's audio, and its transcript: inline, from a sibling .txt, or made up."""
        transcript = self.string(raw, where, "transcript")
        audio = self.wav(raw, where, "say")
        if audio is None:
            return None
        pcm, rate, file = audio
        clip = Clip(pcm, rate)
        if transcript is None:
            transcript = self.sibling_text(file, f"{where}.say")
        if transcript is None:
            # As the emulator words the transcript of a line it was given none for.
            transcript = f"(caller speech, {clip.duration_ms / 1000:.1f} s)"
        return clip, transcript

    def dtmf(self, raw: Mapping[str, Any], where: str) -> str | None:
        value = raw["dtmf"]
        if not isinstance(value, str) or not value:
            quote = f' (quote it: "{value}")' if _is_int(value) else ""
            self.problems.add(
                f"{where}.dtmf",
                f'must be a string of keypad keys such as "1234#", not {_show(value)}{quote}',
            )
            return None
        bad = sorted({key for key in value if key.upper() not in _DTMF_KEYS})
        if bad:
            self.problems.add(
                f"{where}.dtmf",
                f"{_show(value)} has {', '.join(_show(key) for key in bad)}:"
                " keypad keys are 0-9, *, # and A-D",
            )
            return None
        return value.upper()

    # -- the agent --

    def agent(self, document: Mapping[str, Any]) -> _Agent:
        agent = _Agent()
        table = self.table(document, "", "agent")
        if table is None:
            if "agent" not in document:
                self.problems.add("agent.turns", "required: at least one [[agent.turns]]")
            return agent
        self.unknown_keys(table, "agent", _AGENT_KEYS)
        tools = self.tools(table)
        if tools is not None:
            agent.tools = self.offered = tools
        elif "tools" in table:
            self.offered = None
        agent.tools_module = self.module_name(table)
        self.check_builtins(agent.tools, table)
        agent.transfer_to = self.transfer_to(table, agent.tools)
        delay = table.get("response_delay_ms")
        if delay is not None:
            if _is_int(delay) and delay >= 0:
                agent.response_delay_ms = delay
            else:
                self.problems.add(
                    "agent.response_delay_ms",
                    f"must be a whole number of milliseconds >= 0, not {_show(delay)}",
                )
        speed = self.number(table, "agent", "stream_speed", minimum=0.0, exclusive=True)
        if speed is not None:
            agent.stream_speed = float(speed)
        agent.turns = self.turns(table)
        return agent

    def tools(self, table: Mapping[str, Any]) -> tuple[str, ...] | None:
        value = table.get("tools")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problems.add(
                "agent.tools",
                f'must be a list of tool names such as ["end_call"], not {_show(value)}',
            )
            return None
        valid = True
        for index, name in enumerate(value):
            if not _TOOL_NAME.fullmatch(name):
                self.problems.add(
                    f"agent.tools[{index}]",
                    f"{_show(name)} is not a tool name (letters, digits, _ and -; at most 64)",
                )
                valid = False
            elif name in value[:index]:
                self.problems.add(f"agent.tools[{index}]", f"{_show(name)} is listed twice")
                valid = False
        return tuple(value) if valid else None

    def module_name(self, table: Mapping[str, Any]) -> str | None:
        value = self.string(table, "agent", "tools_module")
        if value is not None and not all(part.isidentifier() for part in value.split(".")):
            self.problems.add(
                "agent.tools_module",
                f"must be a Python module name such as myapp.tools, not {_show(value)}",
            )
            return None
        return value

    def check_builtins(self, tools: Sequence[str], table: Mapping[str, Any]) -> None:
        if "tools_module" in table:
            return  # set (or reported as bad already)
        for index, name in enumerate(tools):
            if name not in BUILTIN_TOOLS:
                self.problems.add(
                    f"agent.tools[{index}]",
                    f"{_show(name)} needs agent.tools_module: it is not a built-in tool"
                    f" ({', '.join(BUILTIN_TOOLS)}){did_you_mean(name, BUILTIN_TOOLS)}",
                )

    def transfer_to(self, table: Mapping[str, Any], tools: Sequence[str]) -> str | None:
        value = self.string(table, "agent", "transfer_to")
        if "transfer_to" in table and self.not_offered("transfer_call"):
            self.problems.add(
                "agent.transfer_to", 'only used when agent.tools offers "transfer_call"'
            )
            return None
        if value is None:
            return DEFAULT_TRANSFER_TO if "transfer_call" in tools else None
        number = parse_e164(value)
        if number is None:
            self.problems.add(
                "agent.transfer_to",
                f'must be an E.164 number such as "+18005550100", not {_show(value)}',
            )
        return number

    def turns(self, table: Mapping[str, Any]) -> list[AgentTurn]:
        raw_turns = self.array(table, "agent", "turns")
        if raw_turns is None:
            if "turns" not in table:
                self.problems.add("agent.turns", "required: at least one [[agent.turns]]")
            return []
        if not raw_turns:
            self.problems.add("agent.turns", "needs at least one turn")
        turns: list[AgentTurn] = []
        for index, raw in enumerate(raw_turns):
            where = f"agent.turns[{index}]"
            if not isinstance(raw, dict):
                self.problems.add(
                    where, f'must be a table such as {{ audio = "hello.wav" }}, not {_show(raw)}'
                )
                continue
            turn = self.turn(raw, where)
            if turn is not None:
                turns.append(turn)
        return turns

    def turn(self, raw: Mapping[str, Any], where: str) -> AgentTurn | None:
        self.unknown_keys(raw, where, _TURN_KEYS)
        transcript = self.string(raw, where, "transcript")
        tool_call = self.tool_call(raw, where)
        if "audio" not in raw:
            self.problems.add(f"{where}.audio", "required: the WAV file the agent says")
            return None
        audio = self.wav(raw, where, "audio")
        if audio is None:
            return None
        pcm, rate, file = audio
        if not 8000 <= rate <= 48000:
            self.problems.add(
                f"{where}.audio", f"{file} is {rate} Hz; agent turns must be 8000-48000 Hz"
            )
            return None
        if transcript is None:
            transcript = self.sibling_text(file, f"{where}.audio") or ""
        if "tool" in raw and tool_call is None:
            return None
        return AgentTurn(audio=pcm, sample_rate=rate, transcript=transcript, tool_call=tool_call)

    def tool_call(self, raw: Mapping[str, Any], where: str) -> ToolCall | None:
        """``tool = "name"`` or ``tool = { name = "...", arguments = { ... } }``."""
        value = raw.get("tool")
        if value is None:
            return None
        where = f"{where}.tool"
        arguments: dict[str, Any] = {}
        if isinstance(value, dict):
            self.unknown_keys(value, where, _TOOL_KEYS)
            if "name" not in value:
                self.problems.add(f"{where}.name", "required: the tool the agent calls")
            name = self.string(value, where, "name")
            arguments = self.table(value, where, "arguments") or {}
            name_at = f"{where}.name"
        elif isinstance(value, str):
            name, name_at = value, where
        else:
            self.problems.add(
                where,
                'must be a tool name such as "end_call" or a table'
                f' such as {{ name = "lookup_order", arguments = {{ order_id = "42" }} }},'
                f" not {_show(value)}",
            )
            return None
        if name is None:
            return None
        if self.not_offered(name):
            self.problems.add(name_at, self.unoffered(name, "so the agent cannot call it"))
            return None
        try:
            return ToolCall(name, arguments)
        except ValueError:
            self.problems.add(
                f"{where}.arguments",
                "must hold only JSON values (strings, finite numbers, booleans, arrays,"
                " tables), not dates, times, inf or nan",
            )
            return None

    # -- the expectations --

    def expectations(self, document: Mapping[str, Any]) -> Expectations:
        table = self.table(document, "", "expect")
        if table is None:
            return Expectations()
        self.unknown_keys(table, "expect", _EXPECT_KEYS)
        violations = table.get("protocol_violations")
        if violations is not None and not (_is_int(violations) and violations >= 0):
            self.problems.add(
                "expect.protocol_violations",
                f"must be a whole number >= 0 (the most allowed), not {_show(violations)}",
            )
            violations = None
        return Expectations(
            barge_ins=self.barge_ins(table),
            tools_called=self.tools_called(table),
            ended_by=self.ended_by(table),
            max_first_audio_ms=self.number(
                table, "expect", "max_first_audio_ms", minimum=0.0, exclusive=True
            ),
            stale_audio_ms=self.number(table, "expect", "stale_audio_ms", minimum=0.0),
            protocol_violations=0 if violations is None else violations,
        )

    def barge_ins(self, table: Mapping[str, Any]) -> tuple[BargeInExpectation, ...] | None:
        value = table.get("barge_ins")
        if value is None:
            return None
        if _is_int(value) and value >= 0:
            return (BargeInExpectation(),) * value
        if not isinstance(value, list):
            self.problems.add(
                "expect.barge_ins",
                "must be a number of barge-ins (e.g. 0) or a list with a table per barge-in,"
                f" e.g. [{{ truncation_tolerance_ms = 20 }}], not {_show(value)}",
            )
            return None
        expected: list[BargeInExpectation] = []
        for index, raw in enumerate(value):
            where = f"expect.barge_ins[{index}]"
            if not isinstance(raw, dict):
                self.problems.add(
                    where,
                    "must be a table such as { truncation_tolerance_ms = 20 }"
                    f" ({{}} checks only that it happens), not {_show(raw)}",
                )
                continue
            self.unknown_keys(raw, where, _BARGE_IN_KEYS)
            expected.append(
                BargeInExpectation(
                    truncation_tolerance_ms=self.number(
                        raw, where, "truncation_tolerance_ms", minimum=0.0
                    ),
                    max_stop_latency_ms=self.number(
                        raw, where, "max_stop_latency_ms", minimum=0.0, exclusive=True
                    ),
                    audio_end_ms=self.number(raw, where, "audio_end_ms", minimum=0.0),
                )
            )
        return tuple(expected)

    def tools_called(self, table: Mapping[str, Any]) -> tuple[str, ...] | None:
        value = table.get("tools_called")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problems.add(
                "expect.tools_called",
                f'must be a list of tool names such as ["end_call"], not {_show(value)}',
            )
            return None
        for index, name in enumerate(value):
            if self.not_offered(name):
                self.problems.add(
                    f"expect.tools_called[{index}]",
                    self.unoffered(name, "so it cannot be called"),
                )
        return tuple(value)

    def ended_by(self, table: Mapping[str, Any]) -> EndedBy | None:
        value = self.choice(table, "expect", "ended_by", get_args(EndedBy))
        needs = {"agent": "end_call", "transfer": "transfer_call"}.get(value or "")
        if needs is not None and self.not_offered(needs):
            self.problems.add("expect.ended_by", f'"{value}" needs "{needs}" in agent.tools')
        return cast(EndedBy | None, value)

    def not_offered(self, tool: str) -> bool:
        return self.offered is not None and tool not in self.offered

    def unoffered(self, tool: str, consequence: str) -> str:
        offered = self.offered or ()
        return (
            f"{_show(tool)} is not offered in agent.tools ({', '.join(offered) or 'none'}),"
            f" {consequence}{did_you_mean(tool, offered)}"
        )

    # -- files --

    def wav(self, table: Mapping[str, Any], where: str, key: str) -> tuple[bytes, int, Path] | None:
        """A PCM16 mono WAV named relative to the scenario file: ``(pcm, rate, path)``."""
        name = self.string(table, where, key)
        if name is None:
            return None
        at = f"{where}.{key}"
        file = self.folder / name
        if not file.is_file():
            self.problems.add(at, f"no such file: {file}")
            return None
        try:
            with wave.open(str(file), "rb") as wav:
                channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
                pcm = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            self.problems.add(at, f"{file} is not a PCM WAV file ({exc or 'truncated'})")
            return None
        except OSError as exc:
            self.problems.add(at, f"cannot read {file}: {exc.strerror or exc}")
            return None
        if channels != 1 or width != 2:
            self.problems.add(
                at,
                f"{file} must be PCM16 mono; it has {channels} channel(s)"
                f" of {8 * width}-bit samples",
            )
            return None
        if not pcm:
            self.problems.add(at, f"{file} holds no audio")
            return None
        return pcm, rate, file

    def sibling_text(self, audio: Path, at: str) -> str | None:
        """The transcript beside an audio file (``x.wav`` -> ``x.txt``), if there is one."""
        text_file = audio.with_suffix(".txt")
        if not text_file.is_file():
            return None
        try:
            return text_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.add(at, f"cannot read the transcript {text_file}: {exc}")
            return None

    # -- typed values --

    def unknown_keys(self, table: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
        """Report keys of ``table`` that are not in ``allowed``, with the closest valid key.

        Errors, not warnings: a misspelt expectation silently ignored would pass unchecked.
        """
        for name in table:
            if name not in allowed:
                hint = did_you_mean(name, allowed) or f"; valid keys: {', '.join(allowed)}"
                self.problems.add(_dotted(where, name), f"unknown key{hint}")

    def string(self, table: Mapping[str, Any], where: str, key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        at = _dotted(where, key)
        if not isinstance(value, str):
            quote = f' (quote it: "{value}")' if _is_number(value) else ""
            self.problems.add(at, f"must be a string, not {_show(value)}{quote}")
            return None
        if not value.strip():
            self.problems.add(at, "must not be empty; remove the key instead")
            return None
        return value

    def number(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        *,
        minimum: float,
        exclusive: bool = False,
    ) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        if not _is_number(value) or value < minimum or (exclusive and value == minimum):
            bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
            self.problems.add(_dotted(where, key), f"must be a number {bound}, not {_show(value)}")
            return None
        return float(value)

    def choice(
        self, table: Mapping[str, Any], where: str, key: str, allowed: Sequence[str]
    ) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in allowed:
            options = " or ".join(f'"{option}"' for option in allowed)
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.problems.add(_dotted(where, key), f"must be {options}, not {_show(value)}{hint}")
            return None
        return value

    def table(self, table: Mapping[str, Any], where: str, key: str) -> dict[str, Any] | None:
        value = table.get(key)
        if value is None:
            return None
        at = _dotted(where, key)
        if not isinstance(value, dict):
            example = f"[{at}]" if not where else "{ ... }"
            self.problems.add(at, f"must be a table ({example}), not {_show(value)}")
            return None
        return value

    def array(self, table: Mapping[str, Any], where: str, key: str) -> list[Any] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.problems.add(_dotted(where, key), f"must be a list, not {_show(value)}")
            return None
        return value


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _key_presses(keys: str, trigger: Trigger) -> list[Step]:
    """One ``Dtmf`` step per key, ``DTMF_GAP_MS`` apart.

    The first key goes when the trigger holds. After an ``at_s`` trigger the later keys get
    their own times. Other triggers name no time, so each later key waits behind a silent
    ``DTMF_GAP_MS`` line: the script has no "some time after the previous step" trigger.
    """
    if isinstance(trigger, At):
        return [
            Dtmf(key, At(round(trigger.s + index * DTMF_GAP_MS / 1000, 6)))
            for index, key in enumerate(keys)
        ]
    steps: list[Step] = [Dtmf(keys[0], trigger)]
    for key in keys[1:]:
        steps += [Say(_SILENCE, At(0.0)), Dtmf(key, At(0.0))]
    return steps
