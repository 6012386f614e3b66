"""The aiohttp application: the ACS media WebSocket and health endpoints."""

from __future__ import annotations

import uuid

import aiohttp
import structlog
from aiohttp import web
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError

from callbridge.bridge.call import CallBridge
from callbridge.config import Settings
from callbridge.telephony.auth import AuthError, verify_call_token
from callbridge.voice.session import open_voice_live

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CALLS = web.AppKey("calls", set[web.WebSocketResponse])

_MAX_MEDIA_MESSAGE = 256 * 1024
"""ACS frames are ~1.3 kB of JSON; anything near this is not media."""


async def media_socket(request: web.Request) -> web.WebSocketResponse:
    """ACS dials this once the call is answered; the call lives as long as the socket."""
    settings = request.app[SETTINGS]
    call_id = request.headers.get("x-ms-call-connection-id") or f"local-{uuid.uuid4()}"
    correlation_id = request.headers.get("x-ms-call-correlation-id")
    if settings.auth.enabled:
        assert settings.auth.signing_key is not None  # load_settings guarantees it
        try:
            verify_call_token(
                request.query.get("token", ""),
                settings.auth.signing_key,
                correlation_id=correlation_id,
            )
        except AuthError as exc:
            # Refused before the upgrade: nothing is started for this request.
            log.warning(
                "media.unauthorized",
                reason=str(exc),
                call_connection_id=call_id,
                correlation_id=correlation_id,
            )
            raise web.HTTPUnauthorized(text="unauthorized") from None
    acs = web.WebSocketResponse(max_msg_size=_MAX_MEDIA_MESSAGE, autoping=True)
    await acs.prepare(request)
    request.app[CALLS].add(acs)
    with structlog.contextvars.bound_contextvars(
        call_connection_id=call_id, correlation_id=correlation_id
    ):
        log.info("call.media_connected")
        try:
            async with open_voice_live(settings.voice_live, call_connection_id=call_id) as voice:
                bridge = CallBridge(
                    acs=acs,
                    voice=voice,
                    profile=settings.profile,
                    pacing=settings.pacing,
                    transcription_model=settings.voice_live.transcription_model,
                )
                await bridge.run()
        except (TimeoutError, VoiceLiveConnectionError) as exc:
            log.error("voice_live.unavailable", error=str(exc) or type(exc).__name__)
            await acs.close(
                code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=b"voice session unavailable"
            )
        finally:
            request.app[CALLS].discard(acs)
            if not acs.closed:
                await acs.close()
            log.info("call.media_closed", close_code=acs.close_code)
    return acs


async def healthz(_: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def _close_calls(app: web.Application) -> None:
    calls: set[web.WebSocketResponse] = app[CALLS]
    for socket in list(calls):
        await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown")


def create_app(settings: Settings) -> web.Application:
    """Build the application for ``settings``."""
    if not settings.auth.enabled:
        log.warning(
            "authentication.disabled",
            detail="CALLBRIDGE_AUTH=off: anyone who can reach /ws can open a call. "
            "For local development only.",
        )
    app = web.Application()
    app[SETTINGS] = settings
    app[CALLS] = set[web.WebSocketResponse]()
    app.router.add_get("/ws", media_socket)
    app.router.add_get("/healthz", healthz)
    app.on_shutdown.append(_close_calls)
    return app
