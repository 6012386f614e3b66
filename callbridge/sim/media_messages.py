"""The media WebSocket's messages as ACS writes and reads them, on the phone's side.

The phone sends ``AudioMetadata``, ``AudioData`` and ``DtmfData`` messages built here, and
parses what the bridge sends (``AudioData`` to play, ``StopAudio``) the way ACS does.

Deliberately its own reader, not ``callbridge.core.acs_media``'s: a stand-in that judged the
bridge with the bridge's code could not catch it being wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from callbridge.sim.script import FRAME_S

# --- What the bridge sends: parsed the way ACS does --------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Agent audio to queue for the caller (PCM16 at the stream's rate)."""

    pcm: bytes
    mark_id: str | None = None
    """The playback mark the bridge attached (``AudioData.Mark.Id``, beta), if any."""


@dataclass(frozen=True, slots=True)
class StopAudio:
    """Drop all audio queued for the caller."""


BridgeMessage: TypeAlias = PlayAudio | StopAudio


class BridgeMessageError(ValueError):
    """A message from the bridge that ACS would not play: the bridge has a bug."""


def parse_bridge_message(text: str) -> BridgeMessage:
    """Parse one text frame sent by the bridge.

    Keys and the ``kind`` value match case-insensitively and extra or null fields are ignored,
    because ACS accepts every casing its SDKs and samples use.

    Raises:
        BridgeMessageError: not JSON, an unknown kind, or audio that is not base64 PCM16.
    """
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BridgeMessageError("not JSON") from exc
    if not isinstance(raw, dict):
        raise BridgeMessageError("not a JSON object")
    message = _fold(raw)
    kind = message.get("kind")
    if not isinstance(kind, str):
        raise BridgeMessageError("missing kind")
    match kind.lower():
        case "audiodata":
            body = message.get("audiodata")
            return PlayAudio(_audio_payload(body), _mark_id(body))
        case "stopaudio":
            return StopAudio()
        case _:
            raise BridgeMessageError(f"unknown kind {kind!r}")


def _fold(mapping: dict[Any, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in mapping.items() if isinstance(key, str)}


def _mark_id(body: object) -> str | None:
    """``AudioData.Mark.Id``: the .NET SDK's outbound mark (beta), in any casing."""
    mark = _fold(body).get("mark") if isinstance(body, dict) else None
    if mark is None:
        return None
    mark_id = _fold(mark).get("id") if isinstance(mark, dict) else None
    if not isinstance(mark_id, str) or not mark_id:
        raise BridgeMessageError("audioData.mark.id is not a string")
    return mark_id


def _audio_payload(body: object) -> bytes:
    if not isinstance(body, dict):
        raise BridgeMessageError("missing audioData body")
    data = _fold(body).get("data")
    if not isinstance(data, str):
        raise BridgeMessageError("audioData.data is not a string")
    try:
        pcm = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise BridgeMessageError("audioData.data is not base64") from exc
    if not pcm:
        raise BridgeMessageError("audioData.data is empty")
    if len(pcm) % 2:
        raise BridgeMessageError("audioData.data is not whole PCM16 samples")
    return pcm


# --- What the phone sends: written the way ACS does --------------------------------------------


def metadata_message(sample_rate: int, frame_bytes: int) -> str:
    """The ``AudioMetadata`` message that opens the stream."""
    return _dumps(
        {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": str(uuid.uuid4()),
                "encoding": "PCM",
                "sampleRate": sample_rate,
                "channels": 1,
                "length": frame_bytes,
            },
        }
    )


def audio_message(timestamp: str, participant_raw_id: str, data: str, *, silent: bool) -> str:
    """One ``AudioData`` frame; ``data`` is its PCM16, base64-encoded."""
    return _dumps(
        {
            "kind": "AudioData",
            "audioData": {
                "timestamp": timestamp,
                "participantRawID": participant_raw_id,
                "data": data,
                "silent": silent,
            },
        }
    )


def dtmf_message(timestamp: str, participant_raw_id: str, digit: str) -> str:
    """One ``DtmfData`` message: a key the caller pressed."""
    return _dumps(
        {
            "kind": "DtmfData",
            "dtmfData": {
                "timestamp": timestamp,
                "participantRawID": participant_raw_id,
                "data": digit,
            },
        }
    )


def frame_timestamp(opened_at: datetime, frame: int) -> str:
    """A frame's capture time, as ACS writes it: ISO 8601 UTC to the millisecond."""
    stamp = opened_at + timedelta(seconds=frame * FRAME_S)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
