"""The per-message JSON reader: orjson where installed, read as the standard library reads."""

from __future__ import annotations

import json

import pytest

from callbridge.core import wire_json

VALID = [
    '{"kind":"AudioData","audioData":{"data":"AAA=","silent":false}}',
    b'{"type":"response.audio.delta","delta":"//8="}',
    '  [1, 2.5, "x", null, true]  ',
    '{"a": 1, "a": 2}',
    # What orjson refuses and json.loads takes: read again by the standard library.
    '{"a": NaN, "b": -Infinity}',
    '{"a": 1.5e400}',
    '"\\ud800"',
    '"\ud800"',
]
INVALID = ["", "{", "[1,2,]", "{'a': 1}", b"\xff\xfe", "nul"]


@pytest.fixture(params=["orjson", "json"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "json":
        monkeypatch.setattr(wire_json, "_FAST", None)
    return str(request.param)


def test_the_suite_reads_as_the_image_does() -> None:
    """``callbridge[dev]`` installs ``callbridge[fast]``: orjson is there."""
    assert wire_json.fast()


@pytest.mark.parametrize("text", VALID)
def test_a_message_is_read_as_the_standard_library_reads_it(reader: str, text: str) -> None:
    assert wire_json.fast() is (reader == "orjson")
    expected = json.loads(text)
    read = wire_json.loads(text)
    # NaN is not equal to itself: compare the texts json.dumps makes of both.
    assert json.dumps(read) == json.dumps(expected)


@pytest.mark.parametrize("text", INVALID)
def test_what_is_not_json_raises_as_json_loads_does(reader: str, text: str | bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):  # both ValueErrors
        wire_json.loads(text)


def test_an_integer_beyond_64_bits_is_the_one_difference() -> None:
    text = '{"content_index": 123456789012345678901234567890}'
    assert json.loads(text) == {"content_index": 123456789012345678901234567890}
    assert isinstance(wire_json.loads(text)["content_index"], float)  # type: ignore[index]
