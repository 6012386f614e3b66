"""HTTP POSTs to the app: Event Grid deliveries and ACS callbacks.

Neither Event Grid nor ACS lets an app's failure break the platform: a webhook that refuses,
times out or is down is recorded (status None and the error) and the call goes on. So nothing
here raises for the app's sake; every POST is bounded by a timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PostResult:
    """The app's answer to one POST."""

    status: int | None
    body: Any
    error: str | None
    sent_at: float
    done_at: float


class Poster:
    """One HTTP client session for every POST the stand-in makes."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post_json(self, url: str, payload: Any, headers: Mapping[str, str]) -> PostResult:
        """POST ``payload`` as JSON and return what came back; never raises for the app."""
        if self._session is None:
            raise RuntimeError("the ACS stand-in is not started")
        sent_at = time.monotonic()
        try:
            async with self._session.post(url, json=payload, headers=dict(headers)) as response:
                text = await response.text()
                status: int | None = response.status
                error = None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: bad URL
            status, text, error = None, "", f"{type(exc).__name__}: {exc}"
            # The path only: a webhook URL's query string carries its secret.
            _log.warning("acs_standin.post_failed", url=url.split("?", 1)[0], error=error)
        return PostResult(status, _parse(text), error, sent_at, time.monotonic())


def _parse(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
