"""PCM16 routines in C: the standard library's ``audioop`` on every supported Python.

``audioop`` is in the standard library up to 3.12 (which warn that it is going away) and comes
from the ``audioop-lts`` package on 3.13+; this module imports it once, quietly, for the codec
(``core.g711``) and for the per-frame measures that would cost several times more in numpy.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
    import audioop

__all__ = ["audioop", "rms"]


def rms(pcm: bytes) -> float:
    """The root mean square of little-endian PCM16 samples (0 for none)."""
    return float(audioop.rms(pcm, 2)) if len(pcm) >= 2 else 0.0
