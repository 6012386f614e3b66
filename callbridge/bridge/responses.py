"""The call's Voice Live responses: which one is generating, which were cut off, what comes next.

One object keeps this state, because three parts of the bridge read it: the agent's audio
(late audio of a cut-off response is dropped), the interruption policy (``response.cancel`` is
sent only while a response is generating, and at most once), and the call actions (a new
response is asked for only when none is in progress).
"""

from __future__ import annotations

from callbridge.bridge.voice_link import VoiceLink
from callbridge.core.pacing import ItemKey


class Responses:
    """Voice Live responses of one call, and the agent audio received for each item."""

    __slots__ = (
        "_cancel_sent",
        "_create_sent",
        "_muted",
        "_replaced_items",
        "_voice",
        "_wanted",
        "active_id",
        "item_response",
        "received_ms",
    )

    def __init__(self, voice: VoiceLink) -> None:
        self._voice = voice
        self.active_id: str | None = None
        """The response Voice Live is generating, if any."""
        self._cancel_sent = False
        self._create_sent = False
        self._wanted = False
        self._muted: set[str] = set()
        self._replaced_items: set[str] = set()
        self.item_response: dict[str, str] = {}
        """The response each audio item belongs to."""
        self.received_ms: dict[ItemKey, float] = {}
        """Agent audio received so far per item: a truncation never claims more."""

    def created(self, response_id: str) -> None:
        self.active_id = response_id
        self._cancel_sent = False
        self._create_sent = False

    def done(self, response_id: str) -> None:
        if response_id == self.active_id:
            self.active_id = None

    def session_replaced(self) -> list[ItemKey]:
        """The call goes on with a new Voice Live session: nothing is being generated any more.
        The items of the response that was (cut off with the old session)."""
        active, items = self.active_id, self.active_items()
        self.active_id = None
        self._cancel_sent = self._create_sent = self._wanted = False
        self._replaced_items.update(self.item_response)
        if active is not None:
            self.mute(active)
        return items

    def active_items(self) -> list[ItemKey]:
        """The items of the response being generated whose audio has begun to arrive."""
        active = self.active_id
        if active is None:
            return []
        return [key for key in self.received_ms if self.item_response.get(key[0]) == active]

    def mute(self, response_id: str) -> None:
        """The caller spoke over this response: none of its audio may reach them any more."""
        self._muted.add(response_id)

    def is_muted(self, response_id: str | None) -> bool:
        return response_id in self._muted

    def in_current_session(self, item_id: str) -> bool:
        """Whether the call's current Voice Live session knows this item."""
        return item_id not in self._replaced_items

    async def cancel_active(self) -> str | None:
        """Cancel the response being generated, at most once; the one cancelled, if any."""
        if self.active_id is None or self._cancel_sent:
            return None
        self._cancel_sent = True
        response_id = self.active_id
        self.mute(response_id)
        await self._voice.cancel_response(response_id)
        return response_id

    async def request(self) -> None:
        """Ask for a response now, or as soon as the one in progress is done."""
        if self.active_id is not None or self._create_sent:
            self._wanted = True
            return
        self._create_sent = True
        await self._voice.create_response()

    async def request_if_wanted(self, *, also: bool = False) -> None:
        """Ask for the response that was wanted while another was in progress (or if ``also``)."""
        if self._wanted or also:
            self._wanted = False
            await self.request()
