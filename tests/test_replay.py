"""``callbridge replay``: scenario files run as whole calls on loopback, and judged.

Scenarios here are small: tone WAVs written with ``wave`` and calls of a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from callbridge.sim import replay as replay_module
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.replay import (
    ReplayError,
    find_sources,
    load_source,
    load_sources,
    replay_all,
    run_replay,
    slug,
)
from callbridge.sim.scenario import Scenario, ScenarioError

RATE = 16000

SHORT = """\
name = "greeting only"
[caller]
steps = [{ hangup = true, after_agent_done_ms = 200 }]
[agent]
response_delay_ms = 50
[[agent.turns]]
audio = "audio/greeting.wav"
transcript = "Hello."
[expect]
barge_ins = 0
ended_by = "caller"
stale_audio_ms = 0
"""
"""The agent greets, the caller hangs up: about a second."""

BARGE_IN = """\
name = "{name}"
[caller]
steps = [
  {{ say = "audio/line.wav", after_agent_done_ms = 300, transcript = "A question." }},
  {{ say = "audio/line.wav", after_heard_ms = 500, spurt = 2, transcript = "Stop." }},
  {{ hangup = true, after_agent_done_ms = 200 }},
]
[agent]
response_delay_ms = 50
stream_speed = 4.0
[[agent.turns]]
audio = "audio/greeting.wav"
[[agent.turns]]
audio = "audio/answer.wav"
[[agent.turns]]
audio = "audio/greeting.wav"
[expect]
barge_ins = [{{ truncation_tolerance_ms = 20, max_stop_latency_ms = {stop_ms} }}]
stale_audio_ms = 0
"""
"""The caller cuts the agent's answer 0.5 s in: about five seconds."""

IMPOSSIBLE_STOP_MS = 0.001
"""No StopAudio reaches the phone within a microsecond of speech_started: this fails."""


def write_tone(path: Path, ms: int, hz: float, amplitude: float = 0.3) -> None:
    """A PCM16 mono tone WAV: a stand-in voice the emulator's VAD hears."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = ms * RATE // 1000
    samples = (
        round(amplitude * 32767 * math.sin(2 * math.pi * hz * n / RATE)) for n in range(count)
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(struct.pack(f"<{count}h", *samples))


def write_audio(folder: Path) -> None:
    write_tone(folder / "audio" / "greeting.wav", 400, 440)
    write_tone(folder / "audio" / "answer.wav", 1500, 523)
    # Long enough to interrupt by itself (min_interruption_ms, 500 ms), words or not.
    write_tone(folder / "audio" / "line.wav", 700, 300, amplitude=0.5)


def write_short(folder: Path) -> Path:
    write_audio(folder)
    path = folder / "short.toml"
    path.write_text(SHORT)
    return path


def write_barge_in(folder: Path, *, name: str = "barge-in", stop_ms: float = 300) -> Path:
    write_audio(folder)
    path = folder / f"{slug(name)}.toml"
    path.write_text(BARGE_IN.format(name=name, stop_ms=stop_ms))
    return path


@pytest.fixture
def stack_starts(monkeypatch: pytest.MonkeyPatch) -> list[LocalStack]:
    """Every LocalStack the replay starts."""
    started: list[LocalStack] = []

    class CountingStack(LocalStack):
        async def __aenter__(self) -> LocalStack:
            started.append(self)
            return await super().__aenter__()

    monkeypatch.setattr(replay_module, "LocalStack", CountingStack)
    return started


def run(capsys: pytest.CaptureFixture[str], *paths: Path, **options: Any) -> tuple[int, str, str]:
    options = {"out_dir": None, "json_output": False, "concurrency": 1, **options}
    code = run_replay(list(paths), **options)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_document(out: str) -> dict[str, Any]:
    """The one JSON line of ``--json`` output (log lines may surround it)."""
    line = next(line for line in out.splitlines() if line.startswith('{"scenarios"'))
    document: dict[str, Any] = json.loads(line)
    return document


def test_a_passing_scenario_exits_0_and_writes_its_artifacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write_short(tmp_path / "calls")
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, scenario, out_dir=out_dir)
    assert code == 0, out
    assert f"PASS  greeting only  ({scenario})" in out
    assert "first agent audio heard" in out  # the call report
    assert "1 scenario: 1 passed, 0 failed" in out
    with wave.open(str(out_dir / "greeting-only" / "call.wav"), "rb") as wav:
        assert wav.getnchannels() == 2  # the caller, and what the caller heard
        assert wav.getnframes() > 0
    document = json.loads((out_dir / "greeting-only" / "report.json").read_text())
    assert document["passed"] is True
    assert document["failures"] == []
    assert document["report"]["setup"]["ended_by"] == "caller"


def test_a_failed_expectation_exits_1_naming_it_and_the_barge_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stack_starts: list[LocalStack]
) -> None:
    short = write_short(tmp_path)
    strict = write_barge_in(tmp_path, name="strict stop", stop_ms=IMPOSSIBLE_STOP_MS)
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, short, strict, out_dir=out_dir)
    assert code == 1, out
    assert len(stack_starts) == 1, "both calls share one stack"
    assert f"PASS  greeting only  ({short})" in out
    assert f"FAIL  strict stop  ({strict})" in out
    failure = next(line for line in out.splitlines() if "FAILED" in line).strip()
    assert failure.startswith("FAILED expect.barge_ins[0].max_stop_latency_ms: barge-in 1:")
    assert "after speech_started > maximum" in failure
    assert "2 scenarios: 1 passed, 1 failed" in out
    assert "  FAIL strict stop: expect.barge_ins[0].max_stop_latency_ms" in out
    report = json.loads((out_dir / "strict-stop" / "report.json").read_text())
    assert report["passed"] is False
    assert report["failures"][0]["expectation"] == "expect.barge_ins[0].max_stop_latency_ms"
    # The rest of the call was as expected: only the impossible limit failed.
    [barge_in] = report["report"]["barge_ins"]
    assert barge_in["truncation_error_ms"] <= 20
    assert (out_dir / "strict-stop" / "call.wav").is_file()
    assert (out_dir / "greeting-only" / "call.wav").is_file()


def test_json_output_lists_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write_barge_in(tmp_path, name="strict stop", stop_ms=IMPOSSIBLE_STOP_MS)
    code, out, _ = run(capsys, scenario, json_output=True)
    assert code == 1
    assert "FAIL" not in out  # no text verdicts in JSON mode
    [entry] = json_document(out)["scenarios"]
    assert entry["name"] == "strict stop"
    assert entry["source"] == str(scenario)
    assert entry["passed"] is False
    assert entry["error"] is None
    [failure] = entry["failures"]
    assert failure["expectation"] == "expect.barge_ins[0].max_stop_latency_ms"
    assert failure["message"].startswith("barge-in 1: StopAudio ")
    assert len(entry["report"]["barge_ins"]) == 1
    assert entry["report"]["protocol_violations"] == []


async def record_call(scenario: Path, recordings: Path) -> Path:
    """Run ``scenario``'s call with recording on; the recording's folder."""
    loaded = load_source(scenario)
    async with LocalStack(recordings_dir=recordings) as stack:
        await stack.call(
            loaded.script,
            profile=replace(loaded.profile, record=True),
            turns=loaded.turns,
            caller_transcripts=loaded.caller_transcripts,
        )
    [folder] = list(recordings.iterdir())  # noqa: ASYNC240  # the call is over
    return folder


def test_a_recorded_call_replays_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Record a call through the service, then replay the recording: the replay must do what
    the recorded call did (its barge-in included)."""
    scenario = write_barge_in(tmp_path / "calls")
    folder = asyncio.run(record_call(scenario, tmp_path / "recordings"))
    code, out, _ = run(capsys, tmp_path / "recordings", json_output=True)
    assert code == 0, out
    [entry] = json_document(out)["scenarios"]
    assert entry["source"] == str(folder)
    assert entry["passed"] is True
    assert len(entry["report"]["barge_ins"]) == 1


def test_a_bad_file_exits_2_naming_the_field_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stack_starts: list[LocalStack]
) -> None:
    good = write_short(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(SHORT.replace("barge_ins = 0", "barge_in = 0"))
    code, out, err = run(capsys, good, bad)
    assert code == 2
    assert stack_starts == [], "no call is made when a source cannot be loaded"
    assert f'{bad}: expect.barge_in: unknown key; did you mean "barge_ins"?' in err
    assert "PASS" not in out


def test_a_call_that_does_not_complete_exits_1_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = write_short(tmp_path / "one")
    also = write_barge_in(tmp_path / "two", name="never rung")
    rung: list[str] = []

    async def no_media(stack: LocalStack, scenario: Scenario) -> CallResult:
        rung.append(scenario.name)
        raise RuntimeError("call abc had no media: rejected")

    monkeypatch.setattr(replay_module, "_place_call", no_media)
    code, out, _ = run(capsys, broken, also, out_dir=tmp_path / "out")
    assert code == 1
    assert rung == ["greeting only", "never rung"]
    assert f"ERROR  greeting only  ({broken})" in out
    assert "the call did not complete: RuntimeError: call abc had no media: rejected" in out
    assert "2 scenarios: 0 passed, 2 failed" in out
    written = json.loads((tmp_path / "out" / "never-rung" / "report.json").read_text())
    assert written["error"].startswith("the call did not complete")
    assert written["report"] is None
    with pytest.raises(ReplayError, match=r"short\.toml: the call did not complete"):
        asyncio.run(replay_all([broken]))


def test_missing_paths_and_nothing_to_replay_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, tmp_path / "nope.toml")
    assert code == 2
    assert f"{tmp_path / 'nope.toml'}: no such file or folder" in err
    (tmp_path / "notes.txt").write_text("not a scenario")
    code, _, err = run(capsys, tmp_path / "notes.txt")
    assert code == 2
    assert f"skipped {tmp_path / 'notes.txt'}: not a scenario file" in err
    assert "nothing to replay" in err


def test_a_tools_module_that_does_not_import_is_a_load_error(tmp_path: Path) -> None:
    scenario = write_short(tmp_path)
    scenario.write_text(
        SHORT.replace(
            "[agent]\n",
            '[agent]\ntools = ["end_call", "lookup"]\ntools_module = "no_such_module_here"\n',
        )
    )
    with pytest.raises(ScenarioError) as caught:
        load_source(scenario)
    assert caught.value.problems[0].startswith(f"{scenario}: agent.tools_module: ")
    assert "no_such_module_here" in caught.value.problems[0]


def test_arguments_expand_like_a_shell_glob(tmp_path: Path) -> None:
    """``callbridge replay tests/calls/*``: scenario files and recordings are taken, audio
    and transcripts beside them are skipped; a folder stands for what is in it."""
    calls = tmp_path / "calls"
    b = write_barge_in(calls, name="b")
    a = write_short(calls)
    (calls / "audio" / "greeting.txt").write_text("Hello.")
    recording = calls / "2026-01-01T000000Z_abc"
    recording.mkdir()
    (recording / "meta.json").write_text("{}")
    partial = calls / "2026-01-01T000001Z_def.partial"
    partial.mkdir()
    (partial / "meta.json").write_text("{}")

    globbed = find_sources(sorted(calls.iterdir()))
    assert globbed.found == [recording, partial, b, a]  # named, a partial one is taken
    assert [note.split(":")[0] for note in globbed.skipped] == [str(calls / "audio")]

    folder = find_sources([calls, a])  # a folder, and a file already in it
    assert folder.found == [recording, b, a]
    assert folder.skipped == [f"{partial}: a recording still being written (or abandoned)"]

    with pytest.raises(ScenarioError, match="a folder, not a recording"):
        load_source(calls)


def test_every_bad_source_is_reported_at_once(tmp_path: Path) -> None:
    first = tmp_path / "one.toml"
    first.write_text("name = 1\n")
    second = tmp_path / "two.toml"
    second.write_text("[caller\n")
    with pytest.raises(ScenarioError) as caught:
        load_sources([first, second, tmp_path / "three.toml"])
    problems = caught.value.problems
    assert any(p.startswith(f"{first}: name: must be a string") for p in problems)
    assert any(p.startswith(f"{second}: invalid TOML") for p in problems)
    assert f"{tmp_path / 'three.toml'}: no such file or folder" in problems


def test_slugs_name_output_folders() -> None:
    assert slug("Caller interrupts, then keys in 42#") == "caller-interrupts-then-keys-in-42"
    assert slug("???") == "scenario"
