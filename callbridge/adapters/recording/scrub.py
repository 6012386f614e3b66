"""Keeping audio out of the timeline: event fields are made JSON, with audio replaced by its size.

Protocol events carry audio as base64 strings (``response.audio.delta``, ACS ``audioData``); a
timeline line holds ``{"omitted_base64_chars": n}`` instead, so the audio lives only in the WAV
files and a timeline stays small enough to read.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping
from typing import Any

from callbridge.adapters.recording.timeline import JSON

MIN_BASE64_CHARS = 64
"""Event fields holding a base64-looking string at least this long are omitted as audio."""

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_AUDIO_KEYS = frozenset({"audio", "audiodata"})
"""Keys whose string values are audio whatever their length (case-insensitive)."""
_AUDIO_EVENT_KEYS = frozenset({"audio", "delta", "data"})
"""Inside an audio-carrying event or ACS ``audioData`` body, these string values are audio."""


def is_audio_event(kind: object) -> bool:
    """``response.audio.delta`` and the like carry audio; transcript deltas do not."""
    return isinstance(kind, str) and kind.lower().endswith("audio.delta")


def clean_mapping(value: Mapping[Any, Any], *, audio: bool) -> dict[str, JSON]:
    audio = audio or is_audio_event(value.get("type"))
    out: dict[str, JSON] = {}
    for raw_key, item in value.items():
        key = str(raw_key)
        folded = key.lower()
        if isinstance(item, str) and (
            folded in _AUDIO_KEYS or (audio and folded in _AUDIO_EVENT_KEYS)
        ):
            out[key] = {"omitted_base64_chars": len(item)}
        elif isinstance(item, Mapping):
            out[key] = clean_mapping(item, audio=audio or folded == "audiodata")
        else:
            out[key] = clean(item)
    return out


def clean(value: object) -> JSON:
    """``value`` as JSON, with bytes and base64-looking strings replaced by their size."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if len(value) >= MIN_BASE64_CHARS and _BASE64.fullmatch(value):
            return {"omitted_base64_chars": len(value)}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"omitted_bytes": len(value)}
    if isinstance(value, enum.Enum):
        return clean(value.value)
    if isinstance(value, Mapping):
        return clean_mapping(value, audio=False)
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean_mapping(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, audio=False
        )
    return clean(str(value))
