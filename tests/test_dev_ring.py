"""The local phone line: ``callbridge dev`` runs callbridge with the stand-ins, ``callbridge ring``
places a call through it the whole way (IncomingCall, JWTs, callbacks, media socket), the call
is recorded, drawn, and replays; Ctrl-C stops ``dev`` cleanly.

``dev`` runs as a real subprocess on loopback (a user's routing file and tools module in its
environment); ``ring`` and ``replay`` run in this process through ``main()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbridge.adapters.recording import META
from callbridge.assets import asset_path
from callbridge.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    main,
)
from callbridge.report import CALL_PAGE, RECORDING
from callbridge.sim.dev import LINE_FILE, dev_settings
from callbridge.sim.harness import DIALED_NUMBER

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

ROUTES = f"""
[numbers]
"{DIALED_NUMBER}" = "support"

[profiles.support]
tools = ["end_call", "lookup_order"]
tools_module = "tests.agent_tools"
"""
"""A user's routing file: only the stand-in's number is answered, by a profile with the user's
own tools module. No default profile, so other numbers are rejected."""


def start_dev(folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``callbridge dev`` in ``folder``, once its line file says it is ready. Its output goes
    to ``dev.out`` and ``dev.log`` there (a pipe nobody reads would fill and stall it)."""
    with (folder / "dev.out").open("w") as out, (folder / "dev.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "callbridge", "dev"],
            cwd=folder,
            # Only what the test gives: no configuration from the machine running the tests.
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=out,
            stderr=log,
            text=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (folder / LINE_FILE).is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
            pytest.fail(f"callbridge dev did not start:\n{(folder / 'dev.log').read_text()}")
        time.sleep(0.1)
    return process


def stop(process: subprocess.Popen[str], signal_number: int, folder: Path) -> tuple[str, str]:
    """Signal ``dev`` and wait for it to exit; what it printed and logged."""
    process.send_signal(signal_number)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return (folder / "dev.out").read_text(), (folder / "dev.log").read_text()


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running ``callbridge dev`` (with the user's routing file); its folder."""
    folder = tmp_path_factory.mktemp("line")
    routes = folder / "routes.toml"
    routes.write_text(ROUTES)
    process = start_dev(folder, {"CALLBRIDGE_ROUTES": str(routes), "LOG_FORMAT": "json"})
    yield folder
    stop(process, signal.SIGTERM, folder)


def test_a_rung_call_is_reported_recorded_drawn_and_replays(
    line: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(line)
    question = str(asset_path("caller_01_question"))
    code = main(["ring", "--say", question, "--hangup-after", "4", "--out", "out", "--json"])
    printed = json.loads(capsys.readouterr().out)

    assert code == EXIT_OK, printed["failures"]
    report = printed["calls"][0]
    assert report["setup"]["outcome"] == "answered"
    assert report["setup"]["ended_by"] == "caller"
    assert report["first_audio_ms"] is not None  # the agent was heard
    assert report["protocol_violations"] == []

    (recording,) = (line / "recordings").iterdir()
    meta = json.loads((recording / META).read_text())
    assert meta["complete"]
    assert meta["profile"] == "support"  # the user's routing file answered it
    assert meta["extra"]["tools_module"] == "tests.agent_tools"
    out = line / "out"
    assert (out / "call.wav").is_file()
    assert json.loads((out / "report.json").read_text())["calls"][0] == report
    assert (out / RECORDING / META).is_file()
    assert "<svg" in (out / CALL_PAGE).read_text()
    assert "<svg" in (recording / CALL_PAGE).read_text()  # dev keeps the page beside it too

    assert main(["replay", str(recording)]) == EXIT_OK
    assert "1 passed" in capsys.readouterr().out


def test_a_number_the_routing_file_does_not_answer_fails_the_ring(
    line: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(line)
    assert main(["ring", "+18005550999", "--hangup-after", "0"]) == EXIT_FAILED
    assert "the call did not complete" in capsys.readouterr().err


def test_ring_needs_the_token_dev_wrote(
    line: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    control_url = json.loads((line / LINE_FILE).read_text())["control_url"]
    monkeypatch.setenv("CALLBRIDGE_DEV_TOKEN", "not-the-token")
    assert main(["ring", "--to", control_url]) == EXIT_FAILED
    assert "(401)" in capsys.readouterr().err


def test_ring_without_dev_says_to_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["ring"]) == EXIT_UNAVAILABLE
    assert "start `callbridge dev`" in capsys.readouterr().err


def test_ring_checks_its_files_before_calling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "line.wav").write_text("not audio")
    assert main(["ring", "--say", "line.wav"]) != EXIT_OK
    assert "line.wav" in capsys.readouterr().err


def test_ctrl_c_hangs_up_the_call_in_progress_and_stops_dev_cleanly(tmp_path: Path) -> None:
    process = start_dev(tmp_path)
    ring = subprocess.Popen(
        [sys.executable, "-m", "callbridge", "ring", "--json"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any((tmp_path / "recordings").iterdir()):  # the call's media has started
            assert ring.poll() is None, "ring ended before its call started"
            assert time.monotonic() < deadline, "the call did not start"
            time.sleep(0.1)

        stdout, stderr = stop(process, signal.SIGINT, tmp_path)
        rung, _ = ring.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        for started in (process, ring):
            if started.poll() is None:
                started.kill()
                started.communicate()

    assert process.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in stderr
    assert "control" in stdout  # the banner named its ports
    assert not (tmp_path / LINE_FILE).exists()
    assert json.loads(rung)["calls"][0]["setup"]["ended_by"] == "shutdown"


def test_dev_runs_on_the_users_settings_with_the_stand_ins_filled_in(tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES)
    env = {
        "CALLBRIDGE_ROUTES": str(routes),
        "CALLBRIDGE_PACER_LEAD_MS": "60",
        # A deployment's own settings the stand-ins replace.
        "CALLBRIDGE_WEBHOOK_ENTRA_TENANT": "tenant",
        "CALLBRIDGE_WEBHOOK_ENTRA_AUDIENCE": "audience",
    }

    recorded = dev_settings(env, tmp_path / "recordings")
    support = recorded.routing.profile("support")
    assert support.tools_module == "tests.agent_tools"
    assert support.record
    assert recorded.recordings_dir == tmp_path / "recordings"
    assert recorded.pacing.lead_ms == 60
    assert recorded.auth.webhook_entra is None
    assert recorded.log_transcripts  # on by default here, as for the demo

    unrecorded = dev_settings(env, None)
    assert not unrecorded.routing.profile("support").record


def test_dev_with_an_invalid_routing_file_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALLBRIDGE_ROUTES", str(tmp_path / "missing.toml"))
    assert main(["dev", "--no-record"]) == EXIT_USAGE
    assert "missing.toml" in capsys.readouterr().err
    assert not (tmp_path / LINE_FILE).exists()
