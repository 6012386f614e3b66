"""A JSON array read one element at a time (pure).

``json.loads`` reads a whole body in one call, which no other task can interrupt: a megabyte of
small events holds the event loop for tens of milliseconds. Read element by element, a reader
can stop at the first element past its limit, and let the loop run between slices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
"""JSON's whitespace (RFC 8259, section 2)."""


def json_elements(text: str) -> Iterator[object]:
    """The elements of the JSON array ``text``, in order; any other JSON value, alone.

    Raises:
        json.JSONDecodeError: where ``text`` stops being JSON, or nests deeper than Python's
            recursion limit, once the reader gets there (the elements before it have been
            yielded).
    """
    index = _skip(text, 0)
    if not text.startswith("[", index):
        value, end = _decode(text, index)
        _require_end(text, end)
        yield value
        return
    index = _skip(text, index + 1)
    if not text.startswith("]", index):
        while True:
            value, end = _decode(text, index)
            yield value
            index = _skip(text, end)
            if not text.startswith(",", index):
                break
            index = _skip(text, index + 1)
        if not text.startswith("]", index):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    _require_end(text, index + 1)


def _decode(text: str, index: int) -> tuple[object, int]:
    try:
        return _DECODER.raw_decode(text, index)
    except RecursionError:  # what json.loads raises too, for "[[[[..."
        raise json.JSONDecodeError("Nested too deep", text, index) from None


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _require_end(text: str, index: int) -> None:
    end = _skip(text, index)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
