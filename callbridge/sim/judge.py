"""Judging a finished simulated call: its witnesses' records paired up, and its report.

The phone's ``CallRecord`` says what the caller said and heard; the Voice Live emulator's
session says what the bridge sent and was told. ``judge_call`` pairs them and builds the
``CallReport``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from callbridge.core.codec import decoder_delay_ms
from callbridge.core.profiles import AudioFormat
from callbridge.sim.acs import SimCall
from callbridge.sim.call_record import CallRecord
from callbridge.sim.report import CallReport, build_call_report
from callbridge.sim.voicelive import EmulatorSession, VoiceLiveEmulator

SESSION_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CallResult:
    """One finished simulated call: the witnesses' records and the report built from them."""

    record: CallRecord
    """The phone's record: what the caller said and heard."""
    session: EmulatorSession
    """Voice Live's record: what the bridge sent and was told."""
    report: CallReport
    acs: SimCall | None = None
    """ACS's record of the call (IncomingCall, REST operations, callbacks), when it had one."""


async def judge_call(
    record: CallRecord, emulator: VoiceLiveEmulator, audio_format: AudioFormat
) -> CallResult:
    """Pair a finished call's phone record with its emulator session and build the report."""
    session = await finished_session(emulator, record.correlation_id)
    report = build_call_report(
        record,
        session,
        audio_format=audio_format,
        codec_delay_ms=decoder_delay_ms(audio_format, record.sample_rate),
    )
    return CallResult(record, session, report)


async def finished_session(emulator: VoiceLiveEmulator, correlation_id: str) -> EmulatorSession:
    """The emulator's record of a call that has ended, once the bridge has closed it."""
    # The bridge opens Voice Live before it relays any audio, so by the time a call has
    # ended its session exists; it closes shortly after the media socket does.
    session = emulator.session_for(correlation_id)
    if session is None:
        raise RuntimeError(f"the bridge opened no Voice Live session for call {correlation_id}")
    async with asyncio.timeout(SESSION_CLOSE_TIMEOUT_S):
        await session.wait_closed()
    return session
