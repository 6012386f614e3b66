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
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from socket import SHUT_RDWR
from typing import Final, Literal, TypeAlias

import aiohttp
import numpy as np
import structlog

from callbridge.sim.call_record import (
    BadMessage,
    CallRecord,
    ClosedBy,
    RefusedRejoin,
    SocketEnd,
    SocketRecord,
    Stall,
)
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
from callbridge.sim.script import FRAME_MS, FRAME_S, TIME_SLACK_S, ScriptRunner, Step, Tick

__all__ = [
    "DEFAULT_PARTICIPANT",
    "PHONE_RATES",
    "Arrival",
    "BadMessage",
    "BridgeMessage",
    "BridgeMessageError",
    "CallRecord",
    "ClosedBy",
    "LineChange",
    "MediaDrop",
    "MediaFault",
    "MediaStall",
    "Phone",
    "PlayAudio",
    "RefusedRejoin",
    "SocketRecord",
    "Spurt",
    "Stall",
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


LineChange: TypeAlias = Literal["interrupted", "reestablished", "refused"]
"""What happened to the call's media line, as ``Phone.run(on_line=...)`` reports it: a socket
dropped, a new one replaced it, or the bridge refused the new one."""

DROP_CLOSE_CODE: Final = 1001
"""The close code of an injected drop. ACS does not publish what it sends when its side of the
media socket goes away mid-call; RFC 6455 §7.4.1 names 1001 (going away) for an endpoint that
leaves, e.g. a server going down, which is what a media processor failing over is."""


@dataclass(frozen=True, slots=True)
class MediaDrop:
    """ACS's side closes the media socket ``at_s`` seconds after the first one opened, while
    the call goes on.

    With ``abort`` the TCP connection just ends, without a close frame. ``rejoin_after_s``
    after the drop ACS opens a new socket to the same URL, with a fresh token and the same
    call headers, and sends ``AudioMetadata`` again; None: it never does, and the call stays
    up without media until someone hangs up. The caller's script keeps its own clock: what the
    caller says meanwhile is lost (``CallRecord.lost_voiced_ms``).
    """

    at_s: float
    rejoin_after_s: float | None = 0.5
    abort: bool = False


@dataclass(frozen=True, slots=True)
class MediaStall:
    """The phone sends no frames from ``at_s`` for ``for_s`` seconds (None: for good), while
    the socket stays open and the caller still hears what the bridge sends."""

    at_s: float
    for_s: float | None


MediaFault: TypeAlias = MediaDrop | MediaStall


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
    rejoin_headers: Callable[[], Mapping[str, str]] | None = None
    """Extra upgrade headers of each socket after a drop (e.g. a fresh JWT); None: ``headers``."""
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
    """Bound on each WebSocket handshake."""
    faults: Sequence[MediaFault] = ()
    """Drops and stalls of the media line, timed from the first socket's opening."""

    def __post_init__(self) -> None:
        if self.sample_rate not in PHONE_RATES:
            raise ValueError(f"ACS streams PCM16 at {PHONE_RATES} Hz, not {self.sample_rate}")

    async def run(
        self,
        *,
        hangup: asyncio.Event | None = None,
        connected: asyncio.Event | None = None,
        on_line: Callable[[LineChange], None] | None = None,
    ) -> CallRecord:
        """Place one call and return its record once it has ended.

        Args:
            hangup: setting it ends the call from the network side (``closed_by="network"``), as
                ACS does when the app hangs up or transfers the call.
            connected: set once the WebSocket handshake has succeeded, when ACS would report
                that media streaming started.
            on_line: told of each drop, new socket and refused new socket, as they happen.

        Raises:
            aiohttp.WSServerHandshakeError: the bridge refused the WebSocket (e.g. 401).
            aiohttp.ClientError, TimeoutError: the bridge could not be reached in time.
        """
        ids = _CallIds(
            self.call_connection_id or str(uuid.uuid4()),
            self.correlation_id or str(uuid.uuid4()),
        )
        async with aiohttp.ClientSession() as session:
            line = _Line(self, session, ids, on_line)
            ws = await line.connect(self.headers)
            if connected is not None:
                connected.set()
            return await _Call(self, line, ws, hangup).run()


@dataclass(frozen=True, slots=True)
class _CallIds:
    call_connection_id: str
    correlation_id: str


class _Line:
    """How the phone opens media sockets for one call, and whom it tells about the line."""

    def __init__(
        self,
        phone: Phone,
        session: aiohttp.ClientSession,
        ids: _CallIds,
        on_line: Callable[[LineChange], None] | None,
    ) -> None:
        self.phone = phone
        self.ids = ids
        self._session = session
        self._on_line = on_line

    async def connect(self, headers: Mapping[str, str]) -> _WebSocket:
        """Open one media socket with the call's headers and ``headers``."""
        ids = self.ids
        # ws_close bounds the closing handshake, so a silent bridge cannot hold the call open.
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        all_headers = {
            "x-ms-call-connection-id": ids.call_connection_id,
            "x-ms-call-correlation-id": ids.correlation_id,
            **headers,
        }
        async with asyncio.timeout(self.phone.connect_timeout_s):
            return await self._session.ws_connect(
                self.phone.url, headers=all_headers, timeout=timeout
            )

    def tell(self, change: LineChange) -> None:
        if self._on_line is not None:
            self._on_line(change)


_WebSocket: TypeAlias = aiohttp.ClientWebSocketResponse[Literal[True]]


@dataclass(eq=False, slots=True)
class _Socket:
    """One open media socket and the task reading it."""

    ws: _WebSocket
    opened_at: float
    reader: asyncio.Task[None] | None = None
    end: SocketEnd | None = None
    """Set by whoever on the phone's side closes it; None when the bridge did."""


class _Call:
    """The state of one call in progress: its clock, the caller, the ear, and its sockets."""

    def __init__(
        self, phone: Phone, line: _Line, ws: _WebSocket, hangup: asyncio.Event | None
    ) -> None:
        self._phone = phone
        self._line = line
        self._hangup = hangup
        self._first_ws: _WebSocket | None = ws
        self._opened_at = time.monotonic()
        self._wall_opened_at = datetime.now(UTC)  # ACS stamps frames with wall-clock UTC
        self._log = logger.bind(call_connection_id=line.ids.call_connection_id)
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
        self._lost_frames = 0
        self._bad_count = 0
        self._bad: list[BadMessage] = []
        self._closed_by: ClosedBy | None = None
        self._socket: _Socket | None = None
        self._sockets: list[SocketRecord] = []
        self._refused: list[RefusedRejoin] = []
        self._stalls: list[Stall] = []
        self._final_close_code: int | None = None
        self._bridge_gone = asyncio.Event()
        # Marks are the call's: one queued before a drop is answered on the socket after it.
        self._marks = MarkAnswers(self._send_on_socket)

    async def run(self) -> CallRecord:
        self._log.info("phone.connected", sample_rate=self._phone.sample_rate)
        assert self._first_ws is not None
        await self._attach(self._first_ws, self._opened_at)
        self._first_ws = None
        tasks = [
            asyncio.create_task(self._send_loop(), name="phone-send"),
            asyncio.create_task(self._remote_hangup(), name="phone-remote-hangup"),
            asyncio.create_task(self._bridge_gone.wait(), name="phone-bridge-gone"),
        ]
        drops = asyncio.create_task(self._drops(), name="phone-drops")
        remaining = self._opened_at + self._phone.max_duration_s - time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            self._closed_by = "timeout"
        finally:
            ended_at = time.monotonic()
            for task in (*tasks, drops):
                task.cancel()
            results = await asyncio.gather(*tasks, drops, return_exceptions=True)
            await self._marks.aclose()
            await self._hang_up_socket(ended_at)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return self._record(ended_at)

    # ------------------------------------------------------------------ sockets

    async def _attach(self, ws: _WebSocket, opened_at: float) -> None:
        """Start streaming on a new socket: ``AudioMetadata`` first, then the call's frames."""
        await ws.send_str(metadata_message(self._phone.sample_rate, self._frame_bytes))
        socket = _Socket(ws, opened_at)
        socket.reader = asyncio.create_task(self._receive_loop(socket), name="phone-receive")
        self._socket = socket

    async def _hang_up_socket(self, ended_at: float) -> None:
        socket, self._socket = self._socket, None
        if socket is None:
            return
        socket.end = socket.end or self._closed_by or "bridge"
        # Closing wakes the reader with a CLOSING message, so it returns on its own;
        # cancelling it instead would make aiohttp record an abnormal closure (1006).
        await socket.ws.close()
        self._final_close_code = socket.ws.close_code
        await self._stop_reader(socket)
        self._sockets.append(
            SocketRecord(socket.opened_at, ended_at, socket.end, socket.ws.close_code)
        )

    async def _stop_reader(self, socket: _Socket) -> None:
        assert socket.reader is not None
        socket.reader.cancel()
        await asyncio.gather(socket.reader, return_exceptions=True)

    async def _drops(self) -> None:
        """Drop the line as the faults say, and rejoin after each drop that says so."""
        drops = sorted((f for f in self._phone.faults if isinstance(f, MediaDrop)), key=_at)
        for drop in drops:
            await _sleep_until(self._opened_at + drop.at_s)
            if self._socket is None:  # already down: nothing to drop
                continue
            dropped_at = await self._drop(self._socket, drop.abort)
            if drop.rejoin_after_s is not None:
                await _sleep_until(dropped_at + drop.rejoin_after_s)
                await self._rejoin()

    async def _drop(self, socket: _Socket, abort: bool) -> float:
        self._socket = None
        at = time.monotonic()
        socket.end = "aborted" if abort else "dropped"
        self._log.info("phone.media_dropped", abort=abort)
        if abort:
            # The TCP connection ends with no close frame: the bridge sees an abnormal closure.
            socket.ws.get_extra_info("socket").shutdown(SHUT_RDWR)
            code = None
        else:
            await socket.ws.close(code=DROP_CLOSE_CODE)
            code = DROP_CLOSE_CODE
        await self._stop_reader(socket)
        self._sockets.append(SocketRecord(socket.opened_at, at, socket.end, code))
        self._line.tell("interrupted")
        return at

    async def _rejoin(self) -> None:
        phone = self._phone
        headers = phone.headers if phone.rejoin_headers is None else phone.rejoin_headers()
        try:
            ws = await self._line.connect(headers)
            # A bridge that accepts and at once closes the socket refuses it all the same.
            await self._attach(ws, time.monotonic())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._log.info("phone.rejoin_refused", error=error)
            self._refused.append(RefusedRejoin(time.monotonic(), error))
            self._line.tell("refused")
            return
        self._log.info("phone.rejoined")
        self._line.tell("reestablished")

    async def _send_on_socket(self, message: str) -> None:
        if self._socket is None:
            raise ConnectionResetError("no media socket is open")
        await self._socket.ws.send_str(message)

    # ------------------------------------------------------------------ the caller

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
            if tick.hangup:
                self._closed_by = "phone"
                return
            await self._send_frame(frame, due, tick)
            done_at = self._runner.done_at
            if done_at is not None and due + FRAME_S >= done_at + hangup_after - TIME_SLACK_S:
                self._closed_by = "phone"
                return
            frame += 1

    async def _send_frame(self, frame: int, due: float, tick: Tick) -> None:
        """Send one frame slot's keys and audio, unless no socket or a stall withholds them."""
        socket = self._socket
        stall = self._stall_at(due)
        if socket is None or stall is not None:
            self._sent += self._silence
            voiced = tick.pcm is not None
            if socket is None:
                self._lost_frames += voiced
            elif stall is not None:
                stall.frames_withheld += 1
                stall.voiced_ms += FRAME_MS * voiced
            return
        stamp = frame_timestamp(self._wall_opened_at, frame)
        message = self._audio_message(stamp, tick.pcm)
        # A socket closing under the frame (the bridge closed it, or a drop) loses the frame;
        # the reader or the drop records how the socket ended.
        with contextlib.suppress(ConnectionResetError):
            for digit in tick.digits:
                await socket.ws.send_str(dtmf_message(stamp, self._phone.participant_raw_id, digit))
            await socket.ws.send_str(message)

    def _stall_at(self, due: float) -> Stall | None:
        """The stall that withholds the frame due at ``due``, if any; keeps the stalls' record."""
        offset = due - self._opened_at
        stalled = any(
            isinstance(f, MediaStall)
            and offset >= f.at_s - TIME_SLACK_S
            and (f.for_s is None or offset < f.at_s + f.for_s - TIME_SLACK_S)
            for f in self._phone.faults
        )
        current = self._stalls[-1] if self._stalls and self._stalls[-1].ended_at is None else None
        if stalled and current is None:
            current = Stall(started_at=due)
            self._stalls.append(current)
        elif not stalled and current is not None:
            current.ended_at = due
            current = None
        return current

    def _audio_message(self, stamp: str, pcm: bytes | None) -> str:
        self._frames_sent += 1
        if pcm is None:
            self._silent_frames += 1
            self._sent += self._silence
            data = self._silence_b64
        else:
            self._sent += pcm
            data = base64.b64encode(pcm).decode("ascii")
        return audio_message(stamp, self._phone.participant_raw_id, data, silent=pcm is None)

    # ------------------------------------------------------------------ the ear

    async def _receive_loop(self, socket: _Socket) -> None:
        """ACS's inbound side of one socket: stamp and apply every message from the bridge."""
        try:
            while True:
                msg = await socket.ws.receive()
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
            if socket.end is None:  # nobody on the phone's side closed it: the bridge did
                socket.end = "bridge"
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

    def _record(self, ended_at: float) -> CallRecord:
        self._playout.finish(ended_at)
        closed_by = self._closed_by or "bridge"
        record = CallRecord(
            call_connection_id=self._line.ids.call_connection_id,
            correlation_id=self._line.ids.correlation_id,
            sample_rate=self._phone.sample_rate,
            ws_opened_at=self._opened_at,
            ws_closed_at=ended_at,
            closed_by=closed_by,
            close_code=self._final_close_code,
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
            sockets=self._sockets,
            refused_rejoins=self._refused,
            stalls=self._stalls,
            lost_voiced_ms=float(self._lost_frames * FRAME_MS),
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
            sockets=len(self._sockets),
            lost_voiced_ms=record.lost_voiced_ms,
        )
        return record


def _at(fault: MediaDrop) -> float:
    return fault.at_s


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(at - time.monotonic(), 0.0))
