"""Which call connection belongs to which call token, as this replica learned it (pure).

A callback's path token names one call (its call key: ACS's correlation id for an inbound call,
a random id for an outbound one), and ACS's JWT is not tied to any call at all. The action a
callback asks for, though, is addressed by the event's ``callConnectionId``, which the body
says and anyone holding a replayed JWT can write. So the connection id is learned where it
cannot be forged: from ACS's own answer to ``answer_call`` or ``create_call``. A callback is
then let act only on the connection its token's call was given.

A binding lives as long as the call token it pairs with (``call_token.DEFAULT_TTL_S``): past
that, the token itself is refused. Ended calls keep theirs until then, so a call's old token
cannot be turned on another call either. Only calls ACS really answered or placed are bound,
so the map holds at most the calls of the last hour.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from callbridge.core.call_token import DEFAULT_TTL_S


class CrossCallError(ValueError):
    """A callback whose token is for one call and whose connection id is another's. The message
    is safe to log (call keys and connection ids are ids, not secrets)."""


class CallBindings:
    """Call key ⇄ call connection id, for the calls this replica answered or placed."""

    def __init__(
        self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._connections: dict[str, tuple[str, float]] = {}
        """call key → (connection id, expiry), oldest first."""
        self._keys: dict[str, str] = {}
        """connection id → call key."""

    def bind(self, call_key: str, call_connection_id: str) -> None:
        """ACS answered or placed the call with ``call_key`` as ``call_connection_id``."""
        self._expire()
        self._unbind(call_key)
        self._connections[call_key] = (call_connection_id, self._clock() + self._ttl_s)
        self._keys[call_connection_id] = call_key

    def check(self, call_key: str, call_connection_id: str | None) -> None:
        """Let an event through unless this replica knows it pairs two different calls.

        Refused: the token's call was given another connection, or the connection belongs to
        another call. A pairing this replica knows nothing of (another replica answered the
        call, or its answer has not returned yet) passes: nothing here can tell it from a
        true one (the README's Security section says what that leaves open).

        Raises:
            CrossCallError: the token is for one call and the connection id another's.
        """
        if call_connection_id is None:
            return
        self._expire()
        bound = self._connections.get(call_key)
        if bound is not None and bound[0] != call_connection_id:
            raise CrossCallError(
                f"the token's call is connection {bound[0]}, the event names {call_connection_id}"
            )
        owner = self._keys.get(call_connection_id)
        if owner is not None and owner != call_key:
            raise CrossCallError(f"connection {call_connection_id} belongs to another call")

    def _unbind(self, call_key: str) -> None:
        bound = self._connections.pop(call_key, None)
        if bound is not None:
            self._keys.pop(bound[0], None)

    def _expire(self) -> None:
        # Every binding lives as long, so the oldest is first in insertion order.
        now = self._clock()
        while self._connections:
            call_key, (_, expires_at) = next(iter(self._connections.items()))
            if expires_at > now:
                return
            self._unbind(call_key)
