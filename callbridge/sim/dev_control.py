"""``callbridge dev``'s control endpoint: ``POST /calls`` places one simulated call and answers
with its report (:mod:`callbridge.sim.dev_calls`).

It listens on loopback only and takes a request only with the token ``dev`` wrote to its line
file (``Authorization: Bearer <token>``): a web page in a browser on the same machine can reach
loopback, but cannot read that file.
"""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Final

from aiohttp import web

from callbridge.sim.dev_calls import RingRequest, ring_call
from callbridge.sim.harness import LocalStack

CALLS_PATH: Final = "/calls"

SHUTDOWN_S: Final = 5.0
"""How long the rings of the calls ``dev`` hung up as it stopped may take to get their
reports (judging a call and writing its files takes well under a second)."""


def bearer(token: str) -> dict[str, str]:
    """The header that carries the control token."""
    return {"Authorization": f"Bearer {token}"}


class ControlServer:
    """The control endpoint of one ``LocalStack``, open while the context is."""

    def __init__(self, stack: LocalStack, token: str) -> None:
        self._stack = stack
        self._expected = bearer(token)["Authorization"].encode()
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: any free port); the endpoint's base URL."""
        app = web.Application()
        app.router.add_post(CALLS_PATH, self._calls)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        return f"http://{host}:{bound_port}"

    async def __aenter__(self) -> ControlServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _calls(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not secrets.compare_digest(given, self._expected):
            return _error(401, "missing or wrong token: use the one in dev's line file")
        try:
            ring = RingRequest.from_json(await request.json())
        except ValueError as exc:  # JSONDecodeError is one
            return _error(400, str(exc))
        try:
            result = await ring_call(self._stack, ring)
        except ValueError as exc:  # a scenario's problems (ScenarioError) or a bad WAV
            return _error(400, str(exc))
        except (RuntimeError, TimeoutError) as exc:  # before OSError: TimeoutError is one
            return _error(502, f"the call did not complete: {exc}")
        except OSError as exc:
            return _error(500, f"cannot write the call's files: {exc}")
        return web.json_response(result.to_json())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
