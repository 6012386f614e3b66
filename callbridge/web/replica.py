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
    live_calls: dict[str, str] = field(default_factory=dict)
    """Each call with a media socket here (or one being upgraded): the call its token authorizes
    (``CallClaims.call_key``) -> the call connection id it is bridged under. One live bridge per
    call: a second socket for it is refused, unless ACS rejoins that connection
    (``callbridge.web.media_socket``)."""
    bridges: dict[str, CallBridge] = field(default_factory=dict)
    """This replica's calls in progress, by call connection id."""
    answering: int = 0
    """Calls accepted here whose media socket has not arrived yet (counted against the limit)."""
    setups_in_flight: int = 0
    """Calls being answered, rejected or redirected right now (``web.call_setup``)."""
    bindings: CallBindings = field(default_factory=CallBindings)
    """Which connection id ACS gave each call answered or placed here: what a callback may act
    on (``web.callbacks``)."""
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
        """Whether any call is here or on its way: an answer in flight, a media socket still
        expected (its session pre-warmed), or one connected (its bridge starting, running or
        waiting for a rejoin). A drain ends only once none is left."""
        return bool(self.answering or self.prewarm.pending or self.sockets)

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
