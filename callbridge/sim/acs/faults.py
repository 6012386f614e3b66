"""REST faults: Call Automation requests the stand-in fails or holds, for resilience tests.

A ``RestFault`` names an operation as the app's code calls it (``answer``, ``hang_up``,
``transfer``, ``get_call``: ``get_call_properties``) and says how it fails: ``status`` in ACS's
error shape, ``times`` times (None: always), after holding the request ``delay_s`` (with
``status=None``, the request succeeds after the hold: a slow reply rather than a failed one). A
faulted request does nothing to the call: the stand-in refuses it before acting.

What a test sees through the real SDK (azure-core's ``AsyncRetryPolicy``, which the Call
Automation client uses unchanged): every operation here is a POST except hang-up by DELETE and
get by GET; azure-core retries a POST only on 500, 503 and 504, and a DELETE or GET on 408, 429,
500, 502, 503 and 504, up to ``retry_status=3`` more times, waiting 0 s, then
``retry_backoff_factor`` (0.8 s) times 2, then times 4 (0, 1.6 and 3.2 s). So
``RestFault("answer", 500)`` is invisible to the app (the SDK's second attempt succeeds, and
``operations`` shows both), ``times=None`` makes the app see ``HttpResponseError`` after four
attempts, and a 400 or 409 is never retried. Tests that fail more than once should build their
client with a small ``retry_backoff_factor``. A held request is a slow reply to the SDK until its
transport's read timeout (300 s by default); one still held when the stand-in stops is let go
with a 503 and does nothing, so a test may hold requests "forever" (a ``delay_s`` longer than
the test) without its teardown waiting them out.

Media faults (drops and stalls of the media socket) are the phone's: ``MediaDrop`` and
``MediaStall`` in ``callbridge.sim.phone``, re-exported by this package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Literal, TypeAlias

from callbridge.sim.acs.errors import AcsError

RestOperation: TypeAlias = Literal["answer", "hang_up", "transfer", "get_call"]
"""An operation as the app calls it."""

_OPERATIONS: Final[dict[str, RestOperation]] = {
    "answer": "answer",
    "hangup": "hang_up",  # CallConnection.hang_up(is_for_everyone=False): DELETE
    "terminate": "hang_up",  # CallConnection.hang_up(is_for_everyone=True): POST :terminate
    "transferToParticipant": "transfer",
    "get": "get_call",  # CallConnection.get_call_properties(): GET
}
"""The stand-in's operation names (``OperationRecord.name``) for each faultable operation."""


@dataclass(frozen=True, slots=True)
class RestFault:
    """Fail or hold ``operation`` (see the module)."""

    operation: RestOperation
    status: int | None = 500
    """The HTTP status to answer with; None: carry the request out after ``delay_s``."""
    times: int | None = 1
    """How many requests it strikes; None: every one."""
    delay_s: float = 0.0
    """How long each struck request is held before it is answered."""

    def __post_init__(self) -> None:
        if self.status is not None and self.status < 400:
            raise ValueError("a REST fault answers with an error status (or None)")
        if self.times is not None and self.times < 1:
            raise ValueError("a REST fault strikes at least once")

    def error(self) -> AcsError:
        """The error it answers with, in ACS's shape; the code is the status's name, the
        stand-in's own (ACS publishes no body for its 5xx replies)."""
        assert self.status is not None
        phrase = HTTPStatus(self.status).phrase
        return AcsError(self.status, phrase.replace(" ", ""), f"{phrase} (injected).")


class RestFaults:
    """The faults still to strike, each counted down as it strikes."""

    def __init__(self, faults: Iterable[RestFault] = ()) -> None:
        self._left: list[tuple[RestFault, int | None]] = [(f, f.times) for f in faults]

    def strike(self, name: str) -> RestFault | None:
        """The fault for a request to operation ``name`` (``answer``, ``terminate``...), if
        one is left; it counts as struck."""
        operation = _OPERATIONS.get(name)
        for index, (fault, left) in enumerate(self._left):
            if fault.operation == operation and (left is None or left > 0):
                self._left[index] = (fault, None if left is None else left - 1)
                return fault
        return None
