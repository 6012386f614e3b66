"""Judging a Voice Live session's liveness from what it sends and when (pure, no sockets)."""

from __future__ import annotations

from callbridge.bridge.liveness import Liveness, Verdict

STALL_S = 4.0
OVERDUE_S = STALL_S / 4


def judge(liveness: Liveness, at: float) -> Verdict:
    return liveness.check(at)


def test_silence_where_nothing_is_owed_is_no_verdict() -> None:
    idle = Liveness(STALL_S, now=0.0)
    idle.on_event("session.updated", 0.0)
    for second in range(60):
        idle.on_caller_audio(voiced=False, now=float(second))

    assert judge(idle, 60.0) is Verdict.ALIVE


def test_an_overdue_answer_is_probed_and_an_unanswered_probe_is_a_stall() -> None:
    waiting = Liveness(STALL_S, now=0.0)
    waiting.on_event("input_audio_buffer.committed", 1.0)

    assert judge(waiting, 1.0 + OVERDUE_S - 0.01) is Verdict.ALIVE
    assert judge(waiting, 1.0 + OVERDUE_S) is Verdict.PROBE
    assert judge(waiting, 1.0 + 2 * OVERDUE_S - 0.01) is Verdict.ALIVE
    # Found within half of the stall bound, the rest left for the reconnect and the answer.
    assert judge(waiting, 1.0 + 2 * OVERDUE_S) is Verdict.STALLED


def test_a_model_that_thinks_long_but_answers_the_probe_is_alive() -> None:
    thinking = Liveness(STALL_S, now=0.0)
    thinking.on_response_requested(0.0)
    assert judge(thinking, OVERDUE_S) is Verdict.PROBE
    thinking.on_event("error", OVERDUE_S + 0.05)  # the probe's answer

    assert judge(thinking, 2 * OVERDUE_S) is Verdict.ALIVE
    assert judge(thinking, 2 * OVERDUE_S + 0.1) is Verdict.PROBE  # overdue again: ask again
    thinking.on_event("response.done", 2 * OVERDUE_S + 0.2)
    assert judge(thinking, 30.0) is Verdict.ALIVE


def test_a_session_that_dies_while_the_caller_talks_is_found_once_they_stop() -> None:
    # speech_started came, then nothing: the end of the caller's turn is owed once they stop.
    dying = Liveness(STALL_S, now=0.0)
    dying.on_event("input_audio_buffer.speech_started", 1.0)
    for tick in range(100):  # the caller talks until 3 s
        dying.on_caller_audio(voiced=True, now=1.0 + tick * 0.02)
    assert judge(dying, 2.9) is Verdict.ALIVE  # talking: nothing owed yet
    dying.on_caller_audio(voiced=False, now=3.0)

    assert judge(dying, 3.0 + OVERDUE_S - 0.01) is Verdict.ALIVE
    assert judge(dying, 3.0 + OVERDUE_S) is Verdict.PROBE
    assert judge(dying, 3.0 + 2 * OVERDUE_S) is Verdict.STALLED


def test_speech_stopped_settles_what_the_caller_s_silence_made_owed() -> None:
    alive = Liveness(STALL_S, now=0.0)
    alive.on_event("input_audio_buffer.speech_started", 1.0)
    alive.on_caller_audio(voiced=False, now=2.0)
    alive.on_event("input_audio_buffer.speech_stopped", 2.5)
    alive.on_event("response.done", 3.0)

    assert judge(alive, 20.0) is Verdict.ALIVE


def test_voice_the_session_never_noticed_is_probed() -> None:
    unnoticed = Liveness(STALL_S, now=0.0)
    for tick in range(60):
        unnoticed.on_caller_audio(voiced=True, now=tick * 0.02)

    assert judge(unnoticed, OVERDUE_S) is Verdict.PROBE
    unnoticed.on_event("error", OVERDUE_S + 0.02)  # the probe's answer: noise, not a stall
    assert judge(unnoticed, OVERDUE_S + 0.5) is Verdict.ALIVE
