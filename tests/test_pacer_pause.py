"""PacerCore's pause and resume: what the caller has not heard is held from the exact sample
they stopped at, with what arrives meanwhile, and handed back to play again; or dropped."""

from __future__ import annotations

import pytest

from callbridge.core import acs_media
from callbridge.core.codec import FRAME_MS
from callbridge.core.pacing import OutFrame, PacerCore

T0 = 1000.0
SAMPLES_PER_FRAME = 320  # 16 kHz


def speech(item: str, count: int, first: int = 0) -> list[OutFrame]:
    """Frames whose every sample is its own index in the item (mod 2**15): positions show."""
    out = []
    for n in range(first, first + count):
        samples = [(n * SAMPLES_PER_FRAME + i) % 32768 for i in range(SAMPLES_PER_FRAME)]
        pcm = b"".join(s.to_bytes(2, "little") for s in samples)
        out.append(OutFrame((item, 0), FRAME_MS, acs_media.audio_data(pcm)))
    return out


def first_sample(pcm: bytes) -> int:
    return int.from_bytes(pcm[:2], "little")


def release_until(core: PacerCore, end: float, start: float = T0) -> None:
    now = start
    while now < end:
        _, wake = core.poll(now)
        if wake is None:
            return
        now = min(max(wake, now + 0.001), end)
    core.poll(end)


def test_pause_holds_from_the_exact_sample_the_caller_stopped_at() -> None:
    core = PacerCore(lead_ms=40, playout_delay_ms=60)
    for frame in speech("a", 50):
        core.push(frame)
    release_until(core, T0 + 0.5)
    # Heard: 0.5 s - 60 ms playout delay = 440 ms: sample 7040 at 16 kHz.
    cut = core.pause(T0 + 0.5)

    assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("a", 440)]
    assert core.paused
    assert core.poll(T0 + 0.6) == ([], None)  # nothing leaves while paused
    assert core.is_playing(T0 + 5)  # the agent still holds the floor
    held = core.resume()
    assert [key for key, _ in held] == [("a", 0)]
    pcm = held[0][1]
    assert first_sample(pcm) == 7040
    assert len(pcm) == (50 * SAMPLES_PER_FRAME - 7040) * 2  # everything unheard, once


def test_audio_arriving_while_paused_is_held_after_the_rest() -> None:
    core = PacerCore(lead_ms=40, playout_delay_ms=60)
    for frame in speech("a", 10):
        core.push(frame)
    release_until(core, T0 + 0.1)
    core.pause(T0 + 0.1)
    for frame in speech("a", 5, first=10) + speech("b", 2):
        core.push(frame)

    held = core.resume()
    assert [key for key, _ in held] == [("a", 0), ("b", 0)]
    a_pcm = held[0][1]
    # From 40 ms in (100 ms less the playout delay) to the end of frame 14.
    assert first_sample(a_pcm) == 640
    assert len(a_pcm) == (15 * SAMPLES_PER_FRAME - 640) * 2
    assert not core.paused


def test_the_ledger_keeps_what_was_heard_so_the_position_goes_on_after_resume() -> None:
    core = PacerCore(lead_ms=0, playout_delay_ms=0)
    for frame in speech("a", 20):
        core.push(frame)
    release_until(core, T0 + 0.1)
    core.pause(T0 + 0.1)  # 100 ms heard
    core.resume()
    # Pushed anew (as AgentAudio does with the held audio): 300 ms more, from T0 + 1.
    for frame in speech("a", 15, first=5):
        core.push(frame)
    release_until(core, T0 + 1.1, start=T0 + 1.0)
    assert core.heard_ms(("a", 0), T0 + 1.1) == pytest.approx(100 + 100)
    cut = core.flush(T0 + 1.1)
    assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("a", 200)]


def test_flush_while_paused_drops_the_held_audio_and_reports_the_pause_position() -> None:
    core = PacerCore(lead_ms=40, playout_delay_ms=60)
    for frame in speech("a", 30):
        core.push(frame)
    release_until(core, T0 + 0.3)
    core.pause(T0 + 0.3)
    for frame in speech("a", 3, first=30):
        core.push(frame)

    # The decision came 600 ms later: the caller heard nothing more in between.
    cut = core.flush(T0 + 0.9)
    assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("a", 240)]
    assert not core.paused
    assert core.resume() == []
    assert not core.is_playing(T0 + 0.9)


def test_a_padded_last_frame_is_held_without_its_padding() -> None:
    core = PacerCore(lead_ms=0, playout_delay_ms=0)
    frame = speech("a", 1)[0]
    core.push(OutFrame(frame.key, 7.5, frame.message))  # 120 real samples, then silence
    core.pause(T0)
    assert [len(pcm) for _, pcm in core.resume()] == [240]
