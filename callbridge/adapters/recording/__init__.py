"""Call recordings: one self-contained folder per call, written as the call goes.

A recording holds everything needed to rebuild a call as a test scenario: what ACS sent (the
caller's audio with its timing, keypad digits), what the bridge sent back (the agent's audio per
item with its timing, ``StopAudio``), and a JSONL timeline of the protocol events on both sides,
transcripts, tool calls and barge-ins.

Folder layout (``<root>/<UTC start>_<call connection id>/``; ``.partial`` suffix until closed)::

    meta.json        call ids, profile, rates, formats, start time, callbridge version;
                     finalised at close (duration, byte counts, line counts, "complete")
    caller.wav       the caller's PCM16 mono as received from ACS, at the ACS rate
    agent.wav        the PCM16 mono the bridge sent to ACS, at the ACS rate
    timeline.jsonl   one JSON object per line: {"t", "side", "kind", ...}

``t`` is seconds on the monotonic clock since the recording started (``meta.monotonic_start``
is the clock's reading at ``t = 0``); lines are written in order, so ``t`` never decreases.
Audio never goes into the timeline: it is referenced by byte offset into a WAV file's data.

The WAV files are streamed: each is its 44-byte header followed by the audio as it arrives.
The header's sizes are patched at every periodic flush and at close, so even an abandoned
recording is a playable WAV up to its last flush. Nothing is copied or converted at close, so
closing costs the same for a two-hour call as for a short one.

Timing without a line per frame: a ``caller_audio`` line starts a *span* of ``caller.wav``
whose frames arrived back to back (the frame at byte ``o`` of a span arrived at
``t + (o - offset) / bytes_per_second``). A new span starts on the first frame, when ACS's
``silent`` flag or the frame size changes, and when a frame arrives more than
``CALLER_SYNC_TOLERANCE_S`` off that prediction (a gap, a stall, a burst), so a replay can
place every frame within that tolerance of its real arrival. ``agent_audio`` spans do the
same for ``agent.wav`` on the pacer's grid: one starts on each new item (or content part),
after ``StopAudio``, and when a frame leaves more than ``AGENT_LATE_S`` after the grid
predicts (a new talk spurt or a re-anchored pacer). Frames released early (the pacer's lead)
do not start a span, so ``start`` is the grid time the span's first frame was due, which may
differ from ``t``, the moment the line was written.

Timeline line kinds (``side``: ``acs``, ``voice_live`` or ``bridge``):

=================  ==========  ============================================================
kind               side        fields
=================  ==========  ============================================================
caller_audio       acs         offset, silent, frame_bytes
agent_audio        acs         offset, start, item_id, content_index [, response_id]
stop_audio         acs         agent_offset (bytes of agent.wav sent before StopAudio)
dtmf               acs         digit
transcript         voice_live  speaker ("caller" | "agent"), item_id, text
tool_call          voice_live  name, call_id, arguments (the model's JSON string)
tool_result        bridge      name, call_id, output (the JSON string returned to the model)
barge_in           bridge      item_id, content_index, heard_ms, audio_end_ms
                               [, received_ms, cancelled_response]
recording_closed   bridge      caller_bytes, agent_bytes
(any other)        any         whatever was passed to ``CallRecorder.event``
=================  ==========  ============================================================

Durability: files are written through ordinary buffers and flushed together every
``FLUSH_INTERVAL_S`` while audio flows (ACS streams frames, silent ones included, for the
whole call), so a crashed process loses at most about that much. ``fsync`` happens only at
close, which then renames ``<name>.partial`` to ``<name>`` atomically. A recording that could
not be written (a full disk) stops recording; the call itself goes on.

Privacy: a recording holds the caller's voice, the transcripts, the tools' arguments and
outputs, and the keypad digits the caller pressed. Digits may be a PIN or a card number; they
are recorded all the same, because a replay has to press them. Call ids and the profile name
identify the call; no phone number is recorded. Treat the recordings folder accordingly.
"""

from callbridge.adapters.recording.reader import CallerFrame, Recording, read_recording
from callbridge.adapters.recording.timeline import (
    AGENT_LATE_S,
    AGENT_WAV,
    CALLER_SYNC_TOLERANCE_S,
    CALLER_WAV,
    FLUSH_INTERVAL_S,
    FORMAT,
    FORMAT_VERSION,
    META,
    PARTIAL_SUFFIX,
    SAMPLE_WIDTH,
    TIMELINE,
    WAV_HEADER_BYTES,
    AgentAudioRecord,
    BargeInRecord,
    CallerAudioRecord,
    DtmfRecord,
    EventRecord,
    Side,
    Speaker,
    StopAudioRecord,
    TimelineRecord,
    ToolCallRecord,
    ToolResultRecord,
    TranscriptRecord,
)
from callbridge.adapters.recording.writer import CallRecorder

__all__ = [
    "AGENT_LATE_S",
    "AGENT_WAV",
    "CALLER_SYNC_TOLERANCE_S",
    "CALLER_WAV",
    "FLUSH_INTERVAL_S",
    "FORMAT",
    "FORMAT_VERSION",
    "META",
    "PARTIAL_SUFFIX",
    "SAMPLE_WIDTH",
    "TIMELINE",
    "WAV_HEADER_BYTES",
    "AgentAudioRecord",
    "BargeInRecord",
    "CallRecorder",
    "CallerAudioRecord",
    "CallerFrame",
    "DtmfRecord",
    "EventRecord",
    "Recording",
    "Side",
    "Speaker",
    "StopAudioRecord",
    "TimelineRecord",
    "ToolCallRecord",
    "ToolResultRecord",
    "TranscriptRecord",
    "read_recording",
]
