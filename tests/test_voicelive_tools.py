"""Function calls, text input and connect latency of the Voice Live emulator, via the real SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    ResponseFunctionCallItem,
    ResponseFunctionCallOutputItem,
    ServerEvent,
    ServerEventConversationItemCreated,
    ServerEventError,
    ServerEventResponseAudioDelta,
    ServerEventResponseDone,
    ServerEventResponseFunctionCallArgumentsDelta,
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventResponseOutputItemAdded,
    ServerEventResponseOutputItemDone,
    ServerEventSessionCreated,
    UserMessageItem,
)

from callbridge.sim.voicelive import (
    AgentTurn,
    EmulatorSession,
    ToolCall,
    VoiceLiveEmulator,
)
from tests.voicelive_client import NETWORK_TIMEOUT_S, Client, of_class, sdk_client

API_KEY = "emulator-tools-key"
GOODBYE = "Thanks for calling, goodbye."
ANYTHING_ELSE = "Is there anything else I can do?"

END_CALL_TOOL = FunctionTool(
    name="end_call",
    description="Hang up once the caller's request is handled.",
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string"}},
        "required": ["reason"],
    },
)
TRANSFER_TOOL = FunctionTool(
    name="transfer_call",
    description="Transfer the caller to a human agent.",
    parameters={"type": "object", "properties": {}},
)


def tone_pcm16(freq_hz: float, seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    pcm: bytes = np.rint(8000 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()
    return pcm


TOOL_TURNS = [
    AgentTurn(
        tone_pcm16(440, 0.5), 16000, GOODBYE, tool_call=ToolCall("end_call", {"reason": "done"})
    ),
    AgentTurn(tone_pcm16(550, 0.3), 16000, ANYTHING_ELSE),
]
PLAIN_TURNS = [
    AgentTurn(tone_pcm16(440, 0.3), 16000, "Hello, how can I help?"),
    AgentTurn(tone_pcm16(550, 0.3), 16000, ANYTHING_ELSE),
]


@dataclass(frozen=True, slots=True)
class Connected:
    """A started emulator and an SDK client past ``session.created``."""

    emulator: VoiceLiveEmulator
    client: Client
    session: EmulatorSession


ConnectFactory = Callable[..., Awaitable[Connected]]


@pytest.fixture
async def connected() -> AsyncIterator[ConnectFactory]:
    """Start an emulator (keyword overrides), connect the SDK, wait for ``session.created``."""
    async with AsyncExitStack() as stack:
        emulators: list[VoiceLiveEmulator] = []

        async def factory(**overrides: Any) -> Connected:
            options: dict[str, Any] = {
                "turns": TOOL_TURNS,
                "api_key": API_KEY,
                "speed": 10.0,
                "response_delay_ms": 10,
                "transcription_delay_ms": 5,
            }
            emulator = VoiceLiveEmulator(**(options | overrides))
            async with asyncio.timeout(NETWORK_TIMEOUT_S):
                await emulator.start()
            emulators.append(emulator)
            client = await stack.enter_async_context(sdk_client(emulator, API_KEY))
            await client.expect(ServerEventSessionCreated)
            async with asyncio.timeout(NETWORK_TIMEOUT_S):
                session = await emulator.wait_for_session(0)
            return Connected(emulator, client, session)

        try:
            yield factory
        finally:
            await stack.aclose()  # clients first, then the emulators they talk to
            for emulator in emulators:
                async with asyncio.timeout(NETWORK_TIMEOUT_S):
                    await emulator.stop()
                    await emulator.wait_all_closed()
    for emulator in emulators:
        assert emulator.violations == []


FUNCTION_CALL_TAIL = [
    "response.output_item.done",  # the assistant audio message, output 0
    "response.output_item.added",  # the function call, output 1
    "conversation.item.created",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.done",
]


def collapse_repeats(types: list[str]) -> list[str]:
    collapsed: list[str] = []
    for event_type in types:
        if not collapsed or collapsed[-1] != event_type:
            collapsed.append(event_type)
    return collapsed


def function_call_events(events: list[ServerEvent]) -> list[ServerEvent]:
    return [
        e
        for e in events
        if e.type.startswith("response.function_call_arguments.")
        or (
            isinstance(e, ServerEventResponseOutputItemAdded | ServerEventResponseOutputItemDone)
            and isinstance(e.item, ResponseFunctionCallItem)
        )
    ]


# --------------------------------------------------------------------------------------------
# Scripted function calls
# --------------------------------------------------------------------------------------------


async def test_offered_tool_is_called_after_the_audio_and_its_output_is_recorded(
    connected: ConnectFactory,
) -> None:
    setup = await connected()
    client, session = setup.client, setup.session
    await client.offer_tools(END_CALL_TOOL)
    assert session.offered_tools == ("end_call",)

    await client.conn.response.create()
    events = await client.until(ServerEventResponseDone)
    types = collapse_repeats([e.type for e in events])
    assert types[-len(FUNCTION_CALL_TAIL) :] == FUNCTION_CALL_TAIL
    last_audio = max(
        i for i, e in enumerate(events) if isinstance(e, ServerEventResponseAudioDelta)
    )
    first_call = events.index(function_call_events(events)[0])
    assert last_audio < first_call

    added = of_class(events, ServerEventResponseOutputItemAdded)[1]
    assert isinstance(added.item, ResponseFunctionCallItem)
    assert added.output_index == 1
    assert (added.item.name, added.item.arguments, added.item.status) == (
        "end_call",
        "",
        "in_progress",
    )
    call_id = added.item.call_id
    assert call_id.startswith("call_")
    call_created = of_class(events, ServerEventConversationItemCreated)[-1]
    assert isinstance(call_created.item, ResponseFunctionCallItem)
    assert call_created.item.id == added.item.id
    deltas = of_class(events, ServerEventResponseFunctionCallArgumentsDelta)
    args_done = of_class(events, ServerEventResponseFunctionCallArgumentsDone)[0]
    assert {(d.call_id, d.item_id, d.output_index) for d in deltas} == {(call_id, added.item.id, 1)}
    assert "".join(d.delta for d in deltas) == args_done.arguments
    assert (args_done.call_id, args_done.name) == (call_id, "end_call")
    assert json.loads(args_done.arguments) == {"reason": "done"}
    item_done = of_class(events, ServerEventResponseOutputItemDone)[-1]
    assert isinstance(item_done.item, ResponseFunctionCallItem)
    assert (item_done.item.status, item_done.item.arguments) == ("completed", args_done.arguments)
    done = of_class(events, ServerEventResponseDone)[0]
    assert done.response.status == "completed"
    assert [item["type"] for item in done["response"]["output"]] == ["message", "function_call"]
    assert done["response"]["output"][1] == item_done["item"]

    await client.conn.conversation.item.create(
        item=FunctionCallOutputItem(call_id=call_id, output='{"ended": true}'),
        previous_item_id=args_done.item_id,
    )
    output_created = await client.expect(ServerEventConversationItemCreated)
    assert isinstance(output_created.item, ResponseFunctionCallOutputItem)
    assert output_created.previous_item_id == args_done.item_id
    await client.conn.response.create()
    next_response = await client.until(ServerEventResponseDone)
    assert function_call_events(next_response) == []
    next_done = of_class(next_response, ServerEventResponseDone)[0]
    assert next_done["response"]["output"][0]["content"][0]["transcript"] == ANYTHING_ELSE

    [call] = session.tool_calls
    first, second = session.responses
    assert (call.call_id, call.name, call.arguments) == (call_id, "end_call", {"reason": "done"})
    assert (call.response_id, call.item_id) == (first.response_id, args_done.item_id)
    assert call.output == '{"ended": true}'
    assert call.output_item_id == output_created.item.id
    assert first.last_audio_delta_at is not None
    assert call.output_at is not None
    assert first.last_audio_delta_at <= call.called_at < call.output_at < second.created_at
    assert second.turn_index == 1
    assert session.notes == []


@pytest.mark.parametrize(
    ("tools", "tool_choice", "why"),
    [
        ((), None, "offers no such function tool (offered: [])"),
        ((TRANSFER_TOOL,), None, "offered: ['transfer_call']"),
        ((END_CALL_TOOL,), "none", "tool_choice is 'none'"),
    ],
    ids=["no-tools", "other-tool", "tool-choice-none"],
)
async def test_a_tool_the_response_may_not_call_is_not_called(
    connected: ConnectFactory,
    tools: tuple[FunctionTool, ...],
    tool_choice: str | None,
    why: str,
) -> None:
    setup = await connected()
    client, session = setup.client, setup.session
    await client.offer_tools(*tools, tool_choice=tool_choice)
    await client.conn.response.create()
    events = await client.until(ServerEventResponseDone)

    assert function_call_events(events) == []
    done = of_class(events, ServerEventResponseDone)[0]
    assert done.response.status == "completed"
    assert [item["type"] for item in done["response"]["output"]] == ["message"]
    assert session.tool_calls == []
    [note] = session.notes
    assert "'end_call'" in note
    assert why in note


async def test_tools_given_on_response_create_apply_to_that_response(
    connected: ConnectFactory,
) -> None:
    setup = await connected()
    client, session = setup.client, setup.session
    await client.conn.response.create(response={"tools": [END_CALL_TOOL]})
    events = await client.until(ServerEventResponseDone)
    assert len(of_class(events, ServerEventResponseFunctionCallArgumentsDone)) == 1
    assert session.offered_tools == ()  # the session itself still offers nothing
    assert [c.name for c in session.tool_calls] == ["end_call"]


async def test_a_response_cancelled_during_its_audio_makes_no_call(
    connected: ConnectFactory,
) -> None:
    setup = await connected(speed=1.0)
    client, session = setup.client, setup.session
    await client.offer_tools(END_CALL_TOOL)
    await client.conn.response.create()
    await client.expect(ServerEventResponseAudioDelta)
    await client.conn.response.cancel()
    events = await client.until(ServerEventResponseDone)

    assert function_call_events(events) == []
    done = of_class(events, ServerEventResponseDone)[0]
    assert done.response.status == "cancelled"
    assert [item["type"] for item in done["response"]["output"]] == ["message"]
    assert session.tool_calls == []
    assert session.notes == []


async def test_function_call_output_for_an_unknown_call_is_an_error(
    connected: ConnectFactory,
) -> None:
    setup = await connected()
    client, session = setup.client, setup.session
    await client.conn.conversation.item.create(
        item=FunctionCallOutputItem(id="out_1", call_id="call_nope", output="{}")
    )
    error = await client.expect(ServerEventError)
    assert error.error.type == "invalid_request_error"
    assert "'call_nope'" in error.error.message
    assert "matches no function_call" in error.error.message
    await client.conn.conversation.item.retrieve(item_id="out_1")
    missing = await client.expect(ServerEventError)
    assert missing.error.code == "item_not_found"  # the refused item was not added

    # The connection goes on: an output for a call the client put in the history is fine.
    await client.conn.conversation.item.create(
        item=FunctionCallItem(call_id="call_history", name="lookup", arguments="{}")
    )
    await client.expect(ServerEventConversationItemCreated)
    await client.conn.conversation.item.create(
        item=FunctionCallOutputItem(call_id="call_history", output="{}")
    )
    created = await client.expect(ServerEventConversationItemCreated)
    assert isinstance(created.item, ResponseFunctionCallOutputItem)
    await client.conn.response.create()
    await client.expect(ServerEventResponseDone)
    assert session.tool_calls == []  # the emulated model made no call itself


# --------------------------------------------------------------------------------------------
# Text input
# --------------------------------------------------------------------------------------------


async def test_user_text_is_recorded_and_the_next_response_plays_the_next_turn(
    connected: ConnectFactory,
) -> None:
    setup = await connected(turns=PLAIN_TURNS)
    client, session = setup.client, setup.session
    await client.conn.response.create()
    await client.expect(ServerEventResponseDone)

    before = time.monotonic()
    await client.conn.conversation.item.create(
        item=UserMessageItem(content=[InputTextContentPart(text="Caller pressed 4 2 #")])
    )
    created = await client.expect(ServerEventConversationItemCreated)
    await client.conn.response.create()
    done = await client.expect(ServerEventResponseDone)

    assert done["response"]["output"][0]["content"][0]["transcript"] == ANYTHING_ELSE
    [text] = session.text_inputs
    assert (text.text, text.item_id) == ("Caller pressed 4 2 #", created["item"]["id"])
    assert before <= text.at < session.responses[1].created_at
    assert session.responses[1].turn_index == 1


# --------------------------------------------------------------------------------------------
# Connect latency
# --------------------------------------------------------------------------------------------


async def test_connect_delay_holds_the_upgrade(connected: ConnectFactory) -> None:
    started = time.monotonic()
    setup = await connected(connect_delay_ms=300)
    elapsed = time.monotonic() - started
    session = setup.session
    assert session.upgrade_requested_at is not None
    assert session.opened_at - session.upgrade_requested_at >= 0.3 - 0.005
    assert elapsed >= 0.3 - 0.005


async def test_stop_does_not_wait_out_a_connect_delay() -> None:
    emulator = VoiceLiveEmulator(turns=PLAIN_TURNS, api_key=API_KEY, connect_delay_ms=60_000)
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.start()

    async def connect_once() -> None:
        async with sdk_client(emulator, API_KEY):
            pass

    attempt = asyncio.create_task(connect_once())
    await asyncio.sleep(0.1)  # let the upgrade request reach the emulator
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.stop()
        with pytest.raises(VoiceLiveConnectionError):
            await attempt
    assert emulator.sessions == ()


# --------------------------------------------------------------------------------------------
# Scripting
# --------------------------------------------------------------------------------------------


def test_tool_call_keeps_a_read_only_copy_of_its_arguments() -> None:
    arguments: dict[str, Any] = {"reason": "done"}
    call = ToolCall("end_call", arguments)
    arguments["reason"] = "changed"
    assert call.arguments == {"reason": "done"}
    assert call.arguments_json == '{"reason":"done"}'
    assert isinstance(call.arguments, Mapping)
    with pytest.raises(TypeError):
        call.arguments["reason"] = "x"  # type: ignore[index]
    assert hash(call) == hash(ToolCall("end_call", {"reason": "done"}))
    assert AgentTurn(b"\x00\x00", 16000, "").tool_call is None


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("", {}, "name must not be empty"),
        ("end_call", {"when": object()}, "not JSON serialisable"),
        ("end_call", {"x": float("nan")}, "not JSON serialisable"),
    ],
)
def test_tool_call_rejects_bad_scripts(name: str, arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ToolCall(name, arguments)
