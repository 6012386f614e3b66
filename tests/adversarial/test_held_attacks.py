"""Attacks that already fail, pinned so they keep failing: forged and replayed tokens on every
endpoint (401 with the reason logged, nothing started or acted on), malformed media frames
(logged, and the call goes on), oversized bodies (413).

Each runs against the real bridge on loopback with the stand-ins (``LocalStack``); the
stand-ins' records and the bridge's log lines are the witnesses.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import MutableMapping
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.call_token import mint_call_token
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.script import At, Hangup
from callbridge.web.outbound import API_KEY_HEADER
from callbridge.web.webhook import SECRET_HEADER
from tests.test_call_control import CALL_TIMEOUT_S, ended, stack
from tests.test_call_e2e import open_media_socket

pytestmark = pytest.mark.timeout(60)

OVERSIZED = 2 * 1024 * 1024
"""Twice aiohttp's default request body limit (``client_max_size``, 1 MiB)."""


def reasons(logs: list[MutableMapping[str, Any]], event: str) -> list[str]:
    return [str(line["reason"]) for line in logs if line["event"] == event]


# --- Forged and replayed tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("missing", "missing bearer token"),
        ("expired", "expired token"),
        ("wrong-audience", "wrong audience"),
        ("wrong-issuer", "wrong issuer"),
        ("forged", "bad signature"),
    ],
)
async def test_media_socket_refuses_bad_acs_tokens_before_starting(bad: str, reason: str) -> None:
    """401 before the upgrade; no Voice Live session is opened for it."""
    async with stack() as local, aiohttp.ClientSession() as http:
        tokens = {
            "expired": local.acs.mint_token(lifetime_s=-600),
            "wrong-audience": local.acs.mint_token(audience="6f1c1b0e-0000-4000-8000-000000000000"),
            "wrong-issuer": local.acs.mint_token(issuer="https://issuer.invalid"),
            "forged": local.acs.mint_token(forged=True),
        }
        headers = {"x-ms-call-correlation-id": "c1", "x-ms-call-connection-id": "call-1"}
        if bad in tokens:
            headers["Authorization"] = f"Bearer {tokens[bad]}"
        with capture_logs() as logs, pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with asyncio.timeout(10):
                await http.ws_connect(local.media_url("c1"), headers=headers)
    assert refused.value.status == 401
    assert reasons(logs, "acs.unauthorized") == [reason]
    assert local.emulator.sessions == ()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "missing call token"),
        ("/nope", "malformed call token"),
        ("/{other}", "call token is for another call"),
        ("?token=nope", "malformed call token"),
        ("?token={other}", "call token is for another call"),
    ],
)
async def test_media_socket_refuses_bad_call_tokens(query: str, reason: str) -> None:
    """A valid ACS JWT is not enough: the call token must be genuine and for this call."""
    async with stack() as local, aiohttp.ClientSession() as http:
        other = mint_call_token(local.signing_key, call_key="another-call", profile="default")
        headers = {
            "Authorization": f"Bearer {local.acs.mint_token(lifetime_s=60)}",
            "x-ms-call-correlation-id": "c1",
        }
        with capture_logs() as logs, pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with asyncio.timeout(10):
                await http.ws_connect(local.ws_url + query.format(other=other), headers=headers)
    assert refused.value.status == 401
    assert reasons(logs, "media.unauthorized") == [reason]
    assert local.emulator.sessions == ()


async def test_callbacks_refuse_forged_tokens_and_replayed_call_tokens() -> None:
    """A forged ACS JWT, or a callback token minted for another call, is refused with 401
    and nothing is acted on (a forged MediaStreamingFailed must not hang up a call)."""
    async with stack() as local:
        sim = await local.ring([Hangup(At(2.0))])
        await sim.wait_callback("MediaStreamingStarted", CALL_TIMEOUT_S)
        assert sim.request_body is not None
        # Posted as the ingress forwards them: straight to the bridge's plain-HTTP port.
        own_url = through_ingress(sim.request_body["callbackUri"])
        other_url = f"{local.base_url}/api/callbacks/" + mint_call_token(
            local.signing_key, call_key="another-call", profile="default"
        )
        event = [
            {
                "type": "Microsoft.Communication.MediaStreamingFailed",
                "data": {
                    "callConnectionId": sim.call_connection_id,
                    "correlationId": sim.correlation_id,
                },
            }
        ]
        statuses = []
        with capture_logs() as logs:
            async with aiohttp.ClientSession() as http:
                for url, jwt in (
                    (own_url, local.acs.mint_token(forged=True)),
                    (own_url, local.acs.mint_token(lifetime_s=-600)),
                    (other_url, local.acs.mint_token()),
                    (own_url, None),
                ):
                    headers = {"Authorization": f"Bearer {jwt}"} if jwt else {}
                    async with http.post(url, json=event, headers=headers) as response:
                        statuses.append(response.status)
        await ended(sim)
    assert statuses == [401, 401, 401, 401]
    assert reasons(logs, "acs.unauthorized") == [
        "bad signature",
        "expired token",
        "missing bearer token",
    ]
    assert reasons(logs, "callback.unauthorized") == ["call token is for another call"]
    assert sim.disconnect == "caller"


async def test_webhook_without_the_secret_answers_nothing() -> None:
    """A wrong secret, or a bearer token in its place (forged or not, it is no secret and no
    Entra token is configured), is refused: the call rings out unanswered."""
    async with stack() as local:
        local.acs.ring_timeout_s = 1.0
        with capture_logs() as logs:
            sim = await ended(await local.ring([], secret="y" * 32))
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    local.webhook_url,
                    json=[sim.incoming_event],
                    headers={"Authorization": f"Bearer {local.acs.mint_token(forged=True)}"},
                ) as response,
            ):
                bearer_status = response.status
    assert sim.outcome == "missed"
    assert (local.acs.deliveries[-1].status, bearer_status) == (401, 401)
    assert reasons(logs, "webhook.unauthorized") == ["wrong or missing secret"] * 2
    assert not [op for op in local.acs.operations if op.name == "answer"]


# --- Malformed media --------------------------------------------------------------------------


async def test_malformed_acs_frames_are_logged_and_the_call_goes_on() -> None:
    """Bad media frames are counted and logged once per reason, and skipped; the caller still
    gets the greeting."""
    bad_frames = (
        "{not json",
        '{"kind":"AudioData"}',
        '{"kind":"AudioData","audioData":{"data":"@"}}',
        '{"kind":"AudioData","audioData":{"data":"@"}}',
    )
    async with stack() as local, aiohttp.ClientSession() as http:
        with capture_logs() as logs:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                ws = await open_media_socket(local, http, "malformed-frames", "corr-malformed")
                await ws.send_str(
                    json.dumps(
                        {
                            "kind": "AudioMetadata",
                            "audioMetadata": {
                                "encoding": "PCM",
                                "sampleRate": 16000,
                                "channels": 1,
                            },
                        }
                    )
                )
                for bad in bad_frames:
                    await ws.send_str(bad)
                await ws.send_bytes(b"\x00\x01")
                silence = base64.b64encode(bytes(640)).decode()
                frame = json.dumps(
                    {"kind": "AudioData", "audioData": {"data": silence, "silent": True}}
                )
                got_audio = False
                for _ in range(200):
                    await ws.send_str(frame)
                    try:
                        message = await ws.receive(timeout=0.02)
                    except TimeoutError:
                        continue
                    if message.type is aiohttp.WSMsgType.TEXT and "AudioData" in message.data:
                        got_audio = True
                        break
                await ws.close()
                await local.bridge_summaries.get("malformed-frames")
    assert got_audio
    assert reasons(logs, "acs.malformed_frame") == [
        "not JSON",
        "missing audiodata body",
        "audioData.data is not base64",
        "binary frame",
    ]
    (ended_line,) = [line for line in logs if line["event"] == "call.ended"]
    assert ended_line["malformed_media"] == len(bad_frames) + 1


# --- Oversized bodies -------------------------------------------------------------------------


async def test_oversized_bodies_are_refused_413() -> None:
    """A body past the limit is refused before it is read, on every endpoint that takes one,
    even with valid credentials; nothing is answered or placed."""
    async with stack() as local, aiohttp.ClientSession() as http:
        callback = f"{local.base_url}/api/callbacks/" + mint_call_token(
            local.signing_key, call_key="c1", profile="default"
        )
        body = b"[" + b" " * OVERSIZED + b"]"
        posts = (
            (local.webhook_url, {SECRET_HEADER: local.webhook_secret}),
            (callback, {"Authorization": f"Bearer {local.acs.mint_token()}"}),
            (f"{local.base_url}/api/calls", {API_KEY_HEADER: local.api_key}),
        )
        statuses = []
        for url, credentials in posts:
            headers = {**credentials, "Content-Type": "application/json"}
            async with http.post(url, data=body, headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [413, 413, 413]
    assert not local.acs.operations
