"""Checking the JWTs Azure puts on its requests against a policy, with the issuer's keys.

Without checking them, anyone who learns a callback URL can inject call events or open a media
socket into a live call. What a token must claim is ``callbridge.core.jwt_policy``.

The signing keys come from a JWKS document that is fetched with aiohttp, on the event loop,
because PyJWT's own ``PyJWKClient`` does blocking urllib I/O that would stall every call's
audio while it waits. The cache refetches for an unknown ``kid`` (key rotation) but rate-limits
that, so a stream of tokens with made-up key ids cannot turn callbridge into an amplifier
against the JWKS endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.types import Options

from callbridge.core.jwt_policy import JwtError, JwtPolicy, SigningKeysUnavailable

log = structlog.get_logger(__name__)

_ALGORITHM = "RS256"
_MIN_RSA_BITS = 2048
_MAX_TOKEN_CHARS = 16 * 1024
"""Far above a real ACS or Entra token; refusing larger ones early bounds the work a junk
header can cause."""
_MAX_JWKS_BYTES = 1024 * 1024
_RETRY_AFTER_FAILURE_S = 5.0
"""After a failed fetch, the next one waits at most this long, even when the refresh interval
is longer: an outage at start-up should not keep every request refused for a full interval
after the endpoint is back, yet a flood of requests must not retry on each one."""

_DECODE_OPTIONS: Options = {
    "verify_signature": True,
    "require": ["exp", "iss", "aud"],
    "enforce_minimum_key_length": True,
}


def _parse_jwks(body: bytes) -> dict[str, RSAPublicKey]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise SigningKeysUnavailable("signing keys unavailable: JWKS is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise SigningKeysUnavailable("signing keys unavailable: JWKS has no keys list")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            log.debug("jwks.entry_skipped", reason="not an object")
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            log.debug("jwks.entry_skipped", reason="no kid")
            continue
        # A key published for encryption, or for another algorithm, is not one the issuer
        # signs these tokens with, whatever its type.
        if entry.get("use", "sig") != "sig" or entry.get("alg", _ALGORITHM) != _ALGORITHM:
            log.debug("jwks.entry_skipped", kid=kid, reason="not an RS256 signing key")
            continue
        try:
            jwk = jwt.PyJWK(entry, algorithm=_ALGORITHM)
        except jwt.PyJWTError as exc:
            log.debug("jwks.entry_skipped", kid=kid, reason=type(exc).__name__)
            continue
        public_key = jwk.key
        if not isinstance(public_key, RSAPublicKey):
            log.debug("jwks.entry_skipped", kid=kid, reason="not an RSA public key")
            continue
        if public_key.key_size < _MIN_RSA_BITS:
            log.debug("jwks.entry_skipped", kid=kid, reason="RSA key too short")
            continue
        keys[kid] = public_key
    if not keys:
        raise SigningKeysUnavailable("signing keys unavailable: JWKS has no usable RS256 keys")
    return keys


class JwksCache:
    """The signing keys published at one JWKS URL, fetched lazily and refreshed on rotation.

    - The whole set is refetched once it is older than ``max_age_s``.
    - An unknown ``kid`` refetches it, at most once per ``min_refresh_interval_s``.
    - Concurrent callers that need a fetch share one.
    - If a refresh fails, keys from the last good set are still served.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        min_refresh_interval_s: float = 60.0,
        max_age_s: float = 24 * 3600,
        fetch_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        Args:
            url: the JWKS endpoint.
            session: used for fetches and left open by :meth:`close`; without one, the cache
                creates its own on first fetch and closes it in :meth:`close`.
            min_refresh_interval_s: the least time between two fetches triggered by unknown
                key ids.
            max_age_s: a set older than this is refetched before use.
            fetch_timeout_s: total time allowed for one fetch.
            clock: monotonic seconds; replaceable so tests can move time.
        """
        self._url = url
        self._session = session
        self._owns_session = session is None
        self._min_refresh_interval_s = min_refresh_interval_s
        self._max_age_s = max_age_s
        self._timeout = aiohttp.ClientTimeout(total=fetch_timeout_s)
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        """When the current set was fetched."""
        self._attempted_at: float | None = None
        """When the last fetch finished, successfully or not."""
        self._last_failed = False
        # Held across the fetch, so callers that arrive while one is in flight wait for it and
        # then find their key, instead of fetching again.
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return self._url

    async def key(self, kid: str) -> RSAPublicKey:
        """The RS256 public key with this ``kid``, fetching the JWKS if needed.

        Raises:
            JwtError: no key has this id, in a freshly fetched set or in one fetched too
                recently to look again.
            SigningKeysUnavailable: the JWKS could not be fetched, and no earlier copy holds
                this key.
        """
        found = self._fresh(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._fresh(kid)
            if found is not None:
                return found
            if self._may_fetch():
                try:
                    await self._refresh()
                except SigningKeysUnavailable:
                    stale = self._keys.get(kid)
                    if stale is None:
                        raise
                    log.warning("jwks.refresh_failed", url=self._url, using="the previous set")
                    return stale
                found = self._keys.get(kid)
                if found is None:
                    raise JwtError("unknown signing key")
                return found
            stale = self._keys.get(kid)
            if stale is not None:
                return stale
            if self._last_failed:
                raise SigningKeysUnavailable("signing keys unavailable: recent fetch failed")
            raise JwtError("unknown signing key")

    async def close(self) -> None:
        """Close the HTTP session if this cache created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _fresh(self, kid: str) -> RSAPublicKey | None:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age_s:
            return None
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        if self._attempted_at is None:
            return True
        interval = self._min_refresh_interval_s
        if self._last_failed:
            interval = min(interval, _RETRY_AFTER_FAILURE_S)
        return self._clock() - self._attempted_at >= interval

    async def _refresh(self) -> None:
        # A cancelled fetch is not recorded as an attempt, so it does not hold back the
        # callers still waiting for keys.
        try:
            keys = await self._fetch()
        except SigningKeysUnavailable as exc:
            self._attempted_at = self._clock()
            self._last_failed = True
            log.warning("jwks.fetch_failed", url=self._url, reason=str(exc))
            raise
        self._keys = keys
        self._fetched_at = self._attempted_at = self._clock()
        self._last_failed = False
        log.info("jwks.fetched", url=self._url, kids=sorted(keys))

    async def _fetch(self) -> dict[str, RSAPublicKey]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(self._url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise SigningKeysUnavailable(
                        f"signing keys unavailable: JWKS answered HTTP {response.status}"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > _MAX_JWKS_BYTES:
                        raise SigningKeysUnavailable("signing keys unavailable: JWKS too large")
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SigningKeysUnavailable(f"signing keys unavailable: {type(exc).__name__}") from exc
        return _parse_jwks(b"".join(chunks))


class JwtValidator:
    """Checks tokens against one policy, with keys from one JWKS."""

    def __init__(self, policy: JwtPolicy, keys: JwksCache) -> None:
        """
        Raises:
            ValueError: ``keys`` serves another JWKS than the policy names, which would let one
                issuer's keys vouch for another's tokens.
        """
        if keys.url != policy.jwks_url:
            raise ValueError(
                f"the key cache serves {keys.url!r} but the policy names {policy.jwks_url!r}"
            )
        self._policy = policy
        self._keys = keys

    @property
    def policy(self) -> JwtPolicy:
        return self._policy

    async def validate(self, token: str) -> dict[str, Any]:
        """The token's claims, once its signature, lifetime, issuer and audience check out.

        Raises:
            SigningKeysUnavailable: the signing keys could not be fetched.
            JwtError: the token is refused; the message says why.
        """
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise JwtError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtError("malformed token") from None
        # Checked before any key is looked up: "none" and HS256 (signed with the RSA public key
        # as an HMAC secret) are forgeries that only a lax algorithm check lets through.
        if header.get("alg") != _ALGORITHM:
            raise JwtError("unsupported algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwtError("missing key id")
        key = await self._keys.key(kid)
        policy = self._policy
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=policy.audience,
                issuer=policy.issuers,
                leeway=policy.leeway_s,
                options=_DECODE_OPTIONS,
            )
        except jwt.InvalidSignatureError:
            raise JwtError("bad signature") from None
        except jwt.ExpiredSignatureError:
            raise JwtError("expired token") from None
        except jwt.ImmatureSignatureError:
            raise JwtError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise JwtError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise JwtError("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise JwtError(f"missing {exc.claim} claim") from None
        except jwt.InvalidAlgorithmError:
            raise JwtError("unsupported algorithm") from None
        except jwt.InvalidKeyError:
            raise JwtError("unusable signing key") from None
        except jwt.PyJWTError:
            raise JwtError("malformed token") from None
        self._check_caller(claims)
        return claims

    def _check_caller(self, claims: dict[str, Any]) -> None:
        # Any app in the tenant can get a token for our audience; only the app id and the role
        # assignment show it was Event Grid's.
        policy = self._policy
        if policy.required_app_id is not None:
            app_ids = [claims[name] for name in ("appid", "azp") if name in claims]
            if not app_ids or any(app_id != policy.required_app_id for app_id in app_ids):
                raise JwtError("token for another app")
        if policy.required_role is not None:
            roles = claims.get("roles")
            if not isinstance(roles, list) or policy.required_role not in roles:
                raise JwtError("missing role")
