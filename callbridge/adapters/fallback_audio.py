"""The fallback clip: what the bridge says itself when no agent can talk.

When Voice Live is unreachable, refuses the session's configuration, or cannot be reconnected
within the budget, the caller hears a short recorded apology instead of silence, then is
transferred (``AgentProfile.fallback_transfer_to``) or hung up on. A profile may name its own
WAV (``fallback_audio``); otherwise one of two clips shipped with callbridge plays:
``fallback_transfer`` when a transfer follows, ``fallback_goodbye`` when the call ends.

Clips are validated at start-up (``callbridge.process.config``) and read once per process, so
a failing call never waits on the disk.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Final

from callbridge.core.codec import ACS_RATES, frame_bytes
from callbridge.core.framer import Framer
from callbridge.core.profiles import AgentProfile
from callbridge.core.resample import resample_pcm16

MIN_RATE: Final = 8000
MAX_RATE: Final = 48000
MAX_SECONDS: Final = 30.0
"""A fallback is an apology and a next step, not a message: longer clips are refused, so a
misconfigured file cannot hold a failed call open."""

_ASSETS: Final = "callbridge.assets"
"""The package the default clips ship in. Read as package data by name: the assets sit above
the adapters in the layers, and a WAV file is data, not code this module depends on."""


@dataclass(frozen=True)
class FallbackClip:
    """A clip as read: PCM16 mono samples at the file's own rate."""

    pcm: bytes
    sample_rate: int

    def frames(self, acs_rate: int) -> list[bytes]:
        """The clip as 20 ms PCM16 frames at ``acs_rate``, the last padded with silence.

        Raises:
            ValueError: ``acs_rate`` is not a rate ACS streams at.
        """
        if acs_rate not in ACS_RATES:
            raise ValueError(f"acs_rate must be one of {ACS_RATES}, got {acs_rate!r}")
        return _frames(self, acs_rate)


@lru_cache(maxsize=8)
def _frames(clip: FallbackClip, acs_rate: int) -> list[bytes]:
    # Cached: resampling a long clip takes a noticeable slice of the event loop, and the same
    # few clips play at the same one or two rates all day.
    framer = Framer(frame_bytes(acs_rate))
    frames = framer.push(resample_pcm16(clip.pcm, clip.sample_rate, acs_rate))
    tail = framer.flush()
    if tail is not None:
        frames.append(tail[0])
    return frames


@lru_cache(maxsize=32)
def load_fallback_clip(path: Path) -> FallbackClip:
    """Read and check the WAV at ``path``: PCM16 mono, 8-48 kHz, some audio, at most 30 s.

    Each path is read once per process (the result is cached); a replaced file is picked up
    by restarting.

    Raises:
        ValueError: naming ``path`` and what is wrong with it.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            count = wav.getnframes()
            if channels != 1 or width != 2:
                raise ValueError(
                    f"{path}: need mono 16-bit PCM, got {channels} channel(s) "
                    f"of {8 * width}-bit samples"
                )
            if not MIN_RATE <= rate <= MAX_RATE:
                raise ValueError(f"{path}: need 8000 to 48000 Hz, got {rate} Hz")
            if count > MAX_SECONDS * rate:
                raise ValueError(
                    f"{path}: {count / rate:.1f} s long; a fallback clip is at most "
                    f"{MAX_SECONDS:g} s"
                )
            pcm = wav.readframes(count)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (wave.Error, EOFError) as exc:  # wave reads uncompressed integer PCM only
        raise ValueError(f"{path}: not a PCM WAV file ({str(exc) or 'truncated'})") from exc
    if not pcm:
        raise ValueError(f"{path}: holds no audio")
    return FallbackClip(pcm=pcm, sample_rate=rate)


def _default_clip_path(transfer: bool) -> Path:
    """The shipped clip for a fallback followed by a transfer (``True``) or a hang-up."""
    name = "fallback_transfer.wav" if transfer else "fallback_goodbye.wav"
    # A plain or wheel install gives a real path; from a zip it would not exist, and the load
    # then fails loudly rather than playing nothing.
    return Path(str(files(_ASSETS) / name))


def fallback_clip(profile: AgentProfile) -> FallbackClip:
    """The clip ``profile``'s calls play when no agent can talk: its own, or the default.

    Raises:
        ValueError: the clip cannot be read (configured clips are checked at start-up).
    """
    if profile.fallback_audio is not None:
        return load_fallback_clip(Path(profile.fallback_audio))
    return load_fallback_clip(_default_clip_path(profile.fallback_transfer_to is not None))
