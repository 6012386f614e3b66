"""The continuity figures of a call report, from hand-made phone and emulator records: what
counts as a greeting, as waiting in silence, and as caller audio lost."""

from __future__ import annotations

from typing import Any

import numpy as np

from callbridge.sim.call_record import CallRecord, SocketRecord
from callbridge.sim.continuity import (
    caller_audio_lost_ms,
    greetings,
    judge_continuity,
    longest_silence_ms,
    told_turns,
)
from callbridge.sim.playout import Spurt
from callbridge.sim.script import AfterAgentDone, At, Clip, Hangup, Say, StepRecord
from callbridge.sim.voicelive.records import (
    AppendRecord,
    ClientItemRecord,
    EmulatorSession,
    ResponseRecord,
    ResponseTrigger,
)

T0 = 1000.0
FRAME = 0.020
SILENCE = b"\xff" * 160
LINE = Say(Clip(b"\x01\x00" * 320, 16000), AfterAgentDone(pause_ms=400))


def record(**changes: Any) -> CallRecord:
    """A 10 s call on one socket, the phone's view."""
    fields: dict[str, Any] = {
        "call_connection_id": "call-1",
        "correlation_id": "corr-1",
        "sample_rate": 16000,
        "ws_opened_at": T0,
        "ws_closed_at": T0 + 10.0,
        "closed_by": "phone",
        "close_code": 1000,
        "spurts": [],
        "stops": [],
        "arrivals": [],
        "bad_message_count": 0,
        "bad_messages": [],
        "steps": [],
        "frames_sent": 500,
        "silent_frames_sent": 400,
        "late_frames": 0,
        "playout_delay_ms": 60.0,
        "mark_answers": [],
        "caller_audio": np.zeros(0, dtype=np.int16),
        "heard_audio": np.zeros(0, dtype=np.int16),
        "sockets": [SocketRecord(T0, T0 + 10.0, "phone", 1000)],
        "sent_frames": [(0, 499)],
    }
    fields.update(changes)
    return CallRecord(**fields)


def spurt(index: int, start_s: float, end_s: float) -> Spurt:
    return Spurt(index, T0 + start_s, played_ms=(end_s - start_s) * 1000, ended_at=T0 + end_s)


def said(index: int, start_s: float, end_s: float) -> StepRecord:
    return StepRecord(index, LINE, started_at=T0 + start_s, finished_at=T0 + end_s)


def session(index: int = 0) -> EmulatorSession:
    return EmulatorSession(
        index=index, model="gpt-realtime", opened_at=T0, call_session_index=index
    )


def appended(into: EmulatorSession, frames: list[bytes], start_s: float) -> None:
    """``frames`` appended one per 20 ms from ``start_s``, each 1 ms after it was due."""
    for n, audio in enumerate(frames):
        into.appends.append(AppendRecord(T0 + start_s + n * FRAME + 0.001, audio, 20.0))


def speech(count: int, seed: int) -> list[bytes]:
    """``count`` frames of distinct audio (no two alike)."""
    return [bytes([seed % 200, n % 256, n // 256]) * 53 + b"\x00" for n in range(count)]


def response(
    created_s: float, *, trigger: ResponseTrigger = "response.create", turns_before: int = 0
) -> ResponseRecord:
    return ResponseRecord(
        response_id="resp_1",
        item_id="item_1",
        call_response_index=0,
        turn_index=0,
        trigger=trigger,
        caller_turns_before=turns_before,
        output_format="g711_ulaw",
        bytes_per_ms=8,
        audio_ms_total=1000.0,
        created_at=T0 + created_s,
    )


# --- greetings -------------------------------------------------------------------------------


def test_a_response_asked_for_in_an_empty_conversation_is_a_greeting() -> None:
    first = session()
    first.responses.append(response(0.1))

    assert greetings(first) == 1


def test_a_session_that_carries_the_conversation_on_is_not_greeting_again() -> None:
    carried = session(1)
    carried.client_items.append(
        ClientItemRecord(T0 + 5.0, "item_a", "message", role="assistant", text="Hello.")
    )
    carried.responses.append(response(5.1))
    answered = session(2)
    answered.responses.append(response(6.0, trigger="server_vad", turns_before=1))

    assert (greetings(carried), greetings(answered)) == (0, 0)


def test_a_later_session_is_told_the_turns_before_it_first_speaks() -> None:
    carried = session(1)
    for at, role in ((5.0, "assistant"), (5.01, "user"), (5.02, "system"), (7.0, "user")):
        carried.client_items.append(ClientItemRecord(T0 + at, "item", "message", role=role))
    carried.responses.append(response(6.0, trigger="server_vad", turns_before=1))

    # The greeting and the caller's question; not the system note, nor what came after.
    assert told_turns(carried) == 2


# --- waiting in silence ----------------------------------------------------------------------


def test_the_longest_wait_runs_from_the_end_of_a_line_to_the_next_agent_audio() -> None:
    phone = record(
        spurts=[spurt(1, 0.4, 3.0), spurt(2, 6.2, 9.0)],
        steps=[said(0, 3.5, 5.5), StepRecord(1, Hangup(At(9.5)), started_at=T0 + 9.5)],
    )

    # From the media socket to the greeting: 400 ms; from the line's end to the answer: 700 ms.
    assert longest_silence_ms(phone) == 700.0


def test_a_wait_ends_when_the_caller_acts_again_or_the_call_ends() -> None:
    unanswered = record(steps=[said(0, 1.0, 2.0), said(1, 4.5, 5.0)], ws_closed_at=T0 + 6.0)
    while_talking = record(spurts=[spurt(1, 0.0, 9.0)], steps=[said(0, 1.0, 2.0)])

    # 0 -> 1.0 (the caller spoke), 2.0 -> 4.5 (the caller spoke again), 5.0 -> 6.0 (the end).
    assert longest_silence_ms(unanswered) == 2500.0
    # The agent talks through the caller's line: nobody waits.
    assert longest_silence_ms(while_talking) == 0.0


# --- caller audio lost -----------------------------------------------------------------------


def test_a_reconnect_that_resends_what_was_unanswered_loses_nothing() -> None:
    line = speech(100, seed=1)  # a 2 s line; the old session heard 60 frames of it, then dropped
    old, new = session(0), session(1)
    appended(old, line[:60], 0.0)
    # The new session gets the 60 again (never answered), then the 40 held in the outage.
    appended(new, line, 1.6)
    phone = record(
        ws_closed_at=T0 + 2.0,
        sockets=[SocketRecord(T0, T0 + 2.0, "phone", 1000)],
        sent_frames=[(0, 99)],
    )

    assert caller_audio_lost_ms(phone, [old, new]) == 0.0
    # Had the resend left out the last 10 frames held, they would be lost.
    cut = session(1)
    appended(cut, line[:90], 1.6)
    assert caller_audio_lost_ms(phone, [old, cut]) == 200.0


def test_what_no_session_heard_is_lost_and_silence_at_a_swap_is_not() -> None:
    quiet = [SILENCE] * 100
    old, new = session(0), session(1)
    # Every frame of a 4 s call to exactly one session, the swap in silence: the silence at
    # the end of one and the start of the other is alike, but is not taken for a repeat.
    appended(old, quiet, 0.0)
    appended(new, quiet, 2.0)
    phone = record(
        ws_closed_at=T0 + 4.0,
        sockets=[SocketRecord(T0, T0 + 4.0, "phone", 1000)],
        sent_frames=[(0, 199)],
    )
    assert caller_audio_lost_ms(phone, [old, new]) == 0.0

    # The same call, had the 10 frames around the swap reached neither session.
    old, new = session(0), session(1)
    appended(old, quiet[:95], 0.0)
    appended(new, quiet[:95], 2.1)
    assert caller_audio_lost_ms(phone, [old, new]) == 200.0


def test_audio_after_the_last_append_and_a_call_voice_live_never_heard_are_not_measured() -> None:
    only = session()
    appended(only, [SILENCE] * 50, 0.0)
    phone = record(ws_closed_at=T0 + 5.0)

    # The phone went on 4 s after the last append (the call was ending): not counted.
    assert caller_audio_lost_ms(phone, [only]) == 0.0
    assert caller_audio_lost_ms(phone, [session()]) is None


def test_the_line_loses_what_was_said_with_no_socket() -> None:
    phone = record(
        lost_voiced_ms=1880.0,
        sockets=[
            SocketRecord(T0, T0 + 4.0, "dropped", 4000),
            SocketRecord(T0 + 6.0, T0 + 10.0, "phone", 1000),
        ],
        sent_frames=[(0, 199), (300, 499)],
    )
    first = session()
    appended(first, [SILENCE] * 200, 0.0)  # 0-4 s
    appended(first, [SILENCE] * 200, 6.0)  # 6-10 s

    figures = judge_continuity(phone, [first])

    assert (figures.caller_audio_lost_ms, figures.caller_audio_lost_on_line_ms) == (0.0, 1880.0)
    assert (figures.sessions, figures.media_sockets) == (1, 2)
