"""A client session: its lifecycle, its limits and its outbound queue, for either transport.

The lifecycle is one table (h11's habit)::

    CONNECTED --logon ok--> LOGGED_ON --close--> CLOSED
    CONNECTED --close-----> CLOSED

`Session` holds what is common (account, permissions, token bucket, subscriptions, pending
outbound messages) and leaves the bytes to two subclasses in gateway/server.py: `TcpSession`
(an asyncio Protocol writing msgpack frames) and `WsSession` (a websockets connection with a
writer task writing JSON). Both disconnect a slow consumer once what waits to be written
exceeds `Limits.out_bytes_max`, before memory grows without bound.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

import msgspec


class State(str, Enum):
    CONNECTED = "connected"
    LOGGED_ON = "logged_on"
    CLOSED = "closed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONNECTED: frozenset({State.LOGGED_ON, State.CLOSED}),
    State.LOGGED_ON: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit of a session, named, with its unit and default. What happens at each:

    - frame_bytes_max: a longer frame -> `goodbye` FRAME_TOO_LARGE, disconnect.
    - messages_per_s / burst_messages: token bucket per session -> `reject` RATE_LIMITED.
    - open_orders_max: per account -> `reject` TOO_MANY_OPEN_ORDERS.
    - out_bytes_max: bytes waiting to be written to one session -> disconnect (SLOW_CONSUMER).
    - inbox_frames_max: frames read but not yet processed -> stop reading from the socket.
    - heartbeat_s: the server sends `heartbeat` after this long without writing.
    - idle_timeout_s: nothing received for this long -> `goodbye` IDLE_TIMEOUT, disconnect.
    - logon_skew_s: logon `ts` further than this from the server clock -> STALE_TIMESTAMP.
    """

    frame_bytes_max: int = 1 << 20
    messages_per_s: int = 5_000
    burst_messages: int = 10_000
    open_orders_max: int = 10_000
    out_bytes_max: int = 8 << 20
    inbox_frames_max: int = 1_024
    heartbeat_s: float = 10.0
    idle_timeout_s: float = 30.0
    logon_skew_s: float = 30.0


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one token per message."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "_clock")

    def __init__(self, rate: float, burst: float, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        tokens = self.tokens
        if tokens < 1.0:
            now = self._clock()
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if tokens < 1.0:
                self.tokens = tokens
                return False
        elif tokens < self.burst:
            now = self._clock()
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        else:
            self.stamp = self._clock()
        self.tokens = tokens - 1.0
        return True


class SessionStateError(Exception):
    """A transition the table does not allow (a bug in the server)."""


class Session:
    """What the server knows of one connection. Transport-specific writing is in subclasses."""

    transport_name = "?"

    def __init__(self, session_id: int, limits: Limits) -> None:
        self.session_id = session_id
        self.limits = limits
        self.state = State.CONNECTED
        self.account = 0
        self.key_id = ""
        self.permissions: frozenset[str] = frozenset()
        self.cancel_on_disconnect = False
        self.bucket = TokenBucket(limits.messages_per_s, limits.burst_messages)
        self.subscriptions: set[str] = set()
        self.out: list[Any] = []  # messages to write at the next `write_out`
        now = time.monotonic()
        self.last_in = now
        self.last_out = now
        self.close_reason = ""

    def transition(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise SessionStateError(f"session {self.session_id}: {self.state} -> {new}")
        self.state = new

    @property
    def logged_on(self) -> bool:
        return self.state is State.LOGGED_ON

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def write_out(self) -> None:
        """Write every pending message in one frame (one write)."""
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        """Close now, without waiting for pending output."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.session_id} {self.state.value} account={self.account}>"
        )
