"""Three small holes, each against a real bridge on loopback:

- an ``AudioData`` frame that is not silent but carries no audio is dropped, counted and logged
  once, never sent on as an empty ``input_audio_buffer.append``;
- an event-loop stall that re-anchors the pacer's grid shows in ``pacer_max_late_ms`` at its
  full length (it used to report a few ms, the lateness of the frame after the re-anchor);
- ACS's tokens are checked with a 10 s leeway, not a minute: a callback or media token 30 s
  past its expiry is refused.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.profiles import AgentProfile
from callbridge.sim.acs import CALLBACK_TOKEN_LIFETIME_S
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.harness import LocalStack
from callbridge.sim.media_messages import audio_message, frame_timestamp, metadata_message
from callbridge.sim.script import At, Hangup
from callbridge.sim.voicelive import EventRecord
from tests.test_call_e2e import open_media_socket
from tests.tone_calls import LINE, turn

pytestmark = pytest.mark.timeout(30)

RATE = 16000
FRAME_BYTES = 640
"""20 ms of PCM16 at 16 kHz."""
EMPTY_FRAMES = 25
STALL_MS = 300
STALL_LATENESS_FLOOR_MS = STALL_MS - 40
"""What the stall must show at least: the stall, less the frame the pacer slept towards and a
margin; the lead (40 ms) only adds to it."""
EXPIRED_S = 30
CALL_TIMEOUT_S = 20.0


def stack() -> LocalStack:
    return LocalStack(
        turns=[turn(2000, 440, "Hello, let me tell you about our opening hours.")],
        caller_transcripts=[],
        profile=AgentProfile(tools=()),
    )


# --- Empty AudioData --------------------------------------------------------------------------


def appends(local: LocalStack) -> list[EventRecord]:
    """The appends Voice Live received on the call so far."""
    session = local.emulator.session_for("corr-empty-audio")
    return [] if session is None else session.received("input_audio_buffer.append")


async def test_empty_audio_data_is_dropped_counted_and_logged_once() -> None:
    local = stack()
    voiced = [LINE.pcm[i : i + FRAME_BYTES] for i in range(0, FRAME_BYTES * 20, FRAME_BYTES)]
    opened = datetime.now(UTC)
    with capture_logs() as logs:
        async with local, aiohttp.ClientSession() as http, asyncio.timeout(CALL_TIMEOUT_S):
            ws = await open_media_socket(local, http, "empty-audio", "corr-empty-audio")
            await ws.send_str(metadata_message(RATE, FRAME_BYTES))
            frames = [*voiced[:10], *([b""] * EMPTY_FRAMES), *voiced[10:]]
            for index, pcm in enumerate(frames):
                data = base64.b64encode(pcm).decode()
                stamp = frame_timestamp(opened, index)
                await ws.send_str(audio_message(stamp, "4:+15551230000", data, silent=False))
            # Until Voice Live has been handed every voiced frame (held ones too), then hang up.
            while len(appends(local)) < len(voiced):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await ws.close()
            await local.bridge_summaries.get("empty-audio")
            await local.emulator.wait_all_closed()
    sent = appends(local)
    assert len(sent) == len(voiced), "one append per voiced frame, none for the empty ones"
    assert [e for e in sent if e.fields.get("audio_bytes") == 0] == []
    malformed = [line for line in logs if line["event"] == "acs.malformed_frame"]
    assert [line["reason"] for line in malformed] == ["audioData.data is empty"]
    (ended,) = [line for line in logs if line["event"] == "call.ended"]
    assert (ended["malformed_media"], ended["caller_frames"]) == (EMPTY_FRAMES, len(voiced))


# --- A stall the pacer re-anchors over --------------------------------------------------------


async def test_a_stall_that_re_anchors_the_pacer_shows_in_its_max_lateness() -> None:
    async with stack() as local, asyncio.timeout(CALL_TIMEOUT_S):
        call = await local.ring([Hangup(At(3.0))], hangup_after_s=3.0)
        await call.wait_callback("MediaStreamingStarted", CALL_TIMEOUT_S)
        # The emulator's records, read live: nothing announces the first audio sent.
        while not (session := local.emulator.session_for(call.correlation_id)) or not any(  # noqa: ASYNC110
            response.audio_bytes_sent for response in session.responses
        ):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the greeting is playing, more of it queued in the pacer
        # The bridge runs in this event loop: block it, as a batch of work would.
        time.sleep(STALL_MS / 1000)  # noqa: ASYNC251
        await call.wait_ended(CALL_TIMEOUT_S)
        summary = await local.bridge_summaries.get(call.call_connection_id)
    assert summary is not None
    assert summary.pacer_reanchors >= 1
    assert summary.pacer_max_late_ms is not None
    assert summary.pacer_max_late_ms >= STALL_LATENESS_FLOOR_MS
    print(f"stall {STALL_MS} ms: pacer_max_late_ms {summary.pacer_max_late_ms:.1f}")


# --- ACS JWT leeway ---------------------------------------------------------------------------


async def test_acs_tokens_past_their_expiry_by_more_than_10_s_are_refused() -> None:
    """A callback JWT lives five minutes; one 30 s past its ``exp`` (accepted with the old 60 s
    leeway) is refused on a callback and on a media socket, and the call is untouched."""
    expired_at = time.time() - EXPIRED_S
    async with stack() as local, aiohttp.ClientSession() as http:
        stale = local.acs.mint_token(
            lifetime_s=CALLBACK_TOKEN_LIFETIME_S,
            issued_at=expired_at - CALLBACK_TOKEN_LIFETIME_S,
        )
        call = await local.ring([Hangup(At(2.0))], hangup_after_s=2.0)
        await call.wait_callback("MediaStreamingStarted", CALL_TIMEOUT_S)
        assert call.request_body is not None
        callback_url = through_ingress(call.request_body["callbackUri"])
        event = {
            "type": "Microsoft.Communication.MediaStreamingFailed",
            "data": {
                "callConnectionId": call.call_connection_id,
                "correlationId": call.correlation_id,
            },
        }
        with capture_logs() as logs:
            async with http.post(
                callback_url, json=[event], headers={"Authorization": f"Bearer {stale}"}
            ) as response:
                callback_status = response.status
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    local.media_url("corr-stale"),
                    headers={
                        "Authorization": f"Bearer {stale}",
                        "x-ms-call-correlation-id": "corr-stale",
                    },
                )
        await call.wait_ended(CALL_TIMEOUT_S)
    assert (callback_status, refused.value.status) == (401, 401)
    reasons = [line["reason"] for line in logs if line["event"] == "acs.unauthorized"]
    assert reasons == ["expired token", "expired token"]
    assert call.disconnect == "caller", "the stale callback acted on nothing"
