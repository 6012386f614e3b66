"""Deprecated: write ``from callbridge.tools import tool``. Kept for one release so tools
modules written against the old path keep loading."""

from __future__ import annotations

import warnings

from callbridge.tools import tool

__all__ = ["tool"]

warnings.warn(
    "callbridge.voice.tools is now callbridge.tools: import tool from there",
    DeprecationWarning,
    stacklevel=2,
)
