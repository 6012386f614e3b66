"""The README and docs/ say only true things about the project itself: every repository path
they name exists, every ``callbridge`` subcommand and flag they name is one the command has,
every link between them lands on a heading, and the cheap commands they name run."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from callbridge.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

REPO_PATH = re.compile(
    r"(?<![\w./-])((?:callbridge|tests|infra|benchmarks|docs|\.ci)/[\w./*<>{}-]*[\w/*>}]"
    r"|Dockerfile|pyproject\.toml)"
)
"""A path from the repository's root: what a reader would look for in a checkout."""
PLACEHOLDER = re.compile(r"[<>*{}]|\.\.\.")
COMMAND = re.compile(r"(?:^|&& )\s*(?:\.venv/bin/)?callbridge ([a-z]+)((?: +[^`\n#|]*)?)", re.M)
"""A command line: ``callbridge`` first, or after ``&&`` (not a sentence about callbridge)."""
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`|```[a-z]*\n(.*?)```", re.S)
YOUR_PROJECT = re.compile(r"<!-- your project:.*?<!-- end of your project -->", re.S)
"""An example of a user's own project: its paths are theirs, not the repository's."""


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_spans(text: str) -> list[str]:
    """Inline code and the lines of code blocks: where commands and paths are written."""
    spans: list[str] = []
    for inline, block in CODE.findall(text):
        spans += [inline] if inline else block.splitlines()
    return spans


@cache
def options() -> dict[str, set[str]]:
    """Each subcommand's flags (``""``: the top level's)."""
    parser = build_parser()
    found = {"": {s for action in parser._actions for s in action.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = {s for a in sub._actions for s in a.option_strings}
    return found


def slug(heading: str) -> str:
    text = re.sub(r"[`*_~]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path: Path) -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_path_named_exists(doc: Path) -> None:
    missing = sorted(
        {
            path
            for span in code_spans(YOUR_PROJECT.sub("", doc.read_text()))
            for path in REPO_PATH.findall(span)
            if not PLACEHOLDER.search(path) and not (ROOT / path).exists()
        }
    )
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_subcommand_and_flag_named_exists(doc: Path) -> None:
    known = options()
    wrong = []
    for span in code_spans(doc.read_text()):
        for name, rest in COMMAND.findall(span):
            if name not in known:
                wrong.append(f"callbridge {name}")
                continue
            wrong += [
                f"callbridge {name} {flag}"
                for flag in FLAG.findall(rest)
                if flag not in known[name] | known[""]
            ]
    assert wrong == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_link_between_the_docs_lands(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        lands = path.exists() and not (anchor and path.suffix == ".md")
        if not lands and not (path.exists() and anchor in headings(path)):
            broken.append(target)
    assert broken == []


def test_the_docs_name_every_subcommand() -> None:
    """Each subcommand is documented somewhere a reader will find it."""
    text = "\n".join(doc.read_text() for doc in DOCS)
    named = {name for span in code_spans(text) for name, _ in COMMAND.findall(span)}
    assert set(options()) - {""} <= named


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        *[
            [n, "--help"]
            for n in (
                "serve",
                "dial",
                "config",
                "demo",
                "replay",
                "report",
                "bench",
                "dev",
                "ring",
                "emulate",
            )
        ],
    ],
)
def test_the_cheap_commands_run(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callbridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
