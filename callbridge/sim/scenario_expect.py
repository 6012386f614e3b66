"""Reading a scenario file's ``[expect]`` table: what the call's report must show.

Every key is optional; ``protocol_violations`` is 0 unless the file says otherwise. Tools an
expectation names must be offered by ``agent.tools``. See :mod:`callbridge.sim.scenario` for
the format and :mod:`callbridge.sim.expectations` for how a report is judged against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import structlog

from callbridge.core.ended_by import EndedBy
from callbridge.process.toml_file import Problems, is_whole_number
from callbridge.sim.scenario_agent import OfferedTools
from callbridge.sim.scenario_reader import ScenarioReader, show
from callbridge.sim.scenario_schema import OLD_ENDED_BY, BargeInExpectation, Expectations

_EXPECT_KEYS: Final = (
    "barge_ins",
    "tools_called",
    "ended_by",
    "max_first_audio_ms",
    "stale_audio_ms",
    "protocol_violations",
    "max_silence_ms",
    "caller_audio_lost_ms",
    "greetings",
    "sessions",
    "fallback_in_full",
    "false_interruptions_resumed",
    "resume_gap_ms",
    "truncates",
    "agent_turns",
)
_BARGE_IN_KEYS: Final = ("truncation_tolerance_ms", "max_stop_latency_ms", "audio_end_ms")
_AGENT_TOOLS: Final = (EndedBy.END_CALL, EndedBy.TRANSFER_CALL)
"""Ends that only the agent's own tool of that name can bring about."""

log = structlog.get_logger(__name__)


class ExpectReader(ScenarioReader):
    """Reads ``[expect]``, checking the tools it names against ``offered``."""

    def __init__(self, path: Path, problems: Problems, offered: OfferedTools) -> None:
        super().__init__(path, problems)
        self.offered = offered

    def expectations(self, document: Mapping[str, Any]) -> Expectations:
        table = self.table(document, "", "expect")
        if table is None:
            return Expectations()
        self.unknown_keys(table, "expect", _EXPECT_KEYS)
        violations = table.get("protocol_violations")
        if violations is not None and not (is_whole_number(violations) and violations >= 0):
            self.problems.at(
                "expect.protocol_violations",
                f"must be a whole number >= 0 (the most allowed), not {show(violations)}",
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
            max_silence_ms=self.number(
                table, "expect", "max_silence_ms", minimum=0.0, exclusive=True
            ),
            caller_audio_lost_ms=self.number(table, "expect", "caller_audio_lost_ms", minimum=0.0),
            greetings=self.count(table, "greetings"),
            sessions=self.count(table, "sessions"),
            fallback_in_full=self.fallback_in_full(table),
            false_interruptions_resumed=self.count(table, "false_interruptions_resumed"),
            resume_gap_ms=self.number(table, "expect", "resume_gap_ms", minimum=0.0),
            truncates=self.count(table, "truncates"),
            agent_turns=self.count(table, "agent_turns"),
        )

    def count(self, table: Mapping[str, Any], key: str) -> int | None:
        value = table.get(key)
        if value is None:
            return None
        if not (is_whole_number(value) and value >= 0):
            self.problems.at(f"expect.{key}", f"must be a whole number >= 0, not {show(value)}")
            return None
        return int(value)

    def fallback_in_full(self, table: Mapping[str, Any]) -> bool | None:
        value = table.get("fallback_in_full")
        if value is None:
            return None
        if value is not True:
            self.problems.at(
                "expect.fallback_in_full",
                f"can only be true (leave it out to not check it), not {show(value)}",
            )
            return None
        return True

    def barge_ins(self, table: Mapping[str, Any]) -> tuple[BargeInExpectation, ...] | None:
        value = table.get("barge_ins")
        if value is None:
            return None
        if is_whole_number(value) and value >= 0:
            return (BargeInExpectation(),) * value
        if not isinstance(value, list):
            self.problems.at(
                "expect.barge_ins",
                "must be a number of barge-ins (e.g. 0) or a list with a table per barge-in,"
                f" e.g. [{{ truncation_tolerance_ms = 20 }}], not {show(value)}",
            )
            return None
        expected: list[BargeInExpectation] = []
        for index, raw in enumerate(value):
            where = f"expect.barge_ins[{index}]"
            if not isinstance(raw, dict):
                self.problems.at(
                    where,
                    "must be a table such as { truncation_tolerance_ms = 20 }"
                    f" ({{}} checks only that it happens), not {show(raw)}",
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
        value = self.tool_names(table, "expect", "tools_called")
        if value is None:
            return None
        for index, name in enumerate(value):
            if self.offered.lacks(name):
                self.problems.at(
                    f"expect.tools_called[{index}]",
                    self.offered.unoffered(name, "so it cannot be called"),
                )
        return tuple(value)

    def ended_by(self, table: Mapping[str, Any]) -> EndedBy | None:
        value = table.get("ended_by")
        if isinstance(value, str) and value in OLD_ENDED_BY:
            new = OLD_ENDED_BY[value]
            log.warning(
                "scenario.old_word",
                file=str(self.path),
                field="expect.ended_by",
                word=value,
                detail=f'"{value}" is the old word for "{new}"; write ended_by = "{new}"',
            )
            value = new
        else:
            value = self.choice(table, "expect", "ended_by", [word.value for word in EndedBy])
        if value is None:
            return None
        ended_by = EndedBy(value)
        if ended_by in _AGENT_TOOLS and self.offered.lacks(ended_by):
            self.problems.at(
                "expect.ended_by",
                self.offered.unoffered(ended_by, "so the agent cannot end the call with it"),
            )
        return ended_by
