"""The caller's audio a new Voice Live session must be given, so no word is lost in a swap.

Two kinds of the caller's audio outlive the session they were meant for:

- **held** audio: while no session can take it (before the first one is open, during an outage,
  during a swap), audio waits here, bounded by the reconnect budget;
- **unanswered** audio: sent to the current session since the model last started answering
  (``response.created``), up to ``RESEND_MAX_S``. A session lost before it answered took that
  audio with it, so its replacement hears it again; the caller items it committed from it are
  named here too, so the replayed context leaves their text out.

Every frame goes to exactly one session at a time: the current one, or the hold.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator

from azure.ai.voicelive.models import ServerEvent

RESEND_MAX_S = 10.0
"""The most caller audio not yet answered that is kept to resend to a replacement session."""

FRAME_S = 0.02
"""One ACS media frame: an append carries one or more (``silence_batches``)."""


class _Appends:
    """Append messages in order, the oldest dropped once they carry more than ``max_frames``."""

    __slots__ = ("_frames", "_max_frames", "_messages")

    def __init__(self, max_frames: int) -> None:
        self._max_frames = max_frames
        self._messages: deque[tuple[bytes, int]] = deque()
        self._frames = 0

    def add(self, message: bytes, frames: int) -> None:
        self._messages.append((message, frames))
        self._frames += frames
        while self._frames > self._max_frames and len(self._messages) > 1:
            self._frames -= self._messages.popleft()[1]

    def take(self) -> tuple[bytes, int] | None:
        """The oldest message and its frames, removed; None once there are none."""
        if not self._messages:
            return None
        message, frames = self._messages.popleft()
        self._frames -= frames
        return message, frames

    def clear(self) -> None:
        self._messages.clear()
        self._frames = 0

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        return iter(self._messages)


class CallerAudioBacklog:
    """The call's held and unanswered caller audio (see the module docstring), as the
    ``input_audio_buffer.append`` messages that carry it (``adapters.voice_appends``), each
    with the frames it carries."""

    def __init__(self, hold_max_s: float) -> None:
        """``hold_max_s``: the longest outage audio is held for (the reconnect budget)."""
        self._hold_max_frames = round(hold_max_s / FRAME_S) + 1
        self._held: _Appends | None = _Appends(self._hold_max_frames)
        """None while the current session takes the caller's audio."""
        self._unanswered = _Appends(round(RESEND_MAX_S / FRAME_S))
        self._unanswered_items: list[str] = []

    @property
    def holding(self) -> bool:
        """No session takes the caller's audio now (nor any other client event)."""
        return self._held is not None

    def hold(self) -> None:
        """The current session can take no more audio: hold it for the next one."""
        if self._held is None:
            self._held = _Appends(self._hold_max_frames)

    def admit(self, message: bytes, frames: int) -> bool:
        """An append of ``frames`` of the caller's audio: True if the current session is to
        have it now (it counts as unanswered), False if it was held for the next session."""
        if self._held is not None:
            self._held.add(message, frames)
            return False
        self._unanswered.add(message, frames)
        return True

    def on_event(self, event: ServerEvent) -> None:
        """Follow the current session: a committed caller turn, an answer begun."""
        match event.type:
            case "input_audio_buffer.committed":
                if isinstance(item_id := event.get("item_id"), str):
                    self._unanswered_items.append(item_id)
            case "response.created":
                self._unanswered.clear()
                self._unanswered_items.clear()

    @property
    def unanswered_items(self) -> frozenset[str]:
        """Caller items whose audio a replacement session is given again (so their text is
        left out of the replayed context)."""
        return frozenset(self._unanswered_items)

    async def hand_over(
        self, send: Callable[[bytes], Awaitable[None]], *, resend_unanswered: bool
    ) -> None:
        """Give a new session, in order, the audio it must hear: what the old one left
        unanswered (``resend_unanswered``: after a loss) and what was held meanwhile; then the
        new session takes the caller's audio. Frames arriving while this sends join the hold,
        so none overtakes another."""
        self.hold()
        resend = list(self._unanswered) if resend_unanswered else []
        self._unanswered.clear()
        self._unanswered_items.clear()
        for message, frames in resend:
            self._unanswered.add(message, frames)
            await send(message)
        held = self._held
        assert held is not None  # set above, released only below
        while (oldest := held.take()) is not None:
            self._unanswered.add(*oldest)
            await send(oldest[0])
        self._held = None
