"""The Voice Live emulator, driven through the real azure-ai-voicelive SDK on loopback."""

from __future__ import annotations

import asyncio
import base64
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection, connect
from azure.ai.voicelive.models import (
    AzureSemanticVad,
    InputTextContentPart,
    ServerEvent,
    ServerEventConversationItemCreated,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferCleared,
    ServerEventInputAudioBufferCommitted,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventInputAudioBufferSpeechStopped,
    ServerEventResponseAudioDelta,
    ServerEventResponseAudioTranscriptDelta,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventSessionCreated,
    ServerEventSessionUpdated,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AccessToken, AzureKeyCredential

from callbridge.sim.validate import validate_server_event
from callbridge.sim.voicelive import (
    API_VERSION,
    CLIENT_REQUEST_ID_HEADER,
    DOCUMENTED_BEYOND_SDK,
    REALTIME_PATH,
    AgentTurn,
    EnergyVad,
    SpeechEnd,
    SpeechOnset,
    VoiceLiveEmulator,
    encode_output_audio,
    load_turns,
    output_audio_format,
    serve_emulator,
)
from tests.voicelive_client import (
    NETWORK_TIMEOUT_S,
    Client,
    first,
    of_class,
    opened,
    sdk_client,
)

API_KEY = "emulator-test-key"
GREETING = "Hello, thanks for calling. How can I help?"
SECOND_TURN = "Sure, one moment."
CALLER_SAYS = "I would like to check my order."

ULAW_SILENCE = b"\xff"  # mu-law code for 0


def tone_pcm16(freq_hz: float, seconds: float, rate: int, dbfs: float = -12.0) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    amplitude = 32767 * 10 ** (dbfs / 20)
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def ulaw_tone(seconds: float) -> bytes:
    turn = AgentTurn(tone_pcm16(300, seconds, 8000), 8000, "")
    return encode_output_audio(turn, output_audio_format("g711_ulaw"))


def twenty_ms_chunks(audio: bytes, bytes_per_ms: int) -> Iterator[bytes]:
    step = 20 * bytes_per_ms
    for offset in range(0, len(audio), step):
        yield audio[offset : offset + step]


AGENT_TURNS = [
    AgentTurn(tone_pcm16(440, 1.0, 16000), 16000, GREETING),
    AgentTurn(tone_pcm16(550, 0.5, 16000), 16000, SECOND_TURN),
]

EmulatorFactory = Callable[..., Awaitable[VoiceLiveEmulator]]


async def start_emulator(started: list[VoiceLiveEmulator], **overrides: Any) -> VoiceLiveEmulator:
    """A fast emulator (overridden by ``overrides``), started and added to ``started``."""
    options: dict[str, Any] = {
        "turns": AGENT_TURNS,
        "api_key": API_KEY,
        "caller_transcripts": [CALLER_SAYS],
        "speed": 8.0,
        "response_delay_ms": 20,
        "transcription_delay_ms": 5,
    }
    emulator = VoiceLiveEmulator(**(options | overrides))
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.start()
    started.append(emulator)
    return emulator


@pytest.fixture
async def make_emulator() -> AsyncIterator[EmulatorFactory]:
    started: list[VoiceLiveEmulator] = []

    async def factory(**overrides: Any) -> VoiceLiveEmulator:
        return await start_emulator(started, **overrides)

    yield factory
    for emulator in started:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await emulator.stop()
            await emulator.wait_all_closed()


@asynccontextmanager
async def past_session_created(
    manager: AbstractAsyncContextManager[VoiceLiveConnection],
) -> AsyncIterator[Client]:
    """``opened``, once ``session.created`` has arrived."""
    async with opened(manager) as client:
        await client.expect(ServerEventSessionCreated)
        yield client


@asynccontextmanager
async def session_client(
    emulator: VoiceLiveEmulator,
    headers: Mapping[str, str] | None = None,
    model: str = "gpt-realtime",
) -> AsyncIterator[Client]:
    """An SDK client connected to ``emulator`` whose ``session.created`` has arrived."""
    async with sdk_client(emulator, API_KEY, headers=headers, model=model) as client:
        await client.expect(ServerEventSessionCreated)
        yield client


async def use_g711(client: Client, **turn_detection: Any) -> ServerEventSessionUpdated:
    await client.conn.session.update(
        session={
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "turn_detection": ServerVad(**turn_detection),
        }
    )
    return await client.expect(ServerEventSessionUpdated)


async def append_ulaw(client: Client, audio: bytes) -> None:
    for chunk in twenty_ms_chunks(audio, bytes_per_ms=8):
        await client.conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())


def collapse_repeats(types: list[str]) -> list[str]:
    collapsed: list[str] = []
    for event_type in types:
        if not collapsed or collapsed[-1] != event_type:
            collapsed.append(event_type)
    return collapsed


RESPONSE_ORDER_HEAD = [
    "response.created",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
]
RESPONSE_ORDER_TAIL = [
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]
STREAMING = {"response.audio.delta", "response.audio_transcript.delta"}


def assert_response_shape(events: list[ServerEvent]) -> None:
    types = [
        e.type for e in events if e.type != "conversation.item.input_audio_transcription.completed"
    ]
    start = types.index("response.created")
    body = types[start:]
    head, tail = body[: len(RESPONSE_ORDER_HEAD)], body[-len(RESPONSE_ORDER_TAIL) :]
    assert head == RESPONSE_ORDER_HEAD
    assert tail == RESPONSE_ORDER_TAIL
    middle = body[len(RESPONSE_ORDER_HEAD) : -len(RESPONSE_ORDER_TAIL)]
    assert set(middle) == STREAMING
    assert middle[0] == "response.audio_transcript.delta"  # text arrives with the first audio


# --------------------------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------------------------


async def test_session_created_then_updated(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    async with sdk_client(emulator, API_KEY) as client:
        created = await client.next()
        assert isinstance(created, ServerEventSessionCreated)
        assert created.session.id == "sess_000"
        assert created.session.model == "gpt-realtime"
        assert created["session"]["input_audio_format"] == "pcm16"
        assert created["session"]["output_audio_format"] == "pcm16"
        assert created["session"]["turn_detection"]["type"] == "server_vad"

        updated = await use_g711(client, silence_duration_ms=400)
        session = updated["session"]
        assert (session["input_audio_format"], session["output_audio_format"]) == ("g711_ulaw",) * 2
        assert session["input_audio_sampling_rate"] == 8000
        assert session["turn_detection"]["silence_duration_ms"] == 400
        # Defaults filled in: server_vad's prefix padding is 400 ms since api-version 2026-04-10.
        assert session["turn_detection"]["prefix_padding_ms"] == 400
    record = emulator.sessions[0]
    assert record.config["input_audio_format"] == "g711_ulaw"
    assert emulator.violations == []


async def test_input_format_cannot_change_after_audio(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await append_ulaw(client, ULAW_SILENCE * 160)
        await client.conn.session.update(session={"input_audio_format": "g711_ulaw"})
        error = await client.expect(ServerEventError)
        assert "cannot change mid-session" in error.error.message


async def test_azure_semantic_vad_gets_its_own_documented_defaults(
    make_emulator: EmulatorFactory,
) -> None:
    """azure_semantic_vad: prefix padding 420 ms and speech duration 80 ms (API reference
    2026-07-15), not server_vad's."""
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.session.update(session={"turn_detection": AzureSemanticVad()})
        updated = await client.expect(ServerEventSessionUpdated)
    turn_detection = updated["session"]["turn_detection"]
    assert (turn_detection["prefix_padding_ms"], turn_detection["speech_duration_ms"]) == (420, 80)
    assert emulator.violations == []


@pytest.mark.parametrize(
    ("model", "refused", "accepted"),
    [("gpt-realtime", "azure-speech", "whisper-1"), ("gpt-4.1", "whisper-1", "azure-speech")],
)
async def test_transcription_model_must_be_one_the_session_model_takes(
    make_emulator: EmulatorFactory, model: str, refused: str, accepted: str
) -> None:
    """The reference's table: a pair it does not list gets an error naming the field, and no
    session.updated; the session keeps its configuration."""
    emulator = await make_emulator()
    async with session_client(emulator, model=model) as client:
        await client.conn.session.update(
            session={"input_audio_transcription": {"model": refused}}, event_id="bad-update"
        )
        error = (await client.until(ServerEventError))[-1]
        await client.conn.session.update(session={"input_audio_transcription": {"model": accepted}})
        following = await client.next()
    assert isinstance(error, ServerEventError)
    assert error.error.param == "session.input_audio_transcription.model"
    assert error.error.event_id == "bad-update"
    assert isinstance(following, ServerEventSessionUpdated)  # none came for the refused one
    assert following["session"]["input_audio_transcription"]["model"] == accepted


class _EntraToken:
    """Stands for DefaultAzureCredential: the emulator takes any bearer token as a login."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("entra-token", 2_000_000_000)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> _EntraToken:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


@asynccontextmanager
async def agent_client(
    emulator: VoiceLiveEmulator, credential: AzureKeyCredential | _EntraToken
) -> AsyncIterator[Client]:
    manager = connect(
        endpoint=emulator.endpoint,
        credential=credential,
        api_version=API_VERSION,
        agent_name="helper",
        project_name="callcenter",
    )
    async with past_session_created(manager) as client:
        yield client


async def test_agent_sessions_refuse_key_authentication(make_emulator: EmulatorFactory) -> None:
    """The agents how-to: key-based authentication isn't supported in agent mode."""
    emulator = await make_emulator()
    with pytest.raises(VoiceLiveConnectionError, match="401"):
        async with agent_client(emulator, AzureKeyCredential(API_KEY)):
            pass
    assert emulator.sessions == ()


async def test_agent_sessions_refuse_instructions_and_take_the_agents_transcription(
    make_emulator: EmulatorFactory,
) -> None:
    """The how-to: instructions aren't supported with a custom agent; an agent takes
    azure-speech (the reference's table), not whisper-1."""
    emulator = await make_emulator()
    async with agent_client(emulator, _EntraToken()) as client:
        errors = []
        for update in (
            {"instructions": "Be brief."},
            {"input_audio_transcription": {"model": "whisper-1"}},
        ):
            await client.conn.session.update(session=update)
            errors.append((await client.until(ServerEventError))[-1])
        await client.conn.session.update(
            session={"input_audio_transcription": {"model": "azure-speech"}, "voice": "alloy"}
        )
        updated = await client.next()
    assert [error["error"]["param"] for error in errors] == [
        "session.instructions",
        "session.input_audio_transcription.model",
    ]
    assert isinstance(updated, ServerEventSessionUpdated)
    assert emulator.sessions[0].agent == "helper"


# --------------------------------------------------------------------------------------------
# Caller turn: VAD → commit → transcript → scripted response
# --------------------------------------------------------------------------------------------


async def test_g711_caller_turn_drives_vad_and_a_scripted_response(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await use_g711(client)
        # 0.5 s silence, 1 s of 300 Hz at -12 dBFS, 1 s silence: onset at 500 ms.
        await append_ulaw(client, ULAW_SILENCE * 4000 + ulaw_tone(1.0) + ULAW_SILENCE * 8000)
        events = await client.until(ServerEventResponseDone)

    started = first(events, ServerEventInputAudioBufferSpeechStarted)
    stopped = first(events, ServerEventInputAudioBufferSpeechStopped)
    committed = first(events, ServerEventInputAudioBufferCommitted)
    user_item = first(events, ServerEventConversationItemCreated)
    assert started.audio_start_ms == 500 - 400  # onset minus prefix_padding_ms
    assert stopped.audio_end_ms == 1500 + 500  # end of tone plus silence_duration_ms
    assert started.item_id == stopped.item_id == committed.item_id == user_item["item"]["id"]
    assert user_item["item"]["role"] == "user"
    assert events.index(committed) < events.index(first(events, ServerEventResponseCreated))
    assert_response_shape(events)

    done = first(events, ServerEventResponseDone)
    assert done.response.status == "completed"
    assert done["response"]["output"][0]["content"][0]["transcript"] == GREETING
    assert done["response"]["usage"]["output_tokens"] > 0
    audio = b"".join(e.delta for e in of_class(events, ServerEventResponseAudioDelta))
    assert len(audio) == 8000  # 1 s of mu-law at 8 kHz
    transcript = "".join(e.delta for e in of_class(events, ServerEventResponseAudioTranscriptDelta))
    assert transcript == GREETING

    record = emulator.sessions[0]
    speech = record.speech[0]
    assert (speech.audio_start_ms, speech.audio_end_ms) == (100, 2000)
    assert speech.transcript == CALLER_SAYS
    assert len(record.speech_started_sent_at) == 1
    response = record.responses[0]
    assert response.status == "completed"
    assert response.audio_ms_sent == pytest.approx(1000)
    assert record.audio_ms_sent_by_item == {response.item_id: pytest.approx(1000)}
    assert response.first_audio_delta_at is not None
    assert response.last_audio_delta_at is not None
    assert response.created_at < response.first_audio_delta_at < response.last_audio_delta_at
    assert emulator.violations == []


async def test_caller_transcription_arrives_after_commit(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(caller_transcripts=[])
    async with session_client(emulator) as client:
        await use_g711(client, create_response=False)
        transcribed = {"input_audio_transcription": {"model": "whisper-1"}}
        await client.conn.session.update(session=transcribed)
        await client.expect(ServerEventSessionUpdated)
        await append_ulaw(client, ulaw_tone(1.4) + ULAW_SILENCE * 5000)
        committed = await client.expect(ServerEventInputAudioBufferCommitted)
        transcription = await client.expect(
            ServerEventConversationItemInputAudioTranscriptionCompleted
        )
    assert transcription.item_id == committed.item_id
    assert transcription.transcript == "(caller speech, 1.4 s)"
    assert emulator.sessions[0].responses == []  # create_response=False


async def test_pcm16_16k_input_split_mid_sample_still_detects_speech(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    pcm = bytes(2 * 8000) + tone_pcm16(300, 0.5, 16000) + bytes(2 * 16000)
    async with session_client(emulator) as client:
        await client.conn.session.update(
            session={"input_audio_sampling_rate": 16000, "turn_detection": ServerVad()}
        )
        await client.expect(ServerEventSessionUpdated)
        for offset in range(0, len(pcm), 641):  # odd sizes: samples split across appends
            chunk = pcm[offset : offset + 641]
            await client.conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        started = await client.expect(ServerEventInputAudioBufferSpeechStarted)
        stopped = await client.expect(ServerEventInputAudioBufferSpeechStopped)
    assert (started.audio_start_ms, stopped.audio_end_ms) == (500 - 400, 1000 + 500)


# --------------------------------------------------------------------------------------------
# Responses: create, stream, cancel
# --------------------------------------------------------------------------------------------


async def test_response_create_plays_the_greeting_faster_than_real_time(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.response.create()
        events = await client.until(ServerEventResponseDone)
    assert_response_shape(events)
    deltas = [e.delta for e in of_class(events, ServerEventResponseAudioDelta)]
    assert len(b"".join(deltas)) == 24000 * 2  # 1 s of pcm16 at 24 kHz
    sizes = {len(d) for d in deltas[:-1]}
    assert sizes == {100 * 48, 60 * 48, 140 * 48}  # irregular, never 20 ms aligned in sequence
    assert all(len(d) % 2 == 0 for d in deltas)
    response = emulator.sessions[0].responses[0]
    assert response.first_audio_delta_at is not None
    assert response.last_audio_delta_at is not None
    streaming_s = response.last_audio_delta_at - response.first_audio_delta_at
    assert streaming_s < 0.5  # 1 s of audio at speed 8 takes ~0.11 s
    assert emulator.violations == []


async def test_later_responses_take_the_next_turns_then_repeat_the_last(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator(speed=50.0)
    async with session_client(emulator) as client:
        transcripts = []
        for _ in range(3):
            await client.conn.response.create()
            done = await client.expect(ServerEventResponseDone)
            transcripts.append(done["response"]["output"][0]["content"][0]["transcript"])
    assert transcripts == [GREETING, SECOND_TURN, SECOND_TURN]
    assert [r.turn_index for r in emulator.sessions[0].responses] == [0, 1, 1]


async def test_response_cancel_mid_response(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(speed=1.0)
    async with session_client(emulator) as client:
        await client.conn.response.create()
        first_delta = await client.expect(ServerEventResponseAudioDelta)
        await client.conn.response.cancel()
        events = await client.until(ServerEventResponseDone)
        # Only what was sent can be truncated: the first 100 ms chunk, not 900 ms.
        await client.conn.conversation.item.truncate(
            item_id=first_delta.item_id, audio_end_ms=900, content_index=0
        )
        too_far = await client.expect(ServerEventError)
        await client.conn.conversation.item.truncate(
            item_id=first_delta.item_id, audio_end_ms=100, content_index=0
        )
        truncated = await client.expect(ServerEventConversationItemTruncated)

    types = collapse_repeats([e.type for e in events])
    assert types[-len(RESPONSE_ORDER_TAIL) :] == RESPONSE_ORDER_TAIL
    done = first(events, ServerEventResponseDone)
    assert done.response.status == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["response"]["output"][0]["status"] == "incomplete"
    assert too_far.error.code == "invalid_value"
    assert "greater than audio duration" in too_far.error.message
    assert truncated.audio_end_ms == 100

    record = emulator.sessions[0]
    response = record.responses[0]
    assert (response.status, response.status_reason) == ("cancelled", "client_cancelled")
    assert response.audio_ms_sent < 1000
    assert record.cancels[0].active_response_id == response.response_id
    assert [(t.audio_end_ms, t.accepted) for t in record.truncations] == [(900, False), (100, True)]
    assert emulator.violations == []


async def test_response_cancel_without_active_response_is_an_error(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.response.cancel()
        error = await client.expect(ServerEventError)
    assert error.error.type == "invalid_request_error"
    assert error.error.code == "response_cancel_not_active"
    assert emulator.sessions[0].cancels[0].active_response_id is None


async def test_response_create_while_active_is_an_error(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(speed=1.0)
    async with session_client(emulator) as client:
        await client.conn.response.create()
        await client.conn.response.create()
        error = await client.expect(ServerEventError)
    assert error.error.code == "conversation_already_has_active_response"


@pytest.mark.parametrize(
    ("interrupt_response", "expected_status"),
    [(True, "cancelled"), (False, "completed")],
)
async def test_barge_in_cancels_the_response_only_with_interrupt_response(
    make_emulator: EmulatorFactory, interrupt_response: bool, expected_status: str
) -> None:
    emulator = await make_emulator(speed=4.0)
    async with session_client(emulator) as client:
        await use_g711(client, interrupt_response=interrupt_response, create_response=False)
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        await append_ulaw(client, ulaw_tone(0.3))
        events = await client.until(ServerEventResponseDone)
    started = first(events, ServerEventInputAudioBufferSpeechStarted)
    done = first(events, ServerEventResponseDone)
    assert done.response.status == expected_status
    if interrupt_response:
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        assert events.index(started) < events.index(done)
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# Conversation items
# --------------------------------------------------------------------------------------------


async def test_truncate_after_full_playback(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.response.create()
        done = await client.expect(ServerEventResponseDone)
        item_id = done["response"]["output"][0]["id"]
        await client.conn.conversation.item.truncate(
            item_id=item_id, audio_end_ms=1000, content_index=0
        )
        truncated = await client.expect(ServerEventConversationItemTruncated)
        # Once truncated to 400 ms, the item is shorter: 401 is past its end.
        await client.conn.conversation.item.truncate(
            item_id=item_id, audio_end_ms=400, content_index=0
        )
        await client.expect(ServerEventConversationItemTruncated)
        await client.conn.conversation.item.truncate(
            item_id=item_id, audio_end_ms=401, content_index=0
        )
        error = await client.expect(ServerEventError)
        await client.conn.conversation.item.truncate(
            item_id=item_id, audio_end_ms=1001, content_index=0
        )
        await client.expect(ServerEventError)
    assert (truncated.item_id, truncated.audio_end_ms) == (item_id, 1000)
    assert "greater than audio duration" in error.error.message
    accepted = [t.accepted for t in emulator.sessions[0].truncations]
    assert accepted == [True, True, False, False]


async def test_truncate_unknown_item_is_an_error(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.conversation.item.truncate(
            item_id="item_nope", audio_end_ms=0, content_index=0
        )
        error = await client.expect(ServerEventError)
    assert error.error.code == "item_not_found"
    assert emulator.sessions[0].truncations[0].accepted is False


async def test_conversation_item_create_and_commit_and_clear(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.conversation.item.create(
            item=UserMessageItem(content=[InputTextContentPart(text="Hi there")])
        )
        created = await client.expect(ServerEventConversationItemCreated)
        await client.conn.input_audio_buffer.commit()
        empty = await client.expect(ServerEventError)
        await client.conn.input_audio_buffer.clear()
        await client.expect(ServerEventInputAudioBufferCleared)
    assert created["item"]["content"] == [{"type": "input_text", "text": "Hi there"}]
    assert empty.error.code == "input_audio_buffer_commit_empty"
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# Auth, robustness, raw wire
# --------------------------------------------------------------------------------------------


async def test_wrong_api_key_is_refused(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    with pytest.raises(VoiceLiveConnectionError):
        async with sdk_client(emulator, "wrong-key"):
            pass
    assert emulator.sessions == ()


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        (f"api-version={API_VERSION}", {}, 401),
        (f"api-version={API_VERSION}", {"Authorization": "Bearer "}, 401),
        ("api-version=2025-10-01", {"api-key": API_KEY}, 400),
    ],
)
async def test_handshake_rejections(
    make_emulator: EmulatorFactory, query: str, headers: dict[str, str], status: int
) -> None:
    emulator = await make_emulator()
    async with aiohttp.ClientSession() as http, asyncio.timeout(NETWORK_TIMEOUT_S):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{emulator.endpoint}{REALTIME_PATH}?{query}", headers=headers)
    assert refused.value.status == status


async def test_bearer_token_is_accepted(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    url = f"{emulator.endpoint}{REALTIME_PATH}?api-version={API_VERSION}"
    async with (
        aiohttp.ClientSession() as http,
        asyncio.timeout(NETWORK_TIMEOUT_S),
        http.ws_connect(url, headers={"Authorization": "Bearer token"}) as ws,
    ):
        first = await ws.receive_json()
    assert first["type"] == "session.created"


@asynccontextmanager
async def raw_client(emulator: VoiceLiveEmulator) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    url = f"{emulator.endpoint}{REALTIME_PATH}?api-version={API_VERSION}"
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            ws = await http.ws_connect(url, headers={"api-key": API_KEY})
        try:
            yield ws
        finally:
            async with asyncio.timeout(NETWORK_TIMEOUT_S):
                await ws.close()


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        event: dict[str, Any] = await ws.receive_json()
    return event


BAD_CLIENT_FRAMES = [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "not an object"),
    ('{"type": "response.explode"}', "unknown ClientEvent type"),
    (
        '{"type": "conversation.item.truncate", "item_id": "i", "content_index": 0,'
        ' "audio_end_ms": "12"}',
        "audio_end_ms: expected int, got str",
    ),
]


async def test_bad_client_frames_get_errors_and_the_connection_survives(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with raw_client(emulator) as ws:
        assert (await receive_json(ws))["type"] == "session.created"
        for frame, problem in BAD_CLIENT_FRAMES:
            await ws.send_str(frame)
            error = await receive_json(ws)
            assert error["type"] == "error"
            assert problem in error["error"]["message"]
        await ws.send_str('{"type": "input_audio_buffer.clear"}')
        assert (await receive_json(ws))["type"] == "input_audio_buffer.cleared"
    violations = emulator.sessions[0].violations
    assert len(violations) == len(BAD_CLIENT_FRAMES)
    for violation, (_, problem) in zip(violations, BAD_CLIENT_FRAMES, strict=True):
        assert violation.startswith("received ")
        assert problem in violation


async def test_every_event_the_emulator_sends_validates(make_emulator: EmulatorFactory) -> None:
    """Independent of the emulator's own check: validate each raw frame the client receives."""
    emulator = await make_emulator(speed=50.0)
    frames: list[dict[str, Any]] = []
    async with raw_client(emulator) as ws:
        frames.append(await receive_json(ws))
        session = {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"}
        await ws.send_json({"type": "session.update", "session": session})
        audio = ulaw_tone(0.4) + ULAW_SILENCE * 5000
        for chunk in twenty_ms_chunks(audio, bytes_per_ms=8):
            await ws.send_json(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
            )
        while not frames or frames[-1]["type"] != "response.done":
            frames.append(await receive_json(ws))
        await ws.send_json({"type": "response.create"})
        await ws.send_json({"type": "response.cancel"})
        for item in (
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        ):
            await ws.send_json({"type": "conversation.item.create", "item": item})
        while frames[-1].get("item", {}).get("type") != "function_call_output":
            frames.append(await receive_json(ws))
    types = {frame["type"] for frame in frames}
    assert {"session.updated", "input_audio_buffer.speech_stopped", "response.done"} <= types
    for frame in frames:
        # Only the shapes the API reference documents and SDK 1.3.1 refuses (listed, and
        # checked against the documented examples in tests/conformance/test_voicelive.py).
        violations = validate_server_event(frame)
        undocumented = [v for v in violations if v.partition(": ")[2] not in DOCUMENTED_BEYOND_SDK]
        assert undocumented == [], frame["type"]
    assert len({frame["event_id"] for frame in frames}) == len(frames)
    assert emulator.violations == []


async def test_send_raw_injects_a_malformed_frame_into_a_live_connection(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        session = await asyncio.wait_for(emulator.wait_for_session(0), NETWORK_TIMEOUT_S)
        await session.send_raw("{not json")
        with pytest.raises(VoiceLiveConnectionError, match="Failed to parse message"):
            await client.next()
        await client.conn.response.create()  # the connection is still usable
        assert isinstance(await client.next(), ServerEventResponseCreated)
    assert [e.type for e in session.sent("(raw)")] == ["(raw)"]


async def test_stop_closes_live_connections(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(speed=1.0)
    async with session_client(emulator) as client:
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await emulator.stop()
            await emulator.wait_all_closed()
        record = emulator.sessions[0]
        assert record.is_closed
        assert record.closed_at is not None
        with pytest.raises(RuntimeError):
            await record.send_raw("{}")


async def test_serve_emulator_runs_until_cancelled() -> None:
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve_emulator("127.0.0.1", 0, AGENT_TURNS, api_key=API_KEY, on_started=started.set_result)
    )
    try:
        endpoint = await asyncio.wait_for(started, NETWORK_TIMEOUT_S)
        url = f"{endpoint}{REALTIME_PATH}?api-version={API_VERSION}"
        async with (
            aiohttp.ClientSession() as http,
            asyncio.timeout(NETWORK_TIMEOUT_S),
            http.ws_connect(url, headers={"api-key": API_KEY}) as ws,
        ):
            assert (await ws.receive_json())["type"] == "session.created"
            server.cancel()
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == aiohttp.WSCloseCode.GOING_AWAY
    finally:
        server.cancel()
        await asyncio.wait([server], timeout=NETWORK_TIMEOUT_S)
    assert server.cancelled()


async def test_event_log_records_both_directions(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator()
    async with session_client(emulator) as client:
        await client.conn.response.create()
        await client.expect(ServerEventResponseDone)
    record = emulator.sessions[0]
    assert [e.type for e in record.received()] == ["response.create"]
    done = record.sent("response.done")[0]
    assert done.fields["response.status"] == "completed"
    deltas = record.sent("response.audio.delta")
    assert sum(int(str(d.fields["audio_bytes"])) for d in deltas) == 48000
    times = [e.at for e in record.events]
    assert times == sorted(times)


async def test_session_records_the_client_request_id_of_the_upgrade(
    make_emulator: EmulatorFactory,
) -> None:
    emulator = await make_emulator()
    async with session_client(emulator, headers={"x-ms-client-request-id": "call-123"}):
        pass
    async with session_client(emulator):
        pass
    tagged, untagged = emulator.sessions
    assert tagged.client_request_id == "call-123"
    assert untagged.client_request_id is None
    assert emulator.session_for("call-123") is tagged
    assert emulator.session_for("call-456") is None


async def test_only_the_latest_closed_sessions_are_kept(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(max_sessions_kept=1)
    async with session_client(emulator, headers={CLIENT_REQUEST_ID_HEADER: "open"}):
        for call in range(3):
            headers = {CLIENT_REQUEST_ID_HEADER: f"call-{call}"}
            async with session_client(emulator, headers=headers):
                pass
            await asyncio.wait_for(emulator.sessions[-1].wait_closed(), NETWORK_TIMEOUT_S)
        assert [(s.index, s.client_request_id) for s in emulator.sessions] == [
            (0, "open"),
            (3, "call-2"),
        ]
    assert emulator.session_for("call-0") is None
    with pytest.raises(LookupError, match="dropped"):
        await emulator.wait_for_session(1)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def test_vad_depends_on_the_audio_timeline_not_on_how_it_is_sliced() -> None:
    pcm = np.frombuffer(
        bytes(2 * 4000) + tone_pcm16(300, 1.0, 8000) + bytes(2 * 8000), dtype="<i2"
    ).astype(np.int16)

    def run(slice_samples: int) -> list[SpeechOnset | SpeechEnd]:
        vad = EnergyVad(sample_rate=8000, threshold_rms=400, min_speech_ms=100, silence_ms=500)
        events: list[SpeechOnset | SpeechEnd] = []
        for start in range(0, pcm.size, slice_samples):
            events += vad.feed(pcm[start : start + slice_samples])
        return events

    expected = [SpeechOnset(onset_ms=500), SpeechEnd(end_ms=2000, speech_ms=1000)]
    assert run(160) == expected
    assert run(37) == expected
    assert run(pcm.size) == expected


def test_vad_ignores_blips_shorter_than_min_speech() -> None:
    blip = tone_pcm16(300, 0.06, 8000)
    pcm = np.frombuffer(bytes(1600) + blip + bytes(16000), dtype="<i2").astype(np.int16)
    vad = EnergyVad(sample_rate=8000, threshold_rms=400, min_speech_ms=100, silence_ms=500)
    assert vad.feed(pcm) == []


def test_load_turns_reads_wav_and_sibling_transcript(tmp_path: Path) -> None:
    pcm = tone_pcm16(440, 0.2, 16000)
    with_text, without_text = tmp_path / "greeting.wav", tmp_path / "other.wav"
    for path in (with_text, without_text):
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(pcm)
    (tmp_path / "greeting.txt").write_text("Hello!\n", encoding="utf-8")
    turns = load_turns([with_text, without_text])
    assert turns[0] == AgentTurn(pcm, 16000, "Hello!")
    assert turns[1].transcript == ""
    assert turns[0].duration_ms == pytest.approx(200)


def test_agent_turn_rejects_odd_pcm() -> None:
    with pytest.raises(ValueError, match="PCM16"):
        AgentTurn(b"\x00", 16000, "")


@pytest.mark.parametrize(
    "name", ["pcm16", "pcm16_16000hz", "pcm16_8000hz", "g711_ulaw", "g711_alaw"]
)
def test_turn_audio_is_converted_to_each_output_format(name: str) -> None:
    fmt = output_audio_format(name)
    audio = encode_output_audio(AGENT_TURNS[0], fmt)
    assert len(audio) == fmt.bytes_per_ms * 1000  # the 1 s greeting
