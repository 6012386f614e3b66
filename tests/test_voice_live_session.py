"""The session callbridge asks Voice Live for: what it carries for a model, and for an agent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callbridge.adapters.voice_live import session_request
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile, VoiceLiveAgent
from callbridge.sim.validate import validate_client_event
from callbridge.tools import END_CALL

CODEC = make_codec("g711_ulaw", 16000)


def update_of(profile: AgentProfile, transcription: str) -> dict[str, Any]:
    request = session_request(profile, CODEC, transcription, [END_CALL])
    event = {"type": "session.update", "session": json.loads(json.dumps(request.as_dict()))}
    assert validate_client_event(event) == []  # the SDK's own models accept it
    session = event["session"]
    assert isinstance(session, dict)
    return session


def test_a_model_session_carries_the_profiles_instructions_and_owns_barge_in() -> None:
    session = update_of(AgentProfile(instructions="Be brief."), "whisper-1")
    assert session["instructions"] == "Be brief."
    assert session["input_audio_transcription"] == {"model": "whisper-1"}
    assert (session["input_audio_format"], session["output_audio_format"]) == ("g711_ulaw",) * 2
    turn_detection = session["turn_detection"]
    assert turn_detection["type"] == "azure_semantic_vad"
    assert (turn_detection["interrupt_response"], turn_detection["auto_truncate"]) == (
        False,
        False,
    )


@pytest.mark.parametrize("instructions", ["Be brief.", ""])
def test_an_agent_session_carries_no_instructions(instructions: str) -> None:
    """The how-to: instructions aren't supported with a custom agent (it has its own)."""
    agent = AgentProfile(instructions=instructions, agent=VoiceLiveAgent("helper", "callcenter"))
    session = update_of(agent, "azure-speech")
    assert "instructions" not in session
    assert session["input_audio_transcription"] == {"model": "azure-speech"}
    tools = session["tools"]
    assert isinstance(tools, list)
    assert [tool["name"] for tool in tools] == ["end_call"]
