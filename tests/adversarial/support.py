"""What the attacks share: a local stack with the tone calls' agent, and a raw webhook POST."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from callbridge.core.profiles import AgentProfile
from callbridge.sim.harness import LocalStack
from callbridge.sim.voicelive import AgentTurn
from callbridge.web.webhook import SECRET_HEADER
from tests.tone_calls import CALLER_TRANSCRIPTS, TURNS


def tone_stack(turns: Sequence[AgentTurn] = TURNS) -> LocalStack:
    """The stand-ins and callbridge on loopback, the agent speaking ``turns`` (tone calls') and
    able to end the call."""
    return LocalStack(
        turns=list(turns),
        caller_transcripts=CALLER_TRANSCRIPTS,
        profile=AgentProfile(tools=("end_call",)),
        response_delay_ms=100,
    )


async def post_webhook(
    local: LocalStack, body: str | bytes, content_type: str = "application/json"
) -> tuple[int, str]:
    """POST ``body`` to the webhook with its secret, as Event Grid would; status and text."""
    headers = {SECRET_HEADER: local.webhook_secret, "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as http,
        http.post(local.webhook_url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text()
