"""How ``serve`` runs (process/runtime.py): the event loop it picks, and the frozen heap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvloop

from callbridge.core.settings import EventLoop
from callbridge.process import runtime
from callbridge.process.config import ConfigError, load_settings
from tests.test_config import BASE


def _loop_type(choice: EventLoop) -> type[asyncio.AbstractEventLoop]:
    """The class of the loop ``runtime.run`` runs a coroutine on."""
    seen: list[type[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()))

    runtime.run(main(), choice)
    return seen[0]


def test_auto_runs_on_uvloop_when_it_is_installed() -> None:
    # The dev extra installs it, as the image does (callbridge[fast]).
    assert runtime.uvloop_installed()
    assert runtime.chosen_loop("auto") == "uvloop"
    assert issubclass(_loop_type("auto"), uvloop.Loop)


def test_asyncio_turns_uvloop_off() -> None:
    assert runtime.chosen_loop("asyncio") == "asyncio"
    loop_type = _loop_type("asyncio")
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_the_setting_is_read_and_checked() -> None:
    assert load_settings(BASE).event_loop == "auto"
    assert load_settings({**BASE, "CALLBRIDGE_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert load_settings({**BASE, "CALLBRIDGE_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"
    with pytest.raises(ConfigError, match="CALLBRIDGE_EVENT_LOOP='trio' must be one of"):
        load_settings({**BASE, "CALLBRIDGE_EVENT_LOOP": "trio"})


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_the_heap_start_up_leaves_is_frozen_out_of_later_collections() -> None:
    frozen = runtime.settle_heap()
    assert frozen == gc.get_freeze_count() > 10_000  # the SDKs, aiohttp, numpy: all of it
    # What is made afterwards is collected as usual.
    made_later: list[list[int]] = [[]]  # a tracked object
    assert gc.is_tracked(made_later)
    assert gc.get_freeze_count() == frozen
