"""A session's input audio: decoding, echo removal, server VAD, and the caller turns it commits.

What the API reference 2026-07-15 says, and the emulator does:

* ``input_audio_buffer.speech_started`` comes "when speech is detected in the audio buffer"; its
  ``audio_start_ms`` counts from the session's first audio and "includes the prefix_padding_ms";
  its ``item_id`` is the user item "created when speech stops";
* ``speech_stopped``'s ``audio_end_ms`` "includes the min_silence_duration_ms" (the session's
  ``silence_duration_ms``); the server then commits the buffer: ``input_audio_buffer.committed``
  (the same ``item_id``), and a ``conversation.item.created`` for the user item;
* a short burst counts as speech only once ``speech_duration_ms`` of it is voiced ("Minimum
  speech duration": 200 ms for server_vad, 80 ms for the azure_semantic_vad types); a shorter
  one makes no event at all;
* ``interrupt_response`` (default true) "Enable or disable barge-in interruption": on speech
  onset the response in progress is cancelled: its closing events ("also returned when a
  response is interrupted"), then ``response.done`` with status ``cancelled`` and reason
  ``turn_detected`` (SDK 1.3.1 ``ResponseCancelledDetails``; there is no ``response.cancelled``
  event). With false "it will continue until complete" (OpenAI's ``ServerVad``,
  openai/openai-python ``src/openai/types/realtime/realtime_audio_input_turn_detection.py``;
  the auto-truncation how-to: "if the response continues playing after the user speaks");
* ``create_response`` (default true) "Enable or disable whether a response is generated" when
  speech stops; with false the turn is committed and nothing more happens until the client
  sends ``response.create`` ("If both create_response and interrupt_response are set to false,
  the model will never respond automatically but VAD events will still be emitted", the same
  OpenAI source, which adds that with ``interrupt_response`` false creating one "may fail ... if
  the model is already responding": the emulator then starts none, and notes it);
* ``input_audio_buffer.commit`` "doesn't create a response"; committing during speech uses the
  speech's item id, and no ``speech_stopped`` follows ("unless the client manually commits the
  audio buffer during VAD activation"); an empty buffer is an error;
* ``input_audio_buffer.clear`` answers ``input_audio_buffer.cleared``.

Not published, and chosen here: what "minimum speech duration" measures (the emulator counts
consecutive voiced 20 ms windows, and dates the onset from the first of them); ``clear`` during
speech forgets that speech (no ``speech_stopped``, no commit for its item id), and speech that
goes on after it is detected anew, with a new item id, once it has lasted ``speech_duration_ms``
again; committed items are not touched by ``clear``.

Not emulated: the semantic part of the azure_semantic_vad types. ``remove_filler_words`` is
echoed, not applied: the SDK's live tests show an utterance of filler words then yields no
``speech_started`` at all (Azure/azure-sdk-for-python, ``sdk/voicelive/azure-ai-voicelive/tests/
live/test_live_realtime_transcription.py``), but which words count as fillers is not
published. ``end_of_utterance_detection`` is echoed, not applied either.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any, Final

import structlog

from callbridge.sim.voicelive.audio import (
    AudioFormat,
    InputDecoder,
    Int16Samples,
    input_audio_format,
)
from callbridge.sim.voicelive.conversation import Conversation, message_item
from callbridge.sim.voicelive.echo import EchoCanceller
from callbridge.sim.voicelive.protocol import (
    DEFAULT_SPEECH_MS,
    DEFAULT_TURN_DETECTION,
    MIN_COMMIT_MS,
    Ids,
    InvalidRequestError,
    Settings,
    TurnDetection,
)
from callbridge.sim.voicelive.records import (
    AppendRecord,
    EchoCancellation,
    EmulatorSession,
    SpeechRecord,
)
from callbridge.sim.voicelive.responses import Responses
from callbridge.sim.voicelive.transcription import Transcriber
from callbridge.sim.voicelive.vad import EnergyVad, SpeechEnd, SpeechOnset
from callbridge.sim.voicelive.wire import Wire

_log = structlog.get_logger(__name__)

_STEREO_FRAME_BYTES: Final = 4  # one PCM16 sample of each channel


class CallerInput:
    """The input audio buffer of one connection and the VAD that listens to it."""

    def __init__(
        self,
        *,
        wire: Wire,
        ids: Ids,
        record: EmulatorSession,
        settings: Settings,
        conversation: Conversation,
        responses: Responses,
        transcriber: Transcriber,
    ) -> None:
        self._wire = wire
        self._ids = ids
        self._record = record
        self._settings = settings
        self._conversation = conversation
        self._responses = responses
        self._transcriber = transcriber
        self._audio_appended = False
        self._buffer_ms = 0.0
        self._speech: SpeechRecord | None = None
        # Set by configure(), which the connection calls before any event is read.
        self._output_format: AudioFormat
        self._turn_detection: TurnDetection | None = None
        self._canceller: EchoCanceller | None = None
        self._decoder: InputDecoder
        self._vad: EnergyVad

    @property
    def audio_appended(self) -> bool:
        """Audio has flowed: the input format and channel layout are fixed from now on."""
        return self._audio_appended

    def configure(
        self,
        config: Mapping[str, Any],
        echo: EchoCancellation | None,
        output_format: AudioFormat,
    ) -> None:
        """Apply a session configuration (the input's layout only while no audio has flowed:
        ``session.update`` refuses to change it afterwards)."""
        self._output_format = output_format
        self._turn_detection = TurnDetection.from_session(config)
        if not self._audio_appended:
            fmt = input_audio_format(
                config["input_audio_format"], config["input_audio_sampling_rate"]
            )
            self._decoder = InputDecoder(fmt)
            self._canceller = (
                EchoCanceller(fmt.sample_rate) if echo and echo.client_reference else None
            )
            self._vad = EnergyVad(
                sample_rate=fmt.sample_rate,
                threshold_rms=self._settings.vad_threshold_rms,
                min_speech_ms=DEFAULT_SPEECH_MS,
                silence_ms=DEFAULT_TURN_DETECTION["silence_duration_ms"],
            )
        if self._turn_detection is not None:
            self._vad.silence_ms = self._turn_detection.silence_duration_ms
            self._vad.min_speech_ms = self._turn_detection.min_speech_ms

    async def append(self, audio_b64: str) -> None:
        audio = base64.b64decode(audio_b64)
        if self._canceller is not None and len(audio) % _STEREO_FRAME_BYTES:
            # REF input_audio_buffer.append: with channels 2 "each chunk must have a byte
            # length divisible by 4". The error for one that has not is not published.
            raise InvalidRequestError(
                "invalid_value",
                f"stereo PCM16 audio must come in multiples of 4 bytes, not {len(audio)}",
                "audio",
            )
        samples = self._decoder.decode(audio)
        channels = 2 if self._canceller is not None else 1
        ms = samples.size / channels * 1000 / self._decoder.format.sample_rate
        self._audio_appended = True
        self._buffer_ms += ms
        self._record.appends.append(AppendRecord(time.monotonic(), audio, ms))
        await self._listen(self._microphone(samples))

    def _microphone(self, samples: Int16Samples) -> Int16Samples:
        if self._canceller is None:
            return samples
        heard = self._canceller.process(samples)
        self._record.echo_path = self._canceller.path
        return heard

    async def _listen(self, samples: Int16Samples) -> None:
        for vad_event in self._vad.feed(samples):
            td = self._turn_detection
            if td is None:
                continue
            match vad_event:
                case SpeechOnset(onset_ms=onset_ms):
                    await self._on_speech_onset(onset_ms, td)
                case SpeechEnd(end_ms=end_ms, speech_ms=speech_ms):
                    self._on_speech_end(end_ms, speech_ms, td)

    async def _on_speech_onset(self, onset_ms: int, td: TurnDetection) -> None:
        speech = SpeechRecord(
            item_id=self._ids.new("item"),
            onset_ms=onset_ms,
            audio_start_ms=max(0, onset_ms - td.prefix_padding_ms),
        )
        self._speech = speech
        self._record.speech.append(speech)

        def mark_sent(at: float) -> None:
            speech.started_sent_at = at

        self._wire.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": speech.audio_start_ms,
                "item_id": speech.item_id,
            },
            on_sent=mark_sent,
        )
        if td.interrupt_response:
            await self._responses.cancel("turn_detected")

    def _on_speech_end(self, end_ms: int, speech_ms: int, td: TurnDetection) -> None:
        speech = self._speech
        if speech is None:
            return
        speech.audio_end_ms = end_ms

        def mark_sent(at: float) -> None:
            speech.stopped_sent_at = at

        self._wire.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": end_ms,
                "item_id": speech.item_id,
            },
            on_sent=mark_sent,
        )
        self._commit(speech.item_id, speech_ms)
        if not td.create_response:
            return
        active = self._responses.active_id
        if active is None:
            self._responses.start(self._output_format, "server_vad")
            return
        note = (
            f"{speech.item_id}: committed while {active} was in progress "
            "(interrupt_response false); no response was started for it"
        )
        self._record.notes.append(note)
        _log.info("voicelive_emulator.response_not_started", session=self._record.index, note=note)

    def commit(self) -> None:
        """``input_audio_buffer.commit``: a user item from the buffer, and no response."""
        if self._buffer_ms < MIN_COMMIT_MS:
            raise InvalidRequestError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {MIN_COMMIT_MS}ms of audio, "
                f"but buffer only has {self._buffer_ms:.2f}ms of audio",
            )
        item_id = self._speech.item_id if self._speech else self._ids.new("item")
        self._vad.reset_speech()
        self._commit(item_id, round(self._buffer_ms))

    def clear(self) -> None:
        """``input_audio_buffer.clear``: the uncommitted audio, and any speech in it, is gone."""
        self._buffer_ms = 0.0
        self._speech = None
        self._vad.reset_speech()
        self._wire.emit({"type": "input_audio_buffer.cleared"})

    def _commit(self, item_id: str, speech_ms: int) -> None:
        self._buffer_ms = 0.0
        self._speech = None
        self._record.caller_turns += 1
        # As the API reference 2026-07-15 shows it (conversation.item.created, "Example with
        # Audio Item"): "audio": null, the caller's audio is not echoed back. SDK 1.3.1 marks the
        # field required (see wire.DOCUMENTED_BEYOND_SDK). The transcript is not known yet: it
        # comes in conversation.item.input_audio_transcription.completed.
        content = [{"type": "input_audio", "audio": None, "transcript": None}]
        created = self._conversation.add(
            item_id, message_item(item_id, "user", "completed", content)
        )
        configured = self._record.config.get("input_audio_transcription") is not None
        self._wire.emit(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": created["previous_item_id"],
            },
            on_sent=self._transcriber.transcribe(item_id, speech_ms, configured=configured),
        )
        self._wire.emit(created)
