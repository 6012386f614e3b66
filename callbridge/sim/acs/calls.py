"""One call through the stand-in: ACS's side of its life, and the record tests read.

A ``SimCall`` is created ringing (an incoming call, ``AcsStandin.incoming_call``) or dialling
(``create_call``). REST requests settle it (answer, reject, redirect) and act on it (hang up,
transfer); background flows then do what ACS does after such a request, asynchronously, as ACS
does: post ``CallConnected``, open the media WebSocket with a ``Phone`` (the caller's side),
post ``MediaStreaming*`` events, and on any ending close the media and post
``CallDisconnected``. Every callback of one call is posted in order, one at a time.

The flows never raise for the app's sake: a refused media socket becomes
``MediaStreamingFailed``, a failing callback endpoint is recorded in ``callbacks``.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog

from callbridge.sim.acs.delivery import Poster
from callbridge.sim.acs.errors import already_handled, call_not_found, not_established
from callbridge.sim.acs.events import (
    CALL_ENDED,
    CALLEE_NO_ANSWER,
    CALLEE_UNKNOWN,
    MEDIA_SOCKET_FAILED,
    OK,
    TRANSFER_FAILED,
    CallIds,
    ResultInformation,
    callback_event,
    incoming_call_event,
    media_streaming_update,
    transfer_details,
)
from callbridge.sim.acs.options import CallSetup, MediaOptions
from callbridge.sim.acs.payload import (
    RAW_ID_PHONE_PREFIX,
    Identifier,
    mask_number,
    phone_identifier,
    user_identifier,
)
from callbridge.sim.acs.records import (
    CallbackRecord,
    ConnectionState,
    Direction,
    EndedBy,
    OperationRecord,
    Outcome,
)
from callbridge.sim.acs.signing import (
    CALLBACK_TOKEN_LIFETIME_S,
    MEDIA_TOKEN_LIFETIME_S,
    Signer,
    TokenSource,
    resolve_token,
)
from callbridge.sim.phone import CallRecord, Phone
from callbridge.sim.script import Step

_log = structlog.get_logger(__name__)

DEFAULT_WAIT_S: Final = 10.0
_MEDIA_HANDSHAKE_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Party:
    """The person on the phone line, an inbound caller or an outbound callee.

    Once media flows, their ``Phone`` follows ``script``, then hangs up ``hangup_after_s``
    after its last step (a ``Hangup`` step, sooner). Without media they wait
    ``max_duration_s`` from the moment the call connected, then hang up.
    """

    number: str
    """E.164, e.g. ``+14255550123``."""
    script: Sequence[Step] = ()
    hangup_after_s: float = 2.0
    max_duration_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Callee:
    """How a dialled number behaves (``AcsStandin.on_dial``)."""

    party: Party
    answer: bool = True
    """False: it rings ``ring_s`` and the call fails with ``CreateCallFailed``."""
    ring_s: float = 0.0
    """How long it rings before it picks up (or gives up)."""


@dataclass(frozen=True, slots=True)
class CallEnv:
    """What a call needs from the stand-in that owns it."""

    poster: Poster
    signer: Signer
    spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
    """Run a background flow that the stand-in cancels and awaits when it stops."""
    bot_id: str
    """The raw id of the ACS identity that answers and places calls."""
    topic: str
    """The Event Grid topic of the ACS resource."""
    media_connect_timeout_s: float


@dataclass(frozen=True, slots=True)
class CallOverrides:
    """Per-call departures from ACS's normal behaviour, for negative tests."""

    media_token: TokenSource | None = None
    """Sent as ``Authorization: Bearer`` on the media upgrade instead of a valid token."""
    callback_token: TokenSource | None = None
    """Sent as ``Authorization: Bearer`` on every callback instead of a valid token."""
    fail_transfer: bool = False
    """Transfers fail (``CallTransferFailed``) instead of taking the caller away."""


class SimCall:
    """One call and its record. Attributes are read by tests; only the stand-in changes them.

    Attributes:
        direction: ``inbound`` (rung through Event Grid) or ``outbound`` (``create_call``).
        from_number, to_number: E.164 numbers of the two ends.
        party: the person on the line and their script.
        correlation_id, server_call_id: ACS's ids, known from the first event.
        incoming_call_context: the opaque context of an incoming call (None outbound).
        incoming_event: the ``IncomingCall`` Event Grid event (None outbound).
        call_connection_id: assigned when the call is answered or created.
        state: ``callConnectionState``; None until answered or created.
        outcome: how the setup ended; None while ringing.
        reject_reason: ``callRejectReason`` of a rejected call (``none`` when not given).
        redirect_target: raw id the call was redirected to.
        request_body: the answer or create request's JSON, as received.
        setup: its parsed callback URI, operation context and media options.
        operations: REST requests about this call, in order.
        callbacks: callbacks posted, in order, with the app's status.
        transfer_target: raw id of the last transfer's target.
        ended_by: who ended an answered call.
        media: the phone's record, when the media socket ran.
        media_error: why the media socket could not be opened.
        created_at, answered_at, connected_at, ended_at: ``time.monotonic()`` stamps.
    """

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
        self.ended_by: EndedBy | None = None
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
            from_number=mask_number(self.from_number),
            to_number=mask_number(self.to_number),
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

    async def wait_ended(self, timeout_s: float = DEFAULT_WAIT_S) -> SimCall:
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

    # ------------------------------------------------------------------ REST: setup

    @property
    def rest_visible(self) -> bool:
        """Whether REST can reach the call by its connection id (answered and not ended)."""
        return self.state is not None and self.state != "disconnected"

    def start_ringing(self, ring_timeout_s: float) -> None:
        """Ring for ``ring_timeout_s``; unanswered by then, the call is missed."""
        self._ring_timer = self._env.spawn(self._ring(ring_timeout_s), "acs-ring")

    def answer(self, setup: CallSetup, body: dict[str, Any]) -> None:
        """``:answer``: the call is connecting; the rest follows asynchronously, as in ACS.

        Raises:
            AcsError: 404 when the ring is over, 409 when already answered or refused.
        """
        self._settle("answered")
        self.answered_at = time.monotonic()
        self._accept(setup, body)
        self._env.spawn(self._connect(), f"acs-call-{self.call_connection_id}")

    def reject(self, reason: str | None) -> None:
        """``:reject``: end the ring with ``callRejectReason``."""
        self._settle("rejected")
        self.reject_reason = reason or "none"
        self.finish()

    def redirect(self, target: Identifier) -> None:
        """``:redirect``: send the ring elsewhere; the stand-in records where."""
        self._settle("redirected")
        self.redirect_target = target.raw_id
        self.finish()

    def dial(self, setup: CallSetup, body: dict[str, Any], callee: Callee | None) -> None:
        """``create_call``: start dialling ``callee`` (None: nobody answers the number)."""
        self._accept(setup, body)
        self._env.spawn(self._dial(callee), f"acs-dial-{self.call_connection_id}")

    def _settle(self, outcome: Outcome) -> None:
        if self.outcome == "missed":
            raise call_not_found()
        if self.outcome is not None:
            raise already_handled(self.outcome)
        self.outcome = outcome
        if self._ring_timer is not None:
            self._ring_timer.cancel()
        self._log.info("acs_standin.call_settled", outcome=outcome)

    def _accept(self, setup: CallSetup, body: dict[str, Any]) -> None:
        self.call_connection_id = str(uuid.uuid4())
        self.state = "connecting"
        self.setup = setup
        self.request_body = body
        self._log = self._log.bind(call_connection_id=self.call_connection_id)
        self._changed()

    # ------------------------------------------------------------------ REST: mid-call

    def properties(self) -> dict[str, Any]:
        """``CallConnectionProperties`` JSON."""
        if self.setup is None or self.setup.media is None:
            streaming = "disabled"
        else:
            streaming = "active" if self._streaming else "inactive"
        properties: dict[str, Any] = {
            "callConnectionId": self.call_connection_id,
            "serverCallId": self.server_call_id,
            "targets": [phone_identifier(self.party.number)],
            "callConnectionState": self.state,
            "callbackUri": self.setup.callback_uri if self.setup else None,
            "source": user_identifier(self._env.bot_id),
            "correlationId": self.correlation_id,
            "mediaStreamingSubscription": {
                "id": self._subscription_id,
                "state": streaming,
                "subscribedContentTypes": ["audio"],
            },
        }
        if self.direction == "inbound":
            properties["answeredBy"] = {"id": self._env.bot_id}
            properties["answeredFor"] = {"value": self.to_number}
        else:
            properties["sourceCallerIdNumber"] = {"value": self.from_number}
        return properties

    def hang_up(self, how: EndedBy) -> None:
        """DELETE (``app_hangup``) or ``:terminate`` (``app_terminate``): end the call now."""
        if not self.rest_visible:
            raise call_not_found()
        self._end(how)

    def transfer(
        self, target: Identifier, operation_context: str | None, callback_uri: str | None
    ) -> dict[str, Any]:
        """``:transferToParticipant``: accept, and let the transfer play out asynchronously.

        Returns:
            The ``TransferCallResponse`` JSON.
        """
        if self.state != "connected":
            raise not_established() if self.rest_visible else call_not_found()
        self.transfer_target = target.raw_id
        self.state = "transferring"
        self._env.spawn(
            self._transfer(target, operation_context, callback_uri),
            f"acs-transfer-{self.call_connection_id}",
        )
        return {"operationContext": operation_context}

    def require_connected(self) -> None:
        """Refuse a media action (``:play``...) unless the call is connected."""
        if self.state != "connected":
            raise not_established() if self.rest_visible else call_not_found()

    def _end(self, how: EndedBy) -> None:
        """Begin the end of the call: REST no longer finds it, the phone hangs up."""
        if self.ended_by is not None:
            return
        self.ended_by = how
        self.state = "disconnected"
        self._hangup.set()
        self._log.info("acs_standin.call_ending", ended_by=how)
        self._changed()

    def finish(self) -> None:
        """Close the record: the call is over (also what stopping the stand-in does)."""
        if self.ended_at is not None:
            return
        if self.outcome == "answered" and self.ended_by is None:
            self.ended_by = "shutdown"
        if self.state is not None:
            self.state = "disconnected"
        self.ended_at = time.monotonic()
        self._hangup.set()
        self._log.info(
            "acs_standin.call_ended",
            outcome=self.outcome,
            ended_by=self.ended_by,
            callbacks=self.callback_names,
        )
        self._changed()

    # ------------------------------------------------------------------ background flows

    async def _ring(self, ring_timeout_s: float) -> None:
        await asyncio.sleep(ring_timeout_s)
        if self.outcome is None:
            self.outcome = "missed"
            self.finish()

    async def _dial(self, callee: Callee | None) -> None:
        try:
            if callee is not None:
                await asyncio.sleep(callee.ring_s)
            if self.ended_by is not None:  # the app hung up while it rang
                self.outcome = "failed"
                await self._post("CallDisconnected", result=CALL_ENDED)
                return
            if callee is None or not callee.answer:
                self.outcome = "failed"
                self.state = "disconnected"
                result = CALLEE_UNKNOWN if callee is None else CALLEE_NO_ANSWER
                await self._post("CreateCallFailed", result=result)
                return
            self.outcome = "answered"
            self.answered_at = time.monotonic()
            await self._connect()
        finally:
            self.finish()

    async def _connect(self) -> None:
        """The connected call: CallConnected, media, and CallDisconnected once it ends."""
        try:
            if self.ended_by is None:  # not hung up already, between answer and now
                self.state = "connected"
            self.connected_at = time.monotonic()
            self._changed()
            await self._post("CallConnected")
            media = self.setup.media if self.setup else None
            if media is not None and media.start and self.ended_by is None:
                await self._stream(media)
            await self._wait_for_end()
            await self._post("CallDisconnected", result=CALL_ENDED)
        finally:
            self.finish()

    async def _stream(self, media: MediaOptions) -> None:
        """Open the media socket as ACS does, and run the call's audio until it closes."""
        assert self.call_connection_id is not None  # assigned at answer or create
        phone = Phone(
            media.transport_url,
            script=self.party.script,
            sample_rate=media.sample_rate,
            headers={"Authorization": f"Bearer {self._media_token()}"},
            call_connection_id=self.call_connection_id,
            correlation_id=self.correlation_id,
            participant_raw_id=RAW_ID_PHONE_PREFIX + self.party.number,
            hangup_after_s=self.party.hangup_after_s,
            max_duration_s=self.party.max_duration_s,
            connect_timeout_s=self._env.media_connect_timeout_s,
        )
        connected = asyncio.Event()
        run = asyncio.create_task(
            phone.run(hangup=self._hangup, connected=connected),
            name=f"acs-phone-{self.call_connection_id}",
        )
        opened = asyncio.create_task(connected.wait(), name=f"acs-media-{self.call_connection_id}")
        try:
            await asyncio.wait({run, opened}, return_when=asyncio.FIRST_COMPLETED)
            if connected.is_set():
                self._streaming = True
                await self._post(
                    "MediaStreamingStarted",
                    extra=media_streaming_update("mediaStreamingStarted", "subscriptionStarted"),
                )
            try:
                record = await run
            except _MEDIA_HANDSHAKE_ERRORS as exc:
                if connected.is_set():
                    raise
                await self._media_refused(exc)
                return
        finally:
            self._streaming = False
            for task in (run, opened):
                task.cancel()
            await asyncio.gather(run, opened, return_exceptions=True)
        self.media = record
        await self._post(
            "MediaStreamingStopped",
            extra=media_streaming_update("mediaStreamingStopped", "subscriptionStopped"),
        )
        if record.ended_by in ("phone", "timeout"):
            self._end("caller")

    async def _media_refused(self, exc: Exception) -> None:
        self.media_error = f"{type(exc).__name__}: {exc}"
        self._log.info("acs_standin.media_refused", error=self.media_error)
        await self._post(
            "MediaStreamingFailed",
            result=MEDIA_SOCKET_FAILED,
            extra=media_streaming_update(
                "mediaStreamingFailed", "initialWebSocketConnectionFailed"
            ),
        )

    async def _wait_for_end(self) -> None:
        """Until someone ends the call; without media the caller gives up in the end."""
        assert self.connected_at is not None
        remaining = self.connected_at + self.party.max_duration_s - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                await self._hangup.wait()
        except TimeoutError:
            self._end("caller")

    async def _transfer(
        self, target: Identifier, operation_context: str | None, callback_uri: str | None
    ) -> None:
        if self.ended_by is not None:  # the call ended before the transfer could start
            return
        if self._overrides.fail_transfer:
            if self.state == "transferring":
                self.state = "connected"
            await self._post(
                "CallTransferFailed",
                result=TRANSFER_FAILED,
                operation_context=operation_context,
                url=callback_uri,
            )
            return
        self.state = "transferAccepted"
        await self._post(
            "CallTransferAccepted",
            operation_context=operation_context,
            extra=transfer_details(target, self.party.number),
            url=callback_uri,
        )
        self._end("transfer")

    # ------------------------------------------------------------------ callbacks

    def _media_token(self) -> str:
        override = self._overrides.media_token
        if override is not None:
            return resolve_token(override)
        return self._env.signer.mint(lifetime_s=MEDIA_TOKEN_LIFETIME_S)

    def _callback_token(self) -> str:
        override = self._overrides.callback_token
        if override is not None:
            return resolve_token(override)
        return self._env.signer.mint(lifetime_s=CALLBACK_TOKEN_LIFETIME_S)

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
        event = callback_event(name, ids, operation_context=context, result=result, extra=extra)
        target = url or self.setup.callback_uri
        async with self._post_lock:
            headers = {"Authorization": f"Bearer {self._callback_token()}"}
            posted = await self._env.poster.post_json(target, [event], headers)
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
