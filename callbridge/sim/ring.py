"""``callbridge ring``: place a simulated call into a running ``callbridge dev`` and show it.

The phone lives in the ``dev`` process, beside the ACS stand-in that answers for it and the
Voice Live emulator whose records judge the call: ``ring`` only says what call to place, over
``dev``'s loopback control endpoint, and prints the report it gets back. Everything ``ring`` is
given is checked here first, so a bad path fails before a call starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Final

import aiohttp

from callbridge.sim.dev_calls import RingRequest, caller_lines
from callbridge.sim.dev_control import CALLS_PATH, bearer
from callbridge.sim.scenario import load_scenario

TOKEN_ENV: Final = "CALLBRIDGE_DEV_TOKEN"
"""The control token, for a ``ring`` run away from ``dev``'s folder (with ``--to``)."""

CONNECT_TIMEOUT_S: Final = 5.0
"""How long to wait for ``dev`` to take the connection. The call itself is bounded by ``dev``
(a call that never ends is judged a failure there), so the answer is awaited without limit."""


class RingError(Exception):
    """``ring`` cannot place the call; ``unavailable`` when ``dev`` cannot be reached."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def find_line(line_file: Path, control_url: str | None) -> tuple[str, str]:
    """The control URL (``control_url``, else the line file's) and token (``$CALLBRIDGE_DEV_TOKEN``,
    else the line file's).

    Raises:
        RingError: neither says where ``dev`` is, or the file is unreadable.
    """
    line: dict[str, Any] = {}
    token = os.environ.get(TOKEN_ENV)
    if control_url is None or token is None:
        try:
            line = json.loads(line_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RingError(
                f"no {line_file} here: start `callbridge dev` in this folder first (or give "
                f"--to and {TOKEN_ENV})",
                unavailable=True,
            ) from None
        except (OSError, ValueError) as exc:
            message = f"{line_file}: cannot read it ({exc}); restart `callbridge dev`"
            raise RingError(message) from exc
    url = control_url or line.get("control_url")
    token = token or line.get("token")
    if not isinstance(url, str) or not isinstance(token, str):
        raise RingError(f"{line_file}: no control_url and token in it; restart `callbridge dev`")
    return url, token


def check_request(request: RingRequest) -> None:
    """What ``dev`` would refuse, found before the call.

    Raises:
        ValueError: a caller line or the scenario cannot be used (ScenarioError lists every
            problem in the file).
    """
    caller_lines(request.say)
    if request.scenario is not None:
        load_scenario(request.scenario)


async def ask_dev(control_url: str, token: str, request: RingRequest) -> dict[str, Any]:
    """Ask ``dev`` at ``control_url`` for the call and wait for its result (``RingResult``'s
    JSON).

    Raises:
        RingError: ``dev`` cannot be reached, or it could not place or finish the call.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(
                control_url.rstrip("/") + CALLS_PATH,
                json=request.to_json(),
                headers=bearer(token),
            ) as response,
        ):
            body = await response.json(content_type=None)
    except aiohttp.ServerDisconnectedError as exc:
        raise RingError(
            f"callbridge dev at {control_url} stopped before the call ended", unavailable=True
        ) from exc
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise RingError(
            f"cannot reach callbridge dev at {control_url} ({exc or type(exc).__name__}); is it "
            "running? Start it with `callbridge dev`",
            unavailable=True,
        ) from exc
    if response.status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else body
        raise RingError(f"callbridge dev refused the call ({response.status}): {error}")
    return body


def print_result(result: dict[str, Any], *, json_output: bool, cwd: Path) -> None:
    """The call's report, its failures, and where its recording and files are."""
    if json_output:
        json.dump({"calls": [result["report"]], "failures": result["failures"]}, sys.stdout)
        sys.stdout.write("\n")
        return
    print(result["text"])
    for failure in result["failures"]:
        print(f"  FAILED: {failure}")
    recording = result["recording"]
    if recording is not None:
        shown = _relative(Path(recording), cwd)
        print(f"\nRecorded in {shown}; replay it with: callbridge replay {shown}")
    for path in result["written"]:
        print(f"Wrote {_relative(Path(path), cwd)}")
    if result["written"] and recording is None:
        print("(callbridge dev records nothing with --no-record: no recording, no call.html)")


def _relative(path: Path, cwd: Path) -> Path:
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path
