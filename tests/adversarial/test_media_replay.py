"""A replayed media URL: the live call's ``transportUrl`` and a valid ACS JWT, opened again.

One live bridge per call (``callbridge.web.media_socket``): the call is the one the URL's call
token authorizes, whatever connection id the request claims, and a second socket for a call
bridged here is refused with 409 before the upgrade. Nothing starts (no socket, no bridge, no
Voice Live session) and the call already bridged goes on as if nothing happened. The one
exception, a socket that takes the place of one ACS lost, is tests/test_continuity.py's.

One call runs (the ``replay`` fixture, about 3 s); while the caller hears the greeting, its
media URL is replayed three times: claiming the call's own connection id, another one, and
none. A fourth socket brings another call's valid URL but claims this call's connection id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.profiles import AgentProfile
from callbridge.sim.acs import MEDIA_TOKEN_LIFETIME_S, SimCall
from callbridge.sim.acs.ingress import through_ingress
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import At, Hangup
from callbridge.sim.voicelive.records import EmulatorSession
from tests.tone_calls import turn

pytestmark = pytest.mark.timeout(30)

GREETING_MS = 1500
CALLER_STAYS_S = 3.0
SETUP_TIMEOUT_S = 10.0

CONNECTION_IDS = ("the call's own", "another", "none")
"""What each replay claims in ``x-ms-call-connection-id``."""
HIJACK = "another call's URL"
"""A valid media URL of another call, claiming this call's connection id."""


@dataclass(frozen=True, slots=True)
class Replay:
    """One call, and what became of each replay of its media URL."""

    call: SimCall
    statuses: dict[str, int]
    """By ``CONNECTION_IDS`` and ``HIJACK``: the upgrade's HTTP status (101 if it went
    through)."""
    replayed_at: float
    sessions: Sequence[EmulatorSession]
    """The emulator's Voice Live sessions for the call."""
    sessions_started: int
    """Voice Live sessions the emulator saw opened, for any call."""
    refusals: list[MutableMapping[str, Any]]
    """The bridge's ``media.refused`` log lines."""


async def open_media(
    stack: LocalStack, url: str, correlation_id: str, connection_id: str | None
) -> int:
    """Open a media socket as ACS would (a fresh, valid JWT), claiming ``correlation_id`` and
    ``connection_id``; the upgrade's HTTP status."""
    headers = {
        "Authorization": f"Bearer {stack.acs.mint_token(lifetime_s=MEDIA_TOKEN_LIFETIME_S)}",
        "x-ms-call-correlation-id": correlation_id,
    }
    if connection_id is not None:
        headers["x-ms-call-connection-id"] = connection_id
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        try:
            async with http.ws_connect(url, headers=headers) as socket:
                await socket.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def run_replay() -> Replay:
    stack = LocalStack(
        turns=[turn(GREETING_MS, 440, "Hello, how can I help?")],
        caller_transcripts=[],
        profile=AgentProfile(tools=()),
        emulator_speed=1.0,
    )
    with capture_logs() as logs:
        async with stack:
            call = await stack.ring([Hangup(At(CALLER_STAYS_S))], hangup_after_s=CALLER_STAYS_S)
            await call.wait_callback("MediaStreamingStarted", SETUP_TIMEOUT_S)
            assert call.call_connection_id is not None
            claims = {
                "the call's own": call.call_connection_id,
                "another": str(uuid.uuid4()),
                "none": None,
            }
            assert call.setup is not None
            assert call.setup.media is not None
            url = through_ingress(call.setup.media.transport_url)
            statuses = {
                name: await open_media(stack, url, call.correlation_id, claims[name])
                for name in claims
            }
            statuses[HIJACK] = await open_media(
                stack, stack.media_url("another-call"), "another-call", call.call_connection_id
            )
            replayed_at = time.monotonic()
            await call.wait_ended(CALLER_STAYS_S + SETUP_TIMEOUT_S)
            sessions = stack.emulator.sessions_for(call.correlation_id)
            for session in sessions:
                await session.wait_closed()
            sessions_started = len(stack.emulator.sessions)
    refusals = [entry for entry in logs if entry["event"] == "media.refused"]
    return Replay(call, statuses, replayed_at, sessions, sessions_started, refusals)


@pytest.fixture(scope="module")
def replay() -> Replay:
    return asyncio.run(run_replay())


@pytest.mark.parametrize("claimed", CONNECTION_IDS)
def test_a_second_media_socket_for_a_live_call_is_refused_409(replay: Replay, claimed: str) -> None:
    assert replay.statuses[claimed] == 409


def test_another_calls_url_cannot_take_this_calls_connection(replay: Replay) -> None:
    assert replay.statuses[HIJACK] == 409


def test_each_refusal_is_logged_with_its_reason(replay: Replay) -> None:
    assert [entry["reason"] for entry in replay.refusals] == [
        "the call's media socket is still open",
        "the call is bridged already, under another connection id",
        "the call is bridged already, under another connection id",
        "the connection id is another call's",
    ]


def test_no_second_voice_live_session_was_started(replay: Replay) -> None:
    (session,) = replay.sessions
    assert len(session.responses) == 1, "only the greeting"
    assert replay.sessions_started == 1, "none for the other call's URL either"


def test_the_call_already_bridged_goes_on(replay: Replay) -> None:
    call = replay.call
    media = call.media
    assert media is not None, call.media_error
    # The caller heard the whole greeting and hung up when they meant to, on the one socket
    # the call ever had.
    (greeting,) = media.spurts
    assert greeting.end == "drained"
    assert greeting.played_ms == pytest.approx(GREETING_MS, abs=60)
    assert media.bad_message_count == 0
    assert media.closed_by == "phone"
    assert len(media.sockets) == 1
    assert "MediaStreamingFailed" not in call.callback_names
    # Voice Live heard the caller until the end, well after the replays.
    (session,) = replay.sessions
    last_append = session.received("input_audio_buffer.append")[-1]
    assert last_append.at > replay.replayed_at + 1.0
