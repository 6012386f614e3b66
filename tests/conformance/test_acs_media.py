"""The media socket's messages: callbridge reads what ACS documents and its SDKs' parser tests
show (``acs/media_*``), writes what they document, and the simulated phone speaks the same."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from callbridge.core import acs_media
from callbridge.sim.mark_answers import mark_message
from callbridge.sim.media_messages import (
    PlayAudio,
    StopAudio,
    audio_message,
    dtmf_message,
    metadata_message,
    parse_bridge_message,
)
from tests.conformance.corpus import load, shape_differences

FRAME = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms of PCM16 at 16 kHz
FRAME_B64 = base64.b64encode(FRAME).decode()


def with_frame(message: dict[str, Any]) -> str:
    """``message`` with its audio replaced by a real 20 ms frame: the SDKs' parser tests use
    placeholders ("AQIDBAU=", "test", the docs' "<buffer>") for data; the shape is the test."""
    body = next(value for key, value in message.items() if key.lower() == "audiodata")
    key = next(k for k in body if k.lower() == "data")
    body[key] = FRAME_B64
    return json.dumps(message)


def test_the_documented_metadata_is_read() -> None:
    message = load("acs/media_AudioMetadata.learn.json")
    assert acs_media.parse(json.dumps(message)) == acs_media.AudioMetadata(
        16000, 1, "PCM", 640, "89e8cb59-b991-48b0-b154-1db84f16a077"
    )
    js = load("acs/media_AudioMetadata.js_test.json")
    assert acs_media.parse(json.dumps(js)) == acs_media.AudioMetadata(
        16000, 1, "PCM", 640, js["audioMetadata"]["subscriptionId"]
    )


def test_the_documented_full_frame_is_read() -> None:
    """Learn's 2022 example carries a whole frame: exactly 640 bytes, 20 ms at 16 kHz."""
    message = load("acs/media_AudioData.learn_2022_full.json")
    parsed = acs_media.parse(json.dumps(message))
    assert isinstance(parsed, acs_media.AudioData)
    assert len(parsed.pcm) == 640
    body = message["audioData"]
    assert (parsed.silent, parsed.participant_raw_id, parsed.timestamp) == (
        False,
        body["participantRawID"],
        body["timestamp"],
    )


def test_the_current_example_is_read_but_for_the_audio_the_docs_cut_short() -> None:
    """Learn's current example ends its data with "…": every field but the audio is read."""
    message = load("acs/media_AudioData.learn.json")
    with pytest.raises(acs_media.WireError, match="not base64"):
        acs_media.parse(json.dumps(message))
    parsed = acs_media.parse(with_frame(message))
    assert isinstance(parsed, acs_media.AudioData)
    assert parsed.participant_raw_id == message["audioData"]["participantRawID"]


@pytest.mark.parametrize(
    ("file", "silent", "participant"),
    [
        ("media_AudioData_no_participant_no_silent.dotnet_test.json", False, None),
        ("media_AudioData_no_participant_no_silent.java_test.json", False, None),
        ("media_AudioData_with_mark_IdPascal.dotnet_test.json", False, "participantId"),
        ("media_AudioData_with_mark_idLower.dotnet_test.json", False, "participantId"),
        (
            "media_AudioData.js_test.json",
            False,
            "28:6b45c5b6-1c34-47c0-8980-11e98d47d23f",
        ),
    ],
)
def test_the_sdks_parser_test_shapes_are_read(
    file: str, silent: bool, participant: str | None
) -> None:
    """Optional fields may be missing (a missing silent is not silent); an inbound mark is
    ignored; a bot participant (28:) is read like any other."""
    parsed = acs_media.parse(with_frame(load(f"acs/{file}")))
    assert parsed == acs_media.AudioData(
        FRAME, silent, participant, load(f"acs/{file}")["audioData"].get("timestamp")
    )


@pytest.mark.parametrize(
    ("file", "key"), [("media_DtmfData.learn.json", "3"), ("media_DtmfData.dotnet_test.json", "5")]
)
def test_documented_keypad_digits_are_read(file: str, key: str) -> None:
    assert acs_media.parse(json.dumps(load(f"acs/{file}"))) == acs_media.DtmfData(key, None)


def test_the_sdks_mark_answer_is_read() -> None:
    message = load("acs/media_MarkData.dotnet_test.json")
    assert acs_media.parse(json.dumps(message)) == acs_media.MarkData("test", "completed")


def _folded(value: Any) -> Any:
    """Keys (and the ``kind`` value) lower-cased, null members dropped: ACS's reading."""
    if isinstance(value, dict):
        return {
            key.lower(): (item.lower() if key.lower() == "kind" else _folded(item))
            for key, item in value.items()
            if item is not None
        }
    return value


def test_callbridge_writes_the_documented_outbound_messages() -> None:
    """The Python quickstart's AudioData and StopAudio, as ACS reads keys (any casing; its own
    SDKs write PascalCase and camelCase): callbridge writes the same members."""
    documented = load("acs/media_out_AudioData.learn_python.json")
    documented["AudioData"]["Data"] = FRAME_B64
    assert _folded(json.loads(acs_media.audio_data(FRAME))) == _folded(documented)
    stop = load("acs/media_out_StopAudio.learn_python.json")
    assert _folded(json.loads(acs_media.STOP_AUDIO)) == _folded(stop)


def test_a_marked_frame_carries_its_mark_as_the_dotnet_sdk_writes_it() -> None:
    """The mark rides inside AudioData as ``Mark.Id``, as the .NET SDK's parser test has it."""
    marked = json.loads(acs_media.marked_audio_data(FRAME_B64, "m1"))
    documented = load("acs/media_AudioData_with_mark_IdPascal.dotnet_test.json")["audioData"]
    assert marked["AudioData"]["Mark"].keys() == documented["mark"].keys() == {"Id"}
    assert parse_bridge_message(json.dumps(marked)) == PlayAudio(FRAME, "m1")


@pytest.mark.parametrize(
    "message",
    [
        load("acs/media_out_AudioData.learn_python.json"),
        {"kind": "audioData", "audioData": {"data": "x"}, "stopAudio": {}},  # the JS SDK
        {"Kind": "AudioData", "AudioData": {"Data": "x", "IsSilent": False}, "StopAudio": None},
    ],
)
def test_the_simulated_line_plays_every_documented_casing(message: dict[str, Any]) -> None:
    assert parse_bridge_message(with_frame(message)) == PlayAudio(FRAME)


def test_the_simulated_line_stops_on_the_documented_stop_audio() -> None:
    stop = load("acs/media_out_StopAudio.learn_python.json")
    assert parse_bridge_message(json.dumps(stop)) == StopAudio()


DTMF_EXTRAS = {".dtmfData.timestamp", ".dtmfData.participantRawID"}
"""Keys the phone's DtmfData has beyond Learn's example: the .NET SDK's DtmfDataInternal
reads both (``[JsonPropertyName("timestamp")]``, ``[JsonPropertyName("participantRawID")]``)."""


def test_the_simulated_line_speaks_the_documented_shapes() -> None:
    """The phone's messages to the bridge have the documented keys, casing and types."""
    stamp = datetime(2024, 11, 15, 19, 16, 12, tzinfo=UTC).isoformat()
    ours = {
        "AudioMetadata": json.loads(metadata_message(16000, 640)),
        "AudioData": json.loads(audio_message(stamp, "4:+14255550123", FRAME_B64, silent=False)),
        "DtmfData": json.loads(dtmf_message(stamp, "4:+14255550123", "3")),
        "MarkData": json.loads(mark_message("m1", "completed")),
    }
    assert (
        shape_differences(load("acs/media_AudioMetadata.learn.json"), ours["AudioMetadata"]) == []
    )
    assert shape_differences(load("acs/media_AudioData.learn.json"), ours["AudioData"]) == []
    dtmf = shape_differences(load("acs/media_DtmfData.learn.json"), ours["DtmfData"])
    assert {problem.split(":")[0] for problem in dtmf} == DTMF_EXTRAS
    assert shape_differences(load("acs/media_MarkData.dotnet_test.json"), ours["MarkData"]) == []
