"""User tools for the call-control tests, loaded the way a deployment loads its own."""

from __future__ import annotations

import asyncio

from callbridge.tools import tool

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}


@tool(description="Look up the status of an order.", parameters=ORDER_SCHEMA)
async def lookup_order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped"}


@tool(description="A tool whose backend is down.", parameters=ORDER_SCHEMA)
async def broken_lookup(order_id: str) -> dict[str, str]:
    raise ConnectionError(f"order service unreachable for {order_id}")


@tool(description="A tool that never answers.")
async def slow_lookup() -> str:
    await asyncio.sleep(3600)
    return "never"
