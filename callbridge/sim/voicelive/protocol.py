"""Protocol constants, emulator settings, session configuration, and shared protocol pieces."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from callbridge.sim.voicelive.audio import (
    G711_RATE,
    PCM16_DEFAULT_RATE,
    AgentTurn,
    AudioFormat,
    encode_output_audio,
    input_audio_format,
    output_audio_format,
)

API_VERSION: Final = "2026-07-15"
REALTIME_PATH: Final = "/voice-live/realtime"

MIN_COMMIT_MS: Final = 100  # OpenAI semantics: committing < 100 ms of audio is an error
_SESSION_LIFETIME_S: Final = 3600  # Voice Live sessions last at most 60 minutes


class InvalidRequestError(Exception):
    """A client request the service would refuse with an ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


class Ids:
    """Readable, unique, deterministic ids: ``item_003_0012`` (connection 3, 12th item)."""

    def __init__(self, connection_index: int) -> None:
        self._connection = connection_index
        self._counts: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        count = self._counts.get(prefix, 0) + 1
        self._counts[prefix] = count
        return f"{prefix}_{self._connection:03d}_{count:04d}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Emulator settings shared by all connections (see :class:`VoiceLiveEmulator`)."""

    turns: tuple[AgentTurn, ...]
    caller_transcripts: tuple[str | None, ...]
    speed: float
    response_delay_ms: int
    chunk_pattern_ms: tuple[int, ...]
    vad_threshold_rms: float
    transcription_delay_ms: int
    default_model: str
    allow_unknown_client_fields: bool
    session_updated_delay_ms: int | None = 0
    _encoded_turns: dict[tuple[int, str], bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def turn_audio(self, turn_index: int, fmt: AudioFormat) -> bytes:
        """Turn ``turn_index`` encoded in ``fmt``, encoded once per emulator."""
        key = (turn_index, fmt.name)
        if key not in self._encoded_turns:
            self._encoded_turns[key] = encode_output_audio(self.turns[turn_index], fmt)
        return self._encoded_turns[key]


@dataclass(slots=True)
class CallProgress:
    """How far a call has got, across its sessions (those that share an
    ``x-ms-client-request-id``): the n-th response of the call plays the n-th turn and the n-th
    caller turn gets the n-th transcript, so a session that replaces a lost one carries on
    instead of greeting again. A session without the header is a call of its own."""

    upgrade_attempts: int = 0
    responses_started: int = 0
    caller_turns: int = 0

    def next_session_index(self) -> int:
        """The ordinal of a new upgrade attempt in the call (0 for the first)."""
        self.upgrade_attempts += 1
        return self.upgrade_attempts - 1


# Defaults of each turn_detection type, from the API reference 2026-07-15 (RealtimeServerVAD,
# RealtimeAzureSemanticVAD); the how-to adds that from api-version 2026-04-10 on prefix padding
# is 400 for server_vad and 420 for the azure_semantic_vad types (300 before).
_COMMON_TURN_DETECTION: Final[Mapping[str, Any]] = {
    "threshold": 0.5,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
    "auto_truncate": False,
}
_SERVER_VAD: Final[Mapping[str, Any]] = {
    "type": "server_vad",
    **_COMMON_TURN_DETECTION,
    "prefix_padding_ms": 400,
}
DEFAULT_SPEECH_MS: Final = 200
"""server_vad's documented ``speech_duration_ms`` default (RealtimeServerVAD: "Minimum speech
duration (default: 200)"): voiced ms before speech counts. SDK 1.3.1's ``ServerVad`` has no such
field, so the emulator takes a client's value (``wire.CLIENT_FIELDS_BEYOND_SDK``) and applies it,
but never echoes it (:func:`session_payload`): a session carrying it would fail the SDK's own
check of ``session.updated``."""
_AZURE_SEMANTIC_VAD: Final[Mapping[str, Any]] = {
    **_COMMON_TURN_DETECTION,
    "prefix_padding_ms": 420,
    "speech_duration_ms": 80,
}
DEFAULT_TURN_DETECTION: Final = _SERVER_VAD
"""A session's turn detection until the client sets one (the how-to: "The default value is
``server_vad``")."""


def session_payload(config: Mapping[str, Any]) -> dict[str, Any]:
    """The session as ``session.created`` / ``session.updated`` carry it."""
    payload = dict(config)
    turn_detection = payload.get("turn_detection")
    if isinstance(turn_detection, Mapping) and turn_detection.get("type") == "server_vad":
        payload["turn_detection"] = {
            k: v for k, v in turn_detection.items() if k != "speech_duration_ms"
        }
    return payload


def turn_detection_defaults(kind: object) -> Mapping[str, Any]:
    """The documented defaults of the turn_detection ``type`` ``kind``."""
    if isinstance(kind, str) and kind.startswith("azure_semantic_vad"):
        return {**_AZURE_SEMANTIC_VAD, "type": kind}
    return _SERVER_VAD


# Which input transcription models a session model takes: the API reference 2026-07-15,
# RealtimeAudioInputTranscriptionSettings.model. "Supported with gpt-realtime and
# gpt-realtime-mini: whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe,
# gpt-4o-transcribe-diarize, mai-transcribe, mai-transcribe-2. Supported with all other models
# and agents: azure-speech, mai-transcribe, and mai-transcribe-2." The older gpt-4o(-mini)-realtime
# names count as the realtime family, as the SDK's own live tests treat them (whisper-1). The
# error the service sends for another pair is not documented: this one says what it refuses.
# Deliberately the emulator's own copy of callbridge's core.session_rules: the stand-in must not
# judge callbridge by callbridge's table. tests/conformance/test_voicelive.py holds both to the
# reference's table.
_REALTIME_FAMILY: Final = ("gpt-realtime", "gpt-4o-realtime", "gpt-4o-mini-realtime")
_REALTIME_TRANSCRIPTION: Final = frozenset(
    {
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe-diarize",
        "mai-transcribe",
        "mai-transcribe-2",
    }
)
_OTHER_TRANSCRIPTION: Final = frozenset({"azure-speech", "mai-transcribe", "mai-transcribe-2"})


def transcription_models(model: str | None) -> frozenset[str]:
    """What ``model`` (None: an agent session) takes as ``input_audio_transcription.model``."""
    if model is not None and model.startswith(_REALTIME_FAMILY):
        return _REALTIME_TRANSCRIPTION
    return _OTHER_TRANSCRIPTION


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """The parts of a session's ``turn_detection`` that the emulator acts on."""

    prefix_padding_ms: int
    silence_duration_ms: int
    min_speech_ms: int
    create_response: bool
    interrupt_response: bool

    @classmethod
    def from_session(cls, config: Mapping[str, Any]) -> TurnDetection | None:
        if not isinstance(config.get("turn_detection"), Mapping):
            return None
        kind = config["turn_detection"].get("type")
        td = {**turn_detection_defaults(kind), **config["turn_detection"]}
        return cls(
            prefix_padding_ms=td["prefix_padding_ms"],
            silence_duration_ms=td["silence_duration_ms"],
            min_speech_ms=td.get("speech_duration_ms", DEFAULT_SPEECH_MS),
            create_response=td["create_response"],
            interrupt_response=td["interrupt_response"],
        )


_NULLABLE_SESSION_KEYS: Final = frozenset(
    {
        "turn_detection",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "input_audio_echo_cancellation",
    }
)
_INPUT_KEYS: Final = ("input_audio_format", "input_audio_sampling_rate")


def default_session(session_id: str, model: str, lifetime_s: float | None = None) -> dict[str, Any]:
    """The session configuration a new connection starts with (``session.created``).

    ``lifetime_s`` sets ``expires_at`` (by default the service's 60 minutes).

    ``id``, ``object`` and ``expires_at`` are set by the server: the API reference 2026-07-15,
    RealtimeResponseSession, lists ``object`` ("Allowed values: ``realtime.session``") and its
    session.created example carries it, although SDK 1.3.1's ``ResponseSession`` has no such
    field (see ``wire.DOCUMENTED_BEYOND_SDK``).
    """
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "modalities": ["text", "audio"],
        "instructions": "",
        "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"},
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": PCM16_DEFAULT_RATE,
        "output_audio_format": "pcm16",
        "input_audio_transcription": None,
        "input_audio_noise_reduction": None,
        "input_audio_echo_cancellation": None,
        "turn_detection": dict(DEFAULT_TURN_DETECTION),
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
        "expires_at": round(
            time.time() + (_SESSION_LIFETIME_S if lifetime_s is None else lifetime_s)
        ),
    }


def function_tool_names(tools: object) -> tuple[str, ...]:
    """The names of the ``function`` tools in a session's or response's ``tools`` list."""
    if not isinstance(tools, list):
        return ()
    return tuple(
        tool["name"]
        for tool in tools
        if isinstance(tool, Mapping)
        and tool.get("type") == "function"
        and isinstance(tool.get("name"), str)
    )


def updated_session(
    config: Mapping[str, Any], update: Mapping[str, Any], *, input_locked: bool, agent: bool
) -> dict[str, Any]:
    """``config`` with a ``session.update`` applied, or raise as the service would.

    ``input_locked``: audio has been appended, so the input format can no longer change.
    ``agent``: the session talks to a Voice Live agent, which owns its instructions.
    """
    if agent and update.get("instructions") is not None:
        # The how-to: "The instructions property isn't supported when you're using a custom
        # agent."
        raise InvalidRequestError(
            "invalid_value",
            "instructions isn't supported when the session uses an agent",
            "session.instructions",
        )
    # null leaves a setting unchanged, except for features where null means "off".
    update = {k: v for k, v in update.items() if v is not None or k in _NULLABLE_SESSION_KEYS}
    merged = {**config, **update}
    if update.get("turn_detection") is not None:
        kind = update["turn_detection"].get("type")
        merged["turn_detection"] = {**turn_detection_defaults(kind), **update["turn_detection"]}
    transcription = merged.get("input_audio_transcription")
    if isinstance(transcription, Mapping):
        model = None if agent else merged.get("model")
        takes = transcription_models(model if isinstance(model, str) else None)
        if transcription.get("model") not in takes:
            raise InvalidRequestError(
                "invalid_value",
                f"input_audio_transcription.model {transcription.get('model')!r} is not supported"
                f" with {'an agent' if agent else repr(model)}; use one of {sorted(takes)}",
                "session.input_audio_transcription.model",
            )
    if "input_audio_format" in update and "input_audio_sampling_rate" not in update:
        # The rate follows the format unless the client says otherwise.
        merged["input_audio_sampling_rate"] = (
            PCM16_DEFAULT_RATE if merged["input_audio_format"] == "pcm16" else G711_RATE
        )
    if input_locked and any(merged.get(k) != config.get(k) for k in _INPUT_KEYS):
        raise InvalidRequestError(
            "invalid_value",
            "input_audio_format and input_audio_sampling_rate cannot change mid-session",
            "session.input_audio_format",
        )
    try:
        input_audio_format(merged["input_audio_format"], merged["input_audio_sampling_rate"])
        output_audio_format(merged["output_audio_format"])
    except ValueError as exc:
        raise InvalidRequestError("invalid_value", str(exc), "session") from exc
    return merged
