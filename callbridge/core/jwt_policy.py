"""What the JWTs Azure puts on its requests to callbridge must say, and where they are carried.

ACS signs every Call Automation callback and every media WebSocket upgrade with an RS256 JWT in
``Authorization: Bearer``; Event Grid, when the subscription is Entra-protected, sends an Entra
ID token instead. A :class:`JwtPolicy` states what such a token must claim; checking a token
against it, with the issuer's signing keys, is ``callbridge.adapters.jwt_validation``.

Every refusal raises :class:`JwtError` with a short reason that is safe to log (it never holds
the token), so logs say why a request was turned away.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

# Learn, "Secure webhook endpoint" (communication-services/how-tos/call-automation/
# secure-webhook-endpoint): issuer, and the JWKS behind .well-known/acsopenidconfiguration.
ACS_ISSUER = "https://acscallautomation.communication.azure.com"
ACS_JWKS_URL = "https://acscallautomation.communication.azure.com/calling/keys"
ACS_LEEWAY_S = 10.0
"""Clock skew tolerated on ACS's tokens. A callback's JWT lives five minutes, a new one for each
event (Learn, secure-webhook-endpoint, Python include: "The lifetime of the JWT is five
minutes"), and Microsoft's sample validates it with PyJWT's default of no leeway at all. Skew is
not published either way; 10 s is our choice: an NTP-synchronized host is within a second of
ACS, with room to spare, while a replayed callback token outlives its five minutes by 3 %
rather than the 20 % a minute would allow."""
EVENT_GRID_APP_ID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"
"""The first-party Microsoft.EventGrid application that Entra issues Event Grid's tokens to."""
EVENT_GRID_ROLE = "AzureEventGridSecureWebhookSubscriber"


class JwtError(ValueError):
    """A token that must not be accepted. The message is safe to log: it never holds the token."""


class SigningKeysUnavailable(JwtError):  # noqa: N818 (a published interface name)
    """The JWKS could not be fetched, so the token could not be checked.

    The fault is ours or Azure's, not the caller's: a caller may answer 503 rather than 401.
    """


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """What a token must say to be accepted."""

    issuers: tuple[str, ...]
    """Accepted ``iss`` values, compared exactly."""
    audience: str
    """Must appear in ``aud`` (a string or a list)."""
    jwks_url: str
    """Where the issuer publishes its signing keys."""
    leeway_s: float = 60.0
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (ACS's tokens: ``ACS_LEEWAY_S``)."""
    required_app_id: str | None = None
    """If set, must equal the ``appid`` (Entra v1) or ``azp`` (Entra v2) claim."""
    required_role: str | None = None
    """If set, must be one of the ``roles`` claim."""

    def __post_init__(self) -> None:
        # A bare string here would turn the issuer check into a substring test.
        if not isinstance(self.issuers, tuple) or not self.issuers:
            raise ValueError("issuers must be a non-empty tuple of strings")
        if not all(isinstance(issuer, str) and issuer for issuer in self.issuers):
            raise ValueError("issuers must be a non-empty tuple of strings")
        if not self.audience:
            raise ValueError("audience must not be empty")
        if not self.jwks_url:
            raise ValueError("jwks_url must not be empty")
        if not (math.isfinite(self.leeway_s) and self.leeway_s >= 0):
            raise ValueError("leeway_s must be a finite number >= 0")
        if self.required_app_id == "" or self.required_role == "":
            raise ValueError("required_app_id and required_role must be None or non-empty")


def _require_guid(value: str, what: str) -> str:
    # Azure writes these GUIDs in canonical hyphenated form; a braced or unhyphenated copy
    # would parse but never match the claim, and would fail only at the first real call.
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{what} must be a GUID, got {value!r}") from None
    if canonical != value.lower():
        raise ValueError(f"{what} must be a GUID in 8-4-4-4-12 form, got {value!r}")
    return value


def acs_policy(
    resource_id: str, *, issuer: str = ACS_ISSUER, jwks_url: str = ACS_JWKS_URL
) -> JwtPolicy:
    """The policy for ACS-signed callbacks and media WebSocket upgrades.

    Args:
        resource_id: the ACS resource's immutable resource id (``properties.immutableResourceId``
            in ARM), which ACS puts in ``aud``. Not the ARM resource path.
        issuer: overridable so a local simulator can sign its own tokens.
        jwks_url: likewise.

    Raises:
        ValueError: ``resource_id`` is not a GUID.
    """
    audience = _require_guid(resource_id, "ACS immutable resource id")
    return JwtPolicy(issuers=(issuer,), audience=audience, jwks_url=jwks_url, leeway_s=ACS_LEEWAY_S)


def event_grid_entra_policy(tenant_id: str, audience: str) -> JwtPolicy:
    """The policy for Event Grid deliveries to an Entra-protected webhook.

    Args:
        tenant_id: the Entra tenant GUID set as ``azureActiveDirectoryTenantId`` on the
            subscription. A domain name will not do: issuers always name the GUID.
        audience: the application id or id URI set as
            ``azureActiveDirectoryApplicationIdOrUri``; Entra copies it into ``aud``.

    Raises:
        ValueError: ``tenant_id`` is not a GUID or ``audience`` is empty.
    """
    tenant = _require_guid(tenant_id, "Entra tenant id")
    return JwtPolicy(
        # v2.0 tokens carry the first issuer, v1.0 tokens the second; which one Event Grid gets
        # depends on the webhook app's accessTokenAcceptedVersion.
        issuers=(
            f"https://login.microsoftonline.com/{tenant}/v2.0",
            f"https://sts.windows.net/{tenant}/",
        ),
        audience=audience,
        jwks_url=f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        required_app_id=EVENT_GRID_APP_ID,
        required_role=EVENT_GRID_ROLE,
    )


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token from an ``Authorization: Bearer <token>`` header.

    ``headers`` may be aiohttp's case-insensitive multidict or a plain dict with any casing.

    Raises:
        JwtError: the header is absent, names another scheme, or is malformed.
    """
    value = headers.get("Authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None or not value.strip():
        raise JwtError("missing bearer token")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise JwtError("not a bearer token")
    token = token.strip()
    if not token:
        raise JwtError("missing bearer token")
    if any(c.isspace() for c in token):
        raise JwtError("malformed bearer token")
    return token
