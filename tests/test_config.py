"""Settings from the environment: defaults, validation, and secrets kept out of reprs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callbridge.assets import asset_path
from callbridge.core.settings import CallOperationDeadlines, ContinuitySettings
from callbridge.process.config import ConfigError, load_settings

KEY = "k" * 32
WEBHOOK_SECRET = "w" * 32
RESOURCE_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
BASE = {
    "AZURE_VOICE_LIVE_ENDPOINT": "https://example.services.ai.azure.com",
    "ACS_ENDPOINT": "https://example.communication.azure.com",
    "ACS_RESOURCE_ID": RESOURCE_ID,
    "CALLBRIDGE_PUBLIC_URL": "https://callbridge.example.com/",
    "CALLBRIDGE_SIGNING_KEY": KEY,
    "CALLBRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


def test_minimal_environment_gives_secure_defaults() -> None:
    """The required variables suffice; Entra ID without keys; auth on; loopback."""
    settings = load_settings(BASE)
    assert settings.auth.enabled
    assert settings.auth.signing_key == KEY.encode()
    assert settings.auth.api_key is None
    assert settings.voice_live.api_key is None
    assert settings.acs.access_key is None
    assert settings.acs.resource_id == RESOURCE_ID
    assert settings.acs.jwt_issuer == "https://acscallautomation.communication.azure.com"
    assert settings.public_url == "https://callbridge.example.com"
    assert settings.voice_live.model == "gpt-realtime"
    profile = settings.routing.profile_for("+18005550100")
    assert profile is not None
    assert (profile.audio_format, profile.media_rate, profile.tools) == (
        "g711_ulaw",
        16000,
        ("end_call",),
    )
    assert settings.host == "127.0.0.1"
    assert (settings.pacing.lead_ms, settings.pacing.playout_delay_ms) == (40.0, 60.0)


def test_every_problem_is_reported_at_once_by_name() -> None:
    """A bad environment fails with one message naming each bad variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "CALLBRIDGE_AUDIO_FORMAT": "opus",
                "CALLBRIDGE_MEDIA_RATE": "8000",
                "CALLBRIDGE_PACER_LEAD_MS": "soon",
                "CALLBRIDGE_PLAYOUT_DELAY_MS": "-5",
                "CALLBRIDGE_PORT": "80.5",
                "ACS_CALLER_ID": "555-0100",
                "LOG_FORMAT": "xml",
            }
        )
    message = str(caught.value)
    for name in (
        "AZURE_VOICE_LIVE_ENDPOINT is required",
        "ACS_ENDPOINT is required",
        "CALLBRIDGE_PUBLIC_URL is required",
        "ACS_RESOURCE_ID is required",
        "CALLBRIDGE_SIGNING_KEY is required",
        "CALLBRIDGE_WEBHOOK_SECRET is required",
        "CALLBRIDGE_AUDIO_FORMAT='opus'",
        "CALLBRIDGE_MEDIA_RATE='8000'",
        "CALLBRIDGE_PACER_LEAD_MS='soon'",
        "CALLBRIDGE_PLAYOUT_DELAY_MS='-5'",
        "CALLBRIDGE_PORT='80.5'",
        "ACS_CALLER_ID must be an E.164",
        "LOG_FORMAT='xml'",
    ):
        assert name in message


@pytest.mark.parametrize(
    "name", ["AZURE_VOICE_LIVE_ENDPOINT", "ACS_ENDPOINT", "CALLBRIDGE_PUBLIC_URL", "ACS_JWKS_URL"]
)
def test_urls_must_be_urls(name: str) -> None:
    """A host name without a scheme is rejected with a hint."""
    with pytest.raises(ConfigError, match=f"{name}='example.com' must be an https://"):
        load_settings({**BASE, name: "example.com"})


def test_secrets_never_appear_in_repr() -> None:
    """Settings can be logged without leaking any key or secret."""
    settings = load_settings(
        {
            **BASE,
            "AZURE_VOICE_LIVE_API_KEY": "s3cr3t-key",
            "ACS_ACCESS_KEY": "acs-s3cr3t",
            "CALLBRIDGE_API_KEY": "a" * 32,
        }
    )
    assert settings.voice_live.api_key == "s3cr3t-key"
    for secret in ("s3cr3t-key", "acs-s3cr3t", "a" * 32, KEY, WEBHOOK_SECRET):
        assert secret not in repr(settings)


@pytest.mark.parametrize(
    "name", ["CALLBRIDGE_SIGNING_KEY", "CALLBRIDGE_WEBHOOK_SECRET", "CALLBRIDGE_API_KEY"]
)
def test_short_secrets_are_rejected(name: str) -> None:
    """A guessable secret is a configuration error."""
    with pytest.raises(ConfigError, match=f"{name} must be at least 32 characters"):
        load_settings({**BASE, name: "short"})


def test_entra_id_can_replace_the_webhook_secret() -> None:
    """Event Grid's Entra ID token is an alternative to the shared secret; both keys needed."""
    env = {k: v for k, v in BASE.items() if k != "CALLBRIDGE_WEBHOOK_SECRET"}
    settings = load_settings(
        {
            **env,
            "CALLBRIDGE_WEBHOOK_ENTRA_TENANT": RESOURCE_ID,
            "CALLBRIDGE_WEBHOOK_ENTRA_AUDIENCE": "api://callbridge",
        }
    )
    assert settings.auth.webhook_secret is None
    assert settings.auth.webhook_entra is not None
    with pytest.raises(ConfigError, match="go together"):
        load_settings({**BASE, "CALLBRIDGE_WEBHOOK_ENTRA_TENANT": RESOURCE_ID})


def test_authentication_is_off_only_when_asked() -> None:
    """CALLBRIDGE_AUTH=off turns it off; then no secrets or resource id are needed."""
    env = {
        name: BASE[name]
        for name in ("AZURE_VOICE_LIVE_ENDPOINT", "ACS_ENDPOINT", "CALLBRIDGE_PUBLIC_URL")
    }
    settings = load_settings({**env, "CALLBRIDGE_AUTH": "off"})
    assert not settings.auth.enabled
    assert len(settings.auth.signing_key) >= 32  # per process: tokens still carry call data


def test_transfer_tool_needs_a_target() -> None:
    with pytest.raises(ConfigError, match="AGENT_TRANSFER_TO"):
        load_settings({**BASE, "AGENT_TOOLS": "end_call,transfer_call"})


def test_routing_file_errors_are_reported_with_the_rest(tmp_path: Path) -> None:
    """A bad routing file fails start-up with its key named, alongside env problems."""
    routes = tmp_path / "routes.toml"
    routes.write_text('default_profile = "x"\n[profiles.x]\nmedia_rate = 8000\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "CALLBRIDGE_ROUTES": str(routes), "CALLBRIDGE_PORT": "x"})
    assert "profiles.x.media_rate" in str(caught.value)
    assert "CALLBRIDGE_PORT" in str(caught.value)


def test_overrides_are_read() -> None:
    """Every documented variable takes effect."""
    settings = load_settings(
        {
            **BASE,
            "VOICE_LIVE_MODEL": "gpt-realtime-mini",
            "VOICE_LIVE_VOICE": "alloy",
            "AGENT_GREETING": "Hello!",
            "AGENT_TOOLS": "end_call, transfer_call",
            "AGENT_TRANSFER_TO": "+1 800 555 0123",
            "CALLBRIDGE_AUDIO_FORMAT": "pcm16",
            "CALLBRIDGE_MEDIA_RATE": "24000",
            "CALLBRIDGE_PACER_LEAD_MS": "60",
            "CALLBRIDGE_PLAYOUT_DELAY_MS": "80",
            "CALLBRIDGE_PREWARM_TTL_S": "5",
            "ACS_CALLER_ID": "+18005550100",
            "ACS_JWT_ISSUER": "https://issuer.example",
            "ACS_JWKS_URL": "https://issuer.example/keys",
            "CALLBRIDGE_HOST": "0.0.0.0",
            "CALLBRIDGE_PORT": "9000",
        }
    )
    profile = settings.routing.profile_for("+15555550100")
    assert profile is not None
    assert settings.voice_live.model == "gpt-realtime-mini"
    assert (profile.voice, profile.greeting) == ("alloy", "Hello!")
    assert (profile.audio_format, profile.media_rate) == ("pcm16", 24000)
    assert (profile.tools, profile.transfer_to) == (("end_call", "transfer_call"), "+18005550123")
    assert (settings.pacing.lead_ms, settings.pacing.playout_delay_ms) == (60.0, 80.0)
    assert settings.prewarm_ttl_s == 5.0
    assert settings.acs.caller_id == "+18005550100"
    assert (settings.acs.jwt_issuer, settings.acs.jwks_url) == (
        "https://issuer.example",
        "https://issuer.example/keys",
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_recording_is_off_by_default_and_needs_a_folder(tmp_path: Path) -> None:
    """Recording holds personal data: opt-in, and only with somewhere to put it."""
    assert not any(p.record for p in load_settings(BASE).routing.profiles.values())
    with pytest.raises(ConfigError, match="CALLBRIDGE_RECORDINGS_DIR is required"):
        load_settings({**BASE, "CALLBRIDGE_RECORD": "on"})
    settings = load_settings(
        {**BASE, "CALLBRIDGE_RECORD": "on", "CALLBRIDGE_RECORDINGS_DIR": str(tmp_path)}
    )
    assert settings.recordings_dir == tmp_path


def test_public_url_must_be_https_while_authentication_is_on() -> None:
    """Call Automation calls back only HTTPS endpoints; http:// is for local development."""
    with pytest.raises(ConfigError, match="CALLBRIDGE_PUBLIC_URL must be an https:// URL"):
        load_settings({**BASE, "CALLBRIDGE_PUBLIC_URL": "http://callbridge.example.com"})
    settings = load_settings(
        {"CALLBRIDGE_AUTH": "off", **BASE, "CALLBRIDGE_PUBLIC_URL": "http://127.0.0.1:8000"}
    )
    assert settings.public_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("model", "transcription"),
    [
        ("gpt-realtime", "whisper-1"),
        ("gpt-realtime-mini", "whisper-1"),
        ("gpt-4o-mini-realtime-preview", "whisper-1"),
        ("gpt-4.1", "azure-speech"),
        ("phi4-mm-realtime", "azure-speech"),
    ],
)
def test_transcription_model_defaults_to_one_the_session_model_takes(
    model: str, transcription: str
) -> None:
    """The Voice Live reference's table: the realtime family takes whisper-1 and kin, every
    other model azure-speech."""
    settings = load_settings({**BASE, "VOICE_LIVE_MODEL": model})
    profile = settings.routing.profile("default")
    assert settings.voice_live.transcription_model is None
    assert settings.voice_live.transcription_model_for(profile) == transcription


@pytest.mark.parametrize(
    ("model", "transcription"),
    [("gpt-realtime", "azure-speech"), ("gpt-4.1", "whisper-1"), ("gpt-4.1", "gpt-4o-transcribe")],
)
def test_an_incompatible_transcription_model_fails_start_up_naming_both_settings(
    model: str, transcription: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {**BASE, "VOICE_LIVE_MODEL": model, "VOICE_LIVE_TRANSCRIPTION_MODEL": transcription}
        )
    message = str(caught.value)
    assert f"VOICE_LIVE_TRANSCRIPTION_MODEL={transcription!r}" in message
    assert f"VOICE_LIVE_MODEL={model!r}" in message


def test_a_compatible_transcription_model_is_used_as_configured() -> None:
    settings = load_settings(
        {**BASE, "VOICE_LIVE_MODEL": "gpt-4.1", "VOICE_LIVE_TRANSCRIPTION_MODEL": "mai-transcribe"}
    )
    profile = settings.routing.profile("default")
    assert settings.voice_live.transcription_model_for(profile) == "mai-transcribe"


def test_routed_profiles_are_checked_against_their_own_model_or_agent(tmp_path: Path) -> None:
    """A profile's model or agent decides what transcription it takes; an agent also needs
    Entra ID, since Voice Live agents refuse key authentication."""
    routes = tmp_path / "routes.toml"
    routes.write_text(
        'default_profile = "sales"\n'
        '[profiles.sales]\nmodel = "gpt-4.1"\n'
        '[profiles.support]\nagent = { name = "helper", project = "callcenter" }\n'
    )
    env = {**BASE, "CALLBRIDGE_ROUTES": str(routes)}
    settings = load_settings(env)
    voice_live = settings.voice_live
    assert voice_live.transcription_model_for(settings.routing.profile("sales")) == "azure-speech"
    assert voice_live.transcription_model_for(settings.routing.profile("support")) == (
        "azure-speech"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {**env, "VOICE_LIVE_TRANSCRIPTION_MODEL": "whisper-1", "AZURE_VOICE_LIVE_API_KEY": "k"}
        )
    message = str(caught.value)
    assert "profiles.sales.model = 'gpt-4.1'" in message
    assert "VOICE_LIVE_TRANSCRIPTION_MODEL='whisper-1' does not work with the routing file's" in (
        message
    )
    assert "profiles.support.agent needs Entra ID" in message
    assert "AZURE_VOICE_LIVE_API_KEY is set" in message


# --- Call continuity -------------------------------------------------------------------------


def test_continuity_defaults() -> None:
    continuity = load_settings(BASE).continuity
    assert continuity == ContinuitySettings()
    assert (
        continuity.session_max_s,
        continuity.voice_live_stall_s,
        continuity.reconnect_budget_s,
        continuity.media_rejoin_s,
        continuity.media_stall_s,
    ) == (1800.0, 5.0, 5.0, 10.0, 3.0)
    profile = load_settings(BASE).routing.profile("default")
    assert (profile.fallback_audio, profile.fallback_transfer_to) == (None, None)


def test_continuity_variables_are_read() -> None:
    settings = load_settings(
        {
            **BASE,
            "CALLBRIDGE_SESSION_MAX_S": "900",
            "CALLBRIDGE_VOICE_LIVE_STALL_S": "2.5",
            "CALLBRIDGE_RECONNECT_BUDGET_S": "0",
            "CALLBRIDGE_MEDIA_REJOIN_S": "20",
            "CALLBRIDGE_MEDIA_STALL_S": "1.5",
        }
    )
    assert settings.continuity == ContinuitySettings(
        session_max_s=900.0,
        voice_live_stall_s=2.5,
        reconnect_budget_s=0.0,
        media_rejoin_s=20.0,
        media_stall_s=1.5,
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("CALLBRIDGE_SESSION_MAX_S", "30", "CALLBRIDGE_SESSION_MAX_S='30' must be >= 60"),
        ("CALLBRIDGE_SESSION_MAX_S", "half an hour", "is not a number"),
        ("CALLBRIDGE_VOICE_LIVE_STALL_S", "0", "CALLBRIDGE_VOICE_LIVE_STALL_S='0' must be >= 0.5"),
        ("CALLBRIDGE_VOICE_LIVE_STALL_S", "nan", "CALLBRIDGE_VOICE_LIVE_STALL_S='nan' must be"),
        ("CALLBRIDGE_RECONNECT_BUDGET_S", "-1", "CALLBRIDGE_RECONNECT_BUDGET_S='-1' must be >= 0"),
        ("CALLBRIDGE_MEDIA_REJOIN_S", "inf", "CALLBRIDGE_MEDIA_REJOIN_S='inf' must be >= 0"),
        ("CALLBRIDGE_MEDIA_STALL_S", "0.01", "CALLBRIDGE_MEDIA_STALL_S='0.01' must be >= 0.1"),
        (
            "CALLBRIDGE_FALLBACK_TRANSFER_TO",
            "555-0123",
            "CALLBRIDGE_FALLBACK_TRANSFER_TO must be an E.164",
        ),
    ],
)
def test_invalid_continuity_values_are_refused_by_name(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, name: value})
    assert problem in str(caught.value)


def test_fallback_variables_set_the_env_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative clip path is taken from the working directory and kept absolute."""
    shutil.copy(asset_path("fallback_goodbye"), tmp_path / "sorry.wav")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            **BASE,
            "CALLBRIDGE_FALLBACK_AUDIO": "sorry.wav",
            "CALLBRIDGE_FALLBACK_TRANSFER_TO": "4:+1 800 555 0199",
        }
    )
    profile = settings.routing.profile("default")
    assert profile.fallback_audio == str(tmp_path.resolve() / "sorry.wav")
    assert profile.fallback_transfer_to == "+18005550199"


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "no such file: "), (b"RIFF but not really", "not a PCM WAV file")],
)
def test_an_unusable_fallback_clip_fails_start_up(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    clip = tmp_path / "sorry.wav"
    if content is not None:
        clip.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "CALLBRIDGE_FALLBACK_AUDIO": str(clip)})
    message = str(caught.value)
    assert f"CALLBRIDGE_FALLBACK_AUDIO='{clip}': " in message
    assert problem in message


def test_fallback_variables_are_the_routed_profiles_defaults(tmp_path: Path) -> None:
    """A routing-file profile without fallback keys inherits the environment's; one with
    them keeps its own."""
    shutil.copy(asset_path("fallback_goodbye"), tmp_path / "env.wav")
    shutil.copy(asset_path("fallback_transfer"), tmp_path / "own.wav")
    routes = tmp_path / "routes.toml"
    routes.write_text(
        'default_profile = "plain"\n[profiles.plain]\n'
        '[profiles.own]\nfallback_audio = "own.wav"\nfallback_transfer_to = "+18005550111"\n'
    )
    settings = load_settings(
        {
            **BASE,
            "CALLBRIDGE_ROUTES": str(routes),
            "CALLBRIDGE_FALLBACK_AUDIO": str(tmp_path / "env.wav"),
            "CALLBRIDGE_FALLBACK_TRANSFER_TO": "+18005550199",
        }
    )
    plain, own = settings.routing.profile("plain"), settings.routing.profile("own")
    assert (plain.fallback_audio, plain.fallback_transfer_to) == (
        str(tmp_path.resolve() / "env.wav"),
        "+18005550199",
    )
    assert (own.fallback_audio, own.fallback_transfer_to) == (
        str(tmp_path.resolve() / "own.wav"),
        "+18005550111",
    )


def test_tools_that_cannot_be_loaded_fail_start_up_with_the_rest() -> None:
    env = {**BASE, "AGENT_TOOLS_MODULE": "tests.no_such_tools", "CALLBRIDGE_MAX_CALLS": "0"}
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    message = str(error.value)
    assert "AGENT_TOOLS / AGENT_TOOLS_MODULE: cannot import tools module 'tests.no_such_tools'" in (
        message
    )
    assert "CALLBRIDGE_MAX_CALLS='0' must be >= 1" in message
    with pytest.raises(ConfigError, match="tool 'lookup_ordr' not found"):
        load_settings(
            {**BASE, "AGENT_TOOLS": "lookup_ordr", "AGENT_TOOLS_MODULE": "tests.agent_tools"}
        )


def test_transcripts_are_not_logged_unless_asked() -> None:
    assert load_settings(BASE).log_transcripts is False
    assert load_settings({**BASE, "CALLBRIDGE_LOG_TRANSCRIPTS": "on"}).log_transcripts is True


# --- Call Automation deadlines ---------------------------------------------------------------


def test_deadlines_default_to_what_each_operation_is_worth() -> None:
    assert load_settings(BASE).acs.deadlines == CallOperationDeadlines()


def test_deadline_variables_are_read() -> None:
    settings = load_settings(
        {
            **BASE,
            "CALLBRIDGE_ACS_ANSWER_DEADLINE_S": "10",
            "CALLBRIDGE_ACS_DIAL_DEADLINE_S": "8",
            "CALLBRIDGE_ACS_TRANSFER_DEADLINE_S": "4.5",
            "CALLBRIDGE_ACS_HANG_UP_DEADLINE_S": "2",
            "CALLBRIDGE_ACS_HANG_UP_BUDGET_S": "30",
            "CALLBRIDGE_ACS_QUERY_DEADLINE_S": "1.5",
        }
    )
    assert settings.acs.deadlines == CallOperationDeadlines(
        answer_s=10.0,
        dial_s=8.0,
        transfer_s=4.5,
        hang_up_attempt_s=2.0,
        hang_up_budget_s=30.0,
        query_s=1.5,
    )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"CALLBRIDGE_ACS_ANSWER_DEADLINE_S": "0"},
            "CALLBRIDGE_ACS_ANSWER_DEADLINE_S='0' must be >= 0.1",
        ),
        (
            {"CALLBRIDGE_ACS_DIAL_DEADLINE_S": "soon"},
            "CALLBRIDGE_ACS_DIAL_DEADLINE_S='soon' is not",
        ),
        (
            {"CALLBRIDGE_ACS_TRANSFER_DEADLINE_S": "inf"},
            "CALLBRIDGE_ACS_TRANSFER_DEADLINE_S='inf' must be >= 0.1",
        ),
        (
            {"CALLBRIDGE_ACS_QUERY_DEADLINE_S": "-3"},
            "CALLBRIDGE_ACS_QUERY_DEADLINE_S='-3' must be >= 0.1",
        ),
        (
            {"CALLBRIDGE_ACS_HANG_UP_DEADLINE_S": "5", "CALLBRIDGE_ACS_HANG_UP_BUDGET_S": "2"},
            "CALLBRIDGE_ACS_HANG_UP_BUDGET_S must be >= CALLBRIDGE_ACS_HANG_UP_DEADLINE_S",
        ),
    ],
)
def test_invalid_deadlines_are_refused_by_name(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env})
    assert problem in str(caught.value)
