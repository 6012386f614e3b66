"""How a call survived its faults, judged from the phone's and the emulator's records.

A call may use several Voice Live sessions (a reconnect after a drop, a rollover before
expiry) and several media sockets (ACS rejoining after a drop). This module measures what the
caller lived through, never what callbridge says it did:

* ``sessions`` and ``greetings``: from the emulator. A greeting is a response the client asked
  for (``response.create``) in a session whose conversation was still empty: no caller turn
  committed and no earlier turn replayed into it. A session that carries a call on (its
  context replayed first) and then answers is not greeting the caller again.
* ``longest_silence_ms``: from the phone. The caller waits for the agent from the moment the
  media socket opens and from the end of each of their lines or key presses, until they hear
  agent audio again (or do something else, or the call ends); the longest such wait.
* ``caller_audio_lost_ms``: what the caller said that reached callbridge and no session ever
  heard. The phone knows every 20 ms frame it sent over a socket; the emulator keeps every
  ``input_audio_buffer.append`` (one frame, or a few of silence between turns). Audio a new
  session is sent again (what the old one heard but never answered) is counted once: callbridge
  sends it the same append messages again, so the new session's first appends are matched,
  message by message and byte for byte, against the end of what the previous one received, and
  the longest match is the repeat. Frames of pure silence are alike, so a run of
  silence at the seam can be taken for a repeat: the measure can over-count lost *silence*,
  never lost speech. Only audio sent before the last append any session received counts: what
  the caller says after callbridge stopped relaying (the call ending, or the fallback clip
  playing) reached no model by design.
* ``caller_audio_lost_on_line_ms``: what the caller said while no media socket carried it (ACS
  dropped the socket, or stalled), lost before callbridge could see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, pairwise
from typing import Final

from callbridge.adapters.fallback_audio import FallbackClip
from callbridge.core.ended_by import EndedBy
from callbridge.sim.call_record import CallRecord
from callbridge.sim.script import Dtmf, Say
from callbridge.sim.voicelive import EmulatorSession, RefusedUpgrade
from callbridge.sim.voicelive.records import AppendRecord

FRAME_S: Final = 0.020
FALLBACK_ENDS: Final = frozenset({EndedBy.VOICE_SESSION_UNAVAILABLE, EndedBy.FALLBACK_TRANSFER})
"""The ends of a call on the fallback path: callbridge played its clip, then hung up or
transferred."""
_CONVERSATION_ROLES: Final = frozenset({"user", "assistant"})
_CONVERSATION_ITEMS: Final = frozenset({"function_call", "function_call_output"})


@dataclass(frozen=True, slots=True)
class Continuity:
    """What a call lived through across its Voice Live sessions and media sockets."""

    sessions: int
    """Voice Live sessions the call opened (refused connects not counted)."""
    refused_connects: int
    """Connects Voice Live turned away (HTTP 429/503)."""
    greetings: int
    """Times the agent greeted the caller (see the module)."""
    faults: list[str]
    """The injected Voice Live faults that fired, e.g. ``drop in session 1 at 3.20 s``."""
    told_turns: list[int]
    """For each session after the first, the earlier turns (messages and tool calls) it was
    told before it first spoke: the conversation it carried on."""
    media_sockets: int
    """Media sockets ACS opened for the call: more than one means it rejoined."""
    longest_silence_ms: float
    """The longest the caller waited for the agent in silence (see the module)."""
    caller_audio_lost_ms: float | None
    """Caller audio callbridge received that no session heard; None when no session heard
    any audio (there is nothing to compare)."""
    caller_audio_lost_on_line_ms: float
    """Caller speech said while no media socket carried it."""
    fallback_clip_ms: float | None = None
    """The fallback clip's length, when the call ended on the fallback path."""
    fallback_heard_ms: float | None = None
    """What the caller heard of the call's last talk spurt (the fallback clip, after any agent
    audio still queued), when the call ended on the fallback path."""


def judge_continuity(
    record: CallRecord,
    sessions: Sequence[EmulatorSession],
    refused: Sequence[RefusedUpgrade] = (),
) -> Continuity:
    """The continuity figures of one finished call; ``sessions`` oldest first."""
    started = record.ws_opened_at
    return Continuity(
        sessions=len(sessions),
        refused_connects=len(refused),
        greetings=sum(greetings(session) for session in sessions),
        faults=[
            f"{fault.kind} in session {session.call_session_index} at {fault.at - started:.2f} s"
            for session in sessions
            for fault in session.faults
        ],
        told_turns=[told_turns(session) for session in sessions[1:]],
        media_sockets=max(1, len(record.sockets)),
        longest_silence_ms=longest_silence_ms(record),
        caller_audio_lost_ms=caller_audio_lost_ms(record, sessions),
        caller_audio_lost_on_line_ms=record.lost_voiced_ms
        + sum(stall.voiced_ms for stall in record.stalls),
    )


def greetings(session: EmulatorSession) -> int:
    """Responses the client asked for while the session's conversation was still empty."""
    count = 0
    for response in session.responses:
        if response.trigger != "response.create" or response.caller_turns_before:
            continue
        replayed = any(
            item.at <= response.created_at
            and (item.role in _CONVERSATION_ROLES or item.type in _CONVERSATION_ITEMS)
            for item in session.client_items
        )
        count += not replayed
    return count


def told_turns(session: EmulatorSession) -> int:
    """The conversation items the client created before the session's first response."""
    first = min((response.created_at for response in session.responses), default=math.inf)
    return sum(
        item.at <= first and (item.role in _CONVERSATION_ROLES or item.type in _CONVERSATION_ITEMS)
        for item in session.client_items
    )


def longest_silence_ms(record: CallRecord) -> float:
    """The longest wait for the agent's voice (see the module)."""
    ended = record.ws_closed_at
    waits_from = [record.ws_opened_at] + [
        step.finished_at
        for step in record.steps
        if step.finished_at is not None and isinstance(step.step, Say | Dtmf)
    ]
    caller_acts = sorted(step.started_at for step in record.steps if step.started_at is not None)
    longest = 0.0
    for since in waits_from:
        if any(spurt.started_at <= since < (spurt.ended_at or ended) for spurt in record.spurts):
            continue  # the agent is talking: not a wait
        until = min(
            [spurt.started_at for spurt in record.spurts if spurt.started_at > since]
            + [at for at in caller_acts if at > since]
            + [ended]
        )
        longest = max(longest, until - since)
    return round(longest * 1000, 1)


def caller_audio_lost_ms(record: CallRecord, sessions: Sequence[EmulatorSession]) -> float | None:
    """Caller audio callbridge received that no session heard (see the module)."""
    heard = [session.appends for session in sessions if session.appends]
    if not heard:
        return None
    last_append = max(appends[-1].at for appends in heard)
    # Frames reach the bridge in the order the phone sends them, so a frame due after the last
    # append cannot have been relayed yet.
    sent_ms = _frames_sent_before(record, last_append) * FRAME_S * 1000
    unique_ms = sum(append.ms for appends in heard for append in appends)
    seams = [_Seam(before, after) for before, after in pairwise(heard)]
    unique_ms -= sum(seam.certain_ms for seam in seams)
    for seam in seams:
        # What is still counted beyond what the phone sent can only be silence heard twice.
        unique_ms -= seam.silence_repeated_ms(excess_ms=unique_ms - sent_ms)
    return round(max(0.0, sent_ms - unique_ms), 1)


class _Seam:
    """Where one session of a call took over from the one before: how much of the start of
    ``after`` repeats the end of ``before``, byte for byte.

    A repeat that holds different frames (speech) is certain. Frames of silence are all
    alike, so a run of silence at the end of one session and the start of the next also reads
    as a repeat; such a repeat is taken only as far as the totals demand (more unique audio
    than the phone sent is impossible).
    """

    def __init__(self, before: Sequence[AppendRecord], after: Sequence[AppendRecord]) -> None:
        earlier = [append.audio for append in before]
        later = [append.audio for append in after]
        elapsed = list(accumulate(append.ms for append in after))
        self._repeats: list[float] = [0.0]
        self.certain_ms = 0.0
        for length in range(1, min(len(earlier), len(later)) + 1):
            if later[:length] == earlier[-length:]:
                self._repeats.append(elapsed[length - 1])
                if len(set(later[:length])) > 1:
                    self.certain_ms = elapsed[length - 1]

    def silence_repeated_ms(self, *, excess_ms: float) -> float:
        """The least repeat beyond the certain one that takes up ``excess_ms`` (all there is
        if none does)."""
        if excess_ms <= 0:
            return 0.0
        beyond = [ms - self.certain_ms for ms in self._repeats if ms > self.certain_ms]
        enough = [ms for ms in beyond if ms >= excess_ms - 0.5]
        return min(enough) if enough else max(beyond, default=0.0)


def _frames_sent_before(record: CallRecord, until: float) -> int:
    """Frames the phone sent over a media socket that were due by ``until``."""
    last_due = math.floor((until - record.ws_opened_at) / FRAME_S + 1e-9)
    return sum(max(0, min(last, last_due) - first + 1) for first, last in record.sent_frames)


def fallback_heard(continuity: Continuity, record: CallRecord, clip: FallbackClip) -> Continuity:
    """``continuity`` with what the caller heard of ``clip``, for a call that ended on the
    fallback path: the clip is the last thing callbridge plays, so it ends the call's last talk
    spurt (after any agent audio that was still queued)."""
    last = record.spurts[-1] if record.spurts else None
    return replace(
        continuity,
        fallback_clip_ms=round(len(clip.pcm) / 2 / clip.sample_rate * 1000, 1),
        fallback_heard_ms=0.0 if last is None else round(last.played_ms, 1),
    )
