"""The shipped conversation: the agent's turns and the caller's lines recorded in
``callbridge.assets``, as the emulator and the phones take them.

``callbridge demo``, ``callbridge bench``, the local stack's default agent and the end-to-end
tests all talk through it, so their figures are for the same real speech.
"""

from __future__ import annotations

from dataclasses import replace

from callbridge.assets import asset_path
from callbridge.sim.voicelive import AgentTurn, ToolCall, load_turns

DEMO_AGENT_TURNS = (
    "agent_01_greeting",
    "agent_02_answer",
    "agent_03_followup",
    "agent_04_goodbye",
)
DEMO_CALLER_LINES = ("caller_01_question", "caller_02_interrupt", "caller_03_thanks")


def demo_turns() -> list[AgentTurn]:
    """The shipped agent turns (real speech): greeting, a long answer, a follow-up, and a
    goodbye after which the agent hangs up (``end_call``)."""
    *talk, goodbye = load_turns([asset_path(name) for name in DEMO_AGENT_TURNS])
    return [*talk, replace(goodbye, tool_call=ToolCall("end_call", {"reason": "caller is done"}))]


def demo_caller_transcripts() -> list[str]:
    """What the shipped caller lines say, as the emulator's transcription of them."""
    return [asset_path(name).with_suffix(".txt").read_text().strip() for name in DEMO_CALLER_LINES]
