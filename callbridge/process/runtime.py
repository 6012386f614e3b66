"""How the serving process runs: its event loop, and a heap the garbage collector leaves alone.

Both exist for the pacers. Every call's pacer wakes every 20 ms; anything that holds the event
loop for longer makes every call's audio late at once.

- **The event loop.** uvloop (libuv) runs the same asyncio code with the loop, its timers and
  its socket writes in C: less CPU per frame, so more calls per core before the pacers feel the
  load. It is an optional extra (``callbridge[fast]``, installed in the image); without it,
  asyncio's own loop runs. ``CALLBRIDGE_EVENT_LOOP`` picks one explicitly. uvloop's clock and
  timers count whole milliseconds; the pacer's grid, its lead and the 20 ms frames are far
  coarser than that, and the pacer lets a frame go up to a millisecond early so that it never
  waits on the clock's last fraction (``core.pacing.RELEASE_SLACK_S``).
- **The heap.** CPython's oldest-generation collection walks every object the process holds.
  After start-up that is the SDKs, aiohttp and numpy: about 90,000 objects, and one such
  collection held the loop for 50-65 ms in the 20-call bench, which the pacers saw as 50-60 ms
  of lateness and re-anchored over. ``settle_heap`` moves everything start-up made into the
  permanent generation (``gc.freeze``), so later collections walk only what calls made.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any

from callbridge.core.settings import EventLoop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def chosen_loop(choice: EventLoop) -> str:
    """The loop ``choice`` runs on here: ``uvloop`` or ``asyncio``."""
    if choice == "auto":
        return "uvloop" if uvloop_installed() else "asyncio"
    return choice


def run(main: Coroutine[Any, Any, None], choice: EventLoop) -> None:
    """Run ``main`` to completion on the chosen event loop."""
    factory: LoopFactory | None = None
    if chosen_loop(choice) == "uvloop":
        import uvloop  # noqa: PLC0415  (optional: only imported when chosen)

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def settle_heap() -> int:
    """Collect start-up's garbage, then freeze what is left out of every later collection.

    Call it once the service is ready to take calls and nothing more is imported or built for
    the process as a whole. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
