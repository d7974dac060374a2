"""The exchange server: TCP (msgpack frames) and WebSocket (JSON) on two ports, one core.

One read is one batch. For each batch the server, in order:

1. decodes every message of the read (a malformed frame becomes a `reject`, in place);
2. checks the session: logged on, permission, rate limit, open-order limit;
3. turns each request into a core command, with `account` from the session and `ts` from
   the clock (stamped once per command, nanoseconds), and applies it (`core.apply`);
4. appends `(cmd, core.drain_records())` to the journal and makes sure the commit loop runs;
   the session goes on to its next read (unless `reads_in_flight_max` of its reads are still
   unanswered: then it waits for its oldest);
5. the commit loop keeps one `journal.flush()` in flight; when it returns it releases every
   batch applied before it began: the answers, the private reports of every account they
   touched and the public market data are queued to their sessions, and each touched
   session is written once.

Batches are released strictly in the order they were applied (a deque of pending batches),
so market data sequence numbers reach subscribers in order, and nothing is sent about a
command before it is durable. GTD orders expire on time, not only when the next command
comes: one timer on the server's `clock` waits for the earliest expiry among open GTD orders
(`next_expiry_ts`), and when that is due the server applies and journals `AdvanceTime(ts)`
like any command; nothing is journaled while nothing is due. The core is synchronous and
runs on the loop thread: its commands are serialized by construction.

The server reads no clock of its own: command stamps and GTD timers come from the `clock`
it is given (wall time), and the sessions' timeouts from its monotonic reading. Heartbeats
out, idle and logon timeouts are one timer on that clock, armed at the earliest deadline of
any session (`_arm_sessions`, no more often than every `tick_s`), so on a `ManualClock` a
test advances the time and sees the heartbeat or the goodbye at once.

`Server` is transport-agnostic; `TcpSession` and `WsSession` (gateway/server/session.py) only move
bytes. What a command's events tell whom is gateway/server/routing.py; the queries and subscriptions
that are not core commands are answered by gateway/server/queries.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import engine.commands as ec
from engine.events import Reason, Rejected
from engine.exchange import Exchange
from engine.reference import Project
from gateway.console.metrics import ServerMetrics
from gateway.server.auth import Authenticator
from gateway.server.clock import NS_PER_S, Clock, SystemClock, Timer
from gateway.server.commit import Batch, CommitPipeline
from gateway.server.marketdata import MarketData
from gateway.server.policy import ANSWERING, Reply, handle
from gateway.server.queries import ANSWERS, Queries
from gateway.server.routing import OrderInfo, reject_for, route
from gateway.server.session import Limits, Session, State, TcpSession, WsSession
from gateway.wire import protocol as p
from settlement.ledger import Ledger

log = logging.getLogger("tonne.gateway")


class Core(Protocol):
    """What the server needs of the core (settlement.core.Core is one): it applies commands
    and drains their settlement records; the server reads its exchange (books, open
    orders), ledger (queries) and catalogue, and changes them only through `apply`."""

    @property
    def exchange(self) -> Exchange: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def projects(self) -> dict[str, Project]: ...
    def apply(self, cmd: Any) -> list[Any]: ...
    def drain_records(self) -> list[Any]: ...
    def check_invariants(self) -> None: ...


class JournalLike(Protocol):
    """What the server needs of the journal (gateway/durability/journal.py `Journal`, or a
    test's): append a command with its records, and flush everything appended so far."""

    def append(self, cmd: Any, records: list[Any]) -> Any: ...
    async def flush(self) -> None: ...


class Server:
    """Sessions, auth, limits, the core/journal pipeline and market data fan-out."""

    def __init__(
        self,
        core: Core,
        journal: JournalLike,
        authenticator: Authenticator,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.core = core
        self.journal = journal
        self.auth = authenticator
        self.limits = limits or Limits()
        self.clock = clock or SystemClock()
        self.clock_ns: Callable[[], int] = self.clock.now_ns
        self._monotonic_ns: Callable[[], int] = self.clock.monotonic_ns
        lim = self.limits
        self._logon_timeout_ns = round(lim.logon_timeout_s * NS_PER_S)
        self._idle_timeout_ns = round(lim.idle_timeout_s * NS_PER_S)
        self._heartbeat_ns = round(lim.heartbeat_s * NS_PER_S)
        # a scan of every session at most this often (a quarter of the shortest timeout, as
        # the periodic tick this timer replaces): sessions' deadlines are many, scans few
        tick_s = max(0.01, min(lim.heartbeat_s, lim.idle_timeout_s, lim.logon_timeout_s) / 4)
        self._tick_ns = round(tick_s * NS_PER_S)
        self._sessions_timer: Timer | None = None
        self._sessions_at: int | None = None  # when it is due (monotonic)
        self.md = MarketData()
        # insertion-ordered (a dict, not a set): timeouts and closing visit sessions in the
        # order they opened, so that a seeded run replays exactly (tests/simulation.py)
        self.sessions: dict[Session, None] = {}
        self.by_account: dict[int, set[Session]] = {}
        self.counters: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        # what /metrics and the console read (gateway/console/metrics.py); None: not counted
        self.metrics = metrics
        # called with every list of batches released, after delivery (the console's hooks)
        self.on_release: list[Callable[[list[Batch]], None]] = []
        self._committed_seq = getattr(journal, "durable_seq", getattr(journal, "seq", 0))
        self.commits = CommitPipeline(
            journal,
            self._deliver,
            self._fail,
            self.spawn,
            observe=self._observe_commit if metrics is not None else None,
            monotonic_ns=self._monotonic_ns,
        )
        if metrics is not None:
            self.on_release.append(metrics.released)
        self._last_ts = 0
        self._orders: dict[int, OrderInfo] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # closed sessions whose connection still sends its last output (a slow consumer's
        # goodbye), each aborted after its linger or when the server closes
        self.lingering: set[Session] = set()
        self._tcp: asyncio.Server | None = None
        self._ws: Any = None
        self._stopped = False  # closing: no session timer is armed any more
        self.failed: BaseException | None = None
        self.failure = asyncio.Event()  # set when `failed` is
        self.exchange = core.exchange
        # GTD expiry in a quiet market: one timer at the earliest expiry (`_arm_expiry`);
        # the settlement core's also says when a catalogue change waits to take effect
        self._next_expiry_ts: Callable[[], int | None] = getattr(
            core, "next_expiry_ts", self.exchange.next_expiry_ts
        )
        self._expiry_timer: Timer | None = None
        self._expiry_at: int | None = None
        self._expiry_stopped = False  # closing: no timer is armed any more
        self.ledger: Ledger | None = core.ledger
        self.queries = Queries(self.exchange, self.ledger, self.md, core.projects, catalogue=core)
        self.projects = self.queries.projects  # the policy's context (gateway/server/policy.py)
        self.has_ledger = self.ledger is not None
        self._open_by_coid: dict[int, Any] = self.exchange.open_by_coid
        for order in self.exchange.open_orders.values():
            self._orders[order.order_id] = OrderInfo(
                order.account, order.client_order_id, order.side, order.qty
            )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", tcp_port: int | None = 0, ws_port: int | None = 0
    ) -> None:
        loop = asyncio.get_running_loop()
        if tcp_port is not None:
            self._tcp = await loop.create_server(self.tcp_session, host, tcp_port)
        if ws_port is not None:
            self._ws = await serve(
                self._ws_handler,
                host,
                ws_port,
                max_size=self.limits.frame_bytes_max,
                compression=None,
                ping_interval=None,
                max_queue=64,
                write_limit=1 << 16,
            )
        self._arm_expiry()  # GTD orders recovered from the store expire on time too

    def tcp_session(self) -> TcpSession:
        """A new TCP session, for the listener (or a transport of the caller's: the
        simulation's in-memory network calls its `connection_made`)."""
        return TcpSession(self, next(self._ids))

    @property
    def tcp_port(self) -> int:
        assert self._tcp is not None
        return int(self._tcp.sockets[0].getsockname()[1])

    @property
    def ws_port(self) -> int:
        assert self._ws is not None
        return int(next(iter(self._ws.sockets)).getsockname()[1])

    async def close(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        self._expiry_stopped = True
        self._stopped = True
        if self._sessions_timer is not None:
            self._sessions_timer.cancel()
            self._sessions_timer = None
        if self._tcp is not None:
            self._tcp.close()
        if self._ws is not None:
            self._ws.close()
        for s in list(self.sessions):
            s.abort("server closing")
        for s in list(self.lingering):
            s.abort_lingering()
        self.lingering.clear()
        if self._tcp is not None:
            await self._tcp.wait_closed()
        if self._ws is not None:
            await self._ws.wait_closed()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def serve_forever(self) -> None:
        assert self._tcp is not None or self._ws is not None
        await asyncio.Future()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self._changed.set()

    async def wait_counter(self, name: str, at_least: int = 1, timeout_s: float = 10.0) -> None:
        """Wait until counter `name` reaches `at_least` (for tests and tools)."""
        async with asyncio.timeout(timeout_s):
            while self.counters.get(name, 0) < at_least:
                self._changed.clear()
                await self._changed.wait()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sessions --------------------------------------------------------------------------

    def opened(self, s: Session) -> None:
        """A transport has a new connection: admit it, or say goodbye at `sessions_max`."""
        self.sessions[s] = None
        self.count("sessions_opened")
        first = min(self._logon_timeout_ns, self._idle_timeout_ns, self._heartbeat_ns)
        self._arm_sessions(s.opened_at + first)
        if len(self.sessions) > self.limits.sessions_max:
            self.count("sessions_refused")
            self.goodbye(s, Reason.TOO_MANY_SESSIONS, f"{self.limits.sessions_max} sessions open")

    def closed(self, s: Session, reason: str) -> None:
        """Called once by a transport when its connection is gone."""
        if s not in self.sessions:
            return
        del self.sessions[s]
        was_logged_on = s.logged_on
        if not s.closed:
            s.transition(State.CLOSED)
        s.close_reason = s.close_reason or reason
        self.md.drop(s)
        if s.account:
            peers = self.by_account.get(s.account)
            if peers is not None:
                peers.discard(s)
                if not peers:
                    del self.by_account[s.account]
        self.count("sessions_closed")
        if was_logged_on and s.cancel_on_disconnect and self.failed is None:
            self.spawn(self._cancel_on_disconnect(s))

    async def operator(self, cmd: Any) -> list[Any]:
        """Apply an operator command (stamped here) through the same pipeline as a
        client's: journaled, committed, its reports and market data released. Its events."""
        if self.failed is not None:  # refused before anything is applied
            raise RuntimeError(f"the server has failed: {self.failed!r}") from self.failed
        batch = self._new_batch()
        cmd = msgspec.structs.replace(cmd, ts=self._stamp())
        events: list[Any] = []
        self._apply(cmd, None, batch, 0, events)
        self._arm_expiry()
        await self._released(batch)
        if self.failed is not None:  # it failed meanwhile: the command may not be durable
            raise RuntimeError(f"the server has failed: {self.failed!r}") from self.failed
        return events

    async def _cancel_on_disconnect(self, s: Session) -> None:
        """Cancel the open orders this session entered (not those of the account's other
        sessions), as journaled cancels in one batch; the account's other sessions get the
        reports. A scan of the open orders: disconnects are rare, orders many."""
        batch = self._new_batch()
        mine = [oid for oid, info in self._orders.items() if info.session_id == s.session_id]
        for order_id in mine:
            self._apply(
                ec.Cancel(account=s.account, order_id=order_id, ts=self._stamp()), None, batch, 0
            )
        self.count("cancel_on_disconnect")
        self._arm_expiry()
        await self._released(batch)

    # -- session timeouts and heartbeats ------------------------------------------------

    def _arm_sessions(self, due: int) -> None:
        """Have the session timer fire by `due` (monotonic): move it if it is later."""
        if self._stopped or (self._sessions_at is not None and self._sessions_at <= due):
            return
        if self._sessions_timer is not None:
            self._sessions_timer.cancel()
        self._sessions_at = due
        delay_s = (due - self._monotonic_ns()) / NS_PER_S
        self._sessions_timer = self.clock.call_later(delay_s, self._sessions_due)

    def _sessions_due(self) -> None:
        """The session timer fired: logon and idle timeouts say goodbye, sessions that wrote
        nothing for `heartbeat_s` get a heartbeat; then the timer is armed for the earliest
        deadline left, at least `_tick_ns` from now (none without sessions)."""
        self._sessions_timer = None
        self._sessions_at = None
        if self._stopped:
            return
        now = self._monotonic_ns()
        lim = self.limits
        logon_ns, idle_ns, heartbeat_ns = (
            self._logon_timeout_ns,
            self._idle_timeout_ns,
            self._heartbeat_ns,
        )
        earliest: int | None = None
        for s in list(self.sessions):
            if not s.logged_on and now - s.opened_at >= logon_ns:
                self.count("logon_timeouts")
                self.goodbye(s, Reason.NOT_LOGGED_ON, f"no logon within {lim.logon_timeout_s} s")
                continue
            if now - s.last_in >= idle_ns:
                self.count("idle_timeouts")
                text = f"nothing received for {lim.idle_timeout_s} s"
                self.goodbye(s, Reason.IDLE_TIMEOUT, text)
                continue
            if now - s.last_out >= heartbeat_ns and not s.closed:
                s.out.append(p.ServerHeartbeat(ts=self.clock_ns()))
                s.write_out()
            due = min(s.last_in + idle_ns, s.last_out + heartbeat_ns)
            if not s.logged_on:
                due = min(due, s.opened_at + logon_ns)
            earliest = due if earliest is None else min(earliest, due)
        if earliest is not None:
            self._arm_sessions(max(earliest, now + self._tick_ns))

    def replace_keys(self, keys: Any) -> int:
        """Check logons against `keys` (a reloaded key file) from now on, and end every
        session logged on with a key that is no longer usable (`goodbye` KEY_REVOKED; its
        cancel-on-disconnect applies). How many sessions ended."""
        gone = self.auth.replace_keys(keys)
        ended = 0
        for s in list(self.sessions):
            if s.logged_on and s.key_id in gone:
                self.goodbye(s, Reason.KEY_REVOKED, "this session's API key was revoked")
                ended += 1
        self.count("keys_reloaded")
        return ended

    def lingered(self, s: Session) -> None:
        """`s`'s connection ended by itself (its last output was read, or the client left)."""
        if s in self.lingering:
            self.lingering.discard(s)
            self.count("lingering_closed")

    def linger(self, s: Session, linger_s: float) -> None:
        """`s` is closing gracefully (its goodbye behind its buffered output): abort it if
        its connection is still open after `linger_s`."""
        self.lingering.add(s)

        def give_up() -> None:
            if s in self.lingering:
                self.lingering.discard(s)
                self.count("slow_consumer_aborts")
                s.abort_lingering()

        self.clock.call_later(linger_s, give_up)

    def goodbye(self, s: Session, reason: Reason, text: str) -> None:
        """Say why, then close."""
        if s.closed:
            return
        s.out.append(p.Goodbye(reason=reason, text=text))
        s.write_out()
        s.close_reason = reason.value
        s.abort(reason.value)

    # -- GTD expiry on time -----------------------------------------------------------------

    def _arm_expiry(self) -> None:
        """Keep exactly one timer armed, for the earliest expiry of an open GTD order (none
        when there is none). Called after every read, operator command and expiry: O(1)
        unless the earliest expiry changed, when the timer is moved."""
        due = self._next_expiry_ts()
        if due == self._expiry_at or self._expiry_stopped:
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        self._expiry_at = due
        if due is not None and self.failed is None:
            self._expiry_timer = self.clock.call_at_ns(due, self._expiry_due)

    def _expiry_due(self) -> None:
        """The timer fired: if the earliest expiry is due by the clock, apply and journal
        `AdvanceTime(now)` like any command (its expiry reports go to the owners' sessions
        and its book updates to subscribers once it is committed); else (the clock is behind
        the timer, or the order is gone) arm again. Nothing is journaled when nothing is due."""
        self._expiry_timer = None
        self._expiry_at = None
        if self._expiry_stopped or self.failed is not None:
            return
        due = self._next_expiry_ts()
        ts = self._stamp()
        if due is not None and due <= ts:
            batch = self._new_batch()
            self._apply(ec.AdvanceTime(ts=ts), None, batch, 0)
            self.count("expiries_on_time")
            self._commit_soon()
        self._arm_expiry()

    def _goodbye_after(self, s: Session, batch: Batch, reason: Reason, text: str) -> None:
        """Say goodbye and close once the answers already in `batch` are released (they go
        out first, in the same write); the session reads nothing more meanwhile."""
        s.ending = True
        batch.items.append((None, lambda: self.goodbye(s, reason, text)))

    # -- the pipeline ----------------------------------------------------------------------

    def _stamp(self) -> int:
        ts = self.clock_ns()
        if ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        return ts

    def _new_batch(self, session: Session | None = None) -> Batch:
        return self.commits.new_batch(session)

    def _commit_soon(self) -> None:
        self.commits.commit_soon()

    async def _released(self, batch: Batch) -> None:
        await self.commits.released(batch)

    def open_orders(self, account: int) -> int:
        """The account's open orders (the policy's open-order limit)."""
        return len(self._open_by_coid.get(account, ()))

    async def handle_read(self, s: Session, items: list[Any]) -> None:
        """Process everything one read brought (messages, or `MalformedFrame`s in place)."""
        if self.failed is not None or s.closed or s.ending:
            return
        s.last_in = self._monotonic_ns()
        batch = self._new_batch(s)
        s.reads_in_flight += 1
        for item in items:
            if self.failed is not None:
                return
            if isinstance(item, p.MalformedFrame):
                self.count("malformed")
                batch.items.append(
                    (s, p.Reject(reason=Reason.MALFORMED_MESSAGE, text=str(item)[:200]))
                )
                continue
            if not s.bucket.take():
                self.count("rate_limited")
                batch.items.append((s, reject_for(item, Reason.RATE_LIMITED, "rate limit")))
                continue
            self._handle(s, item, batch)
            if s.ending:  # a goodbye follows the answers so far: the rest goes unread
                break
        self._arm_expiry()
        self._commit_soon()
        if s.reads_in_flight > self.limits.reads_in_flight_max:
            # back-pressure: this session reads no further until its oldest read is answered
            await self._released(self.commits.oldest_of(s, batch))

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            log.critical("core or journal failed, closing every session: %r", exc)
            for s in list(self.sessions):
                s.abort("journal failed")
            self.commits.fail()  # nothing more is released; wake who waits
            self.failure.set()  # `tonne serve` stops: a failed core never serves again

    def _deliver(self, batches: list[Batch]) -> None:
        """Send what durable batches hold, in order: each touched session is written once."""
        touched: set[Session] = set()
        md = self.md
        by_account = self.by_account
        for batch in batches:
            if batch.session is not None:
                batch.session.reads_in_flight -= 1
            for target, msg in batch.items:
                kind = type(target)
                if kind is str:
                    md.publish(target, msg, touched)
                elif kind is int:
                    for peer in by_account.get(target, ()):
                        peer.out.append(msg)
                        touched.add(peer)
                elif target is None:
                    msg()
                elif not target.closed:
                    target.out.append(msg)
                    touched.add(target)
        for s in touched:
            if not s.closed:
                s.write_out()
        for hook in self.on_release:
            hook(batches)

    def _observe_commit(self, latency_ns: int) -> None:
        assert self.metrics is not None
        journal = self.journal
        seq = getattr(journal, "durable_seq", getattr(journal, "seq", 0))  # durable now
        if seq == self._committed_seq:  # a read that changed nothing: no commit to count
            return
        self.metrics.committed(latency_ns / NS_PER_S, seq - self._committed_seq)
        self._committed_seq = seq

    def _handle(self, s: Session, msg: Any, batch: Batch) -> None:
        """Do what the policy decides for one message (gateway/server/policy.py)."""
        now = self._stamp()
        metrics = self.metrics
        if metrics is not None:
            kind = type(msg)
            metrics.commands[kind] = metrics.commands.get(kind, 0) + 1
        decided = handle(s, msg, now, self)
        if type(decided) is Reply:
            for name in decided.counters:
                self.count(name)
            if decided.query:
                answer = ANSWERS.get(type(msg))
                assert answer is not None, f"no handler for {type(msg).__name__}"
                answer(self.queries, s, msg, batch.items, now)
                return
            batch.items.extend((s, m) for m in decided.send)
            if decided.logged_on:
                self.by_account.setdefault(s.account, set()).add(s)
            if decided.goodbye is not None:
                self._goodbye_after(s, batch, *decided.goodbye)
            return
        how = ANSWERING[type(msg)]
        n = self._apply(decided, s, batch, msg.req_id if how.echo_req_id else 0)
        if n >= 0 and how.done:
            count = n if how.cancels else 1
            batch.items.append((s, p.Done(request=how.done, count=count, req_id=msg.req_id)))

    def _apply(
        self, cmd: Any, s: Session | None, batch: Batch, req_id: int, seen: list[Any] | None = None
    ) -> int:
        """Apply one command and route its events; the number of cancels it caused, or -1
        if it was rejected."""
        try:
            events = self.core.apply(cmd)
            if seen is not None:
                seen.extend(events)
        except Exception as exc:  # a broken core invariant: never serve on a wrong ledger
            log.exception("core.apply failed on %r", cmd)
            self._fail(exc)
            return -1
        try:
            records = self.core.drain_records()
            # A lone rejection changed nothing (the core's contract), so replay does not need
            # it and the journal is spared; anything else, records included, is journaled.
            if len(events) == 1 and type(events[0]) is Rejected and not records:
                ev = events[0]
                if s is not None:
                    reject = p.Reject(
                        reason=ev.reason,
                        text=ev.text,
                        client_order_id=ev.client_order_id,
                        order_id=ev.order_id,
                        req_id=req_id,
                        ts=ev.ts,
                    )
                    batch.items.append((s, reject))
                return -1
            self.journal.append(cmd, records)
        except Exception as exc:  # applied but not journaled: the core is ahead, stop
            log.exception("journal append failed on %r", cmd)
            self._fail(exc)
            return -1
        return route(events, s, batch.items, self._orders, req_id)

    # -- WebSocket ---------------------------------------------------------------------

    async def _ws_handler(self, ws: ServerConnection) -> None:
        s = WsSession(self, next(self._ids), ws)
        self.opened(s)
        writer = asyncio.create_task(s.writer())
        try:
            async for data in ws:
                if s.closed:  # closing: drop what still comes, so that its close frame is read
                    continue
                metrics = self.metrics
                if metrics is not None:
                    metrics.bytes_in["ws"] += len(data.encode() if type(data) is str else data)
                try:
                    items: list[Any] = p.decode_client_json(data)
                except p.MalformedFrame as exc:
                    items = [exc]
                await self.handle_read(s, items)
        except ConnectionClosed:
            pass
        finally:
            self.closed(s, "disconnected")
            s.wake()
            await writer


__all__ = ["Server", "Limits"]
