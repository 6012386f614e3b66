"""Playback marks (ACS beta): the pacer marks frames, ACS's answers measure the playout delay,
and the heard position follows the measurement instead of the configured estimate."""

from __future__ import annotations

import json

import pytest

from callbridge.core import acs_media
from callbridge.core.codec import FRAME_MS
from callbridge.core.pacing import OutFrame, PacerCore
from callbridge.core.playback_marks import MARK_EVERY_FRAMES, MAX_PENDING, PlayoutDelayMeter

T0 = 1000.0
FRAME_S = FRAME_MS / 1000


def frames(item: str, count: int) -> list[OutFrame]:
    return [OutFrame((item, 0), FRAME_MS, acs_media.audio_data(bytes(640))) for _ in range(count)]


def release_until(core: PacerCore, end: float) -> list[OutFrame]:
    """Poll at every wake-up from T0 until ``end``; the frames released."""
    released: list[OutFrame] = []
    now = T0
    while now <= end:
        out, wake = core.poll(now)
        released += out
        if wake is None:
            break
        now = wake
    return released


def marks_of(released: list[OutFrame]) -> list[str | None]:
    ids: list[str | None] = []
    for frame in released:
        mark = json.loads(frame.message)["AudioData"]["Mark"] if "Mark" in frame.message else None
        ids.append(None if mark is None else mark["Id"])
    return ids


class TestMeter:
    def test_the_delay_is_the_median_of_completed_marks(self) -> None:
        """Each completed mark is its ack time less the moment its frame finished playing."""
        meter = PlayoutDelayMeter()
        assert meter.delay_s is None
        for index, delay in enumerate((0.200, 0.210, 0.900, 0.205)):
            mark = meter.new_mark(played_by=T0 + index)
            meter.answered(mark, "completed", T0 + index + delay)
        assert meter.delay_s == pytest.approx(0.2075)  # one late ack does not move it far

    def test_cancelled_unknown_and_impossible_answers_measure_nothing(self) -> None:
        meter = PlayoutDelayMeter()
        cancelled, early, stalled = (meter.new_mark(played_by=T0) for _ in range(3))
        meter.answered(cancelled, "cancelled", T0 + 0.2)
        meter.answered(cancelled, "completed", T0 + 0.2)  # answered twice: not ours any more
        meter.answered("m999", "completed", T0 + 0.2)
        meter.answered(early, "completed", T0 - 0.1)  # before the frame could have played
        meter.answered(stalled, "completed", T0 + 10)
        stats = meter.stats
        assert (stats.sent, stats.completed, stats.cancelled) == (3, 2, 1)
        assert (stats.unknown, stats.discarded) == (2, 2)
        assert meter.delay_s is None

    def test_marks_never_answered_are_forgotten_beyond_a_bound(self) -> None:
        meter = PlayoutDelayMeter()
        first = meter.new_mark(played_by=T0)
        for _ in range(MAX_PENDING):
            meter.new_mark(played_by=T0)
        meter.answered(first, "completed", T0 + 0.1)
        assert meter.stats.unknown == 1


class TestPacer:
    def test_one_frame_in_ten_of_each_spurt_carries_a_mark(self) -> None:
        core = PacerCore(lead_ms=0, playout_delay_ms=60, marks=True)
        for frame in frames("a", 25):
            core.push(frame)
        released = release_until(core, T0 + 1.0)
        ids = marks_of(released)
        assert [i for i, mark in enumerate(ids) if mark] == [0, MARK_EVERY_FRAMES, 20]
        unmarked = json.loads(released[1].message)
        assert unmarked == {
            "Kind": "AudioData",
            "AudioData": {"Data": unmarked["AudioData"]["Data"]},
            "StopAudio": None,
        }

    def test_without_marks_no_frame_is_marked(self) -> None:
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        for frame in frames("a", 3):
            core.push(frame)
        out, _ = core.poll(T0)
        assert marks_of(out) == [None, None, None]
        assert core.marks is None

    def test_the_heard_position_follows_the_measured_delay(self) -> None:
        """Configured 60 ms, the line plays 210 ms late: after one answered mark the heard
        position moves by the difference."""
        core = PacerCore(lead_ms=0, playout_delay_ms=60, marks=True)
        for frame in frames("a", 100):
            core.push(frame)
        out = release_until(core, T0 + 0.5)
        mark = marks_of(out)[0]
        assert mark is not None
        assert core.heard_ms(("a", 0), T0 + 0.5) == pytest.approx(440)
        # The first frame finished on the grid at T0 + 20 ms; ACS says it had played 210 ms on.
        core.on_mark(acs_media.MarkData(mark, "completed"), T0 + FRAME_S + 0.210)
        assert core.playout_delay_ms == pytest.approx(210)
        assert core.heard_ms(("a", 0), T0 + 0.5) == pytest.approx(290)

    def test_answers_without_marks_on_change_nothing(self) -> None:
        core = PacerCore(lead_ms=0, playout_delay_ms=60)
        core.on_mark(acs_media.MarkData("m1", "completed"), T0)
        assert core.playout_delay_ms == 60
