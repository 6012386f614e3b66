"""Where the stand-ins run and how a callbridge finds them: loopback, ports and credentials.

The loopback address and the Voice Live emulator's key, a free port for a server in another
process, the environment that points a ``callbridge serve`` process at the stand-ins, and
media socket URLs carrying a signed call token.
"""

from __future__ import annotations

import socket

from callbridge.core.call_token import mint_call_token
from callbridge.sim.acs import AcsStandin

LOOPBACK = "127.0.0.1"
EMULATOR_KEY = "local-emulator-key"
MEDIA_TOKEN_S = 24 * 3600


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for a server in another process)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def serve_env(port: int, endpoint: str, acs: AcsStandin, secret: str) -> dict[str, str]:
    """The variables that point a ``callbridge serve`` process on ``port`` at the stand-ins:
    the Voice Live emulator at ``endpoint`` and ``acs``, with ``secret`` signing its tokens and
    guarding its webhook. Callers add their own settings on top."""
    return {
        "AZURE_VOICE_LIVE_ENDPOINT": endpoint,
        "AZURE_VOICE_LIVE_API_KEY": EMULATOR_KEY,
        "ACS_ENDPOINT": acs.endpoint,
        "ACS_ACCESS_KEY": acs.access_key,
        "ACS_RESOURCE_ID": acs.resource_id,
        "ACS_JWT_ISSUER": acs.issuer,
        "ACS_JWKS_URL": acs.jwks_url,
        # https, as Call Automation requires; the ACS stand-in plays the TLS-terminating
        # ingress in front of the plain-HTTP port (callbridge.sim.acs.ingress).
        "CALLBRIDGE_PUBLIC_URL": f"https://{LOOPBACK}:{port}",
        "CALLBRIDGE_HOST": LOOPBACK,
        "CALLBRIDGE_PORT": str(port),
        "CALLBRIDGE_SIGNING_KEY": secret,
        "CALLBRIDGE_WEBHOOK_SECRET": secret,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


def signed_media_url(ws_url: str, signing_key: bytes, correlation_id: str, profile: str) -> str:
    """A media socket URL carrying a signed token for the call with ``correlation_id``."""
    token = mint_call_token(signing_key, call_key=correlation_id, profile=profile)
    return f"{ws_url}/{token}"
