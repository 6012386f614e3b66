"""The real azure-ai-voicelive SDK as the emulator's tests drive it: a connection with bounded
receive helpers, opened and closed within a network bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from azure.ai.voicelive.aio import VoiceLiveConnection, connect
from azure.ai.voicelive.models import (
    FunctionTool,
    RequestSession,
    ServerEvent,
    ServerEventSessionUpdated,
)
from azure.core.credentials import AzureKeyCredential

from callbridge.sim.voicelive import API_VERSION, VoiceLiveEmulator

NETWORK_TIMEOUT_S = 5.0
"""Bound on each network step: connecting, each event awaited, closing."""

EventT = TypeVar("EventT", bound=ServerEvent)


class Client:
    """The real SDK connection plus bounded receive helpers."""

    def __init__(self, conn: VoiceLiveConnection) -> None:
        self.conn = conn

    async def next(self) -> ServerEvent:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            return await self.conn.recv()

    async def until(self, event_class: type[ServerEvent]) -> list[ServerEvent]:
        """Events up to and including the first of ``event_class``."""
        events = []
        while True:
            event = await self.next()
            events.append(event)
            if isinstance(event, event_class):
                return events

    async def expect(self, event_class: type[EventT]) -> EventT:
        """The next event of ``event_class``, skipping others."""
        return first(await self.until(event_class), event_class)

    async def offer_tools(self, *tools: FunctionTool, tool_choice: str | None = None) -> None:
        """Give the session ``tools`` and wait until it says so."""
        await self.conn.session.update(
            session=RequestSession(tools=list(tools), tool_choice=tool_choice)
        )
        await self.expect(ServerEventSessionUpdated)


def first(events: list[ServerEvent], event_class: type[EventT]) -> EventT:
    return next(e for e in events if isinstance(e, event_class))


def of_class(events: list[ServerEvent], event_class: type[EventT]) -> list[EventT]:
    return [e for e in events if isinstance(e, event_class)]


@asynccontextmanager
async def sdk_client(
    emulator: VoiceLiveEmulator,
    api_key: str,
    headers: Mapping[str, str] | None = None,
    model: str = "gpt-realtime",
) -> AsyncIterator[Client]:
    """A ``Client`` on the SDK's own ``connect`` to ``emulator``."""
    manager = connect(
        endpoint=emulator.endpoint,
        credential=AzureKeyCredential(api_key),
        model=model,
        api_version=API_VERSION,
        headers=headers,
    )
    async with opened(manager) as client:
        yield client


@asynccontextmanager
async def opened(
    manager: AbstractAsyncContextManager[VoiceLiveConnection],
) -> AsyncIterator[Client]:
    """The SDK connection ``manager`` makes, as a ``Client``, opened and closed within the
    network bound."""
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        conn = await manager.__aenter__()
    try:
        yield Client(conn)
    finally:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await manager.__aexit__(None, None, None)
