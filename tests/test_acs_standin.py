"""The ACS stand-in, driven by the real async ``CallAutomationClient`` and a minimal app.

The app here is written for these tests (it is not callbridge's): an Event Grid webhook that
answers, rejects or redirects each IncomingCall through the SDK, a callback endpoint that
records every CloudEvent with its headers, and a media WebSocket endpoint that records the
upgrade. JWTs are checked with pyjwt against the JWKS the stand-in serves, as a production app
checks ACS's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import aiohttp
import jwt
import pytest
from aiohttp import web
from azure.communication.callautomation import (
    AudioFormat,
    CallRejectReason,
    FileSource,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from yarl import URL

from callbridge.sim.acs import AcsStandin, SimCall

WAIT_S = 5.0
SHORT_CALL_S = 0.3
"""The caller's phone hangs up this long after media starts: a whole call in well under 1 s."""
LONG_CALL_S = 20.0
"""Long enough that the app, not the caller, ends the call."""
CALLEE = "+14255550150"
REDIRECT_TO = "+14255550199"
TRANSFER_TO = "+14255550111"
CONNECTED_FLOW = [
    "ParticipantsUpdated",
    "CallConnected",
    "MediaStreamingStarted",
    "MediaStreamingStopped",
]


# --- The app under test ---------------------------------------------------------------------


@dataclass
class Received:
    """One POST the app received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class MediaSocket:
    """One media WebSocket the app accepted."""

    headers: dict[str, str]
    metadata: dict[str, Any] | None = None
    frames: int = 0


@dataclass
class App:
    """A minimal Call Automation app: webhook, callbacks and media endpoint."""

    client: CallAutomationClient
    base_url: str = ""
    mode: Literal["answer", "reject", "redirect", "ignore"] = "answer"
    refuse_media: bool = False
    deliveries: list[Received] = field(default_factory=list)
    callbacks: list[Received] = field(default_factory=list)
    media: list[MediaSocket] = field(default_factory=list)
    errors: list[HttpResponseError] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/incomingCall", self._incoming)
        app.router.add_post("/api/callbacks/{call}", self._callback)
        app.router.add_get("/ws", self._media)

    def media_streaming(
        self, audio_format: AudioFormat | None = AudioFormat.PCM24_K_MONO
    ) -> MediaStreamingOptions:
        ws_url = self.base_url.replace("http://", "ws://") + "/ws?token=t"
        return MediaStreamingOptions(
            transport_url=ws_url,
            transport_type=StreamingTransportType.WEBSOCKET,
            content_type=MediaStreamingContentType.AUDIO,
            audio_channel_type=MediaStreamingAudioChannelType.MIXED,
            start_media_streaming=True,
            enable_bidirectional=True,
            audio_format=audio_format,
            enable_dtmf_tones=True,
        )

    def callback_url(self) -> str:
        return f"{self.base_url}/api/callbacks/{uuid.uuid4()}?caller=x"

    def callback_types(self) -> list[str]:
        return [
            event["type"].removeprefix("Microsoft.Communication.")
            for received in self.callbacks
            for event in received.body
        ]

    async def _incoming(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append(_received(request, body))
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return web.json_response({"validationResponse": body[0]["data"]["validationCode"]})
        for event in body:
            if event["eventType"] == "Microsoft.Communication.IncomingCall":
                await self._handle(event["data"]["incomingCallContext"])
        return web.Response()

    async def _handle(self, context: str) -> None:
        try:
            if self.mode == "answer":
                await self.client.answer_call(
                    context,
                    self.callback_url(),
                    operation_context="incoming",
                    media_streaming=self.media_streaming(),
                )
            elif self.mode == "reject":
                await self.client.reject_call(context, call_reject_reason=CallRejectReason.BUSY)
            elif self.mode == "redirect":
                await self.client.redirect_call(context, PhoneNumberIdentifier(REDIRECT_TO))
        except HttpResponseError as exc:
            self.errors.append(exc)

    async def _callback(self, request: web.Request) -> web.Response:
        self.callbacks.append(_received(request, await request.json()))
        return web.Response()

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_media:
            raise web.HTTPForbidden()
        socket = MediaSocket(dict(request.headers))
        self.media.append(socket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            message = json.loads(msg.data)
            if message["kind"] == "AudioMetadata":
                socket.metadata = message["audioMetadata"]
            socket.frames += 1
        return ws


def _received(request: web.Request, body: Any) -> Received:
    return Received(request.path, dict(request.query), dict(request.headers), body)


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def standin() -> AsyncIterator[AcsStandin]:
    async with AcsStandin(ring_timeout_s=WAIT_S) as acs:
        yield acs
    assert acs.task_errors == []


@pytest.fixture
async def client(standin: AcsStandin) -> AsyncIterator[CallAutomationClient]:
    async with CallAutomationClient(
        standin.endpoint, AzureKeyCredential(standin.access_key)
    ) as sdk:
        yield sdk


@pytest.fixture
async def app(client: CallAutomationClient) -> AsyncIterator[App]:
    under_test = App(client)
    web_app = web.Application()
    under_test.routes(web_app)
    runner = web.AppRunner(web_app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    under_test.base_url = f"http://{host}:{port}"
    yield under_test
    await runner.cleanup()


@pytest.fixture
def webhook(app: App) -> str:
    """The Event Grid subscription's endpoint; its secret travels in the query string."""
    return f"{app.base_url}/api/incomingCall?code=webhook-secret"


async def acs_keys(standin: AcsStandin) -> jwt.PyJWKSet:
    """The JWKS, fetched over HTTP without credentials, as an app fetches ACS's."""
    async with aiohttp.ClientSession() as session, session.get(standin.jwks_url) as response:
        assert response.status == 200
        return jwt.PyJWKSet.from_dict(await response.json())


def verify(token: str, keys: jwt.PyJWKSet, standin: AcsStandin) -> dict[str, Any]:
    """Validate an ACS JWT as the secure-webhook docs say: RS256, issuer and audience."""
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=standin.resource_id, issuer=standin.issuer
    )
    return claims


def bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


async def answered_call(standin: AcsStandin, webhook: str, **options: Any) -> SimCall:
    """Ring the app and wait until media is flowing."""
    call = await standin.ring(webhook, **options)
    await call.wait_callback("MediaStreamingStarted", WAIT_S)
    return call


# --- Event Grid -----------------------------------------------------------------------------


async def test_subscription_validation_handshake(
    standin: AcsStandin, app: App, webhook: str
) -> None:
    delivery = await standin.validate_subscription(webhook, headers={"X-Extra": "from-test"})

    assert delivery.status == 200
    assert delivery.validation_code
    assert delivery.body == {"validationResponse": delivery.validation_code}
    received = app.deliveries[0]
    assert received.headers["aeg-event-type"] == "SubscriptionValidation"
    assert received.headers["X-Extra"] == "from-test"
    assert received.query == {"code": "webhook-secret"}
    event = received.body[0]
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert event["data"]["validationUrl"].startswith("https://")


async def test_incoming_call_answered_runs_media_and_signed_callbacks(
    standin: AcsStandin, app: App, webhook: str
) -> None:
    call = await standin.ring(webhook, hangup_after_s=SHORT_CALL_S)
    await call.wait_ended(WAIT_S)

    # Event Grid delivered the documented shape, with its headers and the URL's secret.
    received = app.deliveries[0]
    assert received.query == {"code": "webhook-secret"}
    assert received.headers["aeg-event-type"] == "Notification"
    assert received.headers["aeg-delivery-count"] == "0"
    event = received.body[0]
    assert event["eventType"] == "Microsoft.Communication.IncomingCall"
    assert event["data"]["from"]["rawId"] == f"4:{call.from_number}"
    assert event["data"]["correlationId"] == call.correlation_id
    # The answer request arrived as the SDK sent it.
    assert call.request_body is not None
    assert call.request_body["mediaStreamingOptions"]["audioFormat"] == "pcm24KMono"
    assert call.request_body["callbackUri"].startswith(f"{app.base_url}/api/callbacks/")
    # Callbacks in order, each one accepted, each with a valid 5-minute JWT.
    names = [*CONNECTED_FLOW, "CallDisconnected"]
    assert call.callback_names == names
    assert app.callback_types() == names
    assert [record.status for record in call.callbacks] == [200] * len(names)
    keys = await acs_keys(standin)
    for received in app.callbacks:
        claims = verify(bearer(received.headers), keys, standin)
        assert claims["exp"] - claims["iat"] == 300
        data = received.body[0]["data"]
        assert data["callConnectionId"] == call.call_connection_id
        assert data["correlationId"] == call.correlation_id
        assert data["serverCallId"] == call.server_call_id
        assert data["operationContext"] == "incoming"
    started = app.callbacks[names.index("MediaStreamingStarted")].body[0]["data"][
        "mediaStreamingUpdate"
    ]
    assert started["mediaStreamingStatus"] == "mediaStreamingStarted"
    # The media socket: ACS's three upgrade headers, a 24-hour JWT, then 24 kHz audio.
    socket = app.media[0]
    assert socket.headers["x-ms-call-connection-id"] == call.call_connection_id
    assert socket.headers["x-ms-call-correlation-id"] == call.correlation_id
    claims = verify(bearer(socket.headers), keys, standin)
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert socket.metadata is not None
    assert socket.metadata["sampleRate"] == 24000
    assert socket.frames > 5
    # The record.
    assert (call.direction, call.outcome, call.disconnect) == ("inbound", "answered", "caller")
    assert call.media is not None
    assert (call.media.sample_rate, call.media.closed_by) == (24000, "phone")


@pytest.mark.parametrize(("everyone", "ended_by"), [(True, "app_terminate"), (False, "app_hangup")])
async def test_app_hang_up_ends_the_call(
    standin: AcsStandin,
    client: CallAutomationClient,
    webhook: str,
    everyone: bool,
    ended_by: str,
) -> None:
    call = await answered_call(standin, webhook, hangup_after_s=LONG_CALL_S)
    assert call.call_connection_id is not None
    connection = client.get_call_connection(call.call_connection_id)
    properties = await connection.get_call_properties()
    assert properties.call_connection_state == "connected"
    assert properties.correlation_id == call.correlation_id
    await connection.play_media(FileSource("https://example.invalid/hold.wav"))
    await connection.cancel_all_media_operations()

    await connection.hang_up(is_for_everyone=everyone)

    with pytest.raises(ResourceNotFoundError) as missing:
        await connection.get_call_properties()
    assert missing.value.error is not None
    assert missing.value.error.code == "8522"
    await call.wait_ended(WAIT_S)
    assert call.disconnect == ended_by
    assert call.media is not None
    assert call.media.closed_by == "network"
    assert call.callback_names == [*CONNECTED_FLOW, "CallDisconnected"]
    assert [(op.name, op.status) for op in call.operations] == [
        ("answer", 200),
        ("get", 200),
        ("play", 202),
        ("cancelAllMediaOperations", 202),
        ("terminate" if everyone else "hangup", 204),
    ]
    with pytest.raises(ResourceNotFoundError):
        await connection.hang_up(is_for_everyone=everyone)


@pytest.mark.parametrize(("mode", "outcome"), [("reject", "rejected"), ("redirect", "redirected")])
async def test_reject_and_redirect_are_recorded(
    standin: AcsStandin, app: App, webhook: str, mode: Literal["reject", "redirect"], outcome: str
) -> None:
    app.mode = mode
    call = await standin.ring(webhook)

    assert call.ended
    assert call.outcome == outcome
    if mode == "reject":
        assert call.reject_reason == "busy"
    else:
        assert call.redirect_target == f"4:{REDIRECT_TO}"
    assert (call.callbacks, call.call_connection_id, app.errors) == ([], None, [])
    # The incoming call is settled: a second attempt is refused.
    with pytest.raises(ResourceExistsError):
        await app.client.reject_call(call.incoming_call_context or "")


async def test_duplicate_incoming_call_delivery_answers_once(
    standin: AcsStandin, app: App, webhook: str
) -> None:
    call = await standin.ring(webhook, deliveries=2, hangup_after_s=SHORT_CALL_S)
    await call.wait_ended(WAIT_S)

    first, second = app.deliveries
    assert first.body[0]["id"] == second.body[0]["id"]
    counts = [received.headers["aeg-delivery-count"] for received in app.deliveries]
    assert counts == ["0", "1"]
    # The naive app answered both; ACS let the first win and refused the second.
    assert [(op.name, op.status) for op in call.operations] == [("answer", 200), ("answer", 409)]
    (refused,) = app.errors
    assert isinstance(refused, ResourceExistsError)
    assert refused.error is not None
    assert refused.error.code == "IncomingCallAlreadyHandled"
    assert len(app.media) == 1
    assert call.callback_names == [*CONNECTED_FLOW, "CallDisconnected"]


async def test_event_grid_batch_of_two_calls(standin: AcsStandin, app: App, webhook: str) -> None:
    calls = [
        standin.incoming_call(from_number=number, hangup_after_s=SHORT_CALL_S)
        for number in ("+14255550101", "+14255550102")
    ]
    delivery = await standin.deliver(webhook, [call.incoming_event or {} for call in calls])

    assert delivery.status == 200
    for call in calls:
        await call.wait_ended(WAIT_S)
        assert (call.outcome, call.disconnect) == ("answered", "caller")
    assert len({call.call_connection_id for call in calls}) == 2
    assert len(app.deliveries) == 1


async def test_unanswered_call_rings_out(standin: AcsStandin, app: App, webhook: str) -> None:
    app.mode = "ignore"
    standin.ring_timeout_s = 0.2
    started = time.monotonic()
    call = await standin.ring(webhook)
    await call.wait_ended(WAIT_S)

    assert call.outcome == "missed"
    assert call.ended_at is not None
    assert call.ended_at - started > 0.19
    with pytest.raises(ResourceNotFoundError):
        await app.client.answer_call(call.incoming_call_context or "", app.callback_url())


# --- Mid-call -------------------------------------------------------------------------------


async def test_transfer_is_accepted_and_takes_the_caller_away(
    standin: AcsStandin, app: App, client: CallAutomationClient, webhook: str
) -> None:
    call = await answered_call(standin, webhook, hangup_after_s=LONG_CALL_S)
    assert call.call_connection_id is not None
    connection = client.get_call_connection(call.call_connection_id)

    result = await connection.transfer_call_to_participant(
        PhoneNumberIdentifier(TRANSFER_TO), operation_context="to-sales"
    )

    assert result.operation_context == "to-sales"
    await call.wait_ended(WAIT_S)
    assert call.callback_names == [
        "ParticipantsUpdated",
        "CallConnected",
        "MediaStreamingStarted",
        "CallTransferAccepted",
        "MediaStreamingStopped",
        "CallDisconnected",
    ]
    accepted = call.callbacks[3].event["data"]
    assert accepted["operationContext"] == "to-sales"
    assert accepted["transferTarget"]["rawId"] == f"4:{TRANSFER_TO}"
    assert (call.transfer_target, call.disconnect) == (f"4:{TRANSFER_TO}", "transfer")
    assert call.media is not None
    assert call.media.closed_by == "network"


async def test_injected_transfer_failure_keeps_the_call(
    standin: AcsStandin, app: App, client: CallAutomationClient, webhook: str
) -> None:
    call = await answered_call(standin, webhook, hangup_after_s=LONG_CALL_S, fail_transfer=True)
    assert call.call_connection_id is not None
    connection = client.get_call_connection(call.call_connection_id)

    await connection.transfer_call_to_participant(
        PhoneNumberIdentifier(TRANSFER_TO), operation_context="to-sales"
    )
    failed = await call.wait_callback("CallTransferFailed", WAIT_S)

    assert failed.event["data"]["operationContext"] == "to-sales"
    assert failed.event["data"]["resultInformation"]["code"] >= 400
    properties = await connection.get_call_properties()
    assert properties.call_connection_state == "connected"
    await connection.hang_up(is_for_everyone=True)
    await call.wait_ended(WAIT_S)
    assert call.transfer_target == f"4:{TRANSFER_TO}"
    assert call.disconnect == "app_terminate"


async def test_refused_media_socket_reports_failure_and_call_stays_up(
    standin: AcsStandin, app: App, client: CallAutomationClient, webhook: str
) -> None:
    app.refuse_media = True
    call = await standin.ring(webhook, hangup_after_s=LONG_CALL_S)
    failed = await call.wait_callback("MediaStreamingFailed", WAIT_S)

    data = failed.event["data"]
    assert (data["resultInformation"]["code"], data["resultInformation"]["subCode"]) == (400, 8581)
    update = data["mediaStreamingUpdate"]
    assert update["mediaStreamingStatus"] == "mediaStreamingFailed"
    assert update["mediaStreamingStatusDetails"] == "initialWebSocketConnectionFailed"
    assert call.media_error is not None
    assert "403" in call.media_error
    assert call.call_connection_id is not None
    connection = client.get_call_connection(call.call_connection_id)
    properties = await connection.get_call_properties()
    assert properties.call_connection_state == "connected"
    await connection.hang_up(is_for_everyone=False)
    await call.wait_ended(WAIT_S)
    assert call.callback_names == [
        "ParticipantsUpdated",
        "CallConnected",
        "MediaStreamingFailed",
        "CallDisconnected",
    ]
    assert call.media is None


# --- Outbound -------------------------------------------------------------------------------


async def create_call(
    app: App,
    standin: AcsStandin,
    number: str,
    audio_format: AudioFormat | None = AudioFormat.PCM24_K_MONO,
) -> SimCall:
    properties = await app.client.create_call(
        PhoneNumberIdentifier(number),
        app.callback_url(),
        source_caller_id_number=PhoneNumberIdentifier(standin.acs_number),
        operation_context="outbound",
        media_streaming=app.media_streaming(audio_format),
    )
    assert properties.call_connection_state == "connecting"
    assert properties.call_connection_id is not None
    return standin.call(properties.call_connection_id)


@pytest.mark.parametrize(
    ("audio_format", "rate"), [(AudioFormat.PCM24_K_MONO, 24000), (None, 16000)]
)
async def test_create_call_callee_answers_and_media_flows(
    standin: AcsStandin, app: App, audio_format: AudioFormat | None, rate: int
) -> None:
    """The callee picks up; an omitted audioFormat means ACS's default, 16 kHz."""
    standin.on_dial(CALLEE, hangup_after_s=SHORT_CALL_S)

    call = await create_call(app, standin, CALLEE, audio_format)
    await call.wait_ended(WAIT_S)

    assert (call.direction, call.outcome, call.disconnect) == ("outbound", "answered", "caller")
    assert (call.from_number, call.to_number) == (standin.acs_number, CALLEE)
    assert call.request_body is not None
    assert call.request_body["targets"][0]["rawId"] == f"4:{CALLEE}"
    assert call.callback_names == [*CONNECTED_FLOW, "CallDisconnected"]
    assert app.callback_types() == call.callback_names
    assert app.media[0].headers["x-ms-call-connection-id"] == call.call_connection_id
    assert app.media[0].metadata is not None
    assert app.media[0].metadata["sampleRate"] == rate
    assert call.media is not None
    assert call.media.sample_rate == rate


@pytest.mark.parametrize(("answers", "code"), [(None, 404), (False, 408)])
async def test_create_call_nobody_answers(
    standin: AcsStandin, app: App, answers: bool | None, code: int
) -> None:
    if answers is not None:
        standin.on_dial(CALLEE, answer=answers)

    call = await create_call(app, standin, CALLEE)
    await call.wait_ended(WAIT_S)

    assert call.outcome == "failed"
    assert call.callback_names == ["CreateCallFailed"]
    assert call.callbacks[0].event["data"]["resultInformation"]["code"] == code
    assert app.callback_types() == ["CreateCallFailed"]
    assert app.media == []


# --- Authentication and signing -------------------------------------------------------------


async def test_unknown_call_is_404_8522(client: CallAutomationClient) -> None:
    connection = client.get_call_connection(str(uuid.uuid4()))
    with pytest.raises(ResourceNotFoundError) as missing:
        await connection.get_call_properties()
    assert missing.value.error is not None
    assert missing.value.error.code == "8522"
    with pytest.raises(ResourceNotFoundError):
        await client.answer_call("no-such-context", "http://127.0.0.1:9/cb")


async def test_wrong_access_key_is_401(standin: AcsStandin) -> None:
    wrong_key = base64.b64encode(b"not the key" * 4).decode()
    async with CallAutomationClient(standin.endpoint, AzureKeyCredential(wrong_key)) as sdk:
        with pytest.raises(HttpResponseError) as refused:
            await sdk.get_call_connection("c").get_call_properties()
    assert isinstance(refused.value, ClientAuthenticationError)
    assert refused.value.status_code == 401
    assert refused.value.error is not None
    assert refused.value.error.code == "Denied"
    assert standin.operations[-1].status == 401


async def test_endpoint_with_trailing_slash_is_401(standin: AcsStandin) -> None:
    """The SDK signs the host as written after the scheme, slash included, so ACS refuses it."""
    credential = AzureKeyCredential(standin.access_key)
    async with CallAutomationClient(standin.endpoint + "/", credential) as sdk:
        with pytest.raises(ClientAuthenticationError):
            await sdk.get_call_connection("c").get_call_properties()


async def test_operations_not_emulated_are_501(client: CallAutomationClient) -> None:
    with pytest.raises(HttpResponseError) as refused:
        async for _ in client.get_call_connection("c").list_participants():
            pass
    assert refused.value.status_code == 501


async def test_stale_request_date_is_401(
    standin: AcsStandin, client: CallAutomationClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's own signer, with its clock set ten minutes back: a replayed request."""
    stale = format_datetime(datetime.now(UTC) - timedelta(minutes=10), usegmt=True)
    monkeypatch.setattr(
        "azure.communication.callautomation._shared.policy.get_current_utc_time", lambda: stale
    )
    with pytest.raises(ClientAuthenticationError):
        await client.get_call_connection("c").get_call_properties()


def sign(key: str, method: str, url: str, body: bytes) -> dict[str, str]:
    """The signature scheme of the SDK's ``HMACCredentialsPolicy``, for hand-made requests."""
    parsed = URL(url)
    date = format_datetime(datetime.now(UTC), usegmt=True)
    content = base64.b64encode(hashlib.sha256(body).digest()).decode()
    to_sign = f"{method}\n{parsed.raw_path_qs}\n{date};{parsed.raw_authority};{content}"
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": content,
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={base64.b64encode(digest).decode()}",
    }


async def test_hand_signed_requests_body_tampering_and_open_keys(standin: AcsStandin) -> None:
    url = f"{standin.endpoint}/calling/callConnections:reject?api-version=2026-03-12"
    body = b'{"incomingCallContext": "x"}'
    headers = {"Content-Type": "application/json", **sign(standin.access_key, "POST", url, body)}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as signed:
            assert signed.status == 404  # authenticated; the context is unknown
        async with session.post(url, data=b'{"incomingCallContext": "y"}', headers=headers) as r:
            assert r.status == 401
            assert await r.json() == {
                "error": {"code": "Denied", "message": "Denied by the resource provider."}
            }
        async with session.post(url, data=body) as unsigned:
            assert unsigned.status == 401
        async with session.get(standin.jwks_url) as keys:
            assert keys.status == 200


async def test_negative_tokens_fail_validation(standin: AcsStandin) -> None:
    keys = await acs_keys(standin)
    assert verify(standin.mint_token(), keys, standin)["aud"] == standin.resource_id
    past = time.time() - 3600
    bad = {
        jwt.ExpiredSignatureError: standin.mint_token(issued_at=past, lifetime_s=300),
        jwt.InvalidAudienceError: standin.mint_token(audience=str(uuid.uuid4())),
        jwt.InvalidIssuerError: standin.mint_token(issuer="https://evil.example"),
        jwt.InvalidSignatureError: standin.mint_token(forged=True),
    }
    for error, token in bad.items():
        with pytest.raises(error):
            verify(token, keys, standin)
    forged = jwt.get_unverified_header(bad[jwt.InvalidSignatureError])
    assert forged["kid"] == keys.keys[0].key_id


async def test_per_call_token_overrides(standin: AcsStandin, app: App, webhook: str) -> None:
    call = await standin.ring(
        webhook,
        hangup_after_s=SHORT_CALL_S,
        media_token=lambda: "media-override",
        callback_token=standin.mint_token(lifetime_s=0),
    )
    await call.wait_ended(WAIT_S)

    assert bearer(app.media[0].headers) == "media-override"
    keys = await acs_keys(standin)
    for received in app.callbacks:
        with pytest.raises(jwt.ExpiredSignatureError):
            verify(bearer(received.headers), keys, standin)


async def test_stop_ends_a_live_call_and_leaves_no_task(app: App, webhook: str) -> None:
    async with asyncio.timeout(WAIT_S):
        acs = AcsStandin()
        await acs.start()
        app.client = CallAutomationClient(acs.endpoint, AzureKeyCredential(acs.access_key))
        async with app.client:
            call = await answered_call(acs, webhook, hangup_after_s=LONG_CALL_S)
            await acs.stop()
    assert call.ended
    assert call.disconnect == "shutdown"
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("acs-")] == []
