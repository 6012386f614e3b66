"""Settings from the environment: defaults, validation, and secrets kept out of reprs."""

from __future__ import annotations

import pytest

from callbridge.config import ConfigError, load_settings

KEY = "k" * 32
BASE = {
    "AZURE_VOICE_LIVE_ENDPOINT": "https://example.services.ai.azure.com",
    "CALLBRIDGE_SIGNING_KEY": KEY,
}


def test_minimal_environment_gives_secure_defaults() -> None:
    """Endpoint and signing key suffice; Entra ID without an API key; auth on; loopback."""
    settings = load_settings(BASE)
    assert settings.auth.enabled
    assert settings.auth.signing_key == KEY.encode()
    assert settings.voice_live.api_key is None
    assert settings.voice_live.model == "gpt-realtime"
    assert settings.profile.audio_format == "g711_ulaw"
    assert settings.host == "127.0.0.1"
    assert (settings.pacing.lead_ms, settings.pacing.playout_delay_ms) == (40.0, 60.0)


def test_every_problem_is_reported_at_once_by_name() -> None:
    """A bad environment fails with one message naming each bad variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "CALLBRIDGE_AUDIO_FORMAT": "opus",
                "CALLBRIDGE_PACER_LEAD_MS": "soon",
                "CALLBRIDGE_PLAYOUT_DELAY_MS": "-5",
                "CALLBRIDGE_PORT": "80.5",
                "LOG_FORMAT": "xml",
            }
        )
    message = str(caught.value)
    for name in (
        "AZURE_VOICE_LIVE_ENDPOINT is required",
        "CALLBRIDGE_SIGNING_KEY is required",
        "CALLBRIDGE_AUDIO_FORMAT='opus'",
        "CALLBRIDGE_PACER_LEAD_MS='soon'",
        "CALLBRIDGE_PLAYOUT_DELAY_MS='-5'",
        "CALLBRIDGE_PORT='80.5'",
        "LOG_FORMAT='xml'",
    ):
        assert name in message


def test_endpoint_must_be_a_url() -> None:
    """A host name without a scheme is rejected with a hint."""
    with pytest.raises(ConfigError, match="must be an https://"):
        load_settings({"AZURE_VOICE_LIVE_ENDPOINT": "example.com"})


def test_secrets_never_appear_in_repr() -> None:
    """Settings can be logged without leaking the Voice Live key or the signing key."""
    settings = load_settings({**BASE, "AZURE_VOICE_LIVE_API_KEY": "s3cr3t-key"})
    assert settings.voice_live.api_key == "s3cr3t-key"
    assert "s3cr3t-key" not in repr(settings)
    assert KEY not in repr(settings)


def test_short_signing_key_is_rejected() -> None:
    """A guessable signing key is a configuration error."""
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings({**BASE, "CALLBRIDGE_SIGNING_KEY": "short"})


def test_authentication_is_off_only_when_asked() -> None:
    """CALLBRIDGE_AUTH=off turns it off and then no key is needed."""
    env = {"AZURE_VOICE_LIVE_ENDPOINT": BASE["AZURE_VOICE_LIVE_ENDPOINT"], "CALLBRIDGE_AUTH": "off"}
    assert not load_settings(env).auth.enabled


def test_overrides_are_read() -> None:
    """Every documented variable takes effect."""
    settings = load_settings(
        {
            **BASE,
            "VOICE_LIVE_MODEL": "gpt-realtime-mini",
            "VOICE_LIVE_VOICE": "alloy",
            "AGENT_GREETING": "Hello!",
            "CALLBRIDGE_AUDIO_FORMAT": "pcm16",
            "CALLBRIDGE_PACER_LEAD_MS": "60",
            "CALLBRIDGE_PLAYOUT_DELAY_MS": "80",
            "CALLBRIDGE_HOST": "0.0.0.0",
            "CALLBRIDGE_PORT": "9000",
        }
    )
    assert settings.voice_live.model == "gpt-realtime-mini"
    assert settings.profile.voice == "alloy"
    assert settings.profile.greeting == "Hello!"
    assert settings.profile.audio_format == "pcm16"
    assert (settings.pacing.lead_ms, settings.pacing.playout_delay_ms) == (60.0, 80.0)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
