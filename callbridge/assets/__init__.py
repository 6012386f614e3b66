"""Recorded speech: a support agent's turns and a caller's lines for simulated calls, and the
fallback clips the bridge plays when no agent can talk (``callbridge.adapters.fallback_audio``).

The WAVs are 16 kHz mono PCM16, made once with espeak-ng and sox by ``make_assets.sh`` (in this
folder) and shipped inside the package, each beside a ``.txt`` transcript.
"""

from __future__ import annotations

import wave
from importlib.resources import files
from pathlib import Path

AGENT_LINES = (
    "agent_01_greeting",
    "agent_02_answer",
    "agent_03_followup",
    "agent_04_goodbye",
)
"""The agent's turns of the support call, in order (the answer is long enough to interrupt)."""

CALLER_LINES = ("caller_01_question", "caller_02_interrupt", "caller_03_thanks")
"""The caller's lines of the support call, in order."""


def asset_path(name: str) -> Path:
    """Locate a shipped asset file, e.g. ``asset_path("caller_01_question.wav")``.

    A bare line name (no suffix) means its WAV.

    Raises:
        FileNotFoundError: no such asset, or the package is installed in a way (a zip) that
            gives it no real file path.
    """
    if "." not in name:
        name += ".wav"
    resource = files(__name__) / name
    # Plain directory and wheel installs give a real path; a zipped install cannot be read
    # with ``wave`` by path, and we would rather fail loudly than copy files around.
    if not isinstance(resource, Path) or not resource.is_file():
        known = ", ".join(AGENT_LINES + CALLER_LINES)
        raise FileNotFoundError(f"no asset {name!r} (lines: {known})")
    return resource


def transcript(name: str) -> str:
    """The text spoken in a line, e.g. ``transcript("agent_01_greeting")``."""
    return asset_path(f"{name}.txt").read_text(encoding="utf-8").strip()


def read_wav(path: Path | str) -> tuple[bytes, int]:
    """Read a mono PCM16 WAV file and return ``(pcm, sample_rate)``.

    Raises:
        ValueError: the file is not mono 16-bit PCM.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except wave.Error as exc:  # e.g. float or compressed WAVs: stdlib wave reads PCM only
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from exc
    if width != 2 or channels != 1:
        raise ValueError(
            f"{path}: need mono 16-bit PCM, got {channels} channel(s) of {8 * width}-bit samples"
        )
    return pcm, rate
