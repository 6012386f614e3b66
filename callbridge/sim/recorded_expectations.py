"""What a replayed recording must show: what happened on the recorded call.

:func:`recorded_expectations` reads a recording's ``[expect]`` table, so that a change in
callbridge's behaviour shows as a failed expectation:

* ``barge_ins``: one per ``StopAudio`` the caller was sent, each whose cut was truncated with
  ``truncation_tolerance_ms``.
* ``tools_called``: the tools called, in order.
* ``ended_by``: from the ``call_ended`` event's ``ended_by`` (callbridge's reason; none
  means the caller hung up): ``caller``, ``agent`` (``end_call``) or ``transfer``
  (``transfer_call``); other reasons are not checked. A closed recording without the event is
  judged from its tool calls: a last ``end_call`` not followed by a barge-in is the agent's
  ending, a ``transfer_call`` whose result says ``transferred`` a transfer, else the caller's.
  A partial recording without the event: not checked.
* ``max_first_audio_ms``: the original first audio plus ``first_audio_margin_ms``. The
  recording holds when the bridge sent the first agent frame (its ``agent_audio`` line's
  ``start``, the pacer's due time); the caller heard it about ``playout_delay_ms`` later
  (``meta.extra``, else callbridge's default), which is what a call report measures. The
  margin absorbs what differs in a replay besides callbridge itself: the emulator's response
  delay replaces the real model's, and the loop's timing. A replay against the emulator is
  usually faster than the original against Voice Live, so this catches a callbridge that got
  slower by more than that difference, not a few milliseconds.
* ``protocol_violations`` 0 and ``stale_audio_ms`` 0: a correct bridge has none.
"""

from __future__ import annotations

from typing import Final

from callbridge.adapters.recording import (
    AgentAudioRecord,
    BargeInRecord,
    EventRecord,
    Recording,
    StopAudioRecord,
    ToolCallRecord,
    ToolResultRecord,
)
from callbridge.core.ended_by import EndedBy
from callbridge.core.settings import PacingSettings
from callbridge.process.toml_file import is_finite_number
from callbridge.sim.recorded_file import meta_extra
from callbridge.sim.scenario_schema import BargeInExpectation, Expectations

REPLAYABLE_ENDS: Final = frozenset({EndedBy.CALLER, EndedBy.END_CALL, EndedBy.TRANSFER_CALL})
"""The ends a replay can bring about again; the bridge's other reasons (``time_limit``,
``shutdown``...) depend on more than the call, so they are not expectations."""

_CALL_ENDED: Final = "call_ended"


def recorded_expectations(
    recording: Recording,
    *,
    origin: float,
    truncation_tolerance_ms: float,
    first_audio_margin_ms: float,
) -> Expectations:
    """The expectations a replay of ``recording`` must meet; ``origin`` is the recording time
    of the replay's time 0."""
    return Expectations(
        barge_ins=_barge_ins(recording, truncation_tolerance_ms),
        tools_called=tools_called(recording),
        ended_by=ended_by(recording),
        max_first_audio_ms=_max_first_audio_ms(recording, origin, first_audio_margin_ms),
        stale_audio_ms=0.0,
        protocol_violations=0,
    )


def tools_called(recording: Recording) -> tuple[str, ...]:
    """The tools the recorded call called, in order."""
    return tuple(call.name for call in recording.of(ToolCallRecord))


def ended_by(recording: Recording) -> EndedBy | None:
    """How the call ended, when the recording tells and a replay can end it so."""
    ended = [event for event in recording.of(EventRecord) if event.kind == _CALL_ENDED]
    if ended:
        reason = ended[-1].fields.get("ended_by")
        if reason is None:  # the bridge did not end it: the caller did
            return EndedBy.CALLER
        if reason in {end.value for end in REPLAYABLE_ENDS}:
            return EndedBy(reason)
        return None
    if recording.partial:
        return None
    calls = recording.of(ToolCallRecord)
    if not calls:
        return EndedBy.CALLER
    last = calls[-1]
    if last.name == "end_call":
        barged = any(b.t > last.t for b in recording.of(BargeInRecord))
        return EndedBy.CALLER if barged else EndedBy.END_CALL
    if last.name == "transfer_call":
        results = [r for r in recording.of(ToolResultRecord) if r.call_id == last.call_id]
        if results and "transferred" in str(results[-1].output):
            return EndedBy.TRANSFER_CALL
    return EndedBy.CALLER


def _barge_ins(recording: Recording, tolerance: float) -> tuple[BargeInExpectation, ...]:
    """One per ``StopAudio``; a truncation tolerance for each that truncated something."""
    stops: list[bool] = []
    """Per StopAudio: was a barge-in (a truncate) recorded after it?"""
    loose: list[float] = []
    for record in recording.records:
        if isinstance(record, StopAudioRecord):
            stops.append(False)
        elif isinstance(record, BargeInRecord):
            if stops:
                stops[-1] = True
            elif record.t not in loose:
                loose.append(record.t)
    # A recording with truncates but no StopAudio lines: one barge-in per moment.
    truncated = [*stops, *(True for _ in loose)] if stops or loose else []
    return tuple(
        BargeInExpectation(truncation_tolerance_ms=tolerance if cut else None) for cut in truncated
    )


def _max_first_audio_ms(recording: Recording, origin: float, margin: float) -> float | None:
    spans = [span for span in recording.of(AgentAudioRecord) if span.length > 0]
    if not spans:
        return None
    first = min(spans, key=lambda span: span.t)
    delay = meta_extra(recording).get("playout_delay_ms")
    playout_ms = float(delay) if is_finite_number(delay) else PacingSettings().playout_delay_ms
    heard_ms = max(0.0, (first.start - origin) * 1000) + playout_ms
    return round(heard_ms + margin, 1)
