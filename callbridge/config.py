"""Settings from environment variables, validated once at start-up.

Every problem is collected and reported together, naming the variable, so a misconfigured
deployment fails at boot with one readable message instead of on the first call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args
from urllib.parse import urlsplit

from callbridge.routing import DEFAULT_INSTRUCTIONS, DEFAULT_VOICE, AgentProfile, AudioFormat
from callbridge.telephony.auth import MIN_KEY_BYTES

LogFormat = Literal["auto", "console", "json"]

_T = TypeVar("_T")


class ConfigError(ValueError):
    """The environment does not describe a runnable callbridge; the message lists every issue."""


@dataclass(frozen=True, slots=True)
class VoiceLiveSettings:
    """Where and how to reach Azure AI Voice Live."""

    endpoint: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    """Without a key, Entra ID (``DefaultAzureCredential``) is used."""
    transcription_model: str = "azure-speech"
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PacingSettings:
    """The frame pacer's timing model (see ``callbridge.bridge.pacer``)."""

    lead_ms: float = 40.0
    """How far ahead of real time agent audio may be released to ACS."""
    playout_delay_ms: float = 60.0
    """Estimated time from a frame being due to the caller hearing it (ACS's playout buffer)."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Who may open a media socket."""

    enabled: bool = True
    signing_key: bytes | None = field(default=None, repr=False)
    """Signs per-call tokens; every replica of a deployment shares it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``callbridge serve`` needs."""

    voice_live: VoiceLiveSettings
    auth: AuthSettings
    profile: AgentProfile = field(default_factory=AgentProfile)
    pacing: PacingSettings = PacingSettings()
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: LogFormat = "auto"
    log_level: str = "INFO"


class _Reader:
    """Reads typed values from an environment mapping, collecting errors instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def required(self, name: str, hint: str) -> str:
        value = self.text(name)
        if value is None:
            self.errors.append(f"{name} is required ({hint})")
            return ""
        return value

    def number(self, name: str, default: _T, parse: Callable[[str], _T], low: float) -> _T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self.errors.append(f"{name}={raw!r} is not a number")
            return default
        if not isinstance(value, int | float) or value < low:
            self.errors.append(f"{name}={raw!r} must be >= {low:g}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        assert value is not None
        if value not in allowed:
            self.errors.append(f"{name}={value!r} must be one of {', '.join(allowed)}")
            return default
        return value


def _check_endpoint(reader: _Reader, name: str, value: str) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("https", "wss", "http", "ws") or not parts.hostname:
        reader.errors.append(f"{name}={value!r} must be an https:// (or wss://) URL")


def _auth(reader: _Reader) -> AuthSettings:
    if reader.choice("CALLBRIDGE_AUTH", "on", ("on", "off")) == "off":
        return AuthSettings(enabled=False)
    key = reader.text("CALLBRIDGE_SIGNING_KEY")
    if key is None:
        reader.errors.append(
            "CALLBRIDGE_SIGNING_KEY is required: a random secret of at least "
            f"{MIN_KEY_BYTES} characters, shared by all replicas "
            "(or CALLBRIDGE_AUTH=off, for local development only)"
        )
        return AuthSettings()
    if len(key.encode()) < MIN_KEY_BYTES:
        reader.errors.append(f"CALLBRIDGE_SIGNING_KEY must be at least {MIN_KEY_BYTES} characters")
    return AuthSettings(enabled=True, signing_key=key.encode())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate ``Settings`` from the environment.

    Raises:
        ConfigError: listing every missing or invalid variable.
    """
    reader = _Reader(os.environ if env is None else env)
    endpoint = reader.required(
        "AZURE_VOICE_LIVE_ENDPOINT", "e.g. https://<resource>.services.ai.azure.com"
    )
    _check_endpoint(reader, "AZURE_VOICE_LIVE_ENDPOINT", endpoint)
    voice_live = VoiceLiveSettings(
        endpoint=endpoint,
        model=reader.text("VOICE_LIVE_MODEL", "gpt-realtime") or "gpt-realtime",
        api_key=reader.text("AZURE_VOICE_LIVE_API_KEY"),
        transcription_model=reader.text("VOICE_LIVE_TRANSCRIPTION_MODEL", "azure-speech")
        or "azure-speech",
        connect_timeout_s=reader.number("VOICE_LIVE_CONNECT_TIMEOUT_S", 10.0, float, 0.1),
    )
    audio_format = reader.choice("CALLBRIDGE_AUDIO_FORMAT", "g711_ulaw", get_args(AudioFormat))
    profile = AgentProfile(
        instructions=reader.text("AGENT_INSTRUCTIONS", DEFAULT_INSTRUCTIONS) or "",
        voice=reader.text("VOICE_LIVE_VOICE", DEFAULT_VOICE) or DEFAULT_VOICE,
        greeting=reader.text("AGENT_GREETING"),
        audio_format=audio_format,  # type: ignore[arg-type]  # checked by choice()
    )
    pacing = PacingSettings(
        lead_ms=reader.number("CALLBRIDGE_PACER_LEAD_MS", 40.0, float, 0),
        playout_delay_ms=reader.number("CALLBRIDGE_PLAYOUT_DELAY_MS", 60.0, float, 0),
    )
    settings = Settings(
        voice_live=voice_live,
        auth=_auth(reader),
        profile=profile,
        pacing=pacing,
        host=reader.text("CALLBRIDGE_HOST", "127.0.0.1") or "127.0.0.1",
        port=reader.number("CALLBRIDGE_PORT", 8000, int, 0),
        log_format=reader.choice("LOG_FORMAT", "auto", get_args(LogFormat)),  # type: ignore[arg-type]
        log_level=reader.choice(
            "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        ),
    )
    if reader.errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(reader.errors))
    return settings
