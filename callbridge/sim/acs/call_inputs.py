"""What a call through the stand-in is made from, besides ACS's own ids and state.

The person on the line (``Party``), how a dialled number behaves (``Callee``), what the
stand-in lends each call (``CallEnv``) and a call's departures from ACS's normal behaviour
(``CallOverrides``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from callbridge.sim.acs.delivery import Poster
from callbridge.sim.acs.faults import RestFault
from callbridge.sim.acs.signing import Signer, TokenSource
from callbridge.sim.phone import Echo, MediaFault
from callbridge.sim.script import Step


@dataclass(frozen=True, slots=True)
class Party:
    """The person on the phone line, an inbound caller or an outbound callee.

    Once media flows, their ``Phone`` follows ``script``, then hangs up ``hangup_after_s``
    after its last step (a ``Hangup`` step, sooner). Without media they wait
    ``max_duration_s`` from the moment the call connected, then hang up.
    """

    number: str
    """E.164, e.g. ``+14255550123``."""
    script: Sequence[Step] = ()
    hangup_after_s: float = 2.0
    max_duration_s: float = 60.0
    echo: Echo | None = None
    """On a speakerphone, what their phone plays comes back on the line (``Phone.echo``)."""


@dataclass(frozen=True, slots=True)
class CallEnv:
    """What a call needs from the stand-in that owns it."""

    poster: Poster
    signer: Signer
    spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
    """Run a background flow that the stand-in cancels and awaits when it stops."""
    bot_id: str
    """The raw id of the ACS identity that answers and places calls."""
    topic: str
    """The Event Grid topic of the ACS resource."""
    media_connect_timeout_s: float
    playout_delay_ms: float
    """The phone line's true playout delay."""


@dataclass(frozen=True, slots=True)
class CallOverrides:
    """Per-call departures from ACS's normal behaviour, for negative tests."""

    media_token: TokenSource | None = None
    """Sent as ``Authorization: Bearer`` on the media upgrade instead of a valid token."""
    callback_token: TokenSource | None = None
    """Sent as ``Authorization: Bearer`` on every callback instead of a valid token."""
    fail_transfer: bool = False
    """Transfers fail (``CallTransferFailed``) instead of taking the caller away."""
    media_faults: Sequence[MediaFault] = ()
    """Drops and stalls of the call's media socket (``MediaDrop``, ``MediaStall``)."""
    rest_faults: Sequence[RestFault] = ()
    """REST requests about this call that fail or hang (``RestFault``)."""
    media_after_s: float = 0.0
    """ACS opens the media socket this long after ``CallConnected`` (a late socket). How soon
    ACS opens it is not published; the stand-in opens it at once unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Callee:
    """How a dialled number behaves (``AcsStandin.on_dial``)."""

    party: Party
    answer: bool = True
    """False: it rings ``ring_s`` and the call fails with ``CreateCallFailed``."""
    ring_s: float = 0.0
    """How long it rings before it picks up (or gives up)."""
    overrides: CallOverrides = field(default_factory=CallOverrides)
    """The call's departures from ACS's normal behaviour (faults)."""


class IncomingCallOptions(TypedDict, total=False):
    """The keyword arguments of ``AcsStandin.incoming_call`` besides the dialed number and the
    caller's script, for the methods that pass them on (``AcsStandin.ring``, ``LocalStack``'s);
    their meanings and defaults are ``incoming_call``'s."""

    from_number: str
    hangup_after_s: float
    max_duration_s: float
    caller_display_name: str
    media_token: TokenSource | None
    callback_token: TokenSource | None
    fail_transfer: bool
    media_faults: Sequence[MediaFault]
    rest_faults: Sequence[RestFault]
    echo: Echo | None
    media_after_s: float
