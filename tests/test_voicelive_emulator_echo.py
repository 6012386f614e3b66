"""Echo cancellation in the Voice Live emulator: the session setting as the API reference
2026-07-15 shapes it, and the stand-in canceller that lets the VAD hear the caller, not the
agent's echo, when the client sends the reference. Driven through the real SDK on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    AudioEchoCancellation,
    ServerEventError,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventSessionUpdated,
)
from azure.core.credentials import AzureKeyCredential
from numpy.typing import NDArray

from callbridge.sim.voicelive import API_VERSION, VoiceLiveEmulator
from callbridge.sim.voicelive.echo import EchoCanceller
from callbridge.sim.voicelive.records import EchoCancellation
from tests.test_voicelive_emulator import (
    AGENT_TURNS,
    API_KEY,
    past_session_created,
)
from tests.test_voicelive_emulator_turns import until_probe
from tests.voicelive_client import NETWORK_TIMEOUT_S, Client

RATE = 16000
FLAG = {"features": "client_ec_reference:true"}
CLIENT_REFERENCE = AudioEchoCancellation(reference_source="client", channels=2)
ECHO_LAG_MS = 180
ECHO_GAIN = 0.6
CALLER_ONSET_MS = 1500

Signal = NDArray[np.float64]


@pytest.fixture
async def emulator() -> AsyncIterator[VoiceLiveEmulator]:
    emulator = VoiceLiveEmulator(turns=AGENT_TURNS, api_key=API_KEY, response_delay_ms=20)
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.start()
    yield emulator
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await emulator.stop()
        await emulator.wait_all_closed()


@asynccontextmanager
async def client_for(
    emulator: VoiceLiveEmulator, query: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """An SDK client with ``query`` on its URL, once ``session.created`` has arrived."""
    manager = connect(
        endpoint=emulator.endpoint,
        credential=AzureKeyCredential(API_KEY),
        model="gpt-realtime",
        api_version=API_VERSION,
        query=query,
    )
    async with past_session_created(manager) as client:
        yield client


def pcm16_session(echo: object, **more: Any) -> dict[str, Any]:
    return {
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": RATE,
        "turn_detection": {"type": "azure_semantic_vad", "create_response": False},
        "input_audio_echo_cancellation": echo,
        **more,
    }


async def update(client: Client, session: dict[str, Any]) -> ServerEventSessionUpdated:
    await client.conn.session.update(session=session)
    return await client.expect(ServerEventSessionUpdated)


async def refusal(client: Client, session: dict[str, Any]) -> ServerEventError:
    await client.conn.session.update(session=session)
    return await client.expect(ServerEventError)


async def append(client: Client, pcm: bytes, chunk_ms: int = 20) -> None:
    step = RATE * chunk_ms // 1000 * 4  # stereo PCM16: 4 bytes a frame
    for offset in range(0, len(pcm), step):
        chunk = base64.b64encode(pcm[offset : offset + step]).decode()
        await client.conn.input_audio_buffer.append(audio=chunk)


# --------------------------------------------------------------------------------------------
# Audio: the agent (noise standing for a voice), its echo, and the caller
# --------------------------------------------------------------------------------------------


def agent_voice(seconds: float, start_s: float = 0.4) -> Signal:
    """What the phone plays: silence, then noise at about -20 dBFS (broadband like speech)."""
    samples = np.random.default_rng(7).normal(0.0, 3000.0, round(seconds * RATE))
    samples[: round(start_s * RATE)] = 0.0
    return samples


def delayed(signal: Signal, lag_ms: float, gain: float) -> Signal:
    lag = round(lag_ms * RATE / 1000)
    return gain * np.concatenate((np.zeros(lag), signal[: signal.size - lag]))


def caller(seconds: float, onset_ms: int = CALLER_ONSET_MS, voiced_ms: int = 800) -> Signal:
    t = np.arange(round(seconds * RATE)) / RATE
    voice = 8000.0 * np.sin(2 * np.pi * 300 * t)
    voiced = (t >= onset_ms / 1000) & (t < (onset_ms + voiced_ms) / 1000)
    return np.where(voiced, voice, 0.0)


def pcm(signal: Signal) -> NDArray[np.int16]:
    return np.clip(np.rint(signal), -32768, 32767).astype("<i2")


def stereo(microphone: Signal, reference: Signal) -> bytes:
    return np.column_stack((pcm(microphone), pcm(reference))).ravel().tobytes()


# --------------------------------------------------------------------------------------------
# The setting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("echo", "query", "code", "param"),
    [
        (
            AudioEchoCancellation(reference_source="server", channels=2),
            FLAG,
            "invalid_ec_channels_requires_client",
            "channels",
        ),
        (
            AudioEchoCancellation(reference_source="client", channels=1),
            FLAG,
            "invalid_ec_reference_channels",
            "channels",
        ),
        (CLIENT_REFERENCE, None, "invalid_value", "reference_source"),  # no feature flag
    ],
)
async def test_the_reference_refuses_these_settings(
    emulator: VoiceLiveEmulator,
    echo: AudioEchoCancellation,
    query: dict[str, str] | None,
    code: str,
    param: str,
) -> None:
    async with client_for(emulator, query) as client:
        error = await refusal(client, pcm16_session(echo))
    assert (error.error.code, error.error.param) == (
        code,
        f"session.input_audio_echo_cancellation.{param}",
    )
    assert emulator.sessions[0].echo_cancellation is None
    assert emulator.violations == []


async def test_a_client_reference_needs_pcm16_input(emulator: VoiceLiveEmulator) -> None:
    async with client_for(emulator, FLAG) as client:
        error = await refusal(
            client,
            pcm16_session(
                CLIENT_REFERENCE, input_audio_format="g711_ulaw", input_audio_sampling_rate=8000
            ),
        )
    assert error.error.param == "session.input_audio_echo_cancellation.channels"


async def test_the_session_records_the_echo_cancellation_it_was_given(
    emulator: VoiceLiveEmulator,
) -> None:
    async with client_for(emulator, FLAG) as client:
        server = await update(client, pcm16_session(AudioEchoCancellation()))
        recorded = [emulator.sessions[0].echo_cancellation]
        updated = await update(client, pcm16_session(CLIENT_REFERENCE))
        recorded.append(emulator.sessions[0].echo_cancellation)
    assert server["session"]["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation"
    }
    assert updated["session"]["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    }
    assert recorded == [EchoCancellation("server", 1), EchoCancellation("client", 2)]
    assert "client_ec_reference" in emulator.sessions[0].features
    assert emulator.violations == []


async def test_the_channel_layout_is_fixed_once_audio_flows(emulator: VoiceLiveEmulator) -> None:
    async with client_for(emulator, FLAG) as client:
        await update(client, pcm16_session(CLIENT_REFERENCE))
        await append(client, bytes(4 * RATE // 10))
        error = await refusal(client, {"input_audio_echo_cancellation": None})
        await client.conn.input_audio_buffer.append(audio=base64.b64encode(bytes(6)).decode())
        odd = await client.expect(ServerEventError)
    assert error.error.message == "channels and reference_source cannot change mid-session"
    assert odd.error.param == "audio"  # "each chunk must have a byte length divisible by 4"
    session = emulator.sessions[0]
    assert session.echo_cancellation == EchoCancellation("client", 2)
    assert sum(append.ms for append in session.appends) == pytest.approx(100)


# --------------------------------------------------------------------------------------------
# The canceller
# --------------------------------------------------------------------------------------------


async def test_with_the_clients_reference_the_echo_is_no_speech(
    emulator: VoiceLiveEmulator,
) -> None:
    reference = agent_voice(2.5)
    async with client_for(emulator, FLAG) as client:
        await update(client, pcm16_session(CLIENT_REFERENCE))
        await append(client, stereo(delayed(reference, ECHO_LAG_MS, ECHO_GAIN), reference))
        events = await until_probe(client)
    assert "input_audio_buffer.speech_started" not in [e.type for e in events]
    path = emulator.sessions[0].echo_path
    assert path is not None
    assert path.lag_ms == ECHO_LAG_MS
    assert path.gain == pytest.approx(ECHO_GAIN, abs=0.01)


async def test_without_a_reference_the_same_echo_is_speech(emulator: VoiceLiveEmulator) -> None:
    """The control: mono input carrying that echo sets the VAD off."""
    echo = delayed(agent_voice(2.5), ECHO_LAG_MS, ECHO_GAIN)
    async with client_for(emulator) as client:
        await update(client, pcm16_session(None))
        audio = pcm(echo).tobytes()
        for offset in range(0, len(audio), 640):
            chunk = base64.b64encode(audio[offset : offset + 640]).decode()
            await client.conn.input_audio_buffer.append(audio=chunk)
        await client.expect(ServerEventInputAudioBufferSpeechStarted)


async def test_the_caller_speaking_over_the_echo_is_heard_from_their_first_word(
    emulator: VoiceLiveEmulator,
) -> None:
    reference = agent_voice(3.0)
    microphone = delayed(reference, ECHO_LAG_MS, ECHO_GAIN) + caller(3.0)
    async with client_for(emulator, FLAG) as client:
        await update(client, pcm16_session(CLIENT_REFERENCE))
        await append(client, stereo(microphone, reference))
        started = await client.expect(ServerEventInputAudioBufferSpeechStarted)
    assert started.audio_start_ms == CALLER_ONSET_MS - 420  # azure_semantic_vad's padding
    assert [s.onset_ms for s in emulator.sessions[0].speech] == [CALLER_ONSET_MS]
    assert emulator.violations == []


def _run(canceller: EchoCanceller, audio: bytes, slice_bytes: int) -> bytes:
    out = [
        canceller.process(np.frombuffer(audio[i : i + slice_bytes], dtype="<i2").astype(np.int16))
        for i in range(0, len(audio), slice_bytes)
    ]
    return b"".join(part.tobytes() for part in out)


def test_the_canceller_depends_on_the_audio_not_on_its_slicing() -> None:
    reference = agent_voice(1.0)
    audio = stereo(delayed(reference, ECHO_LAG_MS, ECHO_GAIN), reference)
    whole = _run(EchoCanceller(RATE), audio, len(audio))
    assert _run(EchoCanceller(RATE), audio, 4 * 123) == whole
    assert len(whole) == len(audio) // 2  # the microphone channel, every whole frame


@pytest.mark.parametrize(("lag_ms", "removed"), [(450, True), (650, False)])
def test_the_canceller_looks_for_the_echo_up_to_500_ms_back(lag_ms: int, removed: bool) -> None:
    reference = agent_voice(2.0)
    echo = delayed(reference, lag_ms, ECHO_GAIN)
    heard = np.frombuffer(_run(EchoCanceller(RATE), stereo(echo, reference), 640), dtype="<i2")
    tail = heard[-RATE // 2 :].astype(np.float64)  # long after the path was found
    residual = np.sqrt(np.mean(tail * tail)) / np.sqrt(np.mean(echo[-RATE // 2 :] ** 2))
    assert (residual < 0.05) == removed
