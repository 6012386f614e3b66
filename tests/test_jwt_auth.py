"""JWT validation for ACS and Event Grid requests, against a JWKS served on loopback.

RSA keys are generated here, tokens are minted with PyJWT, and the JWKS endpoint is a small
aiohttp server that counts its requests, so each test can say exactly how many fetches a
scenario costs.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from multidict import CIMultiDict

from callbridge.adapters.jwt_validation import JwksCache, JwtValidator
from callbridge.core.jwt_policy import (
    ACS_ISSUER,
    ACS_JWKS_URL,
    ACS_LEEWAY_S,
    EVENT_GRID_APP_ID,
    EVENT_GRID_ROLE,
    JwtError,
    JwtPolicy,
    SigningKeysUnavailable,
    acs_policy,
    bearer_token,
    event_grid_entra_policy,
)

RESOURCE_ID = "6d0b3c1e-2f4a-4e8b-9c1d-0a1b2c3d4e5f"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
WEBHOOK_AUDIENCE = "api://callbridge-events"
REFRESH_INTERVAL_S = 60.0
MAX_AGE_S = 3600.0


@dataclasses.dataclass(frozen=True)
class Keys:
    current: rsa.RSAPrivateKey
    """Published as ``k1`` from the start."""
    rotated: rsa.RSAPrivateKey
    """Published as ``k2`` only after a rotation."""
    forger: rsa.RSAPrivateKey
    """Never published."""


@pytest.fixture(scope="module")
def keys() -> Keys:
    def new() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(current=new(), rotated=new(), forger=new())


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    # Entra's documents carry no "alg", so neither does this one.
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def mint(
    key: rsa.RSAPrivateKey, *, kid: str | None = "k1", algorithm: str = "RS256", **claims: Any
) -> str:
    """An ACS-style token; a claim passed as None is left out."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ACS_ISSUER,
        "aud": RESOURCE_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: Mapping[str, Any], payload: Mapping[str, Any], signer: bytes | None) -> str:
    """A token PyJWT would refuse to produce: unsigned, or HMAC-signed with ``signer``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = b""
    if signer is not None:
        signature = hmac.new(signer, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts requests and misbehaves on demand."""

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys
        self.requests = 0
        self.status = 200
        self.body: bytes | None = None
        """Sent as is instead of the key set, when set."""
        self.delay_s = 0.0
        self.hang = False
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.hang:
            await self._released.wait()
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="nope")
        if self.body is not None:
            return web.Response(body=self.body, content_type="application/json")
        return web.json_response({"keys": self.keys})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/keys", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/keys"

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def server(keys: Keys) -> AsyncIterator[JwksServer]:
    jwks = JwksServer([public_jwk(keys.current, "k1")])
    await jwks.start()
    yield jwks
    await jwks.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(server: JwksServer, clock: FakeClock) -> AsyncIterator[JwksCache]:
    jwks = JwksCache(
        server.url,
        min_refresh_interval_s=REFRESH_INTERVAL_S,
        max_age_s=MAX_AGE_S,
        fetch_timeout_s=2.0,
        clock=clock,
    )
    yield jwks
    await jwks.close()


@pytest.fixture
def acs(server: JwksServer, cache: JwksCache) -> JwtValidator:
    return JwtValidator(acs_policy(RESOURCE_ID, jwks_url=server.url), cache)


@pytest.fixture
def entra(server: JwksServer, cache: JwksCache) -> JwtValidator:
    policy = event_grid_entra_policy(TENANT_ID, WEBHOOK_AUDIENCE)
    return JwtValidator(dataclasses.replace(policy, jwks_url=server.url), cache)


async def refused(validator: JwtValidator, token: str, reason: str) -> JwtError:
    """Validation fails with ``reason``, and the message does not leak the token."""
    with pytest.raises(JwtError, match=reason) as caught:
        await validator.validate(token)
    assert not token or token not in str(caught.value)
    return caught.value


class TestBearerToken:
    @pytest.mark.parametrize(
        "headers",
        [
            {"Authorization": "Bearer abc.def.ghi"},
            {"authorization": "bearer abc.def.ghi"},
            {"AUTHORIZATION": "BEARER   abc.def.ghi  "},
            CIMultiDict({"authorization": "Bearer abc.def.ghi"}),
        ],
        ids=["canonical", "lower-case", "upper-case-and-spaces", "multidict"],
    )
    def test_extracts_the_token(self, headers: Mapping[str, str]) -> None:
        """The scheme and the header name match whatever their case."""
        assert bearer_token(headers) == "abc.def.ghi"

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing bearer token"),
            ({"Authorization": ""}, "missing bearer token"),
            ({"Authorization": "Bearer"}, "missing bearer token"),
            ({"Authorization": "Bearer   "}, "missing bearer token"),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, "not a bearer token"),
            ({"Authorization": "abc.def.ghi"}, "not a bearer token"),
            ({"Authorization": "Bearer abc def"}, "malformed bearer token"),
        ],
        ids=["absent", "empty", "scheme-only", "blank-token", "basic", "no-scheme", "two-tokens"],
    )
    def test_rejects(self, headers: Mapping[str, str], reason: str) -> None:
        with pytest.raises(JwtError, match=reason):
            bearer_token(headers)


class TestAcsTokens:
    @pytest.mark.parametrize(
        "aud", [RESOURCE_ID, ["some-other-app", RESOURCE_ID]], ids=["string", "list"]
    )
    async def test_valid_token_accepted(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, aud: str | list[str]
    ) -> None:
        """A good token yields its claims, and the keys are fetched once, on first use."""
        claims = await acs.validate(mint(keys.current, aud=aud, sub="acs"))
        assert claims["aud"] == aud
        assert claims["sub"] == "acs"
        await acs.validate(mint(keys.current, aud=aud))
        assert server.requests == 1

    @pytest.mark.parametrize(
        "token",
        ["", "abc", "a.b.c", "!!!.!!!.!!!", "e30.e30", "x" * 20_000],
        ids=["empty", "one-part", "junk-parts", "not-base64", "two-parts", "huge"],
    )
    async def test_malformed_token(self, acs: JwtValidator, server: JwksServer, token: str) -> None:
        """Garbage is refused without a JWKS fetch."""
        await refused(acs, token, "malformed token")
        assert server.requests == 0

    @pytest.mark.parametrize(
        ("offsets", "reason"),
        [
            ({"exp": -30}, "expired token"),
            ({"nbf": 30}, "token not yet valid"),
            ({"iat": 30}, "token not yet valid"),
        ],
        ids=["expired", "nbf-future", "iat-future"],
    )
    async def test_lifetime_beyond_leeway_refused(
        self, acs: JwtValidator, keys: Keys, offsets: dict[str, int], reason: str
    ) -> None:
        now = int(time.time())
        claims: dict[str, Any] = {name: now + offset for name, offset in offsets.items()}
        await refused(acs, mint(keys.current, **claims), reason)

    @pytest.mark.parametrize(
        "offsets",
        [{"exp": -5}, {"nbf": 5}, {"iat": 5}, {"nbf": None, "iat": None}],
        ids=["just-expired", "nbf-slightly-ahead", "iat-slightly-ahead", "no-nbf-no-iat"],
    )
    async def test_clock_skew_within_leeway_accepted(
        self, acs: JwtValidator, keys: Keys, offsets: dict[str, int | None]
    ) -> None:
        """The ACS policy's 10 s leeway absorbs a skewed clock either way; nbf and iat are
        optional."""
        now = int(time.time())
        claims: dict[str, Any] = {
            name: None if off is None else now + off for name, off in offsets.items()
        }
        await acs.validate(mint(keys.current, **claims))

    @pytest.mark.parametrize(
        ("claims", "reason"),
        [
            ({"aud": "00000000-0000-0000-0000-000000000000"}, "wrong audience"),
            ({"aud": ["a", "b"]}, "wrong audience"),
            ({"iss": "https://evil.example"}, "wrong issuer"),
            ({"iss": ACS_ISSUER + "/"}, "wrong issuer"),
            ({"exp": None}, "missing exp claim"),
            ({"aud": None}, "missing aud claim"),
            ({"iss": None}, "missing iss claim"),
        ],
        ids=["aud", "aud-list", "iss", "iss-trailing-slash", "no-exp", "no-aud", "no-iss"],
    )
    async def test_claims_checked(
        self, acs: JwtValidator, keys: Keys, claims: dict[str, Any], reason: str
    ) -> None:
        await refused(acs, mint(keys.current, **claims), reason)

    async def test_forged_signature(self, acs: JwtValidator, keys: Keys) -> None:
        """A token signed by another key that claims a published kid fails the signature."""
        await refused(acs, mint(keys.forger, kid="k1"), "bad signature")

    async def test_missing_kid(self, acs: JwtValidator, keys: Keys, server: JwksServer) -> None:
        await refused(acs, mint(keys.current, kid=None), "missing key id")
        assert server.requests == 0


class TestAlgorithms:
    async def test_alg_none(self, acs: JwtValidator, server: JwksServer) -> None:
        now = int(time.time())
        payload = {"iss": ACS_ISSUER, "aud": RESOURCE_ID, "exp": now + 300}
        token = hand_made({"alg": "none", "typ": "JWT", "kid": "k1"}, payload, signer=None)
        await refused(acs, token, "unsupported algorithm")
        assert server.requests == 0

    async def test_hs256_signed_with_the_public_key(
        self, acs: JwtValidator, keys: Keys, server: JwksServer
    ) -> None:
        """The key-confusion forgery: HMAC with the published RSA key's PEM as the secret."""
        pem = keys.current.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        now = int(time.time())
        payload = {"iss": ACS_ISSUER, "aud": RESOURCE_ID, "exp": now + 300}
        token = hand_made({"alg": "HS256", "typ": "JWT", "kid": "k1"}, payload, signer=pem)
        await refused(acs, token, "unsupported algorithm")
        assert server.requests == 0

    @pytest.mark.parametrize("algorithm", ["RS512", "PS256"])
    async def test_other_rsa_algorithms(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, algorithm: str
    ) -> None:
        await refused(acs, mint(keys.current, algorithm=algorithm), "unsupported algorithm")
        assert server.requests == 0


class TestKeyCache:
    async def test_rotation_then_unknown_kid_throttled(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, clock: FakeClock
    ) -> None:
        """A new kid refetches once after the interval; a second one inside it fetches nothing."""
        await acs.validate(mint(keys.current))
        assert server.requests == 1

        server.keys = [public_jwk(keys.current, "k1"), public_jwk(keys.rotated, "k2")]
        clock.advance(REFRESH_INTERVAL_S)
        await acs.validate(mint(keys.rotated, kid="k2"))
        assert server.requests == 2

        clock.advance(REFRESH_INTERVAL_S / 2)
        await refused(acs, mint(keys.forger, kid="k3"), "unknown signing key")
        await refused(acs, mint(keys.forger, kid="k4"), "unknown signing key")
        assert server.requests == 2
        await acs.validate(mint(keys.rotated, kid="k2"))
        assert server.requests == 2

    async def test_unknown_kid_right_after_first_fetch_is_throttled(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, clock: FakeClock
    ) -> None:
        """The interval counts from the first fetch too; once it passes, one refetch happens."""
        await acs.validate(mint(keys.current))
        server.keys = [public_jwk(keys.rotated, "k2")]
        await refused(acs, mint(keys.rotated, kid="k2"), "unknown signing key")
        assert server.requests == 1
        clock.advance(REFRESH_INTERVAL_S)
        await acs.validate(mint(keys.rotated, kid="k2"))
        assert server.requests == 2

    async def test_set_refetched_when_older_than_max_age(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, clock: FakeClock
    ) -> None:
        """A key dropped from the JWKS stops working once the cached set has aged out."""
        await acs.validate(mint(keys.current))
        server.keys = [public_jwk(keys.rotated, "k2")]
        clock.advance(MAX_AGE_S - 1)
        await acs.validate(mint(keys.current))
        assert server.requests == 1
        clock.advance(1)
        await refused(acs, mint(keys.current), "unknown signing key")
        assert server.requests == 2

    async def test_old_set_used_when_refresh_fails(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, clock: FakeClock
    ) -> None:
        await acs.validate(mint(keys.current))
        server.status = 503
        clock.advance(MAX_AGE_S)
        await acs.validate(mint(keys.current))
        assert server.requests == 2
        with pytest.raises(SigningKeysUnavailable):
            await acs.validate(mint(keys.rotated, kid="k2"))

    async def test_server_down(self, acs: JwtValidator, keys: Keys, server: JwksServer) -> None:
        """Connection refused: the caller learns the keys are unavailable, not that it is bad."""
        await server.stop()
        err = await refused(acs, mint(keys.current), "signing keys unavailable")
        assert isinstance(err, SigningKeysUnavailable)

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (500, None),
            (404, None),
            (200, b"<html>not json</html>"),
            (200, b'{"no": "keys"}'),
            (200, b'{"keys": []}'),
            (200, b"[1, 2]"),
        ],
        ids=["500", "404", "not-json", "no-keys-member", "empty-set", "json-array"],
    )
    async def test_bad_jwks_responses(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, status: int, body: bytes | None
    ) -> None:
        server.status, server.body = status, body
        with pytest.raises(SigningKeysUnavailable):
            await acs.validate(mint(keys.current))

    async def test_fetch_timeout(self, server: JwksServer, keys: Keys, clock: FakeClock) -> None:
        server.hang = True
        cache = JwksCache(server.url, fetch_timeout_s=0.1, clock=clock)
        try:
            started = time.monotonic()
            with pytest.raises(SigningKeysUnavailable):
                await cache.key("k1")
            assert time.monotonic() - started < 1.0
        finally:
            await cache.close()

    async def test_failed_fetch_retried_after_a_short_backoff(
        self, acs: JwtValidator, keys: Keys, server: JwksServer, clock: FakeClock
    ) -> None:
        """A down JWKS is not retried per request, but recovery is noticed within seconds."""
        server.status = 500
        with pytest.raises(SigningKeysUnavailable):
            await acs.validate(mint(keys.current))
        with pytest.raises(SigningKeysUnavailable):
            await acs.validate(mint(keys.current))
        assert server.requests == 1
        server.status = 200
        clock.advance(5.0)
        await acs.validate(mint(keys.current))
        assert server.requests == 2

    async def test_concurrent_validations_share_one_fetch(
        self, acs: JwtValidator, keys: Keys, server: JwksServer
    ) -> None:
        server.delay_s = 0.05
        tokens = [mint(keys.current, sub=f"call-{n}") for n in range(20)]
        results = await asyncio.gather(*(acs.validate(token) for token in tokens))
        assert [claims["sub"] for claims in results] == [f"call-{n}" for n in range(20)]
        assert server.requests == 1

    async def test_unusable_jwks_entries_skipped(
        self, acs: JwtValidator, keys: Keys, server: JwksServer
    ) -> None:
        """EC, symmetric, short RSA, encryption and kid-less entries are ignored, not fatal."""
        ec_key = ec.generate_private_key(ec.SECP256R1())
        short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        server.keys = [
            {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec"},
            {"kty": "oct", "k": _b64(b"s" * 32), "kid": "oct"},
            public_jwk(short, "short"),
            {**public_jwk(keys.rotated, "enc"), "use": "enc"},
            {**public_jwk(keys.rotated, "ps"), "alg": "PS256"},
            {key: value for key, value in public_jwk(keys.rotated, "x").items() if key != "kid"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            "not-an-object",
            public_jwk(keys.current, "k1"),
        ]
        await acs.validate(mint(keys.current))
        for kid in ["ec", "oct", "short", "enc", "ps", "broken"]:
            await refused(acs, mint(keys.forger, kid=kid), "unknown signing key")
        assert server.requests == 1

    async def test_close_leaves_a_borrowed_session_open(self, server: JwksServer) -> None:
        async with aiohttp.ClientSession() as session:
            cache = JwksCache(server.url, session=session)
            await cache.key("k1")
            await cache.close()
            assert not session.closed
            await cache.key("k1")
        assert server.requests == 1


class TestEventGridEntra:
    @staticmethod
    def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
        defaults: dict[str, Any] = {
            "iss": f"https://login.microsoftonline.com/{TENANT_ID}/v2.0",
            "aud": WEBHOOK_AUDIENCE,
            "azp": EVENT_GRID_APP_ID,
            "roles": [EVENT_GRID_ROLE],
            "tid": TENANT_ID,
        }
        return mint(key, **{**defaults, **claims})

    async def test_v2_token_accepted(self, entra: JwtValidator, keys: Keys) -> None:
        claims = await entra.validate(self.token(keys.current))
        assert claims["azp"] == EVENT_GRID_APP_ID

    async def test_v1_token_accepted(self, entra: JwtValidator, keys: Keys) -> None:
        """v1 tokens name the app in ``appid`` and come from sts.windows.net."""
        token = self.token(
            keys.current,
            iss=f"https://sts.windows.net/{TENANT_ID}/",
            azp=None,
            appid=EVENT_GRID_APP_ID,
        )
        await entra.validate(token)

    @pytest.mark.parametrize(
        ("claims", "reason"),
        [
            ({"azp": "11111111-1111-1111-1111-111111111111"}, "token for another app"),
            ({"azp": None}, "token for another app"),
            ({"appid": "11111111-1111-1111-1111-111111111111"}, "token for another app"),
            ({"roles": None}, "missing role"),
            ({"roles": ["SomethingElse"]}, "missing role"),
            ({"roles": EVENT_GRID_ROLE}, "missing role"),
            ({"iss": "https://login.microsoftonline.com/common/v2.0"}, "wrong issuer"),
            ({"aud": EVENT_GRID_APP_ID}, "wrong audience"),
        ],
        ids=[
            "wrong-azp",
            "no-app-id",
            "appid-disagrees",
            "no-roles",
            "other-role",
            "roles-not-a-list",
            "other-tenant-issuer",
            "aud-is-event-grid",
        ],
    )
    async def test_rejected(
        self, entra: JwtValidator, keys: Keys, claims: dict[str, Any], reason: str
    ) -> None:
        await refused(entra, self.token(keys.current, **claims), reason)

    async def test_acs_token_refused(self, entra: JwtValidator, keys: Keys) -> None:
        await refused(entra, mint(keys.current), "wrong issuer|wrong audience")


class TestPolicies:
    def test_acs_policy(self) -> None:
        policy = acs_policy(RESOURCE_ID)
        assert policy.issuers == (ACS_ISSUER,)
        assert policy.audience == RESOURCE_ID
        assert policy.jwks_url == ACS_JWKS_URL
        assert policy.required_app_id is None
        assert policy.leeway_s == ACS_LEEWAY_S == 10.0

    def test_entra_policy(self) -> None:
        policy = event_grid_entra_policy(TENANT_ID, WEBHOOK_AUDIENCE)
        assert set(policy.issuers) == {
            f"https://login.microsoftonline.com/{TENANT_ID}/v2.0",
            f"https://sts.windows.net/{TENANT_ID}/",
        }
        assert policy.jwks_url == (
            f"https://login.microsoftonline.com/{TENANT_ID}/discovery/v2.0/keys"
        )
        assert (policy.required_app_id, policy.required_role) == (
            EVENT_GRID_APP_ID,
            EVENT_GRID_ROLE,
        )

    @pytest.mark.parametrize(
        "resource_id",
        ["", "my-acs-resource", RESOURCE_ID.replace("-", ""), "{" + RESOURCE_ID + "}"],
        ids=["empty", "name", "unhyphenated", "braced"],
    )
    def test_ids_must_be_guids(self, resource_id: str) -> None:
        """A wrongly pasted id fails at start-up, not on the first call."""
        with pytest.raises(ValueError, match="GUID"):
            acs_policy(resource_id)
        with pytest.raises(ValueError, match="GUID"):
            event_grid_entra_policy(resource_id, WEBHOOK_AUDIENCE)

    def test_issuers_must_be_a_tuple(self) -> None:
        """A bare string would make ``iss in issuers`` a substring test."""
        with pytest.raises(ValueError, match="issuers"):
            JwtPolicy(issuers=ACS_ISSUER, audience=RESOURCE_ID, jwks_url=ACS_JWKS_URL)  # type: ignore[arg-type]

    async def test_validator_refuses_a_cache_for_another_jwks(self) -> None:
        cache = JwksCache("https://login.microsoftonline.com/common/discovery/v2.0/keys")
        with pytest.raises(ValueError, match="policy names"):
            JwtValidator(acs_policy(RESOURCE_ID), cache)
        await cache.close()
