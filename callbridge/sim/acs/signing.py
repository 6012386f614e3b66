"""The RS256 tokens ACS puts on callbacks and media WebSocket upgrades, and the JWKS that
verifies them.

ACS signs a fresh JWT for every callback POST (5-minute lifetime) and every media WebSocket
upgrade (24 hours), with ``iss=https://acscallautomation.communication.azure.com`` and
``aud`` = the resource's immutable id, and publishes its keys at ``/calling/keys``. The stand-in
does the same with an RSA key made at start-up, so an app's token validation runs unchanged
against it (pointed at the stand-in's JWKS URL). ``mint`` also makes the bad tokens that
negative tests need: another audience or issuer, expired, or forged (signed by a different key
under the same ``kid``, which only a signature check catches).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any, Final, TypeAlias

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_ISSUER: Final = "https://acscallautomation.communication.azure.com"
CALLBACK_TOKEN_LIFETIME_S: Final = 5 * 60
MEDIA_TOKEN_LIFETIME_S: Final = 24 * 60 * 60
ALGORITHM: Final = "RS256"
_KEY_BITS: Final = 2048

TokenSource: TypeAlias = str | Callable[[], str]
"""A token override: a fixed string, or a callable asked for a fresh token at each use."""


def resolve_token(source: TokenSource) -> str:
    """The token a ``TokenSource`` gives now."""
    return source() if callable(source) else source


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


class Signer:
    """One signing key with its ``kid``, its JWKS, and the token minter."""

    def __init__(self, *, audience: str, issuer: str = DEFAULT_ISSUER) -> None:
        self.audience = audience
        self.issuer = issuer
        self.kid = uuid.uuid4().hex
        self._key = _new_key()

    @property
    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set served at ``/calling/keys``."""
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    @cached_property
    def _forger_key(self) -> rsa.RSAPrivateKey:
        """Made only when a test asks for a forged token: key generation is not free."""
        return _new_key()

    def mint(
        self,
        *,
        lifetime_s: float,
        audience: str | None = None,
        issuer: str | None = None,
        issued_at: float | None = None,
        forged: bool = False,
    ) -> str:
        """A signed JWT with ``iss``, ``aud``, ``iat``, ``nbf`` and ``exp``.

        Args:
            lifetime_s: ``exp - iat``; 0 or less makes a token that is already expired.
            audience: default: the stand-in's resource id.
            issuer: default: the stand-in's issuer.
            issued_at: Unix seconds (default: now); a time in the past backdates the token.
            forged: sign with a different key under the same ``kid``.
        """
        iat = int(time.time() if issued_at is None else issued_at)
        claims = {
            "iss": self.issuer if issuer is None else issuer,
            "aud": self.audience if audience is None else audience,
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(lifetime_s),
        }
        key = self._forger_key if forged else self._key
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": self.kid})
