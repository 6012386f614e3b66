"""ACS access-key (HMAC-SHA256) request authentication, checked the way the service checks it.

An ``AzureKeyCredential`` makes the Call Automation SDK sign every request
(``azure/communication/callautomation/_shared/policy.py``)::

    x-ms-date:           Sat, 21 Nov 2026 14:04:05 GMT
    x-ms-content-sha256: base64(sha256(body))
    Authorization:       HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=S

    S = base64(HMAC-SHA256(base64decode(access key),
                           "VERB\\n/path?query\\n" + ";".join(values of the signed headers)))

The stand-in checks all of it, so an app whose key, clock or body handling is wrong fails here
exactly as it would against ACS, instead of passing a lenient mock. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final

SCHEME: Final = "HMAC-SHA256"
REQUIRED_SIGNED_HEADERS: Final = frozenset({"x-ms-date", "host", "x-ms-content-sha256"})
"""A signature that leaves out the date, the host or the body hash could be replayed or
moved to another body or resource, so ACS insists on all three."""


class HmacError(ValueError):
    """Why a request is not authenticated. The message is safe to log: it holds no secret."""


def decode_access_key(access_key: str) -> bytes:
    """The HMAC key: ACS access keys are base64 text, and the raw bytes are the secret.

    Raises:
        ValueError: the key is not base64.
    """
    try:
        return base64.b64decode(access_key, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise ValueError("an ACS access key is base64 text") from exc


def content_hash(body: bytes) -> str:
    """``x-ms-content-sha256`` of a body (the empty body too: GET and DELETE sign it)."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def verify_request(
    *,
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    body: bytes,
    key: bytes,
    now: datetime,
    max_skew_s: float,
) -> None:
    """Accept a request signed with ``key``, or raise ``HmacError`` saying why not.

    Args:
        method: the HTTP verb.
        path_and_query: the request target exactly as sent (still percent-encoded), which is
            what the SDK signs.
        headers: the request headers; lookups must be case-insensitive (aiohttp's are).
        body: the raw body.
        key: the decoded access key.
        now: the current UTC time, to reject stale or future-dated requests (replays).
        max_skew_s: how far ``x-ms-date`` may be from ``now``.
    """
    signed_headers, signature = _parse_authorization(headers.get("Authorization", ""))
    claimed_hash = headers.get("x-ms-content-sha256", "")
    if not hmac.compare_digest(claimed_hash.encode(), content_hash(body).encode()):
        raise HmacError("x-ms-content-sha256 does not match the body")
    _check_date(headers.get("x-ms-date", ""), now, max_skew_s)
    values = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise HmacError(f"signed header {name} is missing")
        values.append(value)
    string_to_sign = f"{method.upper()}\n{path_and_query}\n{';'.join(values)}"
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise HmacError("the signature is not base64") from exc
    if not hmac.compare_digest(given, expected):
        raise HmacError("the signature does not match")


def _parse_authorization(header: str) -> tuple[list[str], str]:
    scheme, _, params = header.strip().partition(" ")
    if scheme != SCHEME:
        raise HmacError(f"the Authorization scheme is not {SCHEME}")
    fields: dict[str, str] = {}
    for part in params.split("&"):
        name, _, value = part.partition("=")
        fields[name.strip()] = value.strip()
    signed = [name.lower() for name in fields.get("SignedHeaders", "").split(";") if name]
    signature = fields.get("Signature", "")
    if not signature:
        raise HmacError("the Authorization header has no Signature")
    missing = REQUIRED_SIGNED_HEADERS - set(signed)
    if missing:
        raise HmacError(f"SignedHeaders leaves out {', '.join(sorted(missing))}")
    return signed, signature


def _check_date(text: str, now: datetime, max_skew_s: float) -> None:
    try:
        stamp = parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise HmacError("x-ms-date is not an HTTP date") from exc
    if stamp.tzinfo is None:
        raise HmacError("x-ms-date has no time zone")
    skew = abs((now - stamp).total_seconds())
    if skew > max_skew_s:
        raise HmacError(f"x-ms-date is {skew:.0f} s from the server clock")
