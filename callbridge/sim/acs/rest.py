"""The Call Automation REST surface, as the real ``CallAutomationClient`` reaches it.

Every request under ``/calling`` is HMAC-authenticated (``hmac_auth``) before anything else,
except the signing keys (``/calling/keys`` and the OpenID configuration), which ACS serves to
anyone. Paths, verbs and success statuses are the SDK's (``_generated/operations``)::

    POST   /calling/callConnections                       create    201
    POST   /calling/callConnections:answer                answer    200
    POST   /calling/callConnections:reject | :redirect    reject    204
    GET    /calling/callConnections/{id}                  get       200
    DELETE /calling/callConnections/{id}                  hangup    204
    POST   /calling/callConnections/{id}:terminate        terminate 204
    POST   .../{id}:transferToParticipant                 transfer  202
    POST   .../{id}:play | :cancelAllMediaOperations      no-ops    202

Anything else under ``/calling`` is a 501, so an app that relies on an operation the stand-in
does not emulate fails loudly rather than passing on a silent success. Every request is
recorded, with its answer, in ``operations`` (and on the call it concerns).

Answer, hang-up and transfer requests can be failed or held by ``RestFault``s (``faults``): the
call's own first, then the stand-in's. A struck request is authenticated and routed like any
other, then refused before it acts. A request still held when the stand-in stops is let go at
once with a 503, and does nothing (``release_held``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeAlias

import structlog
from aiohttp import web

from callbridge.sim.acs.calls import SimCall
from callbridge.sim.acs.errors import (
    AcsError,
    bad_request,
    call_not_found,
    denied,
    not_emulated,
    stopping,
)
from callbridge.sim.acs.faults import RestFault, RestFaults
from callbridge.sim.acs.hmac_auth import HmacError, verify_request
from callbridge.sim.acs.options import CallSetup, read_setup
from callbridge.sim.acs.payload import Payload, read_identifier
from callbridge.sim.acs.records import OperationRecord
from callbridge.sim.acs.signing import Signer

_log = structlog.get_logger(__name__)

KEYS_PATH: Final = "/calling/keys"
OPENID_PATH: Final = "/calling/.well-known/acsopenidconfiguration"
_CONNECTIONS: Final = "/calling/callConnections"
_REJECT_REASONS: Final = frozenset({"none", "busy", "forbidden"})

Reply: TypeAlias = tuple[int, dict[str, Any] | None]
"""An HTTP status and an optional JSON body."""

Operation: TypeAlias = Callable[["SimCall", Payload], Reply]


class Switchboard(Protocol):
    """The stand-in's call registry, as the REST surface needs it."""

    def call_by_context(self, incoming_call_context: str) -> SimCall | None:
        """The incoming call with this context, if any."""
        ...

    def call_by_id(self, call_connection_id: str) -> SimCall | None:
        """The call with this connection id, if REST can still reach it (not ended)."""
        ...

    def index(self, call: SimCall) -> None:
        """Make an answered or created call reachable by its connection id."""
        ...

    def place_call(
        self, setup: CallSetup, body: dict[str, Any], to_number: str, from_number: str
    ) -> SimCall:
        """Start an outbound call to ``to_number``."""
        ...


class RestApi:
    """The REST handlers and the record of every request."""

    def __init__(
        self,
        switchboard: Switchboard,
        signer: Signer,
        *,
        key: bytes,
        max_skew_s: float,
        faults: RestFaults,
    ) -> None:
        self._switchboard = switchboard
        self._faults = faults
        self._signer = signer
        self._key = key
        self._max_skew_s = max_skew_s
        self._stopping = asyncio.Event()
        self.operations: list[OperationRecord] = []
        # Operations on an incoming call, found by its incomingCallContext.
        self._incoming_ops: dict[str, Operation] = {
            "answer": self._answer,
            "reject": self._reject,
            "redirect": self._redirect,
        }
        # Operations on a call connection, found by its id in the path.
        self._call_ops: dict[str, Operation] = {
            "get": lambda call, _: (200, call.properties()),
            "hangup": self._hang_up,
            "terminate": self._terminate,
            "transferToParticipant": self._transfer,
            "play": self._media_noop,
            "cancelAllMediaOperations": self._media_noop,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(KEYS_PATH, self._keys)
        app.router.add_get(OPENID_PATH, self._openid)
        app.router.add_route("*", "/calling/{tail:.*}", self._dispatch)

    async def _keys(self, _request: web.Request) -> web.Response:
        return web.json_response(self._signer.jwks)

    async def _openid(self, request: web.Request) -> web.Response:
        jwks_uri = str(request.url.with_path(KEYS_PATH).with_query(None))
        return web.json_response({"issuer": self._signer.issuer, "jwks_uri": jwks_uri})

    async def _dispatch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        name = "unknown"
        call: SimCall | None = None
        body: dict[str, Any] | None = None
        fault: RestFault | None = None
        reply: dict[str, Any] | None
        try:
            self._authenticate(request, raw)
            name, call_id = _route(request.method, request.path)
            if "api-version" not in request.query:
                raise bad_request("The api-version query parameter is required.")
            payload = Payload.parse(raw, api_version=request.query["api-version"])
            body = payload.raw if raw else None
            if name == "create":
                call = self._create(payload)
                status, reply = 201, call.properties()
            else:
                operation = self._operation(name, call_id)
                call = self._find(payload, call_id)
                fault = call.rest_faults.strike(name) or self._faults.strike(name)
                if fault is not None:
                    await self._inject(fault, name)
                status, reply = operation(call, payload)
            error_code = None
        except AcsError as exc:
            status, reply, error_code = exc.status, exc.body, exc.code
        record = OperationRecord(
            at=time.monotonic(),
            method=request.method,
            path=request.path,
            name=name,
            status=status,
            error_code=error_code,
            call_connection_id=call.call_connection_id if call else None,
            body=body,
            fault=fault,
        )
        self.operations.append(record)
        if call is not None:
            call.operations.append(record)
        _log.debug("acs_standin.rest", operation=name, status=status, error_code=error_code)
        if reply is None:
            return web.Response(status=status)
        return web.json_response(reply, status=status)

    def release_held(self) -> None:
        """The stand-in is stopping: requests held by a fault end now, refused."""
        self._stopping.set()

    async def _inject(self, fault: RestFault, name: str) -> None:
        """Hold the request, then fail it unless the fault only delays it."""
        _log.info(
            "acs_standin.rest_fault", operation=name, status=fault.status, delay_s=fault.delay_s
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(fault.delay_s):
                await self._stopping.wait()
        if self._stopping.is_set():
            raise stopping()
        if fault.status is not None:
            raise fault.error()

    def _authenticate(self, request: web.Request, body: bytes) -> None:
        try:
            verify_request(
                method=request.method,
                path_and_query=request.raw_path,
                headers=request.headers,
                body=body,
                key=self._key,
                now=datetime.now(UTC),
                max_skew_s=self._max_skew_s,
            )
        except HmacError as exc:
            _log.warning("acs_standin.auth_rejected", reason=str(exc), path=request.path)
            raise denied() from exc

    def _operation(self, name: str, call_id: str | None) -> Operation:
        operation = (self._incoming_ops if call_id is None else self._call_ops).get(name)
        if operation is None:
            raise not_emulated(name)
        return operation

    def _find(self, payload: Payload, call_id: str | None) -> SimCall:
        """The call an operation is about: by connection id, else by incoming call context."""
        if call_id is not None:
            call = self._switchboard.call_by_id(call_id)
        else:
            context = payload.required_text("incomingCallContext")
            call = self._switchboard.call_by_context(context)
        if call is None:
            raise call_not_found()
        return call

    # ------------------------------------------------------------------ operations

    def _create(self, payload: Payload) -> SimCall:
        setup = read_setup(payload)
        targets = payload.children("targets")
        if len(targets) != 1:
            raise bad_request("The stand-in places calls to exactly one target.")
        target = read_identifier(targets[0])
        if target.phone_number is None:
            raise bad_request("The stand-in places calls to phone numbers only.")
        # ACS needs a caller id it owns to call a phone number.
        from_number = payload.required_child("sourceCallerIdNumber").required_text("value")
        return self._switchboard.place_call(setup, payload.raw, target.phone_number, from_number)

    def _answer(self, call: SimCall, payload: Payload) -> Reply:
        setup = read_setup(payload)  # a bad request must not use up the incoming call
        call.answer(setup, payload.raw)
        self._switchboard.index(call)
        return 200, call.properties()

    def _reject(self, call: SimCall, payload: Payload) -> Reply:
        reason = payload.text("callRejectReason")
        if reason is not None and reason.lower() not in _REJECT_REASONS:
            raise bad_request(f"callRejectReason {reason!r} is not one of none, busy, forbidden.")
        call.reject(reason)
        return 204, None

    def _redirect(self, call: SimCall, payload: Payload) -> Reply:
        target = read_identifier(payload.required_child("target"))
        call.redirect(target)
        return 204, None

    def _hang_up(self, call: SimCall, _payload: Payload) -> Reply:
        call.hang_up("app_hangup")
        return 204, None

    def _terminate(self, call: SimCall, _payload: Payload) -> Reply:
        call.hang_up("app_terminate")
        return 204, None

    def _transfer(self, call: SimCall, payload: Payload) -> Reply:
        target = read_identifier(payload.required_child("targetParticipant"))
        reply = call.transfer(
            target, payload.text("operationContext"), payload.text("operationCallbackUri")
        )
        return 202, reply

    def _media_noop(self, call: SimCall, _payload: Payload) -> Reply:
        """Accepted and recorded; no audio is played and no Play* events follow."""
        call.require_connected()
        return 202, None


def _route(method: str, path: str) -> tuple[str, str | None]:
    """The operation name and call connection id (None for service-level operations)."""
    if path.startswith(_CONNECTIONS):
        rest = path[len(_CONNECTIONS) :]
        if rest == "" and method == "POST":
            return "create", None
        if rest.startswith(":") and method == "POST":
            return rest[1:], None
        if rest.startswith("/") and "/" not in rest[1:]:
            call_id, _, action = rest[1:].partition(":")
            if action and method == "POST":
                return action, call_id
            if not action and method in ("GET", "DELETE"):
                return ("get" if method == "GET" else "hangup"), call_id
    raise not_emulated(f"{method} {path}")
