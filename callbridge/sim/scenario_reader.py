"""Typed reads of a scenario file's values that record problems instead of raising.

:class:`ScenarioReader` is what the readers of each table of a scenario file (``[caller]``,
``[agent]``, ``[expect]`` and the top level) build on: strings, numbers, choices, tables and
lists, unknown keys, and the WAV and transcript files a scenario names. A problem is recorded
as ``<file>: <dotted.field>: <problem>``, the value shown as TOML would write it, and the read
returns None, so one run reports every problem in the file.
"""

from __future__ import annotations

import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from callbridge.process import toml_file
from callbridge.process.toml_file import Problems, did_you_mean, is_finite_number, shorten


def show(value: object) -> str:
    """``value`` as TOML would write it, shortened: as :func:`toml_file.show
    <callbridge.process.toml_file.show>` shows it, but a list is ``[...]`` and a string escapes
    only quotes and backslashes (other characters are shown as they are)."""
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, str):
        return '"' + shorten(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return toml_file.show(value)


def _dotted(where: str, key: str) -> str:
    """The dotted name of ``key`` in the table at ``where`` ("" for the top level)."""
    return f"{where}.{key}" if where else key


class ScenarioReader:
    """Reads values of one scenario file, recording every problem.

    Readers take the table holding a value, the dotted name of that table and the key; they
    return None both when the key is absent and when its value is invalid (after recording
    why), and the caller carries on.
    """

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.folder = path.parent
        self.problems = problems

    # -- files --

    def wav(self, table: Mapping[str, Any], where: str, key: str) -> tuple[bytes, int, Path] | None:
        """A PCM16 mono WAV named relative to the scenario file: ``(pcm, rate, path)``."""
        name = self.string(table, where, key)
        if name is None:
            return None
        at = f"{where}.{key}"
        file = self.folder / name
        if not file.is_file():
            self.problems.at(at, f"no such file: {file}")
            return None
        try:
            with wave.open(str(file), "rb") as wav:
                channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
                pcm = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            self.problems.at(at, f"{file} is not a PCM WAV file ({exc or 'truncated'})")
            return None
        except OSError as exc:
            self.problems.at(at, f"cannot read {file}: {exc.strerror or exc}")
            return None
        if channels != 1 or width != 2:
            self.problems.at(
                at,
                f"{file} must be PCM16 mono; it has {channels} channel(s)"
                f" of {8 * width}-bit samples",
            )
            return None
        if not pcm:
            self.problems.at(at, f"{file} holds no audio")
            return None
        return pcm, rate, file

    def sibling_text(self, audio: Path, at: str) -> str | None:
        """The transcript beside an audio file (``x.wav`` -> ``x.txt``), if there is one."""
        text_file = audio.with_suffix(".txt")
        if not text_file.is_file():
            return None
        try:
            return text_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.at(at, f"cannot read the transcript {text_file}: {exc}")
            return None

    # -- typed values --

    def unknown_keys(self, table: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
        """Report keys of ``table`` that are not in ``allowed``, with the closest valid key.

        Errors, not warnings: a misspelt expectation silently ignored would pass unchecked.
        """
        for name in table:
            if name not in allowed:
                hint = did_you_mean(name, allowed) or f"; valid keys: {', '.join(allowed)}"
                self.problems.at(_dotted(where, name), f"unknown key{hint}")

    def string(self, table: Mapping[str, Any], where: str, key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        at = _dotted(where, key)
        if not isinstance(value, str):
            quote = f' (quote it: "{value}")' if is_finite_number(value) else ""
            self.problems.at(at, f"must be a string, not {show(value)}{quote}")
            return None
        if not value.strip():
            self.problems.at(at, "must not be empty; remove the key instead")
            return None
        return value

    def number(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        *,
        minimum: float,
        exclusive: bool = False,
    ) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        if not is_finite_number(value) or value < minimum or (exclusive and value == minimum):
            bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
            self.problems.at(_dotted(where, key), f"must be a number {bound}, not {show(value)}")
            return None
        return float(value)

    def choice(
        self, table: Mapping[str, Any], where: str, key: str, allowed: Sequence[str]
    ) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in allowed:
            options = " or ".join(f'"{option}"' for option in allowed)
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.problems.at(_dotted(where, key), f"must be {options}, not {show(value)}{hint}")
            return None
        return value

    def table(self, table: Mapping[str, Any], where: str, key: str) -> dict[str, Any] | None:
        value = table.get(key)
        if value is None:
            return None
        at = _dotted(where, key)
        if not isinstance(value, dict):
            example = f"[{at}]" if not where else "{ ... }"
            self.problems.at(at, f"must be a table ({example}), not {show(value)}")
            return None
        return value

    def tool_names(self, table: Mapping[str, Any], where: str, key: str) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problems.at(
                _dotted(where, key),
                f'must be a list of tool names such as ["end_call"], not {show(value)}',
            )
            return None
        return value

    def array(self, table: Mapping[str, Any], where: str, key: str) -> list[Any] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.problems.at(_dotted(where, key), f"must be a list, not {show(value)}")
            return None
        return value
