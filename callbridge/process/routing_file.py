"""The routing file: which agent profile answers each dialed number (TOML).

A profile overrides only what differs from the profile built from environment variables. The
file is validated once, at start-up, and every problem is reported together, so a bad file stops
the service before the first call rather than misrouting it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, get_args

from callbridge.adapters.fallback_audio import load_fallback_clip
from callbridge.core.interruption_policy import InterruptionSettings
from callbridge.core.numbers import parse_e164
from callbridge.core.profiles import (
    AgentProfile,
    AudioFormat,
    CallLimits,
    MediaRate,
    Routing,
    Unrouted,
    VoiceLiveAgent,
)
from callbridge.process.routing_tools import ToolChecks
from callbridge.process.toml_file import (
    E164_RULE,
    Key,
    Problems,
    TomlReader,
    did_you_mean,
    dotted,
    is_number,
    read_toml_file,
)


class RoutingError(ValueError):
    """The routing file cannot be used. The message lists every problem, one per line.

    Each line names the file and the dotted key, so every mistake is fixed in one pass instead
    of one restart per mistake. ``problems`` holds the same lines as a tuple.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def load_routing(path: Path, base: AgentProfile) -> Routing:
    """Read and validate the routing file at ``path``.

    Each profile starts as ``base`` (the profile built from environment variables) and
    overrides only the keys its table sets; its name is its table name. ``instructions_file``
    is read relative to the routing file's directory, so the file and its prompts are deployed
    and moved together.

    Raises:
        RoutingError: listing every problem in the file, not just the first.
    """
    problems = Problems(path)
    document = read_toml_file(path, problems.file, "routing")
    routing = None if document is None else _Loader(path, base, problems).routing(document)
    if routing is None or problems.lines:
        raise RoutingError(problems.lines)
    return routing


_TOP_KEYS: Final = ("default_profile", "unrouted", "redirect_to", "numbers", "profiles")
_PROFILE_KEYS: Final = (
    "instructions",
    "instructions_file",
    "greeting",
    "voice",
    "model",
    "agent",
    "audio_format",
    "media_rate",
    "echo_reference",
    "tools",
    "tools_module",
    "transfer_to",
    "fallback_audio",
    "fallback_transfer_to",
    "limits",
    "interruptions",
    "record",
)
_PROFILE_STRINGS: Final = ("greeting", "voice", "model")
_LIMIT_KEYS: Final = ("max_call_s", "tool_timeout_s")
_INTERRUPTION_NUMBERS: Final = (
    "min_interruption_ms",
    "decision_window_ms",
    "caller_quiet_ms",
    "voiced_rms",
)
_AGENT_KEYS: Final = ("name", "project", "version")
_UNROUTED: Final[tuple[Unrouted, ...]] = ("reject", "redirect")

_PROFILE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Profile names travel in signed call tokens and in logs, so they stay short and plain."""
_TOOL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
"""The function-name rule of realtime tool definitions."""
_MAX_SHOWN: Final = 40


class _Loader(TomlReader):
    """Turns a parsed routing document into a ``Routing``, recording every problem on the way."""

    def __init__(self, path: Path, base: AgentProfile, problems: Problems) -> None:
        super().__init__(problems)
        self.path = path
        self.base = base
        self.tool_checks = ToolChecks(problems)

    # -- the whole file --

    def routing(self, document: Mapping[str, Any]) -> Routing | None:
        self.unknown_keys(document, (), _TOP_KEYS)
        raw_profiles = self.table(document, ("profiles",)) or {}
        if not raw_profiles and "profiles" not in document:
            self.problems.file("no profiles; add at least one [profiles.NAME] table")
        elif not raw_profiles and isinstance(document["profiles"], dict):
            self.problems.add(("profiles",), "no profiles; add at least one [profiles.NAME] table")
        names = tuple(raw_profiles)
        profiles = {
            name: profile
            for name, raw in raw_profiles.items()
            if (profile := self.profile(name, raw)) is not None
        }
        numbers = self.numbers(document, names)
        default = self.profile_name(document, ("default_profile",), names)
        redirect_to = self.unrouted(document)
        if names and "numbers" not in document and "default_profile" not in document:
            # Valid on its own terms, but no call would ever reach an agent.
            self.problems.file(
                "no number reaches a profile; list numbers under [numbers] or set default_profile"
            )
        if self.problems.lines:
            return None
        return Routing(profiles, numbers, default, redirect_to)

    def numbers(self, document: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
        """``[numbers]``: canonical E.164 -> profile name, each number listed once."""
        table = self.table(document, ("numbers",)) or {}
        numbers: dict[str, str] = {}
        written_as: dict[str, str] = {}
        for written, target in table.items():
            key = ("numbers", written)
            name = self.profile_name(table, key, names)
            number = parse_e164(written)
            if number is None:
                self.problems.add(key, f"the number must be {E164_RULE}", target)
            elif number in written_as:
                # Two spellings of one line: which profile answers would depend on key order.
                self.problems.add(key, f'same number as "{written_as[number]}"', target)
            else:
                written_as[number] = written
                if name is not None:
                    numbers[number] = name
        return numbers

    def profile_name(self, table: Mapping[str, Any], key: Key, names: Sequence[str]) -> str | None:
        """A string naming one of the profiles the file defines."""
        name = self.string(table, key)
        if name is not None and name not in names:
            defined = ", ".join(names) or "none"
            self.problems.add(
                key, f"no such profile{did_you_mean(name, names)} (defined: {defined})", name
            )
            return None
        return name

    def unrouted(self, document: Mapping[str, Any]) -> str | None:
        """Check ``unrouted`` and ``redirect_to``; the redirect number if calls are redirected."""
        mode = self.choice(document, ("unrouted",), _UNROUTED)
        redirect_to = self.e164(document, ("redirect_to",))
        if mode is None and "unrouted" in document:
            return None  # reported; whether redirect_to belongs is unknowable
        if "default_profile" in document and "unrouted" in document:
            self.problems.add(
                ("unrouted",),
                "has no effect: default_profile answers every number not listed; remove one",
                document["unrouted"],
            )
        elif mode == "redirect" and "redirect_to" not in document:
            self.problems.add(("redirect_to",), 'required when unrouted = "redirect"')
        elif mode != "redirect" and "redirect_to" in document:
            self.problems.add(
                ("redirect_to",),
                'only used when unrouted = "redirect"; set that, or remove redirect_to',
                document["redirect_to"],
            )
        return redirect_to if mode == "redirect" else None

    # -- one profile --

    def profile(self, name: str, raw: object) -> AgentProfile | None:
        """The profile ``[profiles.<name>]``: ``base`` with the table's keys applied."""
        key = ("profiles", name)
        if not isinstance(raw, dict):
            self.problems.add(key, f"must be a table ([{dotted(key)}])", raw)
            return None
        if not _PROFILE_NAME.fullmatch(name):
            self.problems.add(
                key, "a profile name is letters, digits, _ and -, starting with a letter or digit"
            )
        self.unknown_keys(raw, key, _PROFILE_KEYS)

        readers: dict[str, Callable[[Mapping[str, Any], Key], object]] = {
            "instructions": self.instructions,
            **dict.fromkeys(_PROFILE_STRINGS, self.string),
            "audio_format": lambda table, k: self.choice(table, k, get_args(AudioFormat)),
            "media_rate": self.media_rate,
            "echo_reference": self.flag,
            "tools": self.tools,
            "tools_module": self.module_name,
            "transfer_to": self.e164,
            "fallback_audio": self.fallback_audio,
            "fallback_transfer_to": self.e164,
            "limits": self.limits,
            "interruptions": self.interruptions,
            "agent": self.agent,
            "record": self.flag,
        }
        changes: dict[str, Any] = {"name": name}
        for field_name, read in readers.items():
            value = read(raw, (*key, field_name))
            if value is not None:
                changes[field_name] = value

        # A profile answers with a model or an agent. Setting one clears the other, or an agent
        # inherited from the base would silently win over the model the profile asks for.
        if "model" in raw and "agent" in raw:
            self.problems.add(key, "sets both model and agent; a profile uses one or the other")
        elif "model" in changes:
            changes["agent"] = None
        elif "agent" in changes:
            changes["model"] = None

        profile = replace(self.base, **changes)
        self.tool_checks.check(profile, raw, key)
        return profile

    def instructions(self, raw: Mapping[str, Any], key: Key) -> str | None:
        """``instructions`` inline, or the text of ``instructions_file`` (not both)."""
        inline = self.string(raw, key)
        file_key = (*key[:-1], "instructions_file")
        file_name = self.string(raw, file_key)
        if "instructions" in raw and "instructions_file" in raw:
            self.problems.add(file_key, "set instructions or instructions_file, not both")
            return None
        if file_name is None:
            return inline
        # Relative to the routing file, not the working directory, so the prompts are found
        # wherever `callbridge serve` is started from.
        prompt = (self.path.parent / file_name).resolve()
        try:
            text = prompt.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problem = (
                f"no such file: {prompt}"
                if isinstance(exc, FileNotFoundError)
                else f"cannot read {prompt}: {exc.strerror or exc}"
            )
            self.problems.add(file_key, problem, file_name)
            return None
        except UnicodeDecodeError:
            self.problems.add(file_key, f"{prompt} is not UTF-8 text", file_name)
            return None
        if not text:
            self.problems.add(file_key, f"{prompt} is empty", file_name)
            return None
        return text

    def fallback_audio(self, table: Mapping[str, Any], key: Key) -> str | None:
        """The absolute path of a checked fallback WAV, relative to the routing file."""
        file_name = self.string(table, key)
        if file_name is None:
            return None
        # Like instructions_file: found wherever `callbridge serve` is started from.
        clip = (self.path.parent / file_name).resolve()
        try:
            load_fallback_clip(clip)
        except ValueError as exc:
            self.problems.add(key, str(exc), file_name)
            return None
        return str(clip)

    def flag(self, table: Mapping[str, Any], key: Key) -> bool | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, bool):
            self.problems.add(key, "must be true or false", value)
            return None
        return value

    def media_rate(self, table: Mapping[str, Any], key: Key) -> int | None:
        value = table.get(key[-1])
        if value is None:
            return None
        # `type is int`: neither `true` nor `16000.0` is a sample rate.
        if type(value) is not int or value not in get_args(MediaRate):
            rates = " or ".join(str(rate) for rate in get_args(MediaRate))
            self.problems.add(key, f"must be {rates}", value)
            return None
        return value

    def tools(self, table: Mapping[str, Any], key: Key) -> tuple[str, ...] | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problems.add(key, 'must be a list of tool names, e.g. ["end_call"]', value)
            return None
        valid = True
        for index, name in enumerate(value):
            if not _TOOL_NAME.fullmatch(name):
                self.problems.add(
                    key, f'"{name}" is not a tool name (letters, digits, _ and -; at most 64)'
                )
                valid = False
            elif name in value[:index]:
                self.problems.add(key, f'"{name}" is listed twice')
                valid = False
        return tuple(value) if valid else None

    def module_name(self, table: Mapping[str, Any], key: Key) -> str | None:
        # Only the spelling is checked here; the module is imported when the tools are built.
        value = self.string(table, key)
        if value is not None and not all(part.isidentifier() for part in value.split(".")):
            self.problems.add(key, "must be a Python module name, e.g. myagent.tools", value)
            return None
        return value

    def limits(self, raw: Mapping[str, Any], key: Key) -> CallLimits | None:
        table = self.table(raw, key)
        if table is None:
            return None
        self.unknown_keys(table, key, _LIMIT_KEYS)
        changes = self.positive_numbers(table, key, _LIMIT_KEYS, "a positive number of seconds")
        # Limits the table does not set keep the base profile's values.
        return replace(self.base.limits, **changes)

    def positive_numbers(
        self, table: Mapping[str, Any], key: Key, names: Sequence[str], what: str
    ) -> dict[str, float]:
        """The finite positive numbers ``table`` sets among ``names``; others are problems."""
        numbers: dict[str, float] = {}
        for name in names:
            value = table.get(name)
            if value is None:
                continue
            if is_number(value) and 0 < value < math.inf:
                numbers[name] = float(value)
            else:
                self.problems.add((*key, name), f"must be {what}", value)
        return numbers

    def interruptions(self, raw: Mapping[str, Any], key: Key) -> InterruptionSettings | None:
        """``[profiles.X.interruptions]``: the numbers, and ``backchannels`` added to the
        English defaults (other languages' words)."""
        table = self.table(raw, key)
        if table is None:
            return None
        self.unknown_keys(table, key, (*_INTERRUPTION_NUMBERS, "backchannels"))
        base = self.base.interruptions
        changes: dict[str, Any] = self.positive_numbers(
            table, key, _INTERRUPTION_NUMBERS, "a positive number"
        )
        words = table.get("backchannels")
        if words is not None:
            if isinstance(words, list) and all(isinstance(w, str) and w.strip() for w in words):
                added = tuple(w.strip().lower() for w in words)
                changes["backchannels"] = tuple(dict.fromkeys((*base.backchannels, *added)))
            else:
                self.problems.add(
                    (*key, "backchannels"), 'must be a list of words such as ["vale", "ajá"]', words
                )
        return replace(base, **changes)

    def agent(self, raw: Mapping[str, Any], key: Key) -> VoiceLiveAgent | None:
        table = self.table(raw, key)
        if table is None:
            return None
        self.unknown_keys(table, key, _AGENT_KEYS)
        name = self.string(table, (*key, "name"))
        project = self.string(table, (*key, "project"))
        version = self.string(table, (*key, "version"))
        for required in ("name", "project"):
            if required not in table:
                self.problems.add((*key, required), "required for a Voice Live agent")
        if name is None or project is None:
            return None
        return VoiceLiveAgent(name=name, project=project, version=version)
