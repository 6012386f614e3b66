"""The codec's C extension (``callbridge.core._g711``) on its own: G.711 exactly, and bad calls
refused with an error rather than a crash.

Python's ``audioop`` is the reference for mu-law: every PCM16 value and every code is checked.
A one-tap unit filter at factor 1 makes each function pure companding.
"""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.core import _g711
from callbridge.core.pcm import audioop

UNIT = np.array([1.0], np.float32).tobytes()
TAPS_16K = np.full(49, 1 / 49, np.float32).tobytes()
"""The 16 kHz encoder's shape: 49 taps, so 48 samples of history."""


def test_encode_companding_matches_audioop_for_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert _g711.encode(UNIT, 1, 0, bytearray(), every) == audioop.lin2ulaw(every, 2)


def test_decode_expansion_matches_audioop_for_every_code() -> None:
    codes = bytes(range(256))
    assert _g711.decode(UNIT, 1, bytearray(), codes) == audioop.ulaw2lin(codes, 2)


def test_history_is_updated_in_place() -> None:
    history = bytearray(2 * 48)
    pcm = np.arange(1, 321, dtype="<i2").tobytes()
    assert len(_g711.encode(TAPS_16K, 2, 0, history, pcm)) == 160
    assert bytes(history) == pcm[-len(history) :]
    # A chunk shorter than the history keeps the older samples too, in order.
    _g711.encode(TAPS_16K, 2, 0, history, np.array([7, 8], "<i2").tobytes())
    assert np.frombuffer(history, "<i2")[-3:].tolist() == [320, 7, 8]


def test_filter_output_saturates() -> None:
    loud = np.full(320, 32767, "<i2").tobytes()
    gain = np.array([4.0], np.float32).tobytes()
    assert _g711.encode(gain, 1, 0, bytearray(), loud) == audioop.lin2ulaw(loud, 2)
    assert _g711.decode(gain, 1, bytearray(), b"\x80" * 10) == b"\xff\x7f" * 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((TAPS_16K, 2, 0, bytearray(2 * 47), b""), "out of shape"),  # history too short
        ((TAPS_16K, 2, 2, bytearray(2 * 48), b""), "out of shape"),  # phase past the factor
        ((TAPS_16K, 2, -1, bytearray(2 * 48), b""), "out of shape"),
        ((TAPS_16K, 2, 0, bytearray(2 * 48), b"\x00"), "out of shape"),  # half a sample
        ((TAPS_16K, 0, 0, bytearray(2 * 48), b""), "bad filter"),
        ((b"\x00" * 3, 1, 0, bytearray(), b""), "bad filter"),  # not whole floats
        ((np.zeros(129, np.float32).tobytes(), 1, 0, bytearray(256), b""), "bad filter"),
    ],
)
def test_encode_refuses_a_bad_call(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _g711.encode(*args)  # type: ignore[arg-type]


def test_encode_wants_a_writable_history() -> None:
    with pytest.raises(TypeError):
        _g711.encode(TAPS_16K, 2, 0, bytes(96), b"")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros(50, np.float32).tobytes(), 2, bytearray(2 * 23), b""), "out of shape"),
        ((np.zeros(49, np.float32).tobytes(), 2, bytearray(2 * 24), b""), "out of shape"),
        ((UNIT, 0, bytearray(), b""), "bad filter"),
    ],
)
def test_decode_refuses_a_bad_call(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _g711.decode(*args)  # type: ignore[arg-type]
