"""A short call made of tones, for tests that need a whole call through the service.

The demo's turns are real speech and make a call of about 25 s; tones a few hundred ms long
exercise the same path (answer, greeting, barge-in, tool call, hang-up) in a few seconds, and
every sample of them is predictable.
"""

from __future__ import annotations

from callbridge.sim.script import AfterAgentDone, AfterHeard, Clip, Say, Step
from callbridge.sim.voicelive import AgentTurn, ToolCall

RATE = 16000
LINE = Clip.tone(ms=600, sample_rate=RATE, hz=300, amplitude=0.5)
"""What the caller says each time: loud enough for the emulator to hear as speech."""


def turn(ms: int, hz: float, text: str, tool: ToolCall | None = None) -> AgentTurn:
    """An agent turn: a tone of ``ms`` at ``hz``, its transcript, and a tool call after it."""
    return AgentTurn(Clip.tone(ms=ms, sample_rate=RATE, hz=hz).pcm, RATE, text, tool)


GREETING = turn(600, 440, "Hello, how can I help?")
ANSWER = turn(2500, 523, "Here is a long answer the caller may cut short.")
GOODBYE = turn(500, 659, "Goodbye!", ToolCall("end_call", {"reason": "done"}))
TURNS = (GREETING, ANSWER, GOODBYE)
"""A greeting, a long answer, and a goodbye after which the agent hangs up (``end_call``)."""

CALLER_TRANSCRIPTS = ["caller"] * 4
"""The emulator's transcription of each line the caller says."""

BARGE_IN_SCRIPT: list[Step] = [
    Say(LINE, AfterAgentDone(pause_ms=300)),
    Say(LINE, AfterHeard(ms=1000, spurt=2)),
    Say(LINE, AfterAgentDone(pause_ms=300)),
]
"""The caller asks, cuts the answer off 1 s in, and speaks once more: with ``TURNS`` the
agent then says goodbye and hangs up."""
