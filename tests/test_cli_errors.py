"""The ``callbridge`` command: expected failures end in one clear line and a documented exit
code (no traceback unless ``--verbose``), and the conventions: ``--version``, flags over the
environment, defaults and configuration shown in ``--help``, messages free of internal names.

The failures that start services run the real CLI as a subprocess on loopback; the ones
argparse or a path check stops run ``main()`` in this process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbridge.cli import EXIT_UNAVAILABLE, EXIT_USAGE, SUBCOMMANDS, main
from callbridge.sim.bench import MIN_SECONDS, bench_script
from callbridge.sim.loopback import LOOPBACK, free_port
from callbridge.sim.script import At, Hangup

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 40
TIMEOUT_S = 60

LOCAL_ENV = {
    "AZURE_VOICE_LIVE_ENDPOINT": f"http://{LOOPBACK}:9",
    "ACS_ACCESS_KEY": "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=",
    "CALLBRIDGE_AUTH": "off",
    "ACS_CALLER_ID": "+18005550100",
    "LOG_FORMAT": "json",
}
"""A local-development configuration; ACS_ENDPOINT and the public URL are added per test."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m callbridge ARGS`` with only ``env`` (and PATH) in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "callbridge", *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another socket is listening on."""
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        yield holder.getsockname()[1]


def local_env(acs_port: int, serve_port: int = 8000) -> dict[str, str]:
    return {
        **LOCAL_ENV,
        "ACS_ENDPOINT": f"http://{LOOPBACK}:{acs_port}",
        "CALLBRIDGE_PUBLIC_URL": f"http://{LOOPBACK}:{serve_port}",
    }


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The failure's message: the last stderr line, naming the command, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"callbridge {command}: "), result.stderr
    return last


# -- unreachable services, ports in use --


def test_dial_with_acs_unreachable_says_so_and_exits_3(closed_port: int) -> None:
    result = run_cli("dial", "+18005550111", env=local_env(closed_port))
    assert result.returncode == EXIT_UNAVAILABLE
    line = one_line_error(result, "dial")
    assert f"cannot reach ACS at http://{LOOPBACK}:{closed_port}" in line
    assert "check ACS_ENDPOINT" in line


def test_verbose_adds_the_traceback(closed_port: int) -> None:
    result = run_cli("dial", "+18005550111", "--verbose", env=local_env(closed_port))
    assert result.returncode == EXIT_UNAVAILABLE
    assert "Traceback" in result.stderr
    assert "ServiceRequestError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("callbridge dial: cannot reach ACS")


def test_serve_on_a_port_in_use_says_so_and_exits_3(closed_port: int, held_port: int) -> None:
    result = run_cli("serve", "--port", str(held_port), env=local_env(closed_port))
    assert result.returncode == EXIT_UNAVAILABLE
    line = one_line_error(result, "serve")
    assert f"cannot listen on {LOOPBACK}:{held_port}" in line
    assert "address already in use" in line.lower()
    assert "--port" in line


def test_emulate_on_a_port_in_use_says_so_and_exits_3(held_port: int) -> None:
    result = run_cli("emulate", "--port", str(held_port))
    assert result.returncode == EXIT_UNAVAILABLE
    assert f"cannot listen on {LOOPBACK}:{held_port}" in one_line_error(result, "emulate")


# -- bad paths and invalid files, found before anything starts --


def test_demo_out_on_an_existing_file_fails_before_the_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "report.txt"
    existing.write_text("keep me\n")
    assert main(["demo", "--out", str(existing)]) == EXIT_USAGE
    captured = capsys.readouterr()
    # Nothing was rung: the demo announces its call before placing it.
    assert "Ringing" not in captured.out
    assert captured.err.strip() == (
        f"callbridge demo: --out {existing}: a file is in the way; name a folder "
        "(created if missing)"
    )
    assert existing.read_text() == "keep me\n"


def test_replay_out_under_a_file_fails_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    scenario = ROOT / "tests" / "calls" / "calm_turn_taking.toml"
    code = main(["replay", str(scenario), "--out", str(blocker / "out")])
    assert code == EXIT_USAGE
    assert "cannot create the folder" in capsys.readouterr().err


def test_an_invalid_routing_file_stops_serve_with_every_problem(
    tmp_path: Path, closed_port: int
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(
        '[numbers]\n"+18005550100" = "sales"\n\n'
        '[profiles.support]\ngreting = "Hello"\ntools_module = "no_such_tools_module"\n'
    )
    result = run_cli("serve", env={**local_env(closed_port), "CALLBRIDGE_ROUTES": str(routes)})
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert f'{routes}: numbers."+18005550100" = "sales": no such profile' in result.stderr
    assert f"{routes}: profiles.support.greting: unknown key" in result.stderr
    assert f"{routes}: profiles.support.tools_module" in result.stderr
    assert "callbridge config" in result.stderr


def test_emulate_with_a_turn_that_is_not_a_wav_file(tmp_path: Path) -> None:
    turn = tmp_path / "turn.wav"
    turn.write_text("not audio")
    result = run_cli("emulate", "--turn", str(turn))
    assert result.returncode == EXIT_USAGE
    assert "--turn: cannot read the WAV file" in one_line_error(result, "emulate")


# -- conventions --


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("callbridge ")


@pytest.mark.parametrize("command", [add.__name__.removeprefix("_add_") for add in SUBCOMMANDS])
def test_every_help_shows_exit_codes_and_defaults(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    assert "exit codes:" in help_text
    assert "--verbose" in help_text
    if command in ("serve", "dial", "config"):
        assert "CALLBRIDGE_PUBLIC_URL" in help_text
        assert "callbridge config" in help_text
    if command == "serve":
        assert "--port PORT" in help_text
        assert "CALLBRIDGE_PORT, else 8000" in help_text
    if command == "bench":
        assert "(default: 10)" in help_text
        assert "(default: 20)" in help_text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["bench", "--calls", "abc"], "argument --calls: 'abc' is not a whole number"),
        (["bench", "--seconds", "10"], f"argument --seconds: 10 is below {MIN_SECONDS}"),
        (["serve", "--port", "70000"], "argument --port: 70000 is above 65535"),
        (["bench", "--line-playout-delay-ms", "x"], "'x' is not a number of milliseconds"),
        (["bench", "--bridge-cpus", "1-0"], "'1-0' is not a list of cores"),
    ],
)
def test_argument_errors_name_no_internals(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == EXIT_USAGE
    error = capsys.readouterr().err
    assert message in error
    assert "_" not in error.splitlines()[-1].replace("--line-playout-delay-ms", "")


def test_bench_calls_last_the_seconds_asked() -> None:
    """The caller hangs up at ``--seconds``, however many exchanges fit before it."""
    for seconds in (MIN_SECONDS, 20, 45):
        assert bench_script(seconds)[-1] == Hangup(At(seconds))
    exchanges = [len(bench_script(seconds)) // 2 for seconds in (MIN_SECONDS, 30, 45)]
    assert exchanges == [1, 2, 3]


def test_serve_flags_override_the_environment(closed_port: int) -> None:
    flag_port = free_port()
    env = {
        **local_env(closed_port, flag_port),
        "CALLBRIDGE_PORT": str(closed_port),
        "CALLBRIDGE_HOST": "0.0.0.0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "callbridge", "serve", "--host", LOOPBACK, "--port", str(flag_port)],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _healthy(f"http://{LOOPBACK}:{flag_port}/healthz", process)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, stderr
    assert f'"port": {flag_port}' in stderr


def _healthy(url: str, process: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            time.sleep(0.1)
    return False


def test_config_prints_the_effective_configuration_with_secrets_hidden(
    closed_port: int,
) -> None:
    secret_key = "k" * 48
    env = {**local_env(closed_port), "CALLBRIDGE_API_KEY": secret_key, "CALLBRIDGE_PORT": "9001"}
    result = run_cli("config", env=env)
    assert result.returncode == 0, result.stderr
    assert "port = 9001" in result.stdout.splitlines()
    assert "auth.api_key = (set, hidden)" in result.stdout.splitlines()
    assert "voice_live.api_key = (unset)" in result.stdout.splitlines()
    assert "log_transcripts = off" in result.stdout.splitlines()
    assert secret_key not in result.stdout + result.stderr
    assert LOCAL_ENV["ACS_ACCESS_KEY"] not in result.stdout + result.stderr


def test_config_reports_every_problem_without_starting(closed_port: int) -> None:
    env = {**local_env(closed_port), "CALLBRIDGE_PORT": "many", "CALLBRIDGE_LOG_TRANSCRIPTS": "yes"}
    result = run_cli("config", env=env)
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert "CALLBRIDGE_PORT='many' is not a number" in result.stderr
    assert "CALLBRIDGE_LOG_TRANSCRIPTS='yes' must be one of on, off" in result.stderr
    assert result.stdout == ""


def test_demo_says_where_its_recording_goes_when_asked_to_record(tmp_path: Path) -> None:
    """CALLBRIDGE_RECORD=on is the service's: the demo says so at once, and how to record."""
    env = {**os.environ, "CALLBRIDGE_RECORD": "on"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "callbridge", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stderr is not None
        first = demo.stderr.readline()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    assert "give --out DIR" in first
    assert not (tmp_path / "recordings").exists()
