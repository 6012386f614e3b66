"""Judging a finished call: which of a scenario's expectations its report fails, and why.

:func:`check_expectations` compares a :class:`~callbridge.sim.report.CallReport` with the
``[expect]`` table of a scenario (:class:`~callbridge.sim.scenario_schema.Expectations`) and
names every expectation the call did not meet, with what was expected and what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callbridge.core.ended_by import EndedBy
from callbridge.sim.barge_ins import BargeInReport
from callbridge.sim.report import CallReport
from callbridge.sim.scenario_schema import (
    DEFAULT_AUDIO_END_TOLERANCE_MS,
    BargeInExpectation,
    Expectations,
)


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
    failures += _check_continuity(expect, report)
    failures += _check_turn_taking(expect, report)
    return failures


def _check_turn_taking(expect: Expectations, report: CallReport) -> list[Failure]:
    """The interruption expectations: what was resumed, how long it paused, what was cut."""
    failures: list[Failure] = []
    resumed = [b for b in report.barge_ins if b.resumed]
    counts = (
        ("false_interruptions_resumed", expect.false_interruptions_resumed, len(resumed)),
        ("truncates", expect.truncates, report.truncates),
        ("agent_turns", expect.agent_turns, report.agent_turns),
    )
    for key, want, got in counts:
        if want is not None and want != got:
            failures.append(Failure(f"expect.{key}", f"expected {want}, the call had {got}"))
    limit = expect.resume_gap_ms
    gaps = [b.pause_ms for b in resumed if b.pause_ms is not None]
    if limit is not None and gaps and max(gaps) > limit:
        failures.append(
            Failure(
                "expect.resume_gap_ms",
                f"a resumed reply paused {_ms(max(gaps))} at the phone > maximum {_ms(limit)}",
            )
        )
    return failures


def _check_continuity(expect: Expectations, report: CallReport) -> list[Failure]:
    """The continuity expectations; the report's ``continuity`` is None only for a call that
    was not judged from the emulator's records, and then each one set fails."""
    continuity = report.continuity
    asked = {
        "max_silence_ms": expect.max_silence_ms,
        "caller_audio_lost_ms": expect.caller_audio_lost_ms,
        "greetings": expect.greetings,
        "sessions": expect.sessions,
        "fallback_in_full": expect.fallback_in_full,
    }
    if continuity is None:
        return [
            Failure(f"expect.{key}", "the report has no continuity figures")
            for key, value in asked.items()
            if value is not None
        ]
    failures: list[Failure] = []
    limit = expect.max_silence_ms
    if limit is not None and continuity.longest_silence_ms > limit:
        failures.append(
            Failure(
                "expect.max_silence_ms",
                f"the caller waited {_ms(continuity.longest_silence_ms)} for the agent in silence"
                f" > maximum {_ms(limit)}",
            )
        )
    limit = expect.caller_audio_lost_ms
    lost = continuity.caller_audio_lost_ms
    if limit is not None and (lost is None or lost > limit):
        failures.append(
            Failure(
                "expect.caller_audio_lost_ms",
                "no Voice Live session heard any caller audio"
                if lost is None
                else f"{_ms(lost)} of the caller's audio reached callbridge and no Voice Live"
                f" session > maximum {_ms(limit)}",
            )
        )
    for key, want, got in (
        ("greetings", expect.greetings, continuity.greetings),
        ("sessions", expect.sessions, continuity.sessions),
    ):
        if want is not None and want != got:
            noun = "greeting" if key == "greetings" else "Voice Live session"
            failures.append(
                Failure(f"expect.{key}", f"expected {_count(want, noun)}, the call had {got}")
            )
    if expect.fallback_in_full:
        failures += _check_fallback(report)
    return failures


FALLBACK_CUT_TOLERANCE_MS = 40.0
"""How much shorter than the clip the caller's last spurt may be and still count as the whole
clip: the codec's and the jitter buffer's edges, two frames."""


def _check_fallback(report: CallReport) -> list[Failure]:
    continuity = report.continuity
    assert continuity is not None  # checked by the caller
    clip_ms, heard_ms = continuity.fallback_clip_ms, continuity.fallback_heard_ms
    if clip_ms is None or heard_ms is None:
        ended = report.setup.ended_by if report.setup is not None else None
        return [
            Failure(
                "expect.fallback_in_full",
                f"the call did not end on the fallback path (ended by {ended or 'unknown'})",
            )
        ]
    if heard_ms < clip_ms - FALLBACK_CUT_TOLERANCE_MS:
        return [
            Failure(
                "expect.fallback_in_full",
                f"the caller heard {_ms(heard_ms)} of the {_ms(clip_ms)} fallback clip",
            )
        ]
    return []


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
    setup = report.setup
    if setup.ended_by == expected:
        return []
    return [
        Failure(
            "expect.ended_by",
            f'expected the call to be ended by "{expected}",'
            f" it was ended by {setup.ended_by or 'an unknown cause'} (ACS: {setup.disconnect})",
        )
    ]


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]" if names else "no tools"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _ms(value: float) -> str:
    return f"{int(value)} ms" if float(value).is_integer() else f"{value:.1f} ms"
