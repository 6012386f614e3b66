"""One call through the stand-in: the REST requests that settle it and act on it.

A ``SimCall`` is created ringing (an incoming call, ``AcsStandin.incoming_call``) or dialling
(``create_call``). REST requests settle it (answer, reject, redirect) and act on it (hang up,
transfer); background flows (:mod:`.call_flows`) then do what ACS does after such a request,
asynchronously, as ACS does: post ``CallConnected``, open the media WebSocket with a ``Phone``
(the caller's side), post ``MediaStreaming*`` events, and on any ending close the media and
post ``CallDisconnected``. Every callback of one call is posted in order, one at a time
(:mod:`.call_state`, which also holds the record tests read).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from callbridge.sim.acs.call_flows import CallFlows
from callbridge.sim.acs.call_inputs import Callee
from callbridge.sim.acs.errors import already_handled, call_not_found, not_established
from callbridge.sim.acs.options import CallSetup
from callbridge.sim.acs.payload import Identifier, phone_identifier, user_identifier
from callbridge.sim.acs.records import Disconnect, Outcome


class SimCall(CallFlows):
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
        disconnect: how ACS disconnected an answered call.
        media: the phone's record, when the media socket ran.
        media_error: why the media socket could not be opened.
        created_at, answered_at, connected_at, ended_at: ``time.monotonic()`` stamps.
    """

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
        """``CallConnectionProperties`` JSON: the reply to ``GET /calling/callConnections/{id}``
        and to answer and create.

        Field names and shapes are the SDK's (azure-communication-callautomation 1.6.0,
        ``_generated/models/_models.py``, ``CallConnectionProperties._attribute_map``:
        ``callConnectionId``, ``serverCallId``, ``targets``, ``callConnectionState``,
        ``callbackUri``, ``sourceCallerIdNumber``, ``source``, ``correlationId``, ``answeredBy``,
        ``mediaStreamingSubscription``, ``answeredFor``); ``CallConnectionClient.
        get_call_properties`` reads ``correlationId`` and ``callbackUri`` into ``correlation_id``
        and ``callback_url`` (``_models.CallConnectionProperties._from_generated``). That ACS
        gives back the answer's or create's ``callbackUri`` as it was sent is not published (the
        model says only "The callback URL"); the stand-in echoes it, the URI ACS posts the
        call's callbacks to."""
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

    def hang_up(self, how: Disconnect) -> None:
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
