"""REST errors in ACS's shape: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status.

The SDK turns the status into an exception (401 ``ClientAuthenticationError``, 404
``ResourceNotFoundError``, 409 ``ResourceExistsError``, others ``HttpResponseError``) and the
body into ``error.error.code``, so an app's error handling is exercised as against ACS.

Codes ACS documents or is seen to send are used as such (8522, 8501, ``Denied``); the others
are the stand-in's own and named so (see each constructor).
"""

from __future__ import annotations

from typing import Any


class AcsError(Exception):
    """A REST request the stand-in refuses."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"code": self.code, "message": self.message}}


def call_not_found() -> AcsError:
    """An unknown or ended call, or an incoming call context that is unknown or expired.

    404 with subcode 8522 is Learn's "the resource isn't found ... the call may have already
    ended" (Call Automation error codes, MicrosoftDocs/azure-docs ``resources/troubleshooting/
    voice-video-calling/includes/codes/call-automation-sdk.md``); the subcode travels as
    ``error.code``, as in a recorded live test of the JS SDK (azure-sdk-for-js
    ``communication-callingserver``: ``{"error": {"code": "8522", "message": "Call not
    found."}}``).
    """
    return AcsError(404, "8522", "Call not found")


def not_established() -> AcsError:
    """A mid-call action on a call that is not connected (yet, or any more)."""
    return AcsError(400, "8501", "Action is not valid when call is not in Established state.")


def already_handled(outcome: str) -> AcsError:
    """A second answer, reject or redirect of one incoming call: only the first one wins.

    ACS does not document its exact reply; the stand-in answers 409 Conflict (the SDK raises
    ``ResourceExistsError``), so a replica that lost the race can tell it from a real failure.
    """
    return AcsError(409, "IncomingCallAlreadyHandled", f"The incoming call was already {outcome}.")


def denied() -> AcsError:
    """Failed HMAC authentication, with the body ACS sends."""
    return AcsError(401, "Denied", "Denied by the resource provider.")


def bad_request(message: str) -> AcsError:
    """A malformed request: bad JSON, a missing or invalid field."""
    return AcsError(400, "BadRequest", message)


def stopping() -> AcsError:
    """A request held by a fault when the stand-in stops: the stand-in's own reply."""
    return AcsError(503, "ServiceUnavailable", "The ACS stand-in is stopping.")


def not_emulated(operation: str) -> AcsError:
    """An operation ACS has but the stand-in does not emulate: loud, not a silent success."""
    return AcsError(501, "NotImplemented", f"{operation} is not emulated by the ACS stand-in.")
