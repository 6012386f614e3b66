"""Voice Live conformance helpers: the documented corpus, JSON shape comparison, reference
tables, and one emulator session driven over a raw WebSocket (what the emulator really sends).

Shapes are compared by path. A path names object keys with dots and list elements by their
``type`` (``response.output[message].content[audio].transcript``), so lists that mix kinds of
items (a message and a function call) compare kind by kind; ``[]`` marks elements without one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import numpy as np
from azure.ai.voicelive.models import ServerEvent

from callbridge.adapters.voice_live import session_request
from callbridge.core.codec import make_codec
from callbridge.core.profiles import AgentProfile
from callbridge.sim.voicelive import (
    API_VERSION,
    REALTIME_PATH,
    AgentTurn,
    ToolCall,
    VoiceLiveEmulator,
    encode_output_audio,
    output_audio_format,
)
from callbridge.tools import END_CALL

CORPUS: Final = Path(__file__).parent / "voicelive"
REFERENCE: Final = (
    "MicrosoftDocs/azure-ai-docs articles/ai-services/speech-service/"
    "voice-live-api-reference-2026-07-15.md @ 467c504ddea5aa6899b2822acb64f139ec5800e0"
)
FIXED_KEYS: Final = frozenset({"type", "object", "status", "role"})
"""Keys whose documented value is protocol, not example data: compared for equality."""


def load(name: str) -> dict[str, Any]:
    event = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    assert isinstance(event, dict), name
    return event


def corpus(prefix: str) -> list[str]:
    """The corpus file names starting with ``prefix``, sorted."""
    return sorted(path.name for path in CORPUS.glob(f"{prefix}*.json"))


def deserialize(source: str | dict[str, Any]) -> ServerEvent:
    """A corpus file (or a payload) as the SDK's ``recv()`` builds it."""
    payload = load(source) if isinstance(source, str) else source
    event = ServerEvent._deserialize(payload, [])  # type: ignore[no-untyped-call]
    assert isinstance(event, ServerEvent)
    return event


def client_event(name: str) -> dict[str, Any]:
    """A client example as an event: HOWTO's three session fragments lack the envelope."""
    event = load(name)
    if "type" in event:
        return event
    return {"type": "session.update", **(event if "session" in event else {"session": event})}


def json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    raise TypeError(f"not JSON: {value!r}")


def compatible(documented: str, sent: str) -> bool:
    """Same JSON type; an integer is also a valid number."""
    return documented == sent or (documented, sent) == ("number", "integer")


def _element(path: str, value: object) -> str:
    kind = value.get("type") if isinstance(value, dict) else None
    return f"{path}[{kind if isinstance(kind, str) else ''}]"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    problem: str


def differences(documented: object, sent: object, path: str = "") -> list[Difference]:
    """Where ``sent`` lacks a documented key or list element kind, or differs in JSON type, or
    in the value of a fixed key (``FIXED_KEYS``)."""
    pairs: list[tuple[str, object, object]] = []
    found: list[Difference] = []
    if isinstance(documented, dict) and isinstance(sent, dict):
        for key, doc_value in documented.items():
            if key not in sent:
                found.append(Difference(_join(path, key), "missing"))
            else:
                pairs.append((_join(path, key), doc_value, sent[key]))
    elif isinstance(documented, list) and isinstance(sent, list):
        for doc_element in documented:
            at = _element(path, doc_element)
            matches = [element for element in sent if _element(path, element) == at]
            found += [] if matches else [Difference(at, "missing")]
            pairs += [(at, doc_element, element) for element in matches]
    for at, doc_value, value in pairs:
        doc_type, sent_type = json_type(doc_value), json_type(value)
        key = at.rpartition(".")[2]
        if not compatible(doc_type, sent_type):
            found.append(Difference(at, f"documented {doc_type}, sent {sent_type}"))
        elif key in FIXED_KEYS and isinstance(doc_value, str) and doc_value != value:
            found.append(Difference(at, f"documented {doc_value!r}, sent {value!r}"))
        else:
            found += differences(doc_value, value, at)
    return found


def path_types(value: object, path: str = "") -> dict[str, set[str]]:
    """Every key and element path in a JSON value, with the JSON types found there."""
    found: dict[str, set[str]] = {}
    children: Iterable[tuple[str, object]] = ()
    if isinstance(value, dict):
        children = ((_join(path, key), child) for key, child in value.items())
    elif isinstance(value, list):
        children = ((_element(path, child), child) for child in value)
    for at, child in children:
        found.setdefault(at, set()).add(json_type(child))
        for sub, types in path_types(child, at).items():
            found.setdefault(sub, set()).update(types)
    return found


_LAST_SEGMENT = re.compile(r"(\.[^.\[]+|\[[^\]]*\]|^[^.\[]+)$")


def extra_paths(documented: Iterable[object], sent: object) -> set[str]:
    """The outermost paths of ``sent`` that no documented example has."""
    known = set().union(*(path_types(example) for example in documented))
    return {
        path
        for path in set(path_types(sent)) - known
        if (parent := _LAST_SEGMENT.sub("", path)) == "" or parent in known
    }


def replaced(event: Mapping[str, Any], location: str, value: object) -> dict[str, Any]:
    """A deep copy of ``event`` with the value at ``location`` (``a.0.b``) replaced."""
    copy: dict[str, Any] = json.loads(json.dumps(event))
    *parents, last = location.split(".")
    node: Any = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return copy


def at(event: Mapping[str, Any], location: str) -> Any:
    node: Any = event
    for key in location.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


# --------------------------------------------------------------------------------------------
# Reference tables (REFERENCE, § Components), as far as callbridge's session.update reaches
# --------------------------------------------------------------------------------------------

_VOICE = "type name endpoint_id temperature custom_lexicon_url prefer_locales locale style"
_TURN_DETECTION = (
    "type:string threshold:number prefix_padding_ms:integer silence_duration_ms:integer "
    "speech_duration_ms:integer end_of_utterance_detection:object remove_filler_words:boolean "
    "languages:array create_response:boolean interrupt_response:boolean auto_truncate:boolean "
    "eagerness:string"
)
REQUEST_SESSION_TABLE: Final[dict[str, set[str]]] = {
    # RealtimeRequestSession
    "model": {"string"},
    "modalities": {"array"},
    "modalities[]": {"string"},
    "animation": {"object"},
    "voice": {"object"},
    "instructions": {"string"},
    "input_audio_sampling_rate": {"integer"},
    "input_audio_format": {"string"},
    "output_audio_format": {"string"},
    "input_audio_noise_reduction": {"object", "null"},
    "input_audio_echo_cancellation": {"object", "null"},
    "input_audio_transcription": {"object", "null"},
    "turn_detection": {"object", "null"},
    "tools": {"array"},
    "tool_choice": {"string", "object"},
    "parallel_tool_calls": {"boolean"},
    "temperature": {"number"},
    "max_response_output_tokens": {"integer", "string"},
    "interim-response": {"object"},
    "reasoning_effort": {"string"},
    "avatar": {"object"},
    "output_audio_timestamp_types": {"array"},
    "metadata": {"object"},
    # RealtimeOpenAIVoice, RealtimeAzureStandardVoice, RealtimeAzureCustomVoice (strings but
    # temperature)
    **{f"voice.{key}": {"string"} for key in _VOICE.split()},
    "voice.temperature": {"number"},
    # RealtimeServerVAD, RealtimeAzureSemanticVAD(Multilingual), RealtimeOpenAISemanticVAD
    **{
        f"turn_detection.{key}": {kind}
        for key, kind in (field.split(":") for field in _TURN_DETECTION.split())
    },
    # RealtimeAzureDeepNoiseSuppression / RealtimeOpenAINoiseReduction
    "input_audio_noise_reduction.type": {"string"},
    # RealtimeInputAudioEchoCancellationSettings
    "input_audio_echo_cancellation.type": {"string"},
    "input_audio_echo_cancellation.reference_source": {"string"},
    "input_audio_echo_cancellation.channels": {"integer"},
    # RealtimeAudioInputTranscriptionSettings
    "input_audio_transcription.model": {"string"},
    "input_audio_transcription.language": {"string"},
    "input_audio_transcription.custom_speech": {"object"},
    "input_audio_transcription.phrase_list": {"array"},
    "input_audio_transcription.prompt": {"string"},
    # RealtimeTool: "parameters | object | Function parameters as JSON schema object"
    "tools[function]": {"object"},
    "tools[function].type": {"string"},
    "tools[function].name": {"string"},
    "tools[function].description": {"string"},
    "tools[function].parameters": {"object"},
}
"""Paths of RealtimeRequestSession and the sub-tables callbridge uses, with their JSON types."""

OPAQUE: Final = ("tools[function].parameters.",)
"""Free-form JSON below these paths (a tool's JSON schema)."""

REALTIME_TRANSCRIPTION: Final = frozenset(
    {
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe-diarize",
        "mai-transcribe",
        "mai-transcribe-2",
    }
)
"""RealtimeAudioInputTranscriptionSettings.model: "Supported with gpt-realtime and
gpt-realtime-mini: whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe,
gpt-4o-transcribe-diarize, mai-transcribe, mai-transcribe-2." """
OTHER_TRANSCRIPTION: Final = frozenset({"azure-speech", "mai-transcribe", "mai-transcribe-2"})
""""Supported with all other models and agents: azure-speech, mai-transcribe, and
mai-transcribe-2." """

# --------------------------------------------------------------------------------------------
# One emulator session, as callbridge drives it, captured raw
# --------------------------------------------------------------------------------------------

API_KEY: Final = "conformance-key"
TIMEOUT_S: Final = 10.0
TOO_FAR_EVENT_ID: Final = "evt_truncate_too_far"
_ULAW = output_audio_format("g711_ulaw")


def _tone(seconds: float, rate: int) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return bytes(np.rint(8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes())


def _ulaw_speech(silence_s: float, speech_s: float, pause_s: float) -> bytes:
    speech = encode_output_audio(AgentTurn(_tone(speech_s, 8000), 8000, ""), _ULAW)
    return b"\xff" * round(silence_s * 8000) + speech + b"\xff" * round(pause_s * 8000)


@dataclass(frozen=True, slots=True)
class Recorded:
    frames: list[dict[str, Any]]
    """Every server event, parsed from the raw frames, in the order received."""
    violations: list[str]
    """The emulator's own record of protocol violations."""


class _Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, event: Mapping[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def expect(self, *types: str) -> dict[str, Any]:
        """Read until each of ``types`` has arrived; return the last event of those types."""
        start = len(self.frames)
        while not set(types) <= {frame["type"] for frame in self.frames[start:]}:
            frame = json.loads(await self.ws.receive_str())
            assert isinstance(frame, dict)
            self.frames.append(frame)
        return next(frame for frame in reversed(self.frames) if frame["type"] in types)


async def _converse(socket: _Socket) -> None:
    await socket.expect("session.created")
    # The reference's own azure-custom update, whose echo its session.updated example shows.
    await socket.send(load("client_session.update.reference.azure_custom_voice.json"))
    await socket.expect("session.updated")
    # callbridge's session for a g711 call, then its greeting request.
    session = session_request(
        AgentProfile(), make_codec("g711_ulaw", 16000), "whisper-1", [END_CALL]
    )
    await socket.send({"type": "session.update", "session": session.as_dict()})
    await socket.expect("session.updated")
    await socket.send({"type": "response.create"})
    await socket.expect("response.done")
    # The reference's conversation.item.create example, after the item it names.
    created = load("client_conversation.item.create.reference.user_message.json")
    await socket.send({"type": created["type"], "item": {**created["item"], "id": "item_ABC123"}})
    await socket.send(created)
    await socket.expect("conversation.item.created")
    # The caller speaks: VAD, commit, transcription; callbridge's session answers no turn by
    # itself (create_response false), so it asks, and the answer comes with its tool call.
    audio = _ulaw_speech(0.5, 1.0, 1.0)
    for offset in range(0, len(audio), 160):
        chunk = base64.b64encode(audio[offset : offset + 160]).decode()
        await socket.send({"type": "input_audio_buffer.append", "audio": chunk})
    await socket.expect("input_audio_buffer.committed")
    await socket.send({"type": "response.create"})
    await socket.expect("response.done", "conversation.item.input_audio_transcription.completed")
    done = next(frame for frame in reversed(socket.frames) if frame["type"] == "response.done")
    item_id = done["response"]["output"][0]["id"]
    await socket.send({"type": "conversation.item.retrieve", "item_id": item_id})
    await socket.expect("conversation.item.retrieved")
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    await socket.send({**truncate, "audio_end_ms": 200})
    await socket.expect("conversation.item.truncated")
    await socket.send({"type": "conversation.item.delete", "item_id": "item_ABC123"})
    await socket.expect("conversation.item.deleted")
    await socket.send({"type": "input_audio_buffer.clear"})
    await socket.expect("input_audio_buffer.cleared")
    # Two refusals: one with neither a param nor a client event id, one with both.
    await socket.send({"type": "response.cancel"})
    await socket.expect("error")
    await socket.send({**truncate, "audio_end_ms": 60_000, "event_id": TOO_FAR_EVENT_ID})
    await socket.expect("error")


async def record_session() -> Recorded:
    """One session on loopback that produces every server event callbridge relies on: a
    greeting, a caller turn (VAD, commit, transcription), an answer ending in a call of
    callbridge's ``end_call``, retrieve, truncate, delete, clear and two errors."""
    emulator = VoiceLiveEmulator(
        turns=[
            AgentTurn(_tone(0.4, 16000), 16000, "Thanks for calling."),
            AgentTurn(_tone(0.6, 16000), 16000, "It ships today.", ToolCall("end_call", {})),
        ],
        api_key=API_KEY,
        caller_transcripts=["Where is my order?"],
        speed=50.0,
        response_delay_ms=5,
        transcription_delay_ms=5,
    )
    url = f"{REALTIME_PATH}?api-version={API_VERSION}&model=gpt-realtime"
    async with asyncio.timeout(TIMEOUT_S):
        endpoint = await emulator.start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(endpoint + url, headers={"api-key": API_KEY}) as ws,
            ):
                socket = _Socket(ws)
                await _converse(socket)
        finally:
            await emulator.stop()
            await emulator.wait_all_closed()
    return Recorded(socket.frames, emulator.violations)
