"""CallBridge: one phone call bridged to one Voice Live session.

Three tasks per call, owned here and cancelled together:
- the caller pump: ACS media frames -> codec -> ``input_audio_buffer.append`` (silent frames
  too, so Voice Live's VAD measures the caller's pauses from real audio);
- the agent pump: Voice Live events -> agent audio into the pacer, barge-in, transcripts;
- the pacer: releases agent audio to ACS in real time and keeps the heard-position ledger.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.aio import ConnectionClosed, VoiceLiveConnection
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    ServerEvent,
    ServerEventConversationItemInputAudioTranscriptionCompleted,
    ServerEventConversationItemTruncated,
    ServerEventError,
    ServerEventInputAudioBufferSpeechStarted,
    ServerEventResponseAudioDelta,
    ServerEventResponseAudioDone,
    ServerEventResponseAudioTranscriptDone,
    ServerEventResponseCreated,
    ServerEventResponseDone,
    ServerEventSessionUpdated,
)

from callbridge.bridge.codec import Codec, make_codec
from callbridge.bridge.framer import Framer
from callbridge.bridge.pacer import FramePacer, Heard, ItemKey, OutFrame
from callbridge.config import PacingSettings
from callbridge.routing import AgentProfile
from callbridge.telephony import media
from callbridge.voice.session import greeting_request, session_request

log = structlog.get_logger(__name__)

METADATA_TIMEOUT_S = 10.0
"""How long to wait for ACS's first media frame before giving up on the call."""

MAX_UNREADABLE_IN_A_ROW = 100
"""Consecutive undecodable Voice Live frames after which the connection is deemed broken."""


@dataclass(slots=True)
class CallStats:
    """What happened on one call; logged when it ends and read by tests and reports."""

    caller_frames: int = 0
    silent_frames: int = 0
    malformed_media: int = 0
    unknown_media: int = 0
    dtmf_digits: int = 0
    malformed_events: int = 0
    voice_live_errors: int = 0
    agent_audio_ms: float = 0.0
    dropped_agent_audio_ms: float = 0.0
    barge_ins: list[BargeIn] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BargeIn:
    """One interruption: what was cut, and what Voice Live was told."""

    item_id: str
    heard_ms: float
    audio_end_ms: int
    received_ms: float
    cancelled_response: bool


class ResponseState:
    """Which Voice Live response is generating, so ``response.cancel`` is sent only when valid."""

    __slots__ = ("active_id", "cancel_sent")

    def __init__(self) -> None:
        self.active_id: str | None = None
        self.cancel_sent = False

    def created(self, response_id: str) -> None:
        self.active_id = response_id
        self.cancel_sent = False

    def done(self, response_id: str) -> None:
        if response_id == self.active_id:
            self.active_id = None

    def take_cancel(self) -> str | None:
        """The response to cancel now, at most once per response."""
        if self.active_id is None or self.cancel_sent:
            return None
        self.cancel_sent = True
        return self.active_id


class CallBridge:
    """Bridges one ACS media WebSocket to one Voice Live connection until either side ends."""

    def __init__(
        self,
        *,
        acs: web.WebSocketResponse,
        voice: VoiceLiveConnection,
        profile: AgentProfile,
        pacing: PacingSettings,
        transcription_model: str,
    ) -> None:
        self._acs = acs
        self._voice = voice
        self._profile = profile
        self._pacing = pacing
        self._transcription_model = transcription_model
        self.stats = CallStats()
        self._responses = ResponseState()
        self._greeted = False
        self._muted_responses: set[str] = set()
        self._received_ms: dict[ItemKey, float] = {}
        self._item_response: dict[str, str] = {}
        # Set once the first media frame says which rate ACS uses.
        self._codec: Codec
        self._framer: Framer
        self._pacer: FramePacer

    async def run(self) -> CallStats:
        """Bridge until the caller or Voice Live hangs up; always returns the call's stats."""
        first = await self._await_first_audio_message()
        if first is None:
            return self.stats
        rate = (
            first.sample_rate if isinstance(first, media.AudioMetadata) else media.DEFAULT_ACS_RATE
        )
        self._codec = make_codec(self._profile.audio_format, rate)
        self._framer = Framer(self._codec.acs_frame_bytes)
        self._pacer = FramePacer(
            self._acs.send_str,
            lead_ms=self._pacing.lead_ms,
            playout_delay_ms=self._pacing.playout_delay_ms,
        )
        log.info("call.media_started", sample_rate=rate, audio_format=self._profile.audio_format)
        await self._voice.session.update(
            session=session_request(self._profile, self._codec, self._transcription_model)
        )
        if isinstance(first, media.AudioData):
            await self._forward_caller_audio(first)
        await _run_until_first_done(
            caller=self._caller_pump(),
            agent=self._agent_pump(),
            pacer=self._pacer.run(),
        )
        self._log_summary()
        return self.stats

    async def _await_first_audio_message(self) -> media.AudioMetadata | media.AudioData | None:
        """ACS sends ``AudioMetadata`` first; tolerate its absence (then the rate is 16 kHz)."""
        try:
            async with asyncio.timeout(METADATA_TIMEOUT_S):
                async for message in self._acs:
                    parsed = self._parse_media(message)
                    if isinstance(parsed, media.AudioMetadata | media.AudioData):
                        return parsed
                    if parsed is _CLOSED:
                        return None
        except TimeoutError:
            log.error("call.no_media", timeout_s=METADATA_TIMEOUT_S)
            await self._acs.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"no media")
        return None

    def _parse_media(self, message: aiohttp.WSMessage) -> media.InboundMessage | object | None:
        """Parse one WebSocket message; malformed ones are logged, counted and skipped (None)."""
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                parsed = media.parse(message.data)
            except media.WireError as exc:
                self.stats.malformed_media += 1
                log.warning(
                    "acs.malformed_frame", reason=str(exc), count=self.stats.malformed_media
                )
                return None
            if isinstance(parsed, media.Unknown):
                self.stats.unknown_media += 1
                log.info("acs.unknown_frame", kind=parsed.kind)
                return None
            return parsed
        if message.type is aiohttp.WSMsgType.BINARY:
            self.stats.malformed_media += 1
            log.warning(
                "acs.malformed_frame", reason="binary frame", count=self.stats.malformed_media
            )
            return None
        return _CLOSED

    async def _caller_pump(self) -> None:
        async for message in self._acs:
            parsed = self._parse_media(message)
            match parsed:
                case media.AudioData():
                    await self._forward_caller_audio(parsed)
                case media.DtmfData(digit=digit):
                    self.stats.dtmf_digits += 1
                    log.info("caller.dtmf", digit=digit)
                case media.AudioMetadata(sample_rate=rate) if rate != self._codec.acs_rate:
                    self.stats.malformed_media += 1
                    log.warning("acs.metadata_changed_rate", sample_rate=rate)
                case _ if parsed is _CLOSED:
                    break
        log.info("call.caller_hung_up", close_code=self._acs.close_code)

    async def _forward_caller_audio(self, frame: media.AudioData) -> None:
        self.stats.caller_frames += 1
        self.stats.silent_frames += frame.silent
        encoded = self._codec.encoder.encode(frame.pcm)
        # A plain mapping through the SDK's send(): the typed model would cost ~15 µs per
        # 20 ms frame to build and serialise a two-key object.
        await self._voice.send(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(encoded).decode()}
        )

    async def _agent_pump(self) -> None:
        unreadable_in_a_row = 0
        while True:
            try:
                event = await self._voice.recv()
            except ConnectionClosed as exc:
                log.info("voice_live.closed", code=exc.code)
                break
            except (VoiceLiveConnectionError, AttributeError, TypeError, ValueError) as exc:
                # The SDK raises on undecodable frames; one bad event must not end the call.
                self.stats.malformed_events += 1
                unreadable_in_a_row += 1
                log.warning("voice_live.malformed_event", error=str(exc))
                if unreadable_in_a_row >= MAX_UNREADABLE_IN_A_ROW:
                    # Nothing readable for this long: the connection itself is broken.
                    log.error("voice_live.unreadable", events=unreadable_in_a_row)
                    break
                continue
            unreadable_in_a_row = 0
            try:
                await self._on_event(event)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.stats.malformed_events += 1
                log.warning(
                    "voice_live.malformed_event", event_type=str(event.get("type")), error=str(exc)
                )
        if not self._acs.closed:
            await self._acs.close(code=aiohttp.WSCloseCode.OK, message=b"voice session ended")

    async def _on_event(self, event: ServerEvent) -> None:
        match event:
            case ServerEventResponseAudioDelta():
                self._on_audio_delta(event)
            case ServerEventResponseAudioDone():
                self._end_of_item((_str(event.item_id), _int(event.content_index)))
            case ServerEventInputAudioBufferSpeechStarted():
                await self._on_speech_started()
            case ServerEventResponseCreated():
                self._responses.created(_str(event.response.id))
            case ServerEventResponseDone():
                self._responses.done(_str(event.response.id))
            case ServerEventSessionUpdated() if not self._greeted:
                self._greeted = True
                await self._voice.response.create(response=greeting_request(self._profile))
            case ServerEventResponseAudioTranscriptDone():
                log.info("agent.transcript", item_id=event.item_id, text=event.transcript)
            case ServerEventConversationItemInputAudioTranscriptionCompleted():
                log.info("caller.transcript", item_id=event.item_id, text=event.transcript)
            case ServerEventConversationItemTruncated():
                log.info(
                    "voice_live.truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms
                )
            case ServerEventError():
                self.stats.voice_live_errors += 1
                error = event.error
                log.error(
                    "voice_live.error",
                    error_type=getattr(error, "type", None),
                    code=getattr(error, "code", None),
                    message=getattr(error, "message", None),
                )

    def _on_audio_delta(self, event: ServerEventResponseAudioDelta) -> None:
        response_id = _str(event.response_id)
        audio = event.delta
        if not isinstance(audio, bytes):
            raise ValueError("response.audio.delta carries no base64 audio")
        audio_ms = self._codec.output_ms(len(audio))
        if response_id in self._muted_responses:
            # Late audio of an interrupted response: the caller must never hear it.
            self.stats.dropped_agent_audio_ms += audio_ms
            return
        key = (_str(event.item_id), _int(event.content_index))
        self._item_response[key[0]] = response_id
        self._received_ms[key] = self._received_ms.get(key, 0.0) + audio_ms
        self.stats.agent_audio_ms += audio_ms
        self._queue_whole_frames(key, self._codec.decoder.decode(audio))

    def _queue_whole_frames(self, key: ItemKey, pcm: bytes) -> None:
        frame_ms = self._codec.frame_ms
        for frame in self._framer.push(pcm):
            self._pacer.push(OutFrame(key, frame_ms, media.audio_data(frame)))

    def _end_of_item(self, key: ItemKey) -> None:
        """The item's audio is complete: release what the codec and framer still hold."""
        if self._item_response.get(key[0]) in self._muted_responses:
            return
        self._queue_whole_frames(key, self._codec.decoder.flush())
        rest = self._framer.flush()
        if rest is not None:
            pcm, real = rest
            self._pacer.push(OutFrame(key, self._codec.pcm_ms(real), media.audio_data(pcm)))

    async def _on_speech_started(self) -> None:
        """Barge-in: stop the caller's playback, stop generation, tell the model what was heard."""
        if not self._pacer.is_playing():
            # Nothing to stop at the phone; a response still being generated would talk over
            # the caller, so it is cancelled, but there is nothing to truncate.
            response_id = self._responses.take_cancel()
            if response_id is not None:
                self._muted_responses.add(response_id)
                await self._voice.response.cancel(response_id=response_id)
            return
        cut = self._pacer.flush()
        await self._acs.send_str(media.STOP_AUDIO)
        self._codec.decoder.reset()
        self._framer.clear()
        for heard in cut:
            response_id = self._item_response.get(heard.item_id)
            if response_id is not None:
                self._muted_responses.add(response_id)
        cancel_id = self._responses.take_cancel()
        if cancel_id is not None:
            self._muted_responses.add(cancel_id)
            await self._voice.response.cancel(response_id=cancel_id)
        for heard in cut:
            await self._truncate(heard, cancelled=cancel_id is not None)

    async def _truncate(self, heard: Heard, *, cancelled: bool) -> None:
        key = (heard.item_id, heard.content_index)
        received_ms = self._received_ms.get(key, 0.0)
        # The codec delays audio by a fixed amount: the caller's heard PCM starts that much
        # later than the item's audio. Never claim more than Voice Live generated.
        position = heard.heard_ms - self._codec.decoder_delay_ms
        audio_end_ms = int(max(0.0, min(position, received_ms)))
        await self._voice.conversation.item.truncate(
            item_id=heard.item_id, content_index=heard.content_index, audio_end_ms=audio_end_ms
        )
        barge_in = BargeIn(
            item_id=heard.item_id,
            heard_ms=heard.heard_ms,
            audio_end_ms=audio_end_ms,
            received_ms=received_ms,
            cancelled_response=cancelled,
        )
        self.stats.barge_ins.append(barge_in)
        log.info(
            "call.barge_in",
            item_id=heard.item_id,
            audio_end_ms=audio_end_ms,
            received_ms=round(received_ms),
            cancelled_response=cancelled,
        )

    def _log_summary(self) -> None:
        pacer = self._pacer.core.stats
        log.info(
            "call.ended",
            caller_frames=self.stats.caller_frames,
            silent_frames=self.stats.silent_frames,
            malformed_media=self.stats.malformed_media,
            malformed_events=self.stats.malformed_events,
            voice_live_errors=self.stats.voice_live_errors,
            agent_audio_ms=round(self.stats.agent_audio_ms),
            dropped_agent_audio_ms=round(self.stats.dropped_agent_audio_ms),
            barge_ins=len(self.stats.barge_ins),
            frames_sent=pacer.frames,
            spurts=pacer.spurts,
            pacer_reanchors=pacer.reanchors,
            pacer_starved=pacer.starved,
            pacer_max_late_ms=round(pacer.max_late_ms, 1),
        )


_CLOSED = object()
"""Marks the end of the ACS socket (close, error) in ``_parse_media``."""


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


async def _run_until_first_done(**coroutines: Coroutine[Any, Any, None]) -> None:
    """Run named tasks until one finishes; cancel and await the rest; re-raise a failure."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coroutines.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
