"""The aiohttp application: ACS's webhook, callbacks and media socket, and health."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from callbridge.config import Settings
from callbridge.services import SERVICES, open_services
from callbridge.telephony.callbacks import callback
from callbridge.telephony.media_socket import media_socket
from callbridge.telephony.outbound import create_call
from callbridge.telephony.webhook import cloud_events_handshake, incoming_call

log = structlog.get_logger(__name__)


async def healthz(_: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 while draining or at the call limit, so the load balancer looks elsewhere."""
    services = request.app[SERVICES]
    body = {"calls": len(services.sockets), "max_calls": services.settings.max_calls}
    if services.draining:
        return web.json_response({**body, "status": "draining"}, status=503)
    if not services.accepting_calls():
        return web.json_response({**body, "status": "busy"}, status=503)
    return web.json_response({**body, "status": "ready"})


def create_app(settings: Settings) -> web.Application:
    """Build the application for ``settings``."""
    if not settings.auth.enabled:
        log.warning(
            "authentication.disabled",
            detail="CALLBRIDGE_AUTH=off: anyone who can reach this service can answer, "
            "place and join calls. For local development only.",
        )
    app = web.Application()

    async def services(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as shared:
            app[SERVICES] = shared
            yield
            # Shutdown: calls in progress are told the server is going away.
            for socket in list(shared.sockets):
                await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")

    app.cleanup_ctx.append(services)
    app.router.add_post("/api/incomingCall", incoming_call)
    app.router.add_route("OPTIONS", "/api/incomingCall", cloud_events_handshake)
    app.router.add_post("/api/callbacks/{token}", callback)
    app.router.add_post("/api/calls", create_call)
    app.router.add_get("/ws", media_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
