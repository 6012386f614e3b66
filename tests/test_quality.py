"""The code base stays ruff- and mypy-clean and keeps its layers: checked in the suite so CI
enforces it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lowest_priority() -> list[str]:
    """The prefix that runs a command at the lowest CPU priority, where ``nice`` exists.

    The checks are throughput work (mypy alone is some 20 s of CPU from a cold cache; ruff
    takes every core for its burst), while other tests, in parallel workers, run calls in real
    time: at the lowest priority the checks take only the CPU those calls leave idle.
    """
    nice = shutil.which("nice")
    return [nice, "-n", "19"] if nice is not None else []


@pytest.mark.parametrize(
    "arguments",
    [
        ["-m", "ruff", "check", "."],
        ["-m", "ruff", "format", "--check", "."],
        ["-m", "mypy"],
        # The contracts in pyproject.toml; import-linter's console script is this function.
        ["-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-contracts"],
)
def test_static_checks_pass(arguments: list[str]) -> None:
    """ruff (lint and format), mypy --strict and the import contracts report nothing."""
    result = subprocess.run(
        [*lowest_priority(), sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
