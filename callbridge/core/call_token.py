"""Signed, expiring per-call tokens for the media WebSocket URL.

callbridge puts a token in the ``transportUrl`` and the ``callbackUri`` it gives ACS when it
answers or places a call, so the media socket and the callbacks of that call, and only that
call, can reach any replica: the token carries what they need (which call, which agent
profile), and replicas share nothing but the signing key.

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
from typing import Literal, get_args

DEFAULT_TTL_S = 3600
"""Long enough for ACS to reconnect the media socket within a long call."""

MIN_KEY_BYTES = 32


class AuthError(ValueError):
    """A request that must not be let in. The message is safe to log: it holds no secret."""


Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class CallClaims:
    """What a media socket or callback may claim about its call."""

    call_key: str
    """Inbound: ACS's correlation id of the call. Outbound: a random id callbridge chose, since
    ACS assigns the correlation id only after the call is placed."""
    profile: str
    """The agent profile that talks on the call."""
    direction: Direction
    expires_at: int
    """Unix seconds."""

    def check_call(self, correlation_id: str | None) -> None:
        """Refuse a token presented for another call than the one it was minted for.

        Inbound tokens are bound to the call's correlation id (``x-ms-call-correlation-id`` on
        the media socket, ``correlationId`` in callbacks), so a leaked URL cannot be replayed
        into another call. Outbound tokens cannot be bound that way; they rely on ACS's own
        signed JWT, which callbridge also requires on every request.

        Raises:
            AuthError: the token belongs to another call.
        """
        if self.direction == "outbound":
            return
        if correlation_id is None or not hmac.compare_digest(self.call_key, correlation_id):
            raise AuthError("call token is for another call")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def mint_call_token(
    key: bytes,
    *,
    call_key: str,
    profile: str = "default",
    direction: Direction = "inbound",
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A token that lets the media socket and callbacks of one call in for ``ttl_s`` seconds."""
    expires_at = int((time.time() if now is None else now) + ttl_s)
    claims = {"cid": call_key, "profile": profile, "dir": direction, "exp": expires_at}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_signature(key, body)}"


def verify_call_token(token: str, key: bytes, *, now: float | None = None) -> CallClaims:
    """Check a token's signature and expiry and return its claims.

    The caller then checks the claims against the request with ``CallClaims.check_call``.

    Raises:
        AuthError: the token is missing, malformed, forged or expired.
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
        call_key, profile = claims["cid"], claims["profile"]
        direction, expires_at = claims["dir"], claims["exp"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise AuthError("malformed call token") from exc
    if not (
        isinstance(call_key, str)
        and isinstance(profile, str)
        and direction in get_args(Direction)
        and isinstance(expires_at, int)
    ):
        raise AuthError("malformed call token")
    if expires_at <= (time.time() if now is None else now):
        raise AuthError("expired call token")
    return CallClaims(call_key, profile, direction, expires_at)
