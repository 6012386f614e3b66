"""Phone numbers: E.164 parsing, ACS identifiers, and masking for logs.

ACS names a phone participant in three ways: a bare E.164 string (``+18005550100``), a raw id
(``4:+18005550100``), and a CommunicationIdentifier object in Event Grid and Call Automation
payloads. Everything in callbridge compares numbers in one canonical form, the E.164 string,
so a routing table written by hand matches the number ACS reports for the same line.

Phone numbers are personal data. ``mask`` is the only form in which a number may reach a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
"""A canonical E.164 number: ``+``, then 2 to 15 digits, the first not 0 (ITU-T E.164)."""

RAW_ID_PREFIX: Final = "4:"
"""ACS prefixes the raw id of every phone-number identifier with ``4:``."""

_SEPARATORS: Final = re.compile(r"[\s\-.()]")
"""What people write between digits: ``+1 (800) 555-0100``, ``+44.20.7946.0018``."""

_PHONE_KIND: Final = "phonenumber"

_MASK_LENGTH_CLASSES: Final = (4, 8, 16, 32, 64)
"""A masked non-number is as long as the smallest class that fits it, so only its rough size
shows in a log: enough to tell an empty id from a long one, too little to recognise it."""


def is_e164(text: str) -> bool:
    """Whether ``text`` is already a canonical E.164 number (no separators, no raw-id prefix)."""
    return E164.fullmatch(text) is not None


def parse_e164(text: str) -> str | None:
    """The canonical E.164 form of ``text``, or None if it is not a phone number.

    Accepts ``+18005550100``, the ACS raw id ``4:+18005550100``, and numbers as people write
    them (``+1 (800) 555-0100``): spaces, dashes, dots and parentheses are dropped. The ``+``
    is required. Without it a number is ambiguous (national or international?) and guessing
    would route a call to the wrong line.
    """
    candidate = text.strip()
    if candidate.startswith(RAW_ID_PREFIX):
        candidate = candidate[len(RAW_ID_PREFIX) :]
    candidate = _SEPARATORS.sub("", candidate)
    return candidate if is_e164(candidate) else None


def number_from_identifier(identifier: Mapping[str, Any]) -> str | None:
    """The E.164 number of an ACS CommunicationIdentifier, or None if it is not a phone.

    ``identifier`` is the JSON of ``data.to`` or ``data.from`` in an Event Grid IncomingCall
    event, for example
    ``{"kind": "phoneNumber", "rawId": "4:+18335550100", "phoneNumber": {"value": "+1833..."}}``.
    Event Grid spells the kind ``phoneNumber`` and the SDK models ``PhoneNumber``, and older
    payloads omit it, so the kind is matched case-insensitively and, failing a usable value,
    the ``4:`` raw id decides. ACS users (``8:acs:...``) and Teams identities give None.
    """
    kind = identifier.get("kind")
    if kind is None or (isinstance(kind, str) and kind.lower() == _PHONE_KIND):
        phone = identifier.get("phoneNumber")
        if isinstance(phone, Mapping):
            value = phone.get("value")
            if isinstance(value, str) and (number := parse_e164(value)) is not None:
                return number
    raw_id = identifier.get("rawId")
    if isinstance(raw_id, str) and raw_id.strip().startswith(RAW_ID_PREFIX):
        return parse_e164(raw_id)
    return None


def mask(number: str) -> str:
    """``number`` made safe for a log: ``+18005550100`` becomes ``+18*******00``.

    The ``+``, the first two digits (enough to tell the country) and the last two (enough to
    tell lines apart when reading a log) stay; every other digit is a star. Numbers too short
    for that to hide most of them keep only their first digit. Anything that is not a phone
    number (an ACS user id, ``anonymous``, garbage) is starred entirely, padded to a length
    class, so no raw value ever appears.
    """
    canonical = parse_e164(number)
    if canonical is None:
        return _mask_opaque(number)
    digits = canonical[1:]
    if len(digits) >= 8:
        return f"+{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"
    return f"+{digits[0]}{'*' * (len(digits) - 1)}"


def _mask_opaque(text: str) -> str:
    if not text:
        return ""
    size = next((c for c in _MASK_LENGTH_CLASSES if len(text) <= c), _MASK_LENGTH_CLASSES[-1])
    return "*" * size
