"""Turn-taking in the Voice Live emulator: what counts as speech, what a committed turn brings
(its transcription), what the service does about a response in progress, and the ways a client
can decide that a short utterance was not a turn. Driven through the real SDK on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.ai.voicelive.models import (
    ServerEvent,
    ServerEventConversationItemCreated,
    ServerEventConversationItemDeleted,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemInputAudioTranscriptionDelta,
    ServerEventConversationItemInputAudioTranscriptionFailed,
    ServerEventConversationItemRetrieved,
    ServerEventError,
    ServerEventInputAudioBufferCleared,
    ServerEventInputAudioBufferCommitted,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventInputAudioBufferSpeechStopped,
    ServerEventResponseAudioDelta,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventSessionUpdated,
)

from callbridge.sim.voicelive import VoiceLiveEmulator
from tests.conformance import voicelive_support as vl
from tests.test_voicelive_emulator import (
    ULAW_SILENCE,
    append_ulaw,
    session_client,
    start_emulator,
    ulaw_tone,
)
from tests.voicelive_client import NETWORK_TIMEOUT_S, Client, first, of_class

MM_HMM = "mm-hmm"
REQUEST = "Actually, cancel my order please."
WHISPER = {"model": "whisper-1"}
Completed = ServerEventConversationItemInputAudioTranscriptionCompleted
Delta = ServerEventConversationItemInputAudioTranscriptionDelta


@pytest.fixture
async def emulators() -> AsyncIterator[list[VoiceLiveEmulator]]:
    """Emulators a test started; each is stopped at the end."""
    started: list[VoiceLiveEmulator] = []
    yield started
    for emulator in started:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await emulator.stop()
            await emulator.wait_all_closed()


async def start(emulators: list[VoiceLiveEmulator], **overrides: Any) -> VoiceLiveEmulator:
    """An emulator whose caller says a backchannel, then a request (unless overridden)."""
    return await start_emulator(
        emulators, **({"caller_transcripts": [MM_HMM, REQUEST]} | overrides)
    )


async def configure(client: Client, turn_detection: dict[str, Any], **session: Any) -> None:
    """A G.711 session with this turn detection (and input transcription unless overridden)."""
    await client.conn.session.update(
        session={
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "input_audio_transcription": WHISPER,
            "turn_detection": turn_detection,
            **session,
        }
    )
    await client.expect(ServerEventSessionUpdated)


def spoken(ms: int, lead_ms: int = 500, tail_ms: int = 700) -> bytes:
    """``ms`` of voice between ``lead_ms`` and ``tail_ms`` of silence, as G.711 μ-law."""
    return ULAW_SILENCE * (8 * lead_ms) + ulaw_tone(ms / 1000) + ULAW_SILENCE * (8 * tail_ms)


async def until_probe(client: Client) -> list[ServerEvent]:
    """The events up to the answer to a retrieve of no item, sent now: the emulator handles
    appended audio as it reads it, so whatever that audio caused comes before the answer."""
    await client.conn.conversation.item.retrieve(item_id="probe", event_id="probe")
    events = await client.until(ServerEventError)
    assert events[-1]["error"]["event_id"] == "probe"
    return events


def types(events: list[ServerEvent]) -> list[str]:
    return [str(event.type) for event in events]


# --------------------------------------------------------------------------------------------
# What counts as speech
# --------------------------------------------------------------------------------------------

TURN_ORDER = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.created",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
]


@pytest.mark.parametrize(
    ("vad", "prefix_ms", "voiced_ms"),
    [("server_vad", 400, 240), ("azure_semantic_vad", 420, 160), ("azure_semantic_vad", 420, 300)],
)
async def test_a_short_utterance_is_a_turn_of_its_own(
    emulators: list[VoiceLiveEmulator], vad: str, prefix_ms: int, voiced_ms: int
) -> None:
    """A "mm-hmm" past the minimum speech duration: its own speech_started, speech_stopped
    ``silence_duration_ms`` after it on the audio timeline, commit, item and transcription, in
    the documented order, all naming one item."""
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await configure(client, {"type": vad, "create_response": False})
        await append_ulaw(client, spoken(voiced_ms))
        events = await client.until(Completed)
    assert types(events) == TURN_ORDER  # "mm-hmm" is one word: one delta
    started = first(events, ServerEventInputAudioBufferSpeechStarted)
    stopped = first(events, ServerEventInputAudioBufferSpeechStopped)
    committed = first(events, ServerEventInputAudioBufferCommitted)
    created = first(events, ServerEventConversationItemCreated)
    completed = first(events, Completed)
    assert started.audio_start_ms == 500 - prefix_ms
    assert stopped.audio_end_ms == 500 + voiced_ms + 500
    item_ids = {e["item_id"] for e in (started, stopped, committed, completed)}
    assert item_ids == {created["item"]["id"]}
    assert (first(events, Delta).delta, completed.transcript) == (MM_HMM, MM_HMM)
    assert emulator.sessions[0].responses == []
    assert emulator.violations == []


@pytest.mark.parametrize(
    ("turn_detection", "voiced_ms"),
    [
        ({"type": "server_vad"}, 160),  # under server_vad's 200 ms
        ({"type": "azure_semantic_vad"}, 60),  # under azure_semantic_vad's 80 ms
        ({"type": "server_vad", "speech_duration_ms": 300}, 240),  # under the client's own
    ],
)
async def test_a_burst_under_the_minimum_speech_duration_is_no_speech(
    emulators: list[VoiceLiveEmulator], turn_detection: dict[str, Any], voiced_ms: int
) -> None:
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await configure(client, turn_detection)
        await append_ulaw(client, spoken(voiced_ms))
        events = await until_probe(client)
    assert "input_audio_buffer.speech_started" not in types(events)
    session = emulator.sessions[0]
    assert (session.speech, session.caller_turns) == ([], 0)
    assert emulator.violations == []


async def test_server_vad_takes_the_documented_speech_duration_without_echoing_it(
    emulators: list[VoiceLiveEmulator],
) -> None:
    """RealtimeServerVAD documents speech_duration_ms; SDK 1.3.1's ServerVad lacks it. The
    emulator applies it (160 ms now counts) and leaves it out of session.updated."""
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await client.conn.session.update(
            session={
                "input_audio_format": "g711_ulaw",
                "turn_detection": {"type": "server_vad", "speech_duration_ms": 100},
            }
        )
        updated = await client.expect(ServerEventSessionUpdated)
        await append_ulaw(client, spoken(160))
        await client.expect(ServerEventInputAudioBufferCommitted)
    assert "speech_duration_ms" not in updated["session"]["turn_detection"]
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# Transcription of each turn
# --------------------------------------------------------------------------------------------


async def test_each_turn_gets_its_own_transcription_after_the_delay(
    emulators: list[VoiceLiveEmulator],
) -> None:
    emulator = await start(emulators, transcription_delay_ms=120)
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad", "create_response": False})
        await append_ulaw(client, spoken(240) + spoken(1200, lead_ms=0))
        events = await client.until(Completed)
        events += await client.until(Completed)
    committed = of_class(events, ServerEventInputAudioBufferCommitted)
    completed = of_class(events, Completed)
    assert [c.item_id for c in completed] == [c.item_id for c in committed]
    assert [c.transcript for c in completed] == [MM_HMM, REQUEST]
    for item in committed:
        deltas = [str(d.delta) for d in of_class(events, Delta) if d.item_id == item.item_id]
        transcript = next(c.transcript for c in completed if c.item_id == item.item_id)
        assert "".join(deltas) == transcript
    # Each transcription completes its own delay after its own commit left.
    session = emulator.sessions[0]
    commits = {e.fields["item_id"]: e.at for e in session.sent("input_audio_buffer.committed")}
    transcribed = session.sent("conversation.item.input_audio_transcription.completed")
    for event in transcribed:
        assert event.at - commits[event.fields["item_id"]] >= 0.120 - 0.002
    assert [s.transcript for s in session.speech] == [MM_HMM, REQUEST]
    assert emulator.violations == []


async def test_the_item_carries_its_transcript_once_transcribed(
    emulators: list[VoiceLiveEmulator],
) -> None:
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad", "create_response": False})
        await append_ulaw(client, spoken(240))
        completed = await client.expect(Completed)
        await client.conn.conversation.item.retrieve(item_id=completed.item_id)
        retrieved = await client.expect(ServerEventConversationItemRetrieved)
    assert retrieved["item"]["content"] == [
        {"type": "input_audio", "audio": None, "transcript": MM_HMM}
    ]


async def test_no_transcription_unless_the_session_asks_for_it(
    emulators: list[VoiceLiveEmulator],
) -> None:
    emulator = await start(emulators, transcription_delay_ms=0)
    async with session_client(emulator) as client:
        await configure(client, {"type": "server_vad"}, input_audio_transcription=None)
        await append_ulaw(client, spoken(400))
        events = await client.until(ServerEventResponseDone)  # well after a 0 ms transcription
    assert not [t for t in types(events) if "input_audio_transcription" in t]
    assert emulator.sessions[0].speech[0].transcript == MM_HMM  # what the script says it said


async def test_a_failed_transcription_has_the_documented_shape(
    emulators: list[VoiceLiveEmulator],
) -> None:
    emulator = await start(emulators, caller_transcripts=[None])
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad", "create_response": False})
        await append_ulaw(client, spoken(240))
        events = await client.until(ServerEventConversationItemInputAudioTranscriptionFailed)
    failed = events[-1]
    assert failed["item_id"] == first(events, ServerEventInputAudioBufferCommitted).item_id
    assert "conversation.item.input_audio_transcription.delta" not in types(events)
    documented = vl.load("server_conversation.item.input_audio_transcription.failed.reference.json")
    sent = failed.as_dict()
    differences = {(d.path, d.problem) for d in vl.differences(documented, sent)}
    # REF's failed error properties list type (absent from its example); param "if any".
    assert differences == {("error.param", "documented string, sent null")}
    assert vl.extra_paths([documented], sent) == {"event_id", "error.type"}
    assert emulator.sessions[0].speech[0].transcript is None
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# A response in progress when the caller speaks
# --------------------------------------------------------------------------------------------


async def test_without_interrupt_the_response_goes_on_and_the_backchannel_waits(
    emulators: list[VoiceLiveEmulator],
) -> None:
    """interrupt_response and create_response false: a "mm-hmm" over the agent is committed and
    transcribed, the response completes, and nothing answers the "mm-hmm" until asked."""
    emulator = await start(emulators, speed=1.0)
    async with session_client(emulator) as client:
        td = {"type": "azure_semantic_vad", "interrupt_response": False, "create_response": False}
        await configure(client, td)
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        await append_ulaw(client, spoken(240, lead_ms=0))
        events = await client.until(ServerEventResponseDone)
        events += await until_probe(client)
    done = first(events, ServerEventResponseDone)
    assert done.response.status == "completed"
    assert types(events).count("response.created") == 0
    assert {"input_audio_buffer.speech_started", "input_audio_buffer.committed"} <= set(
        types(events)
    )
    assert [r.trigger for r in emulator.sessions[0].responses] == ["response.create"]
    assert emulator.violations == []


async def test_a_turn_committed_during_a_response_starts_none_then_the_next_turn_does(
    emulators: list[VoiceLiveEmulator],
) -> None:
    """interrupt_response false, create_response true: OpenAI's ServerVad says creating a
    response "may fail ... if the model is already responding"; the emulator starts none, and
    says so. A turn after the response has finished is answered as usual."""
    emulator = await start(emulators, speed=1.0)
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad", "interrupt_response": False})
        await client.conn.response.create()
        await client.expect(ServerEventResponseAudioDelta)
        await append_ulaw(client, spoken(240, lead_ms=0))
        committed = await client.expect(ServerEventInputAudioBufferCommitted)
        await client.expect(ServerEventResponseDone)
        await append_ulaw(client, spoken(1000))
        answered = await client.expect(ServerEventResponseCreated)
        await client.expect(ServerEventResponseDone)
    session = emulator.sessions[0]
    assert [r.trigger for r in session.responses] == ["response.create", "server_vad"]
    assert session.responses[1].response_id == answered.response.id
    assert len(session.notes) == 1
    assert session.notes[0].startswith(f"{committed.item_id}: committed while")
    assert emulator.violations == []


# --------------------------------------------------------------------------------------------
# Deciding it was not a turn: delete the item, clear the buffer, or just never ask
# --------------------------------------------------------------------------------------------


async def test_a_deleted_backchannel_is_not_in_what_the_next_response_answers(
    emulators: list[VoiceLiveEmulator],
) -> None:
    emulator = await start(emulators, transcription_delay_ms=50)
    async with session_client(emulator) as client:
        td = {"type": "azure_semantic_vad", "interrupt_response": False, "create_response": False}
        await configure(client, td)
        await append_ulaw(client, spoken(240))
        committed = await client.expect(ServerEventInputAudioBufferCommitted)
        await client.conn.conversation.item.delete(item_id=committed.item_id)
        deleted = await client.expect(ServerEventConversationItemDeleted)
        # Its transcription was under way: it still comes (not published; see transcription).
        completed = await client.expect(Completed)
        await client.conn.conversation.item.delete(item_id=committed.item_id, event_id="again")
        gone = await client.expect(ServerEventError)
        await client.conn.response.create()
        await client.expect(ServerEventResponseDone)
    assert deleted.item_id == completed.item_id == committed.item_id
    assert (gone.error.code, gone.error.param, gone.error.event_id) == (
        "item_not_found",
        "item_id",
        "again",
    )
    response = emulator.sessions[0].responses[0]
    assert committed.item_id not in response.context_item_ids
    assert emulator.violations == []


async def test_clearing_the_buffer_during_speech_drops_that_speech(
    emulators: list[VoiceLiveEmulator],
) -> None:
    """Cleared mid-speech: no speech_stopped and no commit for it; speech that goes on is heard
    anew, as a turn with a new item id."""
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad", "create_response": False})
        await append_ulaw(client, ULAW_SILENCE * 4000 + ulaw_tone(0.2))
        started = await client.expect(ServerEventInputAudioBufferSpeechStarted)
        await client.conn.input_audio_buffer.clear()
        await client.expect(ServerEventInputAudioBufferCleared)
        await append_ulaw(client, ULAW_SILENCE * 8000)
        quiet = await until_probe(client)
        await append_ulaw(client, spoken(300))
        events = await client.until(ServerEventInputAudioBufferCommitted)
    assert not {"input_audio_buffer.speech_stopped", "input_audio_buffer.committed"} & set(
        types(quiet)
    )
    again = first(events, ServerEventInputAudioBufferSpeechStarted)
    assert again.item_id != started.item_id
    assert events[-1]["item_id"] == again.item_id
    session = emulator.sessions[0]
    assert session.caller_turns == 1
    assert session.speech[0].audio_end_ms is None
    assert emulator.violations == []


async def test_a_manual_commit_during_speech_takes_its_item_and_creates_no_response(
    emulators: list[VoiceLiveEmulator],
) -> None:
    """REF: the item id is in speech_stopped "unless the client manually commits the audio
    buffer during VAD activation"; "Committing the input audio buffer doesn't create a
    response" (create_response true here)."""
    emulator = await start(emulators)
    async with session_client(emulator) as client:
        await configure(client, {"type": "azure_semantic_vad"})
        await append_ulaw(client, ULAW_SILENCE * 4000 + ulaw_tone(0.2))
        started = await client.expect(ServerEventInputAudioBufferSpeechStarted)
        await client.conn.input_audio_buffer.commit()
        committed = await client.expect(ServerEventInputAudioBufferCommitted)
        await append_ulaw(client, ULAW_SILENCE * 8000)
        events = await until_probe(client)
    assert committed.item_id == started.item_id
    assert not {"input_audio_buffer.speech_stopped", "response.created"} & set(types(events))
    assert emulator.sessions[0].responses == []
    assert emulator.violations == []
