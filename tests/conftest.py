"""Fixtures every test gets."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """Logging as it was before the test.

    A test that runs a command in-process (``callbridge.cli.main``) configures logging for the
    whole worker process, at the command's level: a later test's ``capture_logs`` would then
    miss every line below it (``call.media_rejoined`` is INFO; ``replay`` logs from WARNING).
    """
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
