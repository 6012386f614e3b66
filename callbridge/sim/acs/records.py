"""What the stand-in records for tests: REST operations, Event Grid deliveries and callbacks.

All times are ``time.monotonic()`` seconds, comparable with the phone's ``CallRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from callbridge.sim.acs.faults import RestFault

EVENT_PREFIX: Final = "Microsoft.Communication."

Direction: TypeAlias = Literal["inbound", "outbound"]

Outcome: TypeAlias = Literal["answered", "rejected", "redirected", "missed", "failed"]
"""How a call's setup ended: the app (or callee) answered, the app rejected or redirected the
incoming call, nobody answered within the ring time, or an outbound call failed."""

Disconnect: TypeAlias = Literal["caller", "app_hangup", "app_terminate", "transfer", "shutdown"]
"""How ACS disconnected an answered call: the person on the phone hung up (their script ended,
or they gave up waiting for media), the app asked with ``hang_up(False)`` (DELETE) or
``hang_up(True)`` (``:terminate``), a transfer took the caller away, or the stand-in stopped.
Why the app hung up is not ACS's to know: that is ``callbridge.core.ended_by.EndedBy``."""

ConnectionState: TypeAlias = Literal[
    "connecting", "connected", "transferring", "transferAccepted", "disconnected"
]
"""``callConnectionState`` as ACS reports it."""


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One REST request the stand-in received, with its answer."""

    at: float
    method: str
    path: str
    name: str
    """``answer``, ``create``, ``get``, ``hangup``, ``terminate``, ``transferToParticipant``..."""
    status: int
    error_code: str | None
    call_connection_id: str | None
    body: dict[str, Any] | None
    """The JSON body as received (None without one)."""
    fault: RestFault | None = None
    """The injected fault that failed or held this request, if one did."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One Event Grid delivery (a POST of an event array) to a webhook."""

    url: str
    events: list[dict[str, Any]]
    headers: dict[str, str]
    """The headers sent, ``aeg-*`` included."""
    status: int | None
    """The webhook's HTTP status; None when the POST failed (see ``error``)."""
    body: Any
    """The webhook's reply: parsed JSON, else text."""
    error: str | None
    sent_at: float
    done_at: float

    @property
    def validation_code(self) -> str | None:
        """The ``validationCode`` sent, for a subscription validation delivery."""
        data = self.events[0].get("data", {}) if self.events else {}
        code = data.get("validationCode")
        return code if isinstance(code, str) else None


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One CloudEvents callback POST to the app."""

    type: str
    """The full event type, e.g. ``Microsoft.Communication.CallConnected``."""
    url: str
    event: dict[str, Any]
    status: int | None
    """The app's HTTP status; None when the POST failed (see ``error``)."""
    error: str | None
    sent_at: float
    done_at: float

    @property
    def name(self) -> str:
        """The type without its ``Microsoft.Communication.`` prefix."""
        return self.type.removeprefix(EVENT_PREFIX)
