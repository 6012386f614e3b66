"""Reading the conformance corpus, and comparing JSON shapes (shared by the conformance tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def load(relative: str) -> Any:
    """A corpus file's JSON: ``load("acs/callback_CallConnected.sdk_recording.json")``."""
    return json.loads((HERE / relative).read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    """``value`` with every leaf replaced by its JSON type, and every list by its items' shape
    (the first item's): two payloads of one shape differ only in their values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def shape_differences(real: Any, ours: Any, path: str = "") -> list[str]:
    """Where ``ours`` differs in shape from ``real``: missing or extra keys, other types."""
    if isinstance(real, dict) and isinstance(ours, dict):
        problems = [f"{path}.{key}: missing" for key in real if key not in ours]
        problems += [f"{path}.{key}: not in the real payload" for key in ours if key not in real]
        for key in real.keys() & ours.keys():
            problems += shape_differences(real[key], ours[key], f"{path}.{key}")
        return problems
    if isinstance(real, list) and isinstance(ours, list):
        if real and ours:
            return shape_differences(real[0], ours[0], f"{path}[0]")
        return []
    real_shape, our_shape = shape(real), shape(ours)
    return [] if real_shape == our_shape else [f"{path}: {our_shape}, not {real_shape}"]
