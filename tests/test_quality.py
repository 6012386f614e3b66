"""The code base stays ruff- and mypy-clean and keeps its layers: checked in the suite so CI
enforces it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
