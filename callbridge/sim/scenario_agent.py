"""Reading a scenario file's ``[agent]`` table: the scripted agent's turns and its profile.

The agent plays one ``[[agent.turns]]`` per response, each a WAV file with a transcript and
optionally a tool call after it. ``tools``, ``tools_module``, ``transfer_to``,
``fallback_audio`` and ``fallback_transfer_to`` make the agent profile that answers the call;
``response_delay_ms`` and ``stream_speed`` pace the Voice Live emulator. See
:mod:`callbridge.sim.scenario` for the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from callbridge.core.numbers import parse_e164
from callbridge.core.profiles import BUILTIN_TOOLS
from callbridge.process.toml_file import Problems, did_you_mean, is_whole_number
from callbridge.sim.scenario_reader import ScenarioReader, show
from callbridge.sim.scenario_schema import (
    DEFAULT_RESPONSE_DELAY_MS,
    DEFAULT_STREAM_SPEED,
    DEFAULT_TOOLS,
    DEFAULT_TRANSFER_TO,
)
from callbridge.sim.voicelive.audio import AgentTurn, ToolCall

_TOOL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_AGENT_KEYS: Final = (
    "turns",
    "tools",
    "tools_module",
    "transfer_to",
    "response_delay_ms",
    "stream_speed",
    "fallback_audio",
    "fallback_transfer_to",
)
_TURN_KEYS: Final = ("audio", "transcript", "tool")
_TOOL_KEYS: Final = ("name", "arguments")


@dataclass(frozen=True, slots=True)
class OfferedTools:
    """The tools ``agent.tools`` offers, which tool calls and expectations must name."""

    tools: tuple[str, ...] | None = DEFAULT_TOOLS
    """None when ``agent.tools`` is invalid, which turns off the checks against it (a list
    that could not be read would make every tool look unoffered)."""

    def lacks(self, tool: str) -> bool:
        return self.tools is not None and tool not in self.tools

    def unoffered(self, tool: str, consequence: str) -> str:
        """The problem with naming ``tool`` when it is not offered."""
        offered = self.tools or ()
        return (
            f"{show(tool)} is not offered in agent.tools ({', '.join(offered) or 'none'}),"
            f" {consequence}{did_you_mean(tool, offered)}"
        )


@dataclass(slots=True)
class Agent:
    """What ``[agent]`` says, with the defaults for what it leaves out."""

    tools: tuple[str, ...] = DEFAULT_TOOLS
    tools_module: str | None = None
    transfer_to: str | None = None
    response_delay_ms: int = DEFAULT_RESPONSE_DELAY_MS
    stream_speed: float = DEFAULT_STREAM_SPEED
    turns: list[AgentTurn] = field(default_factory=list)
    fallback_audio: str | None = None
    fallback_transfer_to: str | None = None


class AgentReader(ScenarioReader):
    """Reads ``[agent]``; ``offered`` then holds what ``agent.tools`` offers."""

    def __init__(self, path: Path, problems: Problems) -> None:
        super().__init__(path, problems)
        self.offered = OfferedTools()

    def agent(self, document: Mapping[str, Any]) -> Agent:
        agent = Agent()
        table = self.table(document, "", "agent")
        if table is None:
            if "agent" not in document:
                self.problems.at("agent.turns", "required: at least one [[agent.turns]]")
            return agent
        self.unknown_keys(table, "agent", _AGENT_KEYS)
        tools = self.tools(table)
        if tools is not None:
            agent.tools = tools
            self.offered = OfferedTools(tools)
        elif "tools" in table:
            self.offered = OfferedTools(None)
        agent.tools_module = self.module_name(table)
        self.check_builtins(agent.tools, table)
        agent.transfer_to = self.transfer_to(table, agent.tools)
        delay = table.get("response_delay_ms")
        if delay is not None:
            if is_whole_number(delay) and delay >= 0:
                agent.response_delay_ms = delay
            else:
                self.problems.at(
                    "agent.response_delay_ms",
                    f"must be a whole number of milliseconds >= 0, not {show(delay)}",
                )
        speed = self.number(table, "agent", "stream_speed", minimum=0.0, exclusive=True)
        if speed is not None:
            agent.stream_speed = float(speed)
        agent.turns = self.turns(table)
        audio = self.wav(table, "agent", "fallback_audio")
        agent.fallback_audio = None if audio is None else str(audio[2])
        agent.fallback_transfer_to = self.number_to_call(table, "fallback_transfer_to")
        return agent

    def tools(self, table: Mapping[str, Any]) -> tuple[str, ...] | None:
        value = self.tool_names(table, "agent", "tools")
        if value is None:
            return None
        valid = True
        for index, name in enumerate(value):
            if not _TOOL_NAME.fullmatch(name):
                self.problems.at(
                    f"agent.tools[{index}]",
                    f"{show(name)} is not a tool name (letters, digits, _ and -; at most 64)",
                )
                valid = False
            elif name in value[:index]:
                self.problems.at(f"agent.tools[{index}]", f"{show(name)} is listed twice")
                valid = False
        return tuple(value) if valid else None

    def module_name(self, table: Mapping[str, Any]) -> str | None:
        value = self.string(table, "agent", "tools_module")
        if value is not None and not all(part.isidentifier() for part in value.split(".")):
            self.problems.at(
                "agent.tools_module",
                f"must be a Python module name such as myapp.tools, not {show(value)}",
            )
            return None
        return value

    def check_builtins(self, tools: Sequence[str], table: Mapping[str, Any]) -> None:
        if "tools_module" in table:
            return  # set (or reported as bad already)
        for index, name in enumerate(tools):
            if name not in BUILTIN_TOOLS:
                self.problems.at(
                    f"agent.tools[{index}]",
                    f"{show(name)} needs agent.tools_module: it is not a built-in tool"
                    f" ({', '.join(BUILTIN_TOOLS)}){did_you_mean(name, BUILTIN_TOOLS)}",
                )

    def transfer_to(self, table: Mapping[str, Any], tools: Sequence[str]) -> str | None:
        if "transfer_to" not in table:
            return DEFAULT_TRANSFER_TO if "transfer_call" in tools else None
        if self.offered.lacks("transfer_call"):
            self.problems.at(
                "agent.transfer_to", 'only used when agent.tools offers "transfer_call"'
            )
            return None
        return self.number_to_call(table, "transfer_to")

    def number_to_call(self, table: Mapping[str, Any], key: str) -> str | None:
        """An E.164 number the call may be transferred to."""
        value = self.string(table, "agent", key)
        if value is None:
            return None
        number = parse_e164(value)
        if number is None:
            self.problems.at(
                f"agent.{key}",
                f'must be an E.164 number such as "+18005550100", not {show(value)}',
            )
        return number

    def turns(self, table: Mapping[str, Any]) -> list[AgentTurn]:
        raw_turns = self.array(table, "agent", "turns")
        if raw_turns is None:
            if "turns" not in table:
                self.problems.at("agent.turns", "required: at least one [[agent.turns]]")
            return []
        if not raw_turns:
            self.problems.at("agent.turns", "needs at least one turn")
        turns: list[AgentTurn] = []
        for index, raw in enumerate(raw_turns):
            where = f"agent.turns[{index}]"
            if not isinstance(raw, dict):
                self.problems.at(
                    where, f'must be a table such as {{ audio = "hello.wav" }}, not {show(raw)}'
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
            self.problems.at(f"{where}.audio", "required: the WAV file the agent says")
            return None
        audio = self.wav(raw, where, "audio")
        if audio is None:
            return None
        pcm, rate, file = audio
        if not 8000 <= rate <= 48000:
            self.problems.at(
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
                self.problems.at(f"{where}.name", "required: the tool the agent calls")
            name = self.string(value, where, "name")
            arguments = self.table(value, where, "arguments") or {}
            name_at = f"{where}.name"
        elif isinstance(value, str):
            name, name_at = value, where
        else:
            self.problems.at(
                where,
                'must be a tool name such as "end_call" or a table'
                f' such as {{ name = "lookup_order", arguments = {{ order_id = "42" }} }},'
                f" not {show(value)}",
            )
            return None
        if name is None:
            return None
        if self.offered.lacks(name):
            self.problems.at(name_at, self.offered.unoffered(name, "so the agent cannot call it"))
            return None
        try:
            return ToolCall(name, arguments)
        except ValueError:
            self.problems.at(
                f"{where}.arguments",
                "must hold only JSON values (strings, finite numbers, booleans, arrays,"
                " tables), not dates, times, inf or nan",
            )
            return None
