"""The simulated caller against a stand-in bridge on loopback; its script runner and assets.

The stand-in bridge is a tiny aiohttp WebSocket server written here: it checks what the phone
sends with the project's own ACS parser and plays known audio back, with the key casings ACS
accepts. Each scenario is one real-time call, run once per module and shared by the tests that
read its record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import statistics
import time
import uuid
import wave
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from callbridge.assets import AGENT_LINES, CALLER_LINES, asset_path, read_wav, transcript
from callbridge.core import acs_media
from callbridge.sim.phone import CallRecord, Echo, Phone
from callbridge.sim.script import (
    FRAME_S,
    AfterAgentDone,
    AfterHeard,
    At,
    Clip,
    Dtmf,
    Hangup,
    Say,
    ScriptRunner,
)

DELAY_S = 0.060  # the phone's default playout delay
CALL_TIMEOUT_S = 10.0


# --- The stand-in bridge ----------------------------------------------------------------------

Agent = Callable[["FakeBridge", web.WebSocketResponse], Coroutine[Any, Any, None]]
"""The bridge's part of a scenario: what it sends on the socket, and when."""


@dataclass
class FakeBridge:
    """Records what the phone sends; ``agent`` plays the bridge's part on the socket."""

    agent: Agent
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[float, acs_media.InboundMessage]] = field(default_factory=list)
    speech: asyncio.Event = field(default_factory=asyncio.Event)
    speech_at: float | None = None
    sent_at: list[float] = field(default_factory=list)
    """When the agent sent each audio frame of its first spurt."""
    stop_at: float | None = None
    """When the agent sent its StopAudio."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.headers = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        agent = asyncio.create_task(self.agent(self, ws))
        async for msg in ws:
            at = time.monotonic()
            message = acs_media.parse(msg.data)
            self.received.append((at, message))
            if (
                isinstance(message, acs_media.AudioData)
                and not message.silent
                and not self.speech_at
            ):
                self.speech_at = at
                self.speech.set()
        agent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await agent
        return ws

    def audio(self) -> list[tuple[float, acs_media.AudioData]]:
        return [(t, m) for t, m in self.received if isinstance(m, acs_media.AudioData)]


async def call(agent: Agent, **options: Any) -> tuple[CallRecord, FakeBridge]:
    """Run one call between a Phone and a FakeBridge on 127.0.0.1."""
    bridge = FakeBridge(agent)
    app = web.Application()
    app.router.add_get("/ws", bridge.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        async with asyncio.timeout(CALL_TIMEOUT_S):
            record = await Phone(f"ws://127.0.0.1:{port}/ws?token=t", **options).run()
    finally:
        await runner.cleanup()
    return record, bridge


LAG_PROBE_S = 0.005
LAG_LIMIT_S = FRAME_S / 2  # the tests hold times to a frame: half of it is left for the machine
TIMED_ATTEMPTS = 5


async def _watch_loop_lag(worst: list[float]) -> None:
    """Keep in ``worst[0]`` the longest the event loop was late to wake a short sleep."""
    while True:
        asleep_at = time.monotonic()
        await asyncio.sleep(LAG_PROBE_S)
        worst[0] = max(worst[0], time.monotonic() - asleep_at - LAG_PROBE_S)


async def _call_watched(agent: Agent, **options: Any) -> tuple[CallRecord, FakeBridge, float]:
    worst = [0.0]
    watcher = asyncio.create_task(_watch_loop_lag(worst))
    try:
        record, bridge = await call(agent, **options)
    finally:
        watcher.cancel()
    return record, bridge, worst[0]


def timed_call(agent: Agent, **options: Any) -> tuple[CallRecord, FakeBridge]:
    """Run a call whose tests hold times to a frame, on a loop that kept time if it can.

    The phone and the stand-in bridge share one event loop, so a stall of the process (a busy
    CI machine, a collection) delays both and reads as bad pacing or a late barge-in. The
    scenario is run again while the loop was ever more than ``LAG_LIMIT_S`` late, up to
    ``TIMED_ATTEMPTS`` times, and the run whose loop was least late is the one tested.
    """
    runs = []
    for _ in range(TIMED_ATTEMPTS):
        record, bridge, lag = asyncio.run(_call_watched(agent, **options))
        runs.append((lag, record, bridge))
        if lag <= LAG_LIMIT_S:
            break
    _, record, bridge = min(runs, key=lambda run: run[0])
    return record, bridge


async def silent_agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
    """An agent that never speaks."""


def tone_frames(ms: int, rate: int, hz: float = 440.0) -> list[bytes]:
    pcm = Clip.tone(ms=ms, sample_rate=rate, hz=hz).pcm
    size = rate // 50 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def samples(clip: Clip) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.frombuffer(clip.pcm, dtype=np.int16)


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


# The casings ACS accepts: Python samples (PascalCase), JS (camelCase kind value), .NET extras.
def pascal_audio(pcm: bytes) -> str:
    return json.dumps({"Kind": "AudioData", "AudioData": {"Data": b64(pcm)}, "StopAudio": None})


def js_audio(pcm: bytes) -> str:
    return json.dumps({"kind": "audioData", "audioData": {"data": b64(pcm)}, "stopAudio": {}})


def dotnet_audio(pcm: bytes) -> str:
    body = {"Timestamp": None, "Data": b64(pcm), "Participant": None, "IsSilent": False}
    return json.dumps({"Kind": "AudioData", "AudioData": body, "StopAudio": None})


async def send_paced(ws: web.WebSocketResponse, messages: list[str], sent_at: list[float]) -> None:
    """Send 20 ms frames in real time, two frames ahead, on a deadline clock."""
    start = time.monotonic()
    for n, message in enumerate(messages):
        delay = start + max(0, n - 2) * FRAME_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at.append(time.monotonic())
        await ws.send_str(message)


# --- Scenario: the caller's side of the protocol ----------------------------------------------

LINE_MS = 210  # 10.5 frames: the last one is padded


@pytest.fixture(scope="module", params=[16000, 24000], ids=["16k", "24k"])
def protocol_call(request: pytest.FixtureRequest) -> tuple[CallRecord, FakeBridge]:
    """A quiet agent; the caller says a 210 ms line at 0.1 s and presses 5 at 0.4 s."""
    line = Clip.tone(ms=LINE_MS, sample_rate=16000, hz=300.0)
    script = [Say(line, At(0.1)), Dtmf("5", At(0.4))]
    return timed_call(
        silent_agent,
        sample_rate=request.param,
        script=script,
        hangup_after_s=0.2,
        call_connection_id="call-123",
        headers={"Authorization": "Bearer t0ken"},
    )


def test_phone_sends_acs_headers(protocol_call: tuple[CallRecord, FakeBridge]) -> None:
    """The upgrade carries the call ids and the extra headers, as ACS sends them."""
    record, bridge = protocol_call
    assert bridge.headers["x-ms-call-connection-id"] == "call-123"
    assert uuid.UUID(bridge.headers["x-ms-call-correlation-id"])
    assert bridge.headers["x-ms-call-correlation-id"] == record.correlation_id
    assert bridge.headers["Authorization"] == "Bearer t0ken"


def test_metadata_comes_first(protocol_call: tuple[CallRecord, FakeBridge]) -> None:
    """AudioMetadata is the first message and announces the call's rate and frame size."""
    record, bridge = protocol_call
    first = bridge.received[0][1]
    assert first == acs_media.AudioMetadata(
        sample_rate=record.sample_rate,
        channels=1,
        encoding="PCM",
        frame_bytes=record.sample_rate // 50 * 2,
        subscription_id=first.subscription_id
        if isinstance(first, acs_media.AudioMetadata)
        else None,
    )
    assert not any(isinstance(m, acs_media.AudioMetadata) for _, m in bridge.received[1:])


def test_frames_are_20ms_with_silent_flags(protocol_call: tuple[CallRecord, FakeBridge]) -> None:
    """Every frame is 20 ms; the line's frames carry it, padded, and the rest are silent zeros."""
    record, bridge = protocol_call
    frames = [m for _, m in bridge.audio()]
    size = record.sample_rate // 50 * 2
    assert {len(f.pcm) for f in frames} == {size}
    spoken = [i for i, f in enumerate(frames) if not f.silent]
    assert spoken == list(range(5, 16))  # At(0.1) is frame 5; 210 ms round up to 11 frames
    line = Clip.tone(ms=LINE_MS, sample_rate=16000, hz=300.0).at_rate(record.sample_rate)
    assert b"".join(frames[i].pcm for i in spoken) == line.ljust(11 * size, b"\0")
    assert all(f.pcm == bytes(size) for f in frames if f.silent)
    assert (record.frames_sent, record.silent_frames_sent) == (len(frames), len(frames) - 11)
    assert {f.participant_raw_id for f in frames} == {"4:+15555550100"}


def test_frames_flow_in_real_time(protocol_call: tuple[CallRecord, FakeBridge]) -> None:
    """Frames arrive on a 20 ms clock and carry timestamps 20 ms apart. (Shared machines are
    noisy: arrival times are held to a frame, the stamps exactly.)"""
    _, bridge = protocol_call
    audio = bridge.audio()
    span = audio[-1][0] - audio[0][0]
    assert span == pytest.approx((len(audio) - 1) * FRAME_S, abs=FRAME_S)
    stamps = [datetime.fromisoformat(m.timestamp or "") for _, m in audio]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(stamps)} == {0.02}


def test_dtmf_and_hangup(protocol_call: tuple[CallRecord, FakeBridge]) -> None:
    """The DTMF digit is sent with frame 20 (0.4 s) and the phone hangs up 0.2 s later."""
    record, bridge = protocol_call
    kinds = [type(m).__name__ for _, m in bridge.received]
    assert kinds.count("DtmfData") == 1
    assert kinds.index("DtmfData") == 1 + 20  # after the metadata and frames 0..19
    assert bridge.received[kinds.index("DtmfData")][1] == acs_media.DtmfData("5", "4:+15555550100")
    assert record.frames_sent == 30  # frames 0..29: hang-up at 0.4 s + 0.2 s
    assert (record.closed_by, record.close_code) == ("phone", 1000)
    assert record.bad_message_count == 0


# --- Scenario: barge-in -----------------------------------------------------------------------

BARGE_AT_MS = 400
VAD_DELAY_S = 0.100  # how long the stand-in bridge takes to react to the caller's speech
SPURT2_MS = 300
REPLY_PAUSE_MS = 300


async def barge_in_agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
    """1 s of tone paced in real time; StopAudio 100 ms after the caller speaks; then a burst."""
    frames = tone_frames(1000, 16000)
    messages = [pascal_audio(f) if n % 2 else js_audio(f) for n, f in enumerate(frames)]
    pacer = asyncio.create_task(send_paced(ws, messages, bridge.sent_at))
    await bridge.speech.wait()
    await asyncio.sleep(VAD_DELAY_S)
    pacer.cancel()
    bridge.stop_at = time.monotonic()
    await ws.send_str('{"kind":"stopAudio"}')
    await asyncio.sleep(0.3)
    for frame in tone_frames(SPURT2_MS, 16000, hz=660.0):  # all at once: an unpaced bridge
        await ws.send_str(dotnet_audio(frame))


@pytest.fixture(scope="module")
def barge_call() -> tuple[CallRecord, FakeBridge]:
    """The caller interrupts the first spurt at 400 ms heard, then answers the second."""
    script = [
        Say(Clip.tone(ms=200, sample_rate=16000, hz=200.0), AfterHeard(BARGE_AT_MS, spurt=1)),
        Say(Clip.tone(ms=200, sample_rate=16000, hz=250.0), AfterAgentDone(REPLY_PAUSE_MS)),
    ]
    return timed_call(barge_in_agent, script=script, hangup_after_s=0.2)


def test_after_heard_step_fires_at_the_heard_point(
    barge_call: tuple[CallRecord, FakeBridge],
) -> None:
    """The caller starts speaking once 400 ms of the spurt have played: at the phone's next
    frame, so up to a frame later (and a frame more for delivery on a busy machine)."""
    record, bridge = barge_call
    assert bridge.speech_at is not None
    heard_at = bridge.sent_at[0] + DELAY_S + BARGE_AT_MS / 1000  # the bridge's own clock
    assert 0.0 <= bridge.speech_at - heard_at < 2 * FRAME_S
    started = record.steps[0].started_at
    assert started is not None
    assert 0.0 <= started - (record.spurts[0].started_at + BARGE_AT_MS / 1000) < FRAME_S


def test_stop_audio_records_heard_and_discarded(barge_call: tuple[CallRecord, FakeBridge]) -> None:
    """The StopAudio's heard and discarded ms match the bridge's send times within a frame."""
    record, bridge = barge_call
    assert bridge.stop_at is not None
    [stop] = record.stops
    heard_ms = (bridge.stop_at - bridge.sent_at[0] - DELAY_S) * 1000
    assert stop.spurt == 1
    assert stop.heard_ms == pytest.approx(heard_ms, abs=20.0)
    assert stop.discarded_ms == pytest.approx(len(bridge.sent_at) * 20 - heard_ms, abs=20.0)
    spurt = record.spurts[0]
    assert (spurt.end, spurt.played_ms) == ("stopped", stop.heard_ms)
    assert spurt.received_ms == len(bridge.sent_at) * 20


def test_drained_spurt_is_complete(barge_call: tuple[CallRecord, FakeBridge]) -> None:
    """A burst that plays out ends drained, heard in full, after the playout delay."""
    record, _ = barge_call
    assert len(record.spurts) == 2
    spurt = record.spurts[1]
    assert (spurt.end, spurt.played_ms, spurt.underruns) == ("drained", SPURT2_MS, 0)
    assert spurt.started_at - spurt.arrivals[0].at == pytest.approx(DELAY_S, abs=1e-9)
    assert spurt.ended_at == pytest.approx(spurt.started_at + SPURT2_MS / 1000)
    assert record.first_audio_heard_at == record.spurts[0].started_at


def test_after_agent_done_waits_for_the_pause(barge_call: tuple[CallRecord, FakeBridge]) -> None:
    """The reply starts after the agent's spurt ended plus the pause, not much later (a frame,
    and one more for a busy machine)."""
    record, _ = barge_call
    started, ended = record.steps[1].started_at, record.spurts[1].ended_at
    assert started is not None
    assert ended is not None
    assert REPLY_PAUSE_MS / 1000 <= started - ended < REPLY_PAUSE_MS / 1000 + 2 * FRAME_S
    assert (record.closed_by, record.bad_message_count) == ("phone", 0)


def test_jitter_is_small_when_paced_and_large_when_burst(
    barge_call: tuple[CallRecord, FakeBridge],
) -> None:
    """Paced frames sit on the 20 ms grid; a burst shows up as frames far ahead of it."""
    record, _ = barge_call
    paced, burst = record.spurts[0].jitter_ms, record.spurts[1].jitter_ms
    # Paced frames stay within a frame of their slots even on a busy machine; the burst's
    # last frame is the whole spurt (less one frame and the 40 ms lead) ahead of its slot.
    assert statistics.median(paced) < 20.0
    assert max(burst) == pytest.approx(SPURT2_MS - 20 - 40, abs=20.0)
    assert max(burst) > 5 * statistics.median(paced)


def test_stereo_wav_holds_both_sides(
    barge_call: tuple[CallRecord, FakeBridge], tmp_path: Path
) -> None:
    """The WAV is stereo at the call's rate: the caller's lines left, the audio heard right."""
    record, _ = barge_call
    path = tmp_path / "call.wav"
    record.write_stereo_wav(path)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 16000)
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    duration = record.ws_closed_at - record.ws_opened_at
    assert len(stereo) == pytest.approx(duration * 16000, abs=0.02 * 16000)
    assert len(stereo) == max(len(record.caller_audio), len(record.heard_audio))
    left, right = stereo[:, 0], stereo[:, 1]
    for step, hz in zip(record.steps, (200.0, 250.0), strict=True):
        assert step.started_at is not None
        line = samples(Clip.tone(ms=200, sample_rate=16000, hz=hz))
        start = round((step.started_at - record.ws_opened_at) * 16000)
        assert np.array_equal(left[start : start + len(line)], line)
    heard_nonzero = 0
    for spurt, hz in zip(record.spurts, (440.0, 660.0), strict=True):
        tone = samples(Clip.tone(ms=1000, sample_rate=16000, hz=hz))
        start = round((spurt.started_at - record.ws_opened_at) * 16000)
        n = round(spurt.played_ms * 16) - 1  # rounding may move the last sample
        assert np.array_equal(right[start : start + n], tone[:n])
        heard_nonzero += int(np.count_nonzero(tone[:n]))
    assert np.count_nonzero(right) - heard_nonzero in (0, 1, 2)  # nothing else was heard


# --- Scenario: an irregular bridge ------------------------------------------------------------


async def irregular_agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
    """Bad messages, an underrun inside a spurt, a second spurt, a stray StopAudio, a close."""
    frames = tone_frames(100, 16000)
    await ws.send_str("not json")
    await ws.send_str('{"kind":"PlayTone"}')
    await ws.send_str('{"Kind":"AudioData","AudioData":{"Data":"***"}}')
    await ws.send_bytes(b"\x00\x01")
    start = time.monotonic()
    for frame in frames:  # plays 60..160 ms
        await ws.send_str(js_audio(frame))
    await asyncio.sleep(start + 0.200 - time.monotonic())
    for frame in frames:  # dry from 160 ms, resumes at 260: an underrun, same spurt
        await ws.send_str(pascal_audio(frame))
    await asyncio.sleep(start + 0.700 - time.monotonic())
    for frame in frames[:3]:  # 400 ms of silence: a new spurt
        await ws.send_str(dotnet_audio(frame))
    await asyncio.sleep(start + 1.000 - time.monotonic())
    await ws.send_str('{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}')  # nothing queued
    await ws.close(code=4001)


@pytest.fixture(scope="module")
def irregular_call() -> CallRecord:
    """A bridge that misbehaves, then closes the call itself."""
    record, _ = timed_call(irregular_agent, hangup_after_s=5.0)
    return record


def test_bad_messages_are_counted(irregular_call: CallRecord) -> None:
    """Bad JSON, an unknown kind, bad base64 and a binary frame each count once."""
    reasons = [bad.reason for bad in irregular_call.bad_messages]
    assert irregular_call.bad_message_count == 4
    assert reasons == [
        "not JSON",
        "unknown kind 'PlayTone'",
        "audioData.data is not base64",
        "binary frame",
    ]


def test_underrun_stays_within_the_spurt(irregular_call: CallRecord) -> None:
    """A short dry spell is an underrun of the spurt; a long silence starts a new spurt."""
    first, second = irregular_call.spurts
    assert (first.end, first.played_ms, first.underruns) == ("drained", 200, 1)
    assert (second.end, second.played_ms, second.underruns) == ("drained", 60, 0)
    # 5-frame bursts run 20 and 40 ms ahead of the grid, which re-anchors after the underrun
    # (the gap is not held against every later frame).
    assert first.jitter_ms[5] == 0.0
    assert max(first.jitter_ms) < 45.0
    assert len(irregular_call.arrivals) == 13


def test_stop_with_nothing_queued_cuts_nothing(irregular_call: CallRecord) -> None:
    """A StopAudio while the queue is empty names no spurt and discards nothing."""
    [stop] = irregular_call.stops
    assert (stop.spurt, stop.heard_ms, stop.discarded_ms) == (None, 0.0, 0.0)


def test_bridge_close_ends_the_call(irregular_call: CallRecord) -> None:
    """When the bridge closes the socket, the record says so with its close code."""
    assert (irregular_call.closed_by, irregular_call.close_code) == ("bridge", 4001)
    assert irregular_call.ws_closed_at - irregular_call.ws_opened_at < 2.0


def test_max_duration_bounds_a_call_that_never_ends() -> None:
    """A step waiting for agent audio that never comes is cut off by max_duration_s."""
    script = [Say(Clip.tone(ms=100, sample_rate=16000), AfterHeard(100))]
    record, _ = timed_call(silent_agent, script=script, max_duration_s=0.3)
    assert (record.closed_by, record.close_code) == ("timeout", 1000)
    assert record.ws_closed_at - record.ws_opened_at == pytest.approx(0.3, abs=0.05)
    assert record.steps[0].started_at is None
    assert record.silent_frames_sent == record.frames_sent


def test_hangup_step_ends_the_call_when_it_fires() -> None:
    """A Hangup step closes the socket at its frame, without waiting for hangup_after_s."""
    record, _ = asyncio.run(call(silent_agent, script=[Hangup(At(0.1))], hangup_after_s=5.0))
    assert (record.closed_by, record.close_code, record.frames_sent) == ("phone", 1000, 5)
    assert record.steps[0].started_at == pytest.approx(record.ws_opened_at + 0.1)


async def stalling_agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
    """Holds the whole process's loop for 50 ms, as a busy machine may."""
    time.sleep(0.050)  # noqa: ASYNC251 - blocking the loop is the point


def test_a_stalled_loop_is_seen_by_the_lag_watch() -> None:
    """What ``timed_call`` relies on: a stall of the shared loop is measured, to the frame."""
    _, _, lag = asyncio.run(_call_watched(stalling_agent, hangup_after_s=0.1))
    assert lag > FRAME_S


# --- Scenario: a speakerphone -----------------------------------------------------------------

ECHO = Echo(delay_ms=40, level_db=-6.0)
ECHO_LINE = Clip.tone(ms=100, sample_rate=16000, hz=300.0)


async def tone_agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
    """400 ms of tone, paced in real time; then quiet."""
    await send_paced(ws, [pascal_audio(f) for f in tone_frames(400, 16000)], bridge.sent_at)


@pytest.fixture(scope="module")
def echo_call() -> tuple[CallRecord, FakeBridge]:
    """The caller, on a speakerphone, says a 100 ms line at 0.3 s, over the tone's echo."""
    script = [Say(ECHO_LINE, At(0.3))]
    return asyncio.run(call(tone_agent, script=script, echo=ECHO, hangup_after_s=0.4))


def test_a_speakerphone_sends_its_line_over_the_echo(
    echo_call: tuple[CallRecord, FakeBridge],
) -> None:
    """Each frame sent is the line plus what the caller heard 40 ms before, 6 dB down, to the
    sample; the record holds exactly what was sent."""
    record, bridge = echo_call
    sent = np.frombuffer(b"".join(m.pcm for _, m in bridge.audio()), dtype="<i2")
    assert np.array_equal(sent, record.caller_audio)
    heard = np.zeros(len(sent), dtype=np.float64)
    heard[: len(record.heard_audio)] = record.heard_audio[: len(sent)]
    delay = 640  # 40 ms at 16 kHz
    expected = np.zeros(len(sent), dtype=np.int32)
    expected[delay:] = np.round(heard[:-delay] * ECHO.gain)
    expected[15 * 320 : 20 * 320] += samples(ECHO_LINE)  # At(0.3) is frame 15
    assert np.abs(expected).max() < 32768
    assert np.array_equal(sent, expected)
    assert np.count_nonzero(sent[: 15 * 320]) > 0.1 * 16000  # the echo alone, before the line


def test_a_frame_with_echo_is_not_marked_silent(
    echo_call: tuple[CallRecord, FakeBridge],
) -> None:
    """ACS marks a frame silent when it holds only silence: an echo alone is sound."""
    record, bridge = echo_call
    frames = [m for _, m in bridge.audio()]
    assert [f.silent for f in frames] == [not np.frombuffer(f.pcm, "<i2").any() for f in frames]
    voiced = [n for n, f in enumerate(frames) if not f.silent]
    assert len(voiced) > len(range(15, 20))  # more than the line's own frames
    assert record.silent_frames_sent == len(frames) - len(voiced)


# --- The script runner on its own -------------------------------------------------------------


@dataclass
class FakeEar:
    """What the script may read of the agent's audio, set by hand."""

    playing_until: float | None = None
    heard: dict[int, float] = field(default_factory=dict)

    def heard_ms(self, spurt: int, at: float) -> float:
        return self.heard.get(spurt, 0.0)


def test_after_agent_done_answers_only_a_turn_heard_after_arming() -> None:
    """A turn that ended before the step was armed does not count; the next one does."""
    line = Clip.tone(ms=40, sample_rate=16000)
    runner = ScriptRunner(
        [Say(line, At(0.0)), Say(line, AfterAgentDone(300))], sample_rate=16000, opened_at=100.0
    )
    ear = FakeEar(playing_until=100.01)  # the agent finished before the first line ended
    assert [runner.tick(t, ear).pcm is not None for t in (100.0, 100.02, 100.5)] == [
        True,
        True,
        False,
    ]
    assert runner.records[1].armed_at == pytest.approx(100.04)
    ear.playing_until = 101.0  # a later turn ends at 101 s
    assert runner.tick(101.28, ear).pcm is None
    assert runner.tick(101.30, ear).pcm == line.pcm[:640]
    assert runner.records[1].started_at == 101.30


# --- Assets -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lines() -> dict[str, Clip]:
    return {name: Clip.asset(name) for name in AGENT_LINES + CALLER_LINES}


def test_assets_are_16k_speech_of_the_expected_length(lines: dict[str, Clip]) -> None:
    """Every shipped line is 16 kHz mono speech of the planned length, with a transcript."""
    seconds = {name: clip.duration_ms / 1000 for name, clip in lines.items()}
    assert {clip.sample_rate for clip in lines.values()} == {16000}
    assert 2.5 < seconds["agent_01_greeting"] < 4.5
    assert 8.0 < seconds["agent_02_answer"] < 11.0
    assert seconds["caller_03_thanks"] < 2.5
    assert all(transcript(name) for name in lines)
    peak = max(abs(int(s)) for s in np.frombuffer(lines["caller_02_interrupt"].pcm, "<i2"))
    assert 0.6 < peak / 32768 < 0.75  # about -3 dBFS: loud enough for an energy VAD


def test_read_wav_rejects_stereo(tmp_path: Path) -> None:
    """read_wav refuses audio that is not mono PCM16, naming the problem."""
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(64))
    with pytest.raises(ValueError, match="mono 16-bit"):
        read_wav(path)
    assert read_wav(asset_path("caller_01_question"))[1] == 16000


# --- Playback marks (beta) -------------------------------------------------------------------


async def test_the_line_answers_marks_when_played_and_cancels_them_on_stop_audio() -> None:
    """A marked frame is answered completed when it has played on the line; one StopAudio
    dropped before it played is answered cancelled at once."""
    rate = 16000
    first, second = tone_frames(20, rate)[0], tone_frames(20, rate)[0]

    async def agent(bridge: FakeBridge, ws: web.WebSocketResponse) -> None:
        await ws.send_str(acs_media.marked_audio_data(b64(first), "m1"))
        bridge.sent_at.append(time.monotonic())
        await asyncio.sleep(0.2)  # m1 plays from +60 ms to +80 ms: answered by now
        for _ in range(20):  # 400 ms of unmarked audio, then a marked frame behind it
            await ws.send_str(acs_media.audio_data(second))
        await ws.send_str(acs_media.marked_audio_data(b64(second), "m2"))
        await asyncio.sleep(0.05)
        bridge.stop_at = time.monotonic()
        await ws.send_str(acs_media.STOP_AUDIO)

    record, bridge = await call(agent, sample_rate=rate, hangup_after_s=0.5)
    answers = [(answer.mark_id, answer.status) for answer in record.mark_answers]
    assert answers == [("m1", "completed"), ("m2", "cancelled")]
    marks = [m for _, m in bridge.received if isinstance(m, acs_media.MarkData)]
    assert marks == [
        acs_media.MarkData("m1", "completed"),
        acs_media.MarkData("m2", "cancelled"),
    ]
    m1, m2 = record.mark_answers
    # m1 finished playing a playout delay and one frame after it arrived.
    assert m1.at - bridge.sent_at[0] >= DELAY_S + FRAME_S
    assert bridge.stop_at is not None
    assert m2.at >= bridge.stop_at
    assert record.playout_delay_ms == DELAY_S * 1000
