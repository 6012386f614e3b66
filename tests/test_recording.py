"""Call recordings: written as the call goes, closed atomically, readable after a crash."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import shutil
import struct
import wave
from pathlib import Path

import pytest
from azure.ai.voicelive.models import ServerEventResponseAudioDelta
from structlog.testing import capture_logs

from callbridge import __version__
from callbridge.adapters.recording import (
    CALLER_SYNC_TOLERANCE_S,
    FLUSH_INTERVAL_S,
    PARTIAL_SUFFIX,
    AgentAudioRecord,
    BargeInRecord,
    CallerAudioRecord,
    CallRecorder,
    DtmfRecord,
    EventRecord,
    StopAudioRecord,
    ToolCallRecord,
    ToolResultRecord,
    TranscriptRecord,
    read_recording,
)
from callbridge.core.codec import FRAME_MS
from callbridge.core.pacing import OutFrame, PacerCore
from callbridge.core.profiles import AgentProfile
from callbridge.sim.harness import LocalStack
from tests.tone_calls import BARGE_IN_SCRIPT, CALLER_TRANSCRIPTS, TURNS

RATE = 16000
FRAME_S = FRAME_MS / 1000
FRAME_BYTES = RATE * 2 * FRAME_MS // 1000
T0 = 5000.0
CALL_ID = "4c1f0b00-7a2e-4d4e-9d55-0123456789ab"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_recorder(
    root: Path, clock: FakeClock, *, rate: int = RATE, call_id: str = CALL_ID
) -> CallRecorder:
    return CallRecorder(
        root,
        call_connection_id=call_id,
        correlation_id="corr-123",
        profile="support",
        sample_rate=rate,
        audio_format="g711_ulaw",
        extra={"playout_delay_ms": 60, "lead_ms": 40},
        clock=clock,
    )


def frame(n: int, nbytes: int = FRAME_BYTES) -> bytes:
    """A frame whose samples identify it."""
    return struct.pack("<h", n % 30000) * (nbytes // 2)


def simulate_call(rec: CallRecorder, clock: FakeClock) -> tuple[bytes, bytes]:
    """Two seconds of a call with every kind of line; returns (caller PCM, agent PCM)."""
    caller: list[bytes] = []
    agent: list[bytes] = []
    rec.event("acs", "AudioMetadata", sample_rate=RATE, channels=1)
    for n in range(100):
        pcm = frame(n)
        caller.append(pcm)
        rec.caller_audio(pcm, silent=not 40 <= n < 70)
        if n == 5:
            rec.dtmf("4")
            rec.dtmf("#")
        if 10 <= n < 50:
            out = frame(1000 + n)
            agent.append(out)
            item = "item_a" if n < 30 else "item_b"
            rec.agent_audio(out, item_id=item, content_index=0, response_id="resp_1")
        if n == 45:
            rec.event("voice_live", "input_audio_buffer.speech_started", audio_start_ms=880)
            rec.stop_audio()
            rec.barge_in(
                item_id="item_b",
                heard_ms=231.5,
                audio_end_ms=230,
                received_ms=400.0,
                cancelled_response=True,
            )
        if n == 80:
            rec.transcript("caller", "item_c", "Where is my order?")
            rec.tool_call(name="lookup_order", call_id="call_1", arguments='{"order_id": "42"}')
        if n == 85:
            rec.tool_result(name="lookup_order", call_id="call_1", output='{"status": "shipped"}')
            rec.transcript("agent", "item_a", "Hello, how can I help?")
        clock.now += FRAME_S
    return b"".join(caller), b"".join(agent)


def only_child(root: Path) -> Path:
    children = list(root.iterdir())
    assert len(children) == 1, children
    return children[0]


class TestRoundTrip:
    def test_a_closed_call_reads_back_whole(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        caller, agent = simulate_call(rec, clock)
        path = rec.close()

        got = read_recording(path)
        assert not got.partial
        assert got.caller_pcm == caller
        assert got.agent_pcm == agent
        times = [record.t for record in got.records]
        assert times == sorted(times)
        assert times[0] == 0.0
        assert times[-1] == pytest.approx(100 * FRAME_S)

        assert got.of(DtmfRecord) == [DtmfRecord(5 * FRAME_S, "4"), DtmfRecord(5 * FRAME_S, "#")]
        assert got.of(BargeInRecord) == [
            BargeInRecord(45 * FRAME_S, "item_b", 0, 231.5, 230, 400.0, cancelled_response=True)
        ]
        assert got.of(StopAudioRecord) == [StopAudioRecord(45 * FRAME_S, 36 * FRAME_BYTES)]
        assert got.of(ToolCallRecord) == [
            ToolCallRecord(80 * FRAME_S, "lookup_order", "call_1", '{"order_id": "42"}')
        ]
        assert got.of(ToolResultRecord) == [
            ToolResultRecord(85 * FRAME_S, "lookup_order", "call_1", '{"status": "shipped"}')
        ]
        assert [(r.speaker, r.item_id, r.text) for r in got.of(TranscriptRecord)] == [
            ("caller", "item_c", "Where is my order?"),
            ("agent", "item_a", "Hello, how can I help?"),
        ]
        events = got.of(EventRecord)
        assert [e.kind for e in events] == [
            "AudioMetadata",
            "input_audio_buffer.speech_started",
            "recording_closed",
        ]
        assert events[0].side == "acs"
        assert events[0].fields == {"sample_rate": RATE, "channels": 1}
        assert events[-1].fields == {"caller_bytes": len(caller), "agent_bytes": len(agent)}

    def test_meta_names_the_call_and_is_finalised(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        caller, agent = simulate_call(rec, clock)
        meta = read_recording(rec.close()).meta

        assert meta["call_connection_id"] == CALL_ID
        assert meta["correlation_id"] == "corr-123"
        assert meta["profile"] == "support"
        assert meta["sample_rate"] == RATE
        assert meta["audio_format"] == "g711_ulaw"
        assert meta["callbridge_version"] == __version__
        assert meta["monotonic_start"] == T0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", meta["started_at"])
        assert meta["extra"] == {"playout_delay_ms": 60, "lead_ms": 40}
        assert meta["complete"] is True
        assert meta["duration_s"] == pytest.approx(2.0)
        assert meta["caller_bytes"] == len(caller)
        assert meta["agent_bytes"] == len(agent)
        assert meta["caller_ms"] == pytest.approx(2000.0)
        assert meta["counts"]["dtmf"] == 2
        assert meta["counts"]["barge_in"] == 1

    def test_agent_audio_comes_back_per_item(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        _, agent = simulate_call(rec, clock)
        got = read_recording(rec.close())

        assert got.agent_item_pcm("item_a") == agent[: 20 * FRAME_BYTES]
        assert got.agent_item_pcm("item_b") == agent[20 * FRAME_BYTES :]
        spans = got.of(AgentAudioRecord)
        # item_a; item_b on the same grid; item_b again after StopAudio.
        assert [(s.item_id, s.offset, s.length) for s in spans] == [
            ("item_a", 0, 20 * FRAME_BYTES),
            ("item_b", 20 * FRAME_BYTES, 16 * FRAME_BYTES),
            ("item_b", 36 * FRAME_BYTES, 4 * FRAME_BYTES),
        ]
        assert {s.response_id for s in spans} == {"resp_1"}


class TestTiming:
    def test_caller_spans_place_every_frame_within_the_tolerance(self, tmp_path: Path) -> None:
        """Jittered arrivals, a stall and a burst: few lines, every frame's time recovered."""
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        rng = random.Random(7)
        arrivals: list[float] = []
        for n in range(500):
            at = T0 + n * FRAME_S + rng.uniform(0.0, 0.008)
            if n >= 200:
                at += 0.3  # the network stalled: frames 200.. come late
            if 200 <= n < 215:
                at = T0 + 215 * FRAME_S + 0.3  # ... and the first ones all at once
            arrivals.append(max(at, arrivals[-1] if arrivals else at))
        for n, at in enumerate(arrivals):
            clock.now = at
            rec.caller_audio(frame(n), silent=n % 100 < 50)
        got = read_recording(rec.close())

        frames = list(got.caller_frames())
        assert [f.pcm for f in frames] == [frame(n) for n in range(500)]
        assert [f.silent for f in frames] == [n % 100 < 50 for n in range(500)]
        for f, at in zip(frames, arrivals, strict=True):
            assert f.t == pytest.approx(at - T0, abs=CALLER_SYNC_TOLERANCE_S + 1e-6)
        spans = got.of(CallerAudioRecord)
        # The first frame, 9 silence flips, the stall, and one line per 2 frames of the burst.
        assert len(spans) <= 1 + 9 + 1 + 8

    def test_frames_delivered_in_pairs_write_one_line(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        for n in range(1000):
            clock.now = T0 + (n // 2) * 2 * FRAME_S
            rec.caller_audio(frame(n), silent=False)
        got = read_recording(rec.close())
        assert len(got.of(CallerAudioRecord)) == 1

    def test_steady_caller_audio_writes_one_line(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        for n in range(3000):
            rec.caller_audio(frame(n), silent=False)
            clock.now += FRAME_S
        got = read_recording(rec.close())
        assert got.of(CallerAudioRecord) == [
            CallerAudioRecord(0.0, 0, silent=False, frame_bytes=FRAME_BYTES, length=3000 * 640)
        ]

    def test_agent_spans_follow_the_pacer_grid(self, tmp_path: Path) -> None:
        """Frames released early (the lead) keep the grid; a new spurt starts a new span."""
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        pcm = {f"{item}:{n}": frame(n) for item in "abc" for n in range(10)}

        def play(start: float) -> None:
            now = start
            while True:
                clock.now = now
                out, wake = core.poll(now)
                for f in out:
                    rec.agent_audio(pcm[f.message], item_id=f.key[0], content_index=f.key[1])
                if wake is None:
                    return
                now = wake

        for item in "ab":
            for n in range(10):
                core.push(OutFrame((item, 0), FRAME_MS, f"{item}:{n}"))
        play(T0 + 1.0)
        for n in range(10):
            core.push(OutFrame(("c", 0), FRAME_MS, f"c:{n}"))
        play(T0 + 3.0)
        spans = read_recording(rec.close()).of(AgentAudioRecord)

        assert [(s.item_id, s.offset) for s in spans] == [
            ("a", 0),
            ("b", 10 * FRAME_BYTES),
            ("c", 20 * FRAME_BYTES),
        ]
        assert spans[0].start == pytest.approx(1.0)
        # b's first frame left 40 ms early (t) but was due right after a's last (start).
        assert spans[1].t == pytest.approx(1.0 + 8 * FRAME_S)
        assert spans[1].start == pytest.approx(1.0 + 10 * FRAME_S)
        assert spans[2].start == pytest.approx(3.0)

    def test_stop_audio_starts_a_new_agent_span_at_once(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        for n in range(5):
            rec.agent_audio(frame(n), item_id="a", content_index=0)
        clock.now += 0.05
        rec.stop_audio()
        rec.agent_audio(frame(9), item_id="a", content_index=0)
        spans = read_recording(rec.close()).of(AgentAudioRecord)
        assert [(s.start, s.offset, s.length) for s in spans] == [
            (0.0, 0, 5 * FRAME_BYTES),
            (pytest.approx(0.05), 5 * FRAME_BYTES, FRAME_BYTES),
        ]


class TestClosing:
    def test_close_renames_the_partial_folder_in_one_step(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        simulate_call(rec, clock)
        partial = only_child(tmp_path)
        assert partial.name.endswith(PARTIAL_SUFFIX)
        assert partial == rec.path
        assert CALL_ID in partial.name

        final = rec.close()
        assert only_child(tmp_path) == final == rec.path
        assert final.name == partial.name.removesuffix(PARTIAL_SUFFIX)
        assert sorted(p.name for p in final.iterdir()) == [
            "agent.wav",
            "caller.wav",
            "meta.json",
            "timeline.jsonl",
        ]

    def test_close_twice_is_harmless_and_later_calls_do_nothing(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        caller, _ = simulate_call(rec, clock)
        final = rec.close()
        before = {p.name: p.read_bytes() for p in final.iterdir()}

        assert rec.close() == final
        rec.caller_audio(frame(1), silent=False)
        rec.agent_audio(frame(1), item_id="x", content_index=0)
        rec.event("bridge", "late")
        rec.dtmf("1")
        assert not rec.active
        assert {p.name: p.read_bytes() for p in final.iterdir()} == before
        assert read_recording(final).caller_pcm == caller

    def test_the_context_manager_closes(self, tmp_path: Path) -> None:
        clock = FakeClock()
        with make_recorder(tmp_path, clock) as rec:
            rec.caller_audio(frame(0), silent=False)
        assert not rec.path.name.endswith(PARTIAL_SUFFIX)
        assert not read_recording(rec.path).partial

    async def test_aclose_closes_off_the_event_loop(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        rec.caller_audio(frame(0), silent=False)
        final = await rec.aclose()
        assert final == only_child(tmp_path)
        assert read_recording(final).caller_pcm == frame(0)

    def test_two_recordings_of_one_call_get_two_folders(self, tmp_path: Path) -> None:
        clock = FakeClock()
        first = make_recorder(tmp_path, clock)
        second = make_recorder(tmp_path, clock)
        assert first.path != second.path
        paths = {first.close(), second.close()}
        assert paths == set(tmp_path.iterdir())
        assert len(paths) == 2

    def test_unsafe_characters_in_the_call_id_stay_out_of_the_path(self, tmp_path: Path) -> None:
        rec = make_recorder(tmp_path, FakeClock(), call_id="../a/b c")
        final = rec.close()
        assert final.parent == tmp_path
        assert final.name.endswith("Z____a_b_c")
        assert read_recording(final).meta["call_connection_id"] == "../a/b c"


class TestCrash:
    def test_an_abandoned_recording_is_readable_up_to_its_last_flush(self, tmp_path: Path) -> None:
        """What a killed process leaves: the files as last flushed, the last line torn."""
        clock = FakeClock()
        rec = make_recorder(tmp_path / "live", clock)
        frames_before_flush = round(FLUSH_INTERVAL_S / FRAME_S) + 1
        for n in range(frames_before_flush + 10):
            rec.caller_audio(frame(n), silent=n >= 20)
            rec.agent_audio(frame(n + 500), item_id="item_a", content_index=0)
            if n == 3:
                rec.transcript("caller", "item_x", "Hi")
                rec.dtmf("7")
            clock.now += FRAME_S
        crashed = tmp_path / "crashed" / rec.path.name
        shutil.copytree(rec.path, crashed)  # the disk at the moment of the crash
        timeline = crashed / "timeline.jsonl"
        lines = timeline.read_bytes().splitlines(keepends=True)
        assert len(lines) == 5  # caller, agent, transcript, dtmf, caller (silent from 20)
        timeline.write_bytes(b"".join(lines[:-1]) + lines[-1][:9])

        got = read_recording(crashed)
        assert got.partial
        assert got.meta["complete"] is False
        assert got.meta["call_connection_id"] == CALL_ID
        assert got.caller_pcm == b"".join(frame(n) for n in range(frames_before_flush))
        # The flush came with caller frame 25, before agent frame 25 was sent.
        agent_frames = frames_before_flush - 1
        assert got.agent_pcm == b"".join(frame(n + 500) for n in range(agent_frames))
        assert [type(r) for r in got.records] == [
            CallerAudioRecord,
            AgentAudioRecord,
            TranscriptRecord,
            DtmfRecord,
        ]
        assert got.of(CallerAudioRecord)[0].length == len(got.caller_pcm)
        with wave.open(str(crashed / "caller.wav"), "rb") as wav:
            assert wav.getframerate() == RATE
            assert wav.readframes(wav.getnframes()) == got.caller_pcm
        rec.close()

    def test_a_recording_killed_before_any_flush_is_still_readable(self, tmp_path: Path) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path / "live", clock)
        rec.caller_audio(frame(0), silent=False)
        crashed = tmp_path / "crashed"
        shutil.copytree(rec.path, crashed)
        got = read_recording(crashed)
        assert got.partial
        assert got.records == ()
        assert got.caller_pcm == b""
        rec.close()

    def test_a_torn_line_in_a_closed_recording_is_an_error(self, tmp_path: Path) -> None:
        rec = make_recorder(tmp_path, FakeClock())
        rec.dtmf("1")
        final = rec.close()
        timeline = final / "timeline.jsonl"
        timeline.write_bytes(timeline.read_bytes()[:-4])
        with pytest.raises(ValueError, match="incomplete"):
            read_recording(final)

    def test_a_failing_disk_stops_the_recording_not_the_call(self, tmp_path: Path) -> None:
        class FullDisk(io.BytesIO):
            def write(self, data: object, /) -> int:
                raise OSError(28, "No space left on device")

        clock = FakeClock()
        rec = make_recorder(tmp_path, clock)
        rec.caller_audio(frame(0), silent=False)
        rec._caller.close()
        rec._caller = FullDisk()
        with capture_logs() as logs:
            for n in range(1, 5):
                rec.caller_audio(frame(n), silent=False)
                rec.agent_audio(frame(n), item_id="a", content_index=0)
                rec.event("bridge", "still.going")
        assert not rec.active
        assert [entry["event"] for entry in logs] == ["recording.failed"]
        path = rec.close()
        assert path.name.endswith(PARTIAL_SUFFIX)
        assert read_recording(path).partial


class TestNoAudioInTheTimeline:
    def test_base64_and_bytes_are_omitted_from_events(self, tmp_path: Path) -> None:
        rec = make_recorder(tmp_path, FakeClock())
        pcm = frame(3)
        ulaw = bytes(range(160))
        delta = ServerEventResponseAudioDelta(  # as the SDK decodes it off the wire
            {
                "type": "response.audio.delta",
                "event_id": "event_1",
                "response_id": "resp_1",
                "item_id": "item_a",
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(ulaw).decode(),
            }
        )
        rec.event("voice_live", "response.audio.delta", **delta)
        rec.event("voice_live", "received", event=delta)
        rec.event("bridge", "input_audio_buffer.append", audio=base64.b64encode(b"tiny").decode())
        acs = {"kind": "AudioData", "audioData": {"data": base64.b64encode(pcm).decode()}}
        rec.event("acs", "AudioData", message=acs)
        rec.event("acs", "short", message={"AudioData": {"Data": "AAAA", "silent": True}})
        rec.event("bridge", "raw", pcm=pcm, chunks=[pcm, memoryview(pcm)])
        rec.event("bridge", "blob", value=base64.b64encode(pcm * 3).decode())
        rec.event("voice_live", "response.audio_transcript.delta", delta="Okay")
        rec.event("bridge", "numbers", ratio=float("nan"), ids=("a", "b"))
        rec.tool_call(name="lookup", call_id="c1", arguments='{"order_id": "A1"}')
        final = rec.close()

        text = (final / "timeline.jsonl").read_text(encoding="utf-8")
        assert not re.search(r"[A-Za-z0-9+/]{24,}={0,2}", text)
        fields = {e.kind: e.fields for e in read_recording(final).of(EventRecord)}
        assert fields["response.audio.delta"]["delta"] == {"omitted_base64_chars": 216}
        assert fields["response.audio.delta"]["item_id"] == "item_a"
        assert fields["received"]["event"]["delta"] == {"omitted_base64_chars": 216}
        assert fields["input_audio_buffer.append"]["audio"] == {"omitted_base64_chars": 8}
        assert fields["AudioData"]["message"]["audioData"]["data"] == {"omitted_base64_chars": 856}
        assert fields["short"]["message"]["AudioData"] == {
            "Data": {"omitted_base64_chars": 4},
            "silent": True,
        }
        assert fields["raw"] == {
            "pcm": {"omitted_bytes": 640},
            "chunks": [{"omitted_bytes": 640}, {"omitted_bytes": 640}],
        }
        assert fields["blob"]["value"] == {"omitted_base64_chars": 2560}
        assert fields["response.audio_transcript.delta"]["delta"] == "Okay"
        assert fields["numbers"] == {"ratio": None, "ids": ["a", "b"]}

    def test_reserved_field_names_are_refused(self, tmp_path: Path) -> None:
        rec = make_recorder(tmp_path, FakeClock())
        with pytest.raises(ValueError, match="reserved"):
            rec.event("bridge", "x", t=1.0)
        rec.close()


class TestWav:
    @pytest.mark.parametrize("rate", [16000, 24000])
    def test_wav_files_are_valid_at_the_acs_rate(self, tmp_path: Path, rate: int) -> None:
        clock = FakeClock()
        rec = make_recorder(tmp_path, clock, rate=rate)
        nbytes = rate * 2 * FRAME_MS // 1000
        caller = [frame(n, nbytes) for n in range(60)]
        for pcm in caller:
            rec.caller_audio(pcm, silent=False)
            rec.agent_audio(pcm[::-1], item_id="a", content_index=0)
            clock.now += FRAME_S
        final = rec.close()
        for name, expected in (
            ("caller.wav", b"".join(caller)),
            ("agent.wav", b"".join(pcm[::-1] for pcm in caller)),
        ):
            with wave.open(str(final / name), "rb") as wav:
                assert wav.getframerate() == rate
                assert wav.getnchannels() == 1
                assert wav.getsampwidth() == 2
                assert wav.getnframes() == len(expected) // 2
                assert wav.readframes(wav.getnframes()) == expected

    def test_a_recording_without_audio_has_empty_valid_wavs(self, tmp_path: Path) -> None:
        final = make_recorder(tmp_path, FakeClock()).close()
        with wave.open(str(final / "caller.wav"), "rb") as wav:
            assert wav.getnframes() == 0
        got = read_recording(final)
        assert got.caller_pcm == got.agent_pcm == b""
        assert json.loads((final / "meta.json").read_text())["counts"] == {"recording_closed": 1}

    def test_reading_something_else_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "meta.json").write_text('{"format": "other"}')
        with pytest.raises(ValueError, match="not a callbridge recording"):
            read_recording(tmp_path)


IN_FLIGHT_FRAMES = 3
"""Caller frames (20 ms, 640 bytes at 16 kHz) the phone may send while the bridge's hang-up
is on its way: sent, never received, so never recorded."""


async def test_a_recorded_call_holds_both_sides_and_what_happened(tmp_path: Path) -> None:
    """A call through the whole service, recorded by the bridge: the caller's audio as sent,
    the agent's audio as played, the barge-in with its audio_end_ms, the tool call."""
    profile = AgentProfile(tools=("end_call",), record=True)
    async with LocalStack(
        turns=TURNS,
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=profile,
        recordings_dir=tmp_path,
    ) as stack:
        result = await stack.call(BARGE_IN_SCRIPT, hangup_after_s=10)
    (folder,) = tmp_path.iterdir()  # noqa: ASYNC240  # the call is over: nothing to block
    recording = read_recording(folder)
    assert not recording.partial
    assert recording.meta["call_connection_id"] == result.record.call_connection_id
    # The caller's audio is recorded byte for byte as the bridge received it: all the phone
    # sent, except frames still in flight when the bridge hung up (the agent ends this call).
    sent = result.record.caller_audio.tobytes()
    assert recording.caller_pcm == sent[: len(recording.caller_pcm)]
    assert len(sent) - len(recording.caller_pcm) <= IN_FLIGHT_FRAMES * 640
    # The agent audio is what was sent: what the caller heard, plus what ACS had queued
    # when StopAudio flushed it.
    heard_ms = sum(spurt.played_ms for spurt in result.record.spurts)
    assert heard_ms <= len(recording.agent_pcm) / 32 <= heard_ms + 150
    (barge_in,) = recording.of(BargeInRecord)
    assert barge_in.audio_end_ms == result.report.barge_ins[0].audio_end_ms
    assert [call.name for call in recording.of(ToolCallRecord)] == ["end_call"]
