"""Per-call tokens: minting and verification, and the media socket refusing bad ones."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from callbridge.sim.harness import LocalStack
from callbridge.telephony.auth import AuthError, mint_call_token, verify_call_token

KEY = b"k" * 32
NOW = 1_800_000_000.0


class TestTokens:
    def test_round_trip(self) -> None:
        """A fresh token for this call verifies and yields its claims."""
        token = mint_call_token(KEY, correlation_id="c1", profile="sales", now=NOW)
        claims = verify_call_token(token, KEY, correlation_id="c1", now=NOW + 10)
        assert (claims.correlation_id, claims.profile) == ("c1", "sales")

    @pytest.mark.parametrize(
        ("token_for", "key", "at", "header", "reason"),
        [
            ("c1", KEY, NOW + 3601, "c1", "expired"),
            ("c1", b"x" * 32, NOW, "c1", "signature"),
            ("c1", KEY, NOW, "c2", "another call"),
            ("c1", KEY, NOW, None, "another call"),
        ],
        ids=["expired", "forged", "replayed-into-another-call", "no-correlation-header"],
    )
    def test_rejections(
        self, token_for: str, key: bytes, at: float, header: str | None, reason: str
    ) -> None:
        """Expired, forged and replayed tokens are refused with a reason safe to log."""
        token = mint_call_token(key, correlation_id=token_for, now=NOW)
        with pytest.raises(AuthError, match=reason):
            verify_call_token(token, KEY, correlation_id=header, now=at)

    @pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "!!.!!"])
    def test_malformed_tokens(self, token: str) -> None:
        """Garbage is refused, never crashes."""
        with pytest.raises(AuthError):
            verify_call_token(token, KEY, correlation_id="c1", now=NOW)

    def test_tampered_claims_fail_the_signature(self) -> None:
        """Changing the claims (say, the profile) invalidates the token."""
        token = mint_call_token(KEY, correlation_id="c1", profile="a", now=NOW)
        other = mint_call_token(KEY, correlation_id="c1", profile="b", now=NOW)
        forged = other.split(".")[0] + "." + token.split(".")[1]
        with pytest.raises(AuthError, match="signature"):
            verify_call_token(forged, KEY, correlation_id="c1", now=NOW)


@pytest.mark.parametrize(
    ("query", "correlation_id"),
    [("", "c1"), ("?token=nope", "c1"), ("?token={other}", "c1")],
    ids=["no-token", "garbage-token", "token-of-another-call"],
)
async def test_media_socket_refuses_bad_tokens_before_starting(
    query: str, correlation_id: str
) -> None:
    """The upgrade is answered 401 and no Voice Live session is opened."""
    async with LocalStack() as local, aiohttp.ClientSession() as http:
        other = mint_call_token(local.signing_key, correlation_id="c2")
        url = local.ws_url + query.format(other=other)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with asyncio.timeout(10):
                await http.ws_connect(url, headers={"x-ms-call-correlation-id": correlation_id})
        assert refused.value.status == 401
        assert local.emulator.sessions == ()
