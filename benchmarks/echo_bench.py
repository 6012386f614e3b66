"""How well, and at what cost, callbridge's echo canceller takes a speakerphone echo out.

Run from the repository root after ``pip install -e .``::

    python benchmarks/echo_bench.py

The agent's side is the shipped agent clips (real speech), echoed back by a made-up phone at a
delay and level, through a pure delay or a filtering echo path; from 3 s on the shipped caller
clip talks over it (double-talk). Fed in 20 ms frames at 16 and 24 kHz exactly as a call feeds
it, it prints per case:

- ERLE: how much quieter the echo is after cancelling, where only the echo sounds (after the
  first second);
- the residual echo's RMS per frame, p50 and p99 (a frame counts as voiced from 400);
- the caller kept: what the canceller changed of the caller's voice during double-talk, against
  that voice (lower is better);
- microseconds per 20 ms frame (median of 5 runs), and while nothing plays (no echo possible);
- a new talk spurt: the agent greets, the caller answers, and the agent's reply comes back
  a few ms off the greeting's echo (a phone's jitter buffer starts afresh with each spurt).
  The loudest frame the canceller leaves in the reply's first 400 ms: a few voiced ones (400)
  make a turn detector hear a caller who said nothing.
"""

from __future__ import annotations

import statistics
import time
import wave
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from callbridge.core.echo_canceller import EchoCanceller

Signal = NDArray[np.float64]

PATHS: dict[str, tuple[float, ...]] = {
    "pure delay": (1.0,),
    "filtering path": (0.6, 0.3, -0.2, 0.1, 0.05),
}
CASES = [(150.0, -15.0), (153.1, -15.0), (250.0, -10.0), (40.0, -20.0)]


def clip(name: str, rate: int) -> Signal:
    with wave.open(str(resources.files("callbridge.assets") / f"{name}.wav")) as source:
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        native = source.getframerate()
    samples = pcm.astype(np.float64)
    if native == rate:
        return samples
    positions = np.arange(round(samples.size * rate / native)) * native / rate
    return np.interp(positions, np.arange(samples.size), samples)


def db(signal: Signal) -> float:
    return float(10 * np.log10(np.mean(signal**2) + 1e-9))


def run(rate: int, delay_ms: float, level_db: float, path: tuple[float, ...]) -> str:
    frame = rate // 50
    agent = np.concatenate([clip("agent_02_answer", rate), clip("agent_03_followup", rate)])
    caller = clip("caller_01_question", rate)
    delay = round(delay_ms * rate / 1000)
    echo = np.zeros(agent.size)
    filtered = np.convolve(agent, np.array(path))[: agent.size] * 10 ** (level_db / 20)
    echo[delay:] = filtered[: agent.size - delay]
    voice = np.zeros(agent.size)
    start = 3 * rate
    voice[start : start + caller.size] = caller[: agent.size - start]
    mic = np.clip(echo + voice, -32768, 32767).astype(np.int16)
    reference = agent.astype(np.int16)
    timings, out = [], np.zeros(0)
    for _ in range(5):
        canceller = EchoCanceller(rate)
        frames = []
        began = time.perf_counter()
        for i in range(0, agent.size - frame + 1, frame):
            frames.append(canceller.process(mic[i : i + frame], reference[i : i + frame]))
        timings.append((time.perf_counter() - began) / len(frames) * 1e6)
        out = np.concatenate(frames).astype(np.float64)
    quiet = np.zeros(out.size, dtype=bool)
    quiet[rate:] = True
    quiet[start : start + caller.size] = False
    erle = db(mic[: out.size][quiet].astype(np.float64)) - db(out[quiet])
    residual = out[quiet][: quiet.sum() // frame * frame].reshape(-1, frame)
    rms = np.sqrt((residual**2).mean(axis=1))
    talking = slice(start, min(start + caller.size, out.size))
    kept = db(out[talking] - voice[talking]) - db(voice[talking])
    return (
        f"{erle:7.1f} dB  {np.percentile(rms, 50):6.0f} {np.percentile(rms, 99):6.0f}"
        f"  {kept:7.1f} dB  {statistics.median(timings):6.1f}"
    )


def idle_cost(rate: int) -> float:
    frame = rate // 50
    canceller = EchoCanceller(rate)
    silence = np.zeros(frame, dtype=np.int16)
    mic = (np.arange(frame) % 50).astype(np.int16)
    for _ in range(100):
        canceller.process(mic, silence)
    began = time.perf_counter()
    for _ in range(2000):
        canceller.process(mic, silence)
    return (time.perf_counter() - began) / 2000 * 1e6


def spurt_start(rate: int, moved_ms: float, path: tuple[float, ...]) -> float:
    """The loudest residual frame's RMS in the first 400 ms of a reply whose echo moved."""
    frame = rate // 50
    greeting, reply = clip("agent_01_greeting", rate), clip("agent_04_goodbye", rate)
    caller = clip("caller_03_thanks", rate)
    caller_at = greeting.size + rate * 4 // 10  # within the greeting's echo's reach
    reply_at = caller_at + caller.size + rate * 7 // 10
    reference = np.zeros(reply_at + reply.size + rate)
    reference[: greeting.size] = greeting
    reference[reply_at : reply_at + reply.size] = reply
    echo = np.convolve(reference, np.array(path))[: reference.size] * 10 ** (-15 / 20)
    delay, moved = round(0.150 * rate), round(moved_ms * rate / 1000)
    mic = np.zeros(reference.size)
    mic[delay:reply_at] = echo[: reply_at - delay]
    reply_echo_at = reply_at + delay + moved
    mic[reply_echo_at:] = echo[reply_at : reply_at + mic.size - reply_echo_at]
    mic[caller_at : caller_at + caller.size] += caller
    sent, played = np.clip(mic, -32768, 32767).astype(np.int16), reference.astype(np.int16)
    canceller = EchoCanceller(rate)
    out = np.concatenate(
        [
            canceller.process(sent[i : i + frame], played[i : i + frame])
            for i in range(0, reply_echo_at + 20 * frame, frame)
        ]
    ).astype(np.float64)
    first = reply_echo_at // frame * frame
    frames = out[first : first + 20 * frame].reshape(-1, frame)
    return float(np.sqrt((frames**2).mean(axis=1)).max())


def main() -> None:
    print(
        f"{'rate':>5} {'echo path':<15} {'delay':>7} {'level':>6}"
        f"  {'ERLE':>10}  {'p50':>6} {'p99':>6}  {'caller kept':>10}  {'µs/frame':>8}"
    )
    for rate in (16000, 24000):
        for name, path in PATHS.items():
            for delay_ms, level_db in CASES:
                figures = run(rate, delay_ms, level_db, path)
                print(f"{rate:>5} {name:<15} {delay_ms:>5.1f}ms {level_db:>4.0f}dB  {figures}")
        print(f"{rate:>5} nothing played: {idle_cost(rate):.1f} µs/frame")
    print(
        "\nnew spurt, its echo moved by (ms): the loudest residual frame's RMS in its first 400 ms"
    )
    moves = (-6.25, -2.5, 0.0, 2.5, 6.25)
    print(f"{'rate':>5} {'echo path':<15} " + " ".join(f"{moved:>+7.2f}" for moved in moves))
    for rate in (16000, 24000):
        for name, path in PATHS.items():
            loudest = " ".join(f"{spurt_start(rate, moved, path):>7.0f}" for moved in moves)
            print(f"{rate:>5} {name:<15} {loudest}")


if __name__ == "__main__":
    main()
