"""CallBridge: one phone call bridged to one Voice Live session.

Three tasks per call, owned here and cancelled together:
- the caller pump: ACS media frames -> codec -> ``input_audio_buffer.append`` (silent frames
  too, so Voice Live's VAD measures the caller's pauses from real audio); keypad digits -> a
  user message to the agent;
- the agent pump: Voice Live events -> agent audio into the pacer, barge-in, transcripts, tool
  calls;
- the pacer: releases agent audio to ACS in real time and keeps the heard-position ledger.

Tool calls, keypad input and the call's time limit run as short-lived helper tasks the bridge
also owns, so a slow tool never holds up barge-in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.aio import ConnectionClosed, VoiceLiveConnection
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.models import (
    FunctionCallOutputItem,
    InputTextContentPart,
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
    ServerEventResponseFunctionCallArgumentsDone,
    ServerEventSessionUpdated,
    SystemMessageItem,
    UserMessageItem,
)

from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.adapters.voice_live import greeting_request, session_request, verbatim_request
from callbridge.bridge.pacer import FramePacer
from callbridge.core import acs_media
from callbridge.core.codec import Codec, make_codec
from callbridge.core.framer import Framer
from callbridge.core.pacing import Heard, ItemKey, OutFrame
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import PacingSettings
from callbridge.core.tasks import OwnedTasks
from callbridge.tools import END_CALL, TRANSFER_CALL, profile_tools, run_tool

log = structlog.get_logger(__name__)

METADATA_TIMEOUT_S = 10.0
"""How long to wait for ACS's first media frame before giving up on the call."""

MAX_UNREADABLE_IN_A_ROW = 100
"""Consecutive undecodable Voice Live frames after which the connection is deemed broken."""

DTMF_IDLE_S = 1.5
"""Keypad digits are sent to the agent together once the caller pauses this long (or on #)."""

PLAYOUT_WAIT_S = 30.0
"""Bound on waiting for the agent's last words to play out before hanging up or transferring."""

PLAYED_OUT_MARGIN_S = 0.1
"""Extra wait after the estimated end of playout before hanging up or transferring."""

GOODBYE_WAIT_S = 15.0
"""At the time limit the agent says goodbye; the call ends at the latest this much later."""


class CallActions(Protocol):
    """What the bridge can do to the call itself, through ACS's REST API."""

    async def hang_up(self) -> None: ...

    async def transfer(self, target: str) -> None:
        """Raises an exception if ACS refuses the transfer."""
        ...


@dataclass(slots=True)
class CallStats:
    """What happened on one call; logged when it ends and read by tests and reports."""

    caller_frames: int = 0
    silent_frames: int = 0
    malformed_media: int = 0
    unknown_media: int = 0
    dtmf_digits: int = 0
    tool_calls: list[ToolCallStat] = field(default_factory=list)
    ended_by: str | None = None
    """Why the bridge ended the call: ``end_call``, ``transfer_call``, ``time_limit``,
    ``voice_session_ended`` or ``shutdown``; None when the caller (or ACS) did."""
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


@dataclass(frozen=True, slots=True)
class ToolCallStat:
    """One tool call: which, and whether it succeeded."""

    name: str
    call_id: str
    ok: bool


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
        actions: CallActions,
        configured_rate: int | None = None,
        telemetry: CallTelemetry | None = None,
        open_recorder: Callable[[int], CallRecorder] | None = None,
    ) -> None:
        """``configured_rate``: the ACS rate the Voice Live session was already configured
        for (a pre-warmed session); if ACS streams at that rate, no ``session.update`` is sent.
        """
        self._acs = acs
        self._voice = voice
        self._profile = profile
        self._pacing = pacing
        self._transcription_model = transcription_model
        self._actions = actions
        self._configured_rate = configured_rate
        self._telemetry = telemetry
        self._open_recorder = open_recorder
        self._recorder: CallRecorder | None = None
        # The call's ids, bound by the task that owns the call; re-bound where another task
        # (a replica draining) acts on the call, so its log lines still name the call.
        self._log_context = structlog.contextvars.get_contextvars()
        self._started_at = time.monotonic()
        self._first_audio_queued = False
        self._media_started = False
        self._tools = {spec.name: spec for spec in profile_tools(profile)}
        self.stats = CallStats()
        self._helpers = OwnedTasks()
        self._tool_calls: dict[str, list[tuple[str, str, asyncio.Task[str] | None]]] = {}
        self._response_wanted = False
        self._ending = False
        self._create_sent = False
        self._awaiting_goodbye = False
        self._goodbye_response_id: str | None = None
        self._goodbye_done = asyncio.Event()
        self._digits = ""
        self._dtmf_timer: asyncio.TimerHandle | None = None
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
            first.sample_rate
            if isinstance(first, acs_media.AudioMetadata)
            else acs_media.DEFAULT_ACS_RATE
        )
        self._codec = make_codec(self._profile.audio_format, rate)
        self._framer = Framer(self._codec.acs_frame_bytes)
        self._recorder = self._start_recording(rate)
        self._pacer = FramePacer(
            self._acs.send_str,
            lead_ms=self._pacing.lead_ms,
            playout_delay_ms=self._pacing.playout_delay_ms,
            on_sent=self._record_sent_frame if self._recorder is not None else None,
        )
        self._media_started = True
        log.info("call.media_started", sample_rate=rate, audio_format=self._profile.audio_format)
        if rate != self._configured_rate:
            await self._voice.session.update(
                session=session_request(
                    self._profile,
                    self._codec,
                    self._transcription_model,
                    list(self._tools.values()),
                )
            )
        if isinstance(first, acs_media.AudioData):
            await self._forward_caller_audio(first)
        self._helpers.spawn(self._time_limit(), "time-limit")
        try:
            await _run_until_first_done(
                caller=self._caller_pump(),
                agent=self._agent_pump(),
                pacer=self._pacer.run(),
            )
        finally:
            if self._dtmf_timer is not None:
                self._dtmf_timer.cancel()
            for calls in self._tool_calls.values():
                for _, _, running in calls:
                    if running is not None:
                        running.cancel()
            await self._helpers.aclose()
            if self._recorder is not None:
                self._recorder.event("bridge", "call_ended", ended_by=self.stats.ended_by)
                await self._recorder.aclose()
        self._log_summary()
        return self.stats

    async def _await_first_audio_message(
        self,
    ) -> acs_media.AudioMetadata | acs_media.AudioData | None:
        """ACS sends ``AudioMetadata`` first; tolerate its absence (then the rate is 16 kHz)."""
        try:
            async with asyncio.timeout(METADATA_TIMEOUT_S):
                async for message in self._acs:
                    parsed = self._parse_media(message)
                    if isinstance(parsed, acs_media.AudioMetadata | acs_media.AudioData):
                        return parsed
                    if parsed is _CLOSED:
                        return None
        except TimeoutError:
            log.error("call.no_media", timeout_s=METADATA_TIMEOUT_S)
            await self._acs.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"no media")
        return None

    def _parse_media(self, message: aiohttp.WSMessage) -> acs_media.InboundMessage | object | None:
        """Parse one WebSocket message; malformed ones are logged, counted and skipped (None)."""
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                parsed = acs_media.parse(message.data)
            except acs_media.WireError as exc:
                self.stats.malformed_media += 1
                log.warning(
                    "acs.malformed_frame", reason=str(exc), count=self.stats.malformed_media
                )
                return None
            if isinstance(parsed, acs_media.Unknown):
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
                case acs_media.AudioData():
                    await self._forward_caller_audio(parsed)
                case acs_media.DtmfData(digit=digit):
                    self._on_dtmf(digit)
                case acs_media.AudioMetadata(sample_rate=rate) if rate != self._codec.acs_rate:
                    self.stats.malformed_media += 1
                    log.warning("acs.metadata_changed_rate", sample_rate=rate)
                case _ if parsed is _CLOSED:
                    break
        # ACS closes the socket when the caller hangs up; the bridge when it ended the call.
        event = (
            "call.caller_hung_up" if self.stats.ended_by is None else "call.media_closed_by_bridge"
        )
        log.info(event, close_code=self._acs.close_code)

    def _start_recording(self, rate: int) -> CallRecorder | None:
        if self._open_recorder is None:
            return None
        try:
            recorder = self._open_recorder(rate)
        except OSError as exc:  # a full or read-only disk must not stop the call
            log.error("recording.unavailable", error=str(exc))
            return None
        log.info("recording.started", path=str(recorder.path))
        return recorder

    def _record_sent_frame(self, frame: OutFrame) -> None:
        assert self._recorder is not None  # installed only with a recorder
        item_id, content_index = frame.key
        self._recorder.agent_audio(
            frame.pcm,
            item_id=item_id,
            content_index=content_index,
            response_id=self._item_response.get(item_id),
        )

    async def _forward_caller_audio(self, frame: acs_media.AudioData) -> None:
        if self._recorder is not None:
            self._recorder.caller_audio(frame.pcm, silent=frame.silent)
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
        if not self._acs.closed and not self._ending:
            # Without an agent the caller would sit in silence: end the call itself.
            await self._end_call("voice_session_ended", force=True)

    async def _on_event(self, event: ServerEvent) -> None:
        match event:
            case ServerEventResponseAudioDelta():
                self._on_audio_delta(event)
            case ServerEventResponseAudioDone():
                self._end_of_item((_str(event.item_id), _int(event.content_index)))
            case ServerEventInputAudioBufferSpeechStarted():
                await self._interrupt_agent()
            case ServerEventResponseCreated():
                response_id = _str(event.response.id)
                self._responses.created(response_id)
                self._create_sent = False
                if self._awaiting_goodbye:
                    self._awaiting_goodbye = False
                    self._goodbye_response_id = response_id
            case ServerEventResponseDone():
                response_id = _str(event.response.id)
                self._responses.done(response_id)
                await self._after_response(response_id)
            case ServerEventResponseFunctionCallArgumentsDone():
                self._on_tool_call(event)
            case ServerEventSessionUpdated() if not self._greeted:
                self._greeted = True
                await self._voice.response.create(response=greeting_request(self._profile))
            case ServerEventResponseAudioTranscriptDone():
                log.info("agent.transcript", item_id=event.item_id, text=event.transcript)
                if self._recorder is not None:
                    self._recorder.transcript("agent", _str(event.item_id), _str(event.transcript))
            case ServerEventConversationItemInputAudioTranscriptionCompleted():
                log.info("caller.transcript", item_id=event.item_id, text=event.transcript)
                if self._recorder is not None:
                    self._recorder.transcript("caller", _str(event.item_id), _str(event.transcript))
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
        if not self._first_audio_queued and self._telemetry is not None:
            self._first_audio_queued = True
            self._telemetry.first_audio((time.monotonic() - self._started_at) * 1000)
        frame_ms = self._codec.frame_ms
        keep = self._recorder is not None
        for frame in self._framer.push(pcm):
            self._pacer.push(
                OutFrame(key, frame_ms, acs_media.audio_data(frame), frame if keep else b"")
            )

    def _end_of_item(self, key: ItemKey) -> None:
        """The item's audio is complete: release what the codec and framer still hold."""
        if self._item_response.get(key[0]) in self._muted_responses:
            return
        self._queue_whole_frames(key, self._codec.decoder.flush())
        rest = self._framer.flush()
        if rest is not None:
            pcm, real = rest
            kept = pcm if self._recorder is not None else b""
            self._pacer.push(
                OutFrame(key, self._codec.pcm_ms(real), acs_media.audio_data(pcm), kept)
            )

    async def _interrupt_agent(self) -> None:
        """Barge-in: stop the caller's playback, stop generation, tell the model what was heard."""
        if not self._pacer.is_playing():
            # Nothing to stop at the phone; a response still being generated would talk over
            # the caller, so it is cancelled, but there is nothing to truncate.
            response_id = self._responses.take_cancel()
            if response_id is not None:
                self._muted_responses.add(response_id)
                await self._voice.response.cancel(response_id=response_id)
                if self._telemetry is not None:
                    self._telemetry.barge_in(heard_ms=0.0, truncated=False)
            return
        cut = self._pacer.flush()
        await self._acs.send_str(acs_media.STOP_AUDIO)
        if self._recorder is not None:
            self._recorder.stop_audio()
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
        if self._telemetry is not None:
            self._telemetry.barge_in(heard_ms=heard.heard_ms, truncated=True)
        if self._recorder is not None:
            self._recorder.barge_in(
                item_id=heard.item_id,
                content_index=heard.content_index,
                heard_ms=heard.heard_ms,
                audio_end_ms=audio_end_ms,
                received_ms=received_ms,
                cancelled_response=cancelled,
            )
        log.info(
            "call.barge_in",
            item_id=heard.item_id,
            audio_end_ms=audio_end_ms,
            received_ms=round(received_ms),
            cancelled_response=cancelled,
        )

    # --- Keypad ---------------------------------------------------------------------------

    def _on_dtmf(self, digit: str) -> None:
        """Collect keypad digits; send them to the agent once the caller pauses, or on #."""
        self.stats.dtmf_digits += 1
        if self._recorder is not None:
            self._recorder.dtmf(digit)
        self._digits += digit
        # Digits may be a PIN or a card number: their values are never logged.
        log.info("caller.dtmf", pending_digits=len(self._digits))
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
        delay = 0.0 if digit == "#" else DTMF_IDLE_S
        self._dtmf_timer = asyncio.get_running_loop().call_later(delay, self._flush_digits)

    def _flush_digits(self) -> None:
        self._dtmf_timer = None
        digits, self._digits = self._digits, ""
        if digits:
            self._helpers.spawn(self._send_digits(digits), "dtmf")

    async def _send_digits(self, digits: str) -> None:
        text = f"(The caller pressed these keys on the phone keypad: {' '.join(digits)})"
        await self._voice.conversation.item.create(
            item=UserMessageItem(content=[InputTextContentPart(text=text)])
        )
        await self._request_response()

    # --- Responses and tools -------------------------------------------------------------

    async def _request_response(self) -> None:
        """Ask for a response now, or as soon as the one in progress is done."""
        if self._responses.active_id is not None or self._create_sent:
            self._response_wanted = True
            return
        self._create_sent = True
        await self._voice.response.create()

    def _on_tool_call(self, event: ServerEventResponseFunctionCallArgumentsDone) -> None:
        """The model called a tool: user tools start at once, built-ins wait for the response."""
        call_id, name = _str(event.call_id), _str(event.name)
        arguments = event.arguments if isinstance(event.arguments, str) else ""
        spec = self._tools.get(name)
        running = None
        if spec is not None and spec.handler is not None:
            running = asyncio.create_task(
                run_tool(spec, arguments, timeout_s=self._profile.limits.tool_timeout_s),
                name=f"tool-{name}",
            )
        self._tool_calls.setdefault(_str(event.response_id), []).append((call_id, name, running))
        if self._recorder is not None:
            self._recorder.tool_call(name=name, call_id=call_id, arguments=arguments)
        # Arguments may hold personal data: only the tool's name is logged.
        log.info("agent.tool_call", tool=name, call_id=call_id)

    async def _after_response(self, response_id: str) -> None:
        if response_id == self._goodbye_response_id:
            self._goodbye_done.set()
            return
        calls = self._tool_calls.pop(response_id, None)
        if calls:
            interrupted = response_id in self._muted_responses
            self._helpers.spawn(self._finish_tools(calls, interrupted=interrupted), "tools")
        elif self._response_wanted:
            self._response_wanted = False
            await self._request_response()

    async def _finish_tools(
        self, calls: list[tuple[str, str, asyncio.Task[str] | None]], *, interrupted: bool
    ) -> None:
        """Return every tool's result to the model, then carry out a hang-up or transfer."""
        follow_up = False
        call_action: tuple[str, str] | None = None
        for call_id, name, running in calls:
            if interrupted:
                # The caller spoke over this turn: nothing it asked for is carried out.
                if running is not None:
                    running.cancel()
                output = _tool_error("the caller interrupted before this ran")
            elif name in (END_CALL.name, TRANSFER_CALL.name):
                call_action = call_action or (call_id, name)
                continue
            elif running is None:
                output = _tool_error(f"there is no tool named {name!r}")
            else:
                output = await running
                follow_up = True
            self._record_tool(name, call_id, output)
            await self._send_tool_output(call_id, output)
        if call_action is not None:
            call_id, name = call_action
            follow_up = await self._call_action(call_id, name) or follow_up
        if follow_up or self._response_wanted:
            self._response_wanted = False
            await self._request_response()

    async def _call_action(self, call_id: str, name: str) -> bool:
        """End or transfer the call once the agent's words are heard; True if the model
        should speak again (the action failed)."""
        if name == END_CALL.name:
            await self._send_tool_output(call_id, json.dumps({"status": "hanging up"}))
            self._record_tool(name, call_id, "")
            self._helpers.spawn(self._end_call("end_call"), "end-call")
            return False
        target = self._profile.transfer_to
        if target is None:
            output = _tool_error("no transfer target is configured")
        elif not await self._played_out_undisturbed():
            output = _tool_error("the caller interrupted before the transfer")
        else:
            try:
                await self._actions.transfer(target)
            except Exception as exc:  # any refusal by ACS: the caller stays with the agent
                log.error("acs.transfer_failed", error=str(exc) or type(exc).__name__)
                output = _tool_error("the transfer failed; the caller is still on the line")
            else:
                self._ending = True
                self.stats.ended_by = "transfer_call"
                log.info("call.transferred")
                output = json.dumps({"status": "transferred"})
        self._record_tool(name, call_id, output)
        await self._send_tool_output(call_id, output)
        return not self._ending

    def _record_tool(self, name: str, call_id: str, output: str) -> None:
        self.stats.tool_calls.append(ToolCallStat(name, call_id, ok='"error"' not in output))
        if self._recorder is not None:
            self._recorder.tool_result(name=name, call_id=call_id, output=output)

    async def _send_tool_output(self, call_id: str, output: str) -> None:
        await self._voice.conversation.item.create(
            item=FunctionCallOutputItem(call_id=call_id, output=output)
        )

    # --- Ending the call -----------------------------------------------------------------

    async def _played_out_undisturbed(self) -> bool:
        """Wait until the caller has heard all queued agent audio; False on a barge-in."""
        barge_ins = len(self.stats.barge_ins)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PLAYOUT_WAIT_S):
                # Time-based: playout at ACS ends a known delay after the last frame's due
                # time, and no event marks it, so poll once per frame.
                while self._pacer.is_playing():  # noqa: ASYNC110
                    await asyncio.sleep(self._codec.frame_ms / 1000)
                # The heard-end estimate is good to a few ms: keep the last syllable whole.
                await asyncio.sleep(PLAYED_OUT_MARGIN_S)
        return len(self.stats.barge_ins) == barge_ins

    async def _end_call(
        self,
        reason: str,
        *,
        force: bool = False,
        close_code: aiohttp.WSCloseCode = aiohttp.WSCloseCode.OK,
    ) -> None:
        """Hang up once the agent's last words are heard; unless forced, a caller speaking
        over them keeps the call going."""
        if self._ending:
            return
        if not await self._played_out_undisturbed() and not force:
            log.info("call.end_cancelled", reason=reason, detail="the caller spoke")
            return
        self._ending = True
        self.stats.ended_by = reason
        log.info("call.hanging_up", reason=reason)
        try:
            await self._actions.hang_up()
        except Exception as exc:  # the call may already be gone; the socket closes regardless
            log.warning("acs.hang_up_failed", error=str(exc) or type(exc).__name__)
        await self._acs.close(code=close_code, message=reason.encode())

    async def _goodbye_then_hang_up(
        self, reason: str, goodbye: Coroutine[Any, Any, None], close_code: aiohttp.WSCloseCode
    ) -> None:
        """Have the agent say goodbye (bounded by ``GOODBYE_WAIT_S``), then hang up."""
        self._awaiting_goodbye = True
        await goodbye
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_WAIT_S):
                await self._goodbye_done.wait()
        await self._end_call(reason, force=True, close_code=close_code)

    async def shut_down(self, goodbye: str | None) -> None:
        """This replica is stopping: the configured goodbye (cutting the agent short), then
        hang up and close the media socket with 1001."""
        with structlog.contextvars.bound_contextvars(**self._log_context):
            await self._shut_down(goodbye)

    async def _shut_down(self, goodbye: str | None) -> None:
        if self._ending:
            return
        if goodbye is None:
            await self._end_call("shutdown", force=True, close_code=_GOING_AWAY)
            return

        async def say_goodbye() -> None:
            await self._interrupt_agent()
            await self._voice.response.create(response=verbatim_request(goodbye))

        await self._goodbye_then_hang_up("shutdown", say_goodbye(), _GOING_AWAY)

    async def transfer_failed(self) -> None:
        """ACS could not complete a transfer it had accepted: the caller is still here."""
        if self.stats.ended_by != "transfer_call":
            return
        self._ending = False
        self.stats.ended_by = None
        text = "The transfer did not go through; the caller is still on the line. Tell them."
        await self._voice.conversation.item.create(
            item=SystemMessageItem(content=[InputTextContentPart(text=text)])
        )
        await self._request_response()

    async def _time_limit(self) -> None:
        """At the profile's time limit, ask the agent for a goodbye, then hang up."""
        await asyncio.sleep(self._profile.limits.max_call_s)
        log.info("call.time_limit", max_call_s=self._profile.limits.max_call_s)

        async def ask_for_goodbye() -> None:
            text = "The call has reached its time limit. Say a brief, friendly goodbye now."
            await self._voice.conversation.item.create(
                item=SystemMessageItem(content=[InputTextContentPart(text=text)])
            )
            await self._request_response()

        await self._goodbye_then_hang_up("time_limit", ask_for_goodbye(), aiohttp.WSCloseCode.OK)

    def summary(self) -> CallSummary:
        """The call's figures for telemetry (pacing figures only once media flowed)."""
        pacer = self._pacer.core.stats if self._media_started else None
        return CallSummary(
            caller_frames=self.stats.caller_frames,
            malformed_media=self.stats.malformed_media,
            malformed_events=self.stats.malformed_events,
            voice_live_errors=self.stats.voice_live_errors,
            dropped_agent_audio_ms=self.stats.dropped_agent_audio_ms,
            barge_ins=len(self.stats.barge_ins),
            tool_calls=len(self.stats.tool_calls),
            pacer_max_late_ms=pacer.max_late_ms if pacer else None,
            pacer_reanchors=pacer.reanchors if pacer else 0,
            pacer_starved=pacer.starved if pacer else 0,
            ended_by=self.stats.ended_by,
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
            dtmf_digits=self.stats.dtmf_digits,
            tool_calls=len(self.stats.tool_calls),
            ended_by=self.stats.ended_by,
            frames_sent=pacer.frames,
            spurts=pacer.spurts,
            pacer_reanchors=pacer.reanchors,
            pacer_starved=pacer.starved,
            pacer_max_late_ms=round(pacer.max_late_ms, 1),
        )


_GOING_AWAY = aiohttp.WSCloseCode.GOING_AWAY

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


def _tool_error(message: str) -> str:
    return json.dumps({"error": message})


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
