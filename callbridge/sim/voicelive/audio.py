"""Scripted agent turns and the emulator's audio: formats, resampling, G.711, input decoding."""

from __future__ import annotations

import json
import warnings
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

with warnings.catch_warnings():
    # The stdlib module warns on import in 3.11-3.12; 3.13 gets the audioop-lts backport.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

Int16Samples: TypeAlias = NDArray[np.int16]
Encoding: TypeAlias = Literal["pcm16", "g711_ulaw", "g711_alaw"]

G711_RATE: Final = 8000
PCM16_DEFAULT_RATE: Final = 24000
_PCM16_INPUT_RATES: Final = (8000, 16000, PCM16_DEFAULT_RATE)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model makes at the end of a scripted turn.

    ``arguments`` is the JSON object the model passes; the turn keeps a read-only copy made
    at construction (the arguments must survive a JSON round trip).
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ToolCall.name must not be empty")
        if not isinstance(self.arguments, Mapping):
            raise TypeError("ToolCall.arguments must be a mapping (a JSON object)")
        try:
            copied = json.loads(json.dumps(dict(self.arguments), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ToolCall.arguments are not JSON serialisable: {exc}") from exc
        object.__setattr__(self, "arguments", MappingProxyType(copied))

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string the service sends."""
        return json.dumps(dict(self.arguments), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """One scripted agent utterance: PCM16 mono little-endian audio and what it says.

    ``tool_call``: a function call the model makes after speaking, in the same response.
    """

    audio: bytes
    sample_rate: int
    transcript: str
    tool_call: ToolCall | None = None

    def __post_init__(self) -> None:
        if not self.audio or len(self.audio) % 2:
            raise ValueError("AgentTurn.audio must be non-empty PCM16 (an even number of bytes)")
        if not 8000 <= self.sample_rate <= 48000:
            raise ValueError(f"AgentTurn.sample_rate {self.sample_rate} is not 8000..48000 Hz")

    @property
    def duration_ms(self) -> float:
        return len(self.audio) / 2 * 1000 / self.sample_rate


def load_turns(paths: Sequence[Path]) -> list[AgentTurn]:
    """Read PCM16 mono WAV files as agent turns; a sibling ``.txt`` file holds the transcript."""
    turns = []
    for path in paths:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                raise ValueError(f"{path}: expected PCM16 mono WAV")
            audio = wav.readframes(wav.getnframes())
            sample_rate = wav.getframerate()
        transcript_path = path.with_suffix(".txt")
        transcript = (
            transcript_path.read_text(encoding="utf-8").strip() if transcript_path.exists() else ""
        )
        turns.append(AgentTurn(audio=audio, sample_rate=sample_rate, transcript=transcript))
    return turns


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A Voice Live audio format: wire name, sample rate and sample encoding."""

    name: str
    sample_rate: int
    encoding: Encoding

    @property
    def bytes_per_ms(self) -> int:
        bytes_per_sample = 2 if self.encoding == "pcm16" else 1
        return self.sample_rate // 1000 * bytes_per_sample


_OUTPUT_FORMATS: Final[Mapping[str, AudioFormat]] = {
    fmt.name: fmt
    for fmt in (
        AudioFormat("pcm16", PCM16_DEFAULT_RATE, "pcm16"),
        AudioFormat("pcm16_16000hz", 16000, "pcm16"),
        AudioFormat("pcm16_8000hz", 8000, "pcm16"),
        AudioFormat("g711_ulaw", G711_RATE, "g711_ulaw"),
        AudioFormat("g711_alaw", G711_RATE, "g711_alaw"),
    )
}


def output_audio_format(name: str) -> AudioFormat:
    """The output format for a wire name (legacy hyphenated spellings are accepted)."""
    fmt = _OUTPUT_FORMATS.get(name.replace("-", "_"))
    if fmt is None:
        raise ValueError(f"unsupported output_audio_format {name!r}")
    return fmt


def input_audio_format(name: str, sampling_rate: int | None) -> AudioFormat:
    """The input format for ``input_audio_format`` and ``input_audio_sampling_rate``."""
    match name:
        case "g711_ulaw" | "g711_alaw":
            if sampling_rate not in (None, G711_RATE):
                raise ValueError(f"{name} is 8000 Hz only, not {sampling_rate}")
            return AudioFormat(name, G711_RATE, name)
        case "pcm16":
            rate = sampling_rate or PCM16_DEFAULT_RATE
            if rate not in _PCM16_INPUT_RATES:
                raise ValueError(f"unsupported input_audio_sampling_rate {rate}")
            return AudioFormat(name, rate, "pcm16")
    raise ValueError(f"unsupported input_audio_format {name!r}")


def resample_pcm16(pcm: bytes, source_rate: int, target_rate: int) -> bytes:
    """Resample PCM16 by linear interpolation (no anti-alias filter: a test instrument)."""
    if source_rate == target_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = max(1, round(samples.size * target_rate / source_rate))
    positions = np.arange(count) * (source_rate / target_rate)
    resampled = np.interp(positions, np.arange(samples.size), samples)
    converted: bytes = np.clip(np.rint(resampled), -32768, 32767).astype("<i2").tobytes()
    return converted


def encode_output_audio(turn: AgentTurn, fmt: AudioFormat) -> bytes:
    """A turn's audio in an output format, ready to be cut into ``response.audio.delta``s."""
    pcm = resample_pcm16(turn.audio, turn.sample_rate, fmt.sample_rate)
    match fmt.encoding:
        case "pcm16":
            return pcm
        case "g711_ulaw":
            return audioop.lin2ulaw(pcm, 2)
        case "g711_alaw":
            return audioop.lin2alaw(pcm, 2)


class InputDecoder:
    """Decodes appended input audio to PCM16 samples, carrying a split pcm16 sample over."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._carry = b""

    def decode(self, data: bytes) -> Int16Samples:
        match self.format.encoding:
            case "g711_ulaw":
                pcm = audioop.ulaw2lin(data, 2)
            case "g711_alaw":
                pcm = audioop.alaw2lin(data, 2)
            case "pcm16":
                data = self._carry + data
                usable = len(data) - len(data) % 2
                pcm, self._carry = data[:usable], data[usable:]
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)
