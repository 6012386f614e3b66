"""Keypad input: digits the caller presses reach the agent as one user message.

Digits are collected until the caller pauses for ``DTMF_IDLE_S`` (or presses ``#``), then sent
together, so "1 2 3 4 #" is one message and one response, not five. Digits may be a PIN or a
card number: their values are never logged.
"""

from __future__ import annotations

import asyncio

import structlog
from azure.ai.voicelive.models import InputTextContentPart, UserMessageItem

from callbridge.adapters.recording import CallRecorder
from callbridge.bridge.responses import Responses
from callbridge.bridge.stats import CallStats
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core.call_context import CallContext
from callbridge.core.tasks import OwnedTasks

log = structlog.get_logger(__name__)

DTMF_IDLE_S = 1.5
"""Keypad digits are sent to the agent together once the caller pauses this long (or on #)."""


class Keypad:
    """Collects one call's keypad digits and hands them to the agent."""

    def __init__(
        self,
        *,
        voice: VoiceLink,
        context: CallContext,
        responses: Responses,
        stats: CallStats,
        helpers: OwnedTasks,
        recorder: CallRecorder | None,
    ) -> None:
        self._voice = voice
        self._context = context
        self._responses = responses
        self._stats = stats
        self._helpers = helpers
        self._recorder = recorder
        self._digits = ""
        self._timer: asyncio.TimerHandle | None = None

    def press(self, digit: str) -> None:
        """The caller pressed ``digit``: send the digits once they pause, or on #."""
        self._stats.dtmf_digits += 1
        if self._recorder is not None:
            self._recorder.dtmf(digit)
        self._digits += digit
        log.info("caller.dtmf", pending_digits=len(self._digits))
        if self._timer is not None:
            self._timer.cancel()
        delay = 0.0 if digit == "#" else DTMF_IDLE_S
        self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _flush(self) -> None:
        self._timer = None
        digits, self._digits = self._digits, ""
        if digits:
            self._helpers.spawn(self._send(digits), "dtmf")

    async def _send(self, digits: str) -> None:
        text = f"(The caller pressed these keys on the phone keypad: {' '.join(digits)})"
        self._context.keypad(text)
        await self._voice.create_item(UserMessageItem(content=[InputTextContentPart(text=text)]))
        await self._responses.request()
