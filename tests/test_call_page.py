"""The call page in a real browser: a recorded call drawn as HTML, loaded by headless Chromium.

Chromium is driven over the Chrome DevTools Protocol on a loopback WebSocket (with aiohttp, a
dependency already): its command-line ``--dump-dom`` and ``--screenshot`` modes cannot report
console errors or exceptions, which is half of what this test checks. ``.ci/run`` installs
Chromium; without it these tests fail (they are the only check that the page works).

The screenshot of the page is saved as ``call.png`` beside the page, in pytest's ``tmp_path``
(``pytest --basetemp=DIR`` keeps it in a known place).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callbridge.adapters.recording import CallRecorder
from callbridge.cli import main
from callbridge.core.profiles import AgentProfile
from callbridge.report import CALL_PAGE, call_page, write_call_page
from callbridge.sim.harness import LocalStack
from callbridge.sim.script import AfterAgentDone, AfterHeard, Dtmf, Say, Step
from tests.tone_calls import GOODBYE, LINE, RATE, turn

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER_START_S = 20.0
BROWSER_STOP_S = 10.0
PAGE_LOAD_S = 15.0

HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)">&amp;'
"""A transcript that would run script if the page did not escape it."""

BARGE_IN_AT_MS = 1000.0


def _browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.fail(
        "headless Chromium is needed to test the call page: install it"
        " (Debian: apt-get install -y chromium chromium-driver; .ci/run does this)",
        pytrace=False,
    )


class DevTools:
    """Just enough of the Chrome DevTools Protocol: commands on one page, events collected."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, session: str) -> None:
        self._socket = socket
        self._session = session
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        message = {"id": number, "method": method, "params": params, "sessionId": self._session}
        await self._socket.send_json(message)
        async with asyncio.timeout(PAGE_LOAD_S):
            while True:
                reply = await self._socket.receive_json()
                if reply.get("id") == number:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result
                if "method" in reply:
                    self.events.append(reply)

    async def wait_for(self, method: str) -> None:
        async with asyncio.timeout(PAGE_LOAD_S):
            while not any(event["method"] == method for event in self.events):
                reply = await self._socket.receive_json()
                if "method" in reply:
                    self.events.append(reply)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (a blocked fetch...)."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:300])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(json.dumps(params["args"])[:300])
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found


@asynccontextmanager
async def headless_page(width: int = 1280, height: int = 1000) -> AsyncIterator[DevTools]:
    """A blank page in a fresh headless Chromium, debuggable on a loopback port."""
    binary = _browser()
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.to_thread(_start_browser, binary, profile, width, height)
        try:
            endpoint = await asyncio.wait_for(
                asyncio.to_thread(_devtools_endpoint, browser), BROWSER_START_S
            )
            async with aiohttp.ClientSession() as http, http.ws_connect(endpoint) as socket:
                await socket.send_json(
                    {"id": 0, "method": "Target.createTarget", "params": {"url": "about:blank"}}
                )
                target = await _reply(socket, 0)
                await socket.send_json(
                    {
                        "id": -1,
                        "method": "Target.attachToTarget",
                        "params": {"targetId": target["targetId"], "flatten": True},
                    }
                )
                session = (await _reply(socket, -1))["sessionId"]
                page = DevTools(socket, session)
                for domain in ("Page", "Runtime", "Log"):
                    await page.send(f"{domain}.enable")
                yield page
        finally:
            _stop_browser(browser)


def _stop_browser(browser: subprocess.Popen[str]) -> None:
    """Kill Chromium with every process it started (its own group): a renderer or helper
    left running went on writing to the profile while it was being removed ("Directory not
    empty"). Each is gone once signalled, or within ``BROWSER_STOP_S``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    browser.wait(timeout=BROWSER_STOP_S)
    deadline = time.monotonic() + BROWSER_STOP_S
    while _group_alive(browser.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if browser.stderr is not None:
        browser.stderr.close()


def _group_alive(group: int) -> bool:
    """Whether any process of the group is left (one not yet reaped counts)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _start_browser(binary: str, profile: str, width: int, height: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root in a container
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, for _stop_browser
    )


def _devtools_endpoint(browser: subprocess.Popen[str]) -> str:
    """The browser's WebSocket address, which Chromium prints on standard error."""
    assert browser.stderr is not None
    for line in browser.stderr:
        if match := re.search(r"DevTools listening on (ws://\S+)", line):
            return match.group(1)
    raise AssertionError(f"Chromium exited ({browser.wait()}) without a DevTools endpoint")


async def _reply(socket: aiohttp.ClientWebSocketResponse, number: int) -> dict[str, Any]:
    async with asyncio.timeout(BROWSER_START_S):
        while True:
            reply = await socket.receive_json()
            if reply.get("id") == number:
                result: dict[str, Any] = reply["result"]
                return result


async def load(page: DevTools, url: str) -> None:
    await page.send("Page.navigate", url=url)
    await page.wait_for("Page.loadEventFired")


async def record_call(root: Path) -> Path:
    """A short real call through the service, recorded by the bridge: a greeting, a question,
    a keypad press, an answer the caller cuts 1 s in, a goodbye and ``end_call``; the
    transcripts are hostile."""
    profile = AgentProfile(tools=("end_call",), record=True)
    turns = [
        turn(600, 440, "Hello, how can I help?"),
        turn(2500, 523, f"A long answer {HOSTILE} the caller cuts short."),
        GOODBYE,
    ]
    script: list[Step] = [
        Say(LINE, AfterAgentDone(pause_ms=300)),
        Dtmf("5", AfterHeard(ms=300, spurt=2)),
        Say(LINE, AfterHeard(ms=BARGE_IN_AT_MS, spurt=2)),
        Say(LINE, AfterAgentDone(pause_ms=300)),
    ]
    async with LocalStack(
        turns=turns, caller_transcripts=[HOSTILE] * 4, profile=profile, recordings_dir=root
    ) as stack:
        await stack.call(script, hangup_after_s=10)
    (folder,) = root.iterdir()  # noqa: ASYNC240  # the call is over: nothing to block
    return folder


async def test_a_recorded_call_draws_in_a_browser_without_errors(tmp_path: Path) -> None:
    recording = await record_call(tmp_path / "recordings")
    page_file = write_call_page(recording, tmp_path / CALL_PAGE)
    async with headless_page() as page:
        await load(page, page_file.as_uri())
        counts = await page.evaluate(
            """JSON.stringify(Object.fromEntries([
                "svg#timeline-svg", "path.wave.caller", "path.wave.agent", "rect.turn.caller",
                "rect.turn.agent", ".barge-in line", "li.barge-in", ".latency",
                "g.mark.stop_audio", "g.mark.tool", "g.mark.dtmf", "g.mark.end", "#pacing tr",
                "li.turn.caller", "li.turn.agent", "img", "script"
            ].map(s => [s, document.querySelectorAll(s).length])))"""
        )
        found = json.loads(counts)
        await page.evaluate('document.querySelector("li.barge-in").click()')
        cursor = await page.evaluate('document.getElementById("cursor").getAttribute("visibility")')
        texts = await page.evaluate(
            'Array.from(document.querySelectorAll("li.turn .text")).map(e => e.textContent)'
        )
        shot = await page.send("Page.captureScreenshot", format="png")
        (tmp_path / "call.png").write_bytes(base64.b64decode(shot["data"]))
        assert page.errors() == []
    for selector in ("svg#timeline-svg", "path.wave.caller", "path.wave.agent", "#pacing tr"):
        assert found[selector] >= 1, selector
    # A greeting, the answer, and goodbyes (the keypad press is a turn for the model too).
    assert found["rect.turn.agent"] == found["li.turn.agent"] >= 3
    assert found["rect.turn.caller"] >= 2
    assert found[".barge-in line"] == found["li.barge-in"] == 1
    assert found["g.mark.stop_audio"] >= 1
    assert found["g.mark.tool"] >= 1
    assert found["g.mark.end"] == found["g.mark.dtmf"] == 1
    assert found[".latency"] >= 1
    # The hostile transcripts are text on the page, never markup: no image, one script (ours).
    assert found["img"] == 0
    assert found["script"] == 1
    assert any(HOSTILE in text for text in texts)
    assert cursor == "visible"  # the page's script ran: a click put the cursor on the timeline


def test_every_text_from_the_call_is_escaped(tmp_path: Path) -> None:
    """Transcripts, tool arguments and outputs, keypad digits and event fields, with markup."""
    clock = iter(i * 0.02 for i in itertools.count())
    with CallRecorder(
        tmp_path,
        call_connection_id="<b>id</b>",
        correlation_id=None,
        profile='"><script>x()</script>',
        sample_rate=RATE,
        audio_format="pcm16",
        clock=lambda: next(clock),
    ) as recorder:
        recorder.caller_audio(LINE.pcm[:640], silent=False)
        recorder.transcript("caller", "item_1", HOSTILE)
        recorder.agent_audio(LINE.pcm[:640], item_id="<i>", content_index=0)
        recorder.transcript("agent", "<i>", HOSTILE)
        recorder.tool_call(name="<u>t</u>", call_id="c", arguments=json.dumps({"a": HOSTILE}))
        recorder.tool_result(name="<u>t</u>", call_id="c", output=HOSTILE)
        recorder.dtmf("<")
        recorder.event("bridge", "<marquee>", note=HOSTILE)
    (folder,) = tmp_path.iterdir()
    html = call_page(folder)
    assert html.count("<script") == 1  # the page's own
    for markup in ("<img", "<b>", "<u>", "<i>", "<marquee>", '"><script'):
        assert markup not in html, markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_a_five_minute_call_makes_a_light_page(tmp_path: Path) -> None:
    """Waveforms are drawn from min/max envelopes, one per pixel column: a few hundred kB."""
    clock = iter(i * 0.01 for i in itertools.count())  # read twice a frame: 20 ms a frame
    noise = LINE.pcm[:640]
    with CallRecorder(
        tmp_path,
        call_connection_id="long",
        correlation_id=None,
        profile="default",
        sample_rate=RATE,
        audio_format="pcm16",
        clock=lambda: next(clock),
    ) as recorder:
        for frame in range(5 * 60 * 50):
            recorder.caller_audio(noise, silent=False)
            recorder.agent_audio(noise, item_id=f"item_{frame // 500}", content_index=0)
    (folder,) = tmp_path.iterdir()
    size = len(call_page(folder).encode())
    assert 10_000 < size < 300_000, size


def test_the_report_command_writes_the_page_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with CallRecorder(
        tmp_path / "recordings",
        call_connection_id="call",
        correlation_id=None,
        profile="default",
        sample_rate=RATE,
        audio_format="pcm16",
    ) as recorder:
        recorder.caller_audio(LINE.pcm[:640], silent=False)
    (folder,) = (tmp_path / "recordings").iterdir()
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    assert (folder / CALL_PAGE).is_file()
    assert capsys.readouterr().out.strip() == f"Wrote {folder / CALL_PAGE}"
    # A folder holding one recording (an --out folder) will do, and --out puts the page anywhere.
    assert main(["report", str(tmp_path / "recordings"), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").read_text() == (folder / CALL_PAGE).read_text()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("callbridge report:")
    assert error.count("\n") == 1
