"""Exporting the process's metrics and traces to Application Insights, when configured.

Needs the ``azure`` extra (``azure-monitor-opentelemetry``); the instruments themselves are
``callbridge.adapters.telemetry``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import structlog

from callbridge import __version__

log = structlog.get_logger(__name__)

AZURE_EXTRA = "pip install 'callbridge[azure]'"
"""What to install for the Application Insights exporter."""

_Attributes = dict[str, str | bool | int | float]


@dataclass(slots=True)
class _ProcessState:
    configured: bool = False


_process = _ProcessState()


def configure_telemetry(connection_string: str | None) -> None:
    """Export metrics and traces to Application Insights if a connection string is given.

    Needs the ``azure`` extra; without it a warning says what to install and the service runs
    on without export. Without a connection string nothing changes: OpenTelemetry's no-op
    providers stay, or what the ``OTEL_*`` environment set up. Only the first call with a
    connection string acts: OpenTelemetry's global providers can be set once per process.
    """
    if not connection_string or _process.configured:
        return
    _process.configured = True
    try:
        from azure.monitor.opentelemetry import (  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
            configure_azure_monitor,
        )
    except ImportError:
        log.warning(
            "telemetry.exporter_missing",
            detail="an Application Insights connection string is set, but "
            "azure-monitor-opentelemetry is not installed: metrics and traces are not exported",
            install=AZURE_EXTRA,
        )
        return
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415

    try:
        configure_azure_monitor(
            connection_string=connection_string,
            resource=Resource.create(_resource_attributes()),
            # Logs stay on stderr: structlog's records would arrive unrendered, and caller
            # transcripts are logged, which must not leave the service by this route.
            disable_logging=True,
        )
    except Exception as exc:  # telemetry must never stop the service from answering calls
        log.error("telemetry.configure_failed", error=str(exc) or type(exc).__name__)
        return
    log.info("telemetry.configured", exporter="azure_monitor")


def _resource_attributes() -> _Attributes:
    """``service.name`` and ``service.version`` unless the ``OTEL_*`` environment sets them
    (``Resource.create`` reads it, but explicit attributes would override it).

    Without a service name Application Insights labels the role ``unknown_service``.
    """
    environ = os.environ
    configured = {
        pair.split("=", 1)[0].strip()
        for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
        if "=" in pair
    }
    if environ.get("OTEL_SERVICE_NAME"):
        configured.add("service.name")
    defaults: _Attributes = {"service.name": "callbridge", "service.version": __version__}
    return {key: value for key, value in defaults.items() if key not in configured}
