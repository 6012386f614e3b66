"""Whole calls on loopback: IncomingCall -> answer -> media socket -> bridge -> Voice Live.

ACS and Voice Live are stand-ins reached through the real SDKs. The phone's playout record is the
ground truth of what the caller heard; the emulator's record is what the model was told. Neither
is the bridge's own view of itself.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from structlog.testing import capture_logs

from callbridge.core.profiles import AgentProfile, AudioFormat, MediaRate
from callbridge.core.settings import PacingSettings
from callbridge.sim.harness import CallResult, LocalStack
from callbridge.sim.script import AfterAgentDone, AfterHeard, At, Clip, Hangup, Say, Step
from tests.tone_calls import turn

TURN_RATE = 16000
GREETING_MS = 800
ANSWER_MS = 5000  # long enough to still be generating when an interruption 1 s in is decided
CALL_TIMEOUT_S = 30


TURNS = [
    turn(GREETING_MS, 440, "Hello, how can I help?"),
    turn(ANSWER_MS, 523, "Here is a long answer that the caller will interrupt."),
    turn(600, 659, "Sure."),
]
CALLER_LINE = Clip.tone(ms=700, sample_rate=TURN_RATE, hz=300, amplitude=0.5)


def stack(audio_format: AudioFormat = "g711_ulaw", media_rate: MediaRate = 16000) -> LocalStack:
    return LocalStack(
        turns=TURNS,
        caller_transcripts=["I have a question.", "Stop, please."],
        profile=AgentProfile(audio_format=audio_format, media_rate=media_rate),
        emulator_speed=2.0,
        response_delay_ms=150,
    )


async def place(local: LocalStack, script: list[Step]) -> CallResult:
    """A whole inbound call, rung through the webhook."""
    async with asyncio.timeout(CALL_TIMEOUT_S):
        return await local.call(script, max_duration_s=25)


async def test_greeting_is_heard_in_full() -> None:
    """The agent greets first and the caller hears all of it, paced, with nothing stopped."""
    async with stack() as local:
        result = await place(local, [Hangup(AfterAgentDone(pause_ms=200))])
    greeting = result.record.spurts[0]
    assert greeting.end == "drained"
    assert greeting.played_ms == pytest.approx(GREETING_MS, abs=25)
    assert result.record.stops == []
    assert result.report.first_audio_ms is not None
    assert result.report.protocol_violations == []
    assert result.session.truncations == []


@pytest.mark.parametrize(
    ("audio_format", "sample_rate"),
    [("g711_ulaw", 16000), ("g711_ulaw", 24000), ("pcm16", 16000), ("pcm16", 24000)],
)
async def test_barge_in_mid_sentence_truncates_to_what_was_heard(
    audio_format: AudioFormat, sample_rate: MediaRate
) -> None:
    """Cutting the answer 1 s in: StopAudio at once, then (the caller keeps talking: a real
    interruption) cancel and truncate within 20 ms of what was heard, no stale audio."""
    script: list[Step] = [
        Say(CALLER_LINE, AfterAgentDone(pause_ms=300)),
        Say(CALLER_LINE, AfterHeard(ms=1000, spurt=2)),
        Hangup(AfterAgentDone(pause_ms=200)),
    ]
    async with stack(audio_format, sample_rate) as local:
        result = await place(local, script)
    report = result.report
    assert result.record.sample_rate == sample_rate
    assert report.protocol_violations == []
    assert len(report.barge_ins) == 1
    barge_in = report.barge_ins[0]
    assert barge_in.audio_end_ms is not None
    assert barge_in.truncation_error_ms is not None
    assert barge_in.truncation_error_ms <= 20
    assert report.stale_audio_ms == 0
    # The answer was still being generated: the bridge cancelled it, and only once.
    answer = result.session.responses[1]
    assert answer.status == "cancelled"
    assert len(result.session.cancels) == 1
    assert [t.accepted for t in result.session.truncations] == [True]
    # The interrupted answer played no further, and the follow-up was heard after it.
    assert result.record.spurts[1].end == "stopped"
    assert result.record.spurts[2].end == "drained"


@pytest.mark.parametrize("marks", [True, False], ids=["marks", "no-marks"])
async def test_playback_marks_measure_a_playout_delay_the_configuration_got_wrong(
    marks: bool,
) -> None:
    """The line plays 150 ms later than CALLBRIDGE_PLAYOUT_DELAY_MS says. With ACS's playback
    marks the bridge measures the real delay and truncates to what was heard; without them it
    is off by the configuration's error."""
    script: list[Step] = [
        Say(CALLER_LINE, AfterAgentDone(pause_ms=300)),
        Say(CALLER_LINE, AfterHeard(ms=1000, spurt=2)),
        Hangup(AfterAgentDone(pause_ms=200)),
    ]
    pacing = PacingSettings(playout_delay_ms=60.0, acs_marks=marks)
    local = LocalStack(
        turns=TURNS,
        caller_transcripts=["I have a question.", "Stop, please."],
        profile=AgentProfile(),
        response_delay_ms=150,
        pacing=pacing,
        line_playout_delay_ms=210.0,
    )
    async with local:
        result = await place(local, script)
    [barge_in] = result.report.barge_ins
    playout = result.report.playout
    assert playout is not None
    assert barge_in.truncation_error_ms is not None
    if marks:
        assert playout.measured
        assert playout.marks_answered > 0
        assert playout.used_ms == pytest.approx(210, abs=20)
        assert barge_in.truncation_error_ms <= 20
    else:
        assert (playout.measured, playout.marks_answered, playout.used_ms) == (False, 0, 60.0)
        assert barge_in.truncation_error_ms == pytest.approx(150, abs=20)
    assert result.report.protocol_violations == []


async def test_speech_when_nothing_plays_sends_no_stop_and_no_truncate() -> None:
    """A caller speaking into silence is just a turn: no StopAudio, cancel or truncate."""
    script: list[Step] = [
        Say(CALLER_LINE, AfterAgentDone(pause_ms=400)),
        Hangup(AfterAgentDone(pause_ms=200)),
    ]
    async with stack() as local:
        result = await place(local, script)
    assert result.session.speech, "the emulator heard the caller"
    assert result.record.stops == []
    assert result.session.truncations == []
    assert result.session.cancels == []
    assert result.report.protocol_violations == []
    assert [s.end for s in result.record.spurts] == ["drained", "drained"]


async def test_voice_live_errors_and_malformed_events_do_not_end_the_call() -> None:
    """Errors and garbage from Voice Live are logged and skipped; greeting and answer play."""
    script: list[Step] = [
        Say(CALLER_LINE, AfterAgentDone(pause_ms=300)),
        Hangup(AfterAgentDone(pause_ms=200)),
    ]
    async with stack() as local:
        call = asyncio.create_task(place(local, script))
        session = await asyncio.wait_for(local.emulator.wait_for_session(0), 10)
        for raw in (
            "{not json",
            "[1, 2, 3]",
            json.dumps({"type": "response.audio.delta", "delta": 5, "item_id": 7}),
            json.dumps({"type": "no.such.event"}),
            json.dumps(
                {
                    "type": "error",
                    "event_id": "e1",
                    "error": {"type": "server_error", "message": "transient failure"},
                }
            ),
        ):
            await session.send_raw(raw)
        result = await call
    assert [s.end for s in result.record.spurts] == ["drained", "drained"]
    assert result.record.closed_by == "phone"


async def open_media_socket(
    local: LocalStack, http: aiohttp.ClientSession, connection_id: str, correlation_id: str
) -> aiohttp.ClientWebSocketResponse:
    """A media socket opened as ACS opens it, for a test to write frames by hand."""
    return await http.ws_connect(
        local.media_url(correlation_id),
        headers={
            "Authorization": f"Bearer {local.acs.mint_token(lifetime_s=60)}",
            "x-ms-call-connection-id": connection_id,
            "x-ms-call-correlation-id": correlation_id,
        },
    )


async def test_what_the_public_record_leaves_open_is_read_tolerantly() -> None:
    """Silence without its audio is forwarded as silence, a DTMF word is a key, and each
    unknown kind is logged once however often it comes: the call goes on."""
    async with stack() as local, aiohttp.ClientSession() as http:
        with capture_logs() as logs:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                ws = await open_media_socket(local, http, "tolerant-reader", "corr-tolerant")
                await ws.send_str(
                    '{"kind":"AudioMetadata","audioMetadata":{"sampleRate":16000,"channels":1}}'
                )
                for message in (
                    '{"kind":"AudioData","audioData":{"silent":true}}',
                    '{"Kind":"AudioData","AudioData":{"Data":"","Silent":true}}',
                    '{"kind":"TranscriptionData","transcriptionData":{}}',
                    '{"kind":"TranscriptionData","transcriptionData":{}}',
                    '{"kind":"DtmfMetadata","dtmfMetadata":{}}',
                    '{"kind":"DtmfData","dtmfData":{"data":"pound"}}',
                ):
                    await ws.send_str(message)
                await ws.close()  # the bridge reads what was sent before the close
                await local.bridge_summaries.get("tolerant-reader")
                await local.emulator.wait_all_closed()
    unknown = [line["kind"] for line in logs if line["event"] == "acs.unknown_frame"]
    assert unknown == ["TranscriptionData", "DtmfMetadata"]
    ended = next(line for line in logs if line["event"] == "call.ended")
    assert (ended["caller_frames"], ended["silent_frames"], ended["dtmf_digits"]) == (2, 2, 1)
    assert ended["malformed_media"] == 0
    session = local.emulator.sessions[0]
    appended = [e for e in session.events if e.type == "input_audio_buffer.append"]
    # Two frames of 8 kHz mu-law, 160 bytes each; silence before any turn goes as one append.
    assert [e.fields["audio_bytes"] for e in appended] == [320]


async def test_voice_live_closing_mid_call_is_replaced_and_the_call_goes_on() -> None:
    """When Voice Live closes the session, the bridge opens a new one for the same call, and
    the caller stays until they hang up."""
    async with stack() as local:
        call = asyncio.create_task(place(local, [Hangup(At(6))]))
        first = await asyncio.wait_for(local.emulator.wait_for_session(0), 10)
        await asyncio.sleep(0.5)
        await first.close()
        second = await asyncio.wait_for(local.emulator.wait_for_session(1), 5)
        result = await call
    assert second.client_request_id == first.client_request_id
    assert [e.type for e in second.events if e.direction == "received"][:1] == ["session.update"]
    assert result.acs is not None
    assert result.acs.disconnect == "caller"
    assert result.record.closed_by == "phone"


async def test_phone_sees_canonical_media_messages_only() -> None:
    """Every message the bridge sent parsed as canonical ACS media (the phone counts bad ones)."""
    async with stack() as local:
        result = await place(local, [Hangup(AfterAgentDone(pause_ms=100))])
    assert result.record.bad_message_count == 0
    assert result.report.pacing.frames > 0
