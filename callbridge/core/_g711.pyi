"""The C extension behind ``callbridge.core.g711`` (``_g711.c``)."""

from typing_extensions import Buffer

def encode(taps: Buffer, factor: int, phase: int, history: bytearray, pcm: Buffer) -> bytes:
    """PCM16 LE at the ACS rate -> 8 kHz mu-law; ``history`` (PCM16) is updated in place."""

def decode(sub_filters: Buffer, factor: int, history: bytearray, ulaw: Buffer) -> bytes:
    """8 kHz mu-law -> PCM16 LE at the ACS rate; ``history`` (PCM16) is updated in place."""
