"""Telemetry: what each call records, read back through in-memory SDK readers.

OpenTelemetry's global providers can be set only once per process, so no test sets them: each
test builds its own ``Telemetry`` from fresh SDK providers, and the module-level functions are
pointed at it where they are under test.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import capture_logs

from callbridge.adapters import telemetry
from callbridge.adapters.telemetry import CallSummary, CallTelemetry, Telemetry
from callbridge.core.ended_by import EndedBy
from callbridge.process import telemetry_export
from callbridge.sim.harness import LocalStack
from tests.tone_calls import BARGE_IN_SCRIPT, CALLER_TRANSCRIPTS, TURNS

CALL_ID = "call-conn-abc"
CORRELATION_ID = "corr-def"
PROFILE = "support"

CALL_SPAN_ATTRIBUTES = {
    "callbridge.call_connection_id",
    "callbridge.correlation_id",
    "callbridge.profile",
    "callbridge.direction",
}
METRIC_ATTRIBUTES = {
    "callbridge.profile",
    "callbridge.direction",
    "callbridge.ended_by",
    "callbridge.truncated",
    "callbridge.reason",
}
PHONE_NUMBER = re.compile(r"\+?\d{7,15}")

SUMMARY = CallSummary(
    caller_frames=1500,
    malformed_media=2,
    malformed_events=3,
    voice_live_errors=1,
    dropped_agent_audio_ms=240.0,
    barge_ins=2,
    tool_calls=4,
    pacer_max_late_ms=7.5,
    pacer_reanchors=5,
    pacer_starved=6,
    ended_by=EndedBy.END_CALL,
)


@dataclass
class Otel:
    telemetry: Telemetry
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider

    def points(self, name: str) -> list[Any]:
        """The data points of one metric; empty if nothing was recorded on it."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        assert isinstance(metric.data, Sum | Histogram)
                        return list(metric.data.data_points)
        return []

    def value(self, name: str, **attributes: object) -> float:
        """A counter's value for the data point carrying (at least) these attributes."""
        matches = [
            point
            for point in self.points(name)
            if all(point.attributes.get(key) == want for key, want in attributes.items())
        ]
        assert len(matches) == 1, (name, attributes, self.points(name))
        point = matches[0]
        assert isinstance(point, NumberDataPoint)
        return point.value

    def histogram(self, name: str) -> HistogramDataPoint:
        points = self.points(name)
        assert len(points) == 1, (name, points)
        point = points[0]
        assert isinstance(point, HistogramDataPoint)
        return point

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield Otel(
        Telemetry(meter_provider=meter_provider, tracer_provider=tracer_provider),
        reader,
        spans,
        tracer_provider,
    )
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """``configure_telemetry`` acts once per process; each test starts unconfigured."""
    monkeypatch.setattr(telemetry_export, "_process", telemetry_export._ProcessState())


def start_call(otel: Otel) -> CallTelemetry:
    return CallTelemetry(
        call_connection_id=CALL_ID,
        correlation_id=CORRELATION_ID,
        profile=PROFILE,
        direction="inbound",
        telemetry=otel.telemetry,
    )


def test_active_calls_rise_while_bridged_and_fall_at_end(otel: Otel) -> None:
    call = start_call(otel)
    assert otel.value("callbridge.calls.active", **{"callbridge.profile": PROFILE}) == 1
    assert otel.finished() == []  # the call span is open

    call.end(SUMMARY)

    assert otel.value("callbridge.calls.active", **{"callbridge.profile": PROFILE}) == 0


def test_first_audio_counts_only_the_first_report(otel: Otel) -> None:
    call = start_call(otel)
    call.first_audio(820.0)
    call.first_audio(5000.0)
    call.end(SUMMARY)

    point = otel.histogram("callbridge.call.first_audio")
    assert (point.count, point.sum) == (1, 820.0)
    assert point.attributes == {"callbridge.profile": PROFILE, "callbridge.direction": "inbound"}
    (span,) = otel.finished()
    assert span.attributes is not None
    assert span.attributes["callbridge.first_audio_ms"] == 820.0


def test_answer_latency_and_rejections(otel: Otel) -> None:
    otel.telemetry.record_answer_latency(350.0, direction="inbound")
    otel.telemetry.record_rejected("busy")
    otel.telemetry.record_rejected("busy")
    otel.telemetry.record_rejected("none")

    point = otel.histogram("callbridge.call.answer_latency")
    assert (point.count, point.sum) == (1, 350.0)
    assert point.attributes == {"callbridge.direction": "inbound"}
    assert otel.value("callbridge.calls.rejected", **{"callbridge.reason": "busy"}) == 2
    assert otel.value("callbridge.calls.rejected", **{"callbridge.reason": "none"}) == 1


def test_interruption_decisions_time_the_pause_and_count_false_ones_as_resumed(
    otel: Otel,
) -> None:
    call = start_call(otel)
    call.interruption_decided(verdict="false", reason="backchannel", paused_ms=610)
    call.interruption_decided(verdict="real", reason="long_speech", paused_ms=420)
    call.barge_in(heard_ms=900.0, truncated=True)  # the real one, once truncated
    call.end(SUMMARY)

    resumed = {"callbridge.truncated": False, "callbridge.resumed": True}
    assert otel.value("callbridge.barge_ins", **resumed) == 1
    assert otel.value("callbridge.barge_ins", **{"callbridge.truncated": True}) == 1
    points = otel.points("callbridge.interruption.decision_time")
    by_verdict = {
        point.attributes["callbridge.verdict"]: (point.count, point.sum) for point in points
    }
    assert by_verdict == {"false": (1, 610.0), "real": (1, 420.0)}
    (span,) = otel.finished()
    assert [event.name for event in span.events] == [
        "interruption_decided",
        "interruption_decided",
        "barge_in",
    ]
    assert dict(span.events[0].attributes or {}) == {
        "callbridge.verdict": "false",
        "callbridge.reason": "backchannel",
        "callbridge.paused_ms": 610,
    }


def test_barge_ins_count_and_truncations_record_heard_ms(otel: Otel) -> None:
    call = start_call(otel)
    call.barge_in(heard_ms=1234.0, truncated=True)
    call.barge_in(heard_ms=0.0, truncated=False)  # nothing was playing: nothing truncated
    call.end(SUMMARY)

    assert otel.value("callbridge.barge_ins", **{"callbridge.truncated": True}) == 1
    assert otel.value("callbridge.barge_ins", **{"callbridge.truncated": False}) == 1
    heard = otel.histogram("callbridge.truncation.heard_ms")
    assert (heard.count, heard.sum) == (1, 1234.0)
    (span,) = otel.finished()
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    assert events == [
        ("barge_in", {"callbridge.truncated": True, "callbridge.heard_ms": 1234.0}),
        ("barge_in", {"callbridge.truncated": False}),
    ]


def test_end_records_the_summary_and_ends_one_span(otel: Otel) -> None:
    call = start_call(otel)
    call.end(SUMMARY)

    profile = {"callbridge.profile": PROFILE}
    assert otel.value("callbridge.pacer.reanchors", **profile) == 5
    assert otel.value("callbridge.pacer.underruns", **profile) == 6
    assert otel.value("callbridge.media.malformed_frames", **profile) == 2
    assert otel.value("callbridge.voice_live.malformed_events", **profile) == 3
    assert otel.value("callbridge.voice_live.errors", **profile) == 1
    assert otel.value("callbridge.agent_audio.dropped", **profile) == 240.0
    assert otel.value("callbridge.tool_calls", **profile) == 4
    lateness = otel.histogram("callbridge.pacer.max_lateness")
    assert (lateness.count, lateness.sum) == (1, 7.5)
    duration = otel.histogram("callbridge.call.duration")
    assert duration.count == 1
    assert duration.attributes is not None
    assert duration.attributes["callbridge.ended_by"] == "end_call"

    (span,) = otel.finished()
    assert span.name == "call"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert {key: attributes[key] for key in CALL_SPAN_ATTRIBUTES} == {
        "callbridge.call_connection_id": CALL_ID,
        "callbridge.correlation_id": CORRELATION_ID,
        "callbridge.profile": PROFILE,
        "callbridge.direction": "inbound",
    }
    assert attributes["callbridge.ended_by"] == "end_call"
    assert attributes["callbridge.caller_frames"] == 1500
    assert attributes["callbridge.barge_ins"] == 2
    assert attributes["callbridge.pacer_max_late_ms"] == 7.5


def test_nothing_recorded_identifies_a_caller(otel: Otel) -> None:
    """Only ids, the profile and fixed words are recorded; never a phone number."""
    call = start_call(otel)
    call.first_audio(900.0)
    call.barge_in(heard_ms=700.0, truncated=True)
    call.end(SUMMARY)
    otel.telemetry.record_answer_latency(300.0, direction="inbound")
    otel.telemetry.record_rejected("busy")

    (span,) = otel.finished()
    recorded: list[tuple[str, object]] = list((span.attributes or {}).items())
    for event in span.events:
        recorded += list((event.attributes or {}).items())
    data = otel.reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    assert set(point.attributes or {}) <= METRIC_ATTRIBUTES, metric.name
                    recorded += list((point.attributes or {}).items())
    assert all(key.startswith("callbridge.") for key, _ in recorded)
    strings = [value for _, value in recorded if isinstance(value, str)]
    assert not [value for value in strings if PHONE_NUMBER.search(value)]


def test_end_twice_and_reports_after_end_are_harmless(otel: Otel) -> None:
    call = start_call(otel)
    call.end(SUMMARY)
    call.end(SUMMARY)
    call.first_audio(100.0)
    call.barge_in(heard_ms=50.0, truncated=True)

    assert len(otel.finished()) == 1
    assert otel.value("callbridge.calls.active", **{"callbridge.profile": PROFILE}) == 0
    assert otel.value("callbridge.tool_calls", **{"callbridge.profile": PROFILE}) == 4
    assert otel.points("callbridge.call.first_audio") == []
    assert otel.points("callbridge.barge_ins") == []


def test_a_call_without_media_records_no_pacer_lateness(otel: Otel) -> None:
    call = start_call(otel)
    call.end(CallSummary())

    assert otel.points("callbridge.pacer.max_lateness") == []
    (span,) = otel.finished()
    attributes = dict(span.attributes or {})
    assert "callbridge.pacer_max_late_ms" not in attributes
    assert attributes["callbridge.ended_by"] == EndedBy.CALLER


def test_an_error_marks_the_span_failed_without_its_message(otel: Otel) -> None:
    call = start_call(otel)
    error = RuntimeError("transfer to +14255550123 refused")
    call.end(CallSummary(ended_by=EndedBy.TRANSFER_CALL), error=error)

    (span,) = otel.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError"
    assert [(event.name, dict(event.attributes or {})) for event in span.events] == [
        ("exception", {"exception.type": "builtins.RuntimeError"})
    ]


def test_activate_parents_spans_started_inside_to_the_call(otel: Otel) -> None:
    call = start_call(otel)
    tracer = otel.tracer_provider.get_tracer("test")
    with call.activate(), tracer.start_as_current_span("acs.hang_up"):
        pass
    assert [span.name for span in otel.finished()] == ["acs.hang_up"]  # the call span stays open
    call.end(SUMMARY)

    child, parent = otel.finished()
    assert parent.name == "call"
    assert child.parent is not None
    assert parent.context is not None
    assert child.parent.span_id == parent.context.span_id


def test_module_functions_use_the_shared_telemetry(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "_default_telemetry", lambda: otel.telemetry)
    telemetry.record_answer_latency(410.0, direction="outbound")
    telemetry.record_rejected("busy")
    call = CallTelemetry(call_connection_id=CALL_ID, correlation_id=None, profile=PROFILE)
    call.end(SUMMARY)

    assert otel.histogram("callbridge.call.answer_latency").sum == 410.0
    assert otel.value("callbridge.calls.rejected", **{"callbridge.reason": "busy"}) == 1
    (span,) = otel.finished()
    assert "callbridge.correlation_id" not in (span.attributes or {})


def test_without_opentelemetry_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if the extra were not installed
    absent = Telemetry()
    assert absent._instruments is None
    absent.record_answer_latency(100.0, direction="inbound")
    absent.record_rejected("busy")
    call = CallTelemetry(
        call_connection_id=CALL_ID, correlation_id=None, profile=PROFILE, telemetry=absent
    )
    with call.activate():
        call.first_audio(500.0)
        call.barge_in(heard_ms=10.0, truncated=True)
    call.end(SUMMARY)
    call.end(SUMMARY)


def test_configure_without_a_connection_string_changes_nothing() -> None:
    providers = (trace.get_tracer_provider(), telemetry_export._process.configured)
    with capture_logs() as logs:
        telemetry_export.configure_telemetry(None)
        telemetry_export.configure_telemetry("")
    assert logs == []
    assert (trace.get_tracer_provider(), telemetry_export._process.configured) == providers


def test_configure_without_the_exporter_warns_once_and_carries_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)
    with capture_logs() as logs:
        telemetry_export.configure_telemetry(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        )
        telemetry_export.configure_telemetry(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        )
    assert [(log["log_level"], log["event"]) for log in logs] == [
        ("warning", "telemetry.exporter_missing")
    ]
    assert logs[0]["install"] == "pip install 'callbridge[azure]'"


def fake_exporter(monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> list[dict[str, Any]]:
    """Stand in for azure-monitor-opentelemetry; returns the arguments it was configured with."""
    calls: list[dict[str, Any]] = []

    def configure_azure_monitor(**kwargs: Any) -> None:
        if fail:
            raise ValueError("Invalid instrumentation key")
        calls.append(kwargs)

    module = types.ModuleType("azure.monitor.opentelemetry")
    module.configure_azure_monitor = configure_azure_monitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", module)
    return calls


def test_configure_with_the_exporter_sets_up_azure_monitor_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    calls = fake_exporter(monkeypatch)
    telemetry_export.configure_telemetry("InstrumentationKey=abc")
    telemetry_export.configure_telemetry("InstrumentationKey=abc")

    (kwargs,) = calls
    assert kwargs["connection_string"] == "InstrumentationKey=abc"
    assert kwargs["disable_logging"] is True
    resource = kwargs["resource"]
    assert isinstance(resource, Resource)
    assert resource.attributes["service.name"] == "callbridge"


def test_configure_leaves_the_service_name_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "callbridge-prod")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=2.0,deployment.env=prod")
    calls = fake_exporter(monkeypatch)
    telemetry_export.configure_telemetry("InstrumentationKey=abc")

    attributes = calls[0]["resource"].attributes
    assert attributes["service.name"] == "callbridge-prod"
    assert attributes["service.version"] == "2.0"
    assert attributes["deployment.env"] == "prod"


def test_a_rejected_configuration_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_exporter(monkeypatch, fail=True)
    with capture_logs() as logs:
        telemetry_export.configure_telemetry("InstrumentationKey=not-a-key")
    assert [(log["log_level"], log["event"]) for log in logs] == [
        ("error", "telemetry.configure_failed")
    ]


async def test_a_real_call_is_one_span_with_its_figures(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the whole service: one span per call, active calls back to 0, answer and
    first-audio latencies and the barge-in recorded; nothing per frame."""
    monkeypatch.setattr(telemetry, "_default_telemetry", lambda: otel.telemetry)
    async with LocalStack(turns=TURNS, caller_transcripts=CALLER_TRANSCRIPTS) as stack:
        result = await stack.call(BARGE_IN_SCRIPT, hangup_after_s=10)
    (span,) = [span for span in otel.finished() if span.name == "call"]
    attributes = span.attributes or {}
    assert attributes["callbridge.call_connection_id"] == result.record.call_connection_id
    assert attributes["callbridge.barge_ins"] == 1
    assert otel.value("callbridge.calls.active") == 0
    assert otel.histogram("callbridge.call.answer_latency").count == 1
    assert otel.histogram("callbridge.call.first_audio").count == 1
    assert otel.value("callbridge.barge_ins", **{"callbridge.truncated": True}) == 1
