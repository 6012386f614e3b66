"""What happens to a ringing call: answered, rejected or redirected, in the background.

A call rings for only 30 s and Event Grid waits for the webhook's response, so each set-up runs
as a task of the replica's. They are bounded: at most ``MAX_SETUPS_IN_FLIGHT`` at a time on a
replica, so a flood of made-up IncomingCalls (from anyone holding the webhook secret) starts a
few answers, pre-warmed sessions or rejects, never thousands. A call that finds no free slot is
not taken, so that a later delivery of it is not mistaken for a duplicate.

An answered call's connection id, from ACS's own reply, is bound to its call token here
(``core.call_bindings``): the callbacks of that call may then act on that connection only.
A call taken here is awaited (``Replica.awaiting_media``) from the IncomingCall until its media
socket arrives, its answer fails, or it would have stopped ringing, so a drain covers it even
when its pre-warmed Voice Live session failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

import structlog

from callbridge.adapters.call_automation import RejectReason
from callbridge.adapters.telemetry import record_answer_latency, record_rejected
from callbridge.core.acs_events import IncomingCall
from callbridge.core.numbers import mask
from callbridge.core.profiles import AgentProfile
from callbridge.web.replica import Replica

log = structlog.get_logger(__name__)

MAX_SETUPS_IN_FLIGHT: Final = 16
"""Calls one replica answers, rejects or redirects at once. Not a figure of ACS's; ours: an
answer takes ACS well under a second, so 16 at a time is more calls a second than a replica
takes in (``CALLBRIDGE_MAX_CALLS`` is 50 by default), and a flood of made-up calls costs at
most 16 answers, 16 pre-warmed Voice Live sessions or 16 rejects at a time."""


def take_calls(replica: Replica, calls: Sequence[IncomingCall]) -> int:
    """Start setting up each call, in order, while a slot is free; how many were not taken."""
    for taken, call in enumerate(calls):
        if replica.setups_in_flight >= MAX_SETUPS_IN_FLIGHT:
            return len(calls) - taken
        _set_up(replica, call)
    return 0


def _set_up(replica: Replica, call: IncomingCall) -> None:
    context, correlation_id, dialed = call.incoming_call_context, call.correlation_id, call.dialed
    if not replica.incoming.first_time(correlation_id):
        log.info("call.duplicate_delivery", correlation_id=correlation_id)
        return
    routing = replica.settings.routing
    profile = routing.profile_for(dialed) if dialed is not None else None
    fields = {"correlation_id": correlation_id, "to": mask(dialed or "")}
    if profile is None:
        if (target := routing.redirect_to) is not None:
            log.info("call.unrouted_redirecting", **fields, target=mask(target))
            _spawn(replica, "redirect", lambda: _redirect(replica, context, target, correlation_id))
        else:
            log.info("call.unrouted_rejecting", **fields)
            _spawn(replica, "reject", lambda: _reject(replica, context, correlation_id, "none"))
        return
    if not replica.accepting_calls():
        log.warning("call.busy", **fields, draining=replica.draining)
        _spawn(replica, "reject", lambda: _reject(replica, context, correlation_id, "busy"))
        return
    log.info("call.incoming", **fields, profile=profile.name)
    replica.prewarm.start(correlation_id, profile)
    replica.answering += 1
    # An inbound call's token is keyed by its correlation id (CallControl.answer).
    replica.awaiting_media.expect(correlation_id)
    _spawn(replica, "answer", lambda: _answer(replica, context, correlation_id, profile))


def _spawn(replica: Replica, name: str, setup: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``setup`` as a task holding one of the replica's set-up slots until it is done."""
    replica.setups_in_flight += 1

    async def holding_a_slot() -> None:
        try:
            await setup()
        finally:
            replica.setups_in_flight -= 1

    replica.tasks.spawn(holding_a_slot(), name)


async def _answer(
    replica: Replica, context: str, correlation_id: str, profile: AgentProfile
) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        received = time.monotonic()
        try:
            call_id = await replica.control.answer(
                context, correlation_id=correlation_id, profile=profile
            )
        except Exception as exc:  # ACS refused or is unreachable: nothing else to do for it
            log.error("call.answer_failed", error=str(exc) or type(exc).__name__)
            replica.awaiting_media.discard(correlation_id)
            await replica.prewarm.discard(correlation_id)
            return
        finally:
            replica.answering -= 1
        replica.call_connections.bind(correlation_id, call_id)
        record_answer_latency((time.monotonic() - received) * 1000, direction="inbound")
        log.info("call.answered", call_connection_id=call_id, profile=profile.name)


async def _reject(
    replica: Replica, context: str, correlation_id: str, reason: RejectReason
) -> None:
    record_rejected("unrouted" if reason == "none" else reason)
    try:
        await replica.control.reject(context, reason)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.reject_failed", correlation_id=correlation_id, error=str(exc))


async def _redirect(replica: Replica, context: str, target: str, correlation_id: str) -> None:
    try:
        await replica.control.redirect(context, target)
    except Exception as exc:  # the call may have stopped ringing already
        log.error("call.redirect_failed", correlation_id=correlation_id, error=str(exc))
