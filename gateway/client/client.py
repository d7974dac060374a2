"""The asyncio client library: connect over TCP or WebSocket, log on, trade, stream markets.

    client = await Client.connect_tcp("127.0.0.1", 7001)      # or Client.connect_ws(url)
    client = await Client.connect_any([("10.0.0.1", 7001), ("10.0.0.2", 7001)])  # failover
    await client.logon(key_id, secret, cancel_on_disconnect=True)
    ack = await client.place("VCS-1340-2020", Side.BUY, qty=10, price=1250)
    await client.subscribe("VCS-1340-2020")                    # client.books[...] stays current
    await client.close()

Every message the server sends is also kept (a bounded history) so a caller can
`await client.wait_for(predicate)` for fills, cancels and market data without sleeping.

A screened basket is one call that waits for the whole of it (its ack, fills, the cancel
of its rest, its summary and, buying to retire, its certificate)::

    basket = await client.basket_buy("label CORSIA", qty=200, price=1800,
                                     retire_for=p.RetireFor(beneficiary="Harbour Airlines"))
    basket.done.filled, basket.fills[0].serials, basket.certificate.cert_id

A buy-and-retire order is `place(..., tif=TimeInForce.IOC, retire_for=p.RetireFor(...))`;
its `order_certificate` comes after its fills: `await client.order_certificate(order_id)`.
`LocalBook` keeps an L2 book from a snapshot and increments and re-subscribes by itself
when it sees a gap in the sequence numbers.

Exceptions share one root::

    ClientError
     ├── ConnectionLost      the connection closed (`reason`: the server's goodbye, if any)
     ├── ProtocolViolation   the server sent something that does not decode
     ├── LogonFailed         the server answered the logon with `logon_reject`
     └── RequestRejected     the server answered a request with `reject` (`reason`, `text`)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from engine.commands import Side, TimeInForce
from engine.events import Reason
from gateway.server.auth import sign_logon
from gateway.server.clock import NS_PER_S, Clock, SystemClock, Timer
from gateway.wire import protocol as p

HISTORY_MAX = 100_000  # messages kept for `wait_for`
FRAME_BYTES_MAX = 64 << 20  # the largest frame the client accepts from the server
ENDPOINTS_MAX = 16  # endpoints `connect_any` takes
FAILOVER_DEADLINE_S = 30.0  # `connect_any` gives up after this (a failover: the lease TTL)
FAILOVER_RETRY_S = 0.2  # between rounds over the endpoints
CONNECT_ATTEMPT_S = 2.0  # one TCP connect


class ClientError(Exception):
    """Root of every error the client library raises."""


class ConnectionLost(ClientError):
    def __init__(self, reason: str = "", text: str = "") -> None:
        super().__init__(f"connection lost: {reason} {text}".strip())
        self.reason = reason
        self.text = text


class ProtocolViolation(ClientError):
    pass


class LogonFailed(ClientError):
    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(f"{reason.value}: {text}")
        self.reason = reason
        self.text = text


class RequestRejected(ClientError):
    def __init__(self, reject: p.Reject) -> None:
        super().__init__(f"{reject.reason.value}: {reject.text}")
        self.reject = reject
        self.reason = reject.reason
        self.text = reject.text


class Basket:
    """What became of a basket (`Client.basket_buy`): its `order_ack` (series ""), its
    `fill`s in the order they traded (each with its book's series and serials), the
    `cancelled` of the tonnes it did not fill (None: it filled them all), its `basket_done`
    summary, and its `order_certificate` (None unless it bought to retire and filled)."""

    __slots__ = ("ack", "fills", "cancelled", "done", "certificate")

    def __init__(
        self,
        ack: p.OrderAck,
        fills: list[p.Fill],
        cancelled: p.Cancelled | None,
        done: p.BasketDone,
        certificate: p.OrderCertificate | None,
    ) -> None:
        self.ack = ack
        self.fills = fills
        self.cancelled = cancelled
        self.done = done
        self.certificate = certificate

    @property
    def order_id(self) -> int:
        return self.ack.order_id


class LocalBook:
    """An L2 book kept from one snapshot and the updates after it."""

    __slots__ = ("series", "seq", "bids", "asks", "synced", "gaps")

    def __init__(self, series: str) -> None:
        self.series = series
        self.seq = -1
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.synced = False
        self.gaps = 0

    def reset(self, snap: p.BookSnapshot) -> None:
        self.seq = snap.seq
        self.bids = dict(snap.bids)
        self.asks = dict(snap.asks)
        self.synced = True

    def apply(self, upd: p.BookUpdate) -> bool:
        """Apply one update; False on a gap (the book is then stale until a snapshot)."""
        if not self.synced or upd.seq <= self.seq:
            return True  # before the snapshot arrived, or already in it
        if upd.seq != self.seq + 1:
            self.synced = False
            self.gaps += 1
            return False
        self.seq = upd.seq
        side = self.bids if upd.side is Side.BUY else self.asks
        if upd.qty:
            side[upd.price] = upd.qty
        else:
            side.pop(upd.price, None)
        return True

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first), as `OrderBook.depth()` gives them."""
        return (
            sorted(self.bids.items(), key=lambda kv: -kv[0]),
            sorted(self.asks.items()),
        )


class Client:
    """One connection to a tonne server. Build it with `connect_tcp` or `connect_ws`.

    `clock` (gateway/server/clock.py; `SystemClock` by default) stamps logons and times the
    keepalive heartbeats: on a `ManualClock` they go out only as a test advances it."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._monotonic_ns = self.clock.monotonic_ns
        self.history: deque[Any] = deque(maxlen=HISTORY_MAX)
        self.received = 0  # messages received so far (history index of the next one)
        self.books: dict[str, LocalBook] = {}
        self.account = 0
        self.goodbye: p.Goodbye | None = None
        self._req_ids = itertools.count(1)
        self._coids = itertools.count(1)
        self._coid_prefix = secrets.token_hex(3)
        self._by_req: dict[int, asyncio.Future[Any]] = {}
        self._by_coid: dict[str, asyncio.Future[Any]] = {}
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future[Any]]] = []
        self._reader_task: asyncio.Task[None] | None = None
        self._closed: ClientError | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ws: ClientConnection | None = None
        self.endpoint: tuple[str, int] | None = None  # (host, port) of a TCP connection
        self._last_send = self._monotonic_ns()
        self._keepalive: Timer | None = None  # the next look at whether to send a heartbeat
        self._keepalive_ns = 0
        self._beat: asyncio.Task[None] | None = None  # a heartbeat being sent

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    async def connect_tcp(cls, host: str, port: int, *, clock: Clock | None = None) -> Client:
        self = cls(clock)
        reader, self._writer = await asyncio.open_connection(host, port)
        self.endpoint = (host, port)
        self._reader_task = asyncio.create_task(self._read_tcp(reader))
        return self

    @classmethod
    async def connect_any(
        cls,
        endpoints: list[tuple[str, int]],
        *,
        deadline_s: float = FAILOVER_DEADLINE_S,
        retry_s: float = FAILOVER_RETRY_S,
        clock: Clock | None = None,
    ) -> Client:
        """Connect over TCP to the first of `endpoints` (a primary and its standbys) that
        accepts, trying them in turn, round after round, until `deadline_s`. A standby does
        not listen, so only the primary accepts (gateway/wire/PROTOCOL.md, "Failover");
        after a `ConnectionLost`, call this again and log on again. `ConnectionLost` if none
        accepts in time."""
        if not endpoints or len(endpoints) > ENDPOINTS_MAX:
            raise ValueError(f"1 to {ENDPOINTS_MAX} endpoints, got {len(endpoints)}")
        clock = clock or SystemClock()
        deadline = clock.monotonic_ns() + round(deadline_s * NS_PER_S)
        last: BaseException | None = None
        while True:
            for host, port in endpoints:
                try:
                    return await asyncio.wait_for(
                        cls.connect_tcp(host, port, clock=clock), CONNECT_ATTEMPT_S
                    )
                except (OSError, TimeoutError) as exc:
                    last = exc
            if clock.monotonic_ns() >= deadline:
                raise ConnectionLost(text=f"no endpoint accepted within {deadline_s} s: {last!r}")
            await asyncio.sleep(retry_s)

    @classmethod
    async def connect_ws(cls, url: str, *, clock: Clock | None = None) -> Client:
        self = cls(clock)
        self._ws = await ws_connect(
            url, compression=None, max_size=FRAME_BYTES_MAX, ping_interval=None, proxy=None
        )
        self._reader_task = asyncio.create_task(self._read_ws(self._ws))
        return self

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._keepalive_ns = 0
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._ws is not None:
            await self._ws.close()
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._closed is None

    # -- sending -------------------------------------------------------------------------

    async def send(self, *msgs: Any) -> None:
        """Send messages in one frame (TCP) or one WebSocket message."""
        if self._closed is not None:
            raise self._closed
        self._last_send = self._monotonic_ns()
        try:
            if self._writer is not None:
                self._writer.write(p.encode_frame(list(msgs)))
                await self._writer.drain()
            else:
                assert self._ws is not None
                await self._ws.send(p.encode_json(list(msgs)), text=True)
        except (ConnectionError, ConnectionClosed) as exc:
            raise ConnectionLost("send failed", str(exc)) from None

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests of malformed input); one WebSocket message on WS."""
        if self._writer is not None:
            self._writer.write(data)
            await self._writer.drain()
        else:
            assert self._ws is not None
            await self._ws.send(data)

    def next_req_id(self) -> int:
        return next(self._req_ids)

    def next_client_order_id(self) -> str:
        return f"{self._coid_prefix}-{next(self._coids)}"

    def _expect_req(self, req_id: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._by_req[req_id] = fut
        return fut

    async def _await(self, fut: asyncio.Future[Any], timeout_s: float) -> Any:
        async with asyncio.timeout(timeout_s):
            return await fut

    async def request(self, msg: Any, timeout_s: float = 10.0) -> Any:
        """Send a message with a `req_id` and return the first answer carrying it."""
        fut = self._expect_req(msg.req_id)
        await self.send(msg)
        return await self._await(fut, timeout_s)

    # -- session -------------------------------------------------------------------------

    async def logon(
        self,
        key_id: str,
        secret: str,
        *,
        cancel_on_disconnect: bool = False,
        keepalive: bool = True,
        ts: int | None = None,
        nonce: str | None = None,
        timeout_s: float = 10.0,
    ) -> p.LogonAck:
        ts = self.clock.now_ns() if ts is None else ts
        nonce = secrets.token_hex(16) if nonce is None else nonce
        msg = p.Logon(
            key_id=key_id,
            ts=ts,
            nonce=nonce,
            signature=sign_logon(secret, key_id, ts, nonce),
            cancel_on_disconnect=cancel_on_disconnect,
            req_id=self.next_req_id(),
        )
        answer = await self.request(msg, timeout_s)
        if isinstance(answer, p.LogonReject):
            raise LogonFailed(answer.reason, answer.text)
        self.account = answer.account
        if keepalive and not self._keepalive_ns:
            self._keepalive_ns = max(1, round(answer.heartbeat_s * NS_PER_S))
            self._keepalive = self.clock.call_later(answer.heartbeat_s, self._keepalive_due)
        return answer  # type: ignore[no-any-return]

    def _keepalive_due(self) -> None:
        """Send a heartbeat if nothing was sent for the server's `heartbeat_s`, so that an
        idle but healthy session is not closed for idleness; look again when that much
        quiet would have passed."""
        self._keepalive = None
        if self._closed is not None or not self._keepalive_ns:
            return
        interval_ns = self._keepalive_ns
        quiet_ns = self._monotonic_ns() - self._last_send
        if quiet_ns >= interval_ns:
            if self._beat is None or self._beat.done():  # one heartbeat in flight at most
                self._beat = asyncio.ensure_future(self._send_heartbeat())
            quiet_ns = 0
        delay_s = (interval_ns - quiet_ns) / NS_PER_S
        self._keepalive = self.clock.call_later(delay_s, self._keepalive_due)

    async def _send_heartbeat(self) -> None:
        with contextlib.suppress(ClientError):
            await self.send(p.Heartbeat())

    # -- orders --------------------------------------------------------------------------

    def order_future(self, client_order_id: str) -> asyncio.Future[Any]:
        """A future for the ack (or reject) of a new order not yet sent."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._by_coid[client_order_id] = fut
        return fut

    async def place(
        self,
        series: str,
        side: Side,
        qty: int,
        price: int = 0,
        *,
        timeout_s: float = 10.0,
        client_order_id: str = "",
        retire_for: p.RetireFor | None = None,
        **fields: Any,
    ) -> p.OrderAck:
        """Send a new order and return its ack; raises `RequestRejected` on a reject.
        `retire_for`: a buy-and-retire order (a buy, IOC or FOK, or a market buy), whose
        `order_certificate` follows its fills (`order_certificate(order_id)`)."""
        coid = client_order_id or self.next_client_order_id()
        fut = self.order_future(coid)
        await self.send(
            p.NewOrder(
                client_order_id=coid,
                series=series,
                side=side,
                qty=qty,
                price=price,
                retire_for=retire_for,
                **fields,
            )
        )
        return await self._answer(fut, timeout_s)  # type: ignore[no-any-return]

    async def basket_buy(
        self,
        screen: str,
        qty: int,
        price: int,
        *,
        currency: str = "USD",
        fok: bool = False,
        project_max: int = 0,
        projects_min: int = 0,
        retire_for: p.RetireFor | None = None,
        client_order_id: str = "",
        timeout_s: float = 10.0,
    ) -> Basket:
        """Buy up to `qty` tonnes across every book `screen` admits, never above `price` per
        tonne (IOC, or with `fok` all or nothing), and wait for all of it: a `Basket` whose
        `done` is the `basket_done` summary. Raises `RequestRejected` on a refusal (e.g.
        CANNOT_FILL for a FOK basket that cannot complete; nothing changed then)."""
        coid = client_order_id or self.next_client_order_id()
        since = self.received
        fut = self.order_future(coid)
        msg = p.BasketBuy(
            client_order_id=coid,
            screen=screen,
            qty=qty,
            price=price,
            currency=currency,
            tif=TimeInForce.FOK if fok else TimeInForce.IOC,
            project_max=project_max,
            projects_min=projects_min,
            retire_for=retire_for,
            req_id=self.next_req_id(),
        )
        await self.send(msg)
        ack: p.OrderAck = await self._answer(fut, timeout_s)
        oid = ack.order_id
        done: p.BasketDone = await self.wait_for(
            lambda m: type(m) is p.BasketDone and m.order_id == oid,
            since=since,
            timeout_s=timeout_s,
        )
        certificate = None
        if retire_for is not None and done.filled:
            certificate = await self.order_certificate(oid, since=since, timeout_s=timeout_s)
        mine = [m for m in self.messages_since(since) if getattr(m, "order_id", 0) == oid]
        fills = [m for m in mine if type(m) is p.Fill]
        cancelled = next((m for m in mine if type(m) is p.Cancelled), None)
        return Basket(ack, fills, cancelled, done, certificate)

    async def order_certificate(
        self, order_id: int, *, since: int = 0, timeout_s: float = 10.0
    ) -> p.OrderCertificate:
        """The certificate of buy-and-retire order `order_id` (it comes after its fills)."""
        cert: p.OrderCertificate = await self.wait_for(
            lambda m: type(m) is p.OrderCertificate and m.order_id == order_id,
            since=since,
            timeout_s=timeout_s,
        )
        return cert

    async def cancel(
        self, order_id: int = 0, client_order_id: str = "", timeout_s: float = 10.0
    ) -> p.Cancelled:
        msg = p.Cancel(
            order_id=order_id, client_order_id=client_order_id, req_id=self.next_req_id()
        )
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def amend(
        self, order_id: int, price: int = 0, qty: int = 0, timeout_s: float = 10.0
    ) -> p.Amended:
        msg = p.Amend(order_id=order_id, price=price, qty=qty, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def mass_cancel(self, series: str = "", timeout_s: float = 10.0) -> p.Done:
        msg = p.MassCancel(series=series, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def open_orders(self, series: str = "") -> p.OpenOrders:
        msg = p.QueryOpenOrders(series=series, req_id=self.next_req_id())
        return await self._answered(msg, 10.0)  # type: ignore[no-any-return]

    async def balances(self) -> p.Balances:
        return await self._answered(p.QueryBalances(req_id=self.next_req_id()), 10.0)  # type: ignore[no-any-return]

    async def holdings(self) -> p.Holdings:
        return await self._answered(p.QueryHoldings(req_id=self.next_req_id()), 10.0)  # type: ignore[no-any-return]

    async def series(self) -> p.SeriesList:
        return await self._answered(p.QuerySeries(req_id=self.next_req_id()), 10.0)  # type: ignore[no-any-return]

    async def projects(self, *ids: str) -> p.ProjectList:
        """The registry projects behind the series (all when no id is given)."""
        msg = p.QueryProjects(ids=list(ids), req_id=self.next_req_id())
        return await self._answered(msg, 10.0)  # type: ignore[no-any-return]

    # -- the carbon catalogue --------------------------------------------------------------

    async def screen(self, expr: str, timeout_s: float = 10.0) -> p.ScreenResult:
        """The series whose credits `expr` (screening language) admits now; a screen that
        does not parse raises `RequestRejected` (INVALID_SCREEN, text `at N: ...`)."""
        msg = p.Screen(expr=expr, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def contract_rules(self, series: str, timeout_s: float = 10.0) -> p.ContractRules:
        """A standardized contract's rule versions, oldest first."""
        msg = p.QueryContract(series=series, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    # operator requests: each needs the key's `operator` permission

    async def list_contract(
        self, series: str, rule: str, *, timeout_s: float = 10.0, **params: Any
    ) -> p.RuleVersionAdded:
        """List a standardized contract (`params`: currency, tick, lot, ref_price, band_bps,
        max_order_qty, ref); its rule version 1."""
        msg = p.ListContract(series=series, rule=rule, req_id=self.next_req_id(), **params)
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def add_rule_version(
        self, series: str, rule: str, effective: int = 0, ref: str = "", timeout_s: float = 10.0
    ) -> p.RuleVersionAdded:
        msg = p.AddRuleVersion(
            series=series, rule=rule, effective=effective, ref=ref, req_id=self.next_req_id()
        )
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def change_label(
        self,
        project: str,
        label: str,
        present: bool,
        vintage: int = 0,
        effective: int = 0,
        ref: str = "",
        timeout_s: float = 10.0,
    ) -> p.Done:
        """Grant (`present`) or withdraw a label; the `done` counts the orders cancelled."""
        msg = p.ChangeLabel(
            project=project,
            label=label,
            present=present,
            vintage=vintage,
            effective=effective,
            ref=ref,
            req_id=self.next_req_id(),
        )
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def suspend_project(self, project: str, ref: str = "", timeout_s: float = 10.0) -> p.Done:
        msg = p.SuspendProject(project=project, ref=ref, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def reinstate_project(
        self, project: str, ref: str = "", timeout_s: float = 10.0
    ) -> p.Done:
        msg = p.ReinstateProject(project=project, ref=ref, req_id=self.next_req_id())
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def cancel_credits(
        self,
        account: int,
        project: str,
        vintage: int,
        start: int,
        end: int,
        quantity: int,
        batch: str = "",
        *,
        serial: str = "",
        ref: str = "",
        timeout_s: float = 10.0,
    ) -> p.Done:
        """Record a reversal: the registry cancelled these serials from `account`."""
        msg = p.CancelCredits(
            account=account,
            project=project,
            vintage=vintage,
            start=start,
            end=end,
            quantity=quantity,
            batch=batch,
            serial=serial,
            ref=ref,
            req_id=self.next_req_id(),
        )
        return await self._answered(msg, timeout_s)  # type: ignore[no-any-return]

    async def heartbeat(self) -> p.ServerHeartbeat:
        return await self._answered(p.Heartbeat(req_id=self.next_req_id()), 10.0)  # type: ignore[no-any-return]

    async def _answered(self, msg: Any, timeout_s: float) -> Any:
        fut = self._expect_req(msg.req_id)
        await self.send(msg)
        return await self._answer(fut, timeout_s)

    async def _answer(self, fut: asyncio.Future[Any], timeout_s: float) -> Any:
        answer = await self._await(fut, timeout_s)
        if isinstance(answer, p.Reject):
            raise RequestRejected(answer)
        return answer

    # -- market data ---------------------------------------------------------------------

    async def subscribe(self, *series: str, timeout_s: float = 10.0) -> dict[str, LocalBook]:
        """Subscribe and wait until every book has its snapshot."""
        for s in series:
            self.books.setdefault(s, LocalBook(s))
        msg = p.Subscribe(series=list(series), req_id=self.next_req_id())
        await self._answered(msg, timeout_s)
        return {s: self.books[s] for s in series}

    async def unsubscribe(self, *series: str) -> None:
        for s in series:
            self.books.pop(s, None)
        await self._answered(p.Unsubscribe(series=list(series), req_id=self.next_req_id()), 10)

    # -- receiving -----------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[Any], bool], *, since: int = 0, timeout_s: float = 10.0
    ) -> Any:
        """The first message (received at index >= `since`) that satisfies `predicate`."""
        first = self.received - len(self.history)
        for i, msg in enumerate(self.history):
            if first + i >= since and predicate(msg):
                return msg
        if self._closed is not None:
            raise self._closed
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            return await self._await(fut, timeout_s)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def messages_since(self, since: int) -> list[Any]:
        """The messages received at history index >= `since` that the history still holds."""
        first = self.received - len(self.history)
        return list(self.history)[max(0, since - first) :]

    async def wait_closed(self, timeout_s: float = 10.0) -> ConnectionLost:
        """Wait until the server closes the connection; the reason it gave."""
        assert self._reader_task is not None
        async with asyncio.timeout(timeout_s):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader_task)
        assert isinstance(self._closed, ConnectionLost)
        return self._closed

    def _dispatch(self, msgs: list[Any]) -> None:
        for msg in msgs:
            self.history.append(msg)
            self.received += 1
            kind = type(msg)
            if kind is p.BookUpdate:
                book = self.books.get(msg.series)
                if book is not None and not book.apply(msg):
                    self._resync(book)
            elif kind is p.BookSnapshot:
                book = self.books.get(msg.series)
                if book is not None:
                    book.reset(msg)
            elif kind is p.Goodbye:
                self.goodbye = msg
            req_id = getattr(msg, "req_id", 0)
            if req_id:
                fut = self._by_req.pop(req_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            if kind is p.OrderAck or kind is p.Reject:
                coid = msg.client_order_id
                if coid:
                    fut = self._by_coid.pop(coid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
            for pred, fut in list(self._waiters):
                if not fut.done() and pred(msg):
                    fut.set_result(msg)

    def _resync(self, book: LocalBook) -> None:
        msg = p.Subscribe(series=[book.series], req_id=self.next_req_id())
        task = asyncio.ensure_future(self.send(msg))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        frames = p.FrameReader(FRAME_BYTES_MAX)
        error: ClientError = ConnectionLost()
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for body in frames.feed(data):
                    self._dispatch(p.decode_server_msgpack(body))
        except (ConnectionError, OSError) as exc:
            error = ConnectionLost("reset", str(exc))
        except Exception as exc:  # undecodable: the stream cannot be trusted
            error = ProtocolViolation(str(exc))
            if self._writer is not None:
                self._writer.close()
        self._lost(error)

    async def _read_ws(self, ws: ClientConnection) -> None:
        error: ClientError = ConnectionLost()
        try:
            async for data in ws:
                self._dispatch(p.decode_server_json(data))
        except ConnectionClosed:
            pass
        except Exception as exc:
            error = ProtocolViolation(str(exc))
            await ws.close()
        self._lost(error)

    def _lost(self, error: ClientError) -> None:
        if isinstance(error, ConnectionLost) and self.goodbye is not None:
            error = ConnectionLost(self.goodbye.reason.value, self.goodbye.text)
        self._closed = error
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        waiting = [f for _, f in self._waiters]
        for fut in itertools.chain(self._by_req.values(), self._by_coid.values(), waiting):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved here: nobody may be awaiting it any more
        self._by_req.clear()
        self._by_coid.clear()


__all__ = [
    "Basket",
    "Client",
    "ClientError",
    "ConnectionLost",
    "LocalBook",
    "LogonFailed",
    "ProtocolViolation",
    "RequestRejected",
]
