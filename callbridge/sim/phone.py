"""The simulated caller: ACS's side of the media WebSocket plus the person holding the phone.

``Phone`` dials the bridge's media WebSocket the way ACS does, streams the caller's audio in real
time (20 ms frames, silence included) following a script, and plays what the bridge sends back
through ``Playout`` (``callbridge.sim.playout``), a model of ACS's playout buffer and the
caller's ear. The ``CallRecord`` it returns is the ground truth of every timing test: what the
caller heard, when, and what each StopAudio cut.

All times are ``time.monotonic()`` seconds. Each bridge message is stamped the moment it is
received and playback is computed from those stamps, never simulated with sleeps, so the record
is exact (sub-millisecond) whatever the event loop's timer resolution.

This module places the call and keeps its record; the parts are its siblings:
``callbridge.sim.phone_line`` (the media sockets, dropped and reopened),
``callbridge.sim.microphone`` (the caller's frames, from ``callbridge.sim.script``),
``callbridge.sim.echo`` (a speakerphone's echo of what the phone plays),
``callbridge.sim.media_faults`` (drops and stalls), ``callbridge.sim.media_messages`` (the
messages on the socket), ``callbridge.sim.mark_answers`` (answers to playback marks) and
``callbridge.sim.call_record`` (the record's types). Their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field

import aiohttp
import structlog

from callbridge.sim.call_record import (
    BadMessage,
    CallRecord,
    ClosedBy,
    RefusedRejoin,
    SocketRecord,
    Stall,
)
from callbridge.sim.echo import Echo
from callbridge.sim.mark_answers import MarkAnswers
from callbridge.sim.media_faults import DROP_CLOSE_CODE, MediaDrop, MediaFault, MediaStall
from callbridge.sim.media_messages import (
    BridgeMessage,
    BridgeMessageError,
    PlayAudio,
    StopAudio,
    parse_bridge_message,
)
from callbridge.sim.microphone import Microphone
from callbridge.sim.phone_line import Dialler, LineChange, PhoneLine, WebSocket
from callbridge.sim.playout import Arrival, Playout, Spurt, StopRecord
from callbridge.sim.script import FRAME_MS, Step

__all__ = [
    "DEFAULT_PARTICIPANT",
    "DROP_CLOSE_CODE",
    "PHONE_RATES",
    "Arrival",
    "BadMessage",
    "BridgeMessage",
    "BridgeMessageError",
    "CallRecord",
    "ClosedBy",
    "Echo",
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
    echo: Echo | None = None
    """A speakerphone: what the phone plays comes back in what it sends (``caller_audio``)."""

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
        async with aiohttp.ClientSession() as session:
            dialler = Dialler(
                session,
                self.url,
                call_connection_id=self.call_connection_id or str(uuid.uuid4()),
                correlation_id=self.correlation_id or str(uuid.uuid4()),
                timeout_s=self.connect_timeout_s,
            )
            ws = await dialler.connect(self.headers)
            if connected is not None:
                connected.set()
            return await _Call(self, dialler, hangup, on_line).run(ws)


class _Call:
    """One call in progress: its clock, its line, the caller's microphone and ear."""

    def __init__(
        self,
        phone: Phone,
        dialler: Dialler,
        hangup: asyncio.Event | None,
        on_line: Callable[[LineChange], None] | None,
    ) -> None:
        self._phone = phone
        self._dialler = dialler
        self._hangup = hangup
        self._opened_at = time.monotonic()
        self._log = logger.bind(call_connection_id=dialler.call_connection_id)
        rate = phone.sample_rate
        frame_bytes = rate * FRAME_MS // 1000 * 2
        self._playout = Playout(
            sample_rate=rate,
            playout_delay_ms=phone.playout_delay_ms,
            spurt_gap_ms=phone.spurt_gap_ms,
            lead_ms=phone.lead_ms,
        )
        self._line = PhoneLine(
            dialler,
            sample_rate=rate,
            frame_bytes=frame_bytes,
            rejoin_headers=self._rejoin_headers,
            on_message=self._on_message,
            on_line=on_line,
        )
        self._microphone = Microphone(
            self._line,
            self._playout,
            script=phone.script,
            sample_rate=rate,
            frame_bytes=frame_bytes,
            participant_raw_id=phone.participant_raw_id,
            hangup_after_s=phone.hangup_after_s,
            faults=phone.faults,
            opened_at=self._opened_at,
            echo=phone.echo,
        )
        self._bad_count = 0
        self._bad: list[BadMessage] = []
        self._closed_by: ClosedBy | None = None
        # Marks are the call's: one queued before a drop is answered on the socket after it.
        self._marks = MarkAnswers(self._line.send)

    async def run(self, ws: WebSocket) -> CallRecord:
        """Run the call from its first socket, ``ws``, until it ends."""
        self._log.info("phone.connected", sample_rate=self._phone.sample_rate)
        await self._line.attach(ws, self._opened_at)
        tasks = [
            asyncio.create_task(self._speak(), name="phone-send"),
            asyncio.create_task(self._remote_hangup(), name="phone-remote-hangup"),
            asyncio.create_task(self._line.bridge_gone.wait(), name="phone-bridge-gone"),
        ]
        drops = asyncio.create_task(
            self._line.run_drops(self._phone.faults, self._opened_at), name="phone-drops"
        )
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
            await self._line.hang_up(ended_at, self._closed_by or "bridge")
        for result in results:
            if isinstance(result, Exception):
                raise result
        return self._record(ended_at)

    async def _speak(self) -> None:
        """The caller talks until they hang up."""
        await self._microphone.run()
        self._closed_by = "phone"

    def _rejoin_headers(self) -> Mapping[str, str]:
        phone = self._phone
        return phone.headers if phone.rejoin_headers is None else phone.rejoin_headers()

    async def _remote_hangup(self) -> None:
        """Wait for the network to end the call; without a ``hangup`` event, wait forever."""
        if self._hangup is None:
            await asyncio.Future()
        else:
            await self._hangup.wait()
        if self._closed_by is None:
            self._closed_by = "network"

    # ------------------------------------------------------------------ the ear

    def _on_message(self, at: float, data: str | bytes) -> None:
        """Apply one message from the bridge, received at ``at``."""
        if isinstance(data, bytes):
            self._on_bad(at, "binary frame", repr(data[:_SAMPLE_CHARS]))
            return
        try:
            message = parse_bridge_message(data)
        except BridgeMessageError as exc:
            self._on_bad(at, str(exc), data[:_SAMPLE_CHARS])
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

    # ------------------------------------------------------------------ the record

    def _record(self, ended_at: float) -> CallRecord:
        self._playout.finish(ended_at)
        closed_by = self._closed_by or "bridge"
        microphone, line = self._microphone, self._line
        record = CallRecord(
            call_connection_id=self._dialler.call_connection_id,
            correlation_id=self._dialler.correlation_id,
            sample_rate=self._phone.sample_rate,
            ws_opened_at=self._opened_at,
            ws_closed_at=ended_at,
            closed_by=closed_by,
            close_code=line.final_close_code,
            spurts=self._playout.spurts,
            stops=self._playout.stops,
            arrivals=self._playout.arrivals,
            bad_message_count=self._bad_count,
            bad_messages=self._bad,
            steps=microphone.steps,
            frames_sent=microphone.frames_sent,
            silent_frames_sent=microphone.silent_frames,
            sent_frames=microphone.sent_runs,
            late_frames=microphone.late_frames,
            playout_delay_ms=self._phone.playout_delay_ms,
            mark_answers=self._marks.answers,
            caller_audio=microphone.caller_audio(),
            heard_audio=self._playout.heard_audio(self._opened_at, ended_at),
            sockets=line.sockets,
            refused_rejoins=line.refused_rejoins,
            stalls=microphone.stalls,
            lost_voiced_ms=microphone.lost_voiced_ms,
        )
        self._log.info(
            "phone.call_ended",
            closed_by=closed_by,
            close_code=record.close_code,
            duration_s=round(ended_at - self._opened_at, 3),
            spurts=len(record.spurts),
            stops=len(record.stops),
            bad_messages=self._bad_count,
            late_frames=microphone.late_frames,
            sockets=len(line.sockets),
            lost_voiced_ms=record.lost_voiced_ms,
        )
        return record
