"""Signed, expiring per-call tokens for the media WebSocket URL.

callbridge puts a token in the ``transportUrl`` it gives ACS when it answers or places a call,
so the media socket of that call, and only that call, can connect to any replica: the token
carries what the socket needs, and replicas share nothing but the signing key.

Format: ``base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

DEFAULT_TTL_S = 3600
"""Long enough for ACS to reconnect the media socket within a long call."""

MIN_KEY_BYTES = 32


class AuthError(ValueError):
    """A request that must not be let in. The message is safe to log: it holds no secret."""


@dataclass(frozen=True, slots=True)
class CallClaims:
    """What a media socket may claim about itself."""

    correlation_id: str
    """ACS's ``x-ms-call-correlation-id`` of the call the token was minted for."""
    profile: str
    """The agent profile that answers the call."""
    expires_at: int
    """Unix seconds."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def mint_call_token(
    key: bytes,
    *,
    correlation_id: str,
    profile: str = "default",
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A token that lets the media socket of one call in for ``ttl_s`` seconds."""
    expires_at = int((time.time() if now is None else now) + ttl_s)
    claims = {"cid": correlation_id, "profile": profile, "exp": expires_at}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_signature(key, body)}"


def verify_call_token(
    token: str, key: bytes, *, correlation_id: str | None, now: float | None = None
) -> CallClaims:
    """Check a token's signature, expiry and call binding.

    Args:
        token: from the ``token`` query parameter.
        key: the signing key.
        correlation_id: the ``x-ms-call-correlation-id`` header of the request; a token minted
            for another call is refused, so a leaked URL cannot be replayed into another call.

    Raises:
        AuthError: the token is missing, malformed, forged, expired or for another call.
    """
    if not token:
        raise AuthError("missing call token")
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise AuthError("malformed call token")
    if not hmac.compare_digest(signature, _signature(key, body)):
        raise AuthError("bad call token signature")
    try:
        claims = json.loads(_unb64(body))
        bound_to, profile, expires_at = claims["cid"], claims["profile"], claims["exp"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise AuthError("malformed call token") from exc
    if not (isinstance(bound_to, str) and isinstance(profile, str) and isinstance(expires_at, int)):
        raise AuthError("malformed call token")
    if expires_at <= (time.time() if now is None else now):
        raise AuthError("expired call token")
    if correlation_id is None or not hmac.compare_digest(bound_to, correlation_id):
        raise AuthError("call token is for another call")
    return CallClaims(bound_to, profile, expires_at)
