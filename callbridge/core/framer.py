"""Cut a stream of PCM16 into fixed-size frames (sans-IO)."""

from __future__ import annotations


class Framer:
    """Accumulates PCM bytes and hands out whole frames of ``frame_bytes`` each."""

    __slots__ = ("_buffer", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError("frame_bytes must be a positive whole number of PCM16 samples")
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def push(self, pcm: bytes) -> list[bytes]:
        """Add audio; return every whole frame now available."""
        self._buffer += pcm
        size = self.frame_bytes
        whole = len(self._buffer) // size * size
        if not whole:
            return []
        frames = [bytes(self._buffer[i : i + size]) for i in range(0, whole, size)]
        del self._buffer[:whole]
        return frames

    def flush(self) -> tuple[bytes, int] | None:
        """End of a stream: the remainder padded with silence to a whole frame.

        Returns:
            The padded frame and how many of its bytes are real audio, or ``None`` if empty.
        """
        if not self._buffer:
            return None
        real = len(self._buffer)
        frame = bytes(self._buffer) + bytes(self.frame_bytes - real)
        self._buffer.clear()
        return frame, real

    def take(self) -> bytes:
        """The audio not yet made into a frame, which the framer then forgets."""
        pending = bytes(self._buffer)
        self._buffer.clear()
        return pending

    def clear(self) -> None:
        self._buffer.clear()
