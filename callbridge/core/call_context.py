"""The conversation of one call, kept by the call and not by any Voice Live session.

A Voice Live session forgets everything when it closes, and a call can outlive several of them
(a dropped socket, a session near its expiry). What the model needs to carry on is kept here,
as the caller experienced it:

- the caller's turns: their input transcripts;
- the agent's turns as the caller heard them: a turn the caller spoke over is cut at the
  truncation point. Voice Live's transcript covers all the audio it generated, not what was
  played, so the text is cut in proportion to time (heard ms over the ms of audio the item had)
  and rounded down to a whole word, then marked as cut off. Speech rate is even enough within
  one turn for this to land within a word or two of where the caller stopped hearing;
- tool calls with their arguments and outputs;
- keypad input, as the agent was told it.

It is bounded: past ``max_entries`` entries or ``max_chars`` characters of text, the oldest
entries are dropped and the replay begins with a note saying how many. Entries are plain
frozen data (strings and numbers), so the context could live in a shared store; nothing here
does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

DEFAULT_MAX_ENTRIES = 200
DEFAULT_MAX_CHARS = 24_000
"""About 6,000 tokens of text: a long call's gist, well inside a realtime model's context."""

CUT_OFF_MARK = " —"
"""Ends an agent turn the caller spoke over, so the model knows it was not finished."""


@dataclass(frozen=True, slots=True)
class Turn:
    """Something said: the caller's transcript, or the agent's words as heard."""

    role: Literal["caller", "agent"]
    text: str
    cut_off: bool = False
    """The caller spoke over the agent: ``text`` ends where they stopped hearing it."""


@dataclass(frozen=True, slots=True)
class ToolExchange:
    """One tool call and, once it has returned, its output."""

    call_id: str
    name: str
    arguments: str
    output: str | None = None


@dataclass(frozen=True, slots=True)
class KeypadInput:
    """Digits the caller pressed, as the message the agent was given."""

    text: str


@dataclass(frozen=True, slots=True)
class Omitted:
    """Stands first in a replay whose oldest entries were dropped to stay within budget."""

    entries: int


Entry = Turn | ToolExchange | KeypadInput | Omitted


@dataclass(frozen=True, slots=True)
class _AgentDraft:
    """An agent turn while it is being spoken: its transcript so far, and where it was cut."""

    text: str = ""
    heard_fraction: float | None = None


class CallContext:
    """One call's conversation so far, in order, within a budget (see the module docstring)."""

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._entries: dict[str, Entry | _AgentDraft] = {}
        """By key (item id, tool call id...), in the order each was first seen."""
        self._chars = 0
        self._omitted = 0
        self._keypad_count = 0

    # --- what happened ------------------------------------------------------------------

    def caller_turn(self, item_id: str) -> None:
        """The caller's turn was committed: it holds its place before the agent's answer,
        though its transcript comes later."""
        self._put(item_id, Turn("caller", ""))

    def caller_said(self, item_id: str, transcript: str) -> None:
        self._put(item_id, Turn("caller", transcript.strip()))

    def agent_said(self, item_id: str, text: str, *, final: bool) -> None:
        """The agent's transcript of an item: a delta (``final`` False) or the whole of it."""
        draft = self._entries.get(item_id)
        if not isinstance(draft, _AgentDraft):
            draft = _AgentDraft()
        self._put(item_id, replace(draft, text=text if final else draft.text + text))

    def agent_heard(self, item_id: str, heard_ms: float, audio_ms: float) -> None:
        """The caller heard only ``heard_ms`` of the item's ``audio_ms``: cut its turn there."""
        draft = self._entries.get(item_id)
        if not isinstance(draft, _AgentDraft):
            draft = _AgentDraft()
        fraction = 0.0 if audio_ms <= 0 else max(0.0, min(1.0, heard_ms / audio_ms))
        self._put(item_id, replace(draft, heard_fraction=fraction))

    def tool_called(self, call_id: str, name: str, arguments: str) -> None:
        self._put(f"tool:{call_id}", ToolExchange(call_id, name, arguments))

    def tool_returned(self, call_id: str, output: str) -> None:
        key = f"tool:{call_id}"
        called = self._entries.get(key)
        if isinstance(called, ToolExchange):
            self._put(key, replace(called, output=output))

    def keypad(self, text: str) -> None:
        self._keypad_count += 1
        self._put(f"keypad:{self._keypad_count}", KeypadInput(text))

    # --- what a new session is told -----------------------------------------------------

    def entries(self, *, leave_out: frozenset[str] = frozenset()) -> list[Entry]:
        """The conversation as the caller experienced it, oldest first; empty turns and the
        items in ``leave_out`` (by item id) are skipped."""
        replay: list[Entry] = [Omitted(self._omitted)] if self._omitted else []
        for key, entry in self._entries.items():
            if key in leave_out:
                continue
            settled = _settled(entry)
            if settled is not None:
                replay.append(settled)
        return replay

    @property
    def omitted(self) -> int:
        """How many of the oldest entries were dropped to stay within the budget."""
        return self._omitted

    def __len__(self) -> int:
        return len(self._entries)

    # --- budget ---------------------------------------------------------------------------

    def _put(self, key: str, entry: Entry | _AgentDraft) -> None:
        old = self._entries.get(key)
        if old is not None:
            self._chars -= _size(old)
            self._entries[key] = entry  # keeps its place
        else:
            self._entries[key] = entry
        self._chars += _size(entry)
        self._trim()

    def _trim(self) -> None:
        keys: Iterator[str] = iter(list(self._entries))
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_entries or self._chars > self._max_chars
        ):
            oldest = next(keys)
            self._chars -= _size(self._entries.pop(oldest))
            self._omitted += 1


def _size(entry: Entry | _AgentDraft) -> int:
    match entry:
        case Turn(text=text) | KeypadInput(text=text) | _AgentDraft(text=text):
            return len(text)
        case ToolExchange(arguments=arguments, output=output):
            return len(arguments) + len(output or "")
        case Omitted():
            return 0


def _settled(entry: Entry | _AgentDraft) -> Entry | None:
    match entry:
        case _AgentDraft(text=text, heard_fraction=fraction):
            if fraction is None:
                return Turn("agent", text.strip()) if text.strip() else None
            heard = cut_at(text, fraction)
            return Turn("agent", heard + CUT_OFF_MARK, cut_off=True) if heard else None
        case Turn(text=""):
            return None
        case _:
            return entry


def cut_at(text: str, fraction: float) -> str:
    """The words of ``text`` within its first ``fraction`` of characters (whole words only)."""
    text = text.strip()
    if fraction >= 1.0:
        return text
    end = int(len(text) * fraction)
    if end < len(text) and end > 0 and not text[end].isspace():
        # Mid-word: that word was not heard whole.
        end = text.rfind(" ", 0, end)
    return text[: max(end, 0)].rstrip(" ,;:")
