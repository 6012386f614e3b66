"""Judging a finished call: which of a scenario's expectations its report fails, and why.

:func:`check_expectations` compares a :class:`~callbridge.sim.report.CallReport` with the
``[expect]`` table of a scenario (:class:`~callbridge.sim.scenario_schema.Expectations`) and
names every expectation the call did not meet, with what was expected and what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callbridge.core.ended_by import EndedBy
from callbridge.sim.report import BargeInReport, CallReport
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
