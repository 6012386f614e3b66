"""The caller's microphone: one 20 ms frame at a time, in real time, as the script says.

``Microphone`` sends a frame every 20 ms on a drift-free deadline clock, silence included and
marked, with the keys the caller pressed in that slot. The script (``callbridge.sim.script``)
decides what each slot holds from what the caller has heard so far (``callbridge.sim.playout``).
A frame due while the line has no socket is lost; one due in a ``MediaStall`` is withheld. The
caller's audio as sent keeps silence in their place, so it stays sample-aligned on the call's
opening. On a speakerphone (``callbridge.sim.echo``) each frame also carries the echo of what the
phone played, and a frame is marked silent only when it holds neither a line nor any echo.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from callbridge.sim.call_record import Stall
from callbridge.sim.echo import Echo, EchoPath, mix
from callbridge.sim.media_faults import MediaFault, MediaStall
from callbridge.sim.media_messages import audio_message, dtmf_message, frame_timestamp
from callbridge.sim.phone_line import PhoneLine
from callbridge.sim.playout import Playout
from callbridge.sim.script import (
    FRAME_MS,
    FRAME_S,
    TIME_SLACK_S,
    ScriptRunner,
    Step,
    StepRecord,
    Tick,
)


class Microphone:
    """What the caller sends on one call, over whichever socket the line has open."""

    def __init__(
        self,
        line: PhoneLine,
        playout: Playout,
        *,
        script: Sequence[Step],
        sample_rate: int,
        frame_bytes: int,
        participant_raw_id: str,
        hangup_after_s: float,
        faults: Sequence[MediaFault],
        opened_at: float,
        echo: Echo | None,
    ) -> None:
        self._line = line
        self._playout = playout
        self._participant_raw_id = participant_raw_id
        self._hangup_after_s = hangup_after_s
        self._stall_faults = [f for f in faults if isinstance(f, MediaStall)]
        self._opened_at = opened_at
        self._wall_opened_at = datetime.now(UTC)  # ACS stamps frames with wall-clock UTC
        self._silence = bytes(frame_bytes)
        self._silence_b64 = base64.b64encode(self._silence).decode("ascii")
        self._runner = ScriptRunner(script, sample_rate=sample_rate, opened_at=opened_at)
        self._frame_samples = frame_bytes // 2
        self._echo = (
            None
            if echo is None
            else EchoPath(echo, playout, sample_rate=sample_rate, opened_at=opened_at)
        )
        self._sent = bytearray()  # the caller's audio as sent, silence included
        self._lost_frames = 0
        self.frames_sent = 0
        """Frames sent, over every socket."""
        self.silent_frames = 0
        self.late_frames = 0
        """Frames sent more than a frame late."""
        self.stalls: list[Stall] = []
        self.sent_runs: list[tuple[int, int]] = []
        """The frame slots sent over a socket, as runs of slot numbers ``(first, last)``."""

    @property
    def steps(self) -> list[StepRecord]:
        """When each step of the script was armed, fired and done."""
        return self._runner.records

    @property
    def lost_voiced_ms(self) -> float:
        """What the caller said while no socket was open to carry it."""
        return float(self._lost_frames * FRAME_MS)

    def caller_audio(self) -> npt.NDArray[np.int16]:
        """The caller's audio as sent, sample-aligned on the call's opening."""
        return np.frombuffer(bytes(self._sent), dtype="<i2").astype(np.int16)

    async def run(self) -> None:
        """Send frames until the caller hangs up: at a ``Hangup`` step, or ``hangup_after_s``
        after the script's last step."""
        hangup_after = self._hangup_after_s
        frame = 0
        while True:
            # Deadlines come from the frame count, so neither sleep overshoot nor float
            # accumulation can make the stream drift from real time.
            due = self._opened_at + frame * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now - due > FRAME_S:
                self.late_frames += 1
            self._playout.advance(now)
            tick = self._runner.tick(due, self._playout)
            if tick.hangup:
                return
            await self._send_frame(frame, due, tick)
            done_at = self._runner.done_at
            if done_at is not None and due + FRAME_S >= done_at + hangup_after - TIME_SLACK_S:
                return
            frame += 1

    async def _send_frame(self, frame: int, due: float, tick: Tick) -> None:
        """Send one frame slot's keys and audio, unless no socket or a stall withholds them."""
        is_open = self._line.is_open
        stall = self._stall_at(due)
        if not is_open or stall is not None:
            self._sent += self._silence
            voiced = tick.pcm is not None
            if not is_open:
                self._lost_frames += voiced
            elif stall is not None:
                stall.frames_withheld += 1
                stall.voiced_ms += FRAME_MS * voiced
            return
        stamp = frame_timestamp(self._wall_opened_at, frame)
        audio = self._audio_message(stamp, self._picked_up(frame, due, tick.pcm))
        keys = [dtmf_message(stamp, self._participant_raw_id, digit) for digit in tick.digits]
        if await self._line.send_frame([*keys, audio]):
            runs = self.sent_runs
            if runs and runs[-1][1] == frame - 1:
                runs[-1] = (runs[-1][0], frame)
            else:
                runs.append((frame, frame))

    def _stall_at(self, due: float) -> Stall | None:
        """The stall that withholds the frame due at ``due``, if any; keeps the stalls' record."""
        offset = due - self._opened_at
        stalled = any(
            offset >= f.at_s - TIME_SLACK_S
            and (f.for_s is None or offset < f.at_s + f.for_s - TIME_SLACK_S)
            for f in self._stall_faults
        )
        current = self.stalls[-1] if self.stalls and self.stalls[-1].ended_at is None else None
        if stalled and current is None:
            current = Stall(started_at=due)
            self.stalls.append(current)
        elif not stalled and current is not None:
            current.ended_at = due
            current = None
        return current

    def _picked_up(self, frame: int, due: float, line: bytes | None) -> bytes | None:
        """What the microphone picks up in frame slot ``frame``: the caller's line plus the
        echo, or None when neither makes a sound."""
        if self._echo is None:
            return line
        echo = self._echo.frame(frame * self._frame_samples, self._frame_samples, at=due)
        if not echo.any():
            return line
        return mix(line, echo)

    def _audio_message(self, stamp: str, pcm: bytes | None) -> str:
        self.frames_sent += 1
        if pcm is None:
            self.silent_frames += 1
            self._sent += self._silence
            data = self._silence_b64
        else:
            self._sent += pcm
            data = base64.b64encode(pcm).decode("ascii")
        return audio_message(stamp, self._participant_raw_id, data, silent=pcm is None)
