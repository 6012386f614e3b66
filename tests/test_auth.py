"""Per-call tokens: minting, verification and binding to their call."""

from __future__ import annotations

import pytest

from callbridge.core.call_token import AuthError, mint_call_token, verify_call_token

KEY = b"k" * 32
NOW = 1_800_000_000.0


class TestTokens:
    def test_round_trip(self) -> None:
        """A fresh token verifies and yields its claims, and fits the call it was minted for."""
        token = mint_call_token(KEY, call_key="c1", profile="sales", now=NOW)
        claims = verify_call_token(token, KEY, now=NOW + 10)
        assert (claims.call_key, claims.profile, claims.direction) == ("c1", "sales", "inbound")
        claims.check_call("c1")

    @pytest.mark.parametrize(
        ("key", "at", "reason"),
        [(KEY, NOW + 3601, "expired"), (b"x" * 32, NOW, "signature")],
        ids=["expired", "forged"],
    )
    def test_rejections(self, key: bytes, at: float, reason: str) -> None:
        """Expired and forged tokens are refused with a reason safe to log."""
        token = mint_call_token(key, call_key="c1", now=NOW)
        with pytest.raises(AuthError, match=reason):
            verify_call_token(token, KEY, now=at)

    @pytest.mark.parametrize("presented_for", ["c2", None], ids=["another-call", "no-header"])
    def test_inbound_tokens_are_bound_to_their_call(self, presented_for: str | None) -> None:
        """An inbound call's token replayed for another call (or none) is refused."""
        claims = verify_call_token(mint_call_token(KEY, call_key="c1", now=NOW), KEY, now=NOW)
        with pytest.raises(AuthError, match="another call"):
            claims.check_call(presented_for)

    def test_outbound_tokens_rely_on_acs_signature(self) -> None:
        """ACS picks an outbound call's correlation id after the token is minted."""
        token = mint_call_token(KEY, call_key="nonce", direction="outbound", now=NOW)
        verify_call_token(token, KEY, now=NOW).check_call("acs-correlation-id")

    @pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "!!.!!"])
    def test_malformed_tokens(self, token: str) -> None:
        """Garbage is refused, never crashes."""
        with pytest.raises(AuthError):
            verify_call_token(token, KEY, now=NOW)

    def test_tampered_claims_fail_the_signature(self) -> None:
        """Changing the claims (say, the profile) invalidates the token."""
        token = mint_call_token(KEY, call_key="c1", profile="a", now=NOW)
        other = mint_call_token(KEY, call_key="c1", profile="b", now=NOW)
        forged = other.split(".")[0] + "." + token.split(".")[1]
        with pytest.raises(AuthError, match="signature"):
            verify_call_token(forged, KEY, now=NOW)
