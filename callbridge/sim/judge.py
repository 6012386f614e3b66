"""Judging a finished simulated call: its witnesses' records paired up, and its report.

The phone's ``CallRecord`` says what the caller said and heard; the Voice Live emulator's
sessions of the call say what the bridge sent and was told. ``judge_call`` pairs them and builds
the ``CallReport``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from callbridge.adapters.telemetry import CallSummary
from callbridge.core.codec import decoder_delay_ms
from callbridge.core.profiles import AudioFormat
from callbridge.sim.acs import SimCall
from callbridge.sim.call_record import CallRecord
from callbridge.sim.continuity import judge_continuity
from callbridge.sim.report import CallReport, build_call_report
from callbridge.sim.voicelive import EmulatorSession, VoiceLiveEmulator

SESSION_CLOSE_TIMEOUT_S = 10.0
SUMMARY_TIMEOUT_S = 5.0


class BridgeSummaries:
    """callbridge's own figures of each call (``create_app(on_call_ended=...)``), by call
    connection id: what it says it did, set beside what the witnesses saw."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[CallSummary]] = {}

    def _future(self, call_connection_id: str) -> asyncio.Future[CallSummary]:
        future = self._calls.get(call_connection_id)
        if future is None:
            future = self._calls[call_connection_id] = asyncio.get_running_loop().create_future()
        return future

    def on_call_ended(self, call_connection_id: str, summary: CallSummary) -> None:
        future = self._future(call_connection_id)
        if not future.done():
            future.set_result(summary)

    async def get(self, call_connection_id: str | None) -> CallSummary | None:
        """The call's summary; it comes as the bridge finishes, just after the call ends."""
        if call_connection_id is None:
            return None
        try:
            async with asyncio.timeout(SUMMARY_TIMEOUT_S):
                return await asyncio.shield(self._future(call_connection_id))
        except TimeoutError:
            return None


@dataclass(frozen=True, slots=True)
class CallResult:
    """One finished simulated call: the witnesses' records and the report built from them."""

    record: CallRecord
    """The phone's record: what the caller said and heard."""
    sessions: Sequence[EmulatorSession]
    """Voice Live's records, oldest first: what the bridge sent and was told. More than one
    when the call reconnected or rolled over; none when Voice Live never took the call."""
    report: CallReport
    acs: SimCall | None = None
    """ACS's record of the call (IncomingCall, REST operations, callbacks), when it had one."""

    @property
    def session(self) -> EmulatorSession:
        """The call's first Voice Live session (its only one, unless it reconnected or rolled
        over)."""
        if not self.sessions:
            raise LookupError(f"call {self.record.call_connection_id} had no Voice Live session")
        return self.sessions[0]


async def judge_call(
    record: CallRecord, emulator: VoiceLiveEmulator, audio_format: AudioFormat
) -> CallResult:
    """Pair a finished call's phone record with its emulator sessions and build the report."""
    sessions = await finished_sessions(emulator, record.correlation_id)
    refused = [r for r in emulator.refused_upgrades if r.client_request_id == record.correlation_id]
    report = build_call_report(
        record,
        sessions,
        audio_format=audio_format,
        codec_delay_ms=decoder_delay_ms(audio_format, record.sample_rate),
    )
    continuity = judge_continuity(record, sessions, refused)
    return CallResult(record, sessions, replace(report, continuity=continuity))


async def finished_sessions(
    emulator: VoiceLiveEmulator, correlation_id: str
) -> Sequence[EmulatorSession]:
    """The emulator's records of a call that has ended, once the bridge has closed them all.

    The bridge opens Voice Live before it relays any audio and closes its sessions shortly
    after the media socket closes. A call may have none: Voice Live refused it, or accepted
    only after callbridge had given up and fallen back.
    """
    sessions = emulator.sessions_for(correlation_id)
    async with asyncio.timeout(SESSION_CLOSE_TIMEOUT_S):
        for session in sessions:
            await session.wait_closed()
    return sessions
