"""The caller's audio to Voice Live: ``input_audio_buffer.append`` written past the SDK's ``send``.

A call appends 50 frames a second, the bridge's most frequent message. The SDK's ``send``
(azure-ai-voicelive 1.3.1, ``aio/_patch.py``) takes a mapping, checks it against its models,
copies it and ``json.dumps`` it before aiohttp sees a byte: in a 20-call profile that was a third
of what each append cost, 5% of the bridge's CPU. Here the event is put together as bytes once,
and written to the SDK's own WebSocket with aiohttp's public ``send_frame``.

A strict writer: exactly the API reference's fields (2026-07-15, ``input_audio_buffer.append``:
``type``, and ``audio`` as base64), the same JSON as ``send`` writes without its spaces. Base64's
alphabet needs no JSON escaping. The socket is the SDK's private ``_connection`` (the SDK is
pinned; ``tests/test_voice_appends.py`` fails if it moves). A connection without one is written
through ``send`` instead, so the caller is still heard.
"""

from __future__ import annotations

import binascii
import json

import aiohttp
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import VoiceLiveConnection

_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_TAIL = b'"}'


def append_message(audio: bytes) -> bytes:
    """The ``input_audio_buffer.append`` event for ``audio``, as the UTF-8 JSON text sent."""
    return _HEAD + binascii.b2a_base64(audio, newline=False) + _TAIL


class AppendWriter:
    """Writes append messages to one Voice Live connection."""

    __slots__ = ("_connection", "_socket")

    def __init__(self, connection: VoiceLiveConnection) -> None:
        self._connection = connection
        socket = getattr(connection, "_connection", None)
        self._socket = socket if isinstance(socket, aiohttp.ClientWebSocketResponse) else None

    @property
    def direct(self) -> bool:
        """Whether messages go straight to the WebSocket (else through the SDK's ``send``)."""
        return self._socket is not None

    async def send(self, message: bytes) -> None:
        """Write one append message.

        Raises:
            azure.ai.voicelive.aio.ConnectionError: as the SDK's ``send`` raises it when the
                socket is closing or gone.
        """
        if self._socket is None:
            await self._connection.send(json.loads(message))
            return
        try:
            await self._socket.send_frame(message, aiohttp.WSMsgType.TEXT)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise VoiceLiveConnectionError(f"Failed to send event: {exc}") from exc
