"""Whether a Voice Live session is still alive, judged from what it sends and when.

Voice Live is quiet while nobody talks, so silence alone proves nothing. Silence is judged only
where the service owes an event:

- **an answer is owed**: the caller's turn was committed or ended (``speech_stopped``), a
  response was asked for or is being generated; from then until ``response.done`` a session
  that sends nothing for ``stall_s`` has stalled;
- **the caller is talking and the service has not noticed**: ACS marks the caller's frames
  voiced but no ``speech_started`` came. Noise can be marked voiced too and rightly not start a
  turn, so this alone is no verdict: after ``stall_s / 2`` of it the link sends a probe (a
  client event the service must answer), and a session that answers nothing within another
  ``stall_s / 2`` has stalled.

A frozen network path is the WebSocket heartbeat's to find (see ``open_voice_live``).
"""

from __future__ import annotations

from enum import Enum

_ANSWER_OWED_AFTER = frozenset(
    {"input_audio_buffer.committed", "input_audio_buffer.speech_stopped", "response.created"}
)


class Verdict(Enum):
    ALIVE = "alive"
    PROBE = "probe"
    """Send a probe now: the caller is talking and the session has not said so."""
    STALLED = "stalled"


class Liveness:
    """One session's liveness (see the module docstring); times are monotonic seconds."""

    def __init__(self, stall_s: float, now: float) -> None:
        self._stall_s = stall_s
        self._last_event_at = now
        self._answer_owed = False
        self._speech = False
        self._unnoticed_voice_since: float | None = None
        self._probe_sent_at: float | None = None

    def on_event(self, event_type: str, now: float) -> None:
        # Any event shows the session alive: voice it had not noticed is judged afresh.
        self._last_event_at = now
        self._probe_sent_at = None
        self._unnoticed_voice_since = None
        if event_type in _ANSWER_OWED_AFTER:
            self._answer_owed = True
        elif event_type == "response.done":
            self._answer_owed = False
        if event_type == "input_audio_buffer.speech_started":
            self._speech = True
            self._unnoticed_voice_since = None
        elif event_type == "input_audio_buffer.speech_stopped":
            self._speech = False

    def on_response_requested(self, now: float) -> None:
        if not self._answer_owed:
            self._answer_owed = True
            self._last_event_at = max(self._last_event_at, now)

    def on_caller_voice(self, now: float) -> None:
        if not self._speech and self._unnoticed_voice_since is None:
            self._unnoticed_voice_since = now

    @property
    def answer_owed(self) -> bool:
        return self._answer_owed

    def check(self, now: float) -> Verdict:
        if self._answer_owed and now - self._last_event_at >= self._stall_s:
            return Verdict.STALLED
        if self._probe_sent_at is not None:
            waited = now - self._probe_sent_at
            return Verdict.STALLED if waited >= self._stall_s / 2 else Verdict.ALIVE
        since = self._unnoticed_voice_since
        if since is not None and now - since >= self._stall_s / 2:
            self._probe_sent_at = now
            return Verdict.PROBE
        return Verdict.ALIVE
