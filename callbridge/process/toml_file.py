"""Reading the TOML files callbridge is configured with (routing) and tested with (scenarios).

Both report every problem in a file at once, each as ``<file>: <dotted.key>: <what is wrong>``
(the routing file shows the value after the key: ``<dotted.key> = <value>``), so every mistake
is fixed in one pass instead of one restart per mistake.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeGuard

from callbridge.core.numbers import parse_e164

Key = tuple[str, ...]
"""A dotted key as its parts: ``("profiles", "support", "media_rate")``."""

E164_RULE: Final = 'an E.164 number: "+", country code, number (e.g. "+18005550100")'

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_SHOWN: Final = 40


def read_toml_file(path: Path, report: Callable[[str], None], kind: str) -> dict[str, Any] | None:
    """A configuration file's TOML document, or None after reporting why it cannot be used.

    ``kind`` names the file in the messages (``"routing"``, ``"scenario"``).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        report(f"cannot read the {kind} file: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        report("not UTF-8 text (TOML files are UTF-8)")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says where: "(at line N, column M)".
        report(f"invalid TOML: {exc}")
        return None


def dotted(key: Key) -> str:
    """``key`` as TOML writes it: bare parts as they are, others quoted."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in key)


def show(value: object) -> str:
    """``value`` as TOML would write it, shortened so a long prompt does not flood the error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(shorten(value), ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def shorten(text: str) -> str:
    """``text`` cut to at most 40 characters, an ellipsis at the cut, so that a long prompt
    does not flood an error message."""
    if len(text) > _MAX_SHOWN:
        return text[: _MAX_SHOWN - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return text


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``; did you mean "x"?`` when an option is close to ``word``, else nothing."""
    close = difflib.get_close_matches(word, options, n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass: `max_call_s = true` must not read as one second.
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A number that is neither ``inf`` nor ``nan`` (both are TOML floats)."""
    return is_number(value) and math.isfinite(value)


def is_whole_number(value: object) -> TypeGuard[int]:
    """An integer as written: neither ``true`` nor ``16000.0`` is one."""
    return type(value) is int


class Problems:
    """Collects problems as ``<file>: <dotted.key> = <value>: <what is wrong>`` lines (``add``),
    or ``<file>: <where>: <what is wrong>`` where the caller writes out the place (``at``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def file(self, problem: str) -> None:
        self.lines.append(f"{self.path}: {problem}")

    def add(self, key: Key, problem: str, *value: object) -> None:
        """Record ``problem`` at ``key``; a ``value``, if given, is shown after the key."""
        shown = "".join(f" = {show(item)}" for item in value[:1])
        self.at(f"{dotted(key)}{shown}", problem)

    def at(self, where: str, problem: str) -> None:
        """Record ``problem`` at ``where``, a place already written out (``caller.steps[0]``)."""
        self.lines.append(f"{self.path}: {where}: {problem}")


class TomlReader:
    """Typed reads of a parsed TOML document that record problems instead of raising.

    Every reader takes the table and the full dotted key of the value it reads, and returns
    None both when the key is absent and when its value is invalid (after recording why). The
    caller then carries on, so one run reports every problem in the file.
    """

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def unknown_keys(self, table: Mapping[str, Any], key: Key, allowed: Sequence[str]) -> None:
        """Report keys of ``table`` that are not in ``allowed``, with the closest valid key.

        Unknown keys are errors, not warnings: a misspelt ``greting`` silently ignored would
        leave callers hearing the wrong greeting, with nothing in the logs to say why.
        """
        for name in table:
            if name not in allowed:
                hint = did_you_mean(name, allowed) or f"; valid keys: {', '.join(allowed)}"
                self.problems.add((*key, name), f"unknown key{hint}")

    def string(self, table: Mapping[str, Any], key: Key) -> str | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, str):
            quote = f' (quote it: "{value}")' if is_number(value) else ""
            self.problems.add(key, f"must be a string{quote}", value)
            return None
        if not value.strip():
            self.problems.add(key, "must not be empty; remove the key instead", value)
            return None
        return value

    def choice(self, table: Mapping[str, Any], key: Key, allowed: Sequence[str]) -> str | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, str) or value not in allowed:
            options = " or ".join(f'"{option}"' for option in allowed)
            self.problems.add(key, f"must be {options}", value)
            return None
        return value

    def e164(self, table: Mapping[str, Any], key: Key) -> str | None:
        value = self.string(table, key)
        if value is None:
            return None
        number = parse_e164(value)
        if number is None:
            self.problems.add(key, f"must be {E164_RULE}", value)
        return number

    def table(self, table: Mapping[str, Any], key: Key) -> dict[str, Any] | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.add(key, f"must be a table ([{dotted(key)}])", value)
            return None
        return value
