"""Which call connection belongs to which call token, as ACS said it (pure).

A callback's path token names one call (its call key: ACS's correlation id for an inbound call,
a random id for an outbound one), and ACS's JWT is not tied to any call at all. The action a
callback asks for, though, is addressed by the event's ``callConnectionId``, which the body
says and anyone holding a replayed JWT can write. So the connection id is learned only where
it cannot be forged, from ACS itself: its reply to ``answer_call`` or ``create_call`` on the
replica that answered or placed the call, or, on any other replica, its reply to a query of the
named connection's properties (``learn``). A callback is then let act only on the connection
its token's call was given.

A binding lives as long as the call token it pairs with (``call_token.DEFAULT_TTL_S``): past
that, the token itself is refused. Ended calls keep theirs until then, so a call's old token
cannot be turned on another call either. Only what ACS said is bound, so the map holds at most
the calls of the last hour that this replica answered, placed or was asked to act on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from callbridge.core.call_token import DEFAULT_TTL_S, AuthError, CallClaims, verify_call_token


class CrossCallError(ValueError):
    """A callback whose token is for one call and whose connection id is another's. The message
    is safe to log (call keys and connection ids are ids, not secrets)."""


@dataclass(frozen=True, slots=True)
class ConnectionOwner:
    """What ACS says of a call connection: which call it is (its call properties)."""

    call_connection_id: str
    correlation_id: str | None
    """ACS's correlation id of the call: an inbound call's call key."""
    call_key: str | None
    """The call key of the token in the callback URL ACS was given for the call; None when
    that URL holds no valid token of this deployment (``callback_call_key``)."""


def callback_call_key(callback_url: str | None, signing_key: bytes) -> str | None:
    """The call key of the call token that ends ``callback_url`` (``.../api/callbacks/{token}``),
    if it is a valid token signed with ``signing_key``; else None."""
    if not callback_url:
        return None
    token = urlsplit(callback_url).path.rsplit("/", 1)[-1]
    try:
        return verify_call_token(token, signing_key).call_key
    except AuthError:  # another application's call on the same resource, or an expired token
        return None


class CallBindings:
    """Call key ⇄ the call connection id ACS gave that call, kept as long as the call's token."""

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
        """ACS says the call with ``call_key`` is ``call_connection_id``."""
        self._expire()
        self._unbind(call_key)
        self._connections[call_key] = (call_connection_id, self._clock() + self._ttl_s)
        self._keys[call_connection_id] = call_key

    def check(self, call_key: str, call_connection_id: str | None) -> bool:
        """Whether an event naming ``call_connection_id`` under ``call_key``'s token is known to
        be about the token's call.

        Returns:
            True: the pairing is bound (or the event names no connection, so acts on none).
            False: nothing is bound for either the call or the connection; only ACS can tell
            (``learn``).

        Raises:
            CrossCallError: the token's call was given another connection, or the connection
                belongs to another call.
        """
        if call_connection_id is None:
            return True
        self._expire()
        bound = self._connections.get(call_key)
        if bound is not None and bound[0] != call_connection_id:
            raise CrossCallError(
                f"the token's call is connection {bound[0]}, the event names {call_connection_id}"
            )
        owner = self._keys.get(call_connection_id)
        if owner is not None and owner != call_key:
            raise CrossCallError(f"connection {call_connection_id} belongs to another call")
        return bound is not None

    def learn(self, claims: CallClaims, owner: ConnectionOwner) -> None:
        """Bind what ACS said of a connection ``check`` knew nothing of, and refuse it unless it
        is the call ``claims`` authorizes.

        The token binds its call key, so that is what ACS's answer is held against: an inbound
        token's key is the call's correlation id; an outbound token's key appears only in the
        callback URL callbridge gave ACS when it placed the call. Either way the connection's
        true call is bound, so ACS is asked once per connection, and a refused pairing stays
        refused without asking again.

        Raises:
            CrossCallError: ACS says the connection is another call.
        """
        if claims.direction == "inbound":
            ours = owner.correlation_id == claims.call_key
        else:
            ours = owner.call_key == claims.call_key
        if ours:
            self.bind(claims.call_key, owner.call_connection_id)
            return
        if owner.call_key is not None:
            self.bind(owner.call_key, owner.call_connection_id)
        raise CrossCallError(
            f"ACS says connection {owner.call_connection_id} is another call "
            f"(correlation id {owner.correlation_id})"
        )

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
