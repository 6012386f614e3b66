"""Recorded calls as scenarios: replay a call recording against today's callbridge.

:func:`scenario_from_recording` rebuilds a call from its recording folder (see
:mod:`callbridge.adapters.recording`) as a :class:`~callbridge.sim.scenario.Scenario`: the same
caller, the same agent, and expectations that are what happened on the recorded call. Run through a
``LocalStack``, a change in callbridge's behaviour shows as a failed expectation::

    scenario = scenario_from_recording(Path("recordings/20261121T101500Z_4c1f0b00"))
    result = await stack.call(
        scenario.script,
        profile=scenario.profile,
        turns=scenario.turns,
        caller_transcripts=scenario.caller_transcripts,
    )
    assert check_expectations(scenario.expectations, result.report) == []

The replay's clock starts at the recorded caller's first frame: ACS starts streaming when the
media socket opens, and so does the simulated phone, so ``At`` times (seconds after the media
socket opened) are recording times less that first frame's.

**The caller** says exactly the audio ACS delivered, at the time it arrived:

* ``caller.wav`` is cut into ``Say`` lines of whole 20 ms frames, each started ``At`` its
  arrival time (on the phone's 20 ms grid). A line runs on while the audio arrived back to
  back; a new one starts after a gap in the audio. The phone streams every 20 ms, so the
  replayed audio cannot arrive in bursts as recorded audio may; each stretch is placed at the
  earliest time consistent with its arrival: no later than it arrived, nor later than what
  arrived after it allows (audio held up in a stall and then delivered in a burst is placed
  where it was spoken). Timing errors therefore never add up past one gap.
* Stretches ACS marked ``silent`` that hold only zeros are not said: the phone sends those
  silent frames itself, as ACS did. Any other audio, silent-flagged or not, is said as is.
* Keypad digits become ``Dtmf`` steps at their place in the caller's audio. Steps run in
  order and a line is done only once all of it has been sent, so a digit pressed while the
  caller's audio was being said splits that line in two: the audio before the digit, the
  digit, then the rest ``At`` the frame that followed the digit. Nothing is shifted; the
  phone sends the digit just before that frame, as ACS did.
* The caller hangs up ``At`` the end of their audio if they hung up. If the agent ended or
  transferred the call, the caller stays on the line ``end_grace_s`` longer, for the
  replayed agent to end it as it did. A call ended some other way (time limit, shutdown, the
  Voice Live session ending) or of unknown ending: the caller hangs up where their recorded
  audio ends.
* The caller's transcripts (``transcript`` lines of speaker ``caller``) are, in order, the
  emulator's transcripts of the caller's turns.

**The agent** plays one turn per response, in order (the emulator plays turn *n* as its *n*-th
response):

* A turn's audio is what the caller was sent of the response's items (``agent_item_pcm``),
  at the recording's rate; its transcript the items' ``transcript`` lines of speaker
  ``agent``.
* An interrupted item holds only what was played before ``StopAudio``. Its turn is padded
  with silence up to the ``received_ms`` of its barge-in (what Voice Live had generated), so
  the replayed agent is still talking where the caller cut in, rather than finishing early
  and leaving nothing to interrupt. Without ``received_ms``, ``BARGE_IN_PAD_MS`` is added.
* A tool call ends the turn of the response that made it. Responses are told apart by
  ``response_id`` where the recording gives one (on ``agent_audio`` lines, or on any event
  naming the item or call id with a response id; a ``tool_call`` record's own
  ``response_id`` once it has one); otherwise each agent item is a response, and a tool call
  belongs to the latest item if it came while that item was playing (within
  ``TOOL_CALL_SLACK_S`` of its last frame), else to a response that said nothing (the model
  called the tool without speaking).
* A response that said nothing (a tool call alone, or a ``response.created`` event without
  audio) is one 20 ms frame of silence: the emulator's turns need audio.
* Arguments that are not a JSON object (a model's malformed output) are replayed as ``{}``:
  the scripted agent does not depend on a tool's result.

**The profile**: the recording's ``audio_format`` and ``sample_rate`` (the ACS media rate),
the tools that were called plus ``end_call``, and ``tools_module`` from the argument, else
from ``meta.extra.tools_module``. Tools other than ``end_call`` and ``transfer_call`` need
one; without it the recording cannot be replayed (a ``ScenarioError`` names the tools).
``transfer_call`` transfers to ``DEFAULT_TRANSFER_TO``.

**The expectations** are what happened:

* ``barge_ins``: one per ``StopAudio`` the caller was sent, each whose cut was truncated with
  ``truncation_tolerance_ms`` (20 ms unless given).
* ``tools_called``: the tools called, in order.
* ``ended_by``: from the ``call_ended`` event's ``ended_by`` (callbridge's reason; none
  means the caller hung up): ``caller``, ``agent`` (``end_call``) or ``transfer``
  (``transfer_call``); other reasons are not checked. A closed recording without the event is
  judged from its tool calls: a last ``end_call`` not followed by a barge-in is the agent's
  ending, a ``transfer_call`` whose result says ``transferred`` a transfer, else the caller's.
* ``max_first_audio_ms``: the original first audio plus ``first_audio_margin_ms``. The
  recording holds when the bridge sent the first agent frame (its ``agent_audio`` line's
  ``start``, the pacer's due time); the caller heard it about ``playout_delay_ms`` later
  (``meta.extra``, else callbridge's default), which is what a call report measures. The
  margin absorbs what differs in a replay besides callbridge itself: the emulator's response
  delay replaces the real model's, and the loop's timing. A replay against the emulator is
  usually faster than the original against Voice Live, so this catches a callbridge that got
  slower by more than that difference, not a few milliseconds.
* ``protocol_violations`` 0 and ``stale_audio_ms`` 0: a correct bridge has none.

**A partial recording** (``.partial``, or never closed: the process died) replays as far as
it got: its caller hangs up where the recorded audio ends, and the expectations are only about
what it holds (its barge-ins and tool calls); ``ended_by`` is checked only if the
``call_ended`` event made it to disk. A recording in which the agent never spoke gets one
silent turn, so the emulator has something to play.

Limits: the replayed agent answers with the emulator's timing (``response_delay_ms``, the
stream speed), not the original model's, while the caller keeps the original timing; a caller
line that answered the agent may thus come a little earlier or later relative to the agent
than it did. A replay runs in real time: a runner must let the phone stay on as long as the
script (``callbridge replay`` does).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeGuard, get_args

from callbridge.adapters.recording import (
    AGENT_WAV,
    CALLER_SYNC_TOLERANCE_S,
    CALLER_WAV,
    META,
    PARTIAL_SUFFIX,
    SAMPLE_WIDTH,
    TIMELINE,
    AgentAudioRecord,
    BargeInRecord,
    CallerAudioRecord,
    DtmfRecord,
    EventRecord,
    Recording,
    StopAudioRecord,
    TimelineRecord,
    ToolCallRecord,
    ToolResultRecord,
    TranscriptRecord,
    read_recording,
)
from callbridge.core.profiles import BUILTIN_TOOLS, AudioFormat, MediaRate
from callbridge.core.settings import PacingSettings
from callbridge.sim.scenario import (
    DEFAULT_RESPONSE_DELAY_MS,
    DEFAULT_STREAM_SPEED,
    DEFAULT_TRANSFER_TO,
    BargeInExpectation,
    EndedBy,
    Expectations,
    Scenario,
    ScenarioError,
)
from callbridge.sim.script import FRAME_MS, FRAME_S, At, Clip, Dtmf, Hangup, Say, Step
from callbridge.sim.voicelive.audio import AgentTurn, ToolCall

DEFAULT_TRUNCATION_TOLERANCE_MS: Final = 20.0
"""The most a replayed barge-in's ``audio_end_ms`` may be off what the caller heard."""

DEFAULT_FIRST_AUDIO_MARGIN_MS: Final = 500.0
"""Added to the original first audio for ``max_first_audio_ms`` (see the module docstring)."""

DEFAULT_END_GRACE_S: Final = 5.0
"""How long past the recorded end the caller stays on when the agent ended the call."""

BARGE_IN_PAD_MS: Final = 1000.0
"""Silence added to an interrupted item whose barge-in has no ``received_ms``."""

TOOL_CALL_SLACK_S: Final = 0.5
"""Without response ids, a tool call this soon after an item's last frame was sent belongs
to that item's response. A tool the model calls without speaking comes after the caller's
next turn, which is longer than this (the caller speaks, then Voice Live waits for silence)."""

GAP_TOLERANCE_S: Final = CALLER_SYNC_TOLERANCE_S
"""Caller audio arriving more than this after the line being said would end starts a new
line ``At`` its own time (the recorder's own tolerance for a span)."""

ENDED_BY: Final[Mapping[str | None, EndedBy]] = {
    None: "caller",
    "caller": "caller",
    "end_call": "agent",
    "transfer_call": "transfer",
}
"""``call_ended``'s ``ended_by`` (``CallStats.ended_by``) as a scenario's ``ended_by``; the
bridge's other reasons (``time_limit``, ``shutdown``, ...) are not expectations."""

_CALL_ENDED: Final = "call_ended"
_RESPONSE_CREATED: Final = "response.created"
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_SPEAKERS: Final = ("caller", "agent")


def scenario_from_recording(
    path: Path,
    *,
    truncation_tolerance_ms: float = DEFAULT_TRUNCATION_TOLERANCE_MS,
    first_audio_margin_ms: float = DEFAULT_FIRST_AUDIO_MARGIN_MS,
    end_grace_s: float = DEFAULT_END_GRACE_S,
    tools_module: str | None = None,
) -> Scenario:
    """The scenario that replays the call recorded in the folder ``path``.

    The caller says what ACS delivered, when it arrived; the agent replays its responses;
    the expectations are what happened on the recorded call (see the module docstring for
    every rule). A partial recording (the process died mid-call) replays as far as it got,
    with expectations only about what it holds.

    Args:
        truncation_tolerance_ms: for every barge-in, the most ``|audio_end_ms - heard_ms|``
            may be.
        first_audio_margin_ms: added to the original first audio for ``max_first_audio_ms``.
        end_grace_s: how long past the recorded end the caller waits for the agent to hang
            up or transfer, when that is how the call ended.
        tools_module: the module defining the call's user tools, overriding the recording's
            ``meta.extra.tools_module`` (needed when the recording does not name it).

    Raises:
        ScenarioError: ``path`` is not a recording, is corrupt, or used tools that cannot be
            replayed; each line names the file and the problem.
    """
    folder = Path(path)
    recording = _read(folder)
    return _Replay(
        recording,
        truncation_tolerance_ms=truncation_tolerance_ms,
        first_audio_margin_ms=first_audio_margin_ms,
        end_grace_s=end_grace_s,
        tools_module=tools_module,
    ).scenario()


# --- Reading and checking the recording ------------------------------------------------------


def _read(folder: Path) -> Recording:
    """The recording in ``folder``, checked as far as a replay relies on it."""
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "a file, not a recording folder"
        raise ScenarioError([f"{folder}: not a callbridge recording: {what}"])
    meta_path = folder / META
    if not meta_path.is_file():
        raise ScenarioError(
            [f"{folder}: not a callbridge recording: it has no {META} (nor, so, any call)"]
        )
    try:
        recording = read_recording(folder)
    except FileNotFoundError as exc:
        missing = exc.filename or folder
        raise ScenarioError([f"{missing}: missing: a recording has {_FILES}"]) from exc
    except OSError as exc:
        raise ScenarioError(
            [f"{exc.filename or folder}: cannot read: {exc.strerror or exc}"]
        ) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{meta_path}: corrupt: not UTF-8 text ({exc.reason})"]) from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError([f"{meta_path}: corrupt: not JSON ({exc})"]) from exc
    except (TypeError, KeyError, AttributeError) as exc:
        # Audio lines whose offsets are not numbers (the reader adds up their lengths).
        raise ScenarioError(
            [f"{folder / TIMELINE}: corrupt: an audio line's offset is not a byte count ({exc})"]
        ) from exc
    except ValueError as exc:
        message = str(exc)
        raise ScenarioError(
            [message if message.startswith(str(folder)) else f"{folder}: {message}"]
        ) from exc
    problems = _meta_problems(recording.meta, meta_path)
    problems += _record_problems(recording.records, folder / TIMELINE)
    if not problems and not recording.records:
        problems.append(
            f"{folder / TIMELINE}: nothing was recorded (no audio, no events): there is no call"
            " to replay"
        )
    if problems:
        raise ScenarioError(problems)
    return recording


_FILES: Final = f"{META}, {CALLER_WAV}, {AGENT_WAV} and {TIMELINE}"


def _meta_problems(meta: Mapping[str, Any], path: Path) -> list[str]:
    problems: list[str] = []
    rate = meta.get("sample_rate")
    rates: tuple[int, ...] = get_args(MediaRate)
    if not _is_int(rate) or rate not in rates:
        problems.append(
            f"{path}: sample_rate: must be an ACS media rate"
            f" ({' or '.join(map(str, rates))}), not {rate!r}"
        )
    audio_format = meta.get("audio_format")
    formats: tuple[str, ...] = get_args(AudioFormat)
    if audio_format not in formats:
        problems.append(
            f"{path}: audio_format: must be {' or '.join(formats)}, not {audio_format!r}"
        )
    if meta.get("sample_width", SAMPLE_WIDTH) != SAMPLE_WIDTH or meta.get("channels", 1) != 1:
        problems.append(f"{path}: the audio must be PCM16 mono")
    return problems


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_key(value: str) -> bool:
    return len(value) == 1 and value.upper() in _DTMF_KEYS


_Check = tuple[str, str, Any]
"""A field, what it must be, and a predicate."""

_CHECKS: Final[Mapping[type, tuple[_Check, ...]]] = {
    CallerAudioRecord: (
        ("offset", "an even byte offset", lambda v: _is_int(v) and v >= 0 and v % 2 == 0),
        ("silent", "true or false", lambda v: isinstance(v, bool)),
        ("frame_bytes", "a byte count", lambda v: _is_int(v) and v >= 0),
    ),
    AgentAudioRecord: (
        ("offset", "a byte offset", lambda v: _is_int(v) and v >= 0),
        ("start", "a time in seconds", _is_number),
        ("item_id", "an item id", lambda v: isinstance(v, str) and v != ""),
        ("content_index", "a content index", lambda v: _is_int(v) and v >= 0),
        ("response_id", "a response id", lambda v: v is None or isinstance(v, str)),
    ),
    StopAudioRecord: (("agent_offset", "a byte offset", lambda v: _is_int(v) and v >= 0),),
    DtmfRecord: (
        ("digit", "a keypad key (0-9, *, #, A-D)", lambda v: isinstance(v, str) and _is_key(v)),
    ),
    TranscriptRecord: (
        ("speaker", "caller or agent", lambda v: v in _SPEAKERS),
        ("item_id", "an item id", lambda v: isinstance(v, str)),
        ("text", "text", lambda v: isinstance(v, str)),
    ),
    ToolCallRecord: (
        ("name", "a tool name", lambda v: isinstance(v, str) and v != ""),
        ("call_id", "a call id", lambda v: isinstance(v, str)),
    ),
    ToolResultRecord: (
        ("name", "a tool name", lambda v: isinstance(v, str)),
        ("call_id", "a call id", lambda v: isinstance(v, str)),
    ),
    BargeInRecord: (
        ("item_id", "an item id", lambda v: isinstance(v, str) and v != ""),
        ("content_index", "a content index", lambda v: _is_int(v) and v >= 0),
        ("heard_ms", "milliseconds", _is_number),
        ("received_ms", "milliseconds", lambda v: v is None or _is_number(v)),
    ),
}


def _record_problems(records: Sequence[TimelineRecord], path: Path) -> list[str]:
    """Typed lines whose fields a replay cannot use (the reader checks only their names)."""
    problems: list[str] = []
    for record in records:
        kind = getattr(record, "kind", None) or _KINDS.get(type(record), type(record).__name__)
        if not math.isfinite(record.t):
            problems.append(f"{path}: a {kind} line: t must be a finite time, not {record.t!r}")
            continue
        for name, what, ok in _CHECKS.get(type(record), ()):
            value = getattr(record, name)
            if not ok(value):
                problems.append(
                    f"{path}: the {kind} line at t={record.t:g} s: {name} must be {what},"
                    f" not {value!r}"
                )
    return problems


_KINDS: Final[Mapping[type, str]] = {
    CallerAudioRecord: "caller_audio",
    AgentAudioRecord: "agent_audio",
    StopAudioRecord: "stop_audio",
    DtmfRecord: "dtmf",
    TranscriptRecord: "transcript",
    ToolCallRecord: "tool_call",
    ToolResultRecord: "tool_result",
    BargeInRecord: "barge_in",
}


# --- The caller ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Placed:
    """A span of ``caller.wav`` placed on the replay's timeline (recording seconds)."""

    offset: int
    length: int
    at: float
    silent: bool

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(slots=True)
class _Line:
    """Caller audio said back to back from ``at`` (recording seconds)."""

    start: int
    end: int
    at: float


@dataclass(frozen=True, slots=True)
class _Digit:
    digit: str
    pos: int
    """Bytes of ``caller.wav`` that arrived before it."""
    at: float


class _CallerAudio:
    """Where each byte of ``caller.wav`` goes on the replay's timeline."""

    def __init__(self, recording: Recording) -> None:
        self.pcm = recording.caller_pcm
        self.rate = recording.sample_rate
        self.bps = float(recording.bytes_per_second)
        self.frame_bytes = self.rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        spans = [span for span in recording.of(CallerAudioRecord) if span.length > 0]
        # Backwards: nothing is placed later than it arrived, nor later than the audio after
        # it allows (a burst after a stall goes back to where it was spoken).
        placed: list[_Placed] = []
        later = math.inf
        for span in reversed(spans):
            at = min(span.t, later - span.length / self.bps)
            placed.append(_Placed(span.offset, span.length, at, span.silent))
            later = at
        placed.reverse()
        self.spans = placed
        self._offsets = [span.offset for span in placed]

    @property
    def origin(self) -> float | None:
        """When the first caller frame arrived: the replay's time 0."""
        return self.spans[0].at if self.spans else None

    @property
    def end(self) -> float | None:
        """When the last caller frame ended."""
        if not self.spans:
            return None
        last = self.spans[-1]
        return last.at + last.length / self.bps

    def start_after(self, pos: int) -> float:
        """When the byte at ``pos`` was placed (inf past the end)."""
        index = bisect.bisect_right(self._offsets, pos) - 1
        if index < 0:
            return self.spans[0].at if self.spans else math.inf
        span = self.spans[index]
        if pos >= span.end:
            return math.inf
        return span.at + (pos - span.offset) / self.bps

    def end_before(self, pos: int) -> float:
        """When the audio before ``pos`` ended (-inf before the start)."""
        index = bisect.bisect_left(self._offsets, pos) - 1
        if index < 0:
            return -math.inf
        span = self.spans[index]
        return span.at + (min(pos, span.end) - span.offset) / self.bps

    def lines(self) -> list[_Line]:
        """The audio the phone has to say: back-to-back runs, without the zero silent spans
        (the phone's own silent frames)."""
        lines: list[_Line] = []
        for span in self.spans:
            if span.silent and self.pcm.count(0, span.offset, span.end) == span.length:
                continue
            last = lines[-1] if lines else None
            if (
                last is not None
                and last.end == span.offset
                and span.at <= last.at + (last.end - last.start) / self.bps + GAP_TOLERANCE_S
            ):
                last.end = span.end
            else:
                lines.append(_Line(span.offset, span.end, span.at))
        return lines

    def digits(self, records: Sequence[TimelineRecord]) -> list[_Digit]:
        """Each keypad digit with its place in the caller's audio: the frames that arrived
        before it (by time, within the span it came in), and its time there."""
        digits: list[_Digit] = []
        span: CallerAudioRecord | None = None
        for record in records:
            if isinstance(record, CallerAudioRecord) and record.length > 0:
                span = record
            elif isinstance(record, DtmfRecord):
                if span is None:
                    pos = 0
                else:
                    step = span.frame_bytes or self.frame_bytes
                    frames = max(0, round((record.t - span.t) * self.bps / step))
                    pos = span.offset + min(frames * step, span.length)
                pos -= pos % SAMPLE_WIDTH
                at = min(max(record.t, self.end_before(pos)), self.start_after(pos))
                digits.append(_Digit(record.digit.upper(), pos, at))
        return digits


def _grid(seconds: float) -> float:
    """A time on the phone's 20 ms frame grid (the phone acts on whole frames only)."""
    return round(round(max(seconds, 0.0) / FRAME_S) * FRAME_S, 6)


def _caller_script(
    audio: _CallerAudio, digits: Sequence[_Digit], origin: float
) -> tuple[list[Step], float]:
    """The caller's ``Say`` and ``Dtmf`` steps in order, and when the last one ends (replay
    seconds)."""
    steps: list[tuple[int, int, int, Step]] = []
    """(position in caller.wav, digits before audio, sequence, step)"""
    inside: dict[int, float] = {}
    end = 0.0
    for line in audio.lines():
        start = _grid(line.at - origin)
        cuts = sorted({d.pos for d in digits if line.start < d.pos < line.end})
        bounds = [line.start, *cuts, line.end]
        for a, b in itertools.pairwise(bounds):
            at = round(start + (a - line.start) / audio.bps, 6)
            if a != line.start:
                inside[a] = at
            clip = Clip(audio.pcm[a:b], audio.rate)
            steps.append((a, 1, len(steps), Say(clip, At(at))))
        end = max(end, start + (line.end - line.start) / audio.bps)
    for digit in digits:
        at = inside.get(digit.pos, _grid(digit.at - origin))
        steps.append((digit.pos, 0, len(steps), Dtmf(digit.digit, At(at))))
        end = max(end, at)
    steps.sort(key=lambda entry: entry[:3])
    return [step for *_, step in steps], end


# --- The agent -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Response:
    """One response of the recorded call, as far as the recording shows it."""

    t: float
    parts: list[tuple[str, int]] = field(default_factory=list)
    """Its audio, as (item id, content index), in order."""
    sent_until: float = -math.inf
    """When its last audio frame was sent."""
    tool: ToolCallRecord | None = None


class _Agent:
    """The recorded call's responses, in order."""

    def __init__(self, recording: Recording, timeline: Path) -> None:
        self._recording = recording
        self._timeline = timeline
        self.bps = float(recording.bytes_per_second)
        self.rate = recording.sample_rate
        item_response, call_response, created = _response_links(recording.of(EventRecord))
        spans = [span for span in recording.of(AgentAudioRecord) if span.length > 0]
        keys = [span.response_id or item_response.get(span.item_id) for span in spans]
        linked = any(key is not None for key in keys)
        responses: dict[str, _Response] = {}
        if linked:
            for t, response_id in created:
                responses.setdefault(response_id, _Response(t))
        for span, key in zip(spans, keys, strict=True):
            name = key or f"item {span.item_id}"
            response = responses.setdefault(name, _Response(span.t))
            response.t = min(response.t, span.t)
            part = (span.item_id, span.content_index)
            if part not in response.parts:
                response.parts.append(part)
            response.sent_until = max(response.sent_until, span.t + span.length / self.bps)
        for call in recording.of(ToolCallRecord):
            self._attach(responses, call, call_response)
        self.responses = sorted(responses.values(), key=lambda response: response.t)

    def _attach(
        self,
        responses: dict[str, _Response],
        call: ToolCallRecord,
        call_response: Mapping[str, str],
    ) -> None:
        own = getattr(call, "response_id", None)
        response_id = own if isinstance(own, str) else call_response.get(call.call_id)
        if response_id is not None:
            response = responses.setdefault(response_id, _Response(call.t))
            if response.tool is not None:
                raise ScenarioError(
                    [
                        f"{self._timeline}: response {response_id} called {response.tool.name}"
                        f" and {call.name}: a replayed agent turn makes one tool call"
                    ]
                )
            response.tool = call
            return
        started = [r for r in responses.values() if r.t <= call.t]
        latest = max(started, key=lambda response: response.t, default=None)
        if (
            latest is not None
            and latest.tool is None
            and call.t <= latest.sent_until + TOOL_CALL_SLACK_S
        ):
            latest.tool = call
        else:
            responses[f"tool {call.call_id} {call.t}"] = _Response(call.t, tool=call)

    def turns(self) -> list[AgentTurn]:
        """One turn per response; a silent frame for one that said nothing."""
        recording = self._recording
        texts: dict[str, list[str]] = {}
        for line in recording.of(TranscriptRecord):
            if line.speaker == "agent":
                texts.setdefault(line.item_id, []).append(line.text)
        padded: dict[tuple[str, int], float] = {}
        for barge_in in recording.of(BargeInRecord):
            key = (barge_in.item_id, barge_in.content_index)
            played_ms = len(recording.agent_item_pcm(*key)) / self.bps * 1000
            target = (
                barge_in.received_ms
                if barge_in.received_ms is not None
                else played_ms + BARGE_IN_PAD_MS
            )
            padded[key] = max(padded.get(key, 0.0), float(target))
        turns: list[AgentTurn] = []
        for response in self.responses:
            audio = b"".join(
                _pad(recording.agent_item_pcm(*part), padded.get(part), self.rate)
                for part in response.parts
            )
            transcript = " ".join(
                text
                for item in dict.fromkeys(item for item, _ in response.parts)
                for text in texts.get(item, [])
            )
            turns.append(
                AgentTurn(
                    audio=audio or _silence(self.rate),
                    sample_rate=self.rate,
                    transcript=transcript,
                    tool_call=_tool_call(response.tool) if response.tool is not None else None,
                )
            )
        return turns or [AgentTurn(_silence(self.rate), self.rate, "")]


def _response_links(
    events: Iterable[EventRecord],
) -> tuple[dict[str, str], dict[str, str], list[tuple[float, str]]]:
    """From recorded protocol events: item id -> response id, call id -> response id, and
    the responses created, in order."""
    item_response: dict[str, str] = {}
    call_response: dict[str, str] = {}
    created: list[tuple[float, str]] = []
    for event in events:
        fields = event.fields
        response_id = fields.get("response_id")
        body = fields.get("response")
        if not isinstance(response_id, str) and isinstance(body, dict):
            response_id = body.get("id")
        if not isinstance(response_id, str):
            continue
        if event.kind == _RESPONSE_CREATED:
            created.append((event.t, response_id))
        item = fields.get("item")
        item_id = fields.get("item_id")
        if not isinstance(item_id, str) and isinstance(item, dict):
            item_id = item.get("id")
        if isinstance(item_id, str):
            item_response.setdefault(item_id, response_id)
        call_id = fields.get("call_id")
        if not isinstance(call_id, str) and isinstance(item, dict):
            call_id = item.get("call_id")
        if isinstance(call_id, str):
            call_response.setdefault(call_id, response_id)
    return item_response, call_response, created


def _pad(pcm: bytes, to_ms: float | None, rate: int) -> bytes:
    """``pcm`` with silence added up to ``to_ms`` (for an interrupted item)."""
    if to_ms is None:
        return pcm
    samples = math.ceil(to_ms * rate / 1000 - 1e-9)
    return pcm.ljust(samples * SAMPLE_WIDTH, b"\0")


def _silence(rate: int) -> bytes:
    return bytes(rate * FRAME_MS // 1000 * SAMPLE_WIDTH)


def _tool_call(record: ToolCallRecord) -> ToolCall:
    arguments: object = record.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    return ToolCall(record.name, arguments if isinstance(arguments, dict) else {})


# --- The scenario --------------------------------------------------------------------------


class _Replay:
    def __init__(
        self,
        recording: Recording,
        *,
        truncation_tolerance_ms: float,
        first_audio_margin_ms: float,
        end_grace_s: float,
        tools_module: str | None,
    ) -> None:
        self.recording = recording
        self.folder = recording.path
        self.meta = recording.meta
        extra = self.meta.get("extra")
        self.extra: Mapping[str, Any] = extra if isinstance(extra, dict) else {}
        self.tolerance = truncation_tolerance_ms
        self.margin = first_audio_margin_ms
        self.grace = end_grace_s
        self.tools_module = tools_module

    def scenario(self) -> Scenario:
        recording = self.recording
        caller = _CallerAudio(recording)
        origin = caller.origin if caller.origin is not None else 0.0
        digits = caller.digits(recording.records)
        script, said_until = _caller_script(caller, digits, origin)
        agent = _Agent(recording, self.folder / TIMELINE)
        tools_called = tuple(call.name for call in recording.of(ToolCallRecord))
        tools = tuple(dict.fromkeys((*tools_called, "end_call")))
        module = self.module(tools)
        ended_by = self.ended_by()
        end = said_until
        if caller.end is not None:
            end = max(end, caller.end - origin)
        elif recording.records:
            end = max(end, recording.records[-1].t - origin)
        hang_up_at = _grid(end) + (self.grace if ended_by in ("agent", "transfer") else 0.0)
        script.append(Hangup(At(round(hang_up_at, 6))))
        name = self.folder.name.removesuffix(PARTIAL_SUFFIX)
        return Scenario(
            name=name,
            path=self.folder,
            description=self.description(),
            audio_format="pcm16" if self.meta["audio_format"] == "pcm16" else "g711_ulaw",
            media_rate=24000 if recording.sample_rate == 24000 else 16000,
            script=script,
            turns=agent.turns(),
            tools=tools,
            tools_module=module,
            transfer_to=DEFAULT_TRANSFER_TO if "transfer_call" in tools else None,
            response_delay_ms=DEFAULT_RESPONSE_DELAY_MS,
            stream_speed=DEFAULT_STREAM_SPEED,
            expectations=Expectations(
                barge_ins=self.barge_ins(),
                tools_called=tools_called,
                ended_by=ended_by,
                max_first_audio_ms=self.max_first_audio_ms(origin),
                stale_audio_ms=0.0,
                protocol_violations=0,
            ),
            caller_transcripts=[
                line.text for line in recording.of(TranscriptRecord) if line.speaker == "caller"
            ],
        )

    def description(self) -> str:
        meta = self.meta
        text = (
            f"Replay of call {meta.get('call_connection_id')} (profile {meta.get('profile')}),"
            f" recorded {meta.get('started_at')} with callbridge {meta.get('callbridge_version')}"
        )
        if self.recording.partial:
            text += "; a partial recording: the call was replayed as far as it was recorded"
        return text

    def module(self, tools: Sequence[str]) -> str | None:
        """The tools module the replay needs, if any.

        Raises:
            ScenarioError: user tools were called and no module is known, or it is no module
                name.
        """
        module = self.tools_module
        if module is None:
            recorded = self.extra.get("tools_module", self.meta.get("tools_module"))
            module = recorded if isinstance(recorded, str) and recorded else None
        user = [name for name in tools if name not in BUILTIN_TOOLS]
        if module is not None and not all(part.isidentifier() for part in module.split(".")):
            raise ScenarioError(
                [f"{self.folder / META}: tools_module: {module!r} is not a Python module name"]
            )
        if user and module is None:
            names = ", ".join(f'"{name}"' for name in user)
            raise ScenarioError(
                [
                    f"{self.folder / META}: the call used {names}, which"
                    f" {'is not a built-in tool' if len(user) == 1 else 'are not built-in tools'}"
                    f" ({', '.join(BUILTIN_TOOLS)}), and the recording does not name the"
                    " tools_module that defines them (meta.extra.tools_module): pass"
                    " tools_module= to replay it"
                ]
            )
        return module if user else None

    def ended_by(self) -> EndedBy | None:
        """How the call ended, when the recording tells and a replay can end it so."""
        recording = self.recording
        ended = [event for event in recording.of(EventRecord) if event.kind == _CALL_ENDED]
        if ended:
            reason = ended[-1].fields.get("ended_by")
            return ENDED_BY.get(reason) if reason is None or isinstance(reason, str) else None
        if recording.partial:
            return None
        calls = recording.of(ToolCallRecord)
        if not calls:
            return "caller"
        last = calls[-1]
        if last.name == "end_call":
            barged = any(b.t > last.t for b in recording.of(BargeInRecord))
            return "caller" if barged else "agent"
        if last.name == "transfer_call":
            results = [r for r in recording.of(ToolResultRecord) if r.call_id == last.call_id]
            if results and "transferred" in str(results[-1].output):
                return "transfer"
        return "caller"

    def barge_ins(self) -> tuple[BargeInExpectation, ...]:
        """One per ``StopAudio``; a truncation tolerance for each that truncated something."""
        stops: list[bool] = []
        """Per StopAudio: was a barge-in (a truncate) recorded after it?"""
        loose: list[float] = []
        for record in self.recording.records:
            if isinstance(record, StopAudioRecord):
                stops.append(False)
            elif isinstance(record, BargeInRecord):
                if stops:
                    stops[-1] = True
                elif record.t not in loose:
                    loose.append(record.t)
        # A recording with truncates but no StopAudio lines: one barge-in per moment.
        truncated = [*stops, *(True for _ in loose)] if stops or loose else []
        return tuple(
            BargeInExpectation(truncation_tolerance_ms=self.tolerance if cut else None)
            for cut in truncated
        )

    def max_first_audio_ms(self, origin: float) -> float | None:
        spans = [span for span in self.recording.of(AgentAudioRecord) if span.length > 0]
        if not spans:
            return None
        first = min(spans, key=lambda span: span.t)
        delay = self.extra.get("playout_delay_ms")
        playout_ms = float(delay) if _is_number(delay) else PacingSettings().playout_delay_ms
        heard_ms = max(0.0, (first.start - origin) * 1000) + playout_ms
        return round(heard_ms + self.margin, 1)
