"""The tools API users write their agent's tools with (``callbridge.tools``)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

import pytest

from callbridge.core.profiles import AgentProfile, Routing
from callbridge.tools import (
    END_CALL,
    Tool,
    ToolError,
    check_tools,
    module_tools,
    profile_tools,
    run_tool,
    tool,
)


@tool(description="Add two numbers.", parameters={"type": "object"})
async def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@tool(description="Fails.")
async def broken() -> None:
    raise RuntimeError("backend down")


@tool(description="Never answers.")
async def slow() -> None:
    await asyncio.sleep(10)


def spec(function: object) -> Tool:
    found = getattr(function, "__callbridge_tool__", None)
    assert isinstance(found, Tool)
    return found


async def test_a_tool_gets_the_models_arguments_and_returns_json() -> None:
    assert json.loads(await run_tool(spec(add), '{"a": 2, "b": 3}', timeout_s=1)) == {"sum": 5}


@pytest.mark.parametrize(
    ("function", "arguments", "error"),
    [
        (add, "not json", "the arguments were not valid JSON"),
        (add, "[1, 2]", "the arguments must be a JSON object"),
        (add, '{"a": 1}', "bad arguments: missing a required argument: 'b'"),
        (broken, "", "the tool failed: RuntimeError: backend down"),
        (slow, "{}", "the tool did not answer within 0.05 s"),
    ],
)
async def test_whatever_goes_wrong_reaches_the_model_as_an_error(
    function: object, arguments: str, error: str
) -> None:
    result = json.loads(await run_tool(spec(function), arguments, timeout_s=0.05))
    assert result == {"error": error}


def test_only_async_functions_are_tools() -> None:
    with pytest.raises(TypeError, match="must be an async function"):

        @tool(description="sync")  # type: ignore[type-var]  # the mistake under test
        def not_async() -> None: ...


def test_a_profile_offers_built_ins_and_its_modules_tools() -> None:
    profile = AgentProfile(tools=("end_call", "lookup_order"), tools_module="tests.agent_tools")
    assert [t.name for t in profile_tools(profile)] == ["end_call", "lookup_order"]
    assert profile_tools(profile)[0] is END_CALL
    assert "lookup_order" in module_tools("tests.agent_tools")


def test_missing_tools_are_found_at_start_up() -> None:
    routing = Routing.single(AgentProfile(tools=("nope",), tools_module="tests.agent_tools"))
    assert check_tools(routing) == [
        "profile 'default': tool 'nope' not found (module 'tests.agent_tools')"
    ]
    with pytest.raises(ToolError, match=r"cannot import tools module 'no\.such\.module'"):
        module_tools("no.such.module")


def test_the_old_module_path_still_works_with_a_deprecation_warning() -> None:
    """Tools modules written against ``callbridge.voice.tools`` load for one more release."""
    sys.modules.pop("callbridge.voice.tools", None)
    with pytest.warns(DeprecationWarning, match="callbridge.tools"):
        old = importlib.import_module("callbridge.voice.tools")
    assert old.tool is tool
