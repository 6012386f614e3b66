"""The simulated caller: ACS's side of the media WebSocket plus the person holding the phone.

``Phone`` dials the bridge's media WebSocket the way ACS does, streams the caller's audio in real
time (20 ms frames, silence included) following a script, and plays what the bridge sends back
through ``Playout`` (``callbridge.sim.playout``), a model of ACS's playout buffer and the
caller's ear. The ``CallRecord`` it returns is the ground truth of every timing test: what the
caller heard, when, and what each StopAudio cut.

All times are ``time.monotonic()`` seconds. Each bridge message is stamped the moment it is
received and playback is computed from those stamps, never simulated with sleeps, so the record
is exact (sub-millisecond) whatever the event loop's timer resolution.

The messages on the socket are written and parsed by ``callbridge.sim.media_messages``; the
record's types are in ``callbridge.sim.call_record`` (all re-exported here).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aiohttp
import numpy as np
import structlog

from callbridge.sim.call_record import BadMessage, CallRecord, ClosedBy
from callbridge.sim.mark_answers import MarkAnswers
from callbridge.sim.media_messages import (
    BridgeMessage,
    BridgeMessageError,
    PlayAudio,
    StopAudio,
    audio_message,
    dtmf_message,
    frame_timestamp,
    metadata_message,
    parse_bridge_message,
)
from callbridge.sim.playout import Arrival, Playout, Spurt, StopRecord
from callbridge.sim.script import FRAME_MS, FRAME_S, TIME_SLACK_S, ScriptRunner, Step

__all__ = [
    "DEFAULT_PARTICIPANT",
    "PHONE_RATES",
    "Arrival",
    "BadMessage",
    "BridgeMessage",
    "BridgeMessageError",
    "CallRecord",
    "ClosedBy",
    "Phone",
    "PlayAudio",
    "Spurt",
    "StopAudio",
    "StopRecord",
    "parse_bridge_message",
]

logger = structlog.get_logger(__name__)

PHONE_RATES = (16000, 24000)
"""The PCM16 rates ACS media streaming offers."""

DEFAULT_PARTICIPANT = "4:+15555550100"
"""The caller's raw id in ``AudioData.participantRawID`` (a PSTN number)."""

_MAX_BAD_SAMPLES = 20  # keep a few offending messages for the report, count them all
_SAMPLE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Phone:
    """A caller on an ACS phone line, dialling the bridge's media WebSocket.

    A ``Phone`` is the call's settings; each ``run()`` places one call (with new ids unless
    given), so one ``Phone`` can place many.
    """

    url: str
    """The media WebSocket URL, e.g. ``ws://127.0.0.1:8080/ws?token=...``."""
    _: KW_ONLY
    script: Sequence[Step] = ()
    """What the caller says and presses, and when (see ``callbridge.sim.script``)."""
    sample_rate: int = 16000
    """The negotiated PCM16 rate, 16000 or 24000."""
    playout_delay_ms: float = 60.0
    """Jitter-buffer fill before audio reaching an empty queue starts playing."""
    lead_ms: float = 40.0
    """How far ahead of real time the bridge's pacer may send (the jitter grid allows it)."""
    spurt_gap_ms: float = 250.0
    """Playback gaps at least this long separate talk spurts."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra upgrade headers, e.g. ``{"Authorization": "Bearer ..."}``."""
    call_connection_id: str | None = None
    """``x-ms-call-connection-id``; a new UUID per call if None."""
    correlation_id: str | None = None
    """``x-ms-call-correlation-id``; a new UUID per call if None."""
    participant_raw_id: str = DEFAULT_PARTICIPANT
    hangup_after_s: float = 2.0
    """The phone hangs up this long after the script's last step (a ``Hangup`` step, sooner)."""
    max_duration_s: float = 60.0
    """The call is closed (``closed_by="timeout"``) after this long."""
    connect_timeout_s: float = 10.0
    """Bound on the WebSocket handshake."""

    def __post_init__(self) -> None:
        if self.sample_rate not in PHONE_RATES:
            raise ValueError(f"ACS streams PCM16 at {PHONE_RATES} Hz, not {self.sample_rate}")

    async def run(
        self, *, hangup: asyncio.Event | None = None, connected: asyncio.Event | None = None
    ) -> CallRecord:
        """Place one call and return its record once it has ended.

        Args:
            hangup: setting it ends the call from the network side (``closed_by="network"``), as
                ACS does when the app hangs up or transfers the call.
            connected: set once the WebSocket handshake has succeeded, when ACS would report
                that media streaming started.

        Raises:
            aiohttp.WSServerHandshakeError: the bridge refused the WebSocket (e.g. 401).
            aiohttp.ClientError, TimeoutError: the bridge could not be reached in time.
        """
        call_id = self.call_connection_id or str(uuid.uuid4())
        correlation_id = self.correlation_id or str(uuid.uuid4())
        headers = {
            "x-ms-call-connection-id": call_id,
            "x-ms-call-correlation-id": correlation_id,
            **self.headers,
        }
        # ws_close bounds the closing handshake, so a silent bridge cannot hold the call open.
        ws_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(self.connect_timeout_s):
                ws = await session.ws_connect(self.url, headers=headers, timeout=ws_timeout)
            if connected is not None:
                connected.set()
            call = _Call(self, ws, call_id, correlation_id, hangup)
            return await call.run()


class _Call:
    """The state of one call in progress: two tasks over one socket."""

    def __init__(
        self,
        phone: Phone,
        ws: aiohttp.ClientWebSocketResponse[Literal[True]],
        call_id: str,
        correlation_id: str,
        hangup: asyncio.Event | None,
    ) -> None:
        self._phone = phone
        self._hangup = hangup
        self._ws = ws
        self._call_id = call_id
        self._correlation_id = correlation_id
        self._opened_at = time.monotonic()
        self._wall_opened_at = datetime.now(UTC)  # ACS stamps frames with wall-clock UTC
        self._log = logger.bind(call_connection_id=call_id)
        rate = phone.sample_rate
        self._frame_bytes = rate * FRAME_MS // 1000 * 2
        self._silence = bytes(self._frame_bytes)
        self._silence_b64 = base64.b64encode(self._silence).decode("ascii")
        self._playout = Playout(
            sample_rate=rate,
            playout_delay_ms=phone.playout_delay_ms,
            spurt_gap_ms=phone.spurt_gap_ms,
            lead_ms=phone.lead_ms,
        )
        self._runner = ScriptRunner(phone.script, sample_rate=rate, opened_at=self._opened_at)
        self._sent = bytearray()  # the caller's audio as sent, silence included
        self._frames_sent = 0
        self._silent_frames = 0
        self._late_frames = 0
        self._bad_count = 0
        self._bad: list[BadMessage] = []
        self._closed_by: ClosedBy | None = None
        self._bridge_gone = asyncio.Event()
        self._marks = MarkAnswers(ws.send_str)

    async def run(self) -> CallRecord:
        self._log.info("phone.connected", sample_rate=self._phone.sample_rate)
        await self._ws.send_str(metadata_message(self._phone.sample_rate, self._frame_bytes))
        sender = asyncio.create_task(self._send_loop(), name="phone-send")
        receiver = asyncio.create_task(self._receive_loop(), name="phone-receive")
        remote = asyncio.create_task(self._remote_hangup(), name="phone-remote-hangup")
        remaining = self._opened_at + self._phone.max_duration_s - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                await asyncio.wait({sender, receiver, remote}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            self._closed_by = "timeout"
        finally:
            ended_at = time.monotonic()
            sender.cancel()
            remote.cancel()
            # Closing wakes the receiver with a CLOSING message, so it returns on its own;
            # cancelling it instead would make aiohttp record an abnormal closure (1006).
            await self._marks.aclose()
            await self._ws.close()
            receiver.cancel()
            results = await asyncio.gather(sender, receiver, remote, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return self._record(ended_at)

    async def _remote_hangup(self) -> None:
        """Wait for the network to end the call; without a ``hangup`` event, wait forever."""
        if self._hangup is None:
            await asyncio.Future()
        else:
            await self._hangup.wait()
        if self._closed_by is None:
            self._closed_by = "network"

    async def _send_loop(self) -> None:
        """The caller's microphone: one frame every 20 ms on a drift-free deadline clock."""
        hangup_after = self._phone.hangup_after_s
        frame = 0
        try:
            while True:
                # Deadlines come from the frame count, so neither sleep overshoot nor float
                # accumulation can make the stream drift from real time.
                due = self._opened_at + frame * FRAME_S
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                if now - due > FRAME_S:
                    self._late_frames += 1
                self._playout.advance(now)
                tick = self._runner.tick(due, self._playout)
                for digit in tick.digits:
                    stamp = frame_timestamp(self._wall_opened_at, frame)
                    participant = self._phone.participant_raw_id
                    await self._ws.send_str(dtmf_message(stamp, participant, digit))
                if tick.hangup:
                    self._closed_by = "phone"
                    return
                await self._ws.send_str(self._audio_message(frame, tick.pcm))
                done_at = self._runner.done_at
                if done_at is not None and due + FRAME_S >= done_at + hangup_after - TIME_SLACK_S:
                    self._closed_by = "phone"
                    return
                frame += 1
        except ConnectionResetError:
            # The bridge is closing; the receiver records how, and ends the call.
            await self._bridge_gone.wait()

    async def _receive_loop(self) -> None:
        """ACS's inbound side: stamp and apply every message from the bridge."""
        try:
            while True:
                msg = await self._ws.receive()
                at = time.monotonic()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._on_text(at, msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._on_bad(at, "binary frame", repr(msg.data[:_SAMPLE_CHARS]))
                else:
                    if msg.type is aiohttp.WSMsgType.ERROR:
                        self._log.warning("phone.socket_error", error=str(msg.data))
                    return
        finally:
            self._bridge_gone.set()

    def _on_text(self, at: float, text: str) -> None:
        try:
            message = parse_bridge_message(text)
        except BridgeMessageError as exc:
            self._on_bad(at, str(exc), text[:_SAMPLE_CHARS])
            return
        if isinstance(message, PlayAudio):
            played_at = self._playout.on_audio(at, message.pcm)
            if message.mark_id is not None:
                self._marks.queued(message.mark_id, played_at)
            return
        self._playout.on_stop(at)
        self._marks.stopped(at)
        stop = self._playout.stops[-1]
        self._log.debug(
            "phone.stop_audio",
            spurt=stop.spurt,
            heard_ms=round(stop.heard_ms, 1),
            discarded_ms=round(stop.discarded_ms, 1),
        )

    def _on_bad(self, at: float, reason: str, sample: str) -> None:
        self._bad_count += 1
        if len(self._bad) < _MAX_BAD_SAMPLES:
            self._bad.append(BadMessage(at, reason, sample))
            self._log.warning("phone.bad_message", reason=reason, sample=sample)

    def _audio_message(self, frame: int, pcm: bytes | None) -> str:
        self._frames_sent += 1
        if pcm is None:
            self._silent_frames += 1
            self._sent += self._silence
            data = self._silence_b64
        else:
            self._sent += pcm
            data = base64.b64encode(pcm).decode("ascii")
        stamp = frame_timestamp(self._wall_opened_at, frame)
        participant = self._phone.participant_raw_id
        return audio_message(stamp, participant, data, silent=pcm is None)

    def _record(self, ended_at: float) -> CallRecord:
        self._playout.finish(ended_at)
        closed_by = self._closed_by or "bridge"
        record = CallRecord(
            call_connection_id=self._call_id,
            correlation_id=self._correlation_id,
            sample_rate=self._phone.sample_rate,
            ws_opened_at=self._opened_at,
            ws_closed_at=ended_at,
            closed_by=closed_by,
            close_code=self._ws.close_code,
            spurts=self._playout.spurts,
            stops=self._playout.stops,
            arrivals=self._playout.arrivals,
            bad_message_count=self._bad_count,
            bad_messages=self._bad,
            steps=self._runner.records,
            frames_sent=self._frames_sent,
            silent_frames_sent=self._silent_frames,
            late_frames=self._late_frames,
            playout_delay_ms=self._phone.playout_delay_ms,
            mark_answers=self._marks.answers,
            caller_audio=np.frombuffer(bytes(self._sent), dtype="<i2").astype(np.int16),
            heard_audio=self._playout.heard_audio(self._opened_at, ended_at),
        )
        self._log.info(
            "phone.call_ended",
            closed_by=closed_by,
            close_code=record.close_code,
            duration_s=round(ended_at - self._opened_at, 3),
            spurts=len(record.spurts),
            stops=len(record.stops),
            bad_messages=self._bad_count,
            late_frames=self._late_frames,
        )
        return record
