"""ACS media-streaming wire format: parse what ACS sends, build what we send back.

Pure functions, no I/O. ACS sends JSON text frames whose key casing varies between SDKs
and samples, so inbound keys (and the ``kind`` value) are matched case-insensitively.
Outbound messages use the canonical camelCase shape of the ACS quickstarts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, TypeAlias

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


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed message of a kind the bridge does not handle (transcription, marks...)."""

    kind: str


InboundMessage: TypeAlias = AudioMetadata | AudioData | DtmfData | Unknown

_DTMF_DIGITS = frozenset("0123456789*#ABCD")


def parse(text: str | bytes) -> InboundMessage:
    """Turn one ACS media frame into a typed message.

    Raises:
        WireError: the frame is not valid JSON, lacks its body, or carries bad audio.
    """
    try:
        raw = json.loads(text)
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
        case _:
            return Unknown(kind)


def audio_data(pcm: bytes) -> str:
    """Build an outbound ``AudioData`` message carrying PCM16 at the stream's rate."""
    return audio_data_from_base64(base64.b64encode(pcm).decode("ascii"))


def audio_data_from_base64(data: str) -> str:
    """Build an outbound ``AudioData`` message from already base64-encoded PCM16."""
    # String concatenation: this runs 50 times a second per call; base64 needs no escaping.
    return '{"kind":"AudioData","audioData":{"data":"' + data + '"}}'


STOP_AUDIO = '{"kind":"StopAudio","audioData":null,"stopAudio":{}}'
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
    data = body.get("data")
    if not isinstance(data, str):
        raise WireError("audioData.data is not a string")
    try:
        pcm = base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise WireError("audioData.data is not base64") from exc
    if len(pcm) % 2:
        raise WireError("audioData.data is not whole PCM16 samples")
    silent = body.get("silent", False)
    if silent is None:
        silent = False
    if not isinstance(silent, bool):
        raise WireError("audioData.silent is not a boolean")
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
    digit = body.get("data")
    if not isinstance(digit, str) or digit.upper() not in _DTMF_DIGITS:
        raise WireError(f"bad DTMF digit {digit!r}")
    return DtmfData(digit=digit.upper(), participant_raw_id=_optional_str(body, "participantrawid"))
