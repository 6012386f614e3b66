"""The ingress in front of the app: ACS reaches it by its public https URL; the app serves HTTP.

Call Automation calls back only HTTPS endpoints (Learn, "Secure webhook endpoint": "Your
callback URI must be a public endpoint with a valid HTTPS certificate"), so callbridge's public
URL is https and its transport URL wss. In Azure an ingress (Container Apps) terminates TLS and
forwards plain HTTP to the app. On loopback the stand-in plays that ingress: an https or wss URL
of a loopback host is reached over http or ws, at the same host and port.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_PLAIN: Final = {"https": "http", "wss": "ws"}


def through_ingress(url: str) -> str:
    """``url`` as the ingress forwards it to the app (unchanged unless https/wss on loopback)."""
    parts = urlsplit(url)
    plain = _PLAIN.get(parts.scheme)
    if plain is None or parts.hostname not in _LOOPBACK_HOSTS:
        return url
    return urlunsplit(parts._replace(scheme=plain))
