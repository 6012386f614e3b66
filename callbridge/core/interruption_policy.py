"""Is the caller interrupting, or just saying "mm-hmm"? The decision, from what arrives soonest.

When Voice Live says the caller started speaking over the agent, callbridge pauses the agent's
audio at once and decides, within a bounded window, between:

- a **real** interruption: the caller's speech lasts ``min_interruption_ms``, or its transcript
  holds a word that is not a backchannel;
- a **false** one: the speech ended sooner and its transcript is empty, a backchannel ("mm-hmm",
  "yeah", "okay"...), or has not come in time (a cough, a click, noise).

The signals, in the order they usually come: the bridge's own measure of the caller's frames
(voiced or not, every 20 ms: the soonest), Voice Live's ``speech_stopped`` (after its silence
window), and the input transcription (after the turn is committed, so often too late to wait
for). A decision is taken as soon as the signals allow, and at the latest when the window
closes; a transcript that comes after a false verdict and holds real words corrects it.

Sans-IO: every method takes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from callbridge.core.pcm import rms

DEFAULT_BACKCHANNELS: Final = (
    "mm",
    "mhm",
    "mm-hmm",
    "mmhmm",
    "hmm",
    "uh-huh",
    "uhhuh",
    "uh",
    "um",
    "ah",
    "oh",
    "yeah",
    "yep",
    "yes",
    "ok",
    "okay",
    "right",
    "sure",
    "alright",
    "i see",
    "got it",
)
"""English backchannels: what a listener says to show they follow, not to take the turn."""
_WORD: Final = re.compile(r"[\w'-]+")


@dataclass(frozen=True, slots=True)
class InterruptionSettings:
    """How callbridge tells a real interruption from a backchannel, per agent profile."""

    min_interruption_ms: float = 500.0
    """Caller speech this long over the agent is an interruption, whatever it says."""
    decision_window_ms: float = 600.0
    """The longest the agent stays paused while callbridge decides."""
    caller_quiet_ms: float = 160.0
    """This long without a voiced frame ends the caller's speech, by the bridge's own measure."""
    voiced_rms: float = 400.0
    """A caller frame whose PCM16 RMS reaches this is voiced (about -38 dBFS): the bridge's
    own measure, the same level the Voice Live emulator's VAD uses."""
    backchannels: tuple[str, ...] = DEFAULT_BACKCHANNELS
    """Words and phrases that do not take the turn (lower case; add other languages' here)."""

    def is_voiced(self, pcm: bytes) -> bool:
        """Whether one frame of the caller's PCM16 is loud enough to be speech."""
        return bool(pcm) and rms(pcm) >= self.voiced_rms

    def is_backchannel(self, transcript: str) -> bool:
        """Whether ``transcript`` holds nothing but backchannels (empty counts: noise)."""
        words = " ".join(_WORD.findall(transcript.lower()))
        if not words:
            return True
        for phrase in sorted(self.backchannels, key=len, reverse=True):
            words = re.sub(rf"(?<![\w'-]){re.escape(phrase)}(?![\w'-])", " ", words)
        return not words.strip()


class Verdict(Enum):
    REAL = "real"
    FALSE = "false"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    """``long_speech``, ``words``, ``backchannel`` or ``no_words_in_time``."""
    at: float


@dataclass(slots=True)
class PendingInterruption:
    """One interruption being decided: fed the signals as they come.

    ``voiced_ms``: the caller's speech the bridge had already measured when Voice Live's
    ``speech_started`` came (its VAD needs some speech before it says so).
    """

    settings: InterruptionSettings
    started_at: float
    voiced_ms: float = 0.0
    last_voiced_at: float | None = None
    transcript: str | None = None
    speech_stopped: bool = False
    decision: Decision | None = field(default=None)

    @property
    def deadline(self) -> float:
        """When the window closes: decide by then."""
        return self.started_at + self.settings.decision_window_ms / 1000

    def on_caller_frame(self, *, voiced: bool, frame_ms: float, now: float) -> Decision | None:
        if voiced:
            self.voiced_ms += frame_ms
            self.last_voiced_at = now
        return self._decide(now)

    def on_speech_stopped(self, now: float) -> Decision | None:
        self.speech_stopped = True
        return self._decide(now)

    def on_transcript(self, transcript: str, now: float) -> Decision | None:
        """The caller's words. After a false verdict, real words overturn it."""
        self.transcript = transcript
        if self.decision is not None and self.decision.verdict is Verdict.FALSE:
            if not self.settings.is_backchannel(transcript):
                self.decision = Decision(Verdict.REAL, "words", now)
                return self.decision
            return None
        return self._decide(now)

    def on_timer(self, now: float) -> Decision | None:
        return self._decide(now)

    def _decide(self, now: float) -> Decision | None:
        if self.decision is not None:
            return None
        settings = self.settings
        verdict: tuple[Verdict, str] | None = None
        if self.voiced_ms >= settings.min_interruption_ms:
            verdict = (Verdict.REAL, "long_speech")
        elif self.transcript is not None and not settings.is_backchannel(self.transcript):
            verdict = (Verdict.REAL, "words")
        elif self._speech_over(now):
            if self.transcript is not None:
                verdict = (Verdict.FALSE, "backchannel")
            elif now >= self.deadline:
                verdict = (Verdict.FALSE, "no_words_in_time")
        elif now >= self.deadline:
            # Still talking when the window closes, however briefly so far: the caller wants
            # the turn more than the agent should keep it.
            verdict = (Verdict.REAL, "long_speech")
        if verdict is None:
            return None
        self.decision = Decision(verdict[0], verdict[1], now)
        return self.decision

    def _speech_over(self, now: float) -> bool:
        if self.speech_stopped:
            return True
        last = self.last_voiced_at if self.last_voiced_at is not None else self.started_at
        return (now - last) * 1000 >= self.settings.caller_quiet_ms
