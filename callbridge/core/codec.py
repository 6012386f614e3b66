"""Sans-IO audio codec between ACS call media and Azure Voice Live.

ACS streams PCM16 LE mono at 16 or 24 kHz in 20 ms frames. Voice Live is driven either with
G.711 mu-law at 8 kHz (``g711_ulaw``) or with PCM16 at the ACS rate (``pcm16``).

In ``g711_ulaw`` mode the rate change uses linear-phase polyphase windowed-sinc FIR filters
(designed at import with a Kaiser window) instead of ``audioop.ratecv`` or ``soxr``:
``ratecv`` is too lossy for the 33 dB SNR bar, and ``soxr`` streams release audio in ~100 ms
bursts, which a real-time 20 ms pacer cannot absorb. The FIR produces exactly one output
frame per input frame, from the very first one, and delays the signal by a fixed
``encoder_delay_ms`` / ``decoder_delay_ms`` (1.5 ms each way at both ACS rates). That delay is
reported, never padded or trimmed away, so downstream timing can account for it.

Everything here is synchronous and allocation-light; objects are per call and not thread-safe.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

with warnings.catch_warnings():
    # 3.11/3.12 warn that the stdlib module is going away; audioop-lts replaces it on 3.13+.
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

__all__ = [
    "ACS_RATES",
    "FRAME_MS",
    "G711_RATE",
    "AgentDecoder",
    "AudioFormat",
    "CallerEncoder",
    "Codec",
    "VoiceLiveFormat",
    "decoder_delay_ms",
    "encoder_delay_ms",
    "frame_bytes",
    "make_codec",
    "output_audio_ms",
    "output_bytes_per_ms",
    "voice_live_input_format",
    "voice_live_input_rate",
    "voice_live_output_format",
]

AudioFormat = Literal["g711_ulaw", "pcm16"]
"""How audio travels between the bridge and Voice Live."""

VoiceLiveFormat = Literal["g711_ulaw", "pcm16", "pcm16_16000hz"]
"""Voice Live session ``input_audio_format`` / ``output_audio_format`` values we use."""

FRAME_MS: Final = 20
"""ACS media frame duration."""

ACS_RATES: Final = (16000, 24000)
"""PCM16 sample rates ACS can stream at."""

G711_RATE: Final = 8000
"""Sample rate of G.711 audio exchanged with Voice Live."""

_SAMPLE_BYTES: Final = 2
_AUDIO_FORMATS: Final = ("g711_ulaw", "pcm16")

# Filter specs: flat to 3400 Hz, >= 55 dB down from 4600 Hz. Tap counts are chosen so the
# group delay is the same 1.5 ms at both rates (24 taps each side at 16 kHz, 36 at 24 kHz):
# 16 kHz, 49 taps, beta 5.5 -> ripple 0.018 dB, stopband 58.7 dB;
# 24 kHz, 73 taps, beta 5.5 -> ripple 0.017 dB, stopband 58.2 dB.
_CUTOFF_HZ: Final = 4000.0
_KAISER_BETA: Final = 5.5
_NUM_TAPS: Final = {16000: 49, 24000: 73}

# Decoder buffers start at 200 ms of mu-law and grow to the largest chunk seen.
_DECODER_INITIAL_CAPACITY: Final = 1600

_Float = np.float32
_INT16_MIN: Final = np.float32(-32768.0)
_INT16_MAX: Final = np.float32(32767.0)


def _design_lowpass(rate: int) -> NDArray[np.float32]:
    """Unity-DC-gain Kaiser-windowed sinc low-pass at the 8 kHz Nyquist for ``rate``."""
    num_taps = _NUM_TAPS[rate]
    k = np.arange(num_taps, dtype=np.float64) - (num_taps - 1) / 2
    cutoff = 2.0 * _CUTOFF_HZ / rate
    taps = cutoff * np.sinc(cutoff * k) * np.kaiser(num_taps, _KAISER_BETA)
    taps /= taps.sum()
    return taps.astype(_Float)


_LOWPASS: Final = {rate: _design_lowpass(rate) for rate in ACS_RATES}

# Table built from audioop so decoding is bit-identical to audioop.ulaw2lin, but can write
# straight into the filter buffer (np.take with out=) instead of allocating an int16 copy.
_ULAW_TO_FLOAT: Final = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), "<i2").astype(_Float)


def _check(audio_format: str, acs_rate: int) -> None:
    if audio_format not in _AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {_AUDIO_FORMATS}, got {audio_format!r}")
    if acs_rate not in ACS_RATES:
        raise ValueError(f"acs_rate must be one of {ACS_RATES}, got {acs_rate!r}")


def frame_bytes(rate: int) -> int:
    """PCM16 mono bytes in one 20 ms frame at ``rate`` (640 at 16 kHz, 960 at 24 kHz)."""
    return rate * FRAME_MS // 1000 * _SAMPLE_BYTES


def encoder_delay_ms(audio_format: AudioFormat, acs_rate: int) -> float:
    """Signal delay the encoder adds, ACS -> Voice Live (1.5 ms for mu-law, 0 for pcm16)."""
    _check(audio_format, acs_rate)
    if audio_format == "pcm16":
        return 0.0
    return (_NUM_TAPS[acs_rate] - 1) / 2 * 1000 / acs_rate


def decoder_delay_ms(audio_format: AudioFormat, acs_rate: int) -> float:
    """Signal delay the decoder adds, Voice Live -> ACS (1.5 ms for mu-law, 0 for pcm16)."""
    _check(audio_format, acs_rate)
    if audio_format == "pcm16":
        return 0.0
    return (_NUM_TAPS[acs_rate] - 1) / 2 * 1000 / acs_rate


def voice_live_input_format(audio_format: AudioFormat) -> VoiceLiveFormat:
    """Voice Live session ``input_audio_format`` for the audio the encoder produces."""
    return "g711_ulaw" if audio_format == "g711_ulaw" else "pcm16"


def voice_live_input_rate(audio_format: AudioFormat, acs_rate: int) -> int:
    """Voice Live session ``input_audio_sampling_rate`` for the audio the encoder produces."""
    _check(audio_format, acs_rate)
    return G711_RATE if audio_format == "g711_ulaw" else acs_rate


def voice_live_output_format(audio_format: AudioFormat, acs_rate: int) -> VoiceLiveFormat:
    """Voice Live session ``output_audio_format`` the decoder expects."""
    _check(audio_format, acs_rate)
    if audio_format == "g711_ulaw":
        return "g711_ulaw"
    return "pcm16_16000hz" if acs_rate == 16000 else "pcm16"


def output_bytes_per_ms(audio_format: AudioFormat, acs_rate: int) -> int:
    """Bytes of Voice Live output audio per millisecond (8 mu-law; 32 or 48 PCM16)."""
    _check(audio_format, acs_rate)
    if audio_format == "g711_ulaw":
        return G711_RATE // 1000
    return acs_rate // 1000 * _SAMPLE_BYTES


def output_audio_ms(nbytes: int, audio_format: AudioFormat, acs_rate: int) -> float:
    """Duration in ms of ``nbytes`` of Voice Live output audio in the session's format."""
    return nbytes / output_bytes_per_ms(audio_format, acs_rate)


def _to_int16(src: NDArray[np.float32], dst: NDArray[np.int16]) -> None:
    # Filter overshoot on near-full-scale input must saturate, not wrap around.
    np.rint(src, out=src)
    np.minimum(src, _INT16_MAX, out=src)
    np.maximum(src, _INT16_MIN, out=src)
    np.copyto(dst, src, casting="unsafe")


class _UlawEncoder:
    """Decimate PCM16 at the ACS rate to 8 kHz with a streaming FIR, then mu-law compand."""

    __slots__ = (
        "_acc",
        "_buf",
        "_capacity",
        "_factor",
        "_hist",
        "_odd",
        "_out",
        "_phase",
        "_taps",
        "_windows",
    )

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        self._factor = acs_rate // G711_RATE
        self._hist = len(lowpass) - 1
        # Windows are read oldest-first, so the dot product needs the taps reversed.
        self._taps = np.ascontiguousarray(lowpass[::-1])
        # Offset in the next chunk of the first sample that completes an output sample.
        self._phase = 0
        self._odd = b""
        self._capacity = 0
        self._buf: NDArray[np.float32] = np.zeros(self._hist, _Float)
        self._acc: NDArray[np.float32] = np.empty(0, _Float)
        self._out: NDArray[np.int16] = np.empty(0, np.int16)
        self._windows: tuple[NDArray[np.float32], ...] = ()
        self._grow(frame_bytes(acs_rate) // _SAMPLE_BYTES)

    def _grow(self, capacity: int) -> None:
        hist, factor = self._hist, self._factor
        buf = np.zeros(hist + capacity, _Float)
        buf[:hist] = self._buf[:hist]
        item = buf.itemsize
        # One overlapping read-only window view per phase, so the hot path only slices.
        self._windows = tuple(
            as_strided(
                buf[phase:],
                shape=((capacity - phase + factor - 1) // factor, hist + 1),
                strides=(factor * item, item),
                writeable=False,
            )
            for phase in range(factor)
        )
        out_capacity = -(-capacity // factor)
        self._buf = buf
        self._acc = np.empty(out_capacity, _Float)
        self._out = np.empty(out_capacity, np.int16)
        self._capacity = capacity

    def encode(self, data: bytes) -> bytes:
        if self._odd or len(data) & 1:
            data = self._odd + data
            cut = len(data) & ~1
            self._odd = data[cut:]
            data = data[:cut]
        n = len(data) // _SAMPLE_BYTES
        if n > self._capacity:
            self._grow(max(n, 2 * self._capacity))
        hist, factor, phase, buf = self._hist, self._factor, self._phase, self._buf
        np.copyto(buf[hist : hist + n], np.frombuffer(data, "<i2"))
        count = (n - phase + factor - 1) // factor
        acc = self._acc[:count]
        np.dot(self._windows[phase][:count], self._taps, out=acc)
        buf[:hist] = buf[n : n + hist]
        self._phase = (phase - n) % factor
        out = self._out[:count]
        _to_int16(acc, out)
        encoded: bytes = audioop.lin2ulaw(out.data, _SAMPLE_BYTES)
        return encoded

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0
        self._phase = 0
        self._odd = b""


class _UlawDecoder:
    """Expand mu-law, then interpolate 8 kHz to the ACS rate with a polyphase FIR."""

    __slots__ = ("_acc", "_buf", "_capacity", "_factor", "_hist", "_out", "_phases", "_windows")

    def __init__(self, acs_rate: int) -> None:
        lowpass = _LOWPASS[acs_rate]
        factor = acs_rate // G711_RATE
        per_phase = -(-len(lowpass) // factor)
        padded = np.zeros(per_phase * factor, _Float)
        # Zero-stuffing divides the signal power by the factor; the gain restores unity.
        padded[: len(lowpass)] = lowpass * factor
        # Column p holds phase p's sub-filter, reversed to match oldest-first windows, so
        # one (n, taps) @ (taps, factor) product yields the interleaved output samples.
        self._phases = np.ascontiguousarray(padded.reshape(per_phase, factor)[::-1])
        self._factor = factor
        self._hist = per_phase - 1
        self._capacity = 0
        self._buf: NDArray[np.float32] = np.zeros(self._hist, _Float)
        self._acc: NDArray[np.float32] = np.empty((0, factor), _Float)
        self._out: NDArray[np.int16] = np.empty(0, np.int16)
        self._windows: NDArray[np.float32] = np.empty((0, per_phase), _Float)
        self._grow(_DECODER_INITIAL_CAPACITY)

    def _grow(self, capacity: int) -> None:
        hist = self._hist
        buf = np.zeros(hist + capacity, _Float)
        buf[:hist] = self._buf[:hist]
        item = buf.itemsize
        self._windows = as_strided(
            buf, shape=(capacity, hist + 1), strides=(item, item), writeable=False
        )
        self._buf = buf
        self._acc = np.empty((capacity, self._factor), _Float)
        self._out = np.empty(capacity * self._factor, np.int16)
        self._capacity = capacity

    def decode(self, data: bytes) -> bytes:
        n = len(data)
        if n > self._capacity:
            self._grow(max(n, 2 * self._capacity))
        hist = self._hist
        new = self._buf[hist : hist + n]
        np.take(_ULAW_TO_FLOAT, np.frombuffer(data, np.uint8), out=new, mode="clip")
        return self._emit(n)

    def flush(self) -> bytes:
        # Feeding silence until the history is all zeros emits the filter's whole tail (the
        # 1.5 ms delay plus the post-ringing) and leaves the state exactly as a fresh one.
        hist = self._hist
        self._buf[hist : 2 * hist] = 0.0
        return self._emit(hist)

    def _emit(self, n: int) -> bytes:
        hist, buf = self._hist, self._buf
        acc = self._acc[:n]
        np.dot(self._windows[:n], self._phases, out=acc)
        buf[:hist] = buf[n : n + hist]
        out = self._out[: n * self._factor]
        _to_int16(acc.reshape(-1), out)
        return out.tobytes()

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0


class _Pcm16Decoder:
    """Pass PCM16 through, holding back a dangling odd byte until its partner arrives."""

    __slots__ = ("_odd",)

    def __init__(self) -> None:
        self._odd = b""

    def decode(self, data: bytes) -> bytes:
        if self._odd or len(data) & 1:
            data = self._odd + data
            cut = len(data) & ~1
            self._odd = data[cut:]
            return data[:cut]
        return data

    def flush(self) -> bytes:
        # A lone trailing byte is half a sample: there is nothing playable to release.
        self._odd = b""
        return b""

    def reset(self) -> None:
        self._odd = b""


def _passthrough(data: bytes) -> bytes:
    return data


def _stateless_reset() -> None:
    return None


class CallerEncoder:
    """ACS caller audio -> Voice Live input audio, one call's stream.

    ``encode`` takes PCM16 LE mono at ``acs_rate`` (normally one 20 ms frame) and returns the
    bytes to append to the Voice Live input buffer: exactly 160 mu-law bytes per 20 ms frame
    in ``g711_ulaw`` mode (any byte count is accepted; partial samples and phases carry over),
    or the input unchanged in ``pcm16`` mode. ``reset`` drops all history.
    """

    __slots__ = ("acs_rate", "audio_format", "delay_ms", "encode", "reset")

    encode: Callable[[bytes], bytes]
    reset: Callable[[], None]

    def __init__(self, audio_format: AudioFormat, acs_rate: int) -> None:
        self.delay_ms = encoder_delay_ms(audio_format, acs_rate)
        self.audio_format: AudioFormat = audio_format
        self.acs_rate = acs_rate
        # Bind the format's implementation once so the per-frame call is a direct call.
        if audio_format == "g711_ulaw":
            impl = _UlawEncoder(acs_rate)
            self.encode = impl.encode
            self.reset = impl.reset
        else:
            self.encode = _passthrough
            self.reset = _stateless_reset


class AgentDecoder:
    """Voice Live output audio -> ACS playback PCM16, one call's stream.

    ``decode`` takes chunks of any size and returns PCM16 LE mono at ``acs_rate``: exactly
    ``acs_rate / 8000`` samples per mu-law byte in ``g711_ulaw`` mode, or the input with any
    dangling odd byte held back in ``pcm16`` mode. ``flush`` ends an item: it returns what the
    decoder still holds (mu-law: the filter tail, ``2 * delay_ms`` of audio; pcm16: nothing,
    a dangling byte is dropped) and leaves the decoder fresh. ``reset`` drops all history
    (barge-in), so the next talk spurt decodes exactly as on a fresh decoder.
    """

    __slots__ = ("acs_rate", "audio_format", "decode", "delay_ms", "flush", "reset")

    decode: Callable[[bytes], bytes]
    flush: Callable[[], bytes]
    reset: Callable[[], None]

    def __init__(self, audio_format: AudioFormat, acs_rate: int) -> None:
        self.delay_ms = decoder_delay_ms(audio_format, acs_rate)
        self.audio_format: AudioFormat = audio_format
        self.acs_rate = acs_rate
        impl: _UlawDecoder | _Pcm16Decoder
        impl = _UlawDecoder(acs_rate) if audio_format == "g711_ulaw" else _Pcm16Decoder()
        self.decode = impl.decode
        self.flush = impl.flush
        self.reset = impl.reset


@dataclass(frozen=True, slots=True)
class Codec:
    """Both directions of one call's audio, plus the Voice Live session settings they imply.

    Build it with `make_codec`.
    """

    audio_format: AudioFormat
    acs_rate: int
    encoder: CallerEncoder
    decoder: AgentDecoder
    voice_live_input_format: VoiceLiveFormat
    voice_live_input_rate: int
    voice_live_output_format: VoiceLiveFormat
    output_bytes_per_ms: int
    """Voice Live output audio bytes per ms (8 mu-law; 32 or 48 PCM16)."""

    frame_ms: ClassVar[int] = FRAME_MS

    @property
    def acs_frame_bytes(self) -> int:
        """PCM16 bytes in one 20 ms ACS frame."""
        return frame_bytes(self.acs_rate)

    @property
    def encoder_delay_ms(self) -> float:
        """Signal delay the encoder adds (ACS -> Voice Live)."""
        return self.encoder.delay_ms

    @property
    def decoder_delay_ms(self) -> float:
        """Signal delay the decoder adds (Voice Live -> ACS)."""
        return self.decoder.delay_ms

    def output_ms(self, nbytes: int) -> float:
        """Duration in ms of ``nbytes`` of Voice Live output audio."""
        return nbytes / self.output_bytes_per_ms

    def pcm_ms(self, nbytes: int) -> float:
        """Duration in ms of ``nbytes`` of PCM16 at the ACS rate."""
        return nbytes * 1000 / (self.acs_rate * _SAMPLE_BYTES)


def make_codec(audio_format: AudioFormat, acs_rate: int) -> Codec:
    """Build a fresh encoder/decoder pair for one call; raises ValueError if unsupported."""
    _check(audio_format, acs_rate)
    return Codec(
        audio_format=audio_format,
        acs_rate=acs_rate,
        encoder=CallerEncoder(audio_format, acs_rate),
        decoder=AgentDecoder(audio_format, acs_rate),
        voice_live_input_format=voice_live_input_format(audio_format),
        voice_live_input_rate=voice_live_input_rate(audio_format, acs_rate),
        voice_live_output_format=voice_live_output_format(audio_format, acs_rate),
        output_bytes_per_ms=output_bytes_per_ms(audio_format, acs_rate),
    )
