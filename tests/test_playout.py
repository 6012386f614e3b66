"""The playout model alone: ACS's buffer and the caller's ear, driven with exact times."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.sim.playout import Playout, StopRecord

DELAY_S = 0.060  # the default playout delay


def frame(ms: int = 20) -> bytes:
    return bytes(ms * 32)  # 16 kHz PCM16


def test_stop_mid_frame_counts_the_played_part() -> None:
    """Heard audio is exact to below a millisecond, inside a frame."""
    playout = Playout(sample_rate=16000)
    for _ in range(3):
        playout.on_audio(10.0, frame())
    playout.on_stop(10.0 + DELAY_S + 0.0257)
    [stop] = playout.stops
    assert stop.spurt == 1
    assert stop.heard_ms == pytest.approx(25.7)
    assert stop.discarded_ms == pytest.approx(34.3)


def test_stop_during_jitter_buffer_fill_hears_nothing() -> None:
    """Audio still filling the jitter buffer has not been heard when StopAudio arrives."""
    playout = Playout(sample_rate=16000)
    playout.on_audio(10.0, frame(40))
    assert playout.heard_ms(1, 10.03) == 0.0
    playout.on_stop(10.03)
    assert (playout.stops[0].heard_ms, playout.stops[0].discarded_ms) == (0.0, 40.0)
    assert playout.spurts[0].end == "stopped"


def test_spurt_gap_is_measured_in_playback() -> None:
    """A playback gap just under spurt_gap_ms is an underrun; one at the gap is a new spurt."""
    playout = Playout(sample_rate=16000, playout_delay_ms=60, spurt_gap_ms=250)
    playout.on_audio(10.0, frame())  # plays 10.06..10.08
    playout.on_audio(10.0 + 0.08 + 0.189, frame())  # plays after a 249 ms gap
    assert (len(playout.spurts), playout.spurts[0].underruns) == (1, 1)
    playout.on_audio(10.0 + 0.349 + 0.191, frame())  # a 251 ms gap
    assert len(playout.spurts) == 2
    assert playout.heard_ms(1, 11.0) == 40.0


def test_jitter_grid_allows_the_lead() -> None:
    """Frames sent lead_ms ahead and then every 20 ms have zero jitter."""
    playout = Playout(sample_rate=16000, lead_ms=40)
    for at in (10.0, 10.0, 10.0, 10.02, 10.04, 10.06):
        playout.on_audio(at, frame())
    assert playout.spurts[0].jitter_ms == pytest.approx([0.0] * 6, abs=1e-6)


def test_stop_after_drain_ends_the_spurt() -> None:
    """A StopAudio after the queue ran dry cuts nothing, but later audio starts a new spurt."""
    playout = Playout(sample_rate=16000)
    playout.on_audio(10.0, frame())  # plays 10.06..10.08
    playout.on_stop(10.1)  # inside the gap window, where more audio would be an underrun
    assert playout.stops == [StopRecord(10.1, None, 0.0, 0.0)]
    assert (playout.spurts[0].end, playout.spurts[0].played_ms) == ("drained", 20.0)
    playout.on_audio(10.12, frame())
    assert len(playout.spurts) == 2
    assert playout.spurts[0].underruns == 0


def test_hangup_cuts_the_playing_spurt() -> None:
    """The end of the call cuts playback: only what played before it is heard."""
    playout = Playout(sample_rate=16000)
    playout.on_audio(10.0, np.ones(1600, dtype="<i2").tobytes())  # 100 ms from 10.06
    playout.finish(10.0 + DELAY_S + 0.030)
    spurt = playout.spurts[0]
    assert (spurt.end, spurt.ended_at) == ("hangup", 10.0 + DELAY_S + 0.030)
    assert spurt.played_ms == pytest.approx(30.0)
    heard = playout.heard_audio(10.0, 10.2)
    assert len(heard) == 3200
    assert np.flatnonzero(heard).tolist() == list(range(960, 1440))
