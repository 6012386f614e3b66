"""The fallback clip: loading and checking a WAV, cutting it into ACS frames, the default."""

from __future__ import annotations

import math
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from callbridge.adapters.fallback_audio import FallbackClip, fallback_clip, load_fallback_clip
from callbridge.assets import asset_path, read_wav, transcript
from callbridge.core.profiles import AgentProfile
from callbridge.core.resample import resample_pcm16


def write_wav(path: Path, samples: int, *, rate: int = 16000, channels: int = 1) -> Path:
    """A WAV of ``samples`` frames of a quiet 440 Hz tone (16-bit unless told otherwise)."""
    t = np.arange(samples * channels) / rate
    pcm = (3000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def tone(frequency: float, rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * math.pi * frequency * t)).astype("<i2").tobytes()


# --- Loading ---------------------------------------------------------------------------------


def test_a_good_file_loads_as_written(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "sorry.wav", 8000, rate=8000)
    clip = load_fallback_clip(path)
    assert clip.sample_rate == 8000
    assert len(clip.pcm) == 16000
    with wave.open(str(path), "rb") as wav:
        assert clip.pcm == wav.readframes(wav.getnframes())


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        pytest.param(
            lambda p: write_wav(p, 1600, channels=2),
            "need mono 16-bit PCM, got 2 channel(s) of 16-bit samples",
            id="stereo",
        ),
        pytest.param(
            lambda p: write_wav(p, 1600, rate=96000), "need 8000 to 48000 Hz, got 96000", id="rate"
        ),
        pytest.param(
            lambda p: write_wav(p, 8000 * 31, rate=8000),
            "31.0 s long; a fallback clip is at most 30 s",
            id="too-long",
        ),
        pytest.param(lambda p: write_wav(p, 0), "holds no audio", id="empty"),
        pytest.param(lambda p: p.write_text("not audio"), "not a PCM WAV file", id="not-wav"),
        pytest.param(lambda p: p.write_bytes(b""), "not a PCM WAV file (truncated)", id="0-bytes"),
    ],
)
def test_a_wrong_format_is_refused_naming_the_file(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "sorry.wav"
    make(path)
    with pytest.raises(ValueError, match=r"sorry\.wav") as caught:
        load_fallback_clip(path)
    assert problem in str(caught.value)


def test_thirty_seconds_exactly_is_allowed(tmp_path: Path) -> None:
    clip = load_fallback_clip(write_wav(tmp_path / "long.wav", 8000 * 30, rate=8000))
    assert len(clip.pcm) == 2 * 8000 * 30


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no such file: .*missing\.wav"):
        load_fallback_clip(tmp_path / "missing.wav")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_fallback_clip(tmp_path)


# --- Frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("acs_rate", "size"), [(16000, 640), (24000, 960)])
def test_frames_are_20_ms_at_the_acs_rate_the_last_padded(acs_rate: int, size: int) -> None:
    """50 ms at 16 kHz: three frames at either rate, the third half audio, half silence."""
    clip = FallbackClip(pcm=tone(440, 16000, 0.05), sample_rate=16000)
    frames = clip.frames(acs_rate)
    assert [len(frame) for frame in frames] == [size] * 3
    assert frames[-1][size // 2 :] == bytes(size // 2)
    assert any(frames[-1][: size // 2])


def test_a_whole_number_of_frames_gets_no_padding_frame() -> None:
    clip = FallbackClip(pcm=tone(440, 16000, 0.04), sample_rate=16000)
    assert clip.frames(16000) == [clip.pcm[:640], clip.pcm[640:]]


def test_frames_are_resampled_from_the_files_rate() -> None:
    """A 44.1 kHz clip plays at the ACS rate, its tone unchanged."""
    clip = FallbackClip(pcm=tone(1000, 44100, 0.2), sample_rate=44100)
    pcm = b"".join(clip.frames(24000))
    assert len(pcm) == 2 * 24000 * 0.2
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 24000 / len(samples) == pytest.approx(1000, abs=10)


def test_frames_refuse_a_rate_acs_does_not_stream_at() -> None:
    with pytest.raises(ValueError, match="acs_rate"):
        FallbackClip(pcm=bytes(640), sample_rate=16000).frames(8000)


# --- The resampler ---------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [(44100, 16000), (8000, 24000), (48000, 16000)])
def test_resampling_keeps_a_tone_clean(source: int, target: int) -> None:
    out = np.frombuffer(resample_pcm16(tone(1000, source, 0.5), source, target), "<i2")
    assert len(out) == target // 2
    expected = 10000 * np.sin(2 * math.pi * 1000 * np.arange(len(out)) / target)
    inner = slice(100, -100)  # the edges see the zero padding beyond the clip
    error = out[inner] - expected[inner]
    snr_db = 10 * np.log10(np.mean(expected[inner] ** 2) / np.mean(error**2))
    assert snr_db > 60


def test_downsampling_removes_what_the_target_rate_cannot_carry() -> None:
    """A 10 kHz tone does not fold back into a 16 kHz stream as a 6 kHz one."""
    out = np.frombuffer(resample_pcm16(tone(10000, 48000, 0.5), 48000, 16000), "<i2")
    assert np.sqrt(np.mean(out[100:-100].astype(np.float64) ** 2)) < 10  # of ~7071 in


def test_resampling_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        resample_pcm16(bytes(2), 0, 16000)
    with pytest.raises(ValueError, match="whole number"):
        resample_pcm16(bytes(3), 8000, 16000)
    assert resample_pcm16(b"\x01\x02", 16000, 16000) == b"\x01\x02"


# --- Which clip a profile plays --------------------------------------------------------------


@pytest.mark.parametrize(
    ("transfer_to", "line"),
    [("+18005550123", "fallback_transfer"), (None, "fallback_goodbye")],
)
def test_the_default_clip_follows_what_happens_next(transfer_to: str | None, line: str) -> None:
    clip = fallback_clip(AgentProfile(fallback_transfer_to=transfer_to))
    assert (clip.pcm, clip.sample_rate) == read_wav(asset_path(line))


def test_a_profiles_own_clip_wins(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "own.wav", 4000, rate=8000)
    profile = AgentProfile(fallback_audio=str(path), fallback_transfer_to="+18005550123")
    assert fallback_clip(profile) == load_fallback_clip(path)


def test_a_clip_is_read_once(tmp_path: Path) -> None:
    """A second call gets the clip without the disk: even a deleted file still plays."""
    path = write_wav(tmp_path / "once.wav", 4000, rate=8000)
    profile = AgentProfile(fallback_audio=str(path))
    first = fallback_clip(profile)
    path.unlink()
    assert fallback_clip(profile) is first


@pytest.mark.parametrize("line", ["fallback_transfer", "fallback_goodbye"])
def test_the_shipped_clips_are_valid_agent_lines(line: str) -> None:
    """16 kHz mono PCM16 within the limits, with their transcript beside them."""
    clip = load_fallback_clip(asset_path(line))
    assert clip.sample_rate == 16000
    assert 1.0 < len(clip.pcm) / 2 / 16000 < 30.0
    assert transcript(line).startswith("I'm sorry, our assistant can't take your call right now.")
