"""Connecting to Voice Live (the real SDK against the emulator): the handshake bound, and a
handshake given up on that completes later is closed, not leaked."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from callbridge.adapters.voice_live import open_voice_live
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import VoiceLiveSettings
from callbridge.sim.demo_conversation import demo_turns
from callbridge.sim.loopback import EMULATOR_KEY, LOOPBACK
from callbridge.sim.voicelive import SlowAccept, VoiceLiveEmulator
from tests.test_voicelive_emulator_faults import eventually


async def test_a_handshake_past_its_bound_times_out_and_its_late_connection_is_closed() -> None:
    emulator = VoiceLiveEmulator(
        turns=demo_turns(), api_key=EMULATOR_KEY, faults=[SlowAccept(600, session=None)]
    )
    endpoint = await emulator.start(LOOPBACK, 0)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    settings = VoiceLiveSettings(
        endpoint=endpoint, model="gpt-realtime", api_key=EMULATOR_KEY, connect_timeout_s=0.2
    )
    try:
        with pytest.raises(TimeoutError):
            async with open_voice_live(settings, AgentProfile(), correlation_id="late-1"):
                pass
        # The emulator accepts 0.6 s after the request; callbridge closes what it then gets.
        await eventually(lambda: emulator.sessions_for("late-1"))
        async with asyncio.timeout(5):
            await emulator.sessions_for("late-1")[0].wait_closed()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
        await emulator.stop()
    assert [c.get("message") for c in unhandled] == []
