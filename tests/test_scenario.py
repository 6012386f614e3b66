"""Scenario files: loading, every error rule, and judging a call report against [expect]."""

from __future__ import annotations

import re
import textwrap
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile
from callbridge.sim import scenario as scenario_module
from callbridge.sim.barge_ins import BargeInReport
from callbridge.sim.report import CallReport, CallSetup, Pacing
from callbridge.sim.scenario import (
    DEFAULT_TRANSFER_TO,
    BargeInExpectation,
    Expectations,
    Failure,
    ScenarioError,
    check_expectations,
    load_scenario,
)
from callbridge.sim.script import (
    AfterAgentDone,
    AfterHeard,
    At,
    Clip,
    Dtmf,
    Hangup,
    Say,
    ScriptRunner,
    Step,
)
from callbridge.sim.voicelive.audio import AgentTurn, ToolCall


def pcm(*, ms: int, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """Audio whose every sample is 16: what ``write_wav`` writes."""
    return (bytes([16] + [0] * (width - 1)) * channels) * (rate * ms // 1000)


def write_wav(
    path: Path, *, ms: int = 200, rate: int = 16000, channels: int = 1, width: int = 2
) -> None:
    frames = pcm(ms=ms, rate=rate, channels=channels, width=width)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A scenario folder with good and bad audio files."""
    audio = tmp_path / "audio"
    write_wav(audio / "question.wav", ms=300)
    (audio / "question.txt").write_text("Where is my order?\n", encoding="utf-8")
    write_wav(audio / "interrupt.wav", ms=200, rate=24000)
    write_wav(audio / "greeting.wav", ms=400)
    (audio / "greeting.txt").write_text("Hello, Contoso support.\n", encoding="utf-8")
    write_wav(audio / "answer.wav", ms=500, rate=24000)
    write_wav(audio / "stereo.wav", channels=2)
    write_wav(audio / "8bit.wav", width=1)
    write_wav(audio / "empty.wav", ms=0)
    write_wav(audio / "low.wav", rate=4000)
    (audio / "notes.wav").write_text("not audio", encoding="utf-8")
    return tmp_path


def write_scenario(folder: Path, text: str, name: str = "calm.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> tuple[str, ...]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


FULL = """
name = "caller interrupts mid-sentence"
description = "The caller cuts in 2.5 s into the answer."
audio_format = "pcm16"
media_rate = 24000

[caller]
steps = [
  { say = "audio/question.wav", after_agent_done_ms = 400 },
  { say = "audio/interrupt.wav", after_heard_ms = 2500, spurt = 2, transcript = "Sorry, wait." },
  { dtmf = "12#", at_s = 12.0 },
  { dtmf = "5", after_heard_ms = 100 },
  { say = "audio/interrupt.wav", at_s = 20 },
  { hangup = true, after_agent_done_ms = 300 },
]

[agent]
tools = ["end_call", "lookup_order", "transfer_call"]
tools_module = "myapp.tools"
response_delay_ms = 150
stream_speed = 4

[[agent.turns]]
audio = "audio/greeting.wav"

[[agent.turns]]
audio = "audio/answer.wav"
transcript = "Your order shipped."
tool = { name = "lookup_order", arguments = { order_id = "42", rush = true } }

[[agent.turns]]
audio = "audio/greeting.wav"
tool = "end_call"

[expect]
barge_ins = [ { truncation_tolerance_ms = 20, max_stop_latency_ms = 300 }, {} ]
tools_called = ["lookup_order", "end_call"]
ended_by = "end_call"
max_first_audio_ms = 1500
stale_audio_ms = 0
protocol_violations = 0
"""

MINIMAL_AGENT = """
[[agent.turns]]
audio = "audio/greeting.wav"
"""


# --- Loading -------------------------------------------------------------------------------


def test_full_scenario_loads(folder: Path) -> None:
    path = write_scenario(folder, FULL)
    scenario = load_scenario(path)

    question = Clip(pcm(ms=300, rate=16000), 16000)
    interrupt = Clip(pcm(ms=200, rate=24000), 24000)
    assert scenario.name == "caller interrupts mid-sentence"
    assert scenario.path == path
    assert scenario.description == "The caller cuts in 2.5 s into the answer."
    assert (scenario.audio_format, scenario.media_rate) == ("pcm16", 24000)
    assert scenario.script == [
        Say(question, AfterAgentDone(pause_ms=400)),
        Say(interrupt, AfterHeard(ms=2500, spurt=2)),
        # Several keys: one Dtmf step each, 100 ms apart.
        Dtmf("1", At(12.0)),
        Dtmf("2", At(12.1)),
        Dtmf("#", At(12.2)),
        Dtmf("5", AfterHeard(ms=100, spurt=1)),
        Say(interrupt, At(20.0)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    assert scenario.caller_transcripts == [
        "Where is my order?",  # from audio/question.txt
        "Sorry, wait.",  # inline
        "(caller speech, 0.2 s)",  # neither: as the emulator says it
    ]
    greeting = pcm(ms=400, rate=16000)
    assert scenario.turns == [
        AgentTurn(greeting, 16000, "Hello, Contoso support."),
        AgentTurn(
            pcm(ms=500, rate=24000),
            24000,
            "Your order shipped.",
            ToolCall("lookup_order", {"order_id": "42", "rush": True}),
        ),
        AgentTurn(greeting, 16000, "Hello, Contoso support.", ToolCall("end_call")),
    ]
    assert scenario.turns[1].tool_call is not None
    assert scenario.turns[1].tool_call.arguments == {"order_id": "42", "rush": True}
    assert scenario.tools == ("end_call", "lookup_order", "transfer_call")
    assert scenario.tools_module == "myapp.tools"
    assert scenario.transfer_to == DEFAULT_TRANSFER_TO
    assert (scenario.response_delay_ms, scenario.stream_speed) == (150, 4.0)
    assert scenario.expectations == Expectations(
        barge_ins=(
            BargeInExpectation(truncation_tolerance_ms=20, max_stop_latency_ms=300),
            BargeInExpectation(),
        ),
        tools_called=("lookup_order", "end_call"),
        ended_by=EndedBy.END_CALL,
        max_first_audio_ms=1500,
        stale_audio_ms=0,
        protocol_violations=0,
    )
    assert scenario.profile == AgentProfile(
        audio_format="pcm16",
        media_rate=24000,
        tools=("end_call", "lookup_order", "transfer_call"),
        tools_module="myapp.tools",
        transfer_to=DEFAULT_TRANSFER_TO,
    )


def test_minimal_scenario_takes_the_defaults(folder: Path) -> None:
    scenario = load_scenario(write_scenario(folder, MINIMAL_AGENT, name="greeting-only.toml"))

    assert scenario.name == "greeting-only"
    assert scenario.description == ""
    assert (scenario.audio_format, scenario.media_rate) == ("g711_ulaw", 16000)
    assert scenario.script == []
    assert scenario.caller_transcripts == []
    assert scenario.tools == ("end_call",)
    assert scenario.tools_module is None
    assert scenario.transfer_to is None
    assert (scenario.response_delay_ms, scenario.stream_speed) == (200, 2.0)
    # Nothing is checked but the protocol, which is unless the file says otherwise.
    assert scenario.expectations == Expectations(protocol_violations=0)


def test_tables_may_come_in_any_order_and_steps_as_array_of_tables(folder: Path) -> None:
    text = """
    [[agent.turns]]
    audio = "audio/greeting.wav"

    [agent]
    tools = ["end_call"]

    [[caller.steps]]
    say = "audio/question.wav"
    after_agent_done_ms = 400

    [[caller.steps]]
    hangup = true
    at_s = 30
    """
    scenario = load_scenario(write_scenario(folder, text))

    assert [type(step) for step in scenario.script] == [Say, Hangup]
    assert len(scenario.turns) == 1


def test_pcm16_transfer_scenario(folder: Path) -> None:
    text = (
        MINIMAL_AGENT
        + """
    tool = "transfer_call"
    [agent]
    tools = ["transfer_call"]
    transfer_to = "+1 (800) 555-0111"
    [expect]
    ended_by = "transfer_call"
    """
    )
    scenario = load_scenario(write_scenario(folder, text))

    assert scenario.transfer_to == "+18005550111"
    assert scenario.profile.transfer_to == "+18005550111"
    assert scenario.expectations.ended_by == EndedBy.TRANSFER_CALL


@pytest.mark.parametrize(("old", "new"), [("agent", "end_call"), ("transfer", "transfer_call")])
def test_old_ended_by_words_still_load_with_a_warning(folder: Path, old: str, new: str) -> None:
    """Files written before the one vocabulary keep working; the log says what to write."""
    text = MINIMAL_AGENT + f'[agent]\ntools = ["{new}"]\n[expect]\nended_by = "{old}"\n'
    with capture_logs() as logs:
        scenario = load_scenario(write_scenario(folder, text))

    assert scenario.expectations.ended_by == EndedBy(new)
    warnings = [line for line in logs if line["event"] == "scenario.old_word"]
    assert [(w["field"], w["word"], w["log_level"]) for w in warnings] == [
        ("expect.ended_by", old, "warning")
    ]
    assert f'write ended_by = "{new}"' in warnings[0]["detail"]


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = scenario_module.__doc__ or ""
    example = doc.split("(paths are relative to the scenario file)::\n")[1]
    example = example[: example.index("\n\nCaller lines")]
    for name in re.findall(r'"(audio/[a-z_]+\.wav)"', example):
        write_wav(tmp_path / name)
    scenario = load_scenario(write_scenario(tmp_path, example))

    assert [type(step).__name__ for step in scenario.script] == [
        "Say",
        "Say",
        *["Dtmf", "Say", "Dtmf", "Say", "Dtmf"],  # "42#", a silent 100 ms between keys
        "Hangup",
    ]
    assert scenario.caller_transcripts[1] == "Wait."
    assert len(scenario.turns) == 5
    assert scenario.expectations.tools_called == ("lookup_order", "end_call")


class _QuietEar:
    """The agent spoke until 0.5 s and has been quiet since."""

    playing_until: float | None = 0.5

    def heard_ms(self, spurt: int, at: float) -> float:
        return 0.0


def _key_times(script: list[Step]) -> list[tuple[str, float]]:
    runner = ScriptRunner(script, sample_rate=16000, opened_at=0.0)
    pressed = []
    for frame in range(100):
        due = frame * 0.02
        pressed += [(digit, round(due, 3)) for digit in runner.tick(due, _QuietEar()).digits]
    return pressed


@pytest.mark.parametrize(
    ("trigger", "first_at"),
    [("at_s = 0.4", 0.4), ("after_agent_done_ms = 300", 0.8)],
)
def test_a_dtmf_string_presses_its_keys_100_ms_apart(
    folder: Path, trigger: str, first_at: float
) -> None:
    text = f'[caller]\nsteps = [{{ dtmf = "12#", {trigger} }}]\n' + MINIMAL_AGENT
    scenario = load_scenario(write_scenario(folder, text))

    assert _key_times(scenario.script) == [
        ("1", first_at),
        ("2", round(first_at + 0.1, 3)),
        ("#", round(first_at + 0.2, 3)),
    ]


# --- Errors --------------------------------------------------------------------------------

STEP = "[caller]\nsteps = [{}]\n" + MINIMAL_AGENT
"""A scenario with one caller step (``{}`` is replaced by the step)."""

TOOLS = '[agent]\ntools = ["end_call", "lookup_order"]\ntools_module = "myapp.tools"\n'


def _step(step: str) -> str:
    return STEP.replace("{}", step, 1)


def _turn(extra: str, agent: str = "") -> str:
    return f'{agent}[[agent.turns]]\naudio = "audio/greeting.wav"\n{extra}\n'


def _expect(extra: str, agent: str = "") -> str:
    return f"{agent}{MINIMAL_AGENT}[expect]\n{extra}\n"


ERRORS = [
    # The top level.
    ("[expects]\nbarge_ins = 0\n" + MINIMAL_AGENT, "expects", 'did you mean "expect"?'),
    ("name = 5\n" + MINIMAL_AGENT, "name", 'must be a string, not 5 (quote it: "5")'),
    ('description = ""\n' + MINIMAL_AGENT, "description", "must not be empty"),
    ('audio_format = "g711_alaw"\n' + MINIMAL_AGENT, "audio_format", '"g711_ulaw" or "pcm16"'),
    ("media_rate = 8000\n" + MINIMAL_AGENT, "media_rate", "must be 16000 or 24000, not 8000"),
    ("media_rate = 16000.0\n" + MINIMAL_AGENT, "media_rate", "must be 16000 or 24000"),
    # The caller.
    ('caller = "alice"\n' + MINIMAL_AGENT, "caller", "must be a table ([caller])"),
    ('[caller]\nsteps = "hello"\n' + MINIMAL_AGENT, "caller.steps", "must be a list"),
    ("[caller]\nstep = []\n" + MINIMAL_AGENT, "caller.step", 'did you mean "steps"?'),
    ('[caller]\nrecording = "calls/1"\n' + MINIMAL_AGENT, "caller.recording", "unknown key"),
    (_step('"audio/question.wav"'), "caller.steps[0]", "must be a table such as"),
    (
        _step('{ say = "audio/question.wav", after_heard = 100 }'),
        "caller.steps[0].after_heard",
        'unknown key; did you mean "after_heard_ms"?',
    ),
    (_step("{ at_s = 1.0 }"), "caller.steps[0]", "needs an action: say, dtmf or hangup"),
    (
        _step('{ say = "audio/question.wav", hangup = true, at_s = 1.0 }'),
        "caller.steps[0]",
        "has say and hangup; a step does one thing",
    ),
    (
        _step("{ hangup = true }"),
        "caller.steps[0]",
        "needs a trigger: at_s, after_heard_ms or after_agent_done_ms",
    ),
    (
        _step("{ hangup = true, at_s = 1, after_agent_done_ms = 300 }"),
        "caller.steps[0]",
        "has at_s and after_agent_done_ms; a step has one trigger",
    ),
    (
        _step('{ hangup = true, at_s = 1 }, { dtmf = "1", after_heard_ms = -5 }'),
        "caller.steps[1].after_heard_ms",
        "must be a number >= 0, not -5",
    ),
    (_step("{ hangup = true, at_s = true }"), "caller.steps[0].at_s", "must be a number >= 0"),
    (_step("{ hangup = true, at_s = inf }"), "caller.steps[0].at_s", "not inf"),
    (
        _step('{ hangup = true, after_agent_done_ms = "soon" }'),
        "caller.steps[0].after_agent_done_ms",
        'must be a number >= 0, not "soon"',
    ),
    (
        _step("{ hangup = true, after_heard_ms = 100, spurt = 0 }"),
        "caller.steps[0].spurt",
        "must be a whole number >= 1",
    ),
    (
        _step("{ hangup = true, at_s = 1, spurt = 2 }"),
        "caller.steps[0].spurt",
        "only goes with after_heard_ms",
    ),
    (
        _step('{ dtmf = "1", at_s = 1, transcript = "one" }'),
        "caller.steps[0].transcript",
        "only goes with say",
    ),
    (_step("{ say = 3, at_s = 1 }"), "caller.steps[0].say", "must be a string"),
    (_step('{ say = "audio/missing.wav", at_s = 1 }'), "caller.steps[0].say", "no such file"),
    (_step('{ say = "audio", at_s = 1 }'), "caller.steps[0].say", "no such file"),
    (_step('{ say = "audio/notes.wav", at_s = 1 }'), "caller.steps[0].say", "not a PCM WAV"),
    (
        _step('{ say = "audio/stereo.wav", at_s = 1 }'),
        "caller.steps[0].say",
        "must be PCM16 mono; it has 2 channel(s) of 16-bit samples",
    ),
    (
        _step('{ say = "audio/8bit.wav", at_s = 1 }'),
        "caller.steps[0].say",
        "1 channel(s) of 8-bit samples",
    ),
    (_step('{ say = "audio/empty.wav", at_s = 1 }'), "caller.steps[0].say", "holds no audio"),
    (
        _step('{ dtmf = "12x", at_s = 1 }'),
        "caller.steps[0].dtmf",
        '"12x" has "x": keypad keys are 0-9, *, # and A-D',
    ),
    (_step("{ dtmf = 5, at_s = 1 }"), "caller.steps[0].dtmf", '(quote it: "5")'),
    (_step('{ dtmf = "", at_s = 1 }'), "caller.steps[0].dtmf", "a string of keypad keys"),
    (_step("{ hangup = false, at_s = 1 }"), "caller.steps[0].hangup", "must be true, not false"),
    (
        _step('{ hangup = true, at_s = 1 }, { dtmf = "1", at_s = 2 }, { dtmf = "2", at_s = 3 }'),
        "caller.steps[1]",
        "comes after the hang-up at caller.steps[0], so it would never run",
    ),
    # The agent.
    ('name = "silent"\n', "agent.turns", "required: at least one [[agent.turns]]"),
    ('[agent]\ntools = ["end_call"]\n', "agent.turns", "required"),
    ("[agent]\nturns = []\n", "agent.turns", "needs at least one turn"),
    ('[agent]\nturns = ["audio/greeting.wav"]\n', "agent.turns[0]", "must be a table such as"),
    ('[[agent.turns]]\ntranscript = "Hi."\n', "agent.turns[0].audio", "required"),
    (_turn('transcipt = "Hi."'), "agent.turns[0].transcipt", 'did you mean "transcript"?'),
    ('[[agent.turns]]\naudio = "audio/low.wav"\n', "agent.turns[0].audio", "8000-48000 Hz"),
    ('[[agent.turns]]\naudio = "audio/nope.wav"\n', "agent.turns[0].audio", "no such file"),
    (
        _turn('tool = "transfer_call"'),
        "agent.turns[0].tool",
        '"transfer_call" is not offered in agent.tools (end_call)',
    ),
    (
        _turn('tool = { name = "lookup_ordr" }', TOOLS),
        "agent.turns[0].tool.name",
        'did you mean "lookup_order"?',
    ),
    (_turn("tool = { arguments = {} }"), "agent.turns[0].tool.name", "required"),
    (_turn("tool = 3"), "agent.turns[0].tool", 'must be a tool name such as "end_call"'),
    (
        _turn('tool = { name = "end_call", args = {} }'),
        "agent.turns[0].tool.args",
        'did you mean "arguments"?',
    ),
    (
        _turn('tool = { name = "end_call", arguments = "now" }'),
        "agent.turns[0].tool.arguments",
        "must be a table",
    ),
    (
        _turn('tool = { name = "end_call", arguments = { "on" = 2026-01-01 } }'),
        "agent.turns[0].tool.arguments",
        "must hold only JSON values",
    ),
    (_turn("", '[agent]\ntools = "end_call"\n'), "agent.tools", "must be a list of tool names"),
    (_turn("", '[agent]\ntools = ["end call"]\n'), "agent.tools[0]", "is not a tool name"),
    (
        _turn("", '[agent]\ntools = ["end_call", "end_call"]\n'),
        "agent.tools[1]",
        '"end_call" is listed twice',
    ),
    (
        _turn("", '[agent]\ntools = ["lookup_order"]\n'),
        "agent.tools[0]",
        '"lookup_order" needs agent.tools_module: it is not a built-in tool',
    ),
    (
        _turn("", '[agent]\ntools = ["end_cal"]\n'),
        "agent.tools[0]",
        'did you mean "end_call"?',
    ),
    (
        _turn("", '[agent]\ntools_module = "my-app.tools"\n'),
        "agent.tools_module",
        "must be a Python module name",
    ),
    (
        _turn("", '[agent]\ntools = ["transfer_call"]\ntransfer_to = "555-0100"\n'),
        "agent.transfer_to",
        "must be an E.164 number",
    ),
    (
        _turn("", '[agent]\ntransfer_to = "+18005550100"\n'),
        "agent.transfer_to",
        'only used when agent.tools offers "transfer_call"',
    ),
    (
        _turn("", "[agent]\nresponse_delay_ms = 1.5\n"),
        "agent.response_delay_ms",
        "must be a whole number of milliseconds >= 0, not 1.5",
    ),
    (_turn("", "[agent]\nstream_speed = 0\n"), "agent.stream_speed", "must be a number > 0"),
    (_turn("", '[agent]\nrecording = "calls/1"\n'), "agent.recording", "unknown key"),
    # The expectations.
    (
        _expect("max_first_audio = 900"),
        "expect.max_first_audio",
        'did you mean "max_first_audio_ms"',
    ),
    ("expect = 1\n" + MINIMAL_AGENT, "expect", "must be a table ([expect])"),
    (_expect('barge_ins = "two"'), "expect.barge_ins", "must be a number of barge-ins"),
    (_expect("barge_ins = -1"), "expect.barge_ins", "must be a number of barge-ins"),
    (_expect("barge_ins = [1]"), "expect.barge_ins[0]", "must be a table"),
    (
        _expect("barge_ins = [{ spurt = 2 }]"),
        "expect.barge_ins[0].spurt",
        "unknown key; valid keys: truncation_tolerance_ms, max_stop_latency_ms",
    ),
    (
        _expect("barge_ins = [{}, { truncation_tolerance_ms = -1 }]"),
        "expect.barge_ins[1].truncation_tolerance_ms",
        "must be a number >= 0, not -1",
    ),
    (
        _expect("barge_ins = [{ max_stop_latency_ms = 0 }]"),
        "expect.barge_ins[0].max_stop_latency_ms",
        "must be a number > 0, not 0",
    ),
    (
        _expect('tools_called = ["end_call", "lookup_order"]'),
        "expect.tools_called[1]",
        '"lookup_order" is not offered in agent.tools (end_call), so it cannot be called',
    ),
    (_expect('tools_called = "end_call"'), "expect.tools_called", "must be a list of tool names"),
    (
        _expect('ended_by = "callee"'),
        "expect.ended_by",
        'must be "caller" or "end_call" or "transfer_call" or "time_limit" or'
        ' "voice_session_unavailable" or "fallback_transfer" or "media_lost" or "shutdown",'
        ' not "callee"; did you mean "caller"?',
    ),
    (
        _expect('ended_by = "transfer_call"'),
        "expect.ended_by",
        '"transfer_call" is not offered in agent.tools (end_call), so the agent cannot end the'
        " call with it",
    ),
    (
        _expect('ended_by = "agent"', '[agent]\ntools = ["transfer_call"]\n'),
        "expect.ended_by",
        '"end_call" is not offered in agent.tools (transfer_call), so the agent cannot end the'
        " call with it",
    ),
    (_expect("max_first_audio_ms = 0"), "expect.max_first_audio_ms", "must be a number > 0"),
    (_expect("stale_audio_ms = -20"), "expect.stale_audio_ms", "must be a number >= 0"),
    (_expect("protocol_violations = 0.5"), "expect.protocol_violations", "whole number >= 0"),
    (_expect("protocol_violations = -1"), "expect.protocol_violations", "whole number >= 0"),
]


@pytest.mark.parametrize(("text", "field", "problem"), ERRORS, ids=[e[1] for e in ERRORS])
def test_each_error_names_the_file_and_the_field(
    folder: Path, text: str, field: str, problem: str
) -> None:
    path = write_scenario(folder, text)
    problems = problems_of(path)

    prefix = f"{path}: {field}: "
    matching = [line for line in problems if line.startswith(prefix)]
    assert matching, problems
    assert any(problem in line for line in matching), matching


def test_the_error_format_is_file_field_problem(folder: Path) -> None:
    text = _step('{ dtmf = "1", at_s = 1 }, { dtmf = "2", after_heard_ms = -5 }')
    (line,) = problems_of(write_scenario(folder, text))
    assert (
        line
        == f"{folder / 'calm.toml'}: caller.steps[1].after_heard_ms: must be a number >= 0, not -5"
    )


def test_every_problem_in_the_file_is_reported_together(folder: Path) -> None:
    text = """
    media_rate = 8000

    [caller]
    steps = [
      { say = "audio/question.wav", after_heard = 100 },
      { dtmf = "1", at_s = 2, after_agent_done_ms = 300 },
    ]

    [[agent.turns]]
    audio = "audio/stereo.wav"

    [expect]
    max_first_audio_ms = -1
    """
    path = write_scenario(folder, text)
    problems = problems_of(path)

    assert [line.removeprefix(f"{path}: ").split(":")[0] for line in problems] == [
        "media_rate",
        "caller.steps[0].after_heard",
        "caller.steps[0]",  # no trigger, once after_heard is not one
        "caller.steps[1]",  # two triggers
        "agent.turns[0].audio",
        "expect.max_first_audio_ms",
    ]


def test_a_bad_tool_list_does_not_make_every_tool_look_unoffered(folder: Path) -> None:
    text = _expect('tools_called = ["end_call"]', '[agent]\ntools = "end_call"\n')
    text = text.replace(MINIMAL_AGENT, _turn('tool = "end_call"'))
    problems = problems_of(write_scenario(folder, text))

    assert len(problems) == 1
    assert ": agent.tools: must be a list" in problems[0]


def test_unreadable_files_are_reported(folder: Path) -> None:
    missing = folder / "missing.toml"
    assert problems_of(missing) == (
        f"{missing}: cannot read the scenario file: No such file or directory",
    )

    broken = write_scenario(folder, 'name = "unclosed\n', name="broken.toml")
    (line,) = problems_of(broken)
    assert line.startswith(f"{broken}: invalid TOML: ")
    assert "line 1" in line

    latin1 = folder / "latin1.toml"
    latin1.write_bytes('name = "café"\n'.encode("latin-1"))
    assert problems_of(latin1) == (f"{latin1}: not UTF-8 text (TOML files are UTF-8)",)


# --- Judging a call ------------------------------------------------------------------------


def barge_in(*, error: int | None = 10, latency: float | None = 120.0) -> BargeInReport:
    return BargeInReport(
        stop_latency_ms=latency,
        audio_end_ms=None if error is None else 2500 + error,
        heard_ms=2500,
        truncation_error_ms=error,
        overhang_ms=90,
    )


SETUP = CallSetup(
    direction="inbound",
    outcome="answered",
    answer_ms=40.0,
    media_ms=80.0,
    voice_live_head_start_ms=35.0,
    callbacks=["CallConnected 200"],
    disconnect="app_terminate",
    ended_by=EndedBy.END_CALL,
    transfer_target=None,
)


def call_report(**changes: Any) -> CallReport:
    """A call that went as FULL expects."""
    report = CallReport(
        call_id="call-1",
        audio_format="pcm16",
        sample_rate=24000,
        duration_s=21.5,
        first_audio_ms=900.0,
        pacing=Pacing(
            frames=500, jitter_p50_ms=1.0, jitter_p99_ms=4.0, jitter_max_ms=6.0, underruns=0
        ),
        barge_ins=[barge_in(), barge_in(error=None, latency=None)],
        stale_audio_ms=0,
        protocol_violations=[],
        tool_calls=["lookup_order", "end_call"],
        setup=SETUP,
    )
    return replace(report, **changes)


def test_a_matching_report_passes(folder: Path) -> None:
    scenario = load_scenario(write_scenario(folder, FULL))

    assert check_expectations(scenario.expectations, call_report()) == []


def test_nothing_but_the_protocol_is_checked_by_default() -> None:
    anything = call_report(barge_ins=[], tool_calls=[], first_audio_ms=None, stale_audio_ms=900)
    assert check_expectations(Expectations(), anything) == []
    assert (
        check_expectations(
            Expectations(protocol_violations=None), call_report(protocol_violations=["bad"])
        )
        == []
    )


def test_a_truncation_error_over_tolerance_names_the_expectation_and_the_barge_in() -> None:
    expect = Expectations(
        barge_ins=(
            BargeInExpectation(truncation_tolerance_ms=20),
            BargeInExpectation(truncation_tolerance_ms=20),
        )
    )
    report = call_report(barge_ins=[barge_in(error=5), barge_in(error=37)])

    (failure,) = check_expectations(expect, report)
    assert failure.expectation == "expect.barge_ins[1].truncation_tolerance_ms"
    assert failure.message.startswith("barge-in 2: truncation error 37 ms > tolerance 20 ms")
    assert str(failure) == f"{failure.expectation}: {failure.message}"


def test_barge_in_failures() -> None:
    expect = Expectations(
        barge_ins=(BargeInExpectation(truncation_tolerance_ms=20, max_stop_latency_ms=100),)
    )

    assert check_expectations(expect, call_report(barge_ins=[barge_in(latency=250.5)])) == [
        Failure(
            "expect.barge_ins[0].max_stop_latency_ms",
            "barge-in 1: StopAudio 250.5 ms after speech_started > maximum 100 ms",
        )
    ]
    (no_truncate, no_latency) = check_expectations(
        expect, call_report(barge_ins=[barge_in(error=None, latency=None)])
    )
    assert no_truncate.expectation == "expect.barge_ins[0].truncation_tolerance_ms"
    assert no_truncate.message == (
        "barge-in 1: callbridge sent no truncate (the caller heard 2500 ms of the reply)"
    )
    assert no_latency.expectation == "expect.barge_ins[0].max_stop_latency_ms"
    assert check_expectations(expect, call_report(barge_ins=[])) == [
        Failure("expect.barge_ins", "expected 1 barge-in, the call had 0")
    ]
    assert check_expectations(Expectations(barge_ins=()), call_report()) == [
        Failure("expect.barge_ins", "expected 0 barge-ins, the call had 2")
    ]


def test_tools_ending_latency_stale_audio_and_protocol_failures() -> None:
    expect = Expectations(
        tools_called=("lookup_order", "end_call"),
        ended_by=EndedBy.END_CALL,
        max_first_audio_ms=1500,
        stale_audio_ms=0,
        protocol_violations=0,
    )
    report = call_report(
        tool_calls=["end_call"],
        first_audio_ms=1630.4,
        stale_audio_ms=60,
        protocol_violations=["bridge sent a bad media message: no kind", "late truncate"],
        setup=replace(SETUP, disconnect="caller", ended_by=EndedBy.CALLER),
    )

    assert check_expectations(expect, report) == [
        Failure(
            "expect.tools_called",
            "expected [lookup_order, end_call], the agent called [end_call]",
        ),
        Failure(
            "expect.ended_by",
            'expected the call to be ended by "end_call", it was ended by caller (ACS: caller)',
        ),
        Failure(
            "expect.max_first_audio_ms",
            "first agent audio heard 1630.4 ms after the media socket opened > maximum 1500 ms",
        ),
        Failure(
            "expect.stale_audio_ms",
            "60 ms of stale audio reached the phone after StopAudio > maximum 0 ms",
        ),
        Failure(
            "expect.protocol_violations",
            "2 protocol violations > maximum 0: bridge sent a bad media message: no kind;"
            " late truncate",
        ),
    ]


def test_missing_measurements_fail_with_a_reason() -> None:
    expect = Expectations(tools_called=(), ended_by=EndedBy.CALLER, max_first_audio_ms=1500)
    report = call_report(tool_calls=["end_call"], first_audio_ms=None, setup=None)

    assert check_expectations(expect, report) == [
        Failure("expect.tools_called", "expected no tools, the agent called [end_call]"),
        Failure(
            "expect.ended_by",
            "the report has no call setup (the call did not go through ACS),"
            " so who ended it is unknown",
        ),
        Failure("expect.max_first_audio_ms", "the caller heard no agent audio"),
    ]


@pytest.mark.parametrize("ended_by", list(EndedBy))
def test_ended_by_is_judged_in_the_one_vocabulary(ended_by: EndedBy) -> None:
    """The report says who ended the call in the same words the scenario expects."""
    report = call_report(setup=replace(SETUP, ended_by=ended_by))

    assert check_expectations(Expectations(ended_by=ended_by), report) == []
    other = EndedBy.CALLER if ended_by != EndedBy.CALLER else EndedBy.END_CALL
    assert [f.expectation for f in check_expectations(Expectations(ended_by=other), report)] == [
        "expect.ended_by"
    ]


def test_audio_end_ms_pins_where_the_call_was_cut() -> None:
    """A barge-in expected at a given audio_end_ms fails, naming the barge-in, when the
    truncation lands elsewhere (± the tolerance, 20 ms unless given)."""
    report = call_report(barge_ins=[barge_in(error=0)])
    near = Expectations(barge_ins=(BargeInExpectation(audio_end_ms=2510),))
    far = Expectations(barge_ins=(BargeInExpectation(audio_end_ms=1500),))
    assert check_expectations(near, report) == []
    (failure,) = check_expectations(far, report)
    assert failure.expectation == "expect.barge_ins[0].audio_end_ms"
    assert failure.message.startswith("barge-in 1: callbridge truncated at audio_end_ms=2500")
