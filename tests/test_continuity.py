"""Calls that outlive their sockets: a Voice Live session that drops, hangs, freezes, refuses or
expires, an ACS media socket that drops or goes silent, and callbridge's fallback when no agent
can talk.

Faults are injected in the Voice Live emulator and the ACS stand-in; the phone's record (what
the caller heard) and the emulator's records (what each session was told) are the witnesses,
never the bridge.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import MutableMapping
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.assets import asset_path
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import ContinuitySettings
from callbridge.sim.acs import MediaDrop, MediaFault, MediaStall, SimCall
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.script import AfterAgentDone, At, Clip, Hangup, Say, Step
from callbridge.sim.voicelive import (
    AgentTurn,
    Drop,
    Expire,
    Fault,
    Freeze,
    Hang,
    Refuse,
    SlowAccept,
)
from callbridge.sim.voicelive.records import EmulatorSession
from tests.tone_calls import turn

RATE = 16000
GREETING_MS = 800
ANSWER_MS = 3000
CALL_TIMEOUT_S = 40
STALL_S = 1.0
"""A short stall bound keeps the tests quick; the logic is the same at the default 5 s."""


TURNS = [
    turn(GREETING_MS, 440, "Hello, how can I help?"),
    turn(ANSWER_MS, 523, "Your order left the warehouse on Monday and arrives on Friday."),
    turn(600, 659, "Sure."),
    turn(600, 698, "Anything else?"),
]
TRANSCRIPTS = ["Where is my order?", "Thanks.", "No."]
LINE = Clip.tone(ms=700, sample_rate=RATE, hz=300, amplitude=0.5)


def stack(continuity: ContinuitySettings | None = None, *, max_calls: int = 50) -> LocalStack:
    return LocalStack(
        turns=TURNS,
        caller_transcripts=TRANSCRIPTS,
        profile=AgentProfile(tools=()),
        continuity=continuity or ContinuitySettings(voice_live_stall_s=STALL_S),
        emulator_speed=2.0,
        response_delay_ms=150,
        max_calls=max_calls,
    )


async def call(
    local: LocalStack, script: list[Step], faults: list[Fault], turns: list[AgentTurn] = TURNS
) -> CallResult:
    async with asyncio.timeout(CALL_TIMEOUT_S):
        return await local.call(
            script,
            turns=turns,
            caller_transcripts=TRANSCRIPTS,
            faults=faults,
            max_duration_s=CALL_TIMEOUT_S - 5,
        )


def sessions(local: LocalStack, result: CallResult) -> list[EmulatorSession]:
    return list(local.emulator.sessions_for(result.record.correlation_id))


def replayed(session: EmulatorSession) -> list[tuple[str | None, str | None]]:
    return [(item.role, item.text) for item in session.client_items]


def clip_ms(name: str) -> float:
    with wave.open(str(asset_path(name)), "rb") as clip:
        frames: int = clip.getnframes()
        rate: int = clip.getframerate()
    return frames * 1000 / rate


# --- a session lost mid-call ------------------------------------------------------------------


async def test_a_drop_during_the_agents_answer_is_survived_with_the_models_memory() -> None:
    """Voice Live drops 1.5 s into the answer: the caller hears all the audio already
    received, a new session gets the conversation so far, and the next turn is answered."""
    script: list[Step] = [
        Say(LINE, AfterAgentDone(pause_ms=300)),
        Say(LINE, AfterAgentDone(pause_ms=500)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        result = await call(local, script, [Drop(during_response=1, after_audio_ms=1500)])
        first, second = sessions(local, result)
    assert [s.call_session_index for s in (first, second)] == [0, 1]
    assert len(first.greetings) + len(second.greetings) == 1  # greeted once
    # The answer's audio that reached the bridge was played, not cut: it drained.
    answer = result.record.spurts[1]
    assert answer.end == "drained"
    assert answer.played_ms >= 1500
    # The new session was told the conversation so far, the answer as far as it went.
    told = replayed(second)
    assert told[:2] == [("assistant", "Hello, how can I help?"), ("user", "Where is my order?")]
    role, text = told[2]
    assert role == "assistant"
    assert text is not None
    assert text.endswith(" —")
    assert "Your order" in text
    assert told[-1][0] == "system"
    # ... and answered the caller's next line.
    assert [r.turn_index for r in second.responses] == [2]
    assert len(result.record.spurts) == 3
    assert result.acs is not None
    assert result.acs.disconnect == "caller"


async def test_a_close_right_after_a_complete_reply_lets_the_caller_hear_all_of_it() -> None:
    """Voice Live closes cleanly once the answer is all sent, before ``response.audio.done``:
    the audio the bridge still held in part-frames is released, so the whole answer plays."""
    script: list[Step] = [
        Say(LINE, AfterAgentDone(pause_ms=300)),
        Hangup(AfterAgentDone(pause_ms=800)),
    ]
    close = Drop(during_response=1, after_audio_ms=ANSWER_MS - 10, close_code=1000)
    async with stack() as local:
        closed, undisturbed = await asyncio.gather(
            call(local, script, [close]), call(local, script, [])
        )
        first, _ = sessions(local, closed)
    assert first.responses[1].audio_ms_sent == first.responses[1].audio_ms_total
    answer = closed.record.spurts[1]
    assert answer.end == "drained"
    # As much as the same answer plays when nothing goes wrong.
    assert answer.played_ms == undisturbed.record.spurts[1].played_ms


async def test_a_drop_while_the_caller_speaks_loses_none_of_what_they_said() -> None:
    """The session drops while the caller is mid-sentence: the new session hears the whole
    sentence (the unanswered audio is resent) and answers it."""
    long_line = Clip.tone(ms=2000, sample_rate=RATE, hz=300, amplitude=0.5)
    script: list[Step] = [
        Say(long_line, AfterAgentDone(pause_ms=200)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        # The greeting ends about 1.2 s in; the caller speaks from about 1.4 s to 3.4 s.
        result = await call(local, script, [Drop(at_s=2.4)])
        first, second = sessions(local, result)
    assert first.speech == [] or first.speech[0].audio_end_ms is None  # cut before its end
    (heard,) = second.speech
    assert heard.audio_end_ms is not None
    assert heard.audio_end_ms - heard.onset_ms >= 1900  # the whole 2 s line
    assert [r.turn_index for r in second.responses] == [1]
    assert len(result.record.spurts) == 2


@pytest.mark.parametrize("fault", [Hang, Freeze], ids=["hang", "freeze"])
async def test_a_session_that_goes_silent_is_replaced_within_the_stall_bound(
    fault: type[Hang] | type[Freeze],
) -> None:
    """Voice Live stops sending (a hang answers pings, a freeze does not) just as the caller
    finishes a line: within the stall bound a new session answers it."""
    script: list[Step] = [
        Say(LINE, At(3.0)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        # The greeting is over by about 1.3 s; the session goes silent just before the line.
        with capture_logs() as logs:
            result = await call(local, script, [fault(at_s=2.8)])
        _, second = sessions(local, result)
    (lost,) = [line for line in logs if line["event"] == "voice_live.lost"]
    assert lost["reason"] in ("stalled", "closed")
    answer = result.record.spurts[1]
    said = result.record.steps[0]
    assert said.finished_at is not None
    silence_s = answer.started_at - said.finished_at
    assert silence_s < STALL_S + 3.0  # detection, reconnect, the model's reply
    assert [r.turn_index for r in second.responses] == [1]


# --- no agent at all: the fallback -------------------------------------------------------------


async def test_voice_live_refusing_every_session_gets_the_fallback_clip_then_a_hang_up() -> None:
    async with stack() as local:
        with capture_logs() as logs:
            sim = await local.ring_scripted(
                [Hangup(At(30))], TURNS, TRANSCRIPTS, faults=[Refuse(status=503, session=None)]
            )
            await sim.wait_ended(CALL_TIMEOUT_S)
            await local.bridge_summaries.get(sim.call_connection_id)
    assert sim.media is not None
    (spurt,) = sim.media.spurts
    assert spurt.played_ms == pytest.approx(clip_ms("fallback_goodbye"), abs=30)
    assert spurt.end == "drained"
    assert sim.disconnect == "app_terminate"
    (ended,) = [line for line in logs if line["event"] == "call.ended"]
    assert ended["ended_by"] == "voice_session_unavailable"


async def test_a_slow_voice_live_costs_one_bound_then_the_fallback_transfers() -> None:
    """Voice Live accepts only after 15 s: the caller hears the fallback clip once the
    reconnect budget is spent (one wait, not a pre-warm timeout and then a second connect),
    then is transferred."""
    profile = AgentProfile(tools=(), fallback_transfer_to="+18005550199")
    async with stack() as local:
        with capture_logs() as logs:
            sim = await local.ring_scripted(
                [Hangup(At(30))],
                TURNS,
                TRANSCRIPTS,
                to=local.add_profile(profile),
                faults=[SlowAccept(delay_ms=15_000, session=None)],
            )
            await sim.wait_ended(CALL_TIMEOUT_S)
            await local.bridge_summaries.get(sim.call_connection_id)
    assert sim.media is not None
    (spurt,) = sim.media.spurts
    assert spurt.played_ms == pytest.approx(clip_ms("fallback_transfer"), abs=30)
    assert spurt.started_at - sim.media.ws_opened_at < 5.0 + 1.5
    (ended,) = [line for line in logs if line["event"] == "call.ended"]
    assert ended["ended_by"] == "fallback_transfer"
    assert [op.name for op in sim.operations if op.name.startswith("transfer")] == [
        "transferToParticipant"
    ]


# --- a session near its expiry ---------------------------------------------------------------


async def test_a_session_near_its_expiry_is_rolled_over_at_a_quiet_moment() -> None:
    """The session expires 8 s in: a standby is prepared and swapped in while nobody talks;
    the caller's next line is answered by the new session, which greets nobody."""
    script: list[Step] = [
        Say(LINE, At(9.0)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        with capture_logs() as logs:
            result = await call(local, script, [Expire(after_s=8.0)])
        first, second = sessions(local, result)
    assert [line["kind"] for line in logs if line["event"] == "call.session_replaced"] == [
        "rollover"
    ]
    assert len(first.greetings) + len(second.greetings) == 1
    assert second.speech
    assert [r.turn_index for r in second.responses] == [1]
    assert first.is_closed
    assert replayed(second)[0] == ("assistant", "Hello, how can I help?")


async def test_a_session_that_expires_before_its_rollover_is_replaced_by_the_standby() -> None:
    """The session expires 6 s in while the agent's long answer plays (from about 3.5 s to
    9 s), so no moment comes to swap in the standby prepared for it (from about 4.5 s): the
    expired session is replaced by that standby, not by a third session."""
    long_answer = turn(6000, 523, "Let me read you the whole of your order, line by line.")
    turns = [TURNS[0], long_answer, *TURNS[2:]]
    script: list[Step] = [
        Say(LINE, At(2.0)),
        Say(LINE, AfterAgentDone(pause_ms=300)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        with capture_logs() as logs:
            result = await call(local, script, [Expire(after_s=6.0)], turns)
        calls = sessions(local, result)
    first, second = calls  # exactly two sessions: the standby was not wasted
    assert sum(len(s.greetings) for s in calls) == 1
    (lost,) = [line for line in logs if line["event"] == "voice_live.lost"]
    assert lost["reason"] == "expired"  # not swapped before it expired: replaced after
    (reconnected,) = [line for line in logs if line["event"] == "voice_live.reconnected"]
    assert reconnected["standby"] is True
    assert [r.turn_index for r in second.responses] == [2]  # the next line, answered
    assert replayed(second)[0] == ("assistant", "Hello, how can I help?")
    assert first.is_closed


# --- ACS's media socket lost mid-call ---------------------------------------------------------


async def media_call(
    local: LocalStack, script: list[Step], media_faults: list[MediaFault]
) -> tuple[SimCall, list[MutableMapping[str, Any]]]:
    with capture_logs() as logs:
        sim = await local.ring_scripted(
            script, TURNS, TRANSCRIPTS, media_faults=media_faults, max_duration_s=30
        )
        await sim.wait_ended(CALL_TIMEOUT_S)
        await local.bridge_summaries.get(sim.call_connection_id)  # the bridge has finished
    return sim, logs


async def test_a_media_socket_that_drops_and_rejoins_keeps_the_session_and_the_conversation() -> (
    None
):
    script: list[Step] = [
        Say(LINE, At(3.5)),
        Hangup(AfterAgentDone(pause_ms=300)),
    ]
    async with stack() as local:
        sim, logs = await media_call(local, script, [MediaDrop(at_s=2.0, rejoin_after_s=0.5)])
        calls = local.emulator.sessions_for(sim.correlation_id)
    assert sim.media is not None
    assert len(sim.media.sockets) == 2
    (session,) = calls  # one Voice Live session throughout
    assert len(session.greetings) == 1
    assert [r.turn_index for r in session.responses] == [0, 1]  # the line was answered
    assert [line["event"] for line in logs if line["event"] == "call.media_rejoined"]
    assert sim.disconnect == "caller"


async def test_a_media_socket_that_never_comes_back_ends_the_call_after_the_rejoin_window() -> None:
    continuity = ContinuitySettings(voice_live_stall_s=STALL_S, media_rejoin_s=1.5)
    async with stack(continuity) as local:
        sim, logs = await media_call(
            local, [Hangup(At(25))], [MediaDrop(at_s=2.0, rejoin_after_s=None)]
        )
    (ended,) = [line for line in logs if line["event"] == "call.ended"]
    assert ended["ended_by"] == "media_lost"
    assert sim.disconnect == "app_terminate"
    assert local.emulator.sessions_for(sim.correlation_id)[0].is_closed


async def test_a_media_socket_gone_silent_is_closed_and_the_call_ended() -> None:
    """ACS stops sending frames without closing: after media_stall_s the socket is closed as
    dead; no new one comes, so the call is hung up after the rejoin window."""
    continuity = ContinuitySettings(
        voice_live_stall_s=STALL_S, media_stall_s=1.0, media_rejoin_s=1.0
    )
    async with stack(continuity) as local:
        sim, logs = await media_call(local, [Hangup(At(25))], [MediaStall(at_s=2.0, for_s=None)])
    events = [line["event"] for line in logs]
    assert "acs.media_stalled" in events
    (ended,) = [line for line in logs if line["event"] == "call.ended"]
    assert ended["ended_by"] == "media_lost"
    assert sim.disconnect == "app_terminate"


async def until_logged(logs: list[MutableMapping[str, Any]], event: str) -> None:
    """Until the bridge has logged ``event`` (to time a probe; outcomes come from elsewhere)."""
    async with asyncio.timeout(CALL_TIMEOUT_S):
        while not any(line["event"] == event for line in logs):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_call_holds_one_slot_while_its_media_rejoins_and_after() -> None:
    """With room for two calls, a call whose media socket drops and rejoins counts once,
    while it waits and once rejoined: a second call is answered alongside it."""
    async with stack(max_calls=2) as local, aiohttp.ClientSession() as http:

        async def readiness() -> dict[str, Any]:
            async with http.get(f"{local.base_url}/readyz") as response:
                body: dict[str, Any] = await response.json()
                return body

        with capture_logs() as logs:
            first = await local.ring_scripted(
                [Hangup(At(8.0))],
                TURNS,
                TRANSCRIPTS,
                media_faults=[MediaDrop(at_s=2.0, rejoin_after_s=1.5)],
                max_duration_s=30,
            )
            await until_logged(logs, "call.media_lost")
            waiting = await readiness()
            await until_logged(logs, "call.media_rejoined")
            rejoined = await readiness()
            second = await local.ring_scripted([Hangup(At(1.0))], TURNS, TRANSCRIPTS)
            await second.wait_ended(CALL_TIMEOUT_S)
            await first.wait_ended(CALL_TIMEOUT_S)
    assert waiting == {"calls": 1, "max_calls": 2, "status": "ready"}
    assert rejoined == {"calls": 1, "max_calls": 2, "status": "ready"}
    assert second.outcome == "answered"
    assert first.media is not None
    assert len(first.media.sockets) == 2
    assert first.disconnect == "caller"
