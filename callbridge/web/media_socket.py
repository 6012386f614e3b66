"""``GET /ws/{token}``: ACS's media WebSocket. Authenticate, find the call's profile, bridge it.

ACS dials this once the call is answered; the call is bridged as long as the socket lives. The
request must carry ACS's signed JWT and the call token callbridge put in the ``transportUrl``'s
path; otherwise it is refused before the upgrade and nothing is started. The old form,
``/ws?token=`` (the token as a query parameter), is still accepted for one release, and logged
as deprecated.

One live bridge per call: the call is the one its token authorizes (``CallClaims.call_key``),
not the connection id the request claims in a header. A second socket for a call bridged here
is refused with 409 before the upgrade (nothing is started), unless it is ACS rejoining the same
connection after losing its socket (``bridge.media_rejoin``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NoReturn

import structlog
from aiohttp import web

from callbridge.adapters.held_session import call_sessions
from callbridge.adapters.recording import CallRecorder
from callbridge.adapters.telemetry import CallSummary, CallTelemetry
from callbridge.bridge.call import CallBridge
from callbridge.core.call_token import AuthError, verify_call_token
from callbridge.core.profiles import AgentProfile
from callbridge.core.settings import Settings
from callbridge.web.replica import REPLICA, Replica

log = structlog.get_logger(__name__)

_MAX_MEDIA_MESSAGE = 256 * 1024
"""ACS frames are ~1.3 kB of JSON; anything near this is not media."""


async def media_socket(request: web.Request) -> web.WebSocketResponse:
    replica = request.app[REPLICA]
    acs_call_id = request.headers.get("x-ms-call-connection-id")
    call_id = acs_call_id or f"local-{uuid.uuid4()}"
    correlation_id = request.headers.get("x-ms-call-correlation-id")
    with structlog.contextvars.bound_contextvars(
        call_connection_id=call_id, correlation_id=correlation_id
    ):
        await replica.require_acs_token(request)
        call_key, profile = _authorized_call(request, replica, correlation_id, call_id)
        if call_key in replica.bridged_calls or call_id in replica.sockets:
            return await _rejoin(request, replica, call_key, call_id)
        # Claimed before the upgrade, so a second socket racing this one is refused too.
        replica.bridged_calls[call_key] = call_id
        try:
            async with _accepted(request) as acs:
                # The call's slot against max_calls, held until its bridge ends: through a wait
                # for a rejoin, and whichever socket it runs on.
                replica.sockets[call_id] = acs
                replica.awaiting_media.discard(call_key)
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
                            rejoinable=acs_call_id is not None,
                        )
                finally:
                    telemetry.end(summary)
                    replica.call_ended(call_id, summary)
                    replica.sockets.pop(call_id, None)
        finally:
            del replica.bridged_calls[call_key]
    return acs


async def _rejoin(
    request: web.Request, replica: Replica, call_key: str, call_id: str
) -> web.WebSocketResponse:
    """A new media socket for a call bridged here: it takes the place of one ACS lost, in the
    call's slot (a rejoin is no new call).

    Refused (409) before the upgrade, with nothing started, unless it is for the same call
    (``call_key``) under the same connection id, and the call waits for its socket to come back:
    while its socket is alive (or before its bridge started) it has one already.
    """
    live_id = replica.bridged_calls.get(call_key)
    if live_id is None:
        _refuse("the connection id is another call's")
    if live_id != call_id:
        _refuse("the call is bridged already, under another connection id")
    bridge = replica.bridges.get(call_id)
    if bridge is None or not bridge.can_rejoin():
        _refuse("the call's media socket is still open")
    async with _accepted(request) as acs:
        if call_id in replica.sockets:  # else the call ended during the upgrade
            replica.sockets[call_id] = acs
        log.info("call.media_reconnected")
        await bridge.rejoin(acs)
    return acs


def _refuse(reason: str) -> NoReturn:
    """409 before the upgrade: one live bridge per call."""
    log.warning("media.refused", reason=reason)
    raise web.HTTPConflict(text="the call already has a media socket")


@asynccontextmanager
async def _accepted(request: web.Request) -> AsyncIterator[web.WebSocketResponse]:
    """The media socket, upgraded; closed once its handler is done with it."""
    # No permessage-deflate, whatever the client offers (RFC 7692 lets a server decline):
    # Microsoft does not say whether ACS offers it, and on base64 audio it saves about a fifth
    # of the bytes for about 7 us of CPU per frame sent (more for decompressing what comes in).
    acs = web.WebSocketResponse(max_msg_size=_MAX_MEDIA_MESSAGE, autoping=True, compress=False)
    await acs.prepare(request)
    try:
        yield acs
    finally:
        if not acs.closed:
            await acs.close()
        log.info("call.media_closed", close_code=acs.close_code)


def _authorized_call(
    request: web.Request, replica: Replica, correlation_id: str | None, call_id: str
) -> tuple[str, AgentProfile]:
    """The call the request's call token authorizes (its ``call_key``), checked against the
    call it is presented for, and the profile it names.

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
        # Local development: a socket without a token talks to the default profile, and is
        # its own call.
        default = settings.routing.default_profile
        if default is None:
            raise web.HTTPUnauthorized(text="no call token and no default profile") from None
        return call_id, settings.routing.profile(default)
    try:
        return claims.call_key, settings.routing.profile(claims.profile)
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
    rejoinable: bool,
) -> CallSummary:
    """Bridge the call until it ends; its figures for telemetry."""
    settings = replica.settings
    sessions = call_sessions(
        settings.voice_live,
        profile,
        correlation_id,
        heartbeat_s=settings.continuity.voice_live_stall_s / 2,
    )
    prewarmed = await replica.prewarm.claim(correlation_id, profile)
    if prewarmed is not None:
        log.info("voice_live.prewarmed")
    bridge = CallBridge(
        acs=acs,
        first_session=prewarmed or sessions.open(),
        sessions=sessions,
        profile=profile,
        pacing=settings.pacing,
        continuity=settings.continuity,
        transcription_model=settings.voice_live.transcription_model_for(profile),
        actions=replica.control.actions(call_id),
        draining=lambda: replica.draining,
        telemetry=telemetry,
        open_recorder=_recorder_opener(settings, profile, call_id, correlation_id),
        rejoinable=rejoinable,
    )
    replica.bridges[call_id] = bridge
    try:
        await bridge.run()
    finally:
        replica.bridges.pop(call_id, None)
    return bridge.summary()


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
