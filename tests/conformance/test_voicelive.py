"""Voice Live conformance: callbridge against the documented payloads.

The corpus (``voicelive/*.json``, sources in ``voicelive/SOURCES.md``) holds the API reference
2026-07-15's examples (REF, pinned in ``voicelive_support.REFERENCE``), the how-to's (HOWTO,
voice-live-how-to.md @ 00bb5540) and those of Microsoft's ACS accelerator sample. Here:

* the emulator's strictness is not stricter than reality: every documented example passes the
  emulator's check (``callbridge.sim.validate``) but for the rows of ``CORPUS_EXCEPTIONS``, each
  with its reason and source; the table must match exactly what fails;
* callbridge's own ``session.update`` only says what the documentation says a client may say,
  and callbridge and the emulator agree with REF's transcription-model table.

Server events as callbridge reads them are in ``test_voicelive_bridge_reads``; what the emulator
sends is checked against the same corpus in ``test_voicelive_emulator_shapes``.
"""

from __future__ import annotations

from typing import Final

import pytest

from callbridge.adapters.voice_live import session_request
from callbridge.core import session_rules
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile, VoiceLiveAgent
from callbridge.sim.validate import validate_client_event, validate_server_event
from callbridge.sim.voicelive import DOCUMENTED_BEYOND_SDK
from callbridge.sim.voicelive.protocol import transcription_models
from callbridge.tools import END_CALL
from tests.conformance import voicelive_support as vl

_LACKS = "REF documents it, SDK 1.3.1's model lacks it"
_REQUIRES = "SDK 1.3.1 requires it, the documented example omits it"
CORPUS_EXCEPTIONS: Final[dict[tuple[str, str], str]] = {
    # --- Server events: what the emulator's own check of what it sends would refuse.
    (
        "server_conversation.item.created.reference.audio_item.json",
        "conversation.item.created: item.content[0].audio: required field is null",
    ): f'{_REQUIRES} non-null: REF RealtimeInputAudioContentPart "audio | Optional"',
    (
        "server_conversation.item.retrieved.reference.json",
        "conversation.item.retrieved: item.content[0].audio: "
        "unknown field for ResponseAudioContentPart",
    ): f'{_LACKS}: REF RealtimeOutputAudioContentPart "audio | Base64-encoded audio data"',
    (
        "server_error.reference.json",
        "error: error.type: required field missing",
    ): f"{_REQUIRES}: REF's only error example lacks type, its field table lists it",
    (
        "server_rate_limits.updated.reference.json",
        "rate_limits.updated: unknown ServerEvent type",
    ): "REF documents the event; SDK 1.3.1's ServerEventType has no such member",
    (
        "server_response.audio.delta.reference.placeholder.json",
        "response.audio.delta: delta: invalid base64",
    ): 'placeholder: REF\'s second response.audio.delta section has "delta": "<delta>"',
    (
        "server_response.audio_timestamp.done.howto.json",
        "response.audio_timestamp.done: output_index: required field missing",
    ): f"{_REQUIRES}: HOWTO's example is abridged, REF's carries it",
    (
        "server_response.audio_timestamp.done.howto.json",
        "response.audio_timestamp.done: content_index: required field missing",
    ): f"{_REQUIRES}: HOWTO's example is abridged, REF's carries it",
    (
        "server_response.created.reference.json",
        "response.created: response.usage.input_token_details: required field missing",
    ): f"{_REQUIRES}: REF RealtimeUsage lists it",
    (
        "server_response.created.reference.json",
        "response.created: response.usage.output_token_details: required field missing",
    ): f"{_REQUIRES}: REF RealtimeUsage lists it",
    (
        "server_response.done.reference.json",
        "response.done: response.usage.input_token_details.image_tokens: required field missing",
    ): f"{_REQUIRES}: not in REF TokenDetails at all",
    (
        "server_response.done.reference.json",
        "response.done: response.usage.input_token_details.cached_tokens_details: "
        "required field missing",
    ): f"{_REQUIRES}: not in REF TokenDetails at all",
    (
        "server_response.function_call_arguments.done.reference.json",
        "response.function_call_arguments.done: name: required field missing",
    ): f"{_REQUIRES}, and REF's table too; the SDK's live test (tests/live/"
    'test_live_realtime_basic.py @ a7b5972d) asserts .name == "get_weather": the service sends it',
    (
        "server_session.created.reference.json",
        "session.created: session.object: unknown field for ResponseSession",
    ): f'{_LACKS}: REF RealtimeResponseSession "object | Allowed values: realtime.session"',
    # --- Client events: what the emulator refuses unless allow_unknown_client_fields is set.
    (
        "client_response.create.reference.json",
        "response.create: response.max_response_output_tokens: "
        "unknown field for ResponseCreateParams",
    ): f"{_LACKS} (REF RealtimeResponseOptions); SDK 1.3.1 calls it max_output_tokens",
    (
        "client_session.update.autotruncation.appended_text.json",
        "session.update: session.turn_detection.appended_text_after_truncation: "
        "unknown field for AzureSemanticVad",
    ): "how-to-voice-live-auto-truncation.md @ 1015da19 documents it; not in REF, nor SDK 1.3.1",
    (
        "client_session.update.howto.gpt4o_transcribe_fragment.json",
        "session.update: session.input_audio_transcription.prompt: "
        "unknown field for AudioInputTranscriptionOptions",
    ): f'{_LACKS}: REF RealtimeAudioInputTranscriptionSettings "prompt | string"',
    (
        "client_session.update.sample-acs-accelerator.json",
        "session.update: session.turn_detection.end_of_utterance_detection.threshold: "
        "unknown field for AzureSemanticDetection",
    ): "legacy EOU field of the accelerator (api-version 2025-05-01-preview); REF: threshold_level",
    (
        "client_session.update.sample-acs-accelerator.json",
        "session.update: session.turn_detection.end_of_utterance_detection.timeout: "
        "unknown field for AzureSemanticDetection",
    ): "legacy EOU field of the accelerator (api-version 2025-05-01-preview); REF: timeout_ms",
}
"""Documented examples the emulator's strict check (``callbridge.sim.validate``) refuses."""


def exceptions_of(name: str) -> set[str]:
    return {violation for file, violation in CORPUS_EXCEPTIONS if file == name}


# ============================================================================================
# 1. The emulator's check is not stricter than the documentation
# ============================================================================================


@pytest.mark.parametrize("name", vl.corpus("server_"))
def test_documented_server_event_passes_the_emulators_check(name: str) -> None:
    assert set(validate_server_event(vl.load(name))) == exceptions_of(name)


@pytest.mark.parametrize("name", vl.corpus("client_"))
def test_documented_client_event_passes_the_emulators_check(name: str) -> None:
    assert set(validate_client_event(vl.client_event(name))) == exceptions_of(name)


def test_every_exception_names_a_corpus_file() -> None:
    assert {name for name, _ in CORPUS_EXCEPTIONS} <= set(vl.corpus(""))


def test_the_emulator_option_for_unknown_client_fields_admits_every_documented_one() -> None:
    """``VoiceLiveEmulator(allow_unknown_client_fields=True)`` takes every documented client
    example: all their exceptions are fields SDK 1.3.1 does not know."""
    for name in vl.corpus("client_"):
        assert validate_client_event(vl.client_event(name), allow_unknown_fields=True) == [], name


def test_the_emulator_relaxes_its_check_only_for_documented_shapes() -> None:
    """Each shape the emulator sends against SDK 1.3.1 (``DOCUMENTED_BEYOND_SDK``) is one a
    documented example has too."""
    documented = {v.partition(": ")[2] for (name, v) in CORPUS_EXCEPTIONS if "server_" in name}
    assert documented >= DOCUMENTED_BEYOND_SDK


# ============================================================================================
# 2. callbridge's session.update says only what the documentation lets a client say
# ============================================================================================


def documented_session_paths() -> dict[str, set[str]]:
    """Paths and JSON types of every documented session.update example and REF's table."""
    found = {path: set(types) for path, types in vl.REQUEST_SESSION_TABLE.items()}
    for name in vl.corpus("client_session.update"):
        for path, types in vl.path_types(vl.client_event(name)["session"]).items():
            found.setdefault(path, set()).update(types)
    return found


SESSIONS: Final = {
    "model": (AgentProfile(instructions="Be brief.", tools=(END_CALL.name,)), "gpt-realtime"),
    "agent": (AgentProfile(agent=VoiceLiveAgent("helper", "callcenter")), None),
}


@pytest.mark.parametrize("kind", sorted(SESSIONS))
def test_callbridge_session_update_uses_only_documented_keys(kind: str) -> None:
    profile, model = SESSIONS[kind]
    transcription = session_rules.default_transcription_model(model)
    request = session_request(profile, make_codec("g711_ulaw", 16000), transcription, [END_CALL])
    session = request.as_dict()
    documented = documented_session_paths()
    for path, types in vl.path_types(session).items():
        if path.startswith(vl.OPAQUE):
            continue
        assert path in documented, f"{path} is in no documented session.update nor REF's table"
        assert all(any(vl.compatible(doc, sent) for doc in documented[path]) for sent in types), (
            f"{path}: sent {types}, documented {documented[path]}"
        )
    assert session["turn_detection"]["type"] == "azure_semantic_vad"
    assert (session["input_audio_format"], session["output_audio_format"]) == ("g711_ulaw",) * 2
    # REF: "default: 24000 for pcm16, 8000 for g711_ulaw and g711_alaw"
    assert session["input_audio_sampling_rate"] == 8000
    assert ("instructions" in session) is (kind == "model")  # HOWTO: none with an agent
    assert validate_client_event({"type": "session.update", "session": session}) == []


@pytest.mark.parametrize(
    ("model", "documented"),
    [
        ("gpt-realtime", vl.REALTIME_TRANSCRIPTION),
        ("gpt-realtime-mini", vl.REALTIME_TRANSCRIPTION),
        ("gpt-4.1", vl.OTHER_TRANSCRIPTION),
        ("phi4-mm-realtime", vl.OTHER_TRANSCRIPTION),
        (None, vl.OTHER_TRANSCRIPTION),  # an agent
    ],
)
def test_callbridge_and_the_emulator_take_the_references_transcription_models(
    model: str | None, documented: frozenset[str]
) -> None:
    """REF's table, callbridge's copy (core/session_rules.py) and the emulator's
    (sim/voicelive/protocol.py) agree on every model REF names."""
    named = vl.REALTIME_TRANSCRIPTION | vl.OTHER_TRANSCRIPTION
    callbridge = set(session_rules.supported_transcription_models(model))
    emulator = transcription_models(model)
    assert {m for m in named if m in callbridge} == {m for m in named if m in emulator}
    assert callbridge == set(emulator) == documented
    assert session_rules.default_transcription_model(model) in documented
