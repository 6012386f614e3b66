"""The caller's audio written to Voice Live past the SDK's ``send`` (adapters/voice_appends.py):
the same event the reference shows and the SDK would write, through the SDK's own socket."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError

from callbridge.adapters.voice_appends import AppendWriter, append_message
from callbridge.adapters.voice_live import open_voice_live
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings
from callbridge.sim.demo_conversation import demo_turns
from callbridge.sim.loopback import EMULATOR_KEY, LOOPBACK
from callbridge.sim.voicelive import VoiceLiveEmulator
from tests.test_voicelive_emulator_faults import eventually

REFERENCE = (
    Path(__file__).parent / "conformance/voicelive/client_input_audio_buffer.append.reference.json"
)


def test_the_message_is_the_references_event() -> None:
    reference = json.loads(REFERENCE.read_text())
    audio = base64.b64decode(reference["audio"])
    assert json.loads(append_message(audio)) == reference


@pytest.mark.parametrize("audio", [b"", b"\x00", b"\xff" * 160, bytes(range(256)) * 3])
def test_any_audio_round_trips_as_json(audio: bytes) -> None:
    event = json.loads(append_message(audio))
    assert event == {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}


async def test_appends_reach_voice_live_through_the_sdks_socket() -> None:
    emulator = VoiceLiveEmulator(turns=demo_turns(), api_key=EMULATOR_KEY)
    endpoint = await emulator.start(LOOPBACK, 0)
    settings = VoiceLiveSettings(endpoint=endpoint, model="gpt-realtime", api_key=EMULATOR_KEY)
    frames = [bytes([n]) * 160 for n in range(1, 4)]
    try:
        async with open_voice_live(settings, AgentProfile(), correlation_id="appends-1") as link:
            writer = AppendWriter(link)
            # The SDK (pinned) keeps its socket where the writer looks: if this fails, the
            # SDK moved it and appends went the slow way.
            assert writer.direct
            for frame in frames:
                await writer.send(append_message(frame))
            session = emulator.sessions_for("appends-1")[0]
            await eventually(lambda: len(session.appends) == len(frames))
            assert [append.audio for append in session.appends] == frames
            assert session.violations == []
        with pytest.raises(VoiceLiveConnectionError):
            await writer.send(append_message(frames[0]))
    finally:
        await emulator.stop()


async def test_a_connection_without_the_socket_is_written_through_send() -> None:
    sent: list[Any] = []

    class Connection:  # the SDK's boundary only: ``send`` as 1.3.1 has it
        async def send(self, event: Any) -> None:
            sent.append(event)

    writer = AppendWriter(Connection())  # type: ignore[arg-type]
    assert not writer.direct
    await writer.send(append_message(b"\x01\x02"))
    assert sent == [{"type": "input_audio_buffer.append", "audio": "AQI="}]
