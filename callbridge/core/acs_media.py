"""ACS media-streaming wire format: parse what ACS sends, build what we send back.

Pure functions, no I/O. Sources (examples in ``tests/conformance/acs/``): the Learn audio
streaming quickstart and concept pages (AudioMetadata, AudioData, DtmfData, outbound AudioData
and StopAudio), and the Call Automation SDKs' streaming parsers and their tests.

A tolerant reader: ACS sends camelCase keys with PascalCase kinds, but the SDKs and samples
disagree on casing, so inbound keys and the ``kind`` value are matched case-insensitively;
fields the public record leaves open (DTMF spelling, a silent frame without audio) are read in
every spelling seen. A strict writer: outbound messages are Learn's documented shapes, exactly.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from callbridge.core import wire_json

ACS_RATES = (16000, 24000)
"""PCM16 sample rates ACS can stream at (``pcm16KMono``, ``pcm24KMono``)."""
DEFAULT_ACS_RATE = 16000
"""The service default when ``audioFormat`` is omitted."""


class WireError(ValueError):
    """A media message that cannot be understood: bad JSON, wrong shape or bad audio."""


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    """First message of a media stream: the negotiated audio format."""

    sample_rate: int
    channels: int
    encoding: str
    frame_bytes: int | None
    subscription_id: str | None


@dataclass(frozen=True, slots=True)
class AudioData:
    """One 20 ms frame of the caller's PCM16 audio."""

    pcm: bytes
    silent: bool
    participant_raw_id: str | None
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class DtmfData:
    """A keypad digit pressed by the caller."""

    digit: str
    participant_raw_id: str | None


MarkStatus = Literal["completed", "cancelled"]
"""``completed``: the marked audio was played; ``cancelled``: ``StopAudio`` dropped it."""


@dataclass(frozen=True, slots=True)
class MarkData:
    """ACS played (or dropped) the frame that carried ``mark_id`` (beta: ``marked_audio_data``)."""

    mark_id: str
    status: MarkStatus


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed message of a kind the bridge does not handle (transcription, marks...)."""

    kind: str


InboundMessage: TypeAlias = AudioMetadata | AudioData | DtmfData | MarkData | Unknown

_DTMF_KEYS = frozenset("0123456789*#ABCD")
_DTMF_WORDS = {
    # Call Automation's DtmfTone values (the callback events' spelling of keypad tones); the
    # media stream's examples show the key itself ("3"), but none shows * or # either way.
    **{
        word: str(digit)
        for digit, word in enumerate(
            ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
        )
    },
    "asterisk": "*",
    "star": "*",
    "pound": "#",
    "hash": "#",
    **{letter.lower(): letter for letter in "ABCD"},
}
_MARK_STATUSES: dict[str, MarkStatus] = {
    "completed": "completed",
    "cancelled": "cancelled",
    # .NET's MarkStatus enum says Cancelled; the American spelling is read too.
    "canceled": "cancelled",
}


def parse(text: str | bytes) -> InboundMessage:
    """Turn one ACS media frame into a typed message.

    Raises:
        WireError: the frame is not valid JSON, lacks its body, or carries bad audio.
    """
    try:
        raw = wire_json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError("not JSON") from exc
    if not isinstance(raw, dict):
        raise WireError("not a JSON object")
    message = _fold(raw)
    kind = message.get("kind")
    if not isinstance(kind, str):
        raise WireError("missing kind")
    match kind.lower():
        case "audiodata":
            return _audio_data(_body(message, "audiodata"))
        case "audiometadata":
            return _audio_metadata(_body(message, "audiometadata"))
        case "dtmfdata":
            return _dtmf_data(_body(message, "dtmfdata"))
        case "markdata":
            return _mark_data(_body(message, "markdata"))
        case _:
            return Unknown(kind)


# The outbound shapes of Learn's audio-streaming quickstart (Python include), exactly: PascalCase,
# as the .NET SDK's serializer also writes them (tests/conformance/acs/media_out_*.json).
_AUDIO_DATA_HEAD = '{"Kind":"AudioData","AudioData":{"Data":"'
_AUDIO_DATA_TAIL = '"},"StopAudio":null}'


def audio_data(pcm: bytes) -> str:
    """Build an outbound ``AudioData`` message carrying PCM16 at the stream's rate."""
    return audio_data_from_base64(base64.b64encode(pcm).decode("ascii"))


def audio_data_from_base64(data: str) -> str:
    """Build an outbound ``AudioData`` message from already base64-encoded PCM16."""
    # String concatenation: this runs 50 times a second per call; base64 needs no escaping.
    return _AUDIO_DATA_HEAD + data + _AUDIO_DATA_TAIL


def audio_data_pcm(message: str) -> bytes:
    """The PCM16 an outbound ``AudioData`` message built by ``audio_data`` carries.

    Raises:
        ValueError: ``message`` was not built by ``audio_data``.
    """
    if not (message.startswith(_AUDIO_DATA_HEAD) and message.endswith(_AUDIO_DATA_TAIL)):
        raise ValueError("not an AudioData message built by audio_data")
    return base64.b64decode(message[len(_AUDIO_DATA_HEAD) : -len(_AUDIO_DATA_TAIL)])


def with_mark(message: str, mark_id: str) -> str:
    """An outbound ``AudioData`` message built by ``audio_data``, carrying mark ``mark_id``.

    Raises:
        ValueError: ``message`` was not built by ``audio_data``.
    """
    if not (message.startswith(_AUDIO_DATA_HEAD) and message.endswith(_AUDIO_DATA_TAIL)):
        raise ValueError("not an AudioData message built by audio_data")
    return marked_audio_data(message[len(_AUDIO_DATA_HEAD) : -len(_AUDIO_DATA_TAIL)], mark_id)


def marked_audio_data(data: str, mark_id: str) -> str:
    """An outbound ``AudioData`` message from base64 PCM16 that asks ACS to acknowledge it.

    ACS answers ``MarkData`` with ``mark_id`` once the frame has played (``completed``) or when
    ``StopAudio`` dropped it (``cancelled``). Beta: the only sender of marks in the public
    record is the .NET Call Automation SDK (Azure/azure-sdk-for-net PR #52131, Dec 2025,
    ``OutStreamingData.GetAudioDataForOutbound(audio, markId)``), whose default serializer writes
    PascalCase with the mark inside AudioData; this is that shape, kept here and nowhere else so
    a change at GA is one edit. No Learn page documents it yet.
    """
    mark = '","Mark":{"Id":' + json.dumps(mark_id) + '}},"StopAudio":null}'
    return _AUDIO_DATA_HEAD + data + mark


STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'
"""The outbound ``StopAudio`` message: ACS drops all audio it has queued for the caller."""


def _fold(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in mapping.items() if isinstance(key, str)}


def _body(message: dict[str, Any], key: str) -> dict[str, Any]:
    body = message.get(key)
    if not isinstance(body, dict):
        raise WireError(f"missing {key} body")
    return _fold(body)


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{key} is not a string")
    return value


def _audio_data(body: dict[str, Any]) -> AudioData:
    silent = body.get("silent", False)
    if silent is None:
        silent = False
    if not isinstance(silent, bool):
        raise WireError("audioData.silent is not a boolean")
    data = body.get("data")
    if silent and not data:
        # Silence may come without its audio (the .NET parser tolerates a missing data); it is
        # still a frame of the caller's line, which the bridge fills with zeros.
        data = ""
    if not isinstance(data, str):
        raise WireError("audioData.data is not a string")
    if not data and not silent:
        # Sound without its audio: nothing to hear, and Voice Live must not be sent an empty
        # append. ACS streams 20 ms frames (Learn, "Audio streaming overview"); none is empty.
        raise WireError("audioData.data is empty")
    try:
        pcm = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise WireError("audioData.data is not base64") from exc
    if len(pcm) % 2:
        raise WireError("audioData.data is not whole PCM16 samples")
    return AudioData(
        pcm=pcm,
        silent=silent,
        participant_raw_id=_optional_str(body, "participantrawid"),
        timestamp=_optional_str(body, "timestamp"),
    )


def _audio_metadata(body: dict[str, Any]) -> AudioMetadata:
    rate = body.get("samplerate", DEFAULT_ACS_RATE)
    if rate not in ACS_RATES or isinstance(rate, bool):
        raise WireError(f"unsupported sampleRate {rate!r}")
    channels = body.get("channels", 1)
    if channels != 1 or isinstance(channels, bool):
        raise WireError(f"unsupported channels {channels!r}")
    encoding = body.get("encoding", "PCM")
    if not isinstance(encoding, str) or encoding.lower() != "pcm":
        raise WireError(f"unsupported encoding {encoding!r}")
    length = body.get("length")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool)):
        raise WireError("audioMetadata.length is not an integer")
    return AudioMetadata(
        sample_rate=rate,
        channels=channels,
        encoding=encoding,
        frame_bytes=length,
        subscription_id=_optional_str(body, "subscriptionid"),
    )


def _dtmf_data(body: dict[str, Any]) -> DtmfData:
    value = body.get("data")
    key = _dtmf_key(value) if isinstance(value, str) else None
    if key is None:
        # Never echo the value: it may be part of a PIN.
        raise WireError("bad DTMF digit (not a keypad key)")
    return DtmfData(digit=key, participant_raw_id=_optional_str(body, "participantrawid"))


def _dtmf_key(value: str) -> str | None:
    """``value`` as a keypad key ("0"-"9", "*", "#", "A"-"D"): the key itself or its word."""
    text = value.strip()
    if text.upper() in _DTMF_KEYS:
        return text.upper()
    return _DTMF_WORDS.get(text.lower())


def _mark_data(body: dict[str, Any]) -> MarkData:
    mark_id = body.get("id")
    if not isinstance(mark_id, str) or not mark_id:
        raise WireError("markData.id is not a string")
    status = body.get("status")
    known = _MARK_STATUSES.get(status.lower()) if isinstance(status, str) else None
    if known is None:
        raise WireError(f"unknown markData.status {status!r}")
    return MarkData(mark_id=mark_id, status=known)
