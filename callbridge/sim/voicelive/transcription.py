"""The transcription of each committed caller turn: scripted words, sent as the service sends
its input audio transcription.

What the API reference 2026-07-15 says: "Transcription begins when the input audio buffer is
committed by the client or server"; "Audio is transcribed if input_audio_transcription is
configured for the session" (input_audio_buffer.commit) — ``.delta`` and ``.failed`` are
"returned when input audio transcription is configured"; "Transcription runs asynchronously
with response creation, so this event can come before or after the response events"
(``.completed``); ``.failed`` "is separate from other error events so that the client can
identify the related item". Every event names the user item (``item_id``) and its audio part
(``content_index`` 0).

Not published, and chosen here:

* how a transcript is cut into deltas: one per word (as OpenAI's streaming transcription models
  do; whisper-1 sends the whole transcript as one delta), spread evenly over the transcription
  delay, the ``.completed`` carrying the whole transcript at the end of it;
* the failure's error object: OpenAI's documented example (API reference, server event
  ``conversation.item.input_audio_transcription.failed``): type ``transcription_error``, code
  ``audio_unintelligible``, no param;
* a transcription still arrives when the client deleted the item meanwhile: it was started on
  audio already committed, and a client must cope with the transcript of an item it dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from callbridge.sim.voicelive.conversation import Conversation
from callbridge.sim.voicelive.protocol import CallProgress, Settings
from callbridge.sim.voicelive.records import EmulatorSession
from callbridge.sim.voicelive.response_parts import transcript_pieces
from callbridge.sim.voicelive.wire import Wire

_TRANSCRIPTION: Final = "conversation.item.input_audio_transcription"
_UNINTELLIGIBLE: Final = {
    "type": "transcription_error",
    "code": "audio_unintelligible",
    "message": "The audio could not be transcribed.",
    "param": None,
}


@dataclass(frozen=True, slots=True)
class _Step:
    at_s: float  # after the commit
    event: dict[str, Any]


class Transcriber:
    """Gives the n-th caller turn of the call the n-th scripted transcript (``None`` in the
    script: its transcription fails) and, if the session asked for transcription, sends it
    ``transcription_delay_ms`` after ``input_audio_buffer.committed`` left, in order."""

    def __init__(
        self,
        *,
        wire: Wire,
        settings: Settings,
        progress: CallProgress,
        record: EmulatorSession,
        conversation: Conversation,
    ) -> None:
        self._wire = wire
        self._settings = settings
        self._progress = progress
        self._record = record
        self._conversation = conversation

    def transcribe(
        self, item_id: str, speech_ms: int, *, configured: bool
    ) -> Callable[[float], None] | None:
        """The caller turn committed as ``item_id`` (``speech_ms`` of speech) is transcribed;
        ``configured``: the session's ``input_audio_transcription`` is set. Returns what sends
        the transcription, to run once ``input_audio_buffer.committed`` has left (the delay
        counts from there), or None when none is sent."""
        index = self._progress.caller_turns  # transcripts continue across the call's sessions
        self._progress.caller_turns += 1
        scripted = self._settings.caller_transcripts
        transcript = (
            scripted[index]
            if index < len(scripted)
            else f"(caller speech, {speech_ms / 1000:.1f} s)"
        )
        for speech in self._record.speech:
            if speech.item_id == item_id:
                speech.transcript = transcript
        if not configured:
            return None
        steps = self._steps(item_id, transcript)
        return lambda _committed_at: self._send_in_order(steps)

    def _steps(self, item_id: str, transcript: str | None) -> list[_Step]:
        delay_s = self._settings.transcription_delay_ms / 1000
        ids = {"item_id": item_id, "content_index": 0}
        if transcript is None:
            failed = {"type": f"{_TRANSCRIPTION}.failed", **ids, "error": dict(_UNINTELLIGIBLE)}
            return [_Step(delay_s, failed)]
        delta = f"{_TRANSCRIPTION}.delta"
        words = transcript_pieces(transcript, len(transcript.split())) if transcript else []
        steps = [
            _Step(delay_s * (n + 1) / (len(words) + 1), {"type": delta, **ids, "delta": word})
            for n, word in enumerate(words)
        ]
        completed = {"type": f"{_TRANSCRIPTION}.completed", **ids, "transcript": transcript}
        return [*steps, _Step(delay_s, completed)]

    def _send_in_order(self, steps: list[_Step]) -> None:
        """Each step at its time after now, strictly in order (equal times included)."""
        loop = asyncio.get_running_loop()
        start = loop.time()

        def send(index: int) -> None:
            step = steps[index]
            self._wire.emit(step.event, on_sent=self._on_sent(step.event))
            if index + 1 < len(steps):
                due = start + steps[index + 1].at_s
                self._wire.call_later(max(0.0, due - loop.time()), lambda: send(index + 1))

        self._wire.call_later(steps[0].at_s, lambda: send(0))

    def _on_sent(self, event: dict[str, Any]) -> Callable[[float], None] | None:
        if event["type"] != f"{_TRANSCRIPTION}.completed":
            return None
        item_id, transcript = event["item_id"], event["transcript"]

        def keep_transcript(_at: float) -> None:
            # The item now carries its transcript, as conversation.item.retrieve would show it.
            item = self._conversation.get(item_id)
            if item is not None:
                content = [{**part, "transcript": transcript} for part in item.payload["content"]]
                self._conversation.update(item_id, {**item.payload, "content": content})

        return keep_transcript
