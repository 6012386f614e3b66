"""Reading REST request bodies as ACS does: keys match case-insensitively, unknown keys are
ignored, and a wrong type is a 400 that names the field.

The SDK sends camelCase (``incomingCallContext``, ``mediaStreamingOptions``), but other SDKs and
hand-written clients vary the case, and the service accepts them all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from callbridge.sim.acs.errors import bad_request

RAW_ID_PHONE_PREFIX: Final = "4:"


class Payload:
    """A JSON object with case-insensitive, typed access to its fields."""

    def __init__(self, raw: Mapping[str, Any], *, path: str = "", api_version: str = "") -> None:
        self.raw = dict(raw)
        """The object as received."""
        self.api_version = api_version
        """The request's ``api-version`` (only on a request's top-level body)."""
        self._fields = {key.lower(): value for key, value in raw.items()}
        self._path = path

    @classmethod
    def parse(cls, body: bytes, *, api_version: str = "") -> Payload:
        """Parse a request body that must be a JSON object.

        Raises:
            AcsError: 400, the body is not a JSON object.
        """
        try:
            raw = json.loads(body or b"{}")
        except ValueError as exc:
            raise bad_request("The request body is not valid JSON.") from exc
        if not isinstance(raw, dict):
            raise bad_request("The request body must be a JSON object.")
        return cls(raw, api_version=api_version)

    def _get(self, key: str, kind: type, required: bool) -> Any:
        value = self._fields.get(key.lower())
        if value is None:
            if required:
                raise bad_request(f"The field {self._path}{key} is required.")
            return None
        if not isinstance(value, kind):
            raise bad_request(f"The field {self._path}{key} has the wrong type.")
        return value

    def text(self, key: str) -> str | None:
        """A string field, None when absent."""
        value: str | None = self._get(key, str, False)
        return value

    def required_text(self, key: str) -> str:
        """A string field that must be there."""
        value: str = self._get(key, str, True)
        return value

    def flag(self, key: str) -> bool:
        """A boolean field; absent means false, the service default."""
        value: bool | None = self._get(key, bool, False)
        return bool(value)

    def child(self, key: str) -> Payload | None:
        """A nested object, None when absent."""
        value: dict[str, Any] | None = self._get(key, dict, False)
        return None if value is None else Payload(value, path=f"{self._path}{key}.")

    def required_child(self, key: str) -> Payload:
        """A nested object that must be there."""
        value: dict[str, Any] = self._get(key, dict, True)
        return Payload(value, path=f"{self._path}{key}.")

    def children(self, key: str) -> list[Payload]:
        """A list of objects (empty when absent)."""
        values: list[Any] = self._get(key, list, False) or []
        if not all(isinstance(value, dict) for value in values):
            raise bad_request(f"The field {self._path}{key} must hold objects.")
        return [Payload(value, path=f"{self._path}{key}[].") for value in values]


@dataclass(frozen=True, slots=True)
class Identifier:
    """A CommunicationIdentifier from a request, reduced to what the stand-in needs."""

    raw_id: str
    phone_number: str | None
    """The E.164 number when the identifier is a phone."""

    def to_json(self) -> dict[str, Any]:
        """The identifier as ACS writes it back in events and properties."""
        if self.phone_number is not None:
            return phone_identifier(self.phone_number)
        return user_identifier(self.raw_id)


def read_identifier(payload: Payload) -> Identifier:
    """Read a CommunicationIdentifierModel (``rawId``, ``phoneNumber.value``, ...).

    Raises:
        AcsError: 400, neither a raw id nor a phone number is given.
    """
    phone = payload.child("phoneNumber")
    number = phone.text("value") if phone is not None else None
    raw_id = payload.text("rawId")
    if number is None and raw_id is not None and raw_id.startswith(RAW_ID_PHONE_PREFIX):
        number = raw_id[len(RAW_ID_PHONE_PREFIX) :]
    if raw_id is None and number is not None:
        raw_id = RAW_ID_PHONE_PREFIX + number
    user = payload.child("communicationUser")
    if raw_id is None and user is not None:
        raw_id = user.text("id")
    if raw_id is None:
        raise bad_request("An identifier needs a rawId or a phoneNumber.")
    return Identifier(raw_id, number)


def phone_identifier(number: str) -> dict[str, Any]:
    """The CommunicationIdentifierModel JSON of a phone number, as ACS writes it."""
    return {
        "kind": "phoneNumber",
        "rawId": RAW_ID_PHONE_PREFIX + number,
        "phoneNumber": {"value": number},
    }


def user_identifier(raw_id: str) -> dict[str, Any]:
    """The CommunicationIdentifierModel JSON of an ACS user (the call's bot identity)."""
    return {"kind": "communicationUser", "rawId": raw_id, "communicationUser": {"id": raw_id}}
