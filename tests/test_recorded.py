"""Recorded calls as scenarios: the caller, the agent, the profile and the expectations a
recording turns into, and a replay of one through the whole service."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from callbridge.adapters.recording import FLUSH_INTERVAL_S, CallRecorder, read_recording
from callbridge.core.ended_by import EndedBy
from callbridge.sim.harness import LocalStack
from callbridge.sim.recorded import (
    BARGE_IN_PAD_MS,
    DEFAULT_END_GRACE_S,
    scenario_from_recording,
)
from callbridge.sim.scenario import (
    BargeInExpectation,
    Expectations,
    Scenario,
    ScenarioError,
    check_expectations,
)
from callbridge.sim.script import FRAME_S, At, Clip, Dtmf, Hangup, Say, ScriptRunner
from callbridge.sim.voicelive.audio import ToolCall

RATE = 16000
FRAME_BYTES = RATE * 2 // 50
T0 = 7000.0
PLAYOUT_DELAY_MS = 60.0


def tone(ms: int, hz: float = 440.0, rate: int = RATE) -> bytes:
    return Clip.tone(ms=ms, sample_rate=rate, hz=hz, amplitude=0.3).pcm


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeCall:
    """A call as the bridge records it, frame by frame on a fake clock: ACS delivers a
    caller frame every 20 ms (silent ones while the caller says nothing), and the bridge sends
    queued agent audio a frame at a time."""

    def __init__(
        self,
        root: Path,
        *,
        rate: int = RATE,
        audio_format: str = "g711_ulaw",
        extra: dict[str, object] | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.rate = rate
        self.frame_bytes = rate * 2 // 50
        self.rec = CallRecorder(
            root,
            call_connection_id="call-1",
            correlation_id="corr-1",
            profile="support",
            sample_rate=rate,
            audio_format=audio_format,
            extra={"playout_delay_ms": PLAYOUT_DELAY_MS, "lead_ms": 40.0, **(extra or {})},
            clock=self.clock,
        )
        self.frames = 0
        self.caller = bytearray()
        self.agent: list[tuple[str, bytes]] = []
        self.sent = bytearray()
        """The caller's audio as ACS delivered it, silence included."""
        self.held: list[tuple[bytes, bool]] = []
        """Caller frames ACS is holding back."""

    @property
    def t(self) -> float:
        return self.frames * FRAME_S

    def say(self, pcm: bytes) -> None:
        self.caller += pcm.ljust(-(-len(pcm) // self.frame_bytes) * self.frame_bytes, b"\0")

    def play(self, item_id: str, pcm: bytes) -> None:
        for at in range(0, len(pcm), self.frame_bytes):
            self.agent.append((item_id, pcm[at : at + self.frame_bytes]))

    def run_until(self, seconds: float) -> None:
        while self.t < seconds - 1e-9:
            self.frame()

    def frame(self, *, deliver: bool = True) -> None:
        """One 20 ms slot; ``deliver=False``: ACS holds the caller's frame back."""
        if self.caller:
            pcm, silent = bytes(self.caller[: self.frame_bytes]), False
            del self.caller[: self.frame_bytes]
        else:
            pcm, silent = bytes(self.frame_bytes), True
        self.held.append((pcm, silent))
        if deliver:
            for held_pcm, held_silent in self.held:
                self.rec.caller_audio(held_pcm, silent=held_silent)
                self.sent += held_pcm
            self.held.clear()
        if self.agent:
            item_id, out = self.agent.pop(0)
            self.rec.agent_audio(out, item_id=item_id, content_index=0)
        self.frames += 1
        self.clock.now = T0 + self.frames * FRAME_S

    def skip(self, frames: int) -> None:
        """``frames`` slots in which ACS delivers nothing at all (the audio is not lost)."""
        self.frames += frames
        self.clock.now = T0 + self.frames * FRAME_S

    def barge_in(self, item_id: str, *, heard_ms: float, received_ms: float | None = None) -> None:
        self.agent.clear()
        self.rec.event("voice_live", "input_audio_buffer.speech_started", audio_start_ms=0)
        self.rec.stop_audio()
        self.rec.barge_in(
            item_id=item_id,
            heard_ms=heard_ms,
            audio_end_ms=round(heard_ms),
            received_ms=received_ms,
            cancelled_response=False,
        )

    def tool(self, name: str, call_id: str, arguments: str, output: str) -> None:
        self.rec.tool_call(name=name, call_id=call_id, arguments=arguments)
        self.rec.tool_result(name=name, call_id=call_id, output=output)

    def close(self, ended_by: str | None) -> Path:
        self.rec.event("bridge", "call_ended", ended_by=ended_by)
        return self.rec.close()


def replay_caller(scenario: Scenario, frames: int) -> tuple[bytes, dict[int, list[str]]]:
    """What the simulated phone sends for the scenario's script, silence included, with the
    frame each digit goes before (no agent audio: the caller's script is all ``At``)."""

    class Deaf:
        def heard_ms(self, spurt: int, at: float) -> float:
            return 0.0

        @property
        def playing_until(self) -> float | None:
            return None

    runner = ScriptRunner(scenario.script, sample_rate=scenario.media_rate, opened_at=0.0)
    frame_bytes = scenario.media_rate * 2 // 50
    sent = bytearray()
    digits: dict[int, list[str]] = {}
    for n in range(frames):
        tick = runner.tick(n * FRAME_S, Deaf())
        if tick.digits:
            digits[n] = list(tick.digits)
        if tick.hangup:
            break
        sent += tick.pcm if tick.pcm is not None else bytes(frame_bytes)
    return bytes(sent), digits


# --- A calm call ---------------------------------------------------------------------------


def calm_call(root: Path, *, rate: int = RATE) -> Path:
    """The agent greets, the caller asks, the agent answers, the caller hangs up."""
    call = FakeCall(root, rate=rate)
    call.run_until(0.4)
    call.play("item_greeting", tone(600, rate=rate))
    call.run_until(1.0)
    call.rec.transcript("agent", "item_greeting", "Hello, Contoso support.")
    call.run_until(1.5)
    call.say(tone(500, 300, rate=rate))
    call.run_until(2.3)
    call.rec.transcript("caller", "item_question", "Where is my order?")
    call.run_until(2.4)
    call.play("item_answer", tone(400, 523, rate=rate))
    call.run_until(2.9)
    call.rec.transcript("agent", "item_answer", "It shipped yesterday.")
    call.run_until(3.5)
    return call.close(None)


@pytest.mark.parametrize("rate", [16000, 24000])
def test_a_calm_call_replays_as_it_happened(tmp_path: Path, rate: int) -> None:
    path = calm_call(tmp_path, rate=rate)
    scenario = scenario_from_recording(path)

    assert scenario.name == path.name
    assert scenario.path == path
    assert "call-1" in scenario.description
    assert "support" in scenario.description
    assert (scenario.audio_format, scenario.media_rate) == ("g711_ulaw", rate)
    # The caller's silence is the phone's own silent frames; the line goes when it arrived.
    assert scenario.script == [
        Say(Clip(tone(500, 300, rate=rate), rate), At(1.5)),
        Hangup(At(3.5)),
    ]
    assert scenario.caller_transcripts == ["Where is my order?"]
    assert [(turn.audio, turn.sample_rate, turn.transcript) for turn in scenario.turns] == [
        (tone(600, rate=rate), rate, "Hello, Contoso support."),
        (tone(400, 523, rate=rate), rate, "It shipped yesterday."),
    ]
    assert all(turn.tool_call is None for turn in scenario.turns)
    profile = scenario.profile
    assert (profile.tools, profile.tools_module, profile.transfer_to) == (("end_call",), None, None)
    assert profile.media_rate == rate
    # Sent at 0.4 s, heard a playout delay later, plus the margin.
    assert scenario.expectations == Expectations(
        barge_ins=(),
        tools_called=(),
        ended_by=EndedBy.CALLER,
        max_first_audio_ms=400 + PLAYOUT_DELAY_MS + 500,
        stale_audio_ms=0,
        protocol_violations=0,
    )
    sent, digits = replay_caller(scenario, 400)
    assert sent == read_caller(path)
    assert digits == {}


def read_caller(path: Path) -> bytes:
    return read_recording(path).caller_pcm


def test_the_first_audio_margin_is_a_parameter(tmp_path: Path) -> None:
    scenario = scenario_from_recording(calm_call(tmp_path), first_audio_margin_ms=100)
    assert scenario.expectations.max_first_audio_ms == 400 + PLAYOUT_DELAY_MS + 100


def test_caller_audio_held_back_and_delivered_in_a_burst_goes_where_it_was_spoken(
    tmp_path: Path,
) -> None:
    """A stall then a burst: the audio is placed where it was spoken, not where it arrived.
    A real gap (ACS sent nothing) starts a new line at its own time."""
    call = FakeCall(tmp_path)
    call.run_until(1.0)
    call.say(tone(1000, 300))
    call.run_until(1.2)
    for _ in range(10):  # 200 ms held back, then delivered with the next frame
        call.frame(deliver=False)
    call.run_until(2.4)
    call.say(tone(400, 350))
    call.run_until(2.5)
    call.skip(10)  # 200 ms in which ACS delivered nothing at all
    call.run_until(3.4)
    path = call.close(None)

    scenario = scenario_from_recording(path)
    line = tone(400, 350)
    assert scenario.script == [
        Say(Clip(tone(1000, 300), RATE), At(1.0)),
        Say(Clip(line[: 5 * FRAME_BYTES], RATE), At(2.4)),
        Say(Clip(line[5 * FRAME_BYTES :], RATE), At(2.7)),
        Hangup(At(3.4)),
    ]


def test_audio_flagged_silent_but_not_silence_is_said(tmp_path: Path) -> None:
    """Comfort noise in silent frames: the phone's silence would differ, so the recorded
    audio is said, as is."""
    call = FakeCall(tmp_path)
    call.run_until(0.2)
    noise = tone(20, 2000)[: call.frame_bytes]
    call.rec.caller_audio(noise, silent=True)
    call.sent += noise
    call.skip(1)
    call.run_until(0.5)
    path = call.close(None)
    scenario = scenario_from_recording(path)
    assert scenario.script == [Say(Clip(bytes(call.sent), RATE), At(0.0)), Hangup(At(0.5))]
    assert replay_caller(scenario, 100)[0] == bytes(call.sent)


# --- Barge-in ------------------------------------------------------------------------------


def barged_call(root: Path, *, received_ms: float | None) -> Path:
    call = FakeCall(root)
    call.run_until(0.4)
    call.play("item_answer", tone(3000))
    call.run_until(1.2)
    call.say(tone(500, 300))
    call.run_until(1.34)
    call.barge_in("item_answer", heard_ms=880, received_ms=received_ms)
    call.run_until(2.5)
    call.play("item_sure", tone(300, 659))
    call.run_until(3.2)
    return call.close(None)


def test_an_interrupted_turn_is_padded_to_what_voice_live_had_sent(tmp_path: Path) -> None:
    path = barged_call(tmp_path, received_ms=2000)
    scenario = scenario_from_recording(path)

    answer, sure = scenario.turns
    played = tone(3000)[: 47 * FRAME_BYTES]  # 0.40 s to 1.34 s: 47 frames sent
    assert answer.duration_ms == 2000
    assert answer.audio == played + bytes(len(answer.audio) - len(played))
    assert sure.audio == tone(300, 659)
    assert scenario.expectations.barge_ins == (BargeInExpectation(truncation_tolerance_ms=20),)
    assert scenario.script[0] == Say(Clip(tone(500, 300), RATE), At(1.2))


def test_the_truncation_tolerance_is_a_parameter(tmp_path: Path) -> None:
    scenario = scenario_from_recording(
        barged_call(tmp_path, received_ms=2000), truncation_tolerance_ms=35
    )
    assert scenario.expectations.barge_ins == (BargeInExpectation(truncation_tolerance_ms=35),)


def test_without_received_ms_an_interrupted_turn_gets_a_second_more(tmp_path: Path) -> None:
    scenario = scenario_from_recording(barged_call(tmp_path, received_ms=None))
    assert scenario.turns[0].duration_ms == 47 * 20 + BARGE_IN_PAD_MS


# --- Tools ---------------------------------------------------------------------------------


def tool_call(root: Path, *, extra: dict[str, object] | None = None) -> Path:
    """The agent looks an order up while it speaks, answers, and after the caller's goodbye
    hangs up without a word."""
    call = FakeCall(root, extra=extra)
    call.run_until(0.4)
    call.play("item_greeting", tone(400))
    call.run_until(1.2)
    call.say(tone(700, 300))  # long enough to interrupt by itself (min_interruption_ms)
    call.run_until(2.2)
    call.play("item_checking", tone(500, 494))
    call.run_until(2.3)
    call.tool("lookup_order", "call_1", '{"order_id": "42"}', '{"status": "shipped"}')
    call.run_until(2.8)
    call.play("item_shipped", tone(400, 523))
    call.run_until(3.6)
    call.say(tone(300, 330))
    call.run_until(4.5)
    call.tool("end_call", "call_2", '{"reason": "done"}', '{"status": "hanging up"}')
    call.run_until(4.7)
    return call.close("end_call")


def test_tool_calls_end_the_turns_that_made_them(tmp_path: Path) -> None:
    path = tool_call(tmp_path, extra={"tools_module": "tests.agent_tools"})
    scenario = scenario_from_recording(path)

    assert [turn.tool_call for turn in scenario.turns] == [
        None,
        ToolCall("lookup_order", {"order_id": "42"}),
        None,
        ToolCall("end_call", {"reason": "done"}),
    ]
    # The model hung up without a word: its turn is one silent frame.
    assert scenario.turns[3].audio == bytes(FRAME_BYTES)
    assert scenario.turns[1].audio == tone(500, 494)
    assert scenario.tools == ("lookup_order", "end_call")
    assert scenario.tools_module == "tests.agent_tools"
    assert scenario.expectations.tools_called == ("lookup_order", "end_call")
    assert scenario.expectations.ended_by == EndedBy.END_CALL
    # The caller stays on for the agent to hang up.
    assert scenario.script[-1] == Hangup(At(round(4.7 + DEFAULT_END_GRACE_S, 6)))


def test_user_tools_need_a_tools_module(tmp_path: Path) -> None:
    path = tool_call(tmp_path)
    with pytest.raises(ScenarioError) as caught:
        scenario_from_recording(path)
    message = str(caught.value)
    assert str(path / "meta.json") in message
    assert '"lookup_order"' in message
    assert "tools_module" in message

    scenario = scenario_from_recording(path, tools_module="tests.agent_tools")
    assert scenario.profile.tools_module == "tests.agent_tools"


def test_response_ids_tie_a_tool_call_to_its_response(tmp_path: Path) -> None:
    """With response ids, a call long after its response's audio still ends that turn."""
    call = FakeCall(tmp_path)
    call.run_until(0.4)
    call.rec.event("voice_live", "response.created", response={"id": "resp_1"})
    call.rec.event(
        "voice_live", "response.output_item.added", response_id="resp_1", item={"id": "item_1"}
    )
    call.play("item_1", tone(200))
    call.run_until(2.0)
    call.rec.event(
        "voice_live",
        "response.function_call_arguments.done",
        response_id="resp_1",
        call_id="call_1",
        name="end_call",
    )
    call.tool("end_call", "call_1", "{}", '{"status": "hanging up"}')
    call.rec.event("voice_live", "response.created", response={"id": "resp_2"})
    call.run_until(2.5)
    scenario = scenario_from_recording(call.close("end_call"))
    assert [(len(turn.audio), turn.tool_call) for turn in scenario.turns] == [
        (len(tone(200)), ToolCall("end_call")),
        (FRAME_BYTES, None),  # resp_2 said nothing, but it was a response: a silent turn
    ]


def test_a_transfer_is_expected_to_transfer(tmp_path: Path) -> None:
    call = FakeCall(tmp_path)
    call.run_until(0.4)
    call.play("item_1", tone(300))
    call.run_until(0.5)
    call.tool("transfer_call", "call_1", "{}", '{"status": "transferred"}')
    call.run_until(1.0)
    scenario = scenario_from_recording(call.close("transfer_call"))
    assert scenario.tools == ("transfer_call", "end_call")
    assert scenario.transfer_to is not None
    assert scenario.expectations.ended_by == EndedBy.TRANSFER_CALL


def test_without_a_call_ended_event_the_ending_comes_from_the_tool_calls(
    tmp_path: Path,
) -> None:
    """An end_call the caller did not speak over ended the call; one they did, did not."""
    endings = []
    for barge_in in (False, True):
        call = FakeCall(tmp_path / str(barge_in))
        call.run_until(0.4)
        call.play("item_1", tone(600))
        call.run_until(0.5)
        call.tool("end_call", "call_1", "{}", '{"status": "hanging up"}')
        if barge_in:
            call.run_until(0.8)
            call.barge_in("item_1", heard_ms=340, received_ms=600)
        call.run_until(1.5)
        endings.append(scenario_from_recording(call.rec.close()).expectations.ended_by)
    assert endings == [EndedBy.END_CALL, EndedBy.CALLER]


# --- Keypad --------------------------------------------------------------------------------


def test_keypad_digits_go_where_they_were_pressed(tmp_path: Path) -> None:
    """Digits in silence go at their time; a digit pressed while the caller's audio was being
    said splits the line, and the phone's stream is the recorded one, frame for frame."""
    call = FakeCall(tmp_path)
    call.run_until(1.0)
    for digit, at in (("4", 1.0), ("2", 1.1), ("#", 1.2)):
        call.run_until(at)
        call.rec.dtmf(digit)
    call.run_until(2.0)
    call.say(tone(400, 300))
    call.run_until(2.2)
    call.rec.dtmf("5")
    call.run_until(3.0)
    path = call.close(None)
    scenario = scenario_from_recording(path)

    line = tone(400, 300)
    half = 10 * FRAME_BYTES
    assert scenario.script == [
        Dtmf("4", At(1.0)),
        Dtmf("2", At(1.1)),
        Dtmf("#", At(1.2)),
        Say(Clip(line[:half], RATE), At(2.0)),
        Dtmf("5", At(2.2)),
        Say(Clip(line[half:], RATE), At(2.2)),
        Hangup(At(3.0)),
    ]
    sent, digits = replay_caller(scenario, 400)
    assert sent == bytes(call.sent)
    assert digits == {50: ["4"], 55: ["2"], 60: ["#"], 110: ["5"]}


# --- A partial recording -------------------------------------------------------------------


def test_a_partial_recording_replays_what_it_holds(tmp_path: Path) -> None:
    """A crash mid-call: the caller hangs up where the audio on disk ends, and only what was
    recorded is expected; how the call would have ended is not."""
    call = FakeCall(tmp_path / "live", extra={"tools_module": "tests.agent_tools"})
    call.run_until(0.4)
    call.play("item_answer", tone(2000))
    call.run_until(1.0)
    call.say(tone(300, 300))
    call.run_until(1.1)
    call.barge_in("item_answer", heard_ms=640, received_ms=2000)
    call.tool("lookup_order", "call_1", '{"order_id": "7"}', '{"status": "shipped"}')
    call.run_until(1.7)  # flushed at 1.5 s
    call.tool("end_call", "call_2", "{}", '{"status": "hanging up"}')  # not flushed
    crashed = tmp_path / "crashed" / call.rec.path.name
    shutil.copytree(call.rec.path, crashed)
    call.rec.close()

    scenario = scenario_from_recording(crashed)
    assert "partial" in scenario.description
    assert scenario.name == crashed.name.removesuffix(".partial")
    expect = scenario.expectations
    assert expect.ended_by is None
    assert expect.tools_called == ("lookup_order",)
    assert expect.barge_ins == (BargeInExpectation(truncation_tolerance_ms=20),)
    # The flush came with the caller frame at 1.5 s: the audio on disk ends after it.
    assert scenario.script[-1] == Hangup(At(1.52))
    assert scenario.turns[0].duration_ms == 2000
    assert scenario.turns[0].tool_call == ToolCall("lookup_order", {"order_id": "7"})
    assert FLUSH_INTERVAL_S == 0.5


# --- Not a recording -----------------------------------------------------------------------


def test_a_folder_that_is_not_a_recording_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ScenarioError, match="not a callbridge recording") as caught:
        scenario_from_recording(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "meta.json" in str(caught.value)
    with pytest.raises(ScenarioError, match="no such folder"):
        scenario_from_recording(tmp_path / "missing")
    with pytest.raises(ScenarioError, match="not a recording folder"):
        scenario_from_recording(tmp_path / "notes.txt")
    (tmp_path / "meta.json").write_text('{"format": "something-else"}')
    with pytest.raises(ScenarioError, match="not a callbridge recording"):
        scenario_from_recording(tmp_path)


def test_a_corrupt_recording_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = calm_call(tmp_path)
    meta = path / "meta.json"
    good_meta = meta.read_text()

    meta.write_text("{not json")
    with pytest.raises(ScenarioError, match="not JSON") as caught:
        scenario_from_recording(path)
    assert str(meta) in str(caught.value)

    meta.write_text(json.dumps({**json.loads(good_meta), "sample_rate": 8000}))
    with pytest.raises(ScenarioError, match="sample_rate") as caught:
        scenario_from_recording(path)
    assert str(meta) in str(caught.value)
    meta.write_text(good_meta)

    timeline = path / "timeline.jsonl"
    good_timeline = timeline.read_bytes()
    timeline.write_bytes(good_timeline[:-5])
    with pytest.raises(ScenarioError, match="incomplete") as caught:
        scenario_from_recording(path)
    assert str(timeline) in str(caught.value)

    bad_digit = b'{"t":0.5,"side":"acs","kind":"dtmf","digit":"x"}\n'
    timeline.write_bytes(bad_digit + good_timeline)
    with pytest.raises(ScenarioError, match="digit must be a keypad key") as caught:
        scenario_from_recording(path)
    assert str(timeline) in str(caught.value)
    timeline.write_bytes(good_timeline)

    (path / "caller.wav").unlink()
    with pytest.raises(ScenarioError, match=r"caller\.wav"):
        scenario_from_recording(path)


def test_a_recording_with_nothing_in_it_is_an_error(tmp_path: Path) -> None:
    call = FakeCall(tmp_path / "live")
    crashed = tmp_path / "crashed"
    shutil.copytree(call.rec.path, crashed)
    call.rec.close()
    with pytest.raises(ScenarioError, match="nothing was recorded"):
        scenario_from_recording(crashed)


# --- A replay through the whole service ----------------------------------------------------


def round_trip_call(root: Path) -> Path:
    """The agent greets and is cut short, asks for an order number, the caller keys it in,
    the agent says goodbye and hangs up."""
    call = FakeCall(root)
    call.run_until(0.4)
    call.play("item_greeting", tone(1600))
    call.run_until(1.2)
    call.say(tone(700, 300))  # long enough to interrupt by itself (min_interruption_ms)
    call.run_until(1.34)
    call.barge_in("item_greeting", heard_ms=880, received_ms=1600)
    call.run_until(1.9)
    call.rec.transcript("caller", "item_c1", "Sorry, one question.")
    call.run_until(2.2)
    call.play("item_ask", tone(500, 523))
    call.rec.transcript("agent", "item_ask", "Please key in your order number.")
    for digit, at in (("4", 3.2), ("2", 3.3), ("#", 3.4)):
        call.run_until(at)
        call.rec.dtmf(digit)
    call.run_until(3.6)
    call.play("item_bye", tone(500, 659))
    call.run_until(3.65)
    call.tool("end_call", "call_1", '{"reason": "done"}', '{"status": "hanging up"}')
    call.run_until(4.3)
    return call.close("end_call")


async def test_a_recording_replays_through_the_service_and_meets_its_expectations(
    tmp_path: Path,
) -> None:
    scenario = scenario_from_recording(round_trip_call(tmp_path))
    assert scenario.expectations.barge_ins == (BargeInExpectation(truncation_tolerance_ms=20),)
    assert scenario.expectations.ended_by == EndedBy.END_CALL
    async with LocalStack() as stack, asyncio.timeout(60):
        result = await stack.call(
            scenario.script,
            profile=scenario.profile,
            turns=scenario.turns,
            caller_transcripts=scenario.caller_transcripts,
        )
    report = result.report
    assert check_expectations(scenario.expectations, report) == []
    assert report.keypad_inputs == ["(The caller pressed these keys on the phone keypad: 4 2 #)"]
    assert report.tool_calls == ["end_call"]
