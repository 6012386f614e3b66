"""One call's record and the primitives that write it: waiting, ending, posting callbacks.

``CallState`` holds what tests read about a call (see ``SimCall`` for the attributes), lets
them wait for it to change, ends it, and posts its callbacks to the app: in order, one at a
time, each with its bearer token, each recorded. The flows that run the call
(:mod:`.call_flows`) and the REST requests that act on it (:mod:`.calls`) build on it.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, Self

import structlog

from callbridge.core.numbers import mask
from callbridge.sim.acs.call_inputs import CallEnv, CallOverrides, Party
from callbridge.sim.acs.events import (
    OK,
    CallIds,
    ResultInformation,
    callback_event,
    incoming_call_event,
)
from callbridge.sim.acs.faults import RestFaults
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.acs.options import CallSetup
from callbridge.sim.acs.records import (
    CallbackRecord,
    ConnectionState,
    Direction,
    Disconnect,
    OperationRecord,
    Outcome,
)
from callbridge.sim.acs.signing import CALLBACK_TOKEN_LIFETIME_S, TokenSource, resolve_token
from callbridge.sim.call_record import CallRecord

_log = structlog.get_logger(__name__)

DEFAULT_WAIT_S: Final = 10.0


class CallState:
    """One call's record, how to wait for it, how it ends, and how its callbacks are posted."""

    def __init__(
        self,
        env: CallEnv,
        *,
        direction: Direction,
        party: Party,
        acs_number: str,
        overrides: CallOverrides,
        caller_display_name: str = "",
    ) -> None:
        self._env = env
        self._overrides = overrides
        self.rest_faults = RestFaults(overrides.rest_faults)
        """The call's REST faults still to strike."""
        self.direction: Direction = direction
        self.party = party
        inbound = direction == "inbound"
        self.from_number = party.number if inbound else acs_number
        self.to_number = acs_number if inbound else party.number
        self.correlation_id = str(uuid.uuid4())
        self.server_call_id = _server_call_id()
        self.incoming_call_context: str | None = _opaque_context() if inbound else None
        self.incoming_event: dict[str, Any] | None = None
        if self.incoming_call_context is not None:
            self.incoming_event = incoming_call_event(
                topic=env.topic,
                from_number=self.from_number,
                to_number=self.to_number,
                server_call_id=self.server_call_id,
                correlation_id=self.correlation_id,
                incoming_call_context=self.incoming_call_context,
                caller_display_name=caller_display_name,
            )
        self.call_connection_id: str | None = None
        self.state: ConnectionState | None = None
        self.outcome: Outcome | None = None
        self.reject_reason: str | None = None
        self.redirect_target: str | None = None
        self.request_body: dict[str, Any] | None = None
        self.setup: CallSetup | None = None
        self.operations: list[OperationRecord] = []
        self.callbacks: list[CallbackRecord] = []
        self.transfer_target: str | None = None
        self.disconnect: Disconnect | None = None
        self.media: CallRecord | None = None
        self.media_error: str | None = None
        self.created_at = time.monotonic()
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self._subscription_id = str(uuid.uuid4())
        self._streaming = False
        self._hangup = asyncio.Event()
        self._post_lock = asyncio.Lock()
        self._pulse = asyncio.Event()
        self._ring_timer: asyncio.Task[None] | None = None
        self._log = _log.bind(
            correlation_id=self.correlation_id,
            direction=direction,
            from_number=mask(self.from_number),
            to_number=mask(self.to_number),
        )

    # ------------------------------------------------------------------ reading the record

    @property
    def ended(self) -> bool:
        """Whether the call is over and every callback of it has been posted."""
        return self.ended_at is not None

    @property
    def callback_names(self) -> list[str]:
        """The types of the callbacks posted so far, without their prefix, in order."""
        return [record.name for record in self.callbacks]

    async def wait_ended(self, timeout_s: float = DEFAULT_WAIT_S) -> Self:
        """Wait until the call is over (``TimeoutError`` after ``timeout_s``)."""
        await self._wait_until(lambda: self.ended, timeout_s)
        return self

    async def wait_callback(self, name: str, timeout_s: float = DEFAULT_WAIT_S) -> CallbackRecord:
        """Wait until a callback of type ``name`` (e.g. ``CallConnected``) has been posted
        (``TimeoutError`` after ``timeout_s``)."""

        def posted() -> CallbackRecord | None:
            return next((r for r in self.callbacks if name in (r.name, r.type)), None)

        await self._wait_until(lambda: posted() is not None, timeout_s)
        record = posted()
        assert record is not None  # the wait just saw it
        return record

    async def _wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await self._pulse.wait()

    def _changed(self) -> None:
        """Wake every waiter so it re-checks its condition."""
        self._pulse.set()
        self._pulse = asyncio.Event()

    # ------------------------------------------------------------------ ending

    def _end(self, how: Disconnect) -> None:
        """Begin the end of the call: REST no longer finds it, the phone hangs up."""
        if self.disconnect is not None:
            return
        self.disconnect = how
        self.state = "disconnected"
        self._hangup.set()
        self._log.info("acs_standin.call_ending", disconnect=how)
        self._changed()

    def finish(self) -> None:
        """Close the record: the call is over (also what stopping the stand-in does)."""
        if self.ended_at is not None:
            return
        if self.outcome == "answered" and self.disconnect is None:
            self.disconnect = "shutdown"
        if self.state is not None:
            self.state = "disconnected"
        self.ended_at = time.monotonic()
        self._hangup.set()
        self._log.info(
            "acs_standin.call_ended",
            outcome=self.outcome,
            disconnect=self.disconnect,
            callbacks=self.callback_names,
        )
        self._changed()

    # ------------------------------------------------------------------ callbacks

    def _bearer(self, override: TokenSource | None, lifetime_s: float) -> str:
        """The JWT to send: the call's override if it has one, else a valid one."""
        if override is not None:
            return resolve_token(override)
        return self._env.signer.mint(lifetime_s=lifetime_s)

    async def _post(
        self,
        name: str,
        *,
        result: ResultInformation = OK,
        extra: dict[str, Any] | None = None,
        operation_context: str | None = None,
        url: str | None = None,
    ) -> None:
        """Post one callback; callbacks of a call go out one at a time, in order.

        ``operation_context`` and ``url`` default to the call's (``operationContext`` and
        ``callbackUri`` of the answer or create request); a transfer passes its own.
        """
        assert self.setup is not None  # set with call_connection_id, before any callback
        assert self.call_connection_id is not None
        ids = CallIds(self.call_connection_id, self.server_call_id, self.correlation_id)
        context = self.setup.operation_context if operation_context is None else operation_context
        event = callback_event(
            name,
            ids,
            version=self.setup.api_version,
            operation_context=context,
            result=result,
            extra=extra,
        )
        target = url or self.setup.callback_uri
        async with self._post_lock:
            token = self._bearer(self._overrides.callback_token, CALLBACK_TOKEN_LIFETIME_S)
            headers = {"Authorization": f"Bearer {token}"}
            posted = await self._env.poster.post_json(through_ingress(target), [event], headers)
            self.callbacks.append(
                CallbackRecord(
                    type=event["type"],
                    url=target,
                    event=event,
                    status=posted.status,
                    error=posted.error,
                    sent_at=posted.sent_at,
                    done_at=posted.done_at,
                )
            )
        self._log.debug("acs_standin.callback", callback=name, status=posted.status)
        self._changed()


def _server_call_id() -> str:
    """An opaque server call id in ACS's style: base64 of a conversation URL."""
    url = f"https://sim.invalid/conv/{uuid.uuid4()}?i=1"
    return base64.urlsafe_b64encode(url.encode()).decode("ascii").rstrip("=")


def _opaque_context() -> str:
    """An ``incomingCallContext``: opaque and JWT-like, as ACS's, and unguessable."""
    return ".".join(secrets.token_urlsafe(n) for n in (24, 96, 32))
