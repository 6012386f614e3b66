"""Agent profiles, and the routing table that picks one for each dialed number.

One callbridge deployment can answer several numbers with different agents. The routing file
(TOML) maps each dialed number to a named profile; a profile overrides only what differs from
the profile built from environment variables. The file is validated once, at start-up, and
every problem is reported together, so a bad file stops the service before the first call
rather than misrouting it.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeGuard, get_args

from callbridge.telephony.numbers import is_e164, parse_e164

AudioFormat = Literal["g711_ulaw", "pcm16"]
"""The audio format between callbridge and Voice Live."""

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise phone agent. The caller hears you through a phone line: "
    "keep answers short, speak naturally, and never read out markup or lists."
)

DEFAULT_VOICE = "en-US-Ava:DragonHDLatestNeural"

MediaRate = Literal[16000, 24000]
"""The PCM16 rates ACS media streaming offers (``pcm16KMono`` / ``pcm24KMono``)."""


@dataclass(frozen=True, slots=True)
class VoiceLiveAgent:
    """A Voice Live agent (Azure AI Foundry) that answers instead of a bare model."""

    name: str
    project: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Bounds on one call, so a stuck or abusive call cannot hold a replica's capacity."""

    max_call_s: float = 3600.0
    """The call is ended (goodbye, then hang-up) after this long."""
    tool_timeout_s: float = 10.0
    """A tool that takes longer returns an error result to the model."""


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Who answers a call: prompt, voice, greeting, model or agent, tools and audio format."""

    name: str = "default"
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = DEFAULT_VOICE
    greeting: str | None = None
    """Spoken verbatim first; without it the model greets in its own words."""
    audio_format: AudioFormat = "g711_ulaw"
    """The audio format between callbridge and Voice Live."""
    media_rate: MediaRate = 16000
    """The PCM16 rate ACS streams at for this profile's calls."""
    model: str | None = None
    """Overrides ``VOICE_LIVE_MODEL`` for this profile; ignored when ``agent`` is set."""
    agent: VoiceLiveAgent | None = None
    tools: tuple[str, ...] = ()
    """Tool names offered to the model: ``end_call``, ``transfer_call`` or user tools."""
    tools_module: str | None = None
    """Importable Python module whose tools (see ``callbridge.voice.tools``) the profile may use."""
    transfer_to: str | None = None
    """E.164 number (or ACS raw id) that ``transfer_call`` transfers the caller to."""
    limits: CallLimits = CallLimits()
    record: bool = False
    """Record this profile's calls (see ``callbridge.recording``): off by default, since a
    recording holds the caller's voice and words."""


BUILTIN_TOOLS: Final = ("end_call", "transfer_call")
"""Tools callbridge implements itself; any other tool name comes from a profile's tools_module."""

Unrouted = Literal["reject", "redirect"]
"""What happens to a call to a number that no listed route or default profile covers."""


class RoutingError(ValueError):
    """The routing file cannot be used. The message lists every problem, one per line.

    Each line names the file and the dotted key, so every mistake is fixed in one pass instead
    of one restart per mistake. ``problems`` holds the same lines as a tuple.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Routing:
    """Which agent profile answers a call, by the number the caller dialed."""

    profiles: Mapping[str, AgentProfile]
    """Every profile, by name (``AgentProfile.name``)."""
    numbers: Mapping[str, str]
    """Canonical E.164 number -> profile name."""
    default_profile: str | None
    """Answers every number that ``numbers`` does not list; None leaves those unrouted."""
    redirect_to: str | None = None
    """E.164 number that unrouted calls are redirected to; None rejects them."""

    def __post_init__(self) -> None:
        # Copied and read-only: one table is shared by every call and must not change under them.
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        problems = [
            f"profiles[{key!r}] is named {profile.name!r}"
            for key, profile in self.profiles.items()
            if profile.name != key
        ]
        problems += [
            f"numbers[{number!r}] is not E.164 or names an unknown profile {name!r}"
            for number, name in self.numbers.items()
            if not is_e164(number) or name not in self.profiles
        ]
        if self.default_profile is not None and self.default_profile not in self.profiles:
            problems.append(f"default_profile {self.default_profile!r} is not a profile")
        if self.redirect_to is not None and not is_e164(self.redirect_to):
            problems.append("redirect_to is not an E.164 number")
        if problems:
            raise ValueError("inconsistent routing: " + "; ".join(problems))

    def profile_for(self, dialed: str) -> AgentProfile | None:
        """The profile that answers a call to ``dialed`` (E.164 or ACS raw id ``4:+...``).

        A listed number gets its own profile, any other number the default profile. None means
        nobody answers: redirect the call to ``redirect_to`` if set, otherwise reject it.
        """
        number = parse_e164(dialed)
        name = self.numbers.get(number) if number is not None else None
        if name is None:
            name = self.default_profile
        return None if name is None else self.profiles[name]

    def profile(self, name: str) -> AgentProfile:
        """The profile called ``name``, e.g. the one a call's token was signed for.

        Raises:
            KeyError: if there is no such profile.
        """
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(f"unknown agent profile {name!r}") from None

    @classmethod
    def single(cls, profile: AgentProfile) -> Routing:
        """Routing without a file: ``profile`` answers every number."""
        return cls(
            profiles={profile.name: profile},
            numbers={},
            default_profile=profile.name,
            redirect_to=None,
        )


def load_routing(path: Path, base: AgentProfile) -> Routing:
    """Read and validate the routing file at ``path``.

    Each profile starts as ``base`` (the profile built from environment variables) and
    overrides only the keys its table sets; its name is its table name. ``instructions_file``
    is read relative to the routing file's directory, so the file and its prompts are deployed
    and moved together.

    Raises:
        RoutingError: listing every problem in the file, not just the first.
    """
    problems = _Problems(path)
    document = read_toml_file(path, problems.file, "routing")
    routing = None if document is None else _Loader(path, base, problems).routing(document)
    if routing is None or problems.lines:
        raise RoutingError(problems.lines)
    return routing


# --- Reading the file ----------------------------------------------------------------------

Key = tuple[str, ...]
"""A dotted key as its parts: ``("profiles", "support", "media_rate")``."""

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
    "tools",
    "tools_module",
    "transfer_to",
    "limits",
    "record",
)
_PROFILE_STRINGS: Final = ("greeting", "voice", "model")
_LIMIT_KEYS: Final = ("max_call_s", "tool_timeout_s")
_AGENT_KEYS: Final = ("name", "project", "version")
_UNROUTED: Final[tuple[Unrouted, ...]] = ("reject", "redirect")

_PROFILE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Profile names travel in signed call tokens and in logs, so they stay short and plain."""
_TOOL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
"""The function-name rule of realtime tool definitions."""
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_E164_RULE: Final = 'an E.164 number: "+", country code, number (e.g. "+18005550100")'
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


def _dotted(key: Key) -> str:
    """``key`` as TOML writes it: bare parts as they are, others quoted."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in key)


def _show(value: object) -> str:
    """``value`` as TOML would write it, shortened so a long prompt does not flood the error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > _MAX_SHOWN:
            value = value[: _MAX_SHOWN - 1] + "\N{HORIZONTAL ELLIPSIS}"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``; did you mean "x"?`` when an option is close to ``word``, else nothing."""
    close = difflib.get_close_matches(word, options, n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass: `max_call_s = true` must not read as one second.
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Problems:
    """Collects problems as ``<file>: <dotted.key> = <value>: <what is wrong>`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def file(self, problem: str) -> None:
        self.lines.append(f"{self.path}: {problem}")

    def add(self, key: Key, problem: str, *value: object) -> None:
        """Record ``problem`` at ``key``; a ``value``, if given, is shown after the key."""
        shown = "".join(f" = {_show(item)}" for item in value[:1])
        self.lines.append(f"{self.path}: {_dotted(key)}{shown}: {problem}")


class _Loader:
    """Turns a parsed routing document into a ``Routing``, recording every problem on the way.

    Every reader takes the table and the full dotted key of the value it reads, and returns
    None both when the key is absent and when its value is invalid (after recording why). The
    loader then carries on, so one run reports every problem in the file.
    """

    def __init__(self, path: Path, base: AgentProfile, problems: _Problems) -> None:
        self.path = path
        self.base = base
        self.problems = problems

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
                self.problems.add(key, f"the number must be {_E164_RULE}", target)
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
            self.problems.add(key, f"must be a table ([{_dotted(key)}])", raw)
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
            "tools": self.tools,
            "tools_module": self.module_name,
            "transfer_to": self.e164,
            "limits": self.limits,
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
        self.check_tools(profile, raw, key)
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

    def check_tools(self, profile: AgentProfile, raw: Mapping[str, Any], key: Key) -> None:
        """Cross-checks on the merged profile, so values inherited from the base count too.

        A key the table sets but got wrong has been reported already; it is not reported
        again as missing.
        """
        if profile.tools_module is None and "tools_module" not in raw:
            for name in profile.tools:
                if name not in BUILTIN_TOOLS:
                    self.problems.add(
                        (*key, "tools"),
                        f'"{name}" needs tools_module: it is not a built-in tool'
                        f" ({', '.join(BUILTIN_TOOLS)}){did_you_mean(name, BUILTIN_TOOLS)}",
                    )
        if (
            "transfer_call" in profile.tools
            and "transfer_to" not in raw
            and not profile.transfer_to
        ):
            self.problems.add((*key, "transfer_to"), 'required when tools include "transfer_call"')

    def limits(self, raw: Mapping[str, Any], key: Key) -> CallLimits | None:
        table = self.table(raw, key)
        if table is None:
            return None
        self.unknown_keys(table, key, _LIMIT_KEYS)
        changes: dict[str, float] = {}
        for name in _LIMIT_KEYS:
            value = table.get(name)
            if value is None:
                continue
            if _is_number(value) and 0 < value < math.inf:
                changes[name] = float(value)
            else:
                self.problems.add((*key, name), "must be a positive number of seconds", value)
        # Limits the table does not set keep the base profile's values.
        return replace(self.base.limits, **changes)

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

    # -- typed values --

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
            quote = f' (quote it: "{value}")' if _is_number(value) else ""
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
            self.problems.add(key, f"must be {_E164_RULE}", value)
        return number

    def table(self, table: Mapping[str, Any], key: Key) -> dict[str, Any] | None:
        value = table.get(key[-1])
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.add(key, f"must be a table ([{_dotted(key)}])", value)
            return None
        return value
