"""A connection's conversation: ordered items addressable by id, and the item payloads."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from callbridge.sim.voicelive.protocol import InvalidRequestError
from callbridge.sim.voicelive.records import ClientItemRecord, ResponseRecord

# The content part types each role's message takes in conversation.item.create: the Voice Live
# API reference (voice-live-api-reference.md, RealtimeConversationRequestItem) gives
# RealtimeSystemMessageItem RealtimeRequestTextContentPart (input_text),
# RealtimeUserMessageItem input_text or RealtimeRequestAudioContentPart (input_audio), and
# RealtimeAssistantMessageItem RealtimeOutputTextContentPart (text). SDK 1.3.1's
# SystemMessageItem, UserMessageItem and AssistantMessageItem all take any MessageContentPart
# (InputTextContentPart, InputAudioContentPart, OutputTextContentPart), so its models do not
# catch a mismatch; the emulator refuses one, since the reference is clear.
_CONTENT_TYPES_BY_ROLE: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset({"input_text"}),
    "user": frozenset({"input_text", "input_audio"}),
    "assistant": frozenset({"text"}),
}


@dataclass(eq=False, slots=True)
class Item:
    """A conversation item; ``response`` is set for assistant audio items."""

    item_id: str
    payload: dict[str, Any]
    response: ResponseRecord | None = None
    truncated_ms: int | None = None

    @property
    def kept_bytes(self) -> int:
        """Of an assistant audio item: the audio sent, less what a truncate cut away."""
        if self.response is None:
            return 0
        kept = self.response.audio_bytes_sent
        if self.truncated_ms is not None:
            kept = min(kept, self.truncated_ms * self.response.bytes_per_ms)
        return kept


class Conversation:
    """The items of one connection, in conversation order."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}  # insertion order is conversation order

    @property
    def item_ids(self) -> tuple[str, ...]:
        """The items' ids, in conversation order."""
        return tuple(self._items)

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def require(self, item_id: str) -> Item:
        """The item, or the error the service sends for an id it does not hold. OpenAI's API
        reference (client events conversation.item.delete and .retrieve): the server answers
        "unless the item does not exist in the conversation history, in which case the server
        will respond with an error". Voice Live publishes no code for it; the emulator says
        ``item_not_found`` with param ``item_id``."""
        item = self._items.get(item_id)
        if item is None:
            raise InvalidRequestError(
                "item_not_found", f"Item with item_id not found: {item_id}", "item_id"
            )
        return item

    def add(
        self,
        item_id: str,
        payload: dict[str, Any],
        *,
        response: ResponseRecord | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """Add an item at the end (or ``after`` an item); return its ``item.created`` event."""
        if item_id in self._items:
            raise InvalidRequestError("invalid_value", f"duplicate item id {item_id}", "item.id")
        if after is not None and after not in self._items:
            raise InvalidRequestError(
                "item_not_found", f"previous_item_id not found: {after}", "previous_item_id"
            )
        item = Item(item_id, payload, response)
        previous_item_id = after
        if after is None:
            previous_item_id = next(reversed(self._items), None)
            self._items[item_id] = item
        else:
            entries = list(self._items.items())
            entries.insert(list(self._items).index(after) + 1, (item_id, item))
            self._items = dict(entries)
        return {
            "type": "conversation.item.created",
            "previous_item_id": previous_item_id,
            "item": payload,
        }

    def has_function_call(self, call_id: str) -> bool:
        """Whether a ``function_call`` item with this ``call_id`` is in the conversation."""
        return any(
            item.payload.get("type") == "function_call" and item.payload.get("call_id") == call_id
            for item in self._items.values()
        )

    def delete(self, item_id: str) -> None:
        self.require(item_id)
        del self._items[item_id]

    def update(self, item_id: str, payload: dict[str, Any]) -> None:
        """Replace an item's payload, if the client has not deleted the item meanwhile."""
        if item_id in self._items:
            self._items[item_id].payload = payload

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Cut an assistant audio item at ``audio_end_ms``, or raise as the service would."""
        item = self.require(item_id)
        audio = item.response
        if audio is None:
            raise InvalidRequestError(
                "invalid_value", "Only assistant audio items can be truncated", "item_id"
            )
        if content_index != 0:
            raise InvalidRequestError(
                "invalid_value", f"Item has no content at index {content_index}", "content_index"
            )
        if audio_end_ms < 0:
            raise InvalidRequestError(
                "invalid_value", f"audio_end_ms {audio_end_ms} is negative", "audio_end_ms"
            )
        # Compare in bytes: an integer ms of audio is a whole number of bytes in every format.
        available_bytes = item.kept_bytes
        if audio_end_ms * audio.bytes_per_ms > available_bytes:
            raise InvalidRequestError(
                "invalid_value",
                f"audio_end_ms {audio_end_ms} is greater than audio duration "
                f"{available_bytes / audio.bytes_per_ms:.1f}ms sent for item {item_id}",
                "audio_end_ms",
            )
        item.truncated_ms = audio_end_ms


def retrieved_payload(item: Item, turn_audio: bytes) -> dict[str, Any]:
    """An assistant audio item as ``conversation.item.retrieved`` carries it: its audio part with
    the audio, base64, as far as it was sent (and not truncated away). The API reference
    2026-07-15 shows it so (conversation.item.retrieved example; RealtimeOutputAudioContentPart
    "audio: Base64-encoded audio data"); SDK 1.3.1's ``ResponseAudioContentPart`` has no
    ``audio`` field (see wire.DOCUMENTED_BEYOND_SDK)."""
    encoded = base64.b64encode(turn_audio[: item.kept_bytes]).decode("ascii")
    content = [
        {**part, "audio": encoded} if part.get("type") == "audio" else part
        for part in item.payload["content"]
    ]
    return {**item.payload, "content": content}


def message_item(
    item_id: str, role: str, status: str, content: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
        "status": status,
    }


def item_from_request(item_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The server's view of a client-created item (``conversation.item.created`` payload)."""
    match item["type"]:
        case "message":
            content = [dict(part) for part in item["content"]]
            allowed = _CONTENT_TYPES_BY_ROLE.get(item["role"], frozenset())
            wrong = sorted({str(p.get("type")) for p in content} - allowed)
            if wrong:
                raise InvalidRequestError(
                    "invalid_value",
                    f"a {item['role']} message takes content of type {sorted(allowed)}, "
                    f"not {wrong}",
                    "item.content",
                )
            return message_item(item_id, item["role"], "completed", content)
        case "function_call_output":
            return {
                **_item_base(item_id, item),
                "call_id": item["call_id"],
                "output": item["output"],
            }
        case "function_call":
            return function_call_item(
                item_id, item["call_id"], item["name"], item["arguments"], "completed"
            )
    raise InvalidRequestError(
        "unsupported_event", f"the emulator cannot create {item['type']} items", "item.type"
    )


def _item_base(item_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": item_id, "object": "realtime.item", "type": item["type"]}


def client_item_record(payload: Mapping[str, Any], at: float) -> ClientItemRecord:
    """What a test needs of an item the client created (see :class:`ClientItemRecord`)."""
    match payload["type"]:
        case "message":
            text = "".join(
                str(part.get("text") or part.get("transcript") or "") for part in payload["content"]
            )
            return ClientItemRecord(at, payload["id"], "message", role=payload["role"], text=text)
        case "function_call":
            return ClientItemRecord(
                at,
                payload["id"],
                "function_call",
                text=payload["arguments"],
                call_id=payload["call_id"],
                name=payload["name"],
            )
    return ClientItemRecord(
        at, payload["id"], payload["type"], text=payload["output"], call_id=payload["call_id"]
    )
