"""ACS media wire format: inbound parsing (case-insensitive, strict on bad input) and outbound."""

from __future__ import annotations

import base64
import json

import pytest

from callbridge.core import acs_media

PCM = bytes(range(64)) * 10


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestInbound:
    def test_audio_metadata(self) -> None:
        """The first frame's format is read, not assumed."""
        text = json.dumps(
            {
                "kind": "AudioMetadata",
                "audioMetadata": {
                    "subscriptionId": "s1",
                    "encoding": "PCM",
                    "sampleRate": 24000,
                    "channels": 1,
                    "length": 960,
                },
            }
        )
        assert acs_media.parse(text) == acs_media.AudioMetadata(24000, 1, "PCM", 960, "s1")

    def test_audio_data_with_all_fields(self) -> None:
        """AudioData carries PCM, the silent flag and the participant."""
        text = json.dumps(
            {
                "kind": "AudioData",
                "audioData": {
                    "timestamp": "2024-11-15T19:16:12.925Z",
                    "participantRawID": "4:+15551234567",
                    "data": b64(PCM),
                    "silent": True,
                },
            }
        )
        parsed = acs_media.parse(text)
        assert parsed == acs_media.AudioData(
            PCM, True, "4:+15551234567", "2024-11-15T19:16:12.925Z"
        )

    def test_optional_fields_may_be_missing_or_null(self) -> None:
        """participantRawID and silent are optional; a missing silent means not silent."""
        parsed = acs_media.parse(json.dumps({"kind": "AudioData", "audioData": {"data": b64(PCM)}}))
        assert parsed == acs_media.AudioData(PCM, False, None, None)
        parsed = acs_media.parse(
            json.dumps({"kind": "AudioData", "audioData": {"data": b64(PCM), "silent": None}})
        )
        assert isinstance(parsed, acs_media.AudioData)
        assert parsed.silent is False

    @pytest.mark.parametrize(
        "message",
        [
            {"Kind": "AudioData", "AudioData": {"Data": b64(PCM), "Silent": False}},
            {"KIND": "audiodata", "audiodata": {"DATA": b64(PCM)}},
        ],
    )
    def test_keys_and_kind_are_case_insensitive(self, message: dict[str, object]) -> None:
        """ACS and its SDKs disagree on casing; all spellings parse alike."""
        parsed = acs_media.parse(json.dumps(message))
        assert isinstance(parsed, acs_media.AudioData)
        assert parsed.pcm == PCM

    def test_dtmf(self) -> None:
        """A keypad digit is read and normalised."""
        parsed = acs_media.parse('{"kind":"DtmfData","dtmfData":{"data":"#"}}')
        assert parsed == acs_media.DtmfData("#", None)

    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ("5", "5"),
            ("#", "#"),
            ("*", "*"),
            ("d", "D"),
            ("pound", "#"),
            ("Asterisk", "*"),
            ("a", "A"),
            ("nine", "9"),
        ],
    )
    def test_dtmf_is_read_as_a_symbol_or_as_the_word_callbacks_use(
        self, data: str, key: str
    ) -> None:
        """The stream's examples show the key ("3"); callback events spell tones as words
        (DtmfTone: pound, asterisk, a-d, zero-nine). Both read as the key."""
        parsed = acs_media.parse(json.dumps({"kind": "DtmfData", "dtmfData": {"data": data}}))
        assert parsed == acs_media.DtmfData(key, None)

    @pytest.mark.parametrize("body", [{"silent": True}, {"silent": True, "data": ""}])
    def test_silence_may_come_without_its_audio(self, body: dict[str, object]) -> None:
        """A silent frame without data is still a frame of the line (the bridge fills it)."""
        parsed = acs_media.parse(json.dumps({"kind": "AudioData", "audioData": body}))
        assert parsed == acs_media.AudioData(b"", True, None, None)

    def test_sound_may_not_come_without_its_audio(self) -> None:
        with pytest.raises(acs_media.WireError, match="not a string"):
            acs_media.parse('{"kind": "AudioData", "audioData": {"silent": false}}')

    @pytest.mark.parametrize(
        ("status", "read_as"),
        [
            ("completed", "completed"),
            ("Completed", "completed"),
            ("cancelled", "cancelled"),
            ("canceled", "cancelled"),
        ],
    )
    def test_mark_data(self, status: str, read_as: str) -> None:
        """ACS's answer to a marked frame (the .NET SDK's parser test shape)."""
        parsed = acs_media.parse(
            json.dumps({"Kind": "MarkData", "MarkData": {"Id": "m7", "Status": status}})
        )
        assert parsed == acs_media.MarkData("m7", read_as)  # type: ignore[arg-type]

    def test_unknown_kind_is_not_an_error(self) -> None:
        """Kinds the bridge does not use are reported as Unknown, not rejected."""
        assert acs_media.parse('{"kind":"TranscriptionData","transcriptionData":{}}') == (
            acs_media.Unknown("TranscriptionData")
        )

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("{not json", "not JSON"),
            (b"\xff\xfe", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            ('{"audioData": {}}', "missing kind"),
            ('{"kind": "AudioData"}', "missing audiodata body"),
            ('{"kind": "AudioData", "audioData": {"data": 5}}', "not a string"),
            ('{"kind": "AudioData", "audioData": {"data": "@@@"}}', "not base64"),
            ('{"kind": "AudioData", "audioData": {"data": "5ADwAOMA6AD0A\u2026"}}', "not base64"),
            ('{"kind": "AudioData", "audioData": {"data": "AAEC"}}', "whole PCM16"),
            ('{"kind": "AudioData", "audioData": {"data": "", "silent": "no"}}', "boolean"),
            ('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": 8000}}', "sampleRate"),
            ('{"kind": "AudioMetadata", "audioMetadata": {"channels": 2}}', "channels"),
            ('{"kind": "AudioMetadata", "audioMetadata": {"encoding": "opus"}}', "encoding"),
            ('{"kind": "AudioMetadata", "audioMetadata": {"length": "640"}}', "length"),
            ('{"kind": "DtmfData", "dtmfData": {"data": "x"}}', "DTMF"),
            ('{"kind": "DtmfData", "dtmfData": {"data": "hash sign"}}', "DTMF"),
            ('{"kind": "MarkData", "markData": {"status": "completed"}}', "markData.id"),
            ('{"kind": "MarkData", "markData": {"id": "m1", "status": "played"}}', "status"),
        ],
    )
    def test_malformed_frames_raise_wire_error(self, text: str | bytes, reason: str) -> None:
        """Every malformed frame fails with a WireError that says what is wrong."""
        with pytest.raises(acs_media.WireError, match=reason):
            acs_media.parse(text)


class TestOutbound:
    def test_a_marked_frame_has_the_dotnet_sdks_shape(self) -> None:
        """Marks ride inside AudioData as Mark.Id, PascalCase (OutStreamingData, beta)."""
        message = acs_media.marked_audio_data(b64(PCM), "m1")
        assert json.loads(message) == {
            "Kind": "AudioData",
            "AudioData": {"Data": b64(PCM), "Mark": {"Id": "m1"}},
            "StopAudio": None,
        }

    def test_audio_data_is_the_documented_json(self) -> None:
        """Outbound audio is the quickstart's shape, exactly, with base64 PCM."""
        assert json.loads(acs_media.audio_data(PCM)) == {
            "Kind": "AudioData",
            "AudioData": {"Data": b64(PCM)},
            "StopAudio": None,
        }

    def test_stop_audio_is_the_documented_json(self) -> None:
        """StopAudio is the documented flush message."""
        assert json.loads(acs_media.STOP_AUDIO) == {
            "Kind": "StopAudio",
            "AudioData": None,
            "StopAudio": {},
        }
