"""Fault injection and calls that span sessions, driven through the real SDK on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from azure.ai.voicelive.aio import ConnectionClosed, connect
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputTextContentPart,
    OutputTextContentPart,
    ServerEventConversationItemCreated,
    ServerEventError,
    ServerEventResponseAudioDelta,
    ServerEventResponseDone,
    ServerEventSessionUpdated,
    SystemMessageItem,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from callbridge.sim.voicelive import (
    API_VERSION,
    CLIENT_REQUEST_ID_HEADER,
    REALTIME_PATH,
    AgentTurn,
    Drop,
    EmulatorSession,
    Expire,
    Freeze,
    Hang,
    Refuse,
    SlowAccept,
    VoiceLiveEmulator,
)
from tests.test_voicelive_emulator import (
    API_KEY,
    ULAW_SILENCE,
    append_ulaw,
    past_session_created,
    tone_pcm16,
    ulaw_tone,
    use_g711,
)
from tests.voicelive_client import NETWORK_TIMEOUT_S, Client

TURNS = [AgentTurn(tone_pcm16(300 + 100 * n, 0.6, 16000), 16000, f"Turn {n}.") for n in range(3)]
TRANSCRIPTS = ["first thing", "second thing"]
CALLER_TURN = ULAW_SILENCE * 2000 + ulaw_tone(0.6) + ULAW_SILENCE * 6000
QUIET_S = 0.5  # how long a silent connection is watched (several client heartbeats)
HEARTBEAT_S = 0.1


@pytest.fixture
async def emulator_with() -> AsyncIterator[Callable[..., VoiceLiveEmulator]]:
    """Builds emulators (not yet started) and stops every one at the end."""
    built: list[VoiceLiveEmulator] = []

    def factory(**overrides: Any) -> VoiceLiveEmulator:
        options: dict[str, Any] = {
            "turns": TURNS,
            "api_key": API_KEY,
            "caller_transcripts": TRANSCRIPTS,
            "speed": 4.0,
            "response_delay_ms": 10,
            "transcription_delay_ms": 5,
        }
        emulator = VoiceLiveEmulator(**(options | overrides))
        built.append(emulator)
        return emulator

    yield factory
    for emulator in built:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await emulator.stop()
            await emulator.wait_all_closed()


async def started(emulator: VoiceLiveEmulator) -> VoiceLiveEmulator:
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.start()
    return emulator


@asynccontextmanager
async def call_client(
    emulator: VoiceLiveEmulator,
    call_id: str | None = "call-1",
    *,
    heartbeat_s: float | None = None,
) -> AsyncIterator[Client]:
    """An SDK client whose ``session.created`` has arrived, tagged with ``call_id``."""
    headers: Mapping[str, str] = {} if call_id is None else {CLIENT_REQUEST_ID_HEADER: call_id}
    manager = connect(
        endpoint=emulator.endpoint,
        credential=AzureKeyCredential(API_KEY),
        model="gpt-realtime",
        api_version=API_VERSION,
        headers=headers,
        connection_options={} if heartbeat_s is None else {"heartbeat": heartbeat_s},
    )
    async with past_session_created(manager) as client:
        yield client


async def closed_by_service(client: Client) -> ConnectionClosed:
    """Read until the connection closes; the SDK's exception for it."""
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        while True:
            try:
                await client.conn.recv()
            except ConnectionClosed as closed:
                return closed


async def eventually(condition: Callable[[], object]) -> None:
    """Wait (bounded) until ``condition()`` holds: for what the emulator does on its own."""
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def fault_fired(session: EmulatorSession) -> None:
    await eventually(lambda: session.faults)


async def nothing_arrives(client: Client, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await client.conn.recv()
    except TimeoutError:
        return True
    return False


# --------------------------------------------------------------------------------------------
# Drop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1011, 1000])
async def test_drop_mid_response_closes_with_the_code(
    emulator_with: Callable[..., VoiceLiveEmulator], code: int
) -> None:
    fault = Drop(during_response=0, after_audio_ms=200, close_code=code)
    emulator = await started(emulator_with(faults=[fault]))
    async with call_client(emulator) as client:
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        closed = await closed_by_service(client)
    assert closed.code == code
    session = emulator.sessions[0]
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await session.wait_closed()
    assert session.closed_at is not None
    assert [f.kind for f in session.faults] == ["drop"]
    response = session.responses[0]
    assert 200 <= response.audio_ms_sent < response.audio_ms_total
    assert session.sent("response.done") == []  # the rest of the response never left
    assert emulator.violations == []


async def test_drop_with_abort_sends_no_close_frame(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with(faults=[Drop(at_s=0.05, abort=True)]))
    url = f"{emulator.endpoint}{REALTIME_PATH}?api-version={API_VERSION}"
    async with aiohttp.ClientSession() as http, asyncio.timeout(NETWORK_TIMEOUT_S):
        ws = await http.ws_connect(url, headers={"api-key": API_KEY})
        assert (await ws.receive_json())["type"] == "session.created"
        ending = await ws.receive()
    assert ending.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)  # not CLOSE
    session = emulator.sessions[0]
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await session.wait_closed()
    assert [f.kind for f in session.faults] == ["drop"]
    assert session.faults[0].detail == "aborted, no close frame"

    # The SDK sees the same abort as a closed connection.
    async with call_client(emulator, call_id=None) as client:
        await closed_by_service(client)


# --------------------------------------------------------------------------------------------
# Hang and Freeze
# --------------------------------------------------------------------------------------------


async def test_hang_goes_silent_but_answers_pings_and_keeps_reading(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with(faults=[Hang(during_response=0, after_audio_ms=100)]))
    async with call_client(emulator, heartbeat_s=HEARTBEAT_S) as client:
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        session = emulator.sessions[0]
        await fault_fired(session)
        assert await nothing_arrives(client, QUIET_S)  # several heartbeats, all answered
        assert not client.conn._connection.closed  # the socket is still open
        await client.conn.input_audio_buffer.clear()
        await eventually(lambda: session.received("input_audio_buffer.clear"))
        assert session.sent("input_audio_buffer.cleared") == []
    response = session.responses[0]
    assert response.audio_ms_sent < response.audio_ms_total
    assert [f.kind for f in session.faults] == ["hang"]


async def test_freeze_is_noticed_by_a_client_heartbeat(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    # aiohttp 3.14 answers a ping only inside receive(): the emulator's read loop does it
    # itself (autoping=False) and stops once frozen, so the client's ping goes unanswered and
    # its heartbeat (SDK connection_options "heartbeat") closes the connection.
    emulator = await started(emulator_with(faults=[Freeze(at_s=0.05)]))
    async with call_client(emulator, heartbeat_s=HEARTBEAT_S) as client:
        session = emulator.sessions[0]
        await fault_fired(session)
        await client.conn.input_audio_buffer.clear()
        await closed_by_service(client)
        socket = client.conn._connection  # the heartbeat's verdict is kept there
        assert isinstance(socket.exception(), aiohttp.ServerTimeoutError)
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await session.wait_closed()  # the emulator saw the client go
    assert session.received() == []  # nothing read was acted on
    assert [f.kind for f in session.faults] == ["freeze"]


async def test_stop_ends_hung_and_frozen_sessions(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with(faults=[Hang(at_s=0.05, session=None)]))
    emulator.script_session("frozen", TURNS, faults=[Freeze(at_s=0.05)])
    async with call_client(emulator, "hung"), call_client(emulator, "frozen"):
        for session in emulator.sessions:
            await fault_fired(session)
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await emulator.stop()
            await emulator.wait_all_closed()
    assert sorted(f.kind for s in emulator.sessions for f in s.faults) == [
        "freeze",
        "hang",
        "hang",
    ]
    assert all(s.closed_at is not None for s in emulator.sessions)
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("voicelive-emulator")]
    assert leftover == []


# --------------------------------------------------------------------------------------------
# The upgrade: SlowAccept, Refuse
# --------------------------------------------------------------------------------------------


async def test_slow_accept_holds_only_the_session_it_names(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with(faults=[SlowAccept(300, session=1)]))
    for _ in range(2):
        async with call_client(emulator):
            pass
    first, second = emulator.sessions_for("call-1")
    assert first.faults == []
    assert [f.kind for f in second.faults] == ["slow_accept"]
    assert second.upgrade_requested_at is not None
    assert second.opened_at - second.upgrade_requested_at >= 0.3


@pytest.mark.parametrize("status", [429, 503])
async def test_refused_upgrade_then_the_retry_gets_in(
    emulator_with: Callable[..., VoiceLiveEmulator], status: int
) -> None:
    emulator = await started(emulator_with(faults=[Refuse(status, retry_after_s=2)]))
    with pytest.raises(VoiceLiveConnectionError, match=str(status)):
        async with call_client(emulator):
            pass
    async with call_client(emulator):
        pass
    assert [(r.call_session_index, r.status) for r in emulator.refused_upgrades] == [(0, status)]
    assert [s.call_session_index for s in emulator.sessions_for("call-1")] == [1]

    # What the refusal carries, read raw: the status, Retry-After and a JSON error body.
    url = f"{emulator.endpoint}{REALTIME_PATH}?api-version={API_VERSION}"
    async with (
        aiohttp.ClientSession() as http,
        asyncio.timeout(NETWORK_TIMEOUT_S),
        http.get(url, headers={"api-key": API_KEY}) as response,
    ):
        body = await response.json()
    assert response.status == status
    assert response.headers["Retry-After"] == "2"
    assert set(body["error"]) == {"code", "message"}


# --------------------------------------------------------------------------------------------
# Expire
# --------------------------------------------------------------------------------------------


async def test_expiry_sets_expires_at_then_errors_and_closes(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with(faults=[Expire(0.4)]))
    connecting_at = time.time()
    async with call_client(emulator) as client:
        created_expiry = emulator.sessions[0].config["expires_at"]
        await client.conn.session.update(session={"instructions": "Be brief."})
        updated = await client.expect(ServerEventSessionUpdated)
        error = await client.expect(ServerEventError)
        closed = await closed_by_service(client)
    assert abs(created_expiry - (connecting_at + 0.4)) <= 1
    assert updated["session"]["expires_at"] == created_expiry  # epoch seconds on the wire
    assert error.error.code == "session_expired"
    assert closed.code == 1000
    assert [f.kind for f in emulator.sessions[0].faults] == ["expire"]
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# A call across sessions
# --------------------------------------------------------------------------------------------


async def test_a_reconnected_session_continues_the_call(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with())
    # This call's second response is dropped part way; the emulator's other calls are not.
    emulator.script_session(
        "call-1", TURNS, TRANSCRIPTS, faults=[Drop(during_response=1, after_audio_ms=100)]
    )
    async with call_client(emulator) as client:
        await use_g711(client)
        await client.conn.response.create()
        await client.expect(ServerEventResponseDone)  # the greeting, turn 0
        await append_ulaw(client, CALLER_TURN)
        assert (await closed_by_service(client)).code == 1011
    async with call_client(emulator) as client:
        await use_g711(client)
        await append_ulaw(client, CALLER_TURN)
        await client.expect(ServerEventResponseDone)
    async with call_client(emulator, call_id=None) as client:
        await client.conn.response.create()
        await client.expect(ServerEventResponseDone)

    first, second = emulator.sessions_for("call-1")
    assert (first.call_session_index, second.call_session_index) == (0, 1)
    assert [(r.turn_index, r.trigger) for r in first.responses] == [
        (0, "response.create"),
        (1, "server_vad"),
    ]
    assert [(r.turn_index, r.trigger) for r in second.responses] == [(2, "server_vad")]
    assert second.responses[0].call_response_index == 2
    assert [s.transcript for s in first.speech + second.speech] == TRANSCRIPTS
    assert (len(first.greetings), len(second.greetings)) == (1, 0)
    assert [f.kind for f in first.faults] == ["drop"]
    assert second.faults == []
    untagged = emulator.sessions[-1]
    assert untagged.call_session_index == 0
    assert [r.turn_index for r in untagged.responses] == [0]  # a call of its own
    assert emulator.violations == []


async def test_a_response_the_client_never_heard_of_is_played_by_the_next_session(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with())
    # The first session hangs during the greeting, so its answer to the caller's turn is
    # created but never announced.
    hang = Hang(during_response=0, after_audio_ms=100)
    emulator.script_session("call-1", TURNS, TRANSCRIPTS, faults=[hang])
    async with call_client(emulator) as client:
        await use_g711(client)
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)  # the greeting, turn 0
        first = emulator.sessions_for("call-1")[0]
        await fault_fired(first)
        await append_ulaw(client, CALLER_TURN)
        await eventually(lambda: len(first.responses) == 2)
    async with call_client(emulator) as client:
        await use_g711(client)
        await append_ulaw(client, CALLER_TURN)
        await client.expect(ServerEventResponseDone)

    first, second = emulator.sessions_for("call-1")
    assert [r.turn_index for r in first.responses] == [0, 1]
    assert (
        first.sent("response.created")[-1].fields["response.id"] != first.responses[1].response_id
    )
    # Turn 1 was never heard, so the next session answers with it, not with turn 2.
    assert [r.turn_index for r in second.responses] == [1]


async def test_replayed_context_is_recorded_in_order(
    emulator_with: Callable[..., VoiceLiveEmulator],
) -> None:
    emulator = await started(emulator_with())
    replay = [
        SystemMessageItem(content=[InputTextContentPart(text="Caller is verified.")]),
        AssistantMessageItem(content=[OutputTextContentPart(text="Hello, how can I help?")]),
        UserMessageItem(content=[InputTextContentPart(text="Where is my order?")]),
        FunctionCallItem(call_id="call_a", name="find_order", arguments='{"id": 7}'),
        FunctionCallOutputItem(call_id="call_a", output='{"status": "shipped"}'),
    ]
    async with call_client(emulator) as client:
        for item in replay:
            await client.conn.conversation.item.create(item=item)
            await client.expect(ServerEventConversationItemCreated)
        # An assistant message takes output text only: the reference's content type is clear.
        await client.conn.conversation.item.create(
            item=AssistantMessageItem(content=[InputTextContentPart(text="wrong part")])
        )
        refused = await client.expect(ServerEventError)
        await client.conn.response.create()
        await client.expect(ServerEventResponseDone)
    session = emulator.sessions[0]
    assert [(i.type, i.role, i.text, i.call_id) for i in session.client_items] == [
        ("message", "system", "Caller is verified.", None),
        ("message", "assistant", "Hello, how can I help?", None),
        ("message", "user", "Where is my order?", None),
        ("function_call", None, '{"id": 7}', "call_a"),
        ("function_call_output", None, '{"status": "shipped"}', "call_a"),
    ]
    assert session.client_items[3].name == "find_order"
    assert refused.error.param == "item.content"
    # A response created after replayed text but before any caller audio is a greeting.
    assert [r.trigger for r in session.greetings] == ["response.create"]
    assert emulator.violations == []
