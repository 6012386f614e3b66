"""One call on ``callbridge dev``'s line, as ``callbridge ring`` asks for it, and what it leaves.

The call goes the whole way: the ACS stand-in delivers an IncomingCall to the webhook, ACS's
signed callbacks follow, and the simulated phone talks on the media socket callbridge's answer
opened. The agent is the emulator's: the shipped demo turns, or a scenario's own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callbridge.report import CALL_PAGE, RECORDING, REPORT_JSON, write_call_page
from callbridge.report.sources import find_recording
from callbridge.sim.demo import CALLER_PATIENCE_S, demo_script
from callbridge.sim.demo_conversation import demo_turns
from callbridge.sim.harness import DIALED_NUMBER, CallResult, LocalStack
from callbridge.sim.replay import replay
from callbridge.sim.report import CallReport, render_text
from callbridge.sim.scenario import load_scenario
from callbridge.sim.script import AfterAgentDone, Clip, Say, Step

LINE_PAUSE_MS = 400
"""A caller's ``--say`` line starts this long after the agent stops talking."""


@dataclass(frozen=True, slots=True)
class RingRequest:
    """What ``callbridge ring`` asks for; paths are absolute (``dev`` runs on the same machine:
    its control endpoint listens on loopback only)."""

    to: str = DIALED_NUMBER
    from_number: str | None = None
    say: list[Path] = field(default_factory=list)
    """The caller's lines, each once the agent has finished; none: the demo's caller."""
    scenario: Path | None = None
    out: Path | None = None
    hangup_after_s: float = CALLER_PATIENCE_S

    def to_json(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "from": self.from_number,
            "say": [str(path) for path in self.say],
            "scenario": None if self.scenario is None else str(self.scenario),
            "out": None if self.out is None else str(self.out),
            "hangup_after_s": self.hangup_after_s,
        }

    @classmethod
    def from_json(cls, body: Any) -> RingRequest:
        """Raises ``ValueError`` naming what is wrong with ``body``."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        say = body.get("say") or []
        if not isinstance(say, list) or not all(isinstance(p, str) for p in say):
            raise ValueError("say must be a list of paths")
        hangup_after_s = body.get("hangup_after_s", CALLER_PATIENCE_S)
        if not isinstance(hangup_after_s, int | float) or not 0 <= hangup_after_s <= 600:
            raise ValueError("hangup_after_s must be a number of seconds from 0 to 600")
        return cls(
            to=_text(body, "to") or DIALED_NUMBER,
            from_number=_text(body, "from"),
            say=[_absolute(path, "say") for path in say],
            scenario=_path(body, "scenario"),
            out=_path(body, "out"),
            hangup_after_s=float(hangup_after_s),
        )


@dataclass(frozen=True, slots=True)
class RingResult:
    """What ``dev`` answers: the call's report, what went wrong, and where its files are."""

    call_connection_id: str
    report: CallReport
    failures: list[str]
    recording: Path | None
    written: list[Path]

    def to_json(self) -> dict[str, Any]:
        return {
            "call_connection_id": self.call_connection_id,
            "report": self.report.to_json(),
            "text": render_text(self.report),
            "failures": self.failures,
            "recording": None if self.recording is None else str(self.recording),
            "written": [str(path) for path in self.written],
        }


async def ring_call(stack: LocalStack, request: RingRequest) -> RingResult:
    """Place ``request``'s call on ``stack``, wait for its end, judge it and keep its files.

    Raises:
        ScenarioError: the scenario file cannot be used.
        ValueError: a caller line is not a PCM16 mono WAV.
        RuntimeError, TimeoutError: the call did not complete (no media, or never ended).
    """
    if request.scenario is not None:
        outcome = await replay(stack, load_scenario(request.scenario), source=request.scenario)
        result = outcome.result
        failures = [str(failure) for failure in outcome.failures]
    else:
        result = await _scripted_call(stack, request)
        failures = call_problems(result.report)
    call_id = result.record.call_connection_id
    recording = (
        None if stack.recordings_dir is None else find_recording(stack.recordings_dir, call_id)
    )
    written = [] if request.out is None else write_artifacts(request.out, result, recording)
    if recording is not None:  # the call's page beside its recording, as demo --out keeps it
        written.append(write_call_page(recording, recording / CALL_PAGE))
    return RingResult(call_id, result.report, failures, recording, written)


async def _scripted_call(stack: LocalStack, request: RingRequest) -> CallResult:
    options: dict[str, Any] = {"to": request.to, "hangup_after_s": request.hangup_after_s}
    if request.from_number is not None:
        options["from_number"] = request.from_number
    if not request.say:
        return await stack.call(demo_script(), **options)
    return await stack.call(
        caller_lines(request.say),
        turns=demo_turns(),
        caller_transcripts=[_transcript(path) for path in request.say],
        **options,
    )


def caller_lines(paths: list[Path]) -> list[Step]:
    """One line per WAV, each once the agent has spoken and gone quiet.

    Raises:
        ValueError: a file is not a readable PCM16 mono WAV.
    """
    steps: list[Step] = []
    for path in paths:
        try:
            clip = Clip.from_wav(path)  # its ValueError names the file and what is wrong
        except OSError as exc:
            raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
        except EOFError as exc:
            raise ValueError(f"{path}: not a PCM WAV file (it ends early)") from exc
        steps.append(Say(clip, AfterAgentDone(pause_ms=LINE_PAUSE_MS)))
    return steps


def _transcript(path: Path) -> str | None:
    """What a line says, for the emulator's transcription: ``line.txt`` beside ``line.wav``
    (else the emulator's placeholder), as in scenario files."""
    beside = path.with_suffix(".txt")
    return beside.read_text(encoding="utf-8").strip() if beside.is_file() else None


def call_problems(report: CallReport) -> list[str]:
    """What makes a rung call unhealthy: not answered, no agent heard, protocol broken."""
    problems: list[str] = []
    outcome = None if report.setup is None else report.setup.outcome
    if outcome != "answered":
        problems.append(f"the call was not answered (outcome: {outcome})")
    if report.first_audio_ms is None:
        problems.append("the caller never heard the agent")
    problems.extend(f"protocol violation: {v}" for v in report.protocol_violations)
    return problems


def write_artifacts(out: Path, result: CallResult, recording: Path | None) -> list[Path]:
    """What ``demo --out`` writes: ``call.wav``, ``report.json``, and with a recording, a copy
    of it in ``recording/`` and the call's page ``call.html``."""
    out.mkdir(parents=True, exist_ok=True)
    wav, report = out / "call.wav", out / REPORT_JSON
    result.record.write_stereo_wav(wav)
    document = {"calls": [result.report.to_json()]}
    report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if recording is None:
        return [wav, report]
    kept = out / RECORDING
    if kept.exists():
        shutil.rmtree(kept)
    shutil.copytree(recording, kept)
    return [wav, report, kept, write_call_page(out, out / CALL_PAGE)]


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _path(body: dict[str, Any], key: str) -> Path | None:
    value = _text(body, key)
    return None if value is None else _absolute(value, key)


def _absolute(value: str, key: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise ValueError(f"{key}: {value!r} must be an absolute path")
    return path
