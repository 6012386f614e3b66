"""Logs and privacy: one mask for phone numbers, dotted event names, close codes as numbers,
transcripts only when asked for, keypad digits never.

The rendering checks run ``configure_logging`` in a subprocess: it configures the process's
logging for good, which a test worker's other tests must not inherit.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbridge.core.numbers import mask
from callbridge.process.config import ConfigError, log_transcripts

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "callbridge"
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
DOTTED = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def log_calls() -> Iterator[tuple[str, ast.Call, str]]:
    """Every ``<logger>.<level>("event", ...)`` call in the package: (where, call, event)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                yield where, node, node.args[0].value


def render(code: str, *, fmt: str = "console", transcripts: bool = False) -> str:
    """What ``code`` logs, rendered by ``configure_logging`` in a fresh process."""
    script = (
        "import structlog\n"
        "from callbridge.process.logs import configure_logging\n"
        f"configure_logging({fmt!r}, 'INFO', transcripts={transcripts})\n"
        "log = structlog.get_logger('test')\n" + textwrap.dedent(code)
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stderr


def test_every_event_name_is_dotted() -> None:
    undotted = [
        f"{where}: {event!r}" for where, _, event in log_calls() if not DOTTED.fullmatch(event)
    ]
    assert undotted == []


def test_phone_numbers_have_one_mask() -> None:
    """No module but ``core.numbers`` defines a way to mask a number; the ACS stand-in's logs
    use the same one as the service's."""
    maskers = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and "mask" in node.name.lower()
    ]
    assert maskers == [
        "callbridge/core/numbers.py: mask",
        "callbridge/core/numbers.py: _mask_opaque",
    ]
    standin = (PACKAGE / "sim" / "acs" / "server.py").read_text(encoding="utf-8")
    assert "from callbridge.core.numbers import mask" in standin
    assert mask("+18005550100") == "+18*******00"


def test_close_codes_are_logged_as_numbers() -> None:
    code = """
        import aiohttp
        log.info("call.media_closed", close_code=aiohttp.WSCloseCode.OK)
    """
    console = render(code)
    assert "close_code=1000" in console
    assert "WSCloseCode" not in console
    assert json.loads(render(code, fmt="json"))["close_code"] == 1000


SAID = "my card number is four one one one"


@pytest.mark.parametrize("event", ["caller.transcript", "agent.transcript"])
def test_transcripts_are_logged_only_when_asked(event: str) -> None:
    code = f'log.info("{event}", item_id="item_1", transcript="{SAID}")'
    hidden = json.loads(render(code, fmt="json"))
    assert SAID not in json.dumps(hidden)
    assert hidden["transcript_chars"] == len(SAID)
    assert hidden["event"] == event
    shown = json.loads(render(code, fmt="json", transcripts=True))
    assert shown["transcript"] == SAID


def test_what_was_said_is_logged_only_in_a_transcript_field() -> None:
    """The transcript events carry the words in ``transcript``, which the filter knows; no
    other field holds them."""
    transcript_events = [
        (where, sorted(k.arg or "" for k in call.keywords))
        for where, call, event in log_calls()
        if event.endswith(".transcript")
    ]
    assert len(transcript_events) == 2
    for where, keywords in transcript_events:
        assert "transcript" in keywords, where
        assert "text" not in keywords, where


def test_keypad_digits_are_never_logged() -> None:
    """Digits may be a card number or a PIN: a log line may count them, never carry them."""
    carrying = [
        f"{where}: {keyword.arg}"
        for where, call, _ in log_calls()
        for keyword in call.keywords
        if keyword.arg in {"digit", "digits", "tone", "tones", "dtmf"}
    ]
    assert carrying == []


def test_transcripts_default_off_for_serve_and_on_for_the_demo() -> None:
    assert log_transcripts(default=True, env={}) is True
    assert log_transcripts(default=True, env={"CALLBRIDGE_LOG_TRANSCRIPTS": "off"}) is False
    assert log_transcripts(default=False, env={}) is False
    with pytest.raises(ConfigError, match="CALLBRIDGE_LOG_TRANSCRIPTS='maybe'"):
        log_transcripts(default=True, env={"CALLBRIDGE_LOG_TRANSCRIPTS": "maybe"})
