"""OpenTelemetry metrics and one trace span per call, exported to Application Insights if asked.

OpenTelemetry is optional: ``opentelemetry-api`` arrives with the ``azure`` extra
(``azure-monitor-opentelemetry``), so it is imported only when first needed, and without it
every function here is a no-op. With the API but no exporter configured, OpenTelemetry's own
no-op providers apply, or whatever providers the process installed (``opentelemetry-instrument``
reading the ``OTEL_*`` environment, say).

Everything here runs a handful of times per call (answer, first audio, each barge-in, end),
never per 20 ms frame: per-frame facts reach telemetry as the totals in ``CallSummary``.

Phone numbers are never recorded: attributes carry ACS's ids, the profile name, the direction
and bounded enumerations (why a call ended or was rejected) only.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from callbridge.adapters.telemetry_instruments import Instruments
from callbridge.core.ended_by import EndedBy

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

log = structlog.get_logger(__name__)

CALL_SPAN = "call"


_AttributeValue = str | bool | int | float
_Attributes = dict[str, _AttributeValue]

# Attribute keys, namespaced so they cannot collide with OpenTelemetry's semantic conventions
# once exported (Application Insights shows them as customDimensions).
_CALL_CONNECTION_ID = "callbridge.call_connection_id"
_CORRELATION_ID = "callbridge.correlation_id"
_PROFILE = "callbridge.profile"
_DIRECTION = "callbridge.direction"
_ENDED_BY = "callbridge.ended_by"
_REASON = "callbridge.reason"
_TRUNCATED = "callbridge.truncated"
_KIND = "callbridge.kind"
_RESUMED = "callbridge.resumed"
_VERDICT = "callbridge.verdict"


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One call's totals, as plain numbers, so this module need not import the bridge."""

    caller_frames: int = 0
    malformed_media: int = 0
    malformed_events: int = 0
    voice_live_errors: int = 0
    dropped_agent_audio_ms: float = 0.0
    barge_ins: int = 0
    tool_calls: int = 0
    pacer_max_late_ms: float | None = None
    """None when no agent audio was paced (the call never got media): a zero would flatter
    the lateness distribution."""
    pacer_reanchors: int = 0
    pacer_starved: int = 0
    ended_by: EndedBy | None = None
    """Why the bridge ended the call (``CallStats.ended_by``); None when the caller did."""
    playout_delay_ms: float | None = None
    """ACS's playout delay as the heard position last used it; None without media."""
    playout_delay_measured: bool = False
    """Whether ``playout_delay_ms`` was measured from ACS's playback marks, not configured."""


class Telemetry:
    """The process's instruments and tracer.

    The module-level functions and ``CallTelemetry`` use one shared instance built from the
    global providers at first use, so providers configured after import (``configure_telemetry``
    at startup) are the ones used. Passing providers builds an independent instance: tests use
    in-memory readers that way without touching OpenTelemetry's set-once global providers.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._instruments = Instruments.create(meter_provider, tracer_provider)

    def record_answer_latency(self, ms: float, *, direction: str) -> None:
        """See ``record_answer_latency``."""
        if self._instruments is not None:
            self._instruments.answer_latency.record(ms, {_DIRECTION: direction})

    def record_rejected(self, reason: str) -> None:
        """See ``record_rejected``."""
        if self._instruments is not None:
            self._instruments.rejected.add(1, {_REASON: reason})


@functools.cache
def _default_telemetry() -> Telemetry:
    """Built at first use, never at import, so the global providers are the configured ones."""
    return Telemetry()


def prepare_telemetry() -> None:
    """Build the shared instruments now (after ``configure_telemetry``), not at the first call:
    a service calls this once it is up, so no call pays for OpenTelemetry's import."""
    _default_telemetry()


def record_answer_latency(ms: float, *, direction: str) -> None:
    """Time from receiving the IncomingCall event to ``answer_call`` returning.

    ``direction`` is ``inbound`` or ``outbound`` (for outbound calls: ``create_call``).
    """
    _default_telemetry().record_answer_latency(ms, direction=direction)


def record_rejected(reason: str) -> None:
    """An incoming call not answered; ``reason`` is a short fixed word (``busy``, ``none``,
    ``redirected``), never anything taken from the call."""
    _default_telemetry().record_rejected(reason)


class CallTelemetry:
    """One call's span and per-call metrics, from media socket accepted to bridge finished.

    Create it when the media socket is accepted and call ``end()`` in a ``finally``: the
    active-calls gauge stays raised until it is called. Every method is cheap and called a few
    times per call; after ``end()`` all of them do nothing.
    """

    def __init__(
        self,
        *,
        call_connection_id: str,
        correlation_id: str | None,
        profile: str,
        direction: str | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """Start the ``call`` span and count the call as active.

        ``telemetry``: the instruments to use; the process's shared ones by default.
        """
        self._instruments = (telemetry or _default_telemetry())._instruments
        self._started = time.monotonic()
        self._ended = False
        self._first_audio_seen = False
        # Metric attributes: bounded by configuration (profile names, two directions), so
        # safe as dimensions. Ids go on the span only: as metric dimensions they would make a
        # new time series per call.
        self._attributes: _Attributes = {_PROFILE: profile}
        if direction is not None:
            self._attributes[_DIRECTION] = direction
        self._span: Span | None = None
        if self._instruments is None:
            return
        from opentelemetry.trace import SpanKind  # noqa: PLC0415

        span_attributes: _Attributes = {_CALL_CONNECTION_ID: call_connection_id, **self._attributes}
        if correlation_id is not None:
            span_attributes[_CORRELATION_ID] = correlation_id
        # SERVER: the call is a unit of work this service handles, so Application Insights lists
        # it under requests, with its duration and success.
        self._span = self._instruments.tracer.start_span(
            CALL_SPAN, kind=SpanKind.SERVER, attributes=span_attributes
        )
        self._instruments.active_calls.add(1, self._attributes)

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the call span current, so spans started inside (the Azure SDK's ACS requests:
        hang up, transfer) become its children. The span stays open on exit."""
        if self._span is None:
            yield
            return
        from opentelemetry import trace  # noqa: PLC0415

        with trace.use_span(self._span, end_on_exit=False):
            yield

    def first_audio(self, ms: float) -> None:
        """The agent's first audio reached the caller ``ms`` after the socket was accepted;
        only the first report per call counts."""
        if self._instruments is None or self._ended or self._first_audio_seen:
            return
        self._first_audio_seen = True
        self._instruments.first_audio.record(ms, self._attributes)
        if self._span is not None:
            self._span.set_attribute("callbridge.first_audio_ms", ms)

    def continuity(self, kind: str, outage_ms: float | None = None) -> None:
        """The call survived something (``kind``: reconnect, rollover, rejoin, fallback);
        ``outage_ms``: how long it had no working session or socket meanwhile."""
        if self._instruments is None or self._ended:
            return
        attributes = {**self._attributes, _KIND: kind}
        self._instruments.continuity.add(1, attributes)
        event: _Attributes = {_KIND: kind}
        if outage_ms is not None:
            self._instruments.outage.record(outage_ms, attributes)
            event["callbridge.outage_ms"] = round(outage_ms)
        if self._span is not None:
            self._span.add_event("continuity", event)

    def barge_in(self, *, heard_ms: float, truncated: bool) -> None:
        """The caller spoke over the agent. ``truncated``: audio they were hearing was cut and
        the model told; ``heard_ms`` is how much of that item they heard (ignored otherwise)."""
        if self._instruments is None or self._ended:
            return
        self._instruments.barge_ins.add(1, {**self._attributes, _TRUNCATED: truncated})
        event: _Attributes = {_TRUNCATED: truncated}
        if truncated:
            self._instruments.heard_ms.record(heard_ms, self._attributes)
            event["callbridge.heard_ms"] = heard_ms
        if self._span is not None:
            self._span.add_event("barge_in", event)

    def interruption_decided(self, *, verdict: str, reason: str, paused_ms: float) -> None:
        """callbridge decided whether the caller, speaking over the agent, was interrupting
        (``verdict`` real or false, ``reason``), ``paused_ms`` after it paused the agent. A
        false one is a barge-in resumed; a real one is counted when it is truncated."""
        if self._instruments is None or self._ended:
            return
        self._instruments.interruption_decision.record(
            paused_ms, {**self._attributes, _VERDICT: verdict}
        )
        if verdict == "false":
            attributes = {**self._attributes, _TRUNCATED: False, _RESUMED: True}
            self._instruments.barge_ins.add(1, attributes)
        if self._span is not None:
            event: _Attributes = {
                _VERDICT: verdict,
                _REASON: reason,
                "callbridge.paused_ms": paused_ms,
            }
            self._span.add_event("interruption_decided", event)

    def end(self, summary: CallSummary, *, error: BaseException | None = None) -> None:
        """Record the call's totals, drop it from the active calls and end its span.

        ``error``: what ended the bridge abnormally, if anything; marks the span failed
        (recording the exception's type, never its message).
        Idempotent: only the first call records anything.
        """
        if self._instruments is None or self._ended:
            return
        self._ended = True
        instruments = self._instruments
        attributes = self._attributes
        ended_by = str(summary.ended_by or EndedBy.CALLER)
        instruments.active_calls.add(-1, attributes)
        instruments.duration.record(
            time.monotonic() - self._started, {**attributes, _ENDED_BY: ended_by}
        )
        if summary.pacer_max_late_ms is not None:
            instruments.pacer_max_late.record(summary.pacer_max_late_ms, attributes)
        counts: list[tuple[Counter, float]] = [
            (instruments.pacer_reanchors, summary.pacer_reanchors),
            (instruments.pacer_underruns, summary.pacer_starved),
            (instruments.malformed_media, summary.malformed_media),
            (instruments.malformed_events, summary.malformed_events),
            (instruments.voice_live_errors, summary.voice_live_errors),
            (instruments.dropped_agent_audio, summary.dropped_agent_audio_ms),
            (instruments.tool_calls, summary.tool_calls),
        ]
        for counter, amount in counts:
            # Zeros are recorded too: a series that exists reads as "none", not "no data".
            counter.add(amount, attributes)
        if self._span is None:
            return
        self._span.set_attributes(_summary_attributes(summary, ended_by))
        if error is not None:
            from opentelemetry.trace import StatusCode  # noqa: PLC0415

            # The type only, not record_exception(): an exception's message can quote a phone
            # number (ACS refusing a transfer target, say). The logs have the full error.
            kind = type(error)
            self._span.add_event(
                "exception", {"exception.type": f"{kind.__module__}.{kind.__qualname__}"}
            )
            self._span.set_status(StatusCode.ERROR, kind.__name__)
        self._span.end()


def _summary_attributes(summary: CallSummary, ended_by: str) -> _Attributes:
    attributes: _Attributes = {
        _ENDED_BY: ended_by,
        "callbridge.caller_frames": summary.caller_frames,
        "callbridge.malformed_media": summary.malformed_media,
        "callbridge.malformed_events": summary.malformed_events,
        "callbridge.voice_live_errors": summary.voice_live_errors,
        "callbridge.dropped_agent_audio_ms": round(summary.dropped_agent_audio_ms),
        "callbridge.barge_ins": summary.barge_ins,
        "callbridge.tool_calls": summary.tool_calls,
        "callbridge.pacer_reanchors": summary.pacer_reanchors,
        "callbridge.pacer_starved": summary.pacer_starved,
    }
    if summary.pacer_max_late_ms is not None:
        attributes["callbridge.pacer_max_late_ms"] = round(summary.pacer_max_late_ms, 1)
    if summary.playout_delay_ms is not None:
        attributes["callbridge.playout_delay_ms"] = round(summary.playout_delay_ms, 1)
        attributes["callbridge.playout_delay_measured"] = summary.playout_delay_measured
    return attributes
