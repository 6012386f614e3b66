"""Whether a Voice Live session is still alive, judged from what it sends and when.

Voice Live is quiet while nobody talks, so silence alone proves nothing. Silence is judged only
where the service owes an event:

- **an answer**: the caller's turn was committed or ended (``speech_stopped``), or a response
  was asked for or is being generated, until ``response.done``;
- **``speech_stopped``**: after ``speech_started``, ACS marks the caller's frames silent again,
  so the server VAD owes the end of the turn once its silence window has passed (a session can
  die in the middle of the caller's turn, before any answer is owed);
- **``speech_started``**: ACS marks the caller's frames voiced and the service has not said the
  caller is talking. Noise can be marked voiced too and rightly start no turn.

None of these alone is a verdict: a model may think for seconds before it answers, and the
server VAD's silence window is the profile's. So once an owed event is ``stall_s / 4`` overdue
(counted from the later of when it became owed and the session's last event), the link sends a
probe, a client event the service must answer at once whatever it is doing; a session that
answers nothing within another ``stall_s / 4`` has stalled. A dead session is so found within
``stall_s / 2``, which leaves the other half of ``stall_s``, the longest dead air we let a
caller hear, for the reconnect and the answer. That the service answers a client event while it
generates a response is how its event loop behaves in the emulator and in the Realtime API it
shares its protocol with; Voice Live does not publish it.

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
    """Send a probe now: an event is overdue."""
    STALLED = "stalled"


class Liveness:
    """One session's liveness (see the module docstring); times are monotonic seconds."""

    def __init__(self, stall_s: float, now: float) -> None:
        self._overdue_s = stall_s / 4
        self._last_event_at = now
        self._answer_owed = False
        self._speech = False
        self._quiet_in_speech_since: float | None = None
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
            self._quiet_in_speech_since = None
        elif event_type == "input_audio_buffer.speech_stopped":
            self._speech = False
            self._quiet_in_speech_since = None

    def on_response_requested(self, now: float) -> None:
        if not self._answer_owed:
            self._answer_owed = True
            self._last_event_at = max(self._last_event_at, now)

    def on_caller_audio(self, *, voiced: bool, now: float) -> None:
        """One frame of the caller's audio; ``voiced``: ACS did not mark it silent."""
        if voiced:
            self._quiet_in_speech_since = None
            if not self._speech and self._unnoticed_voice_since is None:
                self._unnoticed_voice_since = now
        elif self._speech and self._quiet_in_speech_since is None:
            self._quiet_in_speech_since = now

    @property
    def answer_owed(self) -> bool:
        return self._answer_owed

    def check(self, now: float) -> Verdict:
        if self._probe_sent_at is not None:
            unanswered = now - self._probe_sent_at >= self._overdue_s
            return Verdict.STALLED if unanswered else Verdict.ALIVE
        owed_since = [
            since
            for since in (
                self._last_event_at if self._answer_owed else None,
                self._quiet_in_speech_since,
                self._unnoticed_voice_since,
            )
            if since is not None
        ]
        if owed_since and now - max(min(owed_since), self._last_event_at) >= self._overdue_s:
            self._probe_sent_at = now
            return Verdict.PROBE
        return Verdict.ALIVE
