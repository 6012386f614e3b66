"""PacerCore: the 20 ms grid, the lead, re-anchoring and the heard-position ledger."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from callbridge.bridge.pacer import FramePacer
from callbridge.core import pacing
from callbridge.core.codec import FRAME_MS
from callbridge.core.pacing import OutFrame, PacerCore
from callbridge.process import runtime

T0 = 1000.0
FRAME_S = FRAME_MS / 1000


def frames(item: str, count: int, audio_ms: float = FRAME_MS) -> list[OutFrame]:
    return [OutFrame((item, 0), audio_ms, f"{item}:{n}") for n in range(count)]


def fill(core: PacerCore, batch: list[OutFrame]) -> None:
    for frame in batch:
        core.push(frame)


def run_until_empty(core: PacerCore, start: float, lateness_s: float = 0.0) -> list[float]:
    """Poll at every requested wake-up (plus lateness) and return each frame's release time."""
    released_at: list[float] = []
    now = start
    for _ in range(100_000):
        out, wake = core.poll(now)
        released_at += [now] * len(out)
        if wake is None:
            return released_at
        now = max(now, wake) + lateness_s
    raise AssertionError("pacer never drained")


def poll_until(core: PacerCore, start: float, end: float) -> None:
    """Poll at every requested wake-up from ``start``, last at ``end``; audio must remain."""
    now = start
    while True:
        _, wake = core.poll(now)
        assert wake is not None
        if now >= end:
            return
        now = min(wake, end)


class TestGrid:
    def test_first_lead_worth_goes_at_once_then_one_frame_per_20ms(self) -> None:
        """With a 40 ms lead, frames 0-2 leave immediately and frame n at t0 + (n-2)*20 ms."""
        core = PacerCore(lead_ms=40, playout_delay_ms=0)
        fill(core, frames("a", 6))
        times = run_until_empty(core, T0)
        expected = [T0, T0, T0, T0 + FRAME_S, T0 + 2 * FRAME_S, T0 + 3 * FRAME_S]
        assert times == pytest.approx(expected)

    def test_no_drift_when_wake_ups_are_late_by_less_than_a_frame(self) -> None:
        """Late wake-ups do not accumulate: frame n is still released for its own due time."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 3000))
        rng = random.Random(7)
        now = T0
        released: list[float] = []
        for _ in range(10_000):
            out, wake = core.poll(now)
            released += [now] * len(out)
            if wake is None:
                break
            now = wake + rng.uniform(0, 0.015)
        assert len(released) == 3000
        # Frame 2999 is due at exactly T0 + 2999 * 20 ms; it went out at most 15 ms after.
        assert 0 <= released[-1] - (T0 + 2999 * FRAME_S) <= 0.015
        assert core.stats.reanchors == 0

    def test_lead_fill_frames_are_not_counted_as_late(self) -> None:
        """Frames sent at once to fill the lead were on time; a late wake-up is measured."""
        core = PacerCore(lead_ms=40, playout_delay_ms=0)
        fill(core, frames("a", 5))
        core.poll(T0)
        assert core.stats.max_late_ms == 0
        core.poll(T0 + FRAME_S + 0.005)
        assert core.stats.max_late_ms == pytest.approx(5)

    def test_stall_reanchors_instead_of_bursting_the_backlog(self) -> None:
        """After a 200 ms stall only the lead's worth of frames goes out, and it is counted."""
        core = PacerCore(lead_ms=40, playout_delay_ms=0)
        fill(core, frames("a", 50))
        out, _ = core.poll(T0)
        assert len(out) == 3
        out, _ = core.poll(T0 + 0.2)
        assert len(out) == 3
        assert core.stats.reanchors == 1

    def test_late_audio_mid_item_counts_as_starved_not_reanchor(self) -> None:
        """When the model's audio arrives after it was due, the grid restarts and it is counted."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 2))
        run_until_empty(core, T0)
        fill(core, frames("a", 2))
        core.poll(T0 + 0.5)
        assert (core.stats.starved, core.stats.reanchors) == (1, 0)

    def test_a_new_item_after_silence_is_a_new_spurt(self) -> None:
        """A reply that starts after a pause is neither a stall nor starvation."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 2))
        run_until_empty(core, T0)
        fill(core, frames("b", 2))
        core.poll(T0 + 5)
        assert (core.stats.spurts, core.stats.starved, core.stats.reanchors) == (2, 0, 0)


class TestLedger:
    def test_heard_position_follows_due_time_plus_playout_delay(self) -> None:
        """An item released from t0 is heard from t0 + playout delay, in real time."""
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        fill(core, frames("a", 100))
        poll_until(core, T0, T0 + 1.0)
        assert core.heard_ms(("a", 0), T0 + 0.05) == 0
        assert core.heard_ms(("a", 0), T0 + 0.06 + 0.25) == pytest.approx(250)

    def test_flush_returns_what_was_heard_and_clears_everything(self) -> None:
        """A barge-in 310 ms into playback reports 250 ms heard and stops all playback."""
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        fill(core, frames("a", 100))
        poll_until(core, T0, T0 + 0.31)
        cut = core.flush(T0 + 0.31)
        assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("a", 250)]
        assert cut[0].released_ms == pytest.approx(20 * 18)
        assert core.queued_frames == 0
        assert not core.is_playing(T0 + 0.31)

    def test_flush_reports_queued_items_never_released_as_heard_zero(self) -> None:
        """An item still entirely queued was not heard at all."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 1) + frames("b", 3))
        core.poll(T0)
        cut = core.flush(T0 + 0.001)
        assert {(h.item_id, round(h.heard_ms)) for h in cut} == {("a", 1), ("b", 0)}

    def test_playing_until_the_last_frame_has_played_out(self) -> None:
        """Audio still in ACS's buffer counts as playing; after it ends nothing plays."""
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        fill(core, frames("a", 3))
        out, wake = core.poll(T0)
        assert len(out) == 3
        assert wake is None
        assert core.is_playing(T0 + 0.1)
        assert not core.is_playing(T0 + 0.06 + 0.06 + 0.001)

    def test_fully_heard_items_are_not_reported_on_flush(self) -> None:
        """Only items whose playback was actually cut are truncated."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 1))
        run_until_empty(core, T0)
        fill(core, frames("b", 5))
        run_until_empty(core, T0 + 1)
        cut = core.flush(T0 + 1.03)
        assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("b", 30)]

    def test_a_stall_longer_than_the_playout_delay_keeps_what_was_heard_before_it(self) -> None:
        """The grid re-anchors after a 300 ms stall mid-item; a barge-in after it still counts
        the audio heard before the stall (the item is not forgotten as played out)."""
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        fill(core, frames("a", 100))
        poll_until(core, T0, T0 + 0.6)  # released frames due up to T0 + 0.64: 660 ms
        core.poll(T0 + 0.94)  # the loop stalled 300 ms: re-anchored at T0 + 0.94
        assert core.stats.reanchors == 1
        poll_until(core, T0 + 0.94, T0 + 1.14)
        cut = core.flush(T0 + 1.14)
        # 660 ms before the stall, then 200 ms since the new anchor less the playout delay.
        assert [(h.item_id, round(h.heard_ms)) for h in cut] == [("a", 660 + 140)]

    def test_partial_last_frame_counts_only_its_real_audio(self) -> None:
        """A padded final frame adds only the audio it carries to the heard position."""
        core = PacerCore(lead_ms=0, playout_delay_ms=0)
        fill(core, frames("a", 1) + frames("a", 1, audio_ms=7))
        run_until_empty(core, T0)
        assert core.heard_ms(("a", 0), T0 + 0.039) == pytest.approx(27)

    def test_rejects_negative_settings(self) -> None:
        """Negative lead or delay is a configuration error."""
        with pytest.raises(ValueError, match="must be >= 0"):
            PacerCore(lead_ms=-1, playout_delay_ms=0)


@contextlib.asynccontextmanager
async def pacing_frames(pacer: FramePacer, count: int) -> AsyncIterator[None]:
    """The pacer running on the current loop with ``count`` frames of item "a" pushed."""
    task = asyncio.create_task(pacer.run())
    try:
        for frame in frames("a", count):
            pacer.push(frame)
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_frame_pacer_sends_in_real_time_and_flush_stops_a_batch() -> None:
    """On the real loop, frames go out paced; after flush nothing more is sent."""
    sent: list[tuple[float, str]] = []
    five_sent = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def send(message: str) -> None:
        sent.append((loop.time(), message))
        if len(sent) == 5:
            five_sent.set()

    pacer = FramePacer(send, lead_ms=0, playout_delay_ms=0)
    async with pacing_frames(pacer, 10):
        async with asyncio.timeout(2):
            await five_sent.wait()
        cut = pacer.flush()
        await asyncio.sleep(0.1)
    assert 5 <= len(sent) < 10
    assert [heard.item_id for heard in cut] == ["a"]
    spacing = sent[4][0] - sent[0][0]
    # Four 20 ms intervals: paced, not a burst (no upper bound: shared machines are noisy).
    assert spacing >= 0.07


def test_a_clock_of_whole_milliseconds_polls_once_per_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop's clock counts whole milliseconds and a timer's delay is rounded to one (under
    half a millisecond, the timer runs at once with the clock unchanged). Every wake-up the
    pacer asks for on such a clock releases a frame: none is polled for again and again until
    the clock ticks over."""

    def idle_polls(slack_s: float) -> int:
        monkeypatch.setattr(pacing, "RELEASE_SLACK_S", slack_s)
        core = PacerCore(lead_ms=40, playout_delay_ms=60)
        fill(core, frames("a", 200))
        now, idle = 1234.567, 0  # whole milliseconds, as uvloop's loop.time()
        for _ in range(100_000):
            out, wake = core.poll(now)
            idle += not out
            if wake is None:
                return idle
            # The timer, as uvloop sets it; one that runs at once runs until the clock ticks.
            now += max(round((wake - now) * 1000), 1) / 1000
        raise AssertionError("pacer never drained")

    assert idle_polls(pacing.RELEASE_SLACK_S) == 0
    assert idle_polls(0.0) > 0  # what the slack is for: the float grid lands past the clock


class CountingCore(PacerCore):
    """A pacing core that counts its polls."""

    polls = 0

    def poll(self, now: float) -> tuple[list[OutFrame], float | None]:
        self.polls += 1
        return super().poll(now)


def test_on_uvloop_the_pacer_polls_about_once_per_frame() -> None:
    """The same on the loop itself: the pacer's polls, counted while it sends 25 frames."""
    core = CountingCore(lead_ms=40, playout_delay_ms=60)
    sent: list[str] = []

    async def main() -> None:
        done = asyncio.Event()

        async def send(message: str) -> None:
            sent.append(message)
            if len(sent) == 25:
                done.set()

        pacer = FramePacer(send, lead_ms=40, playout_delay_ms=60)
        pacer.core = core
        async with pacing_frames(pacer, 25), asyncio.timeout(5):
            await done.wait()

    runtime.run(main(), "uvloop")
    assert len(sent) == 25
    # One poll per frame released on its own, one per push that woke it, and a few spare.
    assert core.polls <= 25 + 25 + 5
