"""The routing file's tool settings, checked against the merged profile and the tools module.

A profile's ``tools`` must each be a built-in tool or a ``@tool`` of its ``tools_module``,
which is imported here, at start-up, so that a module that does not import, or lacks a tool,
is reported in the same pass as the file's other problems, under its file and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callbridge.core.profiles import BUILTIN_TOOLS, AgentProfile
from callbridge.process.toml_file import Key, Problems, did_you_mean
from callbridge.tools import Tool, ToolError, module_tools


class ToolChecks:
    """Checks each profile's tools, importing each tools module once."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.modules: dict[str, Mapping[str, Tool] | ToolError] = {}

    def check(self, profile: AgentProfile, raw: Mapping[str, Any], key: Key) -> None:
        """Cross-checks on the merged profile, so values inherited from the base count too.

        A key the table sets but got wrong has been reported already; it is not reported
        again as missing.
        """
        if profile.tools_module is None and "tools_module" not in raw:
            for name in profile.tools:
                if name not in BUILTIN_TOOLS:
                    self.problems.add(
                        (*key, "tools"),
                        f'"{name}" needs tools_module: it is not a built-in tool'
                        f" ({', '.join(BUILTIN_TOOLS)}){did_you_mean(name, BUILTIN_TOOLS)}",
                    )
        elif profile.tools_module is not None:
            self.module(profile, raw, key)
        if (
            "transfer_call" in profile.tools
            and "transfer_to" not in raw
            and not profile.transfer_to
        ):
            self.problems.add((*key, "transfer_to"), 'required when tools include "transfer_call"')

    def module(self, profile: AgentProfile, raw: Mapping[str, Any], key: Key) -> None:
        """The profile's tools module imports and defines every tool the profile names.

        A module inherited from ``AGENT_TOOLS_MODULE`` that does not import is reported once,
        as that variable (``process.config``), not once per profile.
        """
        assert profile.tools_module is not None
        defined = self.tools_of(profile.tools_module)
        if isinstance(defined, ToolError):
            if "tools_module" in raw:
                cause = defined.__cause__ or defined
                problem = f"cannot be imported: {type(cause).__name__}: {cause}"
                self.problems.add((*key, "tools_module"), problem, profile.tools_module)
            return
        known = (*BUILTIN_TOOLS, *defined)
        for name in profile.tools:
            if name not in known:
                self.problems.add(
                    (*key, "tools"),
                    f'"{name}" is neither a built-in tool nor a @tool in {profile.tools_module}'
                    f"{did_you_mean(name, known)}",
                )

    def tools_of(self, module: str) -> Mapping[str, Tool] | ToolError:
        """The tools ``module`` defines, or why it cannot be imported."""
        if module not in self.modules:
            try:
                self.modules[module] = module_tools(module)
            except ToolError as exc:
                self.modules[module] = exc
        return self.modules[module]
