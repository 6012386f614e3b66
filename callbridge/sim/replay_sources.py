"""What ``callbridge replay`` replays: finding scenario files and recordings, and loading them.

A *source* is a scenario file (``*.toml``, see :mod:`callbridge.sim.scenario`) or a
recording folder (one holding ``meta.json``, see :mod:`callbridge.adapters.recording`), which
becomes a scenario whose expectations are what happened on the recorded call
(:mod:`callbridge.sim.recorded`).

Arguments are expanded so that ``callbridge replay tests/calls/*`` works as a shell glob does:

* a ``*.toml`` file is a scenario; a folder holding ``meta.json`` is a recording;
* any other folder stands for the scenario files (``*.toml``) and the recordings directly in
  it, in name order (not recursively; recordings still being written, ``*.partial``, are
  left out);
* anything else (the WAV and transcript files beside the scenarios, a folder of audio) is
  skipped, and said so. A path that does not exist, or arguments with nothing at all to
  replay, are errors.

Every source is loaded and checked before the first call rings, so a bad file costs no call
time: :class:`~callbridge.sim.scenario.ScenarioError` lists the problems of every file at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callbridge.adapters import recording
from callbridge.core.profiles import Routing
from callbridge.sim.scenario import Scenario, ScenarioError, load_scenario
from callbridge.tools import check_tools

RECORDING_META: Final = recording.META
"""The file that makes a folder a call recording."""
PARTIAL_SUFFIX: Final = recording.PARTIAL_SUFFIX
"""A recording folder's suffix until the recorder closes it."""


@dataclass(frozen=True)
class Sources:
    """What a list of arguments stands for."""

    found: list[Path] = field(default_factory=list)
    """Scenario files and recording folders, in argument order (folders expanded)."""
    skipped: list[str] = field(default_factory=list)
    """Arguments (or folder entries) that are neither, each with why it was left out."""
    problems: list[str] = field(default_factory=list)
    """Arguments that do not exist."""


def is_recording(path: Path) -> bool:
    return path.is_dir() and (path / RECORDING_META).is_file()


def find_sources(paths: Sequence[Path]) -> Sources:
    """Expand the arguments of ``callbridge replay`` (see the module docstring)."""
    sources = Sources()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            sources.found.append(path)

    for path in paths:
        if not path.exists():
            sources.problems.append(f"{path}: no such file or folder")
        elif path.is_file():
            if path.suffix == ".toml":
                add(path)
            else:
                sources.skipped.append(f"{path}: not a scenario file (*.toml)")
        elif is_recording(path):
            add(path)
        else:
            entries = _folder_sources(path, sources.skipped)
            if not entries:
                sources.skipped.append(
                    f"{path}: no scenario files (*.toml) or recordings (folders with"
                    f" {RECORDING_META}) in it"
                )
            for entry in entries:
                add(entry)
    return sources


def _folder_sources(folder: Path, skipped: list[str]) -> list[Path]:
    entries: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix == ".toml":
            entries.append(entry)
        elif is_recording(entry):
            if entry.name.endswith(PARTIAL_SUFFIX):
                skipped.append(f"{entry}: a recording still being written (or abandoned)")
            else:
                entries.append(entry)
    return entries


def load_source(path: Path) -> Scenario:
    """The scenario a source stands for: a ``*.toml`` scenario file, or a recording folder.

    Raises:
        ScenarioError: the source cannot be replayed; the message says why, naming the file
            and field. A folder that is not a recording is an error here: pass its files, or
            give the folder to :func:`replay_all` (or ``callbridge replay``), which expand it.
    """
    if is_recording(path):
        from callbridge.sim.recorded import scenario_from_recording  # noqa: PLC0415

        scenario = scenario_from_recording(path)
    elif path.is_dir():
        raise ScenarioError(
            [
                f"{path}: a folder, not a recording (it has no {RECORDING_META}): pass its"
                f" scenario files ({path}/*.toml), or replay the folder with callbridge replay"
                " or replay_all, which take every scenario file and recording in it"
            ]
        )
    else:
        scenario = load_scenario(path)
    problems = check_tools(Routing.single(scenario.profile))
    if problems:
        raise ScenarioError([f"{path}: agent.tools_module: {problem}" for problem in problems])
    return scenario


def load_sources(paths: Sequence[Path]) -> list[tuple[Path, Scenario]]:
    """Expand ``paths`` and load every source, before any call.

    Raises:
        ScenarioError: listing the problems of every source that cannot be replayed, every
            argument that does not exist, or that there is nothing to replay.
    """
    return load_found(paths, find_sources(paths))


def load_found(paths: Sequence[Path], sources: Sources) -> list[tuple[Path, Scenario]]:
    """Load the sources ``find_sources(paths)`` found, as :func:`load_sources` does."""
    problems = list(sources.problems)
    loaded: list[tuple[Path, Scenario]] = []
    for path in sources.found:
        try:
            loaded.append((path, load_source(path)))
        except ScenarioError as exc:
            problems += exc.problems
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if not problems and not loaded:
        problems.append(
            "nothing to replay: no scenario files (*.toml) or recording folders among "
            + " ".join(str(path) for path in paths)
        )
    if problems:
        raise ScenarioError(problems)
    return loaded
