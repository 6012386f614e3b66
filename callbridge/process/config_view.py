"""The effective configuration as lines an operator can read (``callbridge config``).

Every setting is shown under its dotted name in ``Settings`` (``voice_live.endpoint``), after
the environment, the defaults and the routing file have been applied. Secrets are the fields
their dataclass declares with ``repr=False``; they show only whether they are set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Final

from callbridge.core.settings import Settings

_MAX_SHOWN: Final = 100
"""Long prose (a prompt) is cut here; URLs and names fit."""
SECRET_SHOWN: Final = "(set, hidden)"


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every setting as ``(dotted name, value as shown)``, secrets hidden."""
    return list(_flatten("", settings, secret=False))


def _flatten(name: str, value: object, *, secret: bool) -> Iterator[tuple[str, str]]:
    if secret:
        yield name, "(unset)" if value is None or value in ("", b"") else SECRET_SHOWN
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _flatten(
                _join(name, field.name), getattr(value, field.name), secret=not field.repr
            )
    elif isinstance(value, Mapping):
        if not value:
            yield name, "(none)"
        for key, item in value.items():
            yield from _flatten(_join(name, str(key)), item, secret=False)
    else:
        yield name, _show(value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list | frozenset):
        text = ", ".join(str(item) for item in value) or "(none)"
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "\N{HORIZONTAL ELLIPSIS}"
