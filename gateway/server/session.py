"""A client session: its lifecycle, its limits and its outbound queue, for either transport.

The lifecycle is one table (h11's habit)::

    CONNECTED --logon ok--> LOGGED_ON --close--> CLOSED
    CONNECTED --close-----> CLOSED

`Session` holds what is common (account, permissions, token bucket, subscriptions, pending
outbound messages) and leaves the bytes to two subclasses below: `TcpSession` (an asyncio
Protocol reading and writing msgpack frames) and `WsSession` (a websockets connection with a
writer task writing JSON). Both disconnect a slow consumer once what waits to be written
exceeds `Limits.out_bytes_max`, before memory grows without bound.

A slow consumer still gets its `goodbye` (SLOW_CONSUMER) where the transport allows: it is
put behind what the transport already holds, past the limit once (a few dozen bytes), and the
connection is closed gracefully (TCP: a half close after the buffer, reading on and
discarding, so that what the client still sends does not turn the close into a reset that
would lose the goodbye; WebSocket: the close handshake). A client that reads what is
buffered within `slow_consumer_linger_s` reads the goodbye last. Nothing waits for it: the
session is closed for the server at once (cancel-on-disconnect runs), and a connection still
open after the linger is aborted, freeing its buffer (`Server.close` aborts it sooner).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from engine.events import Reason
from gateway.server.clock import NS_PER_S
from gateway.wire import protocol as p

if TYPE_CHECKING:
    from gateway.server.server import Server

log = logging.getLogger("tonne.gateway")


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
    - out_bytes_max: bytes waiting to be written to one session -> `goodbye` SLOW_CONSUMER
      behind what is already buffered, and a graceful close.
    - slow_consumer_linger_s: how long a slow consumer's close may wait for the client to
      read the goodbye; then the connection is aborted (its buffered output dropped).
    - inbox_frames_max: frames read but not yet processed -> stop reading from the socket.
    - reads_in_flight_max: reads of one session applied but not yet committed and answered;
      past it the session's next read waits for its oldest to be released (its socket is
      then paused by `inbox_frames_max`). Reads are applied while earlier ones commit.
    - heartbeat_s: the server sends `heartbeat` after this long without writing.
    - idle_timeout_s: nothing received for this long -> `goodbye` IDLE_TIMEOUT, disconnect.
    - logon_timeout_s: not logged on this long after connecting -> `goodbye` NOT_LOGGED_ON.
    - sessions_max: connections open at once (both ports) -> `goodbye` TOO_MANY_SESSIONS.
    - logon_skew_s: logon `ts` further than this from the server clock -> STALE_TIMESTAMP.
    - logon_failures_max: failed logons on one connection; the last gets its `logon_reject`,
      then `goodbye` TOO_MANY_LOGON_FAILURES and a disconnect (the rest of its read unread).
    """

    frame_bytes_max: int = 1 << 20
    messages_per_s: int = 5_000
    burst_messages: int = 10_000
    open_orders_max: int = 10_000
    out_bytes_max: int = 8 << 20
    slow_consumer_linger_s: float = 1.0
    inbox_frames_max: int = 1_024
    reads_in_flight_max: int = 8
    heartbeat_s: float = 10.0
    idle_timeout_s: float = 30.0
    logon_timeout_s: float = 10.0
    sessions_max: int = 10_000
    logon_skew_s: float = 30.0
    logon_failures_max: int = 5


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one token per message. Time is
    `monotonic_ns`, a clock's monotonic reading (`Clock.monotonic_ns`)."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "_clock")

    def __init__(self, rate: float, burst: float, monotonic_ns: Callable[[], int]) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._clock = monotonic_ns
        self.stamp = monotonic_ns()

    def take(self) -> bool:
        tokens = self.tokens
        if tokens < 1.0:
            now = self._clock()
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate / NS_PER_S)
            self.stamp = now
            if tokens < 1.0:
                self.tokens = tokens
                return False
        elif tokens < self.burst:
            now = self._clock()
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate / NS_PER_S)
            self.stamp = now
        else:
            self.stamp = self._clock()
        self.tokens = tokens - 1.0
        return True


class SessionStateError(Exception):
    """A transition the table does not allow (a bug in the server)."""


class Session:
    """What the server knows of one connection. Transport-specific writing is in subclasses.
    `monotonic_ns` is the server clock's monotonic reading: `opened_at`, `last_in` and
    `last_out` are in it (nanoseconds), and so is the token bucket's time."""

    transport_name = "?"

    def __init__(self, session_id: int, limits: Limits, monotonic_ns: Callable[[], int]) -> None:
        self.session_id = session_id
        self.limits = limits
        self.state = State.CONNECTED
        self.account = 0
        self.key_id = ""
        self.permissions: frozenset[str] = frozenset()
        self.cancel_on_disconnect = False
        self._monotonic_ns = monotonic_ns
        self.bucket = TokenBucket(limits.messages_per_s, limits.burst_messages, monotonic_ns)
        self.subscriptions: set[str] = set()
        self.out: list[Any] = []  # messages to write at the next `write_out`
        self.reads_in_flight = 0  # reads applied, not yet committed and released
        self.logon_failures = 0  # logons refused on this connection
        self.ending = False  # a goodbye is queued behind this session's answers: read no more
        now = monotonic_ns()
        self.opened_at = now
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

    def abort_lingering(self) -> None:
        """Abort a connection closed for the server but still sending its last output."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.session_id} {self.state.value} account={self.account}>"
        )


# -- transports --------------------------------------------------------------------------


class TcpSession(Session, asyncio.Protocol):
    """msgpack frames over TCP, as an asyncio Protocol: every `data_received` is one read,
    processed as one batch (later reads queue behind it, in order)."""

    transport_name = "tcp"

    def __init__(self, server: Server, session_id: int) -> None:
        Session.__init__(self, session_id, server.limits, server.clock.monotonic_ns)
        self.server = server
        self.reader = p.FrameReader(server.limits.frame_bytes_max)
        self.transport: asyncio.Transport | None = None
        self.inbox: list[bytes] = []
        self.busy = False
        self.paused = False
        self.lost = False  # connection_lost was called

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        metrics = self.server.metrics
        if metrics is not None:
            metrics.bytes_in["tcp"] += len(data)
        try:
            frames = self.reader.feed(data)
        except p.FrameTooLarge as exc:
            self.server.count("frames_too_large")
            self.server.goodbye(self, Reason.FRAME_TOO_LARGE, str(exc))
            return
        if not frames:
            return
        self.inbox.extend(frames)
        if len(self.inbox) > self.limits.inbox_frames_max and not self.paused:
            self.paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        if not self.busy:
            self.busy = True
            self.server.spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self.inbox and not self.closed:
                frames, self.inbox = self.inbox, []
                if self.paused:
                    self.paused = False
                    assert self.transport is not None
                    self.transport.resume_reading()
                items: list[Any] = []
                for frame in frames:
                    try:
                        items.extend(p.decode_client_msgpack(frame))
                    except p.MalformedFrame as exc:
                        items.append(exc)
                await self.server.handle_read(self, items)
        except Exception:  # a bug: drop this session, keep serving the others
            log.exception("session %s failed", self.session_id)
            self.abort("internal error")
        finally:
            self.busy = False

    def write_out(self) -> None:
        out = self.out
        if not out or self.closed or self.transport is None or self.transport.is_closing():
            out.clear()
            return
        self.out = []
        frame = p.encode_frame(out)
        self.transport.write(frame)
        metrics = self.server.metrics
        if metrics is not None:
            metrics.bytes_out["tcp"] += len(frame)
        self.last_out = self._monotonic_ns()
        buffered = self.transport.get_write_buffer_size()
        if buffered > self.limits.out_bytes_max:
            self._slow_consumer(buffered)

    def _slow_consumer(self, buffered: int) -> None:
        """Goodbye behind what is buffered (past the limit once), then a half close: the
        client reads everything, the goodbye, then the end of the stream; what it still
        sends is read and dropped (`data_received` of a closed session). Aborted if the
        connection is still open after `slow_consumer_linger_s`."""
        transport = self.transport
        assert transport is not None
        self.server.count("slow_consumers")
        self.close_reason = Reason.SLOW_CONSUMER.value
        text = f"{buffered} bytes unread, the limit is {self.limits.out_bytes_max}"
        transport.write(p.encode_frame([p.Goodbye(reason=Reason.SLOW_CONSUMER, text=text)]))
        transport.write_eof()  # FIN once the buffer is sent
        self.server.linger(self, self.limits.slow_consumer_linger_s)
        self.server.closed(self, Reason.SLOW_CONSUMER.value)

    def abort_lingering(self) -> None:
        if not self.lost and self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # the client is done sending: close (a half-closed slow consumer too)

    def abort(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.close_reason = self.close_reason or reason
            if self.server.failed is not None:
                self.transport.abort()
            else:
                self.transport.close()  # flushes a goodbye first

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.lingered(self)
        self.server.closed(self, "disconnected")


class WsSession(Session):
    """JSON over a websockets connection. Writes go through a bounded queue and one writer
    task, because `send` may wait for the client to read."""

    transport_name = "ws"

    def __init__(self, server: Server, session_id: int, ws: ServerConnection) -> None:
        super().__init__(session_id, server.limits, server.clock.monotonic_ns)
        self.server = server
        self.ws = ws
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self._ready = asyncio.Event()
        self.finished = False  # the writer has closed the connection, or seen it closed

    def write_out(self) -> None:
        out = self.out
        if not out:
            return
        self.out = []
        data = p.encode_json(out)
        self.queue.append(data)
        self.queued_bytes += len(data)
        metrics = self.server.metrics
        if metrics is not None:
            metrics.bytes_out["ws"] += len(data)
        self.last_out = self._monotonic_ns()
        if self.queued_bytes > self.limits.out_bytes_max:
            self._slow_consumer()
            return
        self._ready.set()

    def _slow_consumer(self) -> None:
        """Drop what waits unsent (the client is not reading it) and queue the goodbye alone:
        the writer sends it once websockets' own buffer drains, then closes; a connection
        not closed within `slow_consumer_linger_s` is aborted."""
        self.server.count("slow_consumers")
        text = f"{self.queued_bytes} bytes unread, the limit is {self.limits.out_bytes_max}"
        self.queue.clear()
        goodbye = p.encode_json([p.Goodbye(reason=Reason.SLOW_CONSUMER, text=text)])
        self.queue.append(goodbye)
        self.queued_bytes = len(goodbye)
        self.close_reason = Reason.SLOW_CONSUMER.value
        self.server.linger(self, self.limits.slow_consumer_linger_s)
        self.server.closed(self, Reason.SLOW_CONSUMER.value)
        self._ready.set()

    def abort_lingering(self) -> None:
        if not self.finished:
            self.ws.transport.abort()

    def wake(self) -> None:
        self._ready.set()

    async def writer(self) -> None:
        ws = self.ws
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self.queue:
                    data = self.queue.popleft()
                    self.queued_bytes -= len(data)
                    await ws.send(data, text=True)  # UTF-8 JSON as a text frame, no decode
                if self.closed:
                    await ws.close(1008 if self.close_reason else 1000, self.close_reason[:100])
                    break
        except ConnectionClosed:
            pass
        finally:
            self.finished = True
            self.server.lingered(self)
            self.queue.clear()
            self.queued_bytes = 0

    def abort(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        if self.server.failed is not None:
            self.queue.clear()
            self.queued_bytes = 0
            self.ws.transport.abort()
        # else the writer task sends what is queued (a goodbye), then closes
        self.server.closed(self, reason)
        self._ready.set()
