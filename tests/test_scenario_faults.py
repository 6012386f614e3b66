"""Scenario files' ``[[faults]]``, the fallback keys of ``[agent]`` and the continuity
expectations: loading, every error rule, and judging a report against them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from callbridge.core.ended_by import EndedBy
from callbridge.sim.acs import MediaDrop, MediaStall, RestFault
from callbridge.sim.continuity import Continuity
from callbridge.sim.report import CallReport, Pacing
from callbridge.sim.scenario import Expectations, Faults, check_expectations, load_scenario
from callbridge.sim.voicelive import Drop, Expire, Freeze, Hang, Refuse, SlowAccept
from tests.test_scenario import MINIMAL_AGENT, problems_of, write_scenario, write_wav


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A scenario folder with the agent's greeting and a stereo file."""
    write_wav(tmp_path / "audio" / "greeting.wav", ms=400)
    write_wav(tmp_path / "audio" / "stereo.wav", channels=2)
    return tmp_path


ALL_KINDS = (
    MINIMAL_AGENT
    + """
[[faults]]
kind = "voice_live_drop"
during_response = 1
after_audio_ms = 1500
abort = true

[[faults]]
kind = "voice_live_drop"
at_s = 3.5
close_code = 1000
session = 1

[[faults]]
kind = "voice_live_hang"
at_s = 4

[[faults]]
kind = "voice_live_freeze"
during_response = 0
session = "every"

[[faults]]
kind = "voice_live_slow_accept"
delay_ms = 15000

[[faults]]
kind = "voice_live_refuse"
status = 429
retry_after_s = 2
session = "every"

[[faults]]
kind = "voice_live_expire"
after_s = 14

[[faults]]
kind = "media_drop"
at_s = 7
rejoin_after_s = 0.5

[[faults]]
kind = "media_drop"
at_s = 9
abort = true

[[faults]]
kind = "media_stall"
at_s = 2
for_s = 1.5

[[faults]]
kind = "media_stall"
at_s = 12

[[faults]]
kind = "acs_rest_error"
operation = "hang_up"
status = 503
times = "every"

[[faults]]
kind = "acs_rest_slow"
operation = "answer"
delay_s = 2
"""
)


def test_every_kind_of_fault_loads_for_the_stand_in_that_injects_it(folder: Path) -> None:
    scenario = load_scenario(write_scenario(folder, ALL_KINDS))

    assert scenario.faults == Faults(
        voice_live=(
            Drop(during_response=1, after_audio_ms=1500, abort=True),
            Drop(at_s=3.5, close_code=1000, session=1),
            Hang(at_s=4.0),
            Freeze(during_response=0, session=None),
            SlowAccept(15000),
            Refuse(status=429, retry_after_s=2, session=None),
            Expire(14.0),
        ),
        media=(
            MediaDrop(7.0, 0.5),
            MediaDrop(9.0, None, abort=True),
            MediaStall(2.0, 1.5),
            MediaStall(12.0, None),
        ),
        rest=(
            RestFault("hang_up", 503, times=None),
            RestFault("answer", None, times=1, delay_s=2.0),
        ),
    )


def test_a_scenario_without_faults_has_none(folder: Path) -> None:
    assert load_scenario(write_scenario(folder, MINIMAL_AGENT)).faults == Faults()


def test_every_bad_fault_is_reported(folder: Path) -> None:
    path = write_scenario(
        folder,
        """
faults = [
  "drop",
  { at_s = 1 },
  { kind = "voice_live_dropp", at_s = 1 },
  { kind = "voice_live_drop", at_s = 1, during_response = 1 },
  { kind = "voice_live_hang" },
  { kind = "voice_live_refuse", status = 500 },
  { kind = "voice_live_expire" },
  { kind = "media_drop", at_s = -1, rejoin_after = 0.5 },
  { kind = "media_stall", at_s = 1, for_s = "long" },
  { kind = "acs_rest_error", operation = "answr" },
  { kind = "voice_live_slow_accept", delay_ms = 1.5, session = -1 },
  { kind = "voice_live_drop", at_s = 1, abort = "yes" },
]
"""
        + MINIMAL_AGENT,
    )
    where = f"{path}: faults"
    assert problems_of(path) == (
        f'{where}[0]: must be a table such as {{ kind = "media_drop", at_s = 2 }}, not "drop"',
        f"{where}[1].kind: required: one of voice_live_drop, voice_live_hang, voice_live_freeze,"
        " voice_live_slow_accept, voice_live_refuse, voice_live_expire, media_drop, media_stall,"
        " acs_rest_error, acs_rest_slow",
        f'{where}[2].kind: must be "voice_live_drop" or "voice_live_hang" or "voice_live_freeze"'
        ' or "voice_live_slow_accept" or "voice_live_refuse" or "voice_live_expire" or'
        ' "media_drop" or "media_stall" or "acs_rest_error" or "acs_rest_slow", not'
        ' "voice_live_dropp"; did you mean "voice_live_drop"?',
        f"{where}[3]: a fault fires at_s seconds in OR during_response, not both",
        f"{where}[4]: a fault fires at_s seconds in OR during_response, not both",
        f"{where}[5]: Refuse takes a throttling status (429, 503)",
        f"{where}[6].after_s: required",
        f'{where}[7].rejoin_after: unknown key; did you mean "rejoin_after_s"?',
        f"{where}[7].at_s: must be a number >= 0, not -1",
        f'{where}[8].for_s: must be a number >= 0, not "long"',
        f'{where}[9].operation: must be "answer" or "hang_up" or "transfer" or "get_call",'
        ' not "answr"; did you mean "answer"?',
        f"{where}[10].session: must be a whole number >= 0, not -1",
        f"{where}[10].delay_ms: must be a whole number >= 0, not 1.5",
        f'{where}[11].abort: must be true or false, not "yes"',
    )


def test_the_fallback_keys_make_the_profile(folder: Path) -> None:
    path = write_scenario(
        folder,
        """
[agent]
fallback_audio = "audio/greeting.wav"
fallback_transfer_to = "+18005550123"

[[agent.turns]]
audio = "audio/greeting.wav"
""",
    )
    profile = load_scenario(path).profile

    assert profile.fallback_audio == str(folder / "audio" / "greeting.wav")
    assert profile.fallback_transfer_to == "+18005550123"
    bad = write_scenario(
        folder,
        """
[agent]
fallback_audio = "audio/stereo.wav"
fallback_transfer_to = "555-0123"

[[agent.turns]]
audio = "audio/greeting.wav"
""",
        name="bad.toml",
    )
    problems = problems_of(bad)
    assert problems[0].startswith(f"{bad}: agent.fallback_audio: ")
    assert problems[0].endswith("must be PCM16 mono; it has 2 channel(s) of 16-bit samples")
    assert problems[1] == (
        f'{bad}: agent.fallback_transfer_to: must be an E.164 number such as "+18005550100",'
        ' not "555-0123"'
    )


# --- the continuity expectations -------------------------------------------------------------

EXPECT = """
[expect]
max_silence_ms = 1500
caller_audio_lost_ms = 0
greetings = 1
sessions = 2
fallback_in_full = true
"""


def test_the_continuity_expectations_load(folder: Path) -> None:
    expect = load_scenario(write_scenario(folder, MINIMAL_AGENT + EXPECT)).expectations

    assert expect == Expectations(
        max_silence_ms=1500.0,
        caller_audio_lost_ms=0.0,
        greetings=1,
        sessions=2,
        fallback_in_full=True,
    )


def test_bad_continuity_expectations_are_reported(folder: Path) -> None:
    path = write_scenario(
        folder,
        MINIMAL_AGENT
        + """
[expect]
max_silence_ms = 0
caller_audio_lost_ms = -1
greetings = 1.5
sessions = "two"
fallback_in_full = false
""",
    )
    assert problems_of(path) == (
        f"{path}: expect.max_silence_ms: must be a number > 0, not 0",
        f"{path}: expect.caller_audio_lost_ms: must be a number >= 0, not -1",
        f"{path}: expect.greetings: must be a whole number >= 0, not 1.5",
        f'{path}: expect.sessions: must be a whole number >= 0, not "two"',
        f"{path}: expect.fallback_in_full: can only be true (leave it out to not check it),"
        " not false",
    )


SURVIVED = Continuity(
    sessions=2,
    refused_connects=0,
    greetings=1,
    faults=["drop in session 0 at 4.20 s"],
    told_turns=[1],
    media_sockets=1,
    longest_silence_ms=750.0,
    caller_audio_lost_ms=0.0,
    caller_audio_lost_on_line_ms=0.0,
)


def report(continuity: Continuity | None) -> CallReport:
    return CallReport(
        call_id="call-1",
        audio_format="g711_ulaw",
        sample_rate=16000,
        duration_s=12.0,
        first_audio_ms=400.0,
        pacing=Pacing(frames=300, jitter_p50_ms=1, jitter_p99_ms=4, jitter_max_ms=6, underruns=0),
        barge_ins=[],
        stale_audio_ms=0,
        protocol_violations=[],
        continuity=continuity,
    )


SURVIVAL = Expectations(max_silence_ms=1500, caller_audio_lost_ms=0, greetings=1, sessions=2)


def test_a_call_that_survived_its_fault_meets_the_expectations() -> None:
    assert check_expectations(SURVIVAL, report(SURVIVED)) == []


def test_each_continuity_expectation_names_what_happened() -> None:
    broken = replace(
        SURVIVED,
        sessions=3,
        greetings=2,
        longest_silence_ms=6400.0,
        caller_audio_lost_ms=440.0,
    )

    assert [str(f) for f in check_expectations(SURVIVAL, report(broken))] == [
        "expect.max_silence_ms: the caller waited 6400 ms for the agent in silence"
        " > maximum 1500 ms",
        "expect.caller_audio_lost_ms: 440 ms of the caller's audio reached callbridge and no"
        " Voice Live session > maximum 0 ms",
        "expect.greetings: expected 1 greeting, the call had 2",
        "expect.sessions: expected 2 Voice Live sessions, the call had 3",
    ]
    unheard = replace(SURVIVED, caller_audio_lost_ms=None)
    assert [str(f) for f in check_expectations(SURVIVAL, report(unheard))] == [
        "expect.caller_audio_lost_ms: no Voice Live session heard any caller audio"
    ]
    assert [f.expectation for f in check_expectations(SURVIVAL, report(None))] == [
        "expect.max_silence_ms",
        "expect.caller_audio_lost_ms",
        "expect.greetings",
        "expect.sessions",
    ]


@pytest.mark.parametrize(
    ("clip_ms", "heard_ms", "failure"),
    [
        (4817.4, 4820.0, None),
        (4817.4, 4790.0, None),  # within two frames: the codec's and jitter buffer's edges
        (4817.4, 2100.0, "the caller heard 2100 ms of the 4817.4 ms fallback clip"),
        (None, None, "the call did not end on the fallback path (ended by unknown)"),
    ],
)
def test_the_fallback_must_be_heard_in_full(
    clip_ms: float | None, heard_ms: float | None, failure: str | None
) -> None:
    fell_back = replace(SURVIVED, fallback_clip_ms=clip_ms, fallback_heard_ms=heard_ms)
    failures = check_expectations(Expectations(fallback_in_full=True), report(fell_back))

    assert [f.message for f in failures] == ([] if failure is None else [failure])
    assert EndedBy.FALLBACK_TRANSFER  # the words the fallback path ends a call with
