"""Tests for the ACS <-> Voice Live audio codec."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.typing import NDArray

from callbridge.core.codec import (
    FRAME_MS,
    AgentDecoder,
    AudioFormat,
    CallerEncoder,
    decoder_delay_ms,
    encoder_delay_ms,
    frame_bytes,
    make_codec,
    output_audio_ms,
    output_bytes_per_ms,
    voice_live_input_format,
    voice_live_input_rate,
    voice_live_output_format,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

RATES = (16000, 24000)
ULAW_FRAME = 160
CHUNK_SIZES = (1, 37, 160, 333, 800)


def _sine(freq: float, rate: int, frames: int, amplitude: float = 0.5 * 32767) -> NDArray[np.int16]:
    n = np.arange(frames * frame_bytes(rate) // 2)
    return np.round(amplitude * np.sin(2 * np.pi * freq * n / rate)).astype("<i2")


def _noise(rate: int, frames: int, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(frames * frame_bytes(rate) // 2) * 8000
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def _ulaw_noise(nbytes: int, seed: int = 11) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _chunks(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(data):
        size = sizes[len(out) % len(sizes)]
        out.append(data[i : i + size])
        i += size
    return out


def _pcm(data: bytes) -> NDArray[np.int64]:
    return np.frombuffer(data, "<i2").astype(np.int64)


def _expand(ulaw: bytes) -> bytes:
    pcm: bytes = audioop.ulaw2lin(ulaw, 2)
    return pcm


_ULAW_LEVELS = np.unique(_pcm(_expand(bytes(range(256)))))


def _ulaw_level_rank(ulaw: bytes) -> NDArray[np.int64]:
    """Position of each code on the ordered mu-law level ladder (+0 and -0 share a rung)."""
    return np.searchsorted(_ULAW_LEVELS, _pcm(_expand(ulaw))).astype(np.int64)


def _snr_db(reference: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((actual - reference) ** 2)))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("freq", [300, 1000, 3000, 3400])
def test_round_trip_snr_meets_bar(rate: int, freq: int) -> None:
    """A -6 dBFS tone keeps >= 33 dB SNR through mu-law encode then decode, frame by frame."""
    codec = make_codec("g711_ulaw", rate)
    frames = 50
    tone = _sine(freq, rate, frames)
    decoded = b"".join(
        codec.decoder.decode(codec.encoder.encode(frame))
        for frame in _frames(tone.tobytes(), frame_bytes(rate))
    )
    out = _pcm(decoded).astype(np.float64)
    delay = round((codec.encoder_delay_ms + codec.decoder_delay_ms) * rate / 1000)
    settle = 2 * frame_bytes(rate) // 2  # skip the filters' zero-history start-up
    reference = tone[settle : len(tone) - delay].astype(np.float64)
    assert _snr_db(reference, out[settle + delay :]) >= 33.0


@pytest.mark.parametrize("rate", RATES)
def test_encoder_emits_exactly_one_ulaw_frame_per_frame(rate: int) -> None:
    """Every 20 ms ACS frame, the first included, becomes exactly 160 mu-law bytes."""
    encoder = CallerEncoder("g711_ulaw", rate)
    sizes = [len(encoder.encode(frame)) for frame in _frames(_noise(rate, 37), frame_bytes(rate))]
    assert sizes == [ULAW_FRAME] * 37


@pytest.mark.parametrize("rate", RATES)
def test_encoder_carries_partial_samples_across_odd_chunks(rate: int) -> None:
    """Odd-sized encoder input yields the same mu-law stream as whole frames."""
    data = _noise(rate, 10)
    reference = CallerEncoder("g711_ulaw", rate)
    framed = b"".join(reference.encode(f) for f in _frames(data, frame_bytes(rate)))
    encoder = CallerEncoder("g711_ulaw", rate)
    chunked = b"".join(encoder.encode(chunk) for chunk in _chunks(data, (1, 37, 333, 2, 3)))
    assert chunked == framed
    assert len(chunked) == 10 * ULAW_FRAME


@pytest.mark.parametrize("rate", RATES)
def test_decoder_output_length_is_exact_for_any_chunking(rate: int) -> None:
    """N mu-law bytes in any chunking decode to exactly N * acs_rate / 8000 samples."""
    data = _ulaw_noise(4321)
    decoder = AgentDecoder("g711_ulaw", rate)
    for chunk in _chunks(data, CHUNK_SIZES):
        assert len(decoder.decode(chunk)) == len(chunk) * 2 * rate // 8000
    assert decoder.decode(b"") == b""


@pytest.mark.parametrize("rate", RATES)
def test_encoder_streaming_matches_one_shot(rate: int) -> None:
    """Frame-by-frame encoding equals encoding the whole signal at once (no boundary clicks)."""
    data = _noise(rate, 25)
    one_shot = CallerEncoder("g711_ulaw", rate).encode(data)
    encoder = CallerEncoder("g711_ulaw", rate)
    streamed = b"".join(encoder.encode(frame) for frame in _frames(data, frame_bytes(rate)))
    assert len(streamed) == len(one_shot)
    # A 1 LSB difference before companding can at most move a sample to the adjacent level.
    assert np.abs(_ulaw_level_rank(streamed) - _ulaw_level_rank(one_shot)).max() <= 1


@pytest.mark.parametrize("rate", RATES)
def test_decoder_streaming_matches_one_shot(rate: int) -> None:
    """Decoding arbitrary chunks equals decoding the whole stream at once within 1 LSB."""
    data = _ulaw_noise(8000)
    one_shot = AgentDecoder("g711_ulaw", rate).decode(data)
    decoder = AgentDecoder("g711_ulaw", rate)
    streamed = b"".join(decoder.decode(chunk) for chunk in _chunks(data, CHUNK_SIZES))
    assert len(streamed) == len(one_shot)
    assert np.abs(_pcm(streamed) - _pcm(one_shot)).max() <= 1


@pytest.mark.parametrize("rate", RATES)
def test_state_carries_across_a_chunk_that_outgrows_the_buffers(rate: int) -> None:
    """Frames, then a chunk larger than any before, then frames: no seam in either direction."""
    pcm = _noise(rate, 80)
    frame = frame_bytes(rate)
    sizes = (frame, frame, 60 * frame, frame)
    encoder = CallerEncoder("g711_ulaw", rate)
    streamed = b"".join(encoder.encode(chunk) for chunk in _chunks(pcm, sizes))
    one_shot = CallerEncoder("g711_ulaw", rate).encode(pcm)
    assert np.abs(_ulaw_level_rank(streamed) - _ulaw_level_rank(one_shot)).max() <= 1
    ulaw = _ulaw_noise(80 * ULAW_FRAME)
    decoder = AgentDecoder("g711_ulaw", rate)
    decoded = b"".join(decoder.decode(c) for c in _chunks(ulaw, (160, 160, 9600, 160)))
    assert np.abs(_pcm(decoded) - _pcm(AgentDecoder("g711_ulaw", rate).decode(ulaw))).max() <= 1


@pytest.mark.parametrize("rate", RATES)
def test_decoder_reset_matches_fresh_decoder(rate: int) -> None:
    """After reset, the decoder's output equals a brand-new decoder's for the same input."""
    decoder = AgentDecoder("g711_ulaw", rate)
    decoder.decode(_ulaw_noise(333, seed=1))
    decoder.reset()
    spurt = _ulaw_noise(800, seed=2)
    assert decoder.decode(spurt) == AgentDecoder("g711_ulaw", rate).decode(spurt)


@pytest.mark.parametrize("rate", RATES)
def test_encoder_reset_matches_fresh_encoder(rate: int) -> None:
    """After reset, the encoder's output equals a brand-new encoder's for the same input."""
    encoder = CallerEncoder("g711_ulaw", rate)
    encoder.encode(_noise(rate, 1, seed=1)[:-3])
    encoder.reset()
    frame = _noise(rate, 1, seed=2)
    assert encoder.encode(frame) == CallerEncoder("g711_ulaw", rate).encode(frame)


@pytest.mark.parametrize("rate", RATES)
def test_decoder_flush_releases_tail_as_if_followed_by_silence(rate: int) -> None:
    """Decode plus flush equals decoding the item followed by silence, and leaves it fresh."""
    data = _ulaw_noise(1234)
    decoder = AgentDecoder("g711_ulaw", rate)
    streamed = b"".join(decoder.decode(chunk) for chunk in _chunks(data, CHUNK_SIZES))
    tail = decoder.flush()
    # The tail spans the whole FIR: the reported delay plus the same again of post-ringing.
    assert len(tail) // 2 == 2 * round(decoder.delay_ms * rate / 1000)
    silence = b"\xff" * (len(tail) // 2 * 8000 // rate)  # 0xFF is mu-law zero
    expected = AgentDecoder("g711_ulaw", rate).decode(data + silence)
    assert np.abs(_pcm(streamed + tail) - _pcm(expected)).max() <= 1
    spurt = _ulaw_noise(500, seed=3)
    assert decoder.decode(spurt) == AgentDecoder("g711_ulaw", rate).decode(spurt)


def test_pcm16_decoder_flush_drops_dangling_byte() -> None:
    """In pcm16 mode flush has nothing playable to release and drops a held odd byte."""
    decoder = AgentDecoder("pcm16", 16000)
    assert decoder.decode(b"\x01\x02\x03") == b"\x01\x02"
    assert decoder.flush() == b""
    assert decoder.decode(b"\x04\x05") == b"\x04\x05"


@pytest.mark.parametrize("rate", RATES)
def test_full_scale_input_saturates_instead_of_wrapping(rate: int) -> None:
    """Filter overshoot on a full-scale square wave clips to int16 rather than wrapping sign."""
    square = np.tile(np.r_[np.full(40, 32767), np.full(40, -32768)], 100).astype("<i2")
    codec = make_codec("g711_ulaw", rate)
    out = _pcm(codec.decoder.decode(codec.encoder.encode(square.tobytes())))
    assert int(np.max(out)) == 32767
    assert int(np.min(out)) == -32768
    # Past the start-up, Gibbs ringing stays on one side of zero; a wrapped sample would add
    # zero crossings that the delayed input does not have.
    delay = round((codec.encoder.delay_ms + codec.decoder.delay_ms) * rate / 1000)
    skip = 200
    expected = np.count_nonzero(np.diff(square[skip - delay : len(square) - delay] >= 0))
    assert np.count_nonzero(np.diff(out[skip:] >= 0)) == expected


@pytest.mark.parametrize(
    ("rate", "freq"), [(16000, 5000), (16000, 7000), (24000, 5000), (24000, 11000)]
)
def test_encoder_rejects_tones_that_would_alias(rate: int, freq: int) -> None:
    """Tones above 4.6 kHz come out of the 8 kHz encoder at least 50 dB down."""
    tone = _sine(freq, rate, 25)
    encoder = CallerEncoder("g711_ulaw", rate)
    out = _pcm(_expand(encoder.encode(tone.tobytes()))).astype(np.float64)[400:]
    level_in = np.sqrt(np.mean(tone.astype(np.float64) ** 2))
    assert 20 * np.log10(level_in / np.sqrt(np.mean(out**2))) >= 50.0


@pytest.mark.parametrize("rate", RATES)
def test_pcm16_encoder_passes_frames_through(rate: int) -> None:
    """In pcm16 mode the encoder returns its input unchanged, odd sizes included."""
    encoder = CallerEncoder("pcm16", rate)
    data = _noise(rate, 3)
    assert encoder.encode(data) == data
    assert encoder.encode(data[:7]) == data[:7]
    assert encoder.delay_ms == 0.0


@pytest.mark.parametrize("rate", RATES)
def test_pcm16_decoder_carries_dangling_byte(rate: int) -> None:
    """In pcm16 mode the decoder passes audio through, holding an odd byte for the next chunk."""
    decoder = AgentDecoder("pcm16", rate)
    data = _noise(rate, 2)
    assert decoder.decode(data[:640]) == data[:640]
    out = [decoder.decode(chunk) for chunk in _chunks(data[640:], (3, 1, 37, 160, 333))]
    assert all(len(chunk) % 2 == 0 for chunk in out)
    assert b"".join(out) == data[640:]


def test_pcm16_decoder_reset_drops_dangling_byte() -> None:
    """Reset discards a held odd byte so the next spurt starts sample-aligned."""
    decoder = AgentDecoder("pcm16", 24000)
    assert decoder.decode(b"\x01\x02\x03") == b"\x01\x02"
    decoder.reset()
    assert decoder.decode(b"\x04\x05") == b"\x04\x05"


@pytest.mark.parametrize(
    ("audio_format", "rate", "settings"),
    [
        ("g711_ulaw", 16000, ("g711_ulaw", 8000, "g711_ulaw", 8)),
        ("g711_ulaw", 24000, ("g711_ulaw", 8000, "g711_ulaw", 8)),
        ("pcm16", 16000, ("pcm16", 16000, "pcm16_16000hz", 32)),
        ("pcm16", 24000, ("pcm16", 24000, "pcm16", 48)),
    ],
)
def test_format_names_and_output_durations(
    audio_format: AudioFormat, rate: int, settings: tuple[str, int, str, int]
) -> None:
    """Each mode maps to its Voice Live session settings and output byte rate."""
    input_format, input_rate, output_format, bytes_per_ms = settings
    codec = make_codec(audio_format, rate)
    assert codec.voice_live_input_format == voice_live_input_format(audio_format) == input_format
    assert codec.voice_live_input_rate == voice_live_input_rate(audio_format, rate) == input_rate
    assert codec.voice_live_output_format == voice_live_output_format(audio_format, rate)
    assert codec.voice_live_output_format == output_format
    assert codec.output_bytes_per_ms == output_bytes_per_ms(audio_format, rate) == bytes_per_ms
    assert output_audio_ms(bytes_per_ms * 250, audio_format, rate) == 250.0
    assert codec.output_ms(bytes_per_ms * 250) == 250.0
    assert codec.pcm_ms(frame_bytes(rate) * 3) == 3 * FRAME_MS
    assert codec.acs_frame_bytes == frame_bytes(rate)
    assert codec.frame_ms == FRAME_MS


def test_frame_helpers_and_delays() -> None:
    """Frames are 20 ms of PCM16; mu-law resampling delays 1.5 ms each way, pcm16 none."""
    assert FRAME_MS == 20
    assert frame_bytes(16000) == 640
    assert frame_bytes(24000) == 960
    assert frame_bytes(8000) == 320
    for rate in RATES:
        assert encoder_delay_ms("g711_ulaw", rate) == pytest.approx(1.5)
        assert decoder_delay_ms("g711_ulaw", rate) == pytest.approx(1.5)
        assert encoder_delay_ms("pcm16", rate) == decoder_delay_ms("pcm16", rate) == 0.0
        codec = make_codec("g711_ulaw", rate)
        assert codec.encoder_delay_ms == codec.encoder.delay_ms == pytest.approx(1.5)
        assert codec.decoder_delay_ms == codec.decoder.delay_ms == pytest.approx(1.5)


@pytest.mark.parametrize(("audio_format", "rate"), [("g711_alaw", 16000), ("pcm16", 8000)])
def test_unsupported_configuration_is_rejected(audio_format: str, rate: int) -> None:
    """Unknown formats and ACS rates fail at construction, not mid-call."""
    with pytest.raises(ValueError, match="must be one of"):
        make_codec(audio_format, rate)  # type: ignore[arg-type]
