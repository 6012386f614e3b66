"""A whole call path on loopback: the real bridge app, a Voice Live emulator and simulated phones.

Used by ``callbridge demo``, the end-to-end tests and users' own tests. The bridge is the real
aiohttp application on a real socket; only ACS and Voice Live are stand-ins.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from aiohttp import web

from callbridge.app import create_app
from callbridge.assets import asset_path
from callbridge.bridge.codec import decoder_delay_ms
from callbridge.config import AuthSettings, PacingSettings, Settings, VoiceLiveSettings
from callbridge.routing import AgentProfile, AudioFormat
from callbridge.sim.phone import CallRecord, Phone
from callbridge.sim.report import CallReport, build_call_report
from callbridge.sim.script import Step
from callbridge.sim.voicelive import AgentTurn, EmulatorSession, VoiceLiveEmulator, load_turns
from callbridge.telephony.auth import mint_call_token

LOOPBACK = "127.0.0.1"
EMULATOR_KEY = "local-emulator-key"
SESSION_CLOSE_TIMEOUT_S = 10.0
DEFAULT_PACING = PacingSettings()

DEMO_AGENT_TURNS = (
    "agent_01_greeting",
    "agent_02_answer",
    "agent_03_followup",
    "agent_04_goodbye",
)
DEMO_CALLER_LINES = ("caller_01_question", "caller_02_interrupt", "caller_03_thanks")


def demo_turns() -> list[AgentTurn]:
    """The shipped agent turns (real speech): greeting, a long answer, a follow-up, goodbye."""
    return load_turns([asset_path(name) for name in DEMO_AGENT_TURNS])


def demo_caller_transcripts() -> list[str]:
    """What the shipped caller lines say, as the emulator's transcription of them."""
    return [asset_path(name).with_suffix(".txt").read_text().strip() for name in DEMO_CALLER_LINES]


@dataclass(frozen=True, slots=True)
class CallResult:
    """One finished simulated call: both witnesses' records and the report built from them."""

    record: CallRecord
    session: EmulatorSession
    report: CallReport


class LocalStack:
    """Runs the bridge and the emulator on loopback for as long as the context is open."""

    def __init__(
        self,
        *,
        turns: Sequence[AgentTurn] | None = None,
        caller_transcripts: Sequence[str] | None = None,
        audio_format: AudioFormat = "g711_ulaw",
        pacing: PacingSettings = DEFAULT_PACING,
        emulator_speed: float = 2.0,
        response_delay_ms: int = 200,
    ) -> None:
        self.emulator = VoiceLiveEmulator(
            turns=list(turns) if turns is not None else demo_turns(),
            caller_transcripts=(
                list(caller_transcripts)
                if caller_transcripts is not None
                else demo_caller_transcripts()
            ),
            api_key=EMULATOR_KEY,
            speed=emulator_speed,
            response_delay_ms=response_delay_ms,
        )
        self.audio_format = audio_format
        self.pacing = pacing
        self.signing_key = secrets.token_bytes(32)
        self._runner: web.AppRunner | None = None
        self.ws_url = ""

    def settings(self, endpoint: str) -> Settings:
        """The bridge's settings for this stack (the emulator at ``endpoint``)."""
        return Settings(
            voice_live=VoiceLiveSettings(
                endpoint=endpoint, model="gpt-realtime", api_key=EMULATOR_KEY
            ),
            auth=AuthSettings(enabled=True, signing_key=self.signing_key),
            profile=replace(AgentProfile(), audio_format=self.audio_format),
            pacing=self.pacing,
            host=LOOPBACK,
            port=0,
        )

    async def __aenter__(self) -> LocalStack:
        endpoint = await self.emulator.start(LOOPBACK, 0)
        try:
            self._runner = web.AppRunner(create_app(self.settings(endpoint)), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, LOOPBACK, 0)
            await site.start()
        except BaseException:
            await self.aclose()
            raise
        port = self._runner.addresses[0][1]
        self.ws_url = f"ws://{LOOPBACK}:{port}/ws"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.stop()

    def media_url(self, correlation_id: str) -> str:
        """The bridge's media socket URL for one call, with its signed call token."""
        return signed_media_url(self.ws_url, self.signing_key, correlation_id)

    def phone(
        self, script: Sequence[Step], *, sample_rate: int = 16000, **options: object
    ) -> Phone:
        """A phone for one call to this stack's bridge, its playout model matching the pacer's."""
        correlation_id = str(uuid.uuid4())
        return Phone(
            self.media_url(correlation_id),
            correlation_id=correlation_id,
            script=script,
            sample_rate=sample_rate,
            lead_ms=self.pacing.lead_ms,
            playout_delay_ms=self.pacing.playout_delay_ms,
            **options,  # type: ignore[arg-type]
        )

    async def call(self, phone: Phone) -> CallResult:
        """Place one call, wait for both sides to finish, and judge it."""
        return await judge_call(await phone.run(), self.emulator, self.audio_format)


def signed_media_url(ws_url: str, signing_key: bytes, correlation_id: str) -> str:
    """A media socket URL carrying a signed token for the call with ``correlation_id``."""
    token = mint_call_token(signing_key, correlation_id=correlation_id)
    return f"{ws_url}?token={token}"


async def judge_call(
    record: CallRecord, emulator: VoiceLiveEmulator, audio_format: AudioFormat
) -> CallResult:
    """Pair a finished call's phone record with its emulator session and build the report."""
    session = await finished_session(emulator, record.call_connection_id)
    report = build_call_report(
        record,
        session,
        audio_format=audio_format,
        codec_delay_ms=decoder_delay_ms(audio_format, record.sample_rate),
    )
    return CallResult(record, session, report)


async def finished_session(emulator: VoiceLiveEmulator, call_id: str) -> EmulatorSession:
    """The emulator's record of a call that has ended, once the bridge has closed it."""
    # The bridge opens Voice Live before it relays any audio, so by the time a call has
    # ended its session exists; it closes shortly after the media socket does.
    session = emulator.session_for(call_id)
    if session is None:
        raise RuntimeError(f"the bridge opened no Voice Live session for call {call_id}")
    async with asyncio.timeout(SESSION_CLOSE_TIMEOUT_S):
        await session.wait_closed()
    return session
