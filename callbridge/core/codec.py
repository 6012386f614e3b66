"""Sans-IO audio codec between ACS call media and Azure Voice Live.

ACS streams PCM16 LE mono at 16 or 24 kHz in 20 ms frames. Voice Live is driven either with
G.711 mu-law at 8 kHz (``g711_ulaw``, resampled by ``callbridge.core.g711``) or with PCM16 at
the ACS rate (``pcm16``). The codec is chosen once per call, and with it the Voice Live session's
audio formats and the fixed delay each direction adds (``encoder_delay_ms`` /
``decoder_delay_ms``), which downstream timing accounts for.

Everything here is synchronous and allocation-light; objects are per call and not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from callbridge.core.acs_media import ACS_RATES
from callbridge.core.g711 import G711_RATE, UlawDecoder, UlawEncoder, resampler_delay_ms

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

_SAMPLE_BYTES: Final = 2
_AUDIO_FORMATS: Final = ("g711_ulaw", "pcm16")


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
    return resampler_delay_ms(acs_rate)


def decoder_delay_ms(audio_format: AudioFormat, acs_rate: int) -> float:
    """Signal delay the decoder adds, Voice Live -> ACS (1.5 ms for mu-law, 0 for pcm16)."""
    _check(audio_format, acs_rate)
    if audio_format == "pcm16":
        return 0.0
    return resampler_delay_ms(acs_rate)


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
            impl = UlawEncoder(acs_rate)
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
        impl: UlawDecoder | _Pcm16Decoder
        impl = UlawDecoder(acs_rate) if audio_format == "g711_ulaw" else _Pcm16Decoder()
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
    def acs_silence(self) -> bytes:
        """One 20 ms ACS frame of silence."""
        return bytes(frame_bytes(self.acs_rate))

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
