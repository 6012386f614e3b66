"""Call control end to end: Event Grid webhook, answer, callbacks, routing, outbound calls,
tools, keypad input and authentication on every endpoint.

Everything goes through the real Call Automation and Voice Live SDKs to the stand-ins; the
stand-ins' records (ACS's REST operations and callbacks, Voice Live's events, the phone's
playout) are the witnesses.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.bridge.call import SESSION_CONFIGURED_TIMEOUT_S
from callbridge.core.call_token import mint_call_token
from callbridge.core.profiles import AgentProfile, Routing
from callbridge.sim.acs import SimCall
from callbridge.sim.harness import DIALED_NUMBER, LocalStack
from callbridge.sim.script import AfterAgentDone, At, Clip, Dtmf, Hangup, Say, Step
from callbridge.sim.voicelive import AgentTurn, ToolCall
from callbridge.web.webhook import SECRET_HEADER
from tests.tone_calls import (
    BARGE_IN_SCRIPT,
    CALLER_TRANSCRIPTS,
    GREETING,
    LINE,
    RATE,
    TURNS,
    turn,
)

CALL_TIMEOUT_S = 30.0
SALES = "+18005550101"
HUMAN = "+18005550123"
CALLEE = "+14255550150"
FALLBACK_MS = 500
"""The fallback clip these tests give their profile. The shipped ones last about 5 s; the
continuity tests play those end to end, and test_fallback_audio checks which one is chosen."""


def stack(
    turns: Sequence[AgentTurn] = TURNS,
    *,
    profile: AgentProfile | None = None,
    routing: Routing | None = None,
    max_calls: int = 50,
) -> LocalStack:
    return LocalStack(
        turns=turns,
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=profile or AgentProfile(tools=("end_call",)),
        routing=routing,
        response_delay_ms=100,
        max_calls=max_calls,
    )


async def ended(call: SimCall) -> SimCall:
    return await call.wait_ended(CALL_TIMEOUT_S)


@pytest.fixture
def fallback_profile(tmp_path: Path) -> AgentProfile:
    """A profile with a fallback clip of its own, ``FALLBACK_MS`` long."""
    path = tmp_path / "fallback.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(Clip.tone(ms=FALLBACK_MS, sample_rate=RATE, hz=350).pcm)
    return AgentProfile(tools=("end_call",), fallback_audio=str(path))


# --- Event Grid -------------------------------------------------------------------------------


async def test_subscription_validation_handshake_needs_the_secret() -> None:
    """Event Grid's handshake is answered with the code, and only with the secret."""
    async with stack() as local:
        good = await local.acs.validate_subscription(
            local.webhook_url, headers={SECRET_HEADER: local.webhook_secret}
        )
        by_query = await local.acs.validate_subscription(
            f"{local.webhook_url}?secret={local.webhook_secret}"
        )
        bad = await local.acs.validate_subscription(
            local.webhook_url, headers={SECRET_HEADER: "x" * 32}
        )
        async with (
            aiohttp.ClientSession() as http,
            http.options(
                f"{local.webhook_url}?secret={local.webhook_secret}",
                headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
            ) as options,
        ):
            allowed = options.headers.get("WebHook-Allowed-Origin")
    assert (good.status, good.body) == (200, {"validationResponse": good.validation_code})
    assert by_query.status == 200
    assert bad.status == 401
    assert allowed == "eventgrid.azure.net"


async def test_webhook_rejects_malformed_bodies_and_goes_on() -> None:
    """Garbage gets a 400 or is skipped with a log; the service keeps answering calls."""
    async with stack() as local, aiohttp.ClientSession() as http:
        headers = {SECRET_HEADER: local.webhook_secret}
        json_headers = {**headers, "Content-Type": "application/json"}
        async with http.post(local.webhook_url, data="{nope", headers=json_headers) as response:
            assert response.status == 400
        async with http.post(local.webhook_url, json=[1, {"data": 5}], headers=headers) as r:
            assert r.status == 200
        call = await ended(await local.ring([Hangup(AfterAgentDone(pause_ms=100))]))
    assert call.outcome == "answered"


async def test_duplicate_delivery_answers_once_and_batches_answer_all() -> None:
    """Event Grid may deliver one IncomingCall twice, and several in one POST."""
    async with stack() as local:
        twice = await local.ring([Hangup(At(0.2))], deliveries=2)
        batch = [
            local.acs.incoming_call(to_number=DIALED_NUMBER, script=[Hangup(At(0.2))])
            for _ in range(2)
        ]
        await local.acs.deliver(
            local.webhook_url,
            [call.incoming_event for call in batch if call.incoming_event is not None],
            headers={SECRET_HEADER: local.webhook_secret},
        )
        calls = [await ended(call) for call in (twice, *batch)]
        answers = [op for op in local.acs.operations if op.name == "answer"]
    assert [call.outcome for call in calls] == ["answered"] * 3
    assert len(answers) == 3
    assert all(op.status == 200 for op in answers)


# --- Answer, media, conversation, hang-up -----------------------------------------------------


async def test_incoming_call_runs_the_whole_path_and_the_agent_hangs_up() -> None:
    """IncomingCall -> answer with media options -> callbacks -> conversation with a barge-in
    -> the agent's goodbye is heard in full -> end_call -> callbridge hangs up."""
    async with stack(profile=AgentProfile(tools=("end_call",), media_rate=24000)) as local:
        result = await local.call(BARGE_IN_SCRIPT, hangup_after_s=10)
    sim = result.acs
    assert sim is not None
    media = sim.request_body["mediaStreamingOptions"] if sim.request_body else {}
    assert media["audioFormat"] == "pcm24KMono"
    assert media["enableBidirectional"]
    assert media["startMediaStreaming"]
    assert media["enableDtmfTones"]
    assert media["audioChannelType"] == "mixed"
    # The call token is in the path: no Microsoft sample dials a transportUrl with a query.
    transport_url = urlsplit(media["transportUrl"])
    assert transport_url.query == ""
    assert transport_url.path.startswith("/ws/")
    assert media["transportUrl"].startswith("wss" + local.public_url.removeprefix("https") + "/ws/")
    assert sim.request_body is not None
    assert sim.request_body["callbackUri"].startswith(f"{local.public_url}/api/callbacks/")
    assert result.record.sample_rate == 24000
    assert all(callback.status == 200 for callback in sim.callbacks)
    assert sim.callback_names[:3] == [
        "ParticipantsUpdated",
        "CallConnected",
        "MediaStreamingStarted",
    ]
    report = result.report
    assert report.protocol_violations == []
    assert [
        b.truncation_error_ms is not None and b.truncation_error_ms <= 20 for b in report.barge_ins
    ] == [True]
    assert report.tool_calls == ["end_call"]
    # The goodbye played to its end before the hang-up.
    assert result.record.spurts[-1].end == "drained"
    assert sim.disconnect == "app_terminate"
    goodbye = result.record.spurts[-1]
    assert sim.ended_at is not None
    assert goodbye.ended_at is not None
    assert sim.ended_at >= goodbye.ended_at


async def test_prewarmed_voice_live_session_starts_before_media() -> None:
    """Voice Live starts connecting on the IncomingCall, before ACS opens the media socket."""
    async with stack() as local:
        result = await local.call([Hangup(AfterAgentDone(pause_ms=100))])
    setup = result.report.setup
    assert setup is not None
    assert setup.voice_live_head_start_ms is not None
    assert setup.voice_live_head_start_ms > 0
    assert result.report.first_audio_ms is not None


# --- Routing ----------------------------------------------------------------------------------


def two_profile_routing(*, redirect: bool) -> Routing:
    support = AgentProfile(name="support", greeting="Support here.")
    sales = AgentProfile(name="sales", greeting="Sales here.", media_rate=24000)
    return Routing(
        profiles={"support": support, "sales": sales},
        numbers={DIALED_NUMBER: "support", SALES: "sales"},
        default_profile=None,
        redirect_to=HUMAN if redirect else None,
    )


async def test_dialled_number_picks_the_profile_and_unknown_numbers_are_rejected() -> None:
    async with stack(routing=two_profile_routing(redirect=False)) as local:
        sales = await ended(await local.ring([Hangup(At(0.2))], to=SALES))
        unknown = await ended(await local.ring([Hangup(At(0.2))], to="+15555550199"))
        await asyncio.sleep(0.2)
    assert sales.outcome == "answered"
    assert sales.media is not None
    assert sales.media.sample_rate == 24000
    assert unknown.outcome == "rejected"
    assert local.emulator.session_for(unknown.correlation_id) is None


async def test_unknown_numbers_can_be_redirected() -> None:
    async with stack(routing=two_profile_routing(redirect=True)) as local:
        unknown = await ended(await local.ring([], to="+15555550199"))
    assert (unknown.outcome, unknown.redirect_target) == ("redirected", f"4:{HUMAN}")


async def test_calls_above_the_limit_are_rejected_as_busy() -> None:
    async with stack(max_calls=1) as local:
        first = await local.ring([Hangup(At(2.0))])
        # Its media socket is open: the first call now holds the one place.
        await first.wait_callback("MediaStreamingStarted", CALL_TIMEOUT_S)
        second = await ended(await local.ring([]))
        await ended(first)
    assert first.outcome == "answered"
    assert (second.outcome, second.reject_reason) == ("rejected", "busy")


# --- Outbound ---------------------------------------------------------------------------------


async def test_outbound_call_is_placed_and_bridged() -> None:
    """POST /api/calls dials from the configured number; the callee hears the agent."""
    async with stack() as local:
        sim = await ended(await local.dial(CALLEE, [Hangup(AfterAgentDone(pause_ms=100))]))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{local.base_url}/api/calls", json={"to": CALLEE}) as bare,
        ):
            unauthorized = bare.status
    assert sim.direction == "outbound"
    assert sim.outcome == "answered"
    assert sim.request_body is not None
    assert sim.request_body["sourceCallerIdNumber"]["value"] == local.acs.acs_number
    assert sim.media is not None
    assert sim.media.spurts[0].end == "drained"
    assert unauthorized == 401


# --- Tools and keypad -------------------------------------------------------------------------


async def test_transfer_hands_the_caller_over_after_the_agent_speaks() -> None:
    transfer = turn(700, 587, "Let me transfer you.", ToolCall("transfer_call", {}))
    profile = AgentProfile(tools=("transfer_call",), transfer_to=HUMAN)
    async with stack([GREETING, transfer], profile=profile) as local:
        result = await local.call([Say(LINE, AfterAgentDone(pause_ms=300))], hangup_after_s=10)
    sim = result.acs
    assert sim is not None
    assert (sim.transfer_target, sim.disconnect) == (f"4:{HUMAN}", "transfer")
    assert "CallTransferAccepted" in sim.callback_names
    assert result.record.spurts[-1].end == "drained"
    assert json.loads(result.session.tool_calls[0].output or "") == {"status": "transferred"}


async def test_failed_transfer_is_reported_to_the_model_and_the_call_goes_on() -> None:
    transfer = turn(500, 587, "Transferring.", ToolCall("transfer_call", {}))
    sorry = turn(500, 698, "Sorry, that did not work.")
    profile = AgentProfile(tools=("transfer_call",), transfer_to=HUMAN)
    async with stack([GREETING, transfer, sorry], profile=profile) as local:
        result = await local.call(
            [Say(LINE, AfterAgentDone(pause_ms=300)), Hangup(AfterAgentDone(pause_ms=2500))],
            fail_transfer=True,
        )
    sim = result.acs
    assert sim is not None
    assert "CallTransferFailed" in sim.callback_names
    assert sim.disconnect == "caller"
    # The agent was told and spoke again: greeting, "transferring", "sorry".
    assert [spurt.end for spurt in result.record.spurts] == ["drained"] * 3


async def test_user_tools_run_and_failures_go_back_to_the_model() -> None:
    """A working tool's result and a failing tool's error both reach the model; the call
    goes on and the caller hears the next turn."""
    lookup = turn(400, 440, "Let me check.", ToolCall("lookup_order", {"order_id": "42"}))
    broken = turn(400, 494, "Checking again.", ToolCall("broken_lookup", {"order_id": "7"}))
    done = turn(400, 523, "Here you go.")
    profile = AgentProfile(
        tools=("lookup_order", "broken_lookup"), tools_module="tests.agent_tools"
    )
    async with stack([lookup, broken, done], profile=profile) as local:
        result = await local.call([Hangup(AfterAgentDone(pause_ms=1500))])
    calls = result.session.tool_calls
    assert [call.name for call in calls] == ["lookup_order", "broken_lookup"]
    assert json.loads(calls[0].output or "") == {"order_id": "42", "status": "shipped"}
    assert "order service unreachable" in json.loads(calls[1].output or "")["error"]
    # All three turns were heard: the failure did not end the call.
    heard_ms = sum(spurt.played_ms for spurt in result.record.spurts)
    assert heard_ms == pytest.approx(1200, abs=80)
    assert result.report.protocol_violations == []


async def test_keypad_digits_reach_the_agent_as_user_input() -> None:
    script: list[Step] = [
        Dtmf("4", AfterAgentDone(pause_ms=200)),
        Dtmf("2", At(0.1)),
        Dtmf("#", At(0.2)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    # A short answer to the keypad input: the answer's length proves nothing here.
    async with stack([GREETING, turn(400, 523, "Order 42, got it.")]) as local:
        result = await local.call(script)
    assert [entry.text for entry in result.session.text_inputs] == [
        "(The caller pressed these keys on the phone keypad: 4 2 #)"
    ]
    assert len(result.record.spurts) == 2  # the agent answered the keypad input


# --- Authentication ---------------------------------------------------------------------------


async def test_media_socket_still_takes_the_token_in_the_query_and_says_it_is_deprecated() -> None:
    """The old transportUrl form (``/ws?token=``) is bridged for one more release, logged as
    deprecated."""
    async with stack() as local, aiohttp.ClientSession() as http:
        token = mint_call_token(local.signing_key, call_key="c1", profile="default")
        headers = {
            "Authorization": f"Bearer {local.acs.mint_token(lifetime_s=60)}",
            "x-ms-call-correlation-id": "c1",
        }
        with capture_logs() as logs:
            async with asyncio.timeout(10):
                ws = await http.ws_connect(f"{local.ws_url}?token={token}", headers=headers)
                await ws.close()
    assert [line["event"] for line in logs if line["event"].startswith("media.")] == [
        "media.deprecated_query_token"
    ]
    assert [line["log_level"] for line in logs if line["event"] == "call.media_connected"] == [
        "info"
    ]


async def test_media_socket_declines_compression() -> None:
    """A client offering permessage-deflate gets plain frames: deflating base64 audio saves
    about a fifth of its bytes for about 7 us of CPU per frame sent."""
    async with stack() as local, aiohttp.ClientSession() as http:
        token = mint_call_token(local.signing_key, call_key="c1", profile="default")
        headers = {
            "Authorization": f"Bearer {local.acs.mint_token(lifetime_s=60)}",
            "x-ms-call-correlation-id": "c1",
        }
        async with asyncio.timeout(10):
            ws = await http.ws_connect(
                f"{local.ws_url}?token={token}", headers=headers, compress=15
            )
            assert ws.compress == 0
            await ws.close()


async def test_a_session_update_voice_live_refuses_ends_the_call_after_the_fallback(
    fallback_profile: AgentProfile,
) -> None:
    """Voice Live answers session.update with an error: callbridge logs the offending field,
    says its fallback message and hangs up, instead of leaving the caller in silence."""
    local = stack(profile=fallback_profile)
    # azure-speech with gpt-realtime: start-up checks refuse this pair; the stack lets it
    # through, as an older callbridge or a changed service table would.
    local.transcription_model = "azure-speech"
    async with local:
        with capture_logs() as logs:
            # The caller would stay on the line far longer than callbridge's bound.
            sim = await ended(await local.ring([Hangup(At(CALL_TIMEOUT_S))]))
    rejected = [line for line in logs if line["event"] == "voice_live.session_rejected"]
    assert [line["param"] for line in rejected] == ["session.input_audio_transcription.model"]
    ending = [line for line in logs if line["event"] == "call.hanging_up"]
    assert [line["reason"] for line in ending] == ["voice_session_unavailable"]
    assert sim.disconnect == "app_terminate"
    assert sim.media is not None
    # No greeting from a broken session: the one thing heard is the fallback clip, whole.
    assert [spurt.played_ms for spurt in sim.media.spurts] == [pytest.approx(FALLBACK_MS, abs=20)]
    assert sim.media.closed_by == "network"  # ACS ended it, not the phone giving up


async def test_a_session_update_voice_live_never_answers_ends_the_call_after_a_bound(
    fallback_profile: AgentProfile,
) -> None:
    """No session.updated (a hung service): callbridge waits a bounded time, logs it, says its
    fallback message and hangs up, instead of leaving the caller in silence."""
    local = LocalStack(
        turns=TURNS,
        profile=fallback_profile,
        session_updated_delay_ms=None,
    )
    async with local:
        with capture_logs() as logs:
            # The caller would stay on the line far longer than callbridge's bound.
            sim = await ended(await local.ring([Hangup(At(CALL_TIMEOUT_S))]))
    unconfigured = [line for line in logs if line["event"] == "voice_live.session_not_configured"]
    assert [line["timeout_s"] for line in unconfigured] == [SESSION_CONFIGURED_TIMEOUT_S]
    ending = [line for line in logs if line["event"] == "call.hanging_up"]
    assert [line["reason"] for line in ending] == ["voice_session_unavailable"]
    assert sim.disconnect == "app_terminate"
    assert sim.media is not None
    assert [spurt.played_ms for spurt in sim.media.spurts] == [pytest.approx(FALLBACK_MS, abs=20)]


async def test_refused_media_socket_makes_acs_report_failure_and_the_call_is_ended() -> None:
    """ACS with a bad token: MediaStreamingFailed; callbridge hangs up, nothing bridged."""
    async with stack() as local:
        bad = local.acs.mint_token(issuer="https://issuer.invalid")
        sim = await ended(await local.ring([], media_token=bad))
    assert sim.media is None
    assert "MediaStreamingFailed" in sim.callback_names
    assert sim.disconnect == "app_terminate"
    # Answered at once: the call's pre-warmed session, never claimed, closed without waiting
    # out its time to live (the stand-in gives up on a callback after 5 s).
    assert [(c.name, c.status) for c in sim.callbacks if c.name == "MediaStreamingFailed"] == [
        ("MediaStreamingFailed", 200)
    ]


async def test_one_stack_runs_calls_with_their_own_profiles_and_turns() -> None:
    """Each call may bring its own agent profile and Voice Live script, even at once."""
    pcm16 = AgentProfile(audio_format="pcm16", media_rate=24000)
    short = [turn(300, 440, "Hi.")]
    longer = [turn(900, 523, "Hello there, welcome.")]
    async with stack() as local:
        first, second = await asyncio.gather(
            local.call([Hangup(AfterAgentDone(pause_ms=100))], turns=short),
            local.call([Hangup(AfterAgentDone(pause_ms=100))], turns=longer, profile=pcm16),
        )
    assert first.record.spurts[0].played_ms == pytest.approx(300, abs=25)
    assert second.record.spurts[0].played_ms == pytest.approx(900, abs=25)
    assert (first.record.sample_rate, second.record.sample_rate) == (16000, 24000)
    assert second.report.audio_format == "pcm16"
