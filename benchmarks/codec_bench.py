"""Compare callbridge's FIR resampling codec with soxr and audioop.ratecv.

Run from the repository root after ``pip install -e .``::

    python benchmarks/codec_bench.py [--against REF]

``--against REF`` adds the G.711 module as it was at git commit REF (say ``HEAD~1`` or
``main``), so a change's before and after are timed in one run, alternating: on a shared
machine only ratios from one run mean anything.

For each ACS rate (16 and 24 kHz) and each implementation of the mu-law path
(PCM16 -> 8 kHz mu-law -> PCM16, fed in 20 ms frames exactly as a call would) it prints:

- round-trip SNR of -6 dBFS tones at 300, 1000, 3000 and 3400 Hz (bar: >= 33 dB);
- how many bytes/samples each 20 ms call returns (a real-time pacer needs a steady 160/320/480);
- added delay per direction: the content delay (cross-correlation against an ideal reference)
  plus the worst lag of emitted audio behind received audio caused by output bursts;
- microseconds per 20 ms frame, encode and decode: the best of several rounds that take
  every implementation in turn, and each one's ratio to this tree's.

soxr is optional: its rows are skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import subprocess
import timeit
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from callbridge.core.codec import FRAME_MS, G711_RATE, make_codec

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

try:
    import soxr
except ImportError:  # pragma: no cover - optional comparison only
    soxr = None

Stage = Callable[[bytes], bytes]
"""One streaming direction: bytes of one chunk in, whatever the stage emits now out."""

RATES = (16000, 24000)
TONES = (300, 1000, 3000, 3400)
AMPLITUDE = 0.5 * 32767
SNR_SECONDS = 2.0
DELAY_SECONDS = 2.0
ULAW_FRAME = G711_RATE * FRAME_MS // 1000
TIMING_ROUNDS = 15


@dataclass(frozen=True)
class Impl:
    name: str
    make_encoder: Callable[[int], Stage]
    make_decoder: Callable[[int], Stage]
    reported_delay_ms: Callable[[int], tuple[float, float]] | None = None
    """(encoder, decoder) delay the implementation documents, to check against the measure."""


def _fir_encoder(rate: int) -> Stage:
    return make_codec("g711_ulaw", rate).encoder.encode


def _fir_decoder(rate: int) -> Stage:
    return make_codec("g711_ulaw", rate).decoder.decode


def _fir_delay(rate: int) -> tuple[float, float]:
    codec = make_codec("g711_ulaw", rate)
    return codec.encoder_delay_ms, codec.decoder_delay_ms


def _g711_at(ref: str) -> types.ModuleType:
    """callbridge/core/g711.py as it was at git commit ``ref``, loaded beside this tree's."""
    path = "callbridge/core/g711.py"
    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"g711_at_{ref}")
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)
    return module


def _fir_at(ref: str) -> Impl:
    g711 = _g711_at(ref)
    return Impl(
        f"FIR @{ref}",
        lambda rate: g711.UlawEncoder(rate).encode,
        lambda rate: g711.UlawDecoder(rate).decode,
        lambda rate: (g711.resampler_delay_ms(rate),) * 2,
    )


def _soxr_stage(in_rate: int, out_rate: int, *, ulaw_in: bool, ulaw_out: bool) -> Stage:
    assert soxr is not None
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")

    def stage(data: bytes) -> bytes:
        pcm = audioop.ulaw2lin(data, 2) if ulaw_in else data
        out: bytes = stream.resample_chunk(np.frombuffer(pcm, "<i2")).tobytes()
        return audioop.lin2ulaw(out, 2) if ulaw_out else out

    return stage


def _soxr_encoder(rate: int) -> Stage:
    return _soxr_stage(rate, G711_RATE, ulaw_in=False, ulaw_out=True)


def _soxr_decoder(rate: int) -> Stage:
    return _soxr_stage(G711_RATE, rate, ulaw_in=True, ulaw_out=False)


def _ratecv_stage(in_rate: int, out_rate: int, *, ulaw_in: bool, ulaw_out: bool) -> Stage:
    state: tuple[int, tuple[tuple[int, int], ...]] | None = None

    def stage(data: bytes) -> bytes:
        nonlocal state
        pcm = audioop.ulaw2lin(data, 2) if ulaw_in else data
        out, state = audioop.ratecv(pcm, 2, 1, in_rate, out_rate, state)
        return audioop.lin2ulaw(out, 2) if ulaw_out else out

    return stage


def _ratecv_encoder(rate: int) -> Stage:
    return _ratecv_stage(rate, G711_RATE, ulaw_in=False, ulaw_out=True)


def _ratecv_decoder(rate: int) -> Stage:
    return _ratecv_stage(G711_RATE, rate, ulaw_in=True, ulaw_out=False)


def _impls(against: str | None) -> list[Impl]:
    impls = [Impl("FIR (callbridge)", _fir_encoder, _fir_decoder, _fir_delay)]
    if against is not None:
        impls.append(_fir_at(against))
    if soxr is not None:
        impls.append(Impl("soxr HQ", _soxr_encoder, _soxr_decoder))
    impls.append(Impl("audioop.ratecv", _ratecv_encoder, _ratecv_decoder))
    return impls


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _pcm(data: bytes) -> NDArray[np.float64]:
    return np.frombuffer(data, "<i2").astype(np.float64)


def _tone(freq: float, rate: int, seconds: float) -> NDArray[np.int16]:
    n = np.arange(int(rate * seconds))
    return np.round(AMPLITUDE * np.sin(2 * np.pi * freq * n / rate)).astype("<i2")


def _aligned_snr(reference: NDArray[np.float64], out: NDArray[np.float64], lag: int) -> float:
    # Skip the start-up and whatever a resampler still holds back at the end.
    settle = len(reference) // 10
    length = min(len(reference) - settle, len(out) - lag - settle) - settle
    ref = reference[settle : settle + length]
    got = out[settle + lag : settle + lag + length]
    return float(10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2)))


def round_trip_snr(impl: Impl, rate: int, freq: float, lag: int) -> float:
    """SNR of a tone through encoder then decoder frame by frame, ``lag`` samples late."""
    tone = _tone(freq, rate, SNR_SECONDS)
    encode, decode = impl.make_encoder(rate), impl.make_decoder(rate)
    out = _pcm(b"".join(decode(encode(f)) for f in _frames(tone.tobytes(), rate // 25)))
    return _aligned_snr(tone.astype(np.float64), out, lag)


def _bandlimited_noise(rate: int, seconds: float, seed: int = 5) -> NDArray[np.float64]:
    """The same periodic noise (< 3.4 kHz, -12 dBFS RMS) sampled exactly at ``rate``."""
    n8 = int(G711_RATE * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n8))
    spectrum[np.fft.rfftfreq(n8, 1 / G711_RATE) > 3400] = 0
    n = int(rate * seconds)
    wide = np.zeros(n // 2 + 1, complex)
    wide[: len(spectrum)] = spectrum
    signal = np.fft.irfft(wide, n) * n / n8
    return np.asarray(signal * (0.25 * 32767 / np.sqrt(np.mean(signal**2))), np.float64)


def _content_delay_ms(reference: NDArray[np.float64], out: NDArray[np.float64], rate: int) -> float:
    """Sub-sample delay of ``out`` behind ``reference`` by cross-correlation peak."""
    length = min(len(reference), len(out))
    settle = length // 10
    ref = reference[settle : length - settle]
    got = out[:length]
    corr = np.correlate(got, ref, mode="valid")  # corr[k] ~ ref shifted to start at k
    k = int(np.argmax(corr))
    frac = 0.0
    if 0 < k < len(corr) - 1:
        left, mid, right = corr[k - 1], corr[k], corr[k + 1]
        frac = 0.5 * (left - right) / (left - 2 * mid + right)
    return (k + frac - settle) * 1000 / rate


def _stream(stage: Stage, chunks: list[bytes], out_bytes_per_ms: float) -> tuple[bytes, float]:
    """Run chunks through a stage; return the output and the worst output-behind-input lag."""
    outs: list[bytes] = []
    emitted = 0
    worst_lag = 0.0
    for i, chunk in enumerate(chunks, start=1):
        out = stage(chunk)
        outs.append(out)
        emitted += len(out)
        worst_lag = max(worst_lag, i * FRAME_MS - emitted / out_bytes_per_ms)
    return b"".join(outs), worst_lag


@dataclass(frozen=True)
class Direction:
    content_ms: float
    burst_lag_ms: float
    sizes: list[int]

    @property
    def total_ms(self) -> float:
        return self.content_ms + self.burst_lag_ms


def _encoder_input(rate: int) -> list[bytes]:
    wide = _bandlimited_noise(rate, DELAY_SECONDS)
    return _frames(np.round(wide).astype("<i2").tobytes(), rate // 25)


def _decoder_input() -> list[bytes]:
    narrow = _bandlimited_noise(G711_RATE, DELAY_SECONDS)
    return _frames(audioop.lin2ulaw(np.round(narrow).astype("<i2").tobytes(), 2), ULAW_FRAME)


def encoder_direction(impl: Impl, rate: int) -> Direction:
    narrow = _bandlimited_noise(G711_RATE, DELAY_SECONDS)
    frames = _encoder_input(rate)
    encode = impl.make_encoder(rate)
    sizes = [len(encode(f)) for f in frames[:12]]
    ulaw, lag = _stream(impl.make_encoder(rate), frames, G711_RATE / 1000)
    content = _content_delay_ms(narrow, _pcm(audioop.ulaw2lin(ulaw, 2)), G711_RATE)
    return Direction(content, lag, sizes)


def decoder_direction(impl: Impl, rate: int) -> Direction:
    wide = _bandlimited_noise(rate, DELAY_SECONDS)
    chunks = _decoder_input()
    decode = impl.make_decoder(rate)
    sizes = [len(decode(c)) // 2 for c in chunks[:12]]
    pcm, lag = _stream(impl.make_decoder(rate), chunks, rate * 2 / 1000)
    content = _content_delay_ms(wide, _pcm(pcm), rate)
    return Direction(content, lag, sizes)


def us_per_frame(stages: dict[str, Stage], chunks: list[bytes]) -> dict[str, float]:
    """Best time per chunk of each stage over rounds that run every stage in turn."""
    for stage in stages.values():
        for chunk in chunks[:10]:
            stage(chunk)
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(TIMING_ROUNDS):
        for name, stage in stages.items():
            seconds = timeit.timeit(lambda stage=stage: [stage(c) for c in chunks], number=1)
            best[name] = min(best[name], seconds / len(chunks) * 1e6)
    return best


def _pattern(sizes: list[int]) -> str:
    return ",".join(str(s) for s in sizes)


def _print_timings(impls: list[Impl]) -> None:
    print("\nMicroseconds per 20 ms frame, best of rounds taking each in turn (x: / this tree)")
    print(f"{'implementation':<18}{'rate':>6}{'encode':>10}{'x':>7}{'decode':>10}{'x':>7}")
    for rate in RATES:
        enc = us_per_frame({i.name: i.make_encoder(rate) for i in impls}, _encoder_input(rate))
        dec = us_per_frame({i.name: i.make_decoder(rate) for i in impls}, _decoder_input())
        ours = impls[0].name
        for impl in impls:
            print(
                f"{impl.name:<18}{rate:>6}{enc[impl.name]:>10.2f}"
                f"{enc[impl.name] / enc[ours]:>7.2f}{dec[impl.name]:>10.2f}"
                f"{dec[impl.name] / dec[ours]:>7.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", metavar="REF", help="also time g711.py as of git REF")
    impls = _impls(parser.parse_args().against)
    if soxr is None:
        print("soxr not installed: its rows are skipped\n")
    directions = {
        (impl.name, rate): (encoder_direction(impl, rate), decoder_direction(impl, rate))
        for impl in impls
        for rate in RATES
    }

    print("Per direction: delay (content + worst burst lag = total, ms)")
    header = f"{'implementation':<18}{'rate':>6}  {'dir':<4}{'reported':>9}{'content':>9}"
    print(header + f"{'burst':>8}{'total':>8}  output per 20 ms call (first 12)")
    for impl in impls:
        for rate in RATES:
            reported = impl.reported_delay_ms(rate) if impl.reported_delay_ms else None
            for i, direction in enumerate(directions[impl.name, rate]):
                claim = f"{reported[i]:>9.2f}" if reported else f"{'-':>9}"
                print(
                    f"{impl.name:<18}{rate:>6}  {('enc', 'dec')[i]:<4}{claim}"
                    f"{direction.content_ms:>9.2f}{direction.burst_lag_ms:>8.1f}"
                    f"{direction.total_ms:>8.1f}  {_pattern(direction.sizes)}"
                )
    print("enc sizes are mu-law bytes (160 = 20 ms); dec sizes are PCM16 samples at the rate.")

    print("\nRound-trip SNR (dB), -6 dBFS tone, PCM16 -> mu-law 8 kHz -> PCM16, 20 ms frames,")
    print("aligned by the measured round-trip content delay (bar: >= 33 dB)")
    print(f"{'implementation':<18}{'rate':>6}" + "".join(f"{f:>9} Hz" for f in TONES) + "   lag")
    for impl in impls:
        for rate in RATES:
            enc, dec = directions[impl.name, rate]
            lag = round((enc.content_ms + dec.content_ms) * rate / 1000)
            cells = "".join(f"{round_trip_snr(impl, rate, f, lag):>12.2f}" for f in TONES)
            print(f"{impl.name:<18}{rate:>6}{cells}   {lag} samples")
    # The floor no resampler can beat: the tone sampled at 8 kHz and companded, nothing else.
    floor = "".join(f"{_ulaw_only_snr(f):>12.2f}" for f in TONES)
    print(f"{'mu-law alone':<18}{G711_RATE:>6}{floor}")
    _print_timings(impls)


def _ulaw_only_snr(freq: float) -> float:
    tone = _tone(freq, G711_RATE, SNR_SECONDS)
    out = _pcm(audioop.ulaw2lin(audioop.lin2ulaw(tone.tobytes(), 2), 2))
    return _aligned_snr(tone.astype(np.float64), out, 0)


if __name__ == "__main__":
    main()
