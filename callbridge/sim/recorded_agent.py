"""The agent's side of a replayed recording: one scripted turn per recorded response.

:func:`agent_turns` turns what the caller was sent of each response, with its transcript and
tool call, into the turns the Voice Live emulator plays (turn *n* as its *n*-th response):

* A turn's audio is what the caller was sent of the response's items (``agent_item_pcm``),
  at the recording's rate; its transcript the items' ``transcript`` lines of speaker
  ``agent``.
* An interrupted item holds only what was played before ``StopAudio``. Its turn is padded
  with silence up to the ``received_ms`` of its barge-in (what Voice Live had generated), so
  the replayed agent is still talking where the caller cut in, rather than finishing early
  and leaving nothing to interrupt. Without ``received_ms``, ``BARGE_IN_PAD_MS`` is added.
* A tool call ends the turn of the response that made it. Responses are told apart by
  ``response_id`` where the recording gives one (on ``agent_audio`` lines, or on any event
  naming the item or call id with a response id; a ``tool_call`` record's own
  ``response_id`` once it has one); otherwise each agent item is a response, and a tool call
  belongs to the latest item if it came while that item was playing (within
  ``TOOL_CALL_SLACK_S`` of its last frame), else to a response that said nothing (the model
  called the tool without speaking).
* A response that said nothing (a tool call alone, or a ``response.created`` event without
  audio) is one 20 ms frame of silence: the emulator's turns need audio. A recording in
  which the agent never spoke gets one silent turn, so the emulator has something to play.
* Arguments that are not a JSON object (a model's malformed output) are replayed as ``{}``:
  the scripted agent does not depend on a tool's result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callbridge.adapters.recording import (
    SAMPLE_WIDTH,
    TIMELINE,
    AgentAudioRecord,
    BargeInRecord,
    EventRecord,
    Recording,
    ToolCallRecord,
    TranscriptRecord,
)
from callbridge.sim.scenario_schema import ScenarioError
from callbridge.sim.script import FRAME_MS
from callbridge.sim.voicelive.audio import AgentTurn, ToolCall

BARGE_IN_PAD_MS: Final = 1000.0
"""Silence added to an interrupted item whose barge-in has no ``received_ms``."""

TOOL_CALL_SLACK_S: Final = 0.5
"""Without response ids, a tool call this soon after an item's last frame was sent belongs
to that item's response. A tool the model calls without speaking comes after the caller's
next turn, which is longer than this (the caller speaks, then Voice Live waits for silence)."""

_RESPONSE_CREATED: Final = "response.created"


def agent_turns(recording: Recording) -> list[AgentTurn]:
    """One turn per recorded response, in order.

    Raises:
        ScenarioError: a response made two tool calls (a replayed turn makes one).
    """
    return _Agent(recording, recording.path / TIMELINE).turns()


@dataclass(slots=True)
class _Response:
    """One response of the recorded call, as far as the recording shows it."""

    t: float
    parts: list[tuple[str, int]] = field(default_factory=list)
    """Its audio, as (item id, content index), in order."""
    sent_until: float = -math.inf
    """When its last audio frame was sent."""
    tool: ToolCallRecord | None = None


class _Agent:
    """The recorded call's responses, in order."""

    def __init__(self, recording: Recording, timeline: Path) -> None:
        self._recording = recording
        self._timeline = timeline
        self.bps = float(recording.bytes_per_second)
        self.rate = recording.sample_rate
        item_response, call_response, created = _response_links(recording.of(EventRecord))
        spans = [span for span in recording.of(AgentAudioRecord) if span.length > 0]
        keys = [span.response_id or item_response.get(span.item_id) for span in spans]
        linked = any(key is not None for key in keys)
        responses: dict[str, _Response] = {}
        if linked:
            for t, response_id in created:
                responses.setdefault(response_id, _Response(t))
        for span, key in zip(spans, keys, strict=True):
            name = key or f"item {span.item_id}"
            response = responses.setdefault(name, _Response(span.t))
            response.t = min(response.t, span.t)
            part = (span.item_id, span.content_index)
            if part not in response.parts:
                response.parts.append(part)
            response.sent_until = max(response.sent_until, span.t + span.length / self.bps)
        for call in recording.of(ToolCallRecord):
            self._attach(responses, call, call_response)
        self.responses = sorted(responses.values(), key=lambda response: response.t)

    def _attach(
        self,
        responses: dict[str, _Response],
        call: ToolCallRecord,
        call_response: Mapping[str, str],
    ) -> None:
        own = getattr(call, "response_id", None)
        response_id = own if isinstance(own, str) else call_response.get(call.call_id)
        if response_id is not None:
            response = responses.setdefault(response_id, _Response(call.t))
            if response.tool is not None:
                raise ScenarioError(
                    [
                        f"{self._timeline}: response {response_id} called {response.tool.name}"
                        f" and {call.name}: a replayed agent turn makes one tool call"
                    ]
                )
            response.tool = call
            return
        started = [r for r in responses.values() if r.t <= call.t]
        latest = max(started, key=lambda response: response.t, default=None)
        if (
            latest is not None
            and latest.tool is None
            and call.t <= latest.sent_until + TOOL_CALL_SLACK_S
        ):
            latest.tool = call
        else:
            responses[f"tool {call.call_id} {call.t}"] = _Response(call.t, tool=call)

    def turns(self) -> list[AgentTurn]:
        """One turn per response; a silent frame for one that said nothing."""
        recording = self._recording
        texts: dict[str, list[str]] = {}
        for line in recording.of(TranscriptRecord):
            if line.speaker == "agent":
                texts.setdefault(line.item_id, []).append(line.text)
        padded: dict[tuple[str, int], float] = {}
        for barge_in in recording.of(BargeInRecord):
            key = (barge_in.item_id, barge_in.content_index)
            played_ms = len(recording.agent_item_pcm(*key)) / self.bps * 1000
            target = (
                barge_in.received_ms
                if barge_in.received_ms is not None
                else played_ms + BARGE_IN_PAD_MS
            )
            padded[key] = max(padded.get(key, 0.0), float(target))
        turns: list[AgentTurn] = []
        for response in self.responses:
            audio = b"".join(
                _pad(recording.agent_item_pcm(*part), padded.get(part), self.rate)
                for part in response.parts
            )
            transcript = " ".join(
                text
                for item in dict.fromkeys(item for item, _ in response.parts)
                for text in texts.get(item, [])
            )
            turns.append(
                AgentTurn(
                    audio=audio or _silence(self.rate),
                    sample_rate=self.rate,
                    transcript=transcript,
                    tool_call=_tool_call(response.tool) if response.tool is not None else None,
                )
            )
        return turns or [AgentTurn(_silence(self.rate), self.rate, "")]


def _response_links(
    events: Iterable[EventRecord],
) -> tuple[dict[str, str], dict[str, str], list[tuple[float, str]]]:
    """From recorded protocol events: item id -> response id, call id -> response id, and
    the responses created, in order."""
    item_response: dict[str, str] = {}
    call_response: dict[str, str] = {}
    created: list[tuple[float, str]] = []
    for event in events:
        fields = event.fields
        response_id = fields.get("response_id")
        body = fields.get("response")
        if not isinstance(response_id, str) and isinstance(body, dict):
            response_id = body.get("id")
        if not isinstance(response_id, str):
            continue
        if event.kind == _RESPONSE_CREATED:
            created.append((event.t, response_id))
        item = fields.get("item")
        item_id = fields.get("item_id")
        if not isinstance(item_id, str) and isinstance(item, dict):
            item_id = item.get("id")
        if isinstance(item_id, str):
            item_response.setdefault(item_id, response_id)
        call_id = fields.get("call_id")
        if not isinstance(call_id, str) and isinstance(item, dict):
            call_id = item.get("call_id")
        if isinstance(call_id, str):
            call_response.setdefault(call_id, response_id)
    return item_response, call_response, created


def _pad(pcm: bytes, to_ms: float | None, rate: int) -> bytes:
    """``pcm`` with silence added up to ``to_ms`` (for an interrupted item)."""
    if to_ms is None:
        return pcm
    samples = math.ceil(to_ms * rate / 1000 - 1e-9)
    return pcm.ljust(samples * SAMPLE_WIDTH, b"\0")


def _silence(rate: int) -> bytes:
    return bytes(rate * FRAME_MS // 1000 * SAMPLE_WIDTH)


def _tool_call(record: ToolCallRecord) -> ToolCall:
    arguments: object = record.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    return ToolCall(record.name, arguments if isinstance(arguments, dict) else {})
