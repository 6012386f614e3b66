"""What the HTTP handlers of one replica share: clients, validators and this replica's calls.

Nothing here is needed for correctness across replicas (each call's data travels in its signed
token and ACS's ids); it holds connections worth reusing and the calls running on this process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from callbridge.adapters.call_automation import CallControl
from callbridge.adapters.jwt_validation import JwksCache, JwtValidator
from callbridge.adapters.prewarm import Prewarmer
from callbridge.adapters.telemetry import CallSummary
from callbridge.bridge.call import CallBridge
from callbridge.core.call_bindings import CallBindings
from callbridge.core.jwt_policy import (
    JwtError,
    SigningKeysUnavailable,
    acs_policy,
    bearer_token,
    event_grid_entra_policy,
)
from callbridge.core.settings import Settings
from callbridge.core.tasks import OwnedTasks

log = structlog.get_logger(__name__)

CallEndedObserver = Callable[[str, CallSummary], None]
"""Called with a call's connection id and its figures when the call ends on this replica."""

DEDUPE_WINDOW_S = 120.0
"""Event Grid may deliver an IncomingCall twice; a call rings for 30 s at most."""

SHUTDOWN_TIMEOUT_S = 10.0

MEDIA_WAIT_S = 30.0
"""How long a call taken here is expected to open its media socket, from the IncomingCall (or
the placed call's reply): about as long as a call rings. ACS publishes neither figure (see
``CallOperationDeadlines.answer_s``); it opens the socket moments after the answer, so one that
has not come by the time the call would have stopped ringing is not coming here."""


class RecentKeys:
    """Keys seen within a time window: answers duplicate deliveries once."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: dict[str, float] = {}

    def first_time(self, key: str) -> bool:
        """Record ``key``; False if it was already seen within the window."""
        now = time.monotonic()
        # Dicts keep insertion order, so expired keys are at the front.
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._window_s:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class AwaitedMedia:
    """Calls taken here whose media socket has not arrived: each until its socket comes, ACS
    says the call failed or ended, or ``window_s`` passes (its socket may well have gone to
    another replica). What a drain waits for besides the sockets: a call whose pre-warmed
    session failed, or that was placed here, is still coming."""

    def __init__(self, window_s: float = MEDIA_WAIT_S) -> None:
        self._window_s = window_s
        self._until: dict[str, float] = {}
        """call key → when its socket stops being expected, oldest first."""

    def expect(self, call_key: str) -> None:
        self._expire()
        self._until.pop(call_key, None)
        self._until[call_key] = time.monotonic() + self._window_s

    def discard(self, call_key: str) -> None:
        """The call's socket came, or it never will."""
        self._until.pop(call_key, None)

    def count(self) -> int:
        """How many are awaited now."""
        self._expire()
        return len(self._until)

    def _expire(self) -> None:
        # Every call waits as long, so the oldest is first in insertion order.
        now = time.monotonic()
        while self._until:
            call_key, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[call_key]


@dataclass
class Replica:
    """One replica's shared state, built when the app starts and closed when it stops."""

    settings: Settings
    control: CallControl
    prewarm: Prewarmer
    acs_jwt: JwtValidator | None
    """Validates ACS's tokens on callbacks and media sockets; None with authentication off."""
    webhook_jwt: JwtValidator | None
    """Validates Event Grid's Entra ID tokens, when configured."""
    tasks: OwnedTasks = field(default_factory=OwnedTasks)
    """Work that outlives the request that started it (answering, rejecting, hanging up)."""
    incoming: RecentKeys = field(default_factory=lambda: RecentKeys(DEDUPE_WINDOW_S))
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    """Each call's media socket here, by call connection id: the one it runs on, or, while it
    waits for ACS to rejoin, the one it lost. One per call, however often its socket rejoins:
    a call counts once against ``max_calls``, and a drain waits until none is left."""
    bridged_calls: dict[str, str] = field(default_factory=dict)
    """Each call whose media socket is here (or being upgraded): the call its token authorizes
    (``CallClaims.call_key``) -> the connection id the socket's ``x-ms-call-connection-id``
    header names, which nothing checks with ACS. From the upgrade to the bridge's end. One live
    bridge per call: a second socket for it is refused, unless ACS rejoins that connection
    (``callbridge.web.media_socket``)."""
    bridges: dict[str, CallBridge] = field(default_factory=dict)
    """This replica's calls in progress, by call connection id."""
    answering: int = 0
    """Answers in flight here, counted against the call limit until ACS replies."""
    awaiting_media: AwaitedMedia = field(default_factory=AwaitedMedia)
    """Calls answered or placed here whose media socket has not arrived yet (by call key)."""
    setups_in_flight: int = 0
    """Calls being answered, rejected or redirected right now (``web.call_setup``)."""
    call_connections: CallBindings = field(default_factory=CallBindings)
    """The connection id ACS itself gave each call token's call: its reply to the answer or the
    create, or its call properties asked for a callback (``web.callbacks``). What a callback
    may act on. Kept as long as the token, ended calls included.

    Not one map with ``bridged_calls``: that one is what a media socket claimed, true only
    while the socket lives, and a call answered on one replica is often bridged on another;
    this one is ACS's word, kept for the token's hour. Merged, a socket's header would vouch
    for callbacks, or a call long over would still look bridged."""
    on_call_ended: CallEndedObserver | None = None
    """Told each call's figures once its media socket closes (see ``create_app``)."""
    draining: bool = False
    """Set on SIGTERM: no new calls; the ones in progress finish (``callbridge.process.server``)."""

    def call_ended(self, call_connection_id: str, summary: CallSummary) -> None:
        """Hand a finished call's figures to the observer; its failure never reaches the call."""
        if self.on_call_ended is None:
            return
        try:
            self.on_call_ended(call_connection_id, summary)
        except Exception as exc:  # an embedder's bug must not break this replica
            log.error("call.observer_failed", error=repr(exc))

    def has_calls(self) -> bool:
        """Whether any call is here or on its way: taken here and its media socket still
        expected (its answer in flight included, whether or not its session is pre-warmed), or
        connected (its bridge starting, running or waiting for a rejoin). A drain ends only
        once none is left."""
        return bool(self.awaiting_media.count() or self.sockets)

    def accepting_calls(self) -> bool:
        """Whether this replica takes another call: not draining and under the call limit."""
        busy = len(self.sockets) + self.answering
        return not self.draining and busy < self.settings.max_calls

    async def require_acs_token(self, request: web.Request) -> None:
        """Let the request through only with a valid ACS-signed JWT (if authentication is on).

        Raises:
            web.HTTPUnauthorized: no token, or an invalid one (the reason is logged).
            web.HTTPServiceUnavailable: ACS's signing keys cannot be fetched right now.
        """
        if self.acs_jwt is None:
            return
        try:
            await self.acs_jwt.validate(bearer_token(request.headers))
        except SigningKeysUnavailable as exc:
            log.error("acs.signing_keys_unavailable", error=str(exc))
            raise web.HTTPServiceUnavailable(text="signing keys unavailable") from None
        except JwtError as exc:
            log.warning("acs.unauthorized", route=_route(request), reason=str(exc))
            raise web.HTTPUnauthorized(text="unauthorized") from None


REPLICA = web.AppKey("replica", Replica)


def _route(request: web.Request) -> str:
    """The route's pattern, never the path itself: callback paths hold call tokens."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "?"


@asynccontextmanager
async def open_replica(
    settings: Settings, on_call_ended: CallEndedObserver | None = None
) -> AsyncIterator[Replica]:
    """Create the shared clients; on exit, stop background work and close them all."""
    async with AsyncExitStack() as stack:
        control = CallControl(settings)
        stack.push_async_callback(control.aclose)
        prewarm = Prewarmer(
            settings.voice_live,
            ttl_s=settings.prewarm_ttl_s,
            heartbeat_s=settings.continuity.voice_live_stall_s / 2,
        )
        stack.push_async_callback(prewarm.aclose)
        acs_jwt = webhook_jwt = None
        if settings.auth.enabled:
            assert settings.acs.resource_id is not None  # load_settings guarantees it
            policy = acs_policy(
                settings.acs.resource_id,
                issuer=settings.acs.jwt_issuer,
                jwks_url=settings.acs.jwks_url,
            )
            keys = JwksCache(policy.jwks_url)
            stack.push_async_callback(keys.close)
            acs_jwt = JwtValidator(policy, keys)
            if (entra := settings.auth.webhook_entra) is not None:
                entra_policy = event_grid_entra_policy(entra.tenant_id, entra.audience)
                entra_keys = JwksCache(entra_policy.jwks_url)
                stack.push_async_callback(entra_keys.close)
                webhook_jwt = JwtValidator(entra_policy, entra_keys)
        replica = Replica(
            settings, control, prewarm, acs_jwt, webhook_jwt, on_call_ended=on_call_ended
        )
        stack.push_async_callback(replica.tasks.aclose, SHUTDOWN_TIMEOUT_S)
        yield replica
