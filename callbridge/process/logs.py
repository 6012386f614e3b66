"""Logging: structlog everywhere, stdlib logging (aiohttp, Azure SDKs) routed through it.

Call ids are bound with ``structlog.contextvars`` in the task that owns a call, so every line
logged by that call, its child tasks included, carries them.

Privacy rules every log line passes through here, whoever logged it:

- what a person said travels in a field named ``transcript``, and reaches the log only when
  transcripts are on (``CALLBRIDGE_LOG_TRANSCRIPTS``); otherwise only its length does;
- phone numbers are logged only through ``callbridge.core.numbers.mask``; keypad digits never.

Event names are dotted lower-case words (``jwks.fetched``), and enum values are logged as their
plain values, so a WebSocket close code reads ``close_code=1000`` in console mode too.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal

import structlog
from structlog.typing import Processor, WrappedLogger

TRANSCRIPT_FIELD: Final = "transcript"
"""The log field that holds words someone said on a call (caller or agent)."""


def configure_logging(
    fmt: Literal["auto", "console", "json"] = "auto",
    level: str = "INFO",
    *,
    transcripts: bool = False,
) -> None:
    """Set up structlog and stdlib logging once per process.

    ``transcripts``: whether what callers and agents said is logged (``transcript`` fields).
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        plain_values,
    ]
    if not transcripts:
        shared.append(hide_transcripts)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Not cached: a cached logger keeps the configuration it was first used under, level
        # included, and ignores any later one (a command run in-process at WARNING hid the
        # INFO lines of every test after it from structlog's capture_logs). Caching would
        # save about 3 us a line, and callbridge logs a few dozen lines a call, none per frame.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Azure SDKs log every HTTP request at INFO; that is noise on a per-call service.
    logging.getLogger("azure").setLevel(max(logging.WARNING, root.level))


def plain_values(
    _logger: WrappedLogger, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Enum members as their values: the console renderer would print
    ``<WSCloseCode.OK: 1000>`` where the JSON one prints ``1000``."""
    for key, value in event.items():
        if isinstance(value, enum.Enum):
            event[key] = value.value
    return event


def hide_transcripts(
    _logger: WrappedLogger, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A ``transcript`` field replaced by its length: the line still shows that someone spoke
    and how much, not what they said."""
    said = event.pop(TRANSCRIPT_FIELD, None)
    if isinstance(said, str):
        event["transcript_chars"] = len(said)
    return event
