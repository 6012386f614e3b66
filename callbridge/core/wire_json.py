"""JSON read off the wire, once per message: orjson where it is installed, else the standard
library's ``json``.

The bridge reads two or three JSON messages per 20 ms of every call: the caller's ACS media
frames (``core.acs_media``) and Voice Live's events (``adapters.voice_events``). orjson reads
them in a third to a half of ``json.loads``'s time; in a 20-call bench that was 5 % of the
bridge's CPU (``benchmarks/compare.py``). It comes with ``callbridge[fast]``, as uvloop does, and
is in the image; without it, every message is read as before.

orjson is the stricter reader: it refuses ``NaN``, ``Infinity``, numbers too large for a
double, and text with lone surrogates (``\\ud800``), all of which ``json.loads`` takes. A
message orjson refuses is read again by ``json.loads``, so each message is read as the standard
library reads it (a tolerant reader); only text neither can read is an error. One difference
stays: an integer beyond 64 bits comes back from orjson as a float. No field the bridge reads
can be one (sample rates, indexes and milliseconds), and such a field is refused as malformed
either way by the checks that read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import import_module

_FAST: Callable[[str | bytes], object] | None
try:
    _FAST = import_module("orjson").loads
except ImportError:  # callbridge[fast] not installed
    _FAST = None


def loads(text: str | bytes) -> object:
    """The JSON value ``text`` holds.

    Raises:
        ValueError: ``text`` is not JSON (``json.JSONDecodeError``), or bytes that are not
            UTF-8 (``UnicodeDecodeError``), as ``json.loads`` raises them.
    """
    if _FAST is not None:
        try:
            return _FAST(text)
        except ValueError:
            pass  # read again below: what orjson refuses, json may take
    return json.loads(text)


def fast() -> bool:
    """Whether orjson reads the messages."""
    return _FAST is not None
