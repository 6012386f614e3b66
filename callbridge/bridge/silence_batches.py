"""The caller's silence between turns, appended to Voice Live a few frames at a time.

Every frame of the caller goes to Voice Live, silent ones too (``caller_audio``), and each
append is a WebSocket message: one every 20 ms per call, the bridge's most frequent send and a
system call each. Most of a call's silent frames wait on nothing: between the caller's turns
(before Voice Live's first ``speech_started``, and from a turn's ``committed`` to the next
``speech_started``) silence only has to reach the server VAD in order, ahead of the next
word. So there, frames ACS marked silent are held and sent ``BATCH_FRAMES`` at a time, and the
first frame ACS did not mark silent takes the held ones with it at once: speech is never
held, and the VAD's prefix padding finds the silence before it in place.

Voice Live takes appends of any length: "The client may choose how much audio to place in each
event up to a maximum of 15 MiB, for example streaming smaller chunks from the client may allow
the VAD to be more responsive" (Microsoft Learn, ``@azure/ai-voicelive``,
``ClientEventInputAudioBufferAppend``). Hence small chunks wherever the VAD has something to
respond to, and batches only where it has not.

Within a turn nothing is held: the server VAD ends the turn after ``silence_duration_ms`` of
silence *it has received*, so a held frame would hold up the answer. A turn Voice Live never
commits (a ``speech_started`` and no ``committed``) keeps every frame going at once: the safe
side. ACS marks a frame ``silent`` when "the received audio buffer contains only silence"
(Microsoft Learn, .NET ``Azure.Communication.CallAutomation.AudioData.IsSilent``); a frame it
did not mark, or whose ``silent`` is missing, is never held.

In ``callbridge bench`` (a caller who asks, listens and barges in) the appends fell from one
per frame to 43 % of the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BATCH_FRAMES: Final = 5
"""100 ms of silence per append between turns: a fifth of the messages, and the VAD still
hears each pause within a tenth of a second."""

_TURN_OPENS: Final = "input_audio_buffer.speech_started"
_TURN_ENDS: Final = frozenset({"input_audio_buffer.committed", "input_audio_buffer.cleared"})


@dataclass(frozen=True, slots=True)
class Batch:
    """The caller's audio for one append."""

    audio: bytes
    frames: int


class SilenceBatches:
    """Holds the caller's silent frames between turns (see the module docstring)."""

    __slots__ = ("_held", "_in_turn")

    def __init__(self) -> None:
        self._held: list[bytes] = []
        self._in_turn = False

    def on_event(self, event_type: str) -> None:
        """Follow the caller's turns in the current session's events."""
        if event_type == _TURN_OPENS:
            self._in_turn = True
        elif event_type in _TURN_ENDS:
            self._in_turn = False

    def take(self, audio: bytes, *, silent: bool) -> Batch | None:
        """One frame of the caller's audio: the audio to append now (the frames held before it
        first), or None while it is held."""
        held = self._held
        if silent and not self._in_turn:
            held.append(audio)
            if len(held) < BATCH_FRAMES:
                return None
        elif held:
            held.append(audio)
        else:
            return Batch(audio, 1)
        return self._release()

    def drain(self) -> Batch | None:
        """The frames still held (the call is ending), if any."""
        return self._release() if self._held else None

    def _release(self) -> Batch:
        batch = Batch(b"".join(self._held), len(self._held))
        self._held.clear()
        return batch
