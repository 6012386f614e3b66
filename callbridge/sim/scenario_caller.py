"""Reading a scenario file's ``[caller]`` table: the caller's script, step by step, and their
phone's echo.

Each step does one thing (``say`` a WAV file, press ``dtmf`` keys, ``hangup``) once its one
trigger holds (``at_s``, ``after_heard_ms`` with ``spurt``, ``after_agent_done_ms``); see
:mod:`callbridge.sim.scenario` for the format. A ``dtmf`` string becomes one key press per
key, ``DTMF_GAP_MS`` apart. ``echo = { delay_ms, level_db }`` puts the caller on a speakerphone
(:mod:`callbridge.sim.echo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from callbridge.process.toml_file import is_finite_number, is_whole_number
from callbridge.sim.echo import MIN_DELAY_MS, Echo
from callbridge.sim.scenario_reader import ScenarioReader, show
from callbridge.sim.scenario_schema import DTMF_GAP_MS, DTMF_KEYS
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

_SILENCE_RATE: Final = 16000
_SILENCE: Final = Clip(bytes(2 * _SILENCE_RATE * DTMF_GAP_MS // 1000), _SILENCE_RATE)
"""The caller keeps quiet between two key presses of one ``dtmf`` step."""

_CALLER_KEYS: Final = ("steps", "echo")
_ECHO_KEYS: Final = ("delay_ms", "level_db")
_ACTIONS: Final = ("say", "dtmf", "hangup")
_TRIGGERS: Final = ("at_s", "after_heard_ms", "after_agent_done_ms")
_STEP_KEYS: Final = (*_ACTIONS, "transcript", *_TRIGGERS, "spurt")


@dataclass(frozen=True, slots=True)
class Caller:
    """What ``[caller]`` says: the caller's script and their phone."""

    script: list[Step]
    transcripts: list[str]
    """What the emulator transcribes the caller's n-th line as, one per ``say`` step."""
    echo: Echo | None
    """Set when the caller is on a speakerphone."""


class CallerReader(ScenarioReader):
    """Reads ``[caller]`` into the script the simulated phone runs and the phone's echo."""

    def caller(self, caller: Mapping[str, Any]) -> Caller:
        """``[caller]``: the script, a transcript for each line the caller says, the echo."""
        self.unknown_keys(caller, "caller", _CALLER_KEYS)
        echo = self.echo(caller)
        raw_steps = self.array(caller, "caller", "steps") or []
        script: list[Step] = []
        transcripts: list[str] = []
        hung_up_at: str | None = None
        dead_reported = False
        for index, raw in enumerate(raw_steps):
            where = f"caller.steps[{index}]"
            if not isinstance(raw, dict):
                self.problems.at(
                    where,
                    f'must be a table such as {{ say = "hello.wav", at_s = 1.0 }}, not {show(raw)}',
                )
                continue
            if hung_up_at is not None and not dead_reported:
                self.problems.at(
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
        return Caller(script, transcripts, echo)

    def echo(self, caller: Mapping[str, Any]) -> Echo | None:
        """``caller.echo``: both keys, a delay of at least a frame, a level of at most 0 dB."""
        table = self.table(caller, "caller", "echo")
        if table is None:
            return None
        self.unknown_keys(table, "caller.echo", _ECHO_KEYS)
        missing = [key for key in _ECHO_KEYS if key not in table]
        if missing:
            self.problems.at(
                "caller.echo",
                f"needs {' and '.join(missing)}, e.g. {{ delay_ms = 150, level_db = -15 }}",
            )
        delay_ms = self.number(table, "caller.echo", "delay_ms", minimum=MIN_DELAY_MS)
        level_db = table.get("level_db")
        if level_db is not None and (not is_finite_number(level_db) or level_db > 0):
            self.problems.at(
                "caller.echo.level_db",
                f"must be a number <= 0 (dB against what the phone plays), not {show(level_db)}",
            )
            level_db = None
        if delay_ms is None or level_db is None:
            return None
        return Echo(delay_ms=delay_ms, level_db=float(level_db))

    def step(self, raw: Mapping[str, Any], where: str) -> tuple[list[Step], str | None]:
        """One step of the script (several for a ``dtmf`` string) and, for a line, what it
        says."""
        self.unknown_keys(raw, where, _STEP_KEYS)
        actions = [key for key in _ACTIONS if key in raw]
        if not actions:
            self.problems.at(where, "needs an action: say, dtmf or hangup")
        elif len(actions) > 1:
            self.problems.at(
                where, f"has {' and '.join(actions)}; a step does one thing (say, dtmf or hangup)"
            )
        if "transcript" in raw and "say" not in raw:
            self.problems.at(f"{where}.transcript", "only goes with say")
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
            self.problems.at(
                f"{where}.hangup",
                f"must be true, not {show(raw['hangup'])} (remove the step instead)",
            )
            return [], None
        return ([Hangup(trigger)] if trigger is not None else []), None

    def trigger(self, raw: Mapping[str, Any], where: str) -> Trigger | None:
        present = [key for key in _TRIGGERS if key in raw]
        values = {key: self.number(raw, where, key, minimum=0.0) for key in present}
        spurt = self.spurt(raw, where)
        if "spurt" in raw and "after_heard_ms" not in raw:
            self.problems.at(f"{where}.spurt", "only goes with after_heard_ms")
        if not present:
            self.problems.at(where, "needs a trigger: at_s, after_heard_ms or after_agent_done_ms")
            return None
        if len(present) > 1:
            self.problems.at(where, f"has {' and '.join(present)}; a step has one trigger")
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
        if not is_whole_number(value) or value < 1:
            self.problems.at(
                f"{where}.spurt",
                f"must be a whole number >= 1 (the greeting is 1), not {show(value)}",
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
            quote = f' (quote it: "{value}")' if is_whole_number(value) else ""
            self.problems.at(
                f"{where}.dtmf",
                f'must be a string of keypad keys such as "1234#", not {show(value)}{quote}',
            )
            return None
        bad = sorted({key for key in value if key.upper() not in DTMF_KEYS})
        if bad:
            self.problems.at(
                f"{where}.dtmf",
                f"{show(value)} has {', '.join(show(key) for key in bad)}:"
                " keypad keys are 0-9, *, # and A-D",
            )
            return None
        return value.upper()


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
