"""Phone numbers: E.164 parsing, ACS identifiers, and masking for logs."""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.core.numbers import is_e164, mask, number_from_identifier, parse_e164


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+18005550100", "+18005550100"),
        ("4:+18005550100", "+18005550100"),
        ("+1 (800) 555-0100", "+18005550100"),
        ("+44.20.7946.0018", "+442079460018"),
        ("  +18005550100\n", "+18005550100"),
        ("+12", "+12"),  # shortest: two digits
        ("+123456789012345", "+123456789012345"),  # longest: fifteen digits
    ],
)
def test_parse_e164_accepts_and_canonicalises(text: str, expected: str) -> None:
    """Raw ids and the separators people write are accepted; the result is bare E.164."""
    assert parse_e164(text) == expected
    assert is_e164(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "+1",  # one digit
        "+1234567890123456",  # sixteen digits
        "18005550100",  # no "+": national or international is a guess
        "+08005550100",  # country codes never start with 0
        "++18005550100",
        "+1800555O100",  # letter O
        "+1800555\u0661100",  # Arabic-Indic digit: only ASCII digits are E.164
        "+1/800/5550100",
        "8:acs:resource_user",
        "4:",
        "tel:+18005550100",
        "anonymous",
    ],
)
def test_parse_e164_rejects_what_is_not_a_number(text: str) -> None:
    assert parse_e164(text) is None


def test_is_e164_wants_the_canonical_form() -> None:
    """``is_e164`` checks; it does not clean up separators or raw-id prefixes."""
    assert is_e164("+18005550100")
    assert not is_e164("+1 800 555 0100")
    assert not is_e164("4:+18005550100")


@pytest.mark.parametrize(
    "identifier",
    [
        {
            "kind": "phoneNumber",
            "rawId": "4:+18335550100",
            "phoneNumber": {"value": "+18335550100"},
        },
        {"kind": "PhoneNumber", "phoneNumber": {"value": "+18335550100"}},
        {"kind": "PHONENUMBER", "rawId": "4:+18335550100"},  # no phoneNumber object
        {"rawId": "4:+18335550100", "phoneNumber": {"value": "+18335550100"}},  # no kind
        {"rawId": "4:+18335550100"},
        {"kind": "unknown", "rawId": "4:+18335550100"},
        {"kind": "phoneNumber", "rawId": "4:+18335550100", "phoneNumber": {"value": None}},
        {"kind": "phoneNumber", "rawId": "4:+18335550100", "phoneNumber": "+1"},
    ],
)
def test_number_from_phone_identifiers(identifier: dict[str, Any]) -> None:
    """Event Grid's and the SDK's spellings of a phone identifier, and the raw-id fallback."""
    assert number_from_identifier(identifier) == "+18335550100"


@pytest.mark.parametrize(
    "identifier",
    [
        {
            "kind": "communicationUser",
            "rawId": "8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000000-0000-0000",
            "communicationUser": {"id": "8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776"},
        },
        {
            "kind": "microsoftTeamsUser",
            "rawId": "8:orgid:45ab2481-1c1c-4005-be24-0ffb879b1130",
            "microsoftTeamsUser": {"userId": "45ab2481-1c1c-4005-be24-0ffb879b1130"},
        },
        {"kind": "microsoftTeamsApp", "rawId": "28:orgid:01234567-89ab-cdef-0123-456789abcdef"},
        # A phone kind whose number is garbage, and a Teams user with a stray phone value.
        {"kind": "phoneNumber", "rawId": "4:anonymous", "phoneNumber": {"value": "anonymous"}},
        {"kind": "microsoftTeamsUser", "phoneNumber": {"value": "+18335550100"}},
        {},
        {"kind": 4, "rawId": 4},
    ],
)
def test_non_phone_identifiers_have_no_number(identifier: dict[str, Any]) -> None:
    assert number_from_identifier(identifier) is None


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+18005550100", "+18*******00"),
        ("4:+18005550100", "+18*******00"),
        ("+1 (800) 555-0100", "+18*******00"),
        ("+442079460018", "+44********18"),
        ("+12345678", "+12****78"),  # eight digits: the shortest that keeps both ends
        ("+1234567", "+1******"),  # shorter: only the first digit stays
        ("+12", "+1*"),
    ],
)
def test_mask_keeps_country_and_last_two_digits(number: str, masked: str) -> None:
    assert mask(number) == masked


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("", 0),
        ("x", 4),
        ("anonymous", 16),
        ("18005550100", 16),  # no "+": not recognisably a number, so nothing of it shows
        ("8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776", 64),
        ("y" * 500, 64),
    ],
)
def test_mask_hides_anything_else_entirely(text: str, length: int) -> None:
    """Non-numbers become stars of a length class: the size shows, the value never does."""
    assert mask(text) == "*" * length


@pytest.mark.parametrize(
    "number", ["+18005550100", "+442079460018", "+12345678", "+1234567", "+12", "18005550100"]
)
def test_mask_never_reveals_a_whole_number(number: str) -> None:
    """At least half the digits are hidden, so no log line carries a usable phone number."""
    masked = mask(number)
    digits = sum(ch.isdigit() for ch in number)
    assert masked.count("*") * 2 >= digits
    assert number not in masked
