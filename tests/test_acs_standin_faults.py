"""Fault injection in the ACS stand-in and the phone: media drops, stalls, REST failures.

The app under test is a small aiohttp server written here (webhook, callbacks, media socket)
driving the real Call Automation SDK against the stand-in, all on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import WSCloseCode, web
from azure.communication.callautomation import (
    AudioFormat,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError

from callbridge.sim.acs import AcsStandin, MediaDrop, MediaStall, RestFault
from callbridge.sim.phone import DROP_CLOSE_CODE
from callbridge.sim.script import At, Clip, Say

WAIT_S = 5.0
RATE = 16000
AGENT_FRAME = base64.b64encode(bytes(640)).decode("ascii")
"""20 ms of agent audio at 16 kHz, sent by the app at the start of each media socket."""


def tone(ms: float) -> Clip:
    return Clip.tone(ms=ms, sample_rate=RATE)


# --- The app under test ---------------------------------------------------------------------


@dataclass
class Socket:
    """One media socket the app accepted, and what came over it."""

    headers: dict[str, str]
    kinds: list[str] = field(default_factory=list)
    voiced_frames: int = 0
    frame_times: list[float] = field(default_factory=list)
    close_code: int | None = None


@dataclass
class App:
    """Answers every call with bidirectional media; refuses media sockets past ``max_sockets``."""

    client: CallAutomationClient
    base_url: str = ""
    max_sockets: int = 10
    sockets: list[Socket] = field(default_factory=list)
    refused: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    answer_errors: list[HttpResponseError] = field(default_factory=list)
    open_sockets: set[web.WebSocketResponse] = field(default_factory=set)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/incomingCall", self._incoming)
        app.router.add_post("/api/callbacks", self._callback)
        app.router.add_get("/ws/{token}", self._media)
        app.on_shutdown.append(self._close_sockets)

    async def _close_sockets(self, _: web.Application) -> None:
        """A call still up when the test ends (its hang-up failed) closes with the app, so the
        runner need not wait out its shutdown timeout for the handler."""
        for ws in list(self.open_sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)

    def callback_names(self) -> list[str]:
        return [e["type"].removeprefix("Microsoft.Communication.") for e in self.events]

    def streaming_details(self) -> list[tuple[str, str]]:
        return [
            (
                e["type"].removeprefix("Microsoft.Communication."),
                update["mediaStreamingStatusDetails"],
            )
            for e in self.events
            if (update := e["data"].get("mediaStreamingUpdate")) is not None
        ]

    async def _incoming(self, request: web.Request) -> web.Response:
        for event in await request.json():
            try:
                await self.client.answer_call(
                    event["data"]["incomingCallContext"],
                    f"{self.base_url}/api/callbacks",
                    media_streaming=MediaStreamingOptions(
                        transport_url=self.base_url.replace("http", "ws") + "/ws/call-token",
                        transport_type=StreamingTransportType.WEBSOCKET,
                        content_type=MediaStreamingContentType.AUDIO,
                        audio_channel_type=MediaStreamingAudioChannelType.MIXED,
                        start_media_streaming=True,
                        enable_bidirectional=True,
                        audio_format=AudioFormat.PCM16_K_MONO,
                    ),
                )
            except HttpResponseError as exc:
                self.answer_errors.append(exc)
        return web.Response()

    async def _callback(self, request: web.Request) -> web.Response:
        self.events.extend(await request.json())
        return web.Response()

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if len(self.sockets) >= self.max_sockets:
            self.refused += 1
            raise web.HTTPForbidden()
        socket = Socket(dict(request.headers))
        self.sockets.append(socket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.open_sockets.add(ws)
        try:
            await ws.send_str(json.dumps({"kind": "AudioData", "audioData": {"data": AGENT_FRAME}}))
            async for msg in ws:
                message = json.loads(msg.data)
                socket.kinds.append(message["kind"])
                if message["kind"] == "AudioData":
                    socket.frame_times.append(time.monotonic())
                    socket.voiced_frames += not message["audioData"]["silent"]
        finally:
            self.open_sockets.discard(ws)
        socket.close_code = ws.close_code
        return ws


# --- Fixtures -------------------------------------------------------------------------------


async def serve(app: App) -> web.AppRunner:
    web_app = web.Application()
    app.routes(web_app)
    runner = web.AppRunner(web_app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    app.base_url = f"http://{host}:{port}"
    return runner


@pytest.fixture
async def standin() -> AsyncIterator[AcsStandin]:
    async with AcsStandin(ring_timeout_s=WAIT_S) as acs:
        yield acs
    assert acs.task_errors == []


@contextlib.asynccontextmanager
async def app_for(standin: AcsStandin) -> AsyncIterator[App]:
    # A short backoff keeps the SDK's retries (0 s, then 1.6 s, 3.2 s by default) fast.
    async with CallAutomationClient(
        standin.endpoint, AzureKeyCredential(standin.access_key), retry_backoff_factor=0.01
    ) as client:
        app = App(client)
        runner = await serve(app)
        yield app
        await runner.cleanup()


@pytest.fixture
async def app(standin: AcsStandin) -> AsyncIterator[App]:
    async with app_for(standin) as under_test:
        yield under_test


def webhook(app: App) -> str:
    return f"{app.base_url}/api/incomingCall"


def verify(token: str, standin: AcsStandin) -> dict[str, Any]:
    """Check an ACS JWT against the stand-in's signing key, audience and issuer."""
    jwks = jwt.PyJWKClient(standin.jwks_url)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=standin.resource_id, issuer=standin.issuer
    )
    return claims


# --- Media drops ----------------------------------------------------------------------------


async def test_drop_and_rejoin_opens_a_second_socket_and_the_call_goes_on(
    standin: AcsStandin, app: App
) -> None:
    script = [
        Say(tone(200), At(0.0)),  # on the first socket
        Say(tone(200), At(0.44)),  # while the line is down: lost
        Say(tone(100), At(0.9)),  # on the second socket
    ]
    call = await standin.ring(
        webhook(app),
        script=script,
        hangup_after_s=0.2,
        media_faults=[MediaDrop(0.4, rejoin_after_s=0.3)],
    )
    await call.wait_ended(WAIT_S)

    first, second = app.sockets
    ids = ("x-ms-call-connection-id", "x-ms-call-correlation-id")
    assert [second.headers[h] for h in ids] == [first.headers[h] for h in ids]
    assert second.headers["x-ms-call-connection-id"] == call.call_connection_id
    token = second.headers["Authorization"].removeprefix("Bearer ")
    await asyncio.to_thread(verify, token, standin)
    assert second.kinds[0] == "AudioMetadata"
    assert (first.close_code, first.voiced_frames, second.voiced_frames) == (1001, 10, 5)

    record = call.media
    assert record is not None
    assert [(s.closed_by, s.close_code) for s in record.sockets] == [
        ("dropped", DROP_CLOSE_CODE),
        ("phone", 1000),
    ]
    assert record.closed_by == "phone"
    assert record.lost_voiced_ms == 200
    assert all(step.finished_at is not None for step in record.steps)
    assert len(record.arrivals) == 2  # the app's audio on each socket: one heard timeline
    assert call.disconnect == "caller"
    assert app.streaming_details() == [
        ("MediaStreamingStarted", "subscriptionStarted"),
        ("MediaStreamingFailed", "streamConnectionInterrupted"),
        ("MediaStreamingStarted", "streamConnectionReestablished"),
        ("MediaStreamingStopped", "subscriptionStopped"),
    ]
    assert app.callback_names()[-1] == "CallDisconnected"


async def test_drop_without_rejoin_keeps_the_call_until_the_app_hangs_up(
    standin: AcsStandin, app: App
) -> None:
    call = await standin.ring(
        webhook(app),
        script=[Say(tone(200), At(0.4))],
        hangup_after_s=10.0,
        media_faults=[MediaDrop(0.2, rejoin_after_s=None)],
    )
    await call.wait_callback("MediaStreamingFailed", WAIT_S)
    await asyncio.sleep(0.5)  # the caller speaks with no socket to carry it
    assert (call.state, len(app.sockets)) == ("connected", 1)

    assert call.call_connection_id is not None
    await app.client.get_call_connection(call.call_connection_id).hang_up(is_for_everyone=True)
    await call.wait_ended(WAIT_S)

    record = call.media
    assert record is not None
    assert (record.closed_by, record.close_code, record.lost_voiced_ms) == ("network", None, 200)
    assert [s.closed_by for s in record.sockets] == ["dropped"]
    assert call.disconnect == "app_terminate"
    assert app.callback_names()[-2:] == ["MediaStreamingFailed", "CallDisconnected"]


async def test_abort_ends_the_socket_without_a_close_frame(standin: AcsStandin, app: App) -> None:
    call = await standin.ring(
        webhook(app),
        hangup_after_s=0.6,
        media_faults=[MediaDrop(0.2, rejoin_after_s=0.1, abort=True)],
    )
    await call.wait_ended(WAIT_S)

    assert app.sockets[0].close_code == 1006  # abnormal closure: no close frame was received
    record = call.media
    assert record is not None
    assert [(s.closed_by, s.close_code) for s in record.sockets] == [
        ("aborted", None),
        ("phone", 1000),
    ]


async def test_refused_rejoin_is_recorded_and_reported(standin: AcsStandin, app: App) -> None:
    app.max_sockets = 1
    call = await standin.ring(
        webhook(app),
        hangup_after_s=0.6,
        media_faults=[MediaDrop(0.2, rejoin_after_s=0.1)],
    )
    await call.wait_ended(WAIT_S)

    record = call.media
    assert record is not None
    assert (app.refused, len(record.refused_rejoins)) == (1, 1)
    assert "403" in record.refused_rejoins[0].error
    assert record.closed_by == "phone"  # the caller hung up on the silent line
    assert app.streaming_details()[1:] == [
        ("MediaStreamingFailed", "streamConnectionInterrupted"),
        ("MediaStreamingFailed", "streamConnectionUnsuccessful"),
    ]


async def test_stall_withholds_frames_then_resumes(standin: AcsStandin, app: App) -> None:
    call = await standin.ring(
        webhook(app),
        script=[Say(tone(400), At(0.1))],
        hangup_after_s=0.3,
        media_faults=[MediaStall(0.2, for_s=0.2)],
    )
    await call.wait_ended(WAIT_S)

    (socket,) = app.sockets
    record = call.media
    assert record is not None
    (stall,) = record.stalls
    assert (stall.frames_withheld, stall.voiced_ms) == (10, 200)
    assert stall.ended_at is not None
    assert stall.ended_at - stall.started_at == pytest.approx(0.2)
    assert len(socket.frame_times) == record.frames_sent
    gaps = [b - a for a, b in zip(socket.frame_times, socket.frame_times[1:], strict=False)]
    longest = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[longest] >= 0.15  # no frame for the stall
    assert longest < len(gaps) - 1  # and frames again after it
    assert socket.voiced_frames == 10  # what was said during the stall never left the phone
    assert [s.closed_by for s in record.sockets] == ["phone"]


# --- REST faults ----------------------------------------------------------------------------


async def test_answer_500_once_is_retried_by_the_sdk(standin: AcsStandin, app: App) -> None:
    call = await standin.ring(
        webhook(app), hangup_after_s=0.2, rest_faults=[RestFault("answer", status=500)]
    )
    await call.wait_ended(WAIT_S)

    answers = [(op.name, op.status, op.fault is not None) for op in call.operations]
    assert answers == [("answer", 500, True), ("answer", 200, False)]
    assert (call.outcome, app.answer_errors) == ("answered", [])
    assert standin.operations[0].error_code == "InternalServerError"


async def test_hang_up_always_500_reaches_the_app_after_the_sdk_retries(
    standin: AcsStandin, app: App
) -> None:
    call = await standin.ring(
        webhook(app),
        hangup_after_s=10.0,
        rest_faults=[RestFault("hang_up", status=500, times=None)],
    )
    await call.wait_callback("MediaStreamingStarted", WAIT_S)
    assert call.call_connection_id is not None
    connection = app.client.get_call_connection(call.call_connection_id)
    with pytest.raises(HttpResponseError) as failure:
        await connection.hang_up(is_for_everyone=True)

    assert failure.value.status_code == 500
    terminates = [op.status for op in call.operations if op.name == "terminate"]
    assert terminates == [500] * 4  # the first attempt and the SDK's three retries
    assert call.state == "connected"


async def test_stand_in_wide_transfer_fault_strikes_twice() -> None:
    async with AcsStandin(rest_faults=[RestFault("transfer", status=503, times=2)]) as acs:
        async with app_for(acs) as app:
            call = await acs.ring(webhook(app), hangup_after_s=10.0)
            await call.wait_callback("MediaStreamingStarted", WAIT_S)
            assert call.call_connection_id is not None
            connection = app.client.get_call_connection(call.call_connection_id)
            await connection.transfer_call_to_participant(PhoneNumberIdentifier("+14255550111"))
            await call.wait_ended(WAIT_S)

        transfers = [op.status for op in call.operations if op.name == "transferToParticipant"]
        assert transfers == [503, 503, 202]
        assert call.disconnect == "transfer"
    assert acs.task_errors == []


async def test_held_hang_up_answers_late_and_then_ends_the_call(
    standin: AcsStandin, app: App
) -> None:
    call = await standin.ring(
        webhook(app),
        hangup_after_s=10.0,
        rest_faults=[RestFault("hang_up", status=None, delay_s=0.5)],
    )
    await call.wait_callback("MediaStreamingStarted", WAIT_S)
    assert call.call_connection_id is not None
    connection = app.client.get_call_connection(call.call_connection_id)
    sent_at = time.monotonic()
    hang_up = asyncio.ensure_future(connection.hang_up(is_for_everyone=True))
    await asyncio.sleep(0.2)
    assert (hang_up.done(), call.state) == (False, "connected")  # held, not yet acted on
    await hang_up
    await call.wait_ended(WAIT_S)

    (terminate,) = [op for op in call.operations if op.name == "terminate"]
    assert (terminate.status, terminate.fault) == (204, RestFault("hang_up", None, 1, 0.5))
    assert terminate.at - sent_at >= 0.5
    assert call.disconnect == "app_terminate"


def test_rest_fault_rejects_a_success_status() -> None:
    with pytest.raises(ValueError, match="error status"):
        RestFault("answer", status=200)
