"""Faults the emulator can inject, and the schedule that fires them on one connection.

A fault names the session of a call it hits: ``session=0`` is the first upgrade attempt made
with that ``x-ms-client-request-id`` (refused attempts count), ``1`` the second, ``None`` every
one. A session opened without the header is a call of its own, so only ``session`` 0 or None
hit it. Give faults to ``VoiceLiveEmulator(faults=...)`` (every call) or to
``script_session(..., faults=...)`` (one call).

``Drop``, ``Hang`` and ``Freeze`` fire ``at_s`` seconds after the upgrade completed, or once
response ``during_response`` of the call (0 is the greeting) has sent ``after_audio_ms`` of
audio (0: at its first audio delta). ``SlowAccept`` and ``Refuse`` act on the upgrade;
``Expire`` on the session's lifetime. What fired is recorded on the session
(``EmulatorSession.faults``); refused upgrades on the emulator (``refused_upgrades``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import structlog

from callbridge.sim.voicelive.records import EmulatorSession, FaultRecord, ResponseRecord
from callbridge.sim.voicelive.wire import Wire

_log = structlog.get_logger(__name__)

_THROTTLING_STATUSES: Final = (429, 503)


@dataclass(frozen=True, kw_only=True)
class _TimedFault:
    session: int | None = 0
    at_s: float | None = None
    during_response: int | None = None
    after_audio_ms: int = 0

    def __post_init__(self) -> None:
        if (self.at_s is None) == (self.during_response is None):
            raise ValueError("a fault fires at_s seconds in OR during_response, not both")
        if self.at_s is not None and self.at_s < 0:
            raise ValueError("at_s must not be negative")
        if self.after_audio_ms < 0 or (self.during_response or 0) < 0:
            raise ValueError("during_response and after_audio_ms must not be negative")


@dataclass(frozen=True, kw_only=True)
class Drop(_TimedFault):
    """The service closes the socket: with ``close_code`` (1011, "internal error", by default;
    1000 is a clean close) or, with ``abort``, with no close frame at all, like a TCP reset.
    Queued events that have not left yet are lost."""

    close_code: int = 1011
    abort: bool = False


@dataclass(frozen=True, kw_only=True)
class Hang(_TimedFault):
    """The service goes silent: nothing more is sent (queued deltas included), but the socket
    stays open, client events are still read and handled, and WebSocket pings are answered."""


@dataclass(frozen=True, kw_only=True)
class Freeze(_TimedFault):
    """The path freezes: nothing is sent, client events are ignored and pings go unanswered, so
    only a client heartbeat notices. The installed aiohttp (3.14) answers a ping only inside
    ``WebSocketResponse.receive()``, so the emulator's read loop answers pings itself
    (``autoping=False``) and stops doing so here. It still drains the socket, to see the client
    leave and to answer a close frame promptly (a truly frozen path would not)."""


@dataclass(frozen=True)
class SlowAccept:
    """This session's upgrade completes ``delay_ms`` after its request passed the checks
    (instead of the emulator's ``connect_delay_ms``)."""

    delay_ms: int
    session: int | None = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0:
            raise ValueError("delay_ms must not be negative")


@dataclass(frozen=True)
class Refuse:
    """This upgrade is refused with HTTP ``status`` (429 or 503), a JSON error body and a
    ``Retry-After`` of ``retry_after_s`` seconds.

    Azure's throttling convention, as its SDKs implement it: azure-core (Python 1.41.0)
    ``pipeline/policies/_retry.py`` retries 429 and 503 and ``_utils.get_retry_after`` honours
    ``retry-after-ms``, ``x-ms-retry-after-ms`` and ``Retry-After``. What Voice Live itself
    answers when it throttles an upgrade is not published: the body has the ``{"error": {"code",
    "message"}}`` shape of the emulator's other refusals, and ``Retry-After`` in seconds."""

    status: int = 503
    retry_after_s: int = 1
    session: int | None = 0

    def __post_init__(self) -> None:
        if self.status not in _THROTTLING_STATUSES:
            raise ValueError(f"Refuse takes a throttling status {_THROTTLING_STATUSES}")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")


@dataclass(frozen=True)
class Expire:
    """The session expires ``after_s`` seconds after the upgrade.

    ``session.created`` and ``session.updated`` carry ``expires_at`` = upgrade time + ``after_s``
    (epoch seconds). What Voice Live does at expiry is NOT published. The emulator mirrors what
    OpenAI Realtime users report (not documented by OpenAI either): an ``error`` event, type
    ``invalid_request_error``, code ``session_expired``, "Your session hit the maximum duration
    of ...", then the socket closes, here with 1000 (RFC 6455 §7.4.1: the purpose for which the
    connection was established has been fulfilled)."""

    after_s: float
    session: int | None = 0

    def __post_init__(self) -> None:
        if self.after_s <= 0:
            raise ValueError("after_s must be positive")


Fault: TypeAlias = Drop | Hang | Freeze | SlowAccept | Refuse | Expire
TimedFault: TypeAlias = Drop | Hang | Freeze


def faults_for(faults: Sequence[Fault], call_session_index: int) -> list[Fault]:
    """The faults that hit the session with this ordinal in its call."""
    return [f for f in faults if f.session is None or f.session == call_session_index]


def fault_kind(fault: Fault) -> Literal["drop", "hang", "freeze", "slow_accept", "expire"]:
    match fault:
        case Drop():
            return "drop"
        case Hang():
            return "hang"
        case Freeze():
            return "freeze"
        case SlowAccept():
            return "slow_accept"
        case Expire():
            return "expire"
    raise ValueError(f"{fault!r} does not fire on an open session")


class FaultSchedule:
    """Fires one connection's timed and expiry faults; :meth:`close` cancels what is pending.

    ``on_freeze`` tells the connection to stop acting on what it reads.
    """

    def __init__(
        self,
        faults: Sequence[Fault],
        *,
        wire: Wire,
        record: EmulatorSession,
        on_freeze: Callable[[], None],
    ) -> None:
        self._wire = wire
        self._record = record
        self._on_freeze = on_freeze
        self._timers: list[asyncio.TimerHandle] = []
        self._by_audio: list[TimedFault] = []
        self._timed: list[TimedFault] = []
        self._expiry: Expire | None = None
        for fault in faults:
            match fault:
                case Drop() | Hang() | Freeze() if fault.during_response is not None:
                    self._by_audio.append(fault)
                case Drop() | Hang() | Freeze():
                    self._timed.append(fault)
                case Expire():
                    self._expiry = fault

    @property
    def lifetime_s(self) -> float | None:
        """How long the session lives, if an ``Expire`` fault sets it."""
        return None if self._expiry is None else self._expiry.after_s

    def start(self) -> None:
        """Arm the timers; call once the upgrade has completed."""
        loop = asyncio.get_running_loop()
        for fault in self._timed:
            assert fault.at_s is not None  # the faults without it wait for audio
            self._timers.append(loop.call_later(fault.at_s, self._fire, fault))
        if self._expiry is not None:
            self._timers.append(loop.call_later(self._expiry.after_s, self._expire))

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def on_audio_sent(self, response: ResponseRecord) -> None:
        """A delta of ``response`` left the socket: fire the faults waiting for that much."""
        due = [
            f
            for f in self._by_audio
            if f.during_response == response.call_response_index
            and response.audio_ms_sent >= f.after_audio_ms
        ]
        for fault in due:
            self._by_audio.remove(fault)
            self._fire(fault)

    def _fire(self, fault: TimedFault) -> None:
        match fault:
            case Drop(abort=True):
                detail = "aborted, no close frame"
                self._wire.abort()
            case Drop(close_code=code):
                detail = f"closed with {code}"
                self._wire.drop(code, "emulated fault: drop")
            case Hang():
                detail = "sending stopped, reading and pings go on"
                self._wire.mute()
            case Freeze():
                detail = "sending, reading and pings stopped"
                self._wire.mute()
                self._on_freeze()
        self._note(fault, detail)

    def _expire(self) -> None:
        assert self._expiry is not None
        lifetime = self._expiry.after_s
        self._wire.emit_error(
            "session_expired", f"Your session hit the maximum duration of {lifetime:g} seconds."
        )
        self._wire.request_close(1000, "session expired")
        self._note(self._expiry, f"expired after {lifetime:g} s")

    def _note(self, fault: Fault, detail: str) -> None:
        self._record.faults.append(FaultRecord(fault_kind(fault), time.monotonic(), detail))
        _log.info(
            "voicelive_emulator.fault",
            session=self._record.index,
            kind=fault_kind(fault),
            detail=detail,
        )
