"""``GET /ws/{token}``: ACS's media WebSocket. Authenticate, find the call's profile, bridge it.

ACS dials this once the call is answered; the call is bridged as long as the socket lives. The
request must carry ACS's signed JWT and the call token callbridge put in the ``transportUrl``'s
path; otherwise it is refused before the upgrade and nothing is started. The old form,
``/ws?token=`` (the token as a query parameter), is still accepted for one release, and logged
as deprecated.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection

from callbridge.adapters.prewarm import PrewarmedSession
from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.adapters.voice_live import open_voice_live
from callbridge.bridge.call import CallBridge
from callbridge.core.call_token import AuthError, verify_call_token
from callbridge.core.ended_by import EndedBy
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import Settings
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

_MAX_MEDIA_MESSAGE = 256 * 1024
"""ACS frames are ~1.3 kB of JSON; anything near this is not media."""


async def media_socket(request: web.Request) -> web.WebSocketResponse:
    replica = request.app[REPLICA]
    call_id = request.headers.get("x-ms-call-connection-id") or f"local-{uuid.uuid4()}"
    correlation_id = request.headers.get("x-ms-call-correlation-id")
    with structlog.contextvars.bound_contextvars(
        call_connection_id=call_id, correlation_id=correlation_id
    ):
        await replica.require_acs_token(request)
        profile = _call_profile(request, replica, correlation_id)
        acs = web.WebSocketResponse(max_msg_size=_MAX_MEDIA_MESSAGE, autoping=True)
        await acs.prepare(request)
        replica.sockets.add(acs)
        log.info("call.media_connected", profile=profile.name)
        telemetry = CallTelemetry(
            call_connection_id=call_id, correlation_id=correlation_id, profile=profile.name
        )
        summary = CallSummary()
        try:
            with telemetry.activate():
                summary = await _bridge(
                    replica,
                    acs,
                    profile=profile,
                    call_id=call_id,
                    correlation_id=correlation_id or call_id,
                    telemetry=telemetry,
                )
        finally:
            telemetry.end(summary)
            replica.call_ended(call_id, summary)
            replica.sockets.discard(acs)
            if not acs.closed:
                await acs.close()
            log.info("call.media_closed", close_code=acs.close_code)
    return acs


def _call_profile(
    request: web.Request, replica: Replica, correlation_id: str | None
) -> AgentProfile:
    """The profile named by the request's call token, checked against the call it is for.

    Raises:
        web.HTTPUnauthorized: missing, forged, expired token, or one minted for another call.
        web.HTTPForbidden: the token names a profile this deployment no longer has.
    """
    settings = replica.settings
    try:
        claims = verify_call_token(_call_token(request), settings.auth.signing_key)
        if settings.auth.enabled:
            claims.check_call(correlation_id)
    except AuthError as exc:
        if settings.auth.enabled:
            log.warning("media.unauthorized", reason=str(exc))
            raise web.HTTPUnauthorized(text="unauthorized") from None
        # Local development: a socket without a token talks to the default profile.
        default = settings.routing.default_profile
        if default is None:
            raise web.HTTPUnauthorized(text="no call token and no default profile") from None
        return settings.routing.profile(default)
    try:
        return settings.routing.profile(claims.profile)
    except KeyError:
        log.error("media.unknown_profile", profile=claims.profile)
        raise web.HTTPForbidden(text="unknown profile") from None


def _call_token(request: web.Request) -> str:
    token = request.match_info.get("token")
    if token is not None:
        return token
    legacy = request.query.get("token", "")
    if legacy:
        log.warning(
            "media.deprecated_query_token",
            detail="the call token is in the transportUrl's query string; callbridge now puts "
            "it in the path (/ws/{token}), and the query form goes in the next release",
        )
    return legacy


async def _bridge(
    replica: Replica,
    acs: web.WebSocketResponse,
    *,
    profile: AgentProfile,
    call_id: str,
    correlation_id: str,
    telemetry: CallTelemetry,
) -> CallSummary:
    """Bridge the call until it ends; its figures for telemetry."""
    settings = replica.settings
    prewarmed = await replica.prewarm.claim(correlation_id, profile)
    try:
        async with _voice_session(replica, profile, correlation_id, prewarmed) as (
            voice,
            configured_rate,
        ):
            bridge = CallBridge(
                acs=acs,
                voice=voice,
                profile=profile,
                pacing=settings.pacing,
                transcription_model=settings.voice_live.transcription_model_for(profile),
                actions=replica.control.actions(call_id),
                configured_rate=configured_rate,
                telemetry=telemetry,
                open_recorder=_recorder_opener(settings, profile, call_id, correlation_id),
            )
            replica.bridges[call_id] = bridge
            try:
                await bridge.run()
            finally:
                replica.bridges.pop(call_id, None)
            return bridge.summary()
    except (TimeoutError, VoiceLiveConnectionError) as exc:
        log.error("voice_live.unavailable", error=str(exc) or type(exc).__name__)
        # No agent can talk on this call: hang up rather than leave the caller in silence.
        try:
            await replica.control.hang_up(call_id)
        except Exception as hang_up_error:  # logged; the socket is closed regardless
            log.warning("acs.hang_up_failed", error=str(hang_up_error))
        await acs.close(
            code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=b"voice session unavailable"
        )
        return CallSummary(ended_by=EndedBy.VOICE_SESSION_UNAVAILABLE)


def _recorder_opener(
    settings: Settings, profile: AgentProfile, call_id: str, correlation_id: str
) -> Callable[[int], CallRecorder] | None:
    """How the bridge opens the call's recording once it knows ACS's rate (None: not recorded)."""
    root = settings.recordings_dir
    if not profile.record or root is None:
        return None

    def open_recorder(sample_rate: int) -> CallRecorder:
        return CallRecorder(
            root,
            call_connection_id=call_id,
            correlation_id=correlation_id,
            profile=profile.name,
            sample_rate=sample_rate,
            audio_format=profile.audio_format,
            extra={
                "tools": list(profile.tools),
                "tools_module": profile.tools_module,
                "transfer_to_set": profile.transfer_to is not None,
                "lead_ms": settings.pacing.lead_ms,
                "playout_delay_ms": settings.pacing.playout_delay_ms,
            },
        )

    return open_recorder


@asynccontextmanager
async def _voice_session(
    replica: Replica,
    profile: AgentProfile,
    correlation_id: str,
    prewarmed: PrewarmedSession | None,
) -> AsyncIterator[tuple[VoiceLiveConnection, int | None]]:
    """The pre-warmed connection if this replica has one, else a new one; with the ACS rate
    its session is already configured for (None: not configured yet)."""
    if prewarmed is not None:
        try:
            connection = await prewarmed.connection()
        except (TimeoutError, VoiceLiveConnectionError) as exc:
            log.warning("voice_live.prewarm_unusable", error=str(exc) or type(exc).__name__)
        else:
            log.info("voice_live.prewarmed")
            try:
                yield connection, prewarmed.media_rate
            finally:
                await prewarmed.release()
            return
    async with open_voice_live(
        replica.settings.voice_live, profile, correlation_id=correlation_id
    ) as connection:
        yield connection, None
