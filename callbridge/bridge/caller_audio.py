"""The caller's side of a call: ACS media frames in, the caller's audio on to Voice Live.

Every frame goes on, silent ones too, so Voice Live's VAD measures the caller's pauses from real
audio, without the agent's echo (``caller_echo``). Malformed and unknown frames are counted,
logged once per reason or kind, and skipped; the call goes on.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import structlog
from aiohttp import web

from callbridge.bridge.call_parts import CallParts
from callbridge.bridge.stats import CallStats
from callbridge.bridge.voice_link import VoiceLink
from callbridge.core import acs_media

log = structlog.get_logger(__name__)

METADATA_TIMEOUT_S = 10.0
"""How long to wait for ACS's first media frame before giving up on the call."""

MALFORMED_REASONS_LOGGED = 8
"""Distinct reasons a call's malformed frames are logged for; beyond them they are counted."""

_CLOSED = object()
"""Marks the end of the ACS socket (close, error) in ``CallerAudio.parse``."""

FirstMessage = acs_media.AudioMetadata | acs_media.AudioData


class CallerAudio:
    """Reads one call's ACS media socket and forwards the caller to Voice Live."""

    def __init__(self, *, voice: VoiceLink, stats: CallStats) -> None:
        self._voice = voice
        self._stats = stats
        self._unknown_kinds: set[str] = set()
        self._malformed_reasons: set[str] = set()
        self.last_voiced_at = 0.0
        """When ACS last sent a frame it did not mark silent (monotonic)."""
        self.last_frame_at = time.monotonic()
        """When ACS last sent anything on the media socket (monotonic)."""

    async def first_message(self, socket: web.WebSocketResponse) -> FirstMessage | None:
        """ACS sends ``AudioMetadata`` first on each socket; tolerate its absence (then the
        rate is 16 kHz)."""
        try:
            async with asyncio.timeout(METADATA_TIMEOUT_S):
                async for message in socket:
                    parsed = self.parse(message)
                    if isinstance(parsed, FirstMessage):
                        return parsed
                    if parsed is _CLOSED:
                        return None
        except TimeoutError:
            log.error("call.no_media", timeout_s=METADATA_TIMEOUT_S)
            await socket.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"no media")
        return None

    async def pump(self, socket: web.WebSocketResponse, parts: CallParts) -> None:
        """Forward the caller until the socket closes: keys to the keypad, ACS's playback marks
        to the pacer, each frame (after it went to Voice Live, without the agent's echo) to the
        interruption policy."""
        async for message in socket:
            parsed = self.parse(message)
            match parsed:
                case acs_media.AudioData():
                    await parts.interruption.on_caller_frame(await self.forward(parts, parsed))
                case acs_media.DtmfData(digit=digit):
                    parts.keypad.press(digit)
                case acs_media.MarkData():
                    parts.pacer.on_mark(parsed)
                case acs_media.AudioMetadata(sample_rate=rate) if rate != parts.codec.acs_rate:
                    self._stats.malformed_media += 1
                    log.warning("acs.metadata_changed_rate", sample_rate=rate)
                case _ if parsed is _CLOSED:
                    break

    async def forward(self, parts: CallParts, frame: acs_media.AudioData) -> bytes:
        """Send one frame to Voice Live; its PCM without the agent's echo."""
        pcm = frame.pcm
        if not pcm and frame.silent:
            # Silence sent without its audio is still 20 ms of the caller's line: Voice Live's
            # VAD must hear the pause.
            pcm = parts.codec.acs_silence
        if parts.recorder is not None:
            parts.recorder.caller_audio(pcm, silent=frame.silent)
        self._stats.caller_frames += 1
        if frame.silent:
            self._stats.silent_frames += 1
        else:
            self.last_voiced_at = time.monotonic()
        caller = parts.echo.take(pcm, time.monotonic())
        if caller.for_voice_live:  # else less than one sample at Voice Live's rate: it waits
            await self._voice.append(caller.for_voice_live, voiced=not frame.silent)
        return caller.cleaned

    def parse(self, message: aiohttp.WSMessage) -> acs_media.InboundMessage | object | None:
        """Parse one WebSocket message; malformed ones are logged, counted and skipped (None)."""
        self.last_frame_at = time.monotonic()
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                parsed = acs_media.parse(message.data)
            except acs_media.WireError as exc:
                self._malformed(str(exc))
                return None
            if isinstance(parsed, acs_media.Unknown):
                self._stats.unknown_media += 1
                if parsed.kind not in self._unknown_kinds:
                    # Once per kind: a kind ACS adds would otherwise log 50 lines a second.
                    self._unknown_kinds.add(parsed.kind)
                    log.info("acs.unknown_frame", kind=parsed.kind)
                return None
            return parsed
        if message.type is aiohttp.WSMsgType.BINARY:
            self._malformed("binary frame")
            return None
        return _CLOSED

    def _malformed(self, reason: str) -> None:
        """Count a malformed frame; log it once per reason, for the first few reasons (a frame
        ACS keeps getting wrong would log 50 lines a second; ``call.ended`` has the count)."""
        self._stats.malformed_media += 1
        reasons = self._malformed_reasons
        if reason not in reasons and len(reasons) < MALFORMED_REASONS_LOGGED:
            reasons.add(reason)
            log.warning("acs.malformed_frame", reason=reason)
