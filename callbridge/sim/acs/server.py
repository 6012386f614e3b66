"""``AcsStandin``: the ACS control plane on loopback, and the Event Grid that feeds the app.

It serves the Call Automation REST API (``rest``) and the signing keys, keeps the calls
(``calls``), delivers Event Grid events to the app's webhook, and owns every background task,
so ``stop()`` leaves nothing running.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Final, Unpack

import structlog
from aiohttp import web

from callbridge.core.numbers import mask
from callbridge.sim.acs.call_inputs import (
    Callee,
    CallEnv,
    CallOverrides,
    IncomingCallOptions,
    Party,
)
from callbridge.sim.acs.calls import SimCall
from callbridge.sim.acs.delivery import Poster
from callbridge.sim.acs.events import subscription_validation_event
from callbridge.sim.acs.faults import RestFault, RestFaults
from callbridge.sim.acs.hmac_auth import decode_access_key
from callbridge.sim.acs.options import CallSetup
from callbridge.sim.acs.records import DeliveryRecord, OperationRecord
from callbridge.sim.acs.rest import KEYS_PATH, RestApi
from callbridge.sim.acs.signing import (
    CALLBACK_TOKEN_LIFETIME_S,
    DEFAULT_ISSUER,
    Signer,
    TokenSource,
)
from callbridge.sim.phone import Echo, MediaFault
from callbridge.sim.script import Step

_log = structlog.get_logger(__name__)

DEFAULT_ACS_NUMBER: Final = "+18005550100"
"""The ACS phone number that inbound calls ring and outbound calls come from by default."""
DEFAULT_CALLER_NUMBER: Final = "+14255550123"
SUBSCRIPTION_NAME: Final = "ACS-STANDIN-INCOMINGCALL"
"""``aeg-subscription-name`` of every delivery."""
_RESOURCE_NAME: Final = "acs-standin"


class AcsStandin:
    """A local Azure Communication Services for the real Call Automation SDK.

    Args:
        access_key: the resource's access key (base64); a random one by default.
        resource_id: the immutable resource id, the ``aud`` of ACS's JWTs; a new GUID by
            default.
        issuer: the ``iss`` of ACS's JWTs.
        acs_number: the resource's phone number.
        ring_timeout_s: how long an incoming call rings before it is missed (ACS: 30 s).
        max_clock_skew_s: how far a request's ``x-ms-date`` may be from the clock.
        callback_timeout_s: bound on each POST to the app.
        media_connect_timeout_s: bound on the media WebSocket handshake.
        playout_delay_ms: the lines' true playout delay (ACS's jitter buffer before the caller
            hears audio that reached an empty queue): what a bridge estimates or measures.
        stop_timeout_s: bound on waiting for background tasks at ``stop()``.
        rest_faults: REST requests to fail or hold, whatever call they are about (a call's own
            ``rest_faults`` strike first).
    """

    def __init__(
        self,
        *,
        access_key: str | None = None,
        resource_id: str | None = None,
        issuer: str = DEFAULT_ISSUER,
        acs_number: str = DEFAULT_ACS_NUMBER,
        ring_timeout_s: float = 30.0,
        max_clock_skew_s: float = 300.0,
        callback_timeout_s: float = 5.0,
        media_connect_timeout_s: float = 5.0,
        playout_delay_ms: float = 60.0,
        stop_timeout_s: float = 5.0,
        rest_faults: Sequence[RestFault] = (),
    ) -> None:
        self.access_key = access_key or base64.b64encode(secrets.token_bytes(64)).decode()
        self.resource_id = resource_id or str(uuid.uuid4())
        self.acs_number = acs_number
        self.ring_timeout_s = ring_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._signer = Signer(audience=self.resource_id, issuer=issuer)
        self._poster = Poster(timeout_s=callback_timeout_s)
        self._rest = RestApi(
            self,
            self._signer,
            key=decode_access_key(self.access_key),
            max_skew_s=max_clock_skew_s,
            faults=RestFaults(rest_faults),
        )
        self._topic = (
            f"/subscriptions/{uuid.uuid4()}/resourcegroups/{_RESOURCE_NAME}/providers"
            f"/microsoft.communication/communicationservices/{_RESOURCE_NAME}"
        )
        self._env = CallEnv(
            poster=self._poster,
            signer=self._signer,
            spawn=self._spawn,
            bot_id=f"8:acs:{self.resource_id}_{uuid.uuid4()}",
            topic=self._topic,
            media_connect_timeout_s=media_connect_timeout_s,
            playout_delay_ms=playout_delay_ms,
        )
        self._calls: list[SimCall] = []
        self._by_context: dict[str, SimCall] = {}
        self._by_id: dict[str, SimCall] = {}
        self._dial_plan: dict[str, Callee] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._endpoint: str | None = None
        self.deliveries: list[DeliveryRecord] = []
        """Every Event Grid delivery, in order."""
        self.task_errors: list[BaseException] = []
        """Exceptions that escaped a background flow: a stand-in bug, so tests assert none."""

    # ------------------------------------------------------------------ what tests read

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` for ``CallAutomationClient(endpoint, credential)``."""
        if self._endpoint is None:
            raise RuntimeError("the ACS stand-in is not started")
        return self._endpoint

    @property
    def issuer(self) -> str:
        return self._signer.issuer

    @property
    def jwks_url(self) -> str:
        """Where the signing keys are served (ACS: ``.../calling/keys``)."""
        return self.endpoint + KEYS_PATH

    @property
    def calls(self) -> Sequence[SimCall]:
        """Every call, inbound and outbound, oldest first."""
        return tuple(self._calls)

    @property
    def operations(self) -> Sequence[OperationRecord]:
        """Every REST request received (refused ones too), in order."""
        return tuple(self._rest.operations)

    def call(self, call_connection_id: str) -> SimCall:
        """The call with this connection id (``KeyError`` if none)."""
        return self._by_id[call_connection_id]

    def mint_token(
        self,
        *,
        lifetime_s: float = CALLBACK_TOKEN_LIFETIME_S,
        audience: str | None = None,
        issuer: str | None = None,
        issued_at: float | None = None,
        forged: bool = False,
    ) -> str:
        """A JWT as ACS signs them, or a bad one for negative tests (see ``Signer.mint``)."""
        return self._signer.mint(
            lifetime_s=lifetime_s,
            audience=audience,
            issuer=issuer,
            issued_at=issued_at,
            forged=forged,
        )

    # ------------------------------------------------------------------ calls

    def on_dial(
        self,
        number: str,
        *,
        script: Sequence[Step] = (),
        answer: bool = True,
        ring_s: float = 0.0,
        hangup_after_s: float = 2.0,
        max_duration_s: float = 60.0,
        media_faults: Sequence[MediaFault] = (),
        rest_faults: Sequence[RestFault] = (),
        echo: Echo | None = None,
    ) -> None:
        """Say how ``number`` behaves when the app calls it; unknown numbers never answer.

        ``media_faults`` drop or stall its media socket, ``rest_faults`` fail or hold REST
        requests about its call; with ``echo``, the callee is on a speakerphone.
        """
        party = Party(number, script, hangup_after_s, max_duration_s, echo)
        overrides = CallOverrides(media_faults=media_faults, rest_faults=rest_faults)
        self._dial_plan[number] = Callee(party, answer=answer, ring_s=ring_s, overrides=overrides)

    def incoming_call(
        self,
        *,
        from_number: str = DEFAULT_CALLER_NUMBER,
        to_number: str | None = None,
        script: Sequence[Step] = (),
        hangup_after_s: float = 2.0,
        max_duration_s: float = 60.0,
        caller_display_name: str = "",
        media_token: TokenSource | None = None,
        callback_token: TokenSource | None = None,
        fail_transfer: bool = False,
        media_faults: Sequence[MediaFault] = (),
        rest_faults: Sequence[RestFault] = (),
        echo: Echo | None = None,
        media_after_s: float = 0.0,
    ) -> SimCall:
        """A new call ringing the ACS number, not yet delivered (see ``deliver``).

        It rings ``ring_timeout_s``; its ``incoming_event`` is the IncomingCall to deliver.
        ``media_token`` and ``callback_token`` replace the valid JWTs ACS would send;
        ``fail_transfer`` makes its transfers fail; ``media_faults`` (``MediaDrop``,
        ``MediaStall``) drop or stall its media socket; ``rest_faults`` fail or hold REST
        requests about it; with ``echo``, the caller is on a speakerphone; ``media_after_s``
        holds its media socket that long after ``CallConnected``.
        """
        call = SimCall(
            self._env,
            direction="inbound",
            party=Party(from_number, script, hangup_after_s, max_duration_s, echo),
            acs_number=to_number or self.acs_number,
            overrides=CallOverrides(
                media_token, callback_token, fail_transfer, media_faults, rest_faults, media_after_s
            ),
            caller_display_name=caller_display_name,
        )
        assert call.incoming_call_context is not None  # inbound calls have one
        self._calls.append(call)
        self._by_context[call.incoming_call_context] = call
        call.start_ringing(self.ring_timeout_s)
        return call

    async def ring(
        self,
        webhook_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        deliveries: int = 1,
        to_number: str | None = None,
        script: Sequence[Step] = (),
        **caller: Unpack[IncomingCallOptions],
    ) -> SimCall:
        """Ring the app: a new incoming call (``incoming_call``, with the same keyword
        arguments), delivered ``deliveries`` times (duplicates have the same event id and a
        growing ``aeg-delivery-count``), each POST awaited.

        ``webhook_url`` may carry a query string (Event Grid keeps it: that is where webhook
        secrets travel); ``headers`` are added to the ``aeg-*`` ones.
        """
        call = self.incoming_call(to_number=to_number, script=script, **caller)
        assert call.incoming_event is not None  # inbound calls have one
        for count in range(deliveries):
            await self.deliver(
                webhook_url, [call.incoming_event], headers=headers, delivery_count=count
            )
        return call

    # Switchboard: what the REST surface needs.

    def call_by_context(self, incoming_call_context: str) -> SimCall | None:
        return self._by_context.get(incoming_call_context)

    def call_by_id(self, call_connection_id: str) -> SimCall | None:
        call = self._by_id.get(call_connection_id)
        return call if call is not None and call.rest_visible else None

    def index(self, call: SimCall) -> None:
        assert call.call_connection_id is not None  # assigned when answered or created
        self._by_id[call.call_connection_id] = call

    def place_call(
        self, setup: CallSetup, body: dict[str, Any], to_number: str, from_number: str
    ) -> SimCall:
        callee = self._dial_plan.get(to_number)
        call = SimCall(
            self._env,
            direction="outbound",
            party=callee.party if callee is not None else Party(to_number),
            acs_number=from_number,
            overrides=callee.overrides if callee is not None else CallOverrides(),
        )
        self._calls.append(call)
        call.dial(setup, body, callee)
        self.index(call)
        _log.info("acs_standin.dialling", to_number=mask(to_number), known=bool(callee))
        return call

    # ------------------------------------------------------------------ Event Grid

    async def deliver(
        self,
        webhook_url: str,
        events: Sequence[dict[str, Any]],
        *,
        headers: Mapping[str, str] | None = None,
        delivery_count: int = 0,
    ) -> DeliveryRecord:
        """POST ``events`` as one Event Grid batch (``aeg-event-type: Notification``)."""
        return await self._post_events(
            webhook_url, list(events), "Notification", headers, delivery_count
        )

    async def validate_subscription(
        self, webhook_url: str, *, headers: Mapping[str, str] | None = None
    ) -> DeliveryRecord:
        """The subscription handshake: the app must answer 200 ``{"validationResponse":
        code}``; the record holds ``validation_code``, the status and the parsed reply."""
        event = subscription_validation_event(
            topic=self._topic,
            validation_url=(
                f"https://eventgrid.invalid/eventsubscriptions/{SUBSCRIPTION_NAME}/validate"
                f"?id={uuid.uuid4()}"
            ),
        )
        return await self._post_events(webhook_url, [event], "SubscriptionValidation", headers, 0)

    async def _post_events(
        self,
        url: str,
        events: list[dict[str, Any]],
        aeg_event_type: str,
        headers: Mapping[str, str] | None,
        delivery_count: int,
    ) -> DeliveryRecord:
        sent_headers = {
            "aeg-event-type": aeg_event_type,
            "aeg-subscription-name": SUBSCRIPTION_NAME,
            "aeg-delivery-count": str(delivery_count),
            "aeg-data-version": str(events[0].get("dataVersion", "")) if events else "",
            "aeg-metadata-version": "1",
            **(headers or {}),
        }
        posted = await self._poster.post_json(url, events, sent_headers)
        record = DeliveryRecord(
            url=url,
            events=events,
            headers=sent_headers,
            status=posted.status,
            body=posted.body,
            error=posted.error,
            sent_at=posted.sent_at,
            done_at=posted.done_at,
        )
        self.deliveries.append(record)
        _log.info(
            "acs_standin.delivered",
            aeg_event_type=aeg_event_type,
            events=len(events),
            status=posted.status,
        )
        return record

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.task_errors.append(exc)
            _log.error("acs_standin.task_failed", task=task.get_name(), exc_info=exc)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the endpoint."""
        if self._runner is not None:
            raise RuntimeError("the ACS stand-in is already started")
        await self._poster.start()
        app = web.Application()
        self._rest.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._stop_timeout_s)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._endpoint = f"http://{bound_host}:{bound_port}"
        _log.info("acs_standin.started", endpoint=self._endpoint)
        return self._endpoint

    async def stop(self) -> None:
        """Stop serving, cancel and await every background task (bounded), close records."""
        runner, self._runner = self._runner, None
        self._rest.release_held()
        if runner is not None:
            await runner.cleanup()
        while self._tasks:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout_s)
            if pending:
                _log.error("acs_standin.tasks_stuck", tasks=sorted(t.get_name() for t in pending))
                break
        for call in self._calls:
            call.finish()
        await self._poster.close()
        _log.info("acs_standin.stopped", calls=len(self._calls))

    async def __aenter__(self) -> AcsStandin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
