"""Barge-in figures from hand-made phone and emulator records: whose each StopAudio was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from callbridge.sim.barge_in_figures import CallFigures, call_figures, caller_lines
from callbridge.sim.call_record import CallRecord
from callbridge.sim.playout import Spurt, StopRecord
from callbridge.sim.scenario_schema import BargeInExpectation, Expectations, Scenario
from callbridge.sim.script import At, Clip, Dtmf, Say, StepRecord
from callbridge.sim.voicelive.records import EmulatorSession, SpeechRecord

T0 = 1000.0
LINE = Say(Clip(b"\x01\x00" * 320, 16000), At(1.0))
PAUSE = Say(Clip(bytes(3200), 16000), At(0.0))  # the silence between two keys of a dtmf step


def record(steps: list[StepRecord], stops_s: list[float]) -> CallRecord:
    """A 20 s call in which the agent was heard for 9 s, the phone's view."""
    fields: dict[str, Any] = {
        "call_connection_id": "call-1",
        "correlation_id": "corr-1",
        "sample_rate": 16000,
        "ws_opened_at": T0,
        "ws_closed_at": T0 + 20.0,
        "closed_by": "phone",
        "close_code": 1000,
        "spurts": [
            Spurt(1, T0, played_ms=4000.0, ended_at=T0 + 4.0),
            Spurt(2, T0 + 5.0, played_ms=5000.0, ended_at=T0 + 10.0),
        ],
        "stops": [StopRecord(T0 + at, 1, 100.0, 100.0) for at in stops_s],
        "arrivals": [],
        "bad_message_count": 0,
        "bad_messages": [],
        "steps": steps,
        "frames_sent": 1000,
        "silent_frames_sent": 900,
        "late_frames": 3,
        "playout_delay_ms": 60.0,
        "mark_answers": [],
        "caller_audio": np.zeros(0, dtype=np.int16),
        "heard_audio": np.zeros(0, dtype=np.int16),
    }
    return CallRecord(**fields)


def scenario(barge_ins: int) -> Scenario:
    return Scenario(
        name="a call",
        path=Path("a_call.toml"),
        description="",
        audio_format="pcm16",
        media_rate=16000,
        script=[],
        turns=[],
        tools=(),
        tools_module=None,
        transfer_to=None,
        response_delay_ms=200,
        stream_speed=2.0,
        expectations=Expectations(barge_ins=(BargeInExpectation(),) * barge_ins),
        caller_transcripts=[],
    )


def vad_turns(*sent_s: float) -> EmulatorSession:
    session = EmulatorSession(index=0, model="gpt-realtime", opened_at=T0)
    session.speech = [SpeechRecord(f"item_{n}", 0, 0, T0 + at) for n, at in enumerate(sent_s)]
    return session


STEPS = [
    StepRecord(0, LINE, started_at=T0 + 2.0, finished_at=T0 + 3.0),
    StepRecord(1, Dtmf("1", At(6.0)), started_at=T0 + 6.0, finished_at=T0 + 6.0),
    StepRecord(2, PAUSE, started_at=T0 + 6.0, finished_at=T0 + 6.1),
    StepRecord(3, LINE, started_at=T0 + 8.0, finished_at=None),  # cut off by the hang-up
    StepRecord(4, LINE),  # never said
]


def test_caller_lines_are_the_steps_that_said_something() -> None:
    assert caller_lines(record(STEPS, [])) == [(T0 + 2.0, T0 + 3.0), (T0 + 8.0, T0 + 20.0)]


def test_a_stop_outside_the_callers_lines_and_their_grace_is_false() -> None:
    """In a line, or up to 500 ms after it: the caller's. Elsewhere, in the silent pause
    between two keys included: false."""
    stops_s = [1.0, 2.1, 3.5, 3.6, 6.05, 9.0]
    figures = call_figures(scenario(1), record(STEPS, stops_s), [vad_turns(0.5, 2.2, 6.05)])

    assert figures == CallFigures(
        scenario="a call",
        audio_format="pcm16",
        agent_speech_ms=9000.0,
        barge_ins=6,
        false_barge_ins=3,  # at 1.0, 3.6 and 6.05
        caller_barge_ins=3,
        real_barge_ins=1,  # the scenario means one
        expected_barge_ins=1,
        vad_turns_outside_lines=2,  # at 0.5 and 6.05
        late_frames=3,
    )


def test_no_barge_in_is_real_when_the_scenario_means_none() -> None:
    figures = call_figures(scenario(0), record(STEPS, [2.5]), [])
    assert (figures.false_barge_ins, figures.caller_barge_ins, figures.real_barge_ins) == (0, 1, 0)
