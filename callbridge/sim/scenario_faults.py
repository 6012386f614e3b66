"""Reading a scenario file's ``[[faults]]``: what goes wrong during the call, and when.

Each fault is a table with a ``kind`` and the keys of that kind; the stand-ins inject it (see
:mod:`callbridge.sim.voicelive.faults`, :class:`~callbridge.sim.phone.MediaDrop`,
:class:`~callbridge.sim.phone.MediaStall` and :mod:`callbridge.sim.acs.faults` for exactly what
each does)::

    [[faults]]                  # Voice Live closes the socket 1.5 s into the agent's answer
    kind = "voice_live_drop"
    during_response = 1         # the call's responses from 0 (the greeting); or at_s = 3.0
    after_audio_ms = 1500       # once that much of it was sent (default 0: its first audio)
    # close_code = 1011         # default 1011; 1000 is a clean close
    # abort = true              # no close frame at all, like a TCP reset
    # session = 0               # which of the call's sessions: 0 (default), 1... or "every"

Kinds and their keys (``session`` as above on every ``voice_live_*`` kind):

* ``voice_live_drop``, ``voice_live_hang`` (stops sending, still answers pings),
  ``voice_live_freeze`` (stops sending and answering pings): ``at_s`` (seconds after the
  session connected) or ``during_response`` with ``after_audio_ms``; a drop also takes
  ``close_code`` and ``abort``.
* ``voice_live_slow_accept``: ``delay_ms`` before the connect completes.
* ``voice_live_refuse``: ``status`` (429 or 503, default 503), ``retry_after_s`` (default 1).
* ``voice_live_expire``: ``after_s``, the session's lifetime (``expires_at``).
* ``media_drop``: ``at_s`` (seconds after the first media socket opened); ``rejoin_after_s``:
  ACS opens a new socket that long after the drop (absent: it never does); ``abort``.
* ``media_stall``: ``at_s``; ``for_s`` (absent: for good). The socket stays open, no frames.
* ``acs_rest_error``: ``operation`` (``answer``, ``hang_up``, ``transfer``) fails with
  ``status`` (default 500), ``times`` times (default 1; ``"every"``), each request first held
  ``delay_s`` (default 0).
* ``acs_rest_slow``: ``operation`` succeeds, but only ``delay_s`` after each request (``times``
  as above).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast, get_args

from callbridge.process.toml_file import is_whole_number
from callbridge.sim.acs import MediaDrop, MediaFault, MediaStall, RestFault
from callbridge.sim.acs.faults import RestOperation
from callbridge.sim.scenario_reader import ScenarioReader, show
from callbridge.sim.scenario_schema import Faults
from callbridge.sim.voicelive import Drop, Expire, Fault, Freeze, Hang, Refuse, SlowAccept

_TIMED: Final = ("at_s", "during_response", "after_audio_ms", "session")
_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "voice_live_drop": (*_TIMED, "close_code", "abort"),
    "voice_live_hang": _TIMED,
    "voice_live_freeze": _TIMED,
    "voice_live_slow_accept": ("delay_ms", "session"),
    "voice_live_refuse": ("status", "retry_after_s", "session"),
    "voice_live_expire": ("after_s", "session"),
    "media_drop": ("at_s", "rejoin_after_s", "abort"),
    "media_stall": ("at_s", "for_s"),
    "acs_rest_error": ("operation", "status", "times", "delay_s"),
    "acs_rest_slow": ("operation", "delay_s", "times"),
}
EVERY: Final = "every"
"""``session`` or ``times``: not one, all of them."""


@dataclass(slots=True)
class _Collected:
    voice_live: list[Fault] = field(default_factory=list)
    media: list[MediaFault] = field(default_factory=list)
    rest: list[RestFault] = field(default_factory=list)


class FaultsReader(ScenarioReader):
    """Reads ``[[faults]]``; a fault whose values its stand-in refuses is a problem too."""

    def faults(self, document: Mapping[str, Any]) -> Faults:
        collected = _Collected()
        for index, raw in enumerate(self.array(document, "", "faults") or []):
            where = f"faults[{index}]"
            if not isinstance(raw, dict):
                example = '{ kind = "media_drop", at_s = 2 }'
                self.problems.at(where, f"must be a table such as {example}, not {show(raw)}")
                continue
            kind = self.choice(raw, where, "kind", list(_KEYS))
            if kind is None:
                if "kind" not in raw:
                    self.problems.at(f"{where}.kind", f"required: one of {', '.join(_KEYS)}")
                continue
            self.unknown_keys(raw, where, ("kind", *_KEYS[kind]))
            try:
                self._build(kind, raw, where, collected)
            except ValueError as exc:
                self.problems.at(where, str(exc))
        return Faults(tuple(collected.voice_live), tuple(collected.media), tuple(collected.rest))

    def _build(self, kind: str, raw: Mapping[str, Any], where: str, into: _Collected) -> None:
        """Append the fault ``raw`` describes; raises ValueError when its stand-in refuses it."""
        match kind:
            case "voice_live_drop" | "voice_live_hang" | "voice_live_freeze":
                session = self._session(raw, where)
                at_s = self._seconds(raw, where, "at_s")
                response = self._whole(raw, where, "during_response")
                after_audio_ms = self._whole(raw, where, "after_audio_ms") or 0
                if kind == "voice_live_drop":
                    code = self._whole(raw, where, "close_code") or 1011
                    abort = self._flag(raw, where, "abort")
                    into.voice_live.append(
                        Drop(
                            session=session,
                            at_s=at_s,
                            during_response=response,
                            after_audio_ms=after_audio_ms,
                            close_code=code,
                            abort=abort,
                        )
                    )
                else:
                    silent = Hang if kind == "voice_live_hang" else Freeze
                    into.voice_live.append(
                        silent(
                            session=session,
                            at_s=at_s,
                            during_response=response,
                            after_audio_ms=after_audio_ms,
                        )
                    )
            case "voice_live_slow_accept":
                session = self._session(raw, where)
                if self._present(raw, where, "delay_ms"):
                    delay_ms = self._whole(raw, where, "delay_ms")
                    if delay_ms is not None:
                        into.voice_live.append(SlowAccept(delay_ms, session))
            case "voice_live_refuse":
                into.voice_live.append(
                    Refuse(
                        status=self._whole(raw, where, "status") or 503,
                        retry_after_s=self._whole(raw, where, "retry_after_s") or 1,
                        session=self._session(raw, where),
                    )
                )
            case "voice_live_expire":
                session = self._session(raw, where)
                if self._present(raw, where, "after_s"):
                    after_s = self._seconds(raw, where, "after_s")
                    if after_s is not None:
                        into.voice_live.append(Expire(after_s, session))
            case "media_drop":
                if self._present(raw, where, "at_s"):
                    at_s = self._seconds(raw, where, "at_s")
                    rejoin_after_s = self._seconds(raw, where, "rejoin_after_s")
                    abort = self._flag(raw, where, "abort")
                    if at_s is not None:
                        into.media.append(MediaDrop(at_s, rejoin_after_s, abort))
            case "media_stall":
                if self._present(raw, where, "at_s"):
                    at_s = self._seconds(raw, where, "at_s")
                    for_s = self._seconds(raw, where, "for_s")
                    if at_s is not None:
                        into.media.append(MediaStall(at_s, for_s))
            case "acs_rest_error" | "acs_rest_slow":
                self._rest_fault(kind == "acs_rest_error", raw, where, into)

    def _rest_fault(
        self, fails: bool, raw: Mapping[str, Any], where: str, into: _Collected
    ) -> None:
        if not self._present(raw, where, "operation"):
            return
        operation = self.choice(raw, where, "operation", get_args(RestOperation))
        status = (self._whole(raw, where, "status") or 500) if fails else None
        times = None if raw.get("times") == EVERY else self._whole(raw, where, "times") or 1
        delay_s = self._seconds(raw, where, "delay_s") or 0.0
        if operation is not None:
            into.rest.append(
                RestFault(
                    cast(RestOperation, operation),
                    status=status,
                    times=times,
                    delay_s=delay_s,
                )
            )

    def _present(self, raw: Mapping[str, Any], where: str, key: str) -> bool:
        if key not in raw:
            self.problems.at(f"{where}.{key}", "required")
            return False
        return True

    def _seconds(self, raw: Mapping[str, Any], where: str, key: str) -> float | None:
        return self.number(raw, where, key, minimum=0.0)

    def _whole(self, raw: Mapping[str, Any], where: str, key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if not (is_whole_number(value) and value >= 0):
            self.problems.at(f"{where}.{key}", f"must be a whole number >= 0, not {show(value)}")
            return None
        return int(value)

    def _flag(self, raw: Mapping[str, Any], where: str, key: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            self.problems.at(f"{where}.{key}", f"must be true or false, not {show(value)}")
            return False
        return value

    def _session(self, raw: Mapping[str, Any], where: str) -> int | None:
        """``session``: which of the call's Voice Live sessions, from 0; ``"every"``: all."""
        if raw.get("session") == EVERY:
            return None
        session = self._whole(raw, where, "session")
        return 0 if session is None else session
