"""Settings from environment variables (and an optional routing file), validated at start-up.

Every problem is collected and reported together, naming the variable or routing key, so a
misconfigured deployment fails at boot with one readable message instead of on the first call.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar, get_args
from urllib.parse import urlsplit

from callbridge.adapters.fallback_audio import load_fallback_clip
from callbridge.core.call_token import MIN_KEY_BYTES
from callbridge.core.jwt_policy import ACS_ISSUER, ACS_JWKS_URL
from callbridge.core.numbers import parse_e164
from callbridge.core.profiles import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_VOICE,
    AgentProfile,
    AudioFormat,
    Routing,
)
from callbridge.core.session_rules import supported_transcription_models
from callbridge.core.settings import (
    AcsSettings,
    AuthSettings,
    CallOperationDeadlines,
    ContinuitySettings,
    EntraWebhookAuth,
    EventLoop,
    LogFormat,
    PacingSettings,
    Settings,
    VoiceLiveSettings,
)
from callbridge.process.routing_file import RoutingError, load_routing
from callbridge.process.runtime import uvloop_installed
from callbridge.tools import ToolError, module_tools, profile_tools

_T = TypeVar("_T")


LOG_TRANSCRIPTS: Final = "CALLBRIDGE_LOG_TRANSCRIPTS"
"""``on``: what callers and agents say is logged. Off by default for ``serve``: transcripts
are personal data."""


class ConfigError(ValueError):
    """The environment does not describe a runnable callbridge; the message lists every issue."""


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
        # float() takes "inf" and "nan"; neither is a usable number of seconds or calls.
        if not isinstance(value, int | float) or not math.isfinite(value) or value < low:
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


def _check_url(reader: _Reader, name: str, value: str, schemes: tuple[str, ...]) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        reader.errors.append(f"{name}={value!r} must be an {schemes[0]}:// URL")


def _secret(reader: _Reader, name: str, purpose: str, *, required: bool) -> str | None:
    value = reader.text(name)
    if value is None:
        if required:
            reader.errors.append(
                f"{name} is required: {purpose}, a random secret of at least {MIN_KEY_BYTES} "
                "characters (or CALLBRIDGE_AUTH=off, for local development only)"
            )
        return None
    if len(value.encode()) < MIN_KEY_BYTES:
        reader.errors.append(f"{name} must be at least {MIN_KEY_BYTES} characters")
    return value


def _auth(reader: _Reader, acs_resource_id: str | None) -> AuthSettings:
    enabled = reader.choice("CALLBRIDGE_AUTH", "on", ("on", "off")) == "on"
    tenant = reader.text("CALLBRIDGE_WEBHOOK_ENTRA_TENANT")
    audience = reader.text("CALLBRIDGE_WEBHOOK_ENTRA_AUDIENCE")
    if (tenant is None) != (audience is None):
        reader.errors.append(
            "CALLBRIDGE_WEBHOOK_ENTRA_TENANT and CALLBRIDGE_WEBHOOK_ENTRA_AUDIENCE go together"
        )
    entra = EntraWebhookAuth(tenant, audience) if tenant and audience else None
    signing_key = _secret(
        reader, "CALLBRIDGE_SIGNING_KEY", "it signs per-call tokens", required=enabled
    )
    webhook_secret = _secret(
        reader,
        "CALLBRIDGE_WEBHOOK_SECRET",
        "Event Grid sends it with each delivery (or set CALLBRIDGE_WEBHOOK_ENTRA_*)",
        required=enabled and entra is None,
    )
    api_key = _secret(reader, "CALLBRIDGE_API_KEY", "it guards POST /api/calls", required=False)
    if enabled and acs_resource_id is None:
        reader.errors.append(
            "ACS_RESOURCE_ID is required: the ACS resource's immutable id, the audience of the "
            "tokens ACS signs its callbacks and media connections with"
        )
    return AuthSettings(
        enabled=enabled,
        # Without authentication a per-process key still lets tokens carry call data.
        signing_key=signing_key.encode() if signing_key else secrets.token_bytes(MIN_KEY_BYTES),
        webhook_secret=webhook_secret,
        webhook_entra=entra,
        api_key=api_key,
    )


def _deadlines(reader: _Reader) -> CallOperationDeadlines:
    """How long each Call Automation request may take (``CallOperationDeadlines`` says why each
    default is what it is)."""
    default = CallOperationDeadlines()

    def seconds(name: str, value: float) -> float:
        return reader.number(name, value, float, 0.1)

    deadlines = CallOperationDeadlines(
        answer_s=seconds("CALLBRIDGE_ACS_ANSWER_DEADLINE_S", default.answer_s),
        dial_s=seconds("CALLBRIDGE_ACS_DIAL_DEADLINE_S", default.dial_s),
        transfer_s=seconds("CALLBRIDGE_ACS_TRANSFER_DEADLINE_S", default.transfer_s),
        hang_up_attempt_s=seconds("CALLBRIDGE_ACS_HANG_UP_DEADLINE_S", default.hang_up_attempt_s),
        hang_up_budget_s=seconds("CALLBRIDGE_ACS_HANG_UP_BUDGET_S", default.hang_up_budget_s),
        query_s=seconds("CALLBRIDGE_ACS_QUERY_DEADLINE_S", default.query_s),
    )
    if deadlines.hang_up_budget_s < deadlines.hang_up_attempt_s:
        reader.errors.append(
            "CALLBRIDGE_ACS_HANG_UP_BUDGET_S must be >= CALLBRIDGE_ACS_HANG_UP_DEADLINE_S "
            "(the budget is for all of a hang-up's attempts)"
        )
    return deadlines


def _number(reader: _Reader, name: str) -> str | None:
    raw = reader.text(name)
    if raw is None:
        return None
    number = parse_e164(raw)
    if number is None:
        reader.errors.append(f"{name} must be an E.164 phone number such as +18005550100")
    return number


def _env_profile(reader: _Reader) -> AgentProfile:
    """The profile every call gets without a routing file (and the base of each routed one)."""
    audio_format = reader.choice("CALLBRIDGE_AUDIO_FORMAT", "g711_ulaw", get_args(AudioFormat))
    media_rate = reader.choice("CALLBRIDGE_MEDIA_RATE", "16000", ("16000", "24000"))
    tools = tuple(
        name.strip()
        for name in (reader.text("AGENT_TOOLS", "end_call") or "").split(",")
        if name.strip() and name.strip() != "none"
    )
    transfer_to = _number(reader, "AGENT_TRANSFER_TO")
    if "transfer_call" in tools and transfer_to is None:
        reader.errors.append("AGENT_TOOLS has transfer_call: set AGENT_TRANSFER_TO")
    return AgentProfile(
        instructions=reader.text("AGENT_INSTRUCTIONS", DEFAULT_INSTRUCTIONS) or "",
        voice=reader.text("VOICE_LIVE_VOICE", DEFAULT_VOICE) or DEFAULT_VOICE,
        greeting=reader.text("AGENT_GREETING"),
        audio_format=audio_format,  # type: ignore[arg-type]  # checked by choice()
        media_rate=int(media_rate),  # type: ignore[arg-type]  # checked by choice()
        tools=tools,
        tools_module=reader.text("AGENT_TOOLS_MODULE"),
        transfer_to=transfer_to,
        fallback_audio=_fallback_audio(reader),
        fallback_transfer_to=_number(reader, "CALLBRIDGE_FALLBACK_TRANSFER_TO"),
        record=reader.choice("CALLBRIDGE_RECORD", "off", ("on", "off")) == "on",
    )


def _fallback_audio(reader: _Reader) -> str | None:
    """``CALLBRIDGE_FALLBACK_AUDIO`` as an absolute path, once the clip has been checked.

    Reading the clip here also caches it, so the first call that needs it does not wait on
    the disk.
    """
    raw = reader.text("CALLBRIDGE_FALLBACK_AUDIO")
    if raw is None:
        return None
    path = Path(raw).resolve()
    try:
        load_fallback_clip(path)
    except ValueError as exc:
        reader.errors.append(f"CALLBRIDGE_FALLBACK_AUDIO={raw!r}: {exc}")
        return None
    return str(path)


def _routing(reader: _Reader, base: AgentProfile) -> Routing:
    path = reader.text("CALLBRIDGE_ROUTES")
    if path is None:
        return Routing.single(base)
    try:
        return load_routing(Path(path), base)
    except RoutingError as exc:
        reader.errors.extend(str(exc).splitlines())
        return Routing.single(base)


def _check_env_tools(reader: _Reader, base: AgentProfile, routed: bool) -> None:
    """``AGENT_TOOLS_MODULE`` imports, and without a routing file (which checks its own
    profiles) every tool ``AGENT_TOOLS`` names is defined."""
    try:
        if not routed:
            profile_tools(base)
        elif base.tools_module is not None:
            module_tools(base.tools_module)
    except ToolError as exc:
        reader.errors.append(f"AGENT_TOOLS / AGENT_TOOLS_MODULE: {exc}")


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def _check_recording(reader: _Reader, settings: Settings) -> None:
    recorded = [p.name for p in settings.routing.profiles.values() if p.record]
    if recorded and settings.recordings_dir is None:
        reader.errors.append(
            "CALLBRIDGE_RECORDINGS_DIR is required: calls of profile(s) "
            f"{', '.join(sorted(recorded))} are recorded"
        )


def _model_setting(settings: Settings, profile: AgentProfile) -> str:
    """The setting that chose ``profile``'s model or agent, as the operator wrote it."""
    if profile.agent is not None:
        return f"the routing file's profiles.{profile.name}.agent"
    if profile.model is not None:
        return f"the routing file's profiles.{profile.name}.model = {profile.model!r}"
    return f"VOICE_LIVE_MODEL={settings.voice_live.model!r}"


def _check_voice_live(reader: _Reader, settings: Settings) -> None:
    """What Voice Live would refuse, found at start-up instead of on the first call."""
    voice_live = settings.voice_live
    for profile in settings.routing.profiles.values():
        model = voice_live.session_model(profile)
        supported = supported_transcription_models(model)
        configured = voice_live.transcription_model
        if configured is not None and configured not in supported:
            takes = "agents take" if model is None else f"{model} takes"
            reader.errors.append(
                f"VOICE_LIVE_TRANSCRIPTION_MODEL={configured!r} does not work with "
                f"{_model_setting(settings, profile)}: {takes} {', '.join(supported)} "
                "(unset VOICE_LIVE_TRANSCRIPTION_MODEL to use the model's default)"
            )
        if profile.agent is not None and voice_live.api_key is not None:
            reader.errors.append(
                f"AZURE_VOICE_LIVE_API_KEY is set, but {_model_setting(settings, profile)} "
                "needs Entra ID: Voice Live agents do not accept key authentication (unset "
                "the key; callbridge then signs in with DefaultAzureCredential)"
            )


def log_transcripts(*, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """``CALLBRIDGE_LOG_TRANSCRIPTS`` for a command that reads no other setting (the demo).

    Raises:
        ConfigError: the variable is neither ``on`` nor ``off``.
    """
    reader = _Reader(os.environ if env is None else env)
    value = reader.choice(LOG_TRANSCRIPTS, "on" if default else "off", ("on", "off"))
    if reader.errors:
        raise ConfigError(reader.errors[0])
    return value == "on"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate ``Settings`` from the environment.

    Raises:
        ConfigError: listing every missing or invalid variable and routing-file key.
    """
    reader = _Reader(os.environ if env is None else env)
    endpoint = reader.required(
        "AZURE_VOICE_LIVE_ENDPOINT", "e.g. https://<resource>.services.ai.azure.com"
    )
    _check_url(reader, "AZURE_VOICE_LIVE_ENDPOINT", endpoint, ("https", "wss", "http", "ws"))
    voice_live = VoiceLiveSettings(
        endpoint=endpoint,
        model=reader.text("VOICE_LIVE_MODEL", "gpt-realtime") or "gpt-realtime",
        api_key=reader.text("AZURE_VOICE_LIVE_API_KEY"),
        transcription_model=reader.text("VOICE_LIVE_TRANSCRIPTION_MODEL"),
        connect_timeout_s=reader.number("VOICE_LIVE_CONNECT_TIMEOUT_S", 10.0, float, 0.1),
    )
    acs_endpoint = reader.required(
        "ACS_ENDPOINT", "e.g. https://<resource>.communication.azure.com"
    )
    _check_url(reader, "ACS_ENDPOINT", acs_endpoint, ("https", "http"))
    acs = AcsSettings(
        endpoint=acs_endpoint,
        access_key=reader.text("ACS_ACCESS_KEY"),
        resource_id=reader.text("ACS_RESOURCE_ID"),
        jwt_issuer=reader.text("ACS_JWT_ISSUER", ACS_ISSUER) or ACS_ISSUER,
        jwks_url=reader.text("ACS_JWKS_URL", ACS_JWKS_URL) or ACS_JWKS_URL,
        caller_id=_number(reader, "ACS_CALLER_ID"),
        deadlines=_deadlines(reader),
    )
    _check_url(reader, "ACS_JWKS_URL", acs.jwks_url, ("https", "http"))
    public_url = reader.required("CALLBRIDGE_PUBLIC_URL", "e.g. https://callbridge.example.com")
    _check_url(reader, "CALLBRIDGE_PUBLIC_URL", public_url, ("https", "http"))
    pacing = PacingSettings(
        lead_ms=reader.number("CALLBRIDGE_PACER_LEAD_MS", 40.0, float, 0),
        playout_delay_ms=reader.number("CALLBRIDGE_PLAYOUT_DELAY_MS", 60.0, float, 0),
        acs_marks=reader.choice("CALLBRIDGE_ACS_MARKS", "off", ("on", "off")) == "on",
    )
    continuity = ContinuitySettings(
        session_max_s=reader.number("CALLBRIDGE_SESSION_MAX_S", 1800.0, float, 60),
        voice_live_stall_s=reader.number("CALLBRIDGE_VOICE_LIVE_STALL_S", 5.0, float, 0.5),
        reconnect_budget_s=reader.number("CALLBRIDGE_RECONNECT_BUDGET_S", 5.0, float, 0),
        media_rejoin_s=reader.number("CALLBRIDGE_MEDIA_REJOIN_S", 10.0, float, 0),
        media_stall_s=reader.number("CALLBRIDGE_MEDIA_STALL_S", 3.0, float, 0.1),
    )
    base = _env_profile(reader)
    _check_env_tools(reader, base, routed=reader.text("CALLBRIDGE_ROUTES") is not None)
    settings = Settings(
        voice_live=voice_live,
        acs=acs,
        auth=_auth(reader, acs.resource_id),
        public_url=public_url.rstrip("/"),
        routing=_routing(reader, base),
        pacing=pacing,
        continuity=continuity,
        prewarm_ttl_s=reader.number("CALLBRIDGE_PREWARM_TTL_S", 10.0, float, 0.1),
        max_calls=reader.number("CALLBRIDGE_MAX_CALLS", 40, int, 1),
        drain_s=reader.number("CALLBRIDGE_DRAIN_S", 120.0, float, 0),
        drain_goodbye=reader.text("CALLBRIDGE_DRAIN_GOODBYE"),
        recordings_dir=_path(reader.text("CALLBRIDGE_RECORDINGS_DIR")),
        appinsights_connection_string=reader.text("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        host=reader.text("CALLBRIDGE_HOST", "127.0.0.1") or "127.0.0.1",
        port=reader.number("CALLBRIDGE_PORT", 8000, int, 0),
        log_format=reader.choice("LOG_FORMAT", "auto", get_args(LogFormat)),  # type: ignore[arg-type]
        log_level=reader.choice(
            "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        ),
        log_transcripts=reader.choice(LOG_TRANSCRIPTS, "off", ("on", "off")) == "on",
        event_loop=reader.choice("CALLBRIDGE_EVENT_LOOP", "auto", get_args(EventLoop)),  # type: ignore[arg-type]
    )
    if settings.event_loop == "uvloop" and not uvloop_installed():
        reader.errors.append(
            "CALLBRIDGE_EVENT_LOOP=uvloop, but uvloop is not installed: install callbridge[fast] "
            "(or leave it unset: auto uses uvloop when it is there)"
        )
    _check_recording(reader, settings)
    _check_voice_live(reader, settings)
    if settings.auth.enabled and urlsplit(public_url).scheme == "http":
        # Learn, "Secure webhook endpoint": "Your callback URI must be a public endpoint with a
        # valid HTTPS certificate".
        reader.errors.append(
            "CALLBRIDGE_PUBLIC_URL must be an https:// URL: Call Automation does not call HTTP "
            "endpoints (http:// is accepted with CALLBRIDGE_AUTH=off, for local development)"
        )
    if reader.errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(reader.errors))
    return settings
