"""The aiohttp application: its routes, and the replica state they share for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from callbridge.core.settings import Settings
from callbridge.web.callbacks import callback
from callbridge.web.health import healthz, readyz
from callbridge.web.media_socket import media_socket
from callbridge.web.outbound import create_call
from callbridge.web.replica import REPLICA, CallEndedObserver, open_replica
from callbridge.web.webhook import cloud_events_handshake, incoming_call

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings, *, on_call_ended: CallEndedObserver | None = None
) -> web.Application:
    """Build the application for ``settings``.

    ``on_call_ended``: told each call's figures (``CallSummary``) as the call ends on this
    replica, for an application that embeds callbridge (the stand-ins' call reports use it).
    """
    if not settings.auth.enabled:
        log.warning(
            "authentication.disabled",
            detail="CALLBRIDGE_AUTH=off: anyone who can reach this service can answer, "
            "place and join calls. For local development only.",
        )
    app = web.Application()

    async def replica(app: web.Application) -> AsyncIterator[None]:
        async with open_replica(settings, on_call_ended) as shared:
            app[REPLICA] = shared
            yield
            # Shutdown: calls in progress are told the server is going away.
            for socket in list(shared.sockets.values()):
                await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")

    app.cleanup_ctx.append(replica)
    app.router.add_post("/api/incomingCall", incoming_call)
    app.router.add_route("OPTIONS", "/api/incomingCall", cloud_events_handshake)
    app.router.add_post("/api/callbacks/{token}", callback)
    app.router.add_post("/api/calls", create_call)
    app.router.add_get("/ws/{token}", media_socket)
    # The old form, the token in the query string (``/ws?token=``): accepted for one more
    # release, and logged as deprecated.
    app.router.add_get("/ws", media_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
