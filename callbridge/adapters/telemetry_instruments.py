"""The instruments callbridge records: every metric's name, unit and description, and the tracer.

``callbridge.adapters.telemetry`` records through them; this module is their catalogue, what a
dashboard or an alert is built from. OpenTelemetry is optional (the ``azure`` extra), so its
API is imported only when the instruments are created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callbridge import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
    from opentelemetry.trace import Tracer, TracerProvider

INSTRUMENTATION_NAME = "callbridge"
"""The meter and tracer name: the instrumentation scope every instrument here belongs to."""


class Instruments:
    """Every instrument and the tracer, created once per ``telemetry.Telemetry``.

    Histograms use the SDK's default buckets: Application Insights keeps only count, sum, min
    and max, and bucket advice needs opentelemetry-api 1.30, newer than the extra guarantees.
    """

    @classmethod
    def create(
        cls, meter_provider: MeterProvider | None, tracer_provider: TracerProvider | None
    ) -> Instruments | None:
        """The instruments, or None if the OpenTelemetry API is not installed."""
        # Imported here, not at module level: the API is an optional dependency.
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415
        except ImportError:
            return None
        return cls(
            metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider),
            trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider),
        )

    def __init__(self, meter: Meter, tracer: Tracer) -> None:
        self.tracer = tracer
        self.active_calls: UpDownCounter = meter.create_up_down_counter(
            "callbridge.calls.active",
            unit="{call}",
            description="Calls whose media socket is bridged to Voice Live right now.",
        )
        self.rejected: Counter = meter.create_counter(
            "callbridge.calls.rejected",
            unit="{call}",
            description="Incoming calls rejected or redirected instead of answered, by reason.",
        )
        self.answer_latency: Histogram = meter.create_histogram(
            "callbridge.call.answer_latency",
            unit="ms",
            description="From the IncomingCall event to ACS accepting answer_call; "
            "the caller hears ringing for all of it.",
        )
        self.first_audio: Histogram = meter.create_histogram(
            "callbridge.call.first_audio",
            unit="ms",
            description="From the media socket being accepted to the agent's first audio "
            "sent to the caller: the silence a caller sits through after pickup.",
        )
        self.duration: Histogram = meter.create_histogram(
            "callbridge.call.duration",
            unit="s",
            description="How long calls stayed bridged, by who ended them.",
        )
        self.continuity: Counter = meter.create_counter(
            "callbridge.continuity.events",
            unit="{event}",
            description="What kept calls going, by kind: reconnect (a lost Voice Live session "
            "replaced), rollover (one near its expiry replaced), rejoin (ACS's media socket "
            "came back), fallback (no agent: callbridge spoke itself).",
        )
        self.outage: Histogram = meter.create_histogram(
            "callbridge.continuity.outage",
            unit="ms",
            description="How long a call had no working Voice Live session or media socket, "
            "by kind (reconnect, rejoin).",
        )
        self.barge_ins: Counter = meter.create_counter(
            "callbridge.barge_ins",
            unit="{barge_in}",
            description="Times the caller spoke over the agent; truncated=true when audio "
            "the caller was hearing was cut and the model told where, resumed=true when it was "
            "a backchannel or noise and the agent went on.",
        )
        self.interruption_decision: Histogram = meter.create_histogram(
            "callbridge.interruption.decision_time",
            unit="ms",
            description="How long the agent stayed paused while callbridge decided whether the "
            "caller was interrupting, by verdict (real, false).",
        )
        self.heard_ms: Histogram = meter.create_histogram(
            "callbridge.truncation.heard_ms",
            unit="ms",
            description="How much of an interrupted agent item the caller had heard when "
            "it was truncated.",
        )
        self.pacer_max_late: Histogram = meter.create_histogram(
            "callbridge.pacer.max_lateness",
            unit="ms",
            description="Per call, the worst lateness of an agent frame against its due time; "
            "beyond the playout lead it is audible as a gap.",
        )
        self.pacer_reanchors: Counter = meter.create_counter(
            "callbridge.pacer.reanchors",
            unit="{reanchor}",
            description="Times the pacer fell more than a frame behind with audio queued "
            "(a stalled event loop) and restarted its clock.",
        )
        self.pacer_underruns: Counter = meter.create_counter(
            "callbridge.pacer.underruns",
            unit="{underrun}",
            description="Times agent audio ran out mid-item and resumed after it was due "
            "(Voice Live slower than real time).",
        )
        self.malformed_media: Counter = meter.create_counter(
            "callbridge.media.malformed_frames",
            unit="{frame}",
            description="ACS media frames that could not be parsed and were dropped.",
        )
        self.malformed_events: Counter = meter.create_counter(
            "callbridge.voice_live.malformed_events",
            unit="{event}",
            description="Voice Live events that could not be decoded or handled.",
        )
        self.voice_live_errors: Counter = meter.create_counter(
            "callbridge.voice_live.errors",
            unit="{error}",
            description="Error events Voice Live sent.",
        )
        self.dropped_agent_audio: Counter = meter.create_counter(
            "callbridge.agent_audio.dropped",
            unit="ms",
            description="Agent audio of interrupted responses that arrived late and was "
            "never played.",
        )
        self.tool_calls: Counter = meter.create_counter(
            "callbridge.tool_calls",
            unit="{call}",
            description="Tool calls the agent made.",
        )
