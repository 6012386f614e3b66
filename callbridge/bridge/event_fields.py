"""Fields of Voice Live events, checked as they are read.

The SDK deserializes events leniently: a field of the wrong type comes back as whatever the
JSON held. The bridge reads the fields it acts on through these, so a malformed event raises
``TypeError`` (logged and counted by the agent pump) instead of misleading the call.
"""

from __future__ import annotations


def text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value
