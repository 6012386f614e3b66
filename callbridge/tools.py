"""Function tools the agent can call: the built-in call actions and users' own tools.

Built-ins act on the call itself and are carried out by the bridge (it knows when the caller
has heard the goodbye): ``end_call`` and ``transfer_call``. User tools are async functions in an
importable module named by the profile's ``tools_module``, marked with :func:`tool`::

    from callbridge.tools import tool

    @tool(
        description="Look up the status of an order.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    )
    async def lookup_order(order_id: str) -> dict[str, str]:
        return {"status": "shipped"}

The model's arguments arrive as keyword arguments; the return value goes back to the model as
JSON. A tool that raises, times out or is called with bad arguments returns an error result to
the model instead, and the call goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from callbridge.core.profiles import AgentProfile, Routing

log = structlog.get_logger(__name__)

ToolHandler = Callable[..., Awaitable[object]]
_F = TypeVar("_F", bound=ToolHandler)

_MARK = "__callbridge_tool__"
_MAX_ERROR_CHARS = 200


class ToolError(ValueError):
    """A profile names tools that cannot be loaded; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call, as offered in ``session.update``."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    handler: ToolHandler | None = None
    """None for the built-ins, which the bridge carries out itself."""


END_CALL = Tool(
    name="end_call",
    description=(
        "Hang up the phone call. Say goodbye first, in the same turn: the caller hears the "
        "goodbye, then the line is closed. Use it when the caller is done or asks to hang up."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
    },
)

TRANSFER_CALL = Tool(
    name="transfer_call",
    description=(
        "Transfer the caller to a human colleague. Tell the caller you are transferring them "
        "first, in the same turn. Use it when the caller asks for a person or you cannot help."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why the caller is moved."}},
    },
)

BUILTIN_TOOLS: Mapping[str, Tool] = {END_CALL.name: END_CALL, TRANSFER_CALL.name: TRANSFER_CALL}


def tool(
    *, description: str, parameters: Mapping[str, Any] | None = None, name: str | None = None
) -> Callable[[_F], _F]:
    """Mark an async function as a tool the model may call (see the module docstring)."""

    def mark(function: _F) -> _F:
        handler: ToolHandler = function
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"tool {function.__name__} must be an async function")
        spec = Tool(
            name=name or function.__name__,
            description=description,
            parameters=parameters or {"type": "object", "properties": {}},
            handler=handler,
        )
        setattr(function, _MARK, spec)
        return function

    return mark


def module_tools(module_name: str) -> dict[str, Tool]:
    """The tools a module defines with :func:`tool`, by name.

    Raises:
        ToolError: the module cannot be imported.
    """
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a config error
        raise ToolError(f"cannot import tools module {module_name!r}: {exc}") from exc
    found = (getattr(value, _MARK, None) for value in vars(module).values())
    return {spec.name: spec for spec in found if isinstance(spec, Tool)}


def profile_tools(profile: AgentProfile) -> tuple[Tool, ...]:
    """The tools a profile offers the model, resolved by name.

    Raises:
        ToolError: a tool is neither built in nor defined by the profile's tools module.
    """
    user = module_tools(profile.tools_module) if profile.tools_module else {}
    resolved = []
    for tool_name in profile.tools:
        spec = BUILTIN_TOOLS.get(tool_name) or user.get(tool_name)
        if spec is None:
            where = f"module {profile.tools_module!r}" if profile.tools_module else "no module"
            raise ToolError(f"profile {profile.name!r}: tool {tool_name!r} not found ({where})")
        resolved.append(spec)
    return tuple(resolved)


def check_tools(routing: Routing) -> list[str]:
    """Problems loading any profile's tools, so a bad deployment fails at start-up."""
    problems = []
    for profile in routing.profiles.values():
        try:
            profile_tools(profile)
        except ToolError as exc:
            problems.append(str(exc))
    return problems


async def run_tool(spec: Tool, arguments: str, *, timeout_s: float) -> str:
    """Call a user tool with the model's JSON arguments; the result or an error, as JSON.

    Never raises (except on cancellation): whatever goes wrong becomes ``{"error": ...}`` for the
    model, which can then apologise or try something else, and is logged here.
    """
    assert spec.handler is not None, "built-in tools are carried out by the bridge"
    try:
        kwargs = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        log.warning("tool.bad_arguments", tool=spec.name, reason="not JSON")
        return _error("the arguments were not valid JSON")
    if not isinstance(kwargs, dict):
        log.warning("tool.bad_arguments", tool=spec.name, reason="not an object")
        return _error("the arguments must be a JSON object")
    try:
        inspect.signature(spec.handler).bind(**kwargs)
    except TypeError as exc:
        log.warning("tool.bad_arguments", tool=spec.name, reason=str(exc))
        return _error(f"bad arguments: {exc}")
    try:
        async with asyncio.timeout(timeout_s):
            result = await spec.handler(**kwargs)
    except TimeoutError:
        log.error("tool.timeout", tool=spec.name, timeout_s=timeout_s)
        return _error(f"the tool did not answer within {timeout_s:g} s")
    except Exception as exc:  # a failing user tool must not end the call
        log.exception("tool.failed", tool=spec.name)
        return _error(f"the tool failed: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS])
    try:
        return result if isinstance(result, str) else json.dumps(result)
    except (TypeError, ValueError):
        log.error("tool.bad_result", tool=spec.name, result_type=type(result).__name__)
        return _error("the tool returned a result that is not JSON")


def _error(message: str) -> str:
    return json.dumps({"error": message})
