"""A whole call path on loopback: the real bridge app, a Voice Live emulator and simulated phones.

Used by ``callbridge demo``, the end-to-end tests and users' own tests. The bridge is the real
aiohttp application on a real socket; only ACS and Voice Live are stand-ins.

How a call is judged is :mod:`callbridge.sim.judge`'s job, the loopback address, keys, ports
and a ``callbridge serve`` environment are :mod:`callbridge.sim.loopback`'s, and the shipped
conversation is :mod:`callbridge.sim.demo_conversation`'s; their public names are re-exported
here.
"""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

import aiohttp
from aiohttp import web

from callbridge.adapters.fallback_audio import fallback_clip
from callbridge.core.profiles import AgentProfile, Routing
from callbridge.core.settings import (
    AcsSettings,
    AuthSettings,
    ContinuitySettings,
    PacingSettings,
    Settings,
    VoiceLiveSettings,
)
from callbridge.sim.acs import AcsStandin, SimCall
from callbridge.sim.acs.call_inputs import IncomingCallOptions
from callbridge.sim.continuity import FALLBACK_ENDS, fallback_heard
from callbridge.sim.demo_conversation import (
    DEMO_AGENT_TURNS,
    DEMO_CALLER_LINES,
    demo_caller_transcripts,
    demo_turns,
)
from callbridge.sim.judge import BridgeSummaries, CallResult, judge_call
from callbridge.sim.loopback import (
    EMULATOR_KEY,
    LOOPBACK,
    MEDIA_TOKEN_S,
    free_port,
    serve_env,
    signed_media_url,
)
from callbridge.sim.phone import Phone
from callbridge.sim.report import call_setup, playout_delay
from callbridge.sim.script import Step
from callbridge.sim.voicelive import AgentTurn, Fault, VoiceLiveEmulator
from callbridge.web.app import create_app
from callbridge.web.outbound import API_KEY_HEADER
from callbridge.web.replica import REPLICA, Replica
from callbridge.web.webhook import SECRET_HEADER

__all__ = [
    "CALL_TIMEOUT_S",
    "DEFAULT_PACING",
    "DEFAULT_PROFILE",
    "DEMO_AGENT_TURNS",
    "DEMO_CALLER_LINES",
    "DIALED_NUMBER",
    "EMULATOR_KEY",
    "LOOPBACK",
    "MEDIA_TOKEN_S",
    "CallResult",
    "LocalStack",
    "demo_caller_transcripts",
    "demo_turns",
    "free_port",
    "judge_call",
    "serve_env",
    "signed_media_url",
]

CALL_TIMEOUT_S = 90.0
DEFAULT_PACING = PacingSettings()
DEFAULT_CONTINUITY = ContinuitySettings()
DEFAULT_PROFILE = AgentProfile(tools=("end_call",))
DIALED_NUMBER = "+18005550100"
"""The number the simulated callers dial (the stand-in's ACS number)."""


class LocalStack:
    """Runs callbridge, ACS and Voice Live stand-ins on loopback while the context is open.

    ``ring`` and ``call`` go the whole way a phone call goes: Event Grid delivers an
    IncomingCall to the webhook, callbridge answers through the real Call Automation SDK, ACS
    posts signed callbacks and opens the media socket with a simulated phone on it.
    """

    def __init__(
        self,
        *,
        turns: Sequence[AgentTurn] | None = None,
        caller_transcripts: Sequence[str] | None = None,
        profile: AgentProfile | None = None,
        routing: Routing | None = None,
        pacing: PacingSettings = DEFAULT_PACING,
        continuity: ContinuitySettings = DEFAULT_CONTINUITY,
        emulator_speed: float = 2.0,
        response_delay_ms: int = 200,
        connect_delay_ms: int = 0,
        session_updated_delay_ms: int | None = 0,
        faults: Sequence[Fault] = (),
        auth: bool = True,
        max_calls: int = 50,
        recordings_dir: Path | None = None,
        transcription_model: str | None = None,
        line_playout_delay_ms: float | None = None,
    ) -> None:
        """``transcription_model``: ``VOICE_LIVE_TRANSCRIPTION_MODEL``, unchecked here (a stack
        can be given one the emulator refuses, as Voice Live would). ``line_playout_delay_ms``:
        the phone lines' true playout delay; by default the one ``pacing`` assumes.
        ``connect_delay_ms``, ``session_updated_delay_ms``, ``faults``: the emulator's (see
        :class:`VoiceLiveEmulator`)."""
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
            connect_delay_ms=connect_delay_ms,
            session_updated_delay_ms=session_updated_delay_ms,
            faults=faults,
        )
        self.line_playout_delay_ms = (
            pacing.playout_delay_ms if line_playout_delay_ms is None else line_playout_delay_ms
        )
        self.acs = AcsStandin(playout_delay_ms=self.line_playout_delay_ms)
        self.routing = routing or Routing.single(profile or DEFAULT_PROFILE)
        self.pacing = pacing
        self.continuity = continuity
        self.auth = auth
        self.max_calls = max_calls
        self.recordings_dir = recordings_dir
        self.transcription_model = transcription_model
        self.bridge_summaries = BridgeSummaries()
        self.signing_key = secrets.token_bytes(32)
        self.webhook_secret = secrets.token_urlsafe(32)
        self.api_key = secrets.token_urlsafe(32)
        self._runner: web.AppRunner | None = None
        self._added_profiles = 0
        self.base_url = ""

    @property
    def ws_url(self) -> str:
        """The media socket, dialled directly (not through the ingress)."""
        return "ws" + self.base_url.removeprefix("http") + "/ws"

    @property
    def public_url(self) -> str:
        """Where ACS is told to reach the bridge: https, through the ingress the ACS stand-in
        plays (``callbridge.sim.acs.ingress``), as Call Automation requires."""
        return "https" + self.base_url.removeprefix("http")

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/incomingCall"

    @property
    def replica(self) -> Replica:
        """The running service's shared state: its settings and its calls."""
        if self._runner is None:
            raise RuntimeError("the stack is not running")
        return self._runner.app[REPLICA]

    def settings(self, endpoint: str, public_url: str) -> Settings:
        """The bridge's settings for this stack (the Voice Live emulator at ``endpoint``)."""
        return Settings(
            voice_live=VoiceLiveSettings(
                endpoint=endpoint,
                model="gpt-realtime",
                api_key=EMULATOR_KEY,
                transcription_model=self.transcription_model,
            ),
            acs=AcsSettings(
                endpoint=self.acs.endpoint,
                access_key=self.acs.access_key,
                resource_id=self.acs.resource_id,
                jwt_issuer=self.acs.issuer,
                jwks_url=self.acs.jwks_url,
                caller_id=self.acs.acs_number,
            ),
            auth=AuthSettings(
                enabled=self.auth,
                signing_key=self.signing_key,
                webhook_secret=self.webhook_secret,
                api_key=self.api_key,
            ),
            public_url=public_url,
            routing=self.routing,
            pacing=self.pacing,
            continuity=self.continuity,
            max_calls=self.max_calls,
            recordings_dir=self.recordings_dir,
            host=LOOPBACK,
            port=0,
        )

    async def __aenter__(self) -> LocalStack:
        try:
            endpoint = await self.emulator.start(LOOPBACK, 0)
            await self.acs.start(LOOPBACK, 0)
            # The bridge must know its own URL before it starts (ACS is told to call it
            # back there), so the socket is bound first.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, 0))
            self.base_url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
            app = create_app(
                self.settings(endpoint, self.public_url),
                on_call_ended=self.bridge_summaries.on_call_ended,
            )
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            await self.aclose()
            raise
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
        await self.acs.stop()
        await self.emulator.stop()

    async def ring(
        self,
        script: Sequence[Step],
        *,
        to: str = DIALED_NUMBER,
        secret: str | None = None,
        deliveries: int = 1,
        **options: Unpack[IncomingCallOptions],
    ) -> SimCall:
        """Ring callbridge with an IncomingCall for ``to``; returns ACS's record of the call.

        ``secret`` replaces the stack's webhook secret (for negative tests); ``deliveries``
        (Event Grid's duplicates) and ``options`` are as for ``AcsStandin.ring``
        (``from_number``, ``hangup_after_s``, ``media_token``...).
        """
        headers = {SECRET_HEADER: self.webhook_secret if secret is None else secret}
        return await self.acs.ring(
            self.webhook_url,
            headers=headers,
            deliveries=deliveries,
            to_number=to,
            script=script,
            **options,
        )

    async def call(
        self,
        script: Sequence[Step],
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        profile: AgentProfile | None = None,
        turns: Sequence[AgentTurn] | None = None,
        caller_transcripts: Sequence[str | None] = (),
        speed: float | None = None,
        response_delay_ms: int | None = None,
        faults: Sequence[Fault] = (),
        **options: Any,
    ) -> CallResult:
        """Ring, let the call run to its end, and judge it.

        ``profile`` answers this call only (under a dialed number of its own), and ``turns``
        (with ``caller_transcripts``, the agent's ``speed`` and ``response_delay_ms``, and
        Voice Live ``faults``) script this call's Voice Live sessions only, so one stack can
        run many different calls, one after another or at once.
        """
        if profile is not None:
            options["to"] = self.add_profile(profile)
        if turns is None and faults:
            raise ValueError("a call's own faults go with its own turns")
        if turns is None:
            sim = await self.ring(script, **options)
        else:
            sim = await self.ring_scripted(
                script,
                turns,
                caller_transcripts,
                speed=speed,
                response_delay_ms=response_delay_ms,
                faults=faults,
                **options,
            )
        return await self.finish(sim, timeout_s=timeout_s)

    async def ring_scripted(
        self,
        script: Sequence[Step],
        turns: Sequence[AgentTurn],
        caller_transcripts: Sequence[str | None] = (),
        *,
        to: str = DIALED_NUMBER,
        speed: float | None = None,
        response_delay_ms: int | None = None,
        faults: Sequence[Fault] = (),
        **options: Unpack[IncomingCallOptions],
    ) -> SimCall:
        """Like ``ring``, with the call's own agent turns (and faults) in the Voice Live
        emulator."""
        sim = self.acs.incoming_call(to_number=to, script=script, **options)
        self.emulator.script_session(
            sim.correlation_id,
            turns,
            caller_transcripts,
            speed=speed,
            response_delay_ms=response_delay_ms,
            faults=faults,
        )
        assert sim.incoming_event is not None  # an inbound call always has one
        await self.acs.deliver(
            self.webhook_url, [sim.incoming_event], headers={SECRET_HEADER: self.webhook_secret}
        )
        return sim

    def add_profile(self, profile: AgentProfile) -> str:
        """Route a new dialed number to ``profile`` on the running service; the number."""
        self._added_profiles += 1
        number = f"+1800556{self._added_profiles:04d}"
        name = f"{profile.name}-{self._added_profiles}"
        routing = self.routing
        self.routing = Routing(
            profiles={**routing.profiles, name: replace(profile, name=name)},
            numbers={**routing.numbers, number: name},
            default_profile=routing.default_profile,
            redirect_to=routing.redirect_to,
        )
        if self._runner is not None:
            replica = self._runner.app[REPLICA]
            replica.settings = replace(replica.settings, routing=self.routing)
        return number

    async def finish(self, sim: SimCall, *, timeout_s: float = CALL_TIMEOUT_S) -> CallResult:
        """Wait for a call ACS placed or answered to end, and judge it."""
        await sim.wait_ended(timeout_s)
        if sim.media is None:
            raise RuntimeError(f"call {sim.call_connection_id} had no media: {sim.media_error}")
        profile = self.routing.profile_for(sim.to_number) or DEFAULT_PROFILE
        result = await judge_call(sim.media, self.emulator, profile.audio_format)
        bridge = await self.bridge_summaries.get(sim.call_connection_id)
        setup = call_setup(sim, result.sessions, bridge)
        continuity = result.report.continuity
        if continuity is not None and setup.ended_by in FALLBACK_ENDS:
            continuity = fallback_heard(continuity, sim.media, fallback_clip(profile))
        report = replace(
            result.report,
            setup=setup,
            playout=playout_delay(sim.media, self.pacing.playout_delay_ms, bridge),
            continuity=continuity,
        )
        return replace(result, report=report, acs=sim)

    async def dial(
        self, to: str, script: Sequence[Step], *, profile: str | None = None, **options: Any
    ) -> SimCall:
        """Place an outbound call through ``POST /api/calls``; ACS's record of it."""
        self.acs.on_dial(to, script=script, **options)
        body: dict[str, str] = {"to": to}
        if profile is not None:
            body["profile"] = profile
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.base_url}/api/calls", json=body, headers={API_KEY_HEADER: self.api_key}
            ) as response,
        ):
            if response.status != 201:
                raise RuntimeError(f"POST /api/calls: {response.status} {await response.text()}")
            placed = await response.json()
        return self.acs.call(placed["callConnectionId"])

    def media_url(self, correlation_id: str, profile: str | None = None) -> str:
        """The media socket URL for one call, with its signed call token."""
        name = profile or self.routing.default_profile or DEFAULT_PROFILE.name
        return signed_media_url(self.ws_url, self.signing_key, correlation_id, name)

    def phone(
        self, script: Sequence[Step], *, sample_rate: int = 16000, **options: object
    ) -> Phone:
        """A phone that opens the media socket directly, as ACS would once a call is answered
        (no webhook, no callbacks): for media-only tests."""
        correlation_id = str(uuid.uuid4())
        return Phone(
            self.media_url(correlation_id),
            correlation_id=correlation_id,
            script=script,
            sample_rate=sample_rate,
            lead_ms=self.pacing.lead_ms,
            playout_delay_ms=self.line_playout_delay_ms,
            headers={"Authorization": f"Bearer {self.acs.mint_token(lifetime_s=MEDIA_TOKEN_S)}"},
            **options,  # type: ignore[arg-type]
        )

    async def call_media(self, phone: Phone) -> CallResult:
        """Run a media-only call (see ``phone``) to its end and judge it."""
        profile = self.routing.profile(self.routing.default_profile or DEFAULT_PROFILE.name)
        return await judge_call(await phone.run(), self.emulator, profile.audio_format)
