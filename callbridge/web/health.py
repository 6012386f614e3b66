"""``GET /healthz`` and ``GET /readyz``: liveness and readiness for the platform's probes."""

from __future__ import annotations

from aiohttp import web

from callbridge.web.replica import REPLICA


async def healthz(_: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 while draining or at the call limit, so the load balancer looks elsewhere."""
    replica = request.app[REPLICA]
    body = {"calls": len(replica.sockets), "max_calls": replica.settings.max_calls}
    if replica.draining:
        return web.json_response({**body, "status": "draining"}, status=503)
    if not replica.accepting_calls():
        return web.json_response({**body, "status": "busy"}, status=503)
    return web.json_response({**body, "status": "ready"})
