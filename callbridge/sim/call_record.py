"""What the simulated phone observed on one call: the ``CallRecord`` and its parts.

A call may run over several media sockets when the line drops and ACS opens a new one
(``callbridge.sim.phone.MediaDrop``): the record spans them all. What the caller heard is one
timeline across the sockets, each socket has its own record, and what the caller said while no
socket carried it is counted as lost.

All times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from callbridge.sim.mark_answers import MarkAnswer
from callbridge.sim.playout import Arrival, Spurt, StopRecord
from callbridge.sim.script import StepRecord

ClosedBy: TypeAlias = Literal["phone", "bridge", "timeout", "network"]
"""Who closed the media socket: the phone hung up after its script, the bridge closed it,
``max_duration_s`` ran out, or the network ended the call (``run(hangup=...)``: ACS ended it
because the app hung up or transferred it)."""

SocketEnd: TypeAlias = Literal["phone", "bridge", "timeout", "network", "dropped", "aborted"]
"""How one media socket ended: as the call ended (``ClosedBy``), or in a drop the test injected,
with a close frame (``dropped``) or without one (``aborted``)."""


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One media socket of the call."""

    opened_at: float
    closed_at: float
    closed_by: SocketEnd
    close_code: int | None
    """The WebSocket close code; None when the socket was aborted without a close frame."""


@dataclass(frozen=True, slots=True)
class RefusedRejoin:
    """A new media socket after a drop that the bridge refused or that could not be opened."""

    at: float
    error: str


@dataclass(slots=True)
class Stall:
    """A stretch in which the phone sent no frames on an open socket (``MediaStall``).

    Filled in while the call runs.
    """

    started_at: float
    """Nominal time of the first frame withheld."""
    ended_at: float | None = None
    """Nominal time of the first frame sent again; None if none was."""
    frames_withheld: int = 0
    voiced_ms: float = 0.0
    """What the caller said during the stall, never sent."""


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message from the bridge that ACS would not understand."""

    at: float
    reason: str
    sample: str
    """Its first 200 characters."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """Everything the phone observed during one call (times are ``time.monotonic()`` s)."""

    call_connection_id: str
    correlation_id: str
    sample_rate: int
    ws_opened_at: float
    """When the first media socket opened: the call's clock starts here."""
    ws_closed_at: float
    """When the call ended at the phone."""
    closed_by: ClosedBy
    """How the call ended (see ``sockets`` for each socket)."""
    close_code: int | None
    """Close code of the socket open when the call ended (1000 when the phone hung up
    normally); None when no socket was open then."""
    spurts: list[Spurt]
    stops: list[StopRecord]
    arrivals: list[Arrival]
    """Every ``AudioData`` message from the bridge, in order."""
    bad_message_count: int
    """Malformed or unknown messages from the bridge; a correct bridge sends none."""
    bad_messages: list[BadMessage]
    """The first few of them."""
    steps: list[StepRecord]
    frames_sent: int
    """Caller frames sent, over every socket."""
    silent_frames_sent: int
    late_frames: int
    """Caller frames sent more than a frame late: the phone's own loop was starved, so its
    timing figures for this call are suspect."""
    playout_delay_ms: float
    """The line's true playout delay (the phone's jitter-buffer fill): the ground truth a
    bridge's configured or measured playout delay is judged against."""
    mark_answers: list[MarkAnswer]
    """The phone's answers to the bridge's playback marks, in order (beta)."""
    caller_audio: npt.NDArray[np.int16] = field(repr=False)
    """What the caller's phone sent, sample-aligned on ``ws_opened_at`` (silence where a
    frame was lost to an outage or withheld by a stall): the caller's lines and, on a
    speakerphone (``Phone.echo``), the echo of what they heard. ``steps`` say when the lines
    were spoken."""
    heard_audio: npt.NDArray[np.int16] = field(repr=False)
    """What the caller heard, sample-aligned on ``ws_opened_at``."""
    sockets: list[SocketRecord] = field(default_factory=list)
    """Every media socket of the call, in order: one unless the line dropped."""
    refused_rejoins: list[RefusedRejoin] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    lost_voiced_ms: float = 0.0
    sent_frames: list[tuple[int, int]] = field(default_factory=list)
    """The 20 ms frame slots sent over a socket, as runs ``(first, last)`` of slot numbers
    (slot n is due ``n * 20 ms`` after ``ws_opened_at``)."""
    """What the caller said while no socket was open to carry it (stalls not included)."""

    @property
    def first_audio_heard_at(self) -> float | None:
        """When the caller started hearing the agent (None if it never did)."""
        return self.spurts[0].started_at if self.spurts else None

    @property
    def jitter_ms(self) -> list[float]:
        """Jitter samples of every spurt, in order."""
        return [sample for spurt in self.spurts for sample in spurt.jitter_ms]

    @property
    def underruns(self) -> int:
        """Underruns within spurts, over the whole call."""
        return sum(spurt.underruns for spurt in self.spurts)

    def write_stereo_wav(self, path: Path | str) -> None:
        """Write left = the caller as sent, right = what the caller heard, at the call's rate."""
        frames = max(len(self.caller_audio), len(self.heard_audio))
        stereo = np.zeros((frames, 2), dtype="<i2")
        stereo[: len(self.caller_audio), 0] = self.caller_audio
        stereo[: len(self.heard_audio), 1] = self.heard_audio
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(stereo.tobytes())
