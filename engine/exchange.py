"""The exchange: owns the series, their books and the open-order index; routes commands.

Every command goes through three steps, which the settlement core also calls one by one so
that it can place a hold between checking and applying:

1. `expire_due(ts)`: GTD orders whose `expire_ts` <= the command's `ts` leave the book.
2. `check(cmd)`: the complete validation; returns a `Rejected` or None and changes nothing.
3. `apply(cmd)`: carries out a checked command and returns its events.

`AdvanceTime(ts)` is step 1 alone; `next_expiry_ts()` says when the next one is due, so that
the gateway can send it then and not before.

`submit(cmd)` does all three. Only `apply` changes state, and given the same commands it
always produces the same events: there is no clock, no randomness, no I/O.

State has one owner each. The exchange owns the open-order index (`open_orders`,
`open_by_coid`), the client-order-id windows, the order and trade id sequences and the GTD
heap: only its methods change them (the settlement core and the gateway read them). Each
`OrderBook` owns its levels, heaps and best keys, and changes them through its operations
(`rest`, `reduce`, `match`); `match` takes the next trade id and returns it, and lists the
resting orders it closed, which the exchange then drops from its index.

An order's status is driven by the lifecycle table (engine/lifecycle.py): each operation that
moves an order (accept, fill, cancel, expire, amend) looks the step up in `MAY` and raises
`LifecycleError` before it changes the order if the table does not allow it. Such an error
is a bug, not a rejection: the command stops there, and the process with it.

Client order ids are unique per account within a window: a new order is
`DUPLICATE_CLIENT_ORDER_ID` when its id is one of the last `coid_window` ids the account's
accepted orders used, or the id of one of its open orders (however old). An id older than
the window and not on an open order may be used again. The window is a deque per account
(oldest first) with a set beside it for lookups, so memory per account is bounded by
`coid_window` ids plus its open orders, and the deque's order is part of the state hash.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import heappop, heappush
from typing import Any

from engine.book import MAX_PRICE, Order, OrderBook
from engine.commands import (
    AdvanceTime,
    Amend,
    Cancel,
    Command,
    Halt,
    MassCancel,
    NewOrder,
    OrderType,
    Resume,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.events import (
    Accepted,
    Amended,
    Cancelled,
    CancelReason,
    Event,
    Expired,
    Reason,
    Rejected,
    StatusChanged,
)
from engine.lifecycle import IS_OPEN, MAY, MAY_START, S_CANCELLED, S_EXPIRED, S_NEW, illegal
from engine.reference import Series

BUY = Side.BUY
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
GTC, IOC, FOK, GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD
# Client order ids remembered per account (besides those of its open orders). An id is
# ~50-60 bytes as a str, plus its set and deque slots: ~100 bytes, so ~10 MB for an account
# whose window is full. At 1,000 orders/s one account's window spans 100 s; the open orders
# of a resent order's account are always covered, whatever their age.
COID_WINDOW = 100_000


class Exchange:
    """Many books, one open-order index, one id sequence for orders and one for trades."""

    def __init__(self, series: Iterable[Series] = (), *, coid_window: int = COID_WINDOW) -> None:
        if coid_window <= 0:
            raise ValueError(f"coid_window {coid_window} must be positive")
        self.coid_window = coid_window
        self.books: dict[str, OrderBook] = {}
        self.open_orders: dict[int, Order] = {}  # order_id -> open order
        self.open_by_coid: dict[int, dict[str, Order]] = {}  # account -> coid -> open order
        # account -> its last `coid_window` client order ids, oldest first, and them as a set
        self.coids_recent: dict[int, deque[str]] = {}
        self.coids_seen: dict[int, set[str]] = {}
        self.next_order_id = 1
        self.next_trade_id = 1
        self._gtd: list[tuple[int, int]] = []  # heap of (expire_ts, order_id)
        for s in series:
            self.add_series(s)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (a snapshot): an exchange pickled before the client-order-id window
        gets the default window, holding its ids in sorted order (their order of use was not
        kept), the newest window's worth."""
        self.__dict__.update(state)
        if "coids_recent" in state:
            return
        self.coid_window = COID_WINDOW
        recents: dict[int, deque[str]] = {}
        self.coids_recent = recents
        for account, seen in self.coids_seen.items():
            recent = recents[account] = deque(sorted(seen))
            while len(recent) > self.coid_window:
                seen.discard(recent.popleft())

    def add_series(self, series: Series) -> OrderBook:
        if series.id in self.books:
            raise ValueError(f"series {series.id} is already listed")
        book = self.books[series.id] = OrderBook(series)
        return book

    # -- the command interface -----------------------------------------------------------------

    def submit(self, cmd: Command) -> list[Event]:
        """Expire, check and apply one command; the events it caused, in order."""
        events: list[Event] = []
        if self._gtd and self._gtd[0][0] <= cmd.ts:
            self.expire_due(cmd.ts, events)
        kind = type(cmd)
        if kind is NewOrder:  # the hot path, dispatched without the generic layers
            rejected = self._check_new(cmd)  # type: ignore[arg-type]
            if rejected is None:
                self._apply_new(cmd, events)  # type: ignore[arg-type]
            else:
                events.append(rejected)
            return events
        if kind is Cancel:  # looked up once, not once to check and once to apply
            order = self._find(cmd.account, cmd.order_id, cmd.client_order_id)  # type: ignore[union-attr]
            if order is None:
                events.append(self._unknown_order(cmd))  # type: ignore[arg-type]
            else:
                self._cancel(order, CancelReason.USER, cmd.ts, events)
            return events
        rejected = self.check(cmd)
        if rejected is not None:
            events.append(rejected)
            return events
        self.apply(cmd, events)
        return events

    def expire_due(self, ts: int, events: list[Event]) -> None:
        """Remove every GTD order whose expiry time is at or before `ts`."""
        gtd = self._gtd
        while gtd and gtd[0][0] <= ts:
            expire_ts, order_id = gtd[0]
            order = self.open_orders.get(order_id)
            if order is None or order.expire_ts != expire_ts:
                heappop(gtd)
                continue  # already gone, or amended into a new order with its own entry
            if not MAY[order.status][S_EXPIRED]:
                raise illegal(order_id, order.status, S_EXPIRED)
            heappop(gtd)
            qty = order.qty
            self._remove(order, events)
            order.status = S_EXPIRED
            events.append(Expired(order_id, order.account, order.series, order.side, qty, ts))

    def next_expiry_ts(self) -> int | None:
        """The earliest `expire_ts` of an open GTD order (None: there is none), so that the
        gateway can send `AdvanceTime` when it is due. Pops the heap's stale tops (orders
        gone since), which `expire_due` would skip anyway: amortized O(1), and it changes
        nothing any command could see."""
        gtd = self._gtd
        open_orders = self.open_orders
        while gtd:
            expire_ts, order_id = gtd[0]
            order = open_orders.get(order_id)
            if order is not None and order.expire_ts == expire_ts:
                return expire_ts
            heappop(gtd)
        return None

    def check(self, cmd: Command) -> Rejected | None:
        kind = type(cmd)
        if kind is NewOrder:
            return self._check_new(cmd)  # type: ignore[arg-type]
        if kind is Cancel:
            return self._check_cancel(cmd)  # type: ignore[arg-type]
        if kind is Amend:
            return self._check_amend(cmd)  # type: ignore[arg-type]
        if kind is AdvanceTime:
            return None
        if kind is MassCancel:
            assert isinstance(cmd, MassCancel)
            if cmd.series and cmd.series not in self.books:
                return _reject(
                    cmd.account, "", 0, Reason.UNKNOWN_SERIES, f"no series {cmd.series!r}", cmd.ts
                )
            return None
        assert isinstance(cmd, Halt | Resume | SetReferencePrice)
        book = self.books.get(cmd.series)
        if book is None:
            return _reject(0, "", 0, Reason.UNKNOWN_SERIES, f"no series {cmd.series!r}", cmd.ts)
        if isinstance(cmd, SetReferencePrice) and (cmd.price <= 0 or cmd.price % book.series.tick):
            return _reject(
                0,
                "",
                0,
                Reason.INVALID_PRICE,
                f"reference price {cmd.price} is not a positive multiple of tick "
                f"{book.series.tick}",
                cmd.ts,
            )
        return None

    def apply(self, cmd: Command, events: list[Event]) -> None:
        """Carry out a command that `check` accepted; append its events."""
        kind = type(cmd)
        if kind is NewOrder:
            self._apply_new(cmd, events)  # type: ignore[arg-type]
        elif kind is Cancel:
            assert isinstance(cmd, Cancel)
            order = self._find(cmd.account, cmd.order_id, cmd.client_order_id)
            assert order is not None
            self._cancel(order, CancelReason.USER, cmd.ts, events)
        elif kind is Amend:
            self._apply_amend(cmd, events)  # type: ignore[arg-type]
        elif kind is AdvanceTime:
            pass  # its work is the expiry that precedes every command
        elif kind is MassCancel:
            assert isinstance(cmd, MassCancel)
            for order in list(self.open_by_coid.get(cmd.account, {}).values()):
                if not cmd.series or order.series == cmd.series:
                    self._cancel(order, CancelReason.MASS_CANCEL, cmd.ts, events)
        else:
            assert isinstance(cmd, Halt | Resume | SetReferencePrice)
            book = self.books[cmd.series]
            if isinstance(cmd, SetReferencePrice):
                book.set_reference_price(cmd.price)
            else:
                book.halted = isinstance(cmd, Halt)
            events.append(StatusChanged(book.id, book.halted, book.ref_price, cmd.ts))

    def cancel_by_operator(
        self, order_id: int, reason: CancelReason, ts: int, events: list[Event]
    ) -> None:
        """Cancel an open order for the venue (not its owner): the registry suspended its
        project, or its credits stopped being eligible. The caller releases its hold."""
        self._cancel(self.open_orders[order_id], reason, ts, events)

    def set_halted(self, series: str, halted: bool, ts: int, events: list[Event]) -> None:
        """Halt or resume a book for the venue, as `Halt` and `Resume` do."""
        book = self.books[series]
        book.halted = halted
        events.append(StatusChanged(book.id, book.halted, book.ref_price, ts))

    # -- queries ---------------------------------------------------------------------------------

    def order(self, order_id: int) -> Order | None:
        """An open order by id (None once it is filled, cancelled or expired)."""
        return self.open_orders.get(order_id)

    def check_invariants(self) -> None:
        for book in self.books.values():
            book.check_invariants()
            for o in book.orders():
                assert self.open_orders.get(o.order_id) is o, "a live order is indexed"
        indexed = {o.order_id for coids in self.open_by_coid.values() for o in coids.values()}
        assert indexed == set(self.open_orders), "account index = open orders"
        assert self.coids_seen.keys() == self.coids_recent.keys()
        for account, recent in self.coids_recent.items():
            assert len(recent) <= self.coid_window, "a window holds at most coid_window ids"
            assert set(recent) == self.coids_seen[account] and len(recent) == len(
                self.coids_seen[account]
            ), "the window's set is its deque's ids, each once"
        for order in self.open_orders.values():
            assert order.qty > 0, "an open order has open quantity"
            assert IS_OPEN[order.status], "an open order's status is open"
            book = self.books[order.series]
            assert order in book.queue(order.side, order.price), "an open order is in its book"

    # -- new orders --------------------------------------------------------------------------------

    def _used(self, account: int, coid: str, seen: set[str]) -> bool:
        """Whether `coid` is in the account's window or on one of its open orders. Until the
        window is full it holds every id the account used, open orders' among them."""
        if coid in seen:
            return True
        if len(seen) < self.coid_window:
            return False
        live = self.open_by_coid.get(account)
        return live is not None and coid in live

    def _check_new(self, cmd: NewOrder) -> Rejected | None:
        """None if the order may enter. The common order (a valid limit GTC/IOC) passes one
        combined test; anything else gets the complete, reason-giving validation."""
        book = self.books.get(cmd.series)
        if book is not None and not book.halted and cmd.type is LIMIT and not cmd.post_only:
            tif = cmd.tif
            qty = cmd.qty
            price = cmd.price
            series = book.series
            coid = cmd.client_order_id
            seen = self.coids_seen.get(cmd.account)
            if (
                (tif is GTC or tif is IOC)
                and coid
                and (  # `_used`, inlined for the common case: an id new to a window not full
                    seen is None
                    or (
                        coid not in seen
                        and (
                            len(seen) < self.coid_window or not self._used(cmd.account, coid, seen)
                        )
                    )
                )
                and 0 < qty <= series.max_order_qty
                and not qty % series.lot
                and book.band_low <= price <= book.band_high
                and not price % series.tick
                and not cmd.expire_ts
                and cmd.max_notional >= 0
            ):
                return None
        return self._validate_new(cmd)

    def _validate_new(self, cmd: NewOrder) -> Rejected | None:
        """The complete validation of a new order, in the order a client would fix things:
        where it goes and under which id, then its terms."""
        book = self.books.get(cmd.series)
        if book is None:
            return _reject(
                cmd.account,
                cmd.client_order_id,
                0,
                Reason.UNKNOWN_SERIES,
                f"no series {cmd.series!r}",
                cmd.ts,
            )
        rejected = self._check_entry(cmd, book)
        if rejected is not None:
            return rejected
        return self._check_terms(cmd, book)

    def _check_entry(self, cmd: NewOrder, book: OrderBook) -> Rejected | None:
        """Whether the order's book takes orders and its client order id is fresh."""
        account, coid, ts = cmd.account, cmd.client_order_id, cmd.ts
        if book.halted:
            return _reject(
                account, coid, 0, Reason.SERIES_HALTED, f"{cmd.series} is halted: cancels only", ts
            )
        return self.check_client_order_id(account, coid, ts)

    def check_client_order_id(self, account: int, coid: str, ts: int) -> Rejected | None:
        """Whether a new order (or a basket, engine/basket.py) may take `coid`: not empty,
        not one of the account's recent window or of an open order."""
        if not coid:
            return _reject(
                account,
                coid,
                0,
                Reason.INVALID_CLIENT_ORDER_ID,
                "client_order_id must not be empty",
                ts,
            )
        seen = self.coids_seen.get(account)
        if seen is not None and self._used(account, coid, seen):
            return _reject(
                account,
                coid,
                0,
                Reason.DUPLICATE_CLIENT_ORDER_ID,
                f"client_order_id {coid!r} is one of this account's last {self.coid_window} "
                "or of an open order",
                ts,
            )
        return None

    def _check_terms(self, cmd: NewOrder, book: OrderBook) -> Rejected | None:
        """Whether the order's quantity, price, time in force, expiry, notional cap and
        post-only flag are valid in `book`."""
        account, coid, ts = cmd.account, cmd.client_order_id, cmd.ts
        rejected = self._check_qty(book, cmd.qty, account, coid, 0, ts)
        if rejected is not None:
            return rejected
        tif = cmd.tif
        if cmd.type is LIMIT:
            rejected = self._check_price(book, cmd.price, account, coid, 0, ts)
            if rejected is not None:
                return rejected
        elif tif is GTC or tif is GTD or cmd.post_only:
            return _reject(
                account,
                coid,
                0,
                Reason.INVALID_TIF,
                "a market order is IOC or FOK and never post-only",
                ts,
            )
        if tif is GTD:
            if cmd.expire_ts <= ts:
                return _reject(
                    account,
                    coid,
                    0,
                    Reason.INVALID_EXPIRY,
                    f"expire_ts {cmd.expire_ts} is not after the order's ts {ts}",
                    ts,
                )
        elif cmd.expire_ts:
            return _reject(
                account, coid, 0, Reason.INVALID_EXPIRY, "expire_ts is only for GTD orders", ts
            )
        if cmd.max_notional < 0:
            return _reject(
                account, coid, 0, Reason.INVALID_QUANTITY, "max_notional must not be negative", ts
            )
        if cmd.post_only:
            if tif is IOC or tif is FOK:
                return _reject(
                    account,
                    coid,
                    0,
                    Reason.INVALID_TIF,
                    "a post-only order must be able to rest (GTC or GTD)",
                    ts,
                )
            if book.crosses(cmd.side, _limit_key(book, cmd.side, cmd.type, cmd.price)):
                return _reject(
                    account,
                    coid,
                    0,
                    Reason.POST_ONLY_WOULD_TRADE,
                    f"post-only {cmd.side.value} at {cmd.price} would trade",
                    ts,
                )
        return None

    def _apply_new(self, cmd: NewOrder, events: list[Event]) -> None:
        book = self.books[cmd.series]
        order_id = self.next_order_id
        if not MAY_START:
            raise illegal(order_id, None, S_NEW)
        self.next_order_id = order_id + 1
        account = cmd.account
        coid = cmd.client_order_id
        seen = self.coids_seen.get(account)
        if seen is None:
            seen = self.coids_seen[account] = set()
            recent = self.coids_recent[account] = deque()
        else:
            recent = self.coids_recent[account]
        seen.add(coid)
        recent.append(coid)
        if len(recent) > self.coid_window:
            seen.discard(recent.popleft())  # it was not in the window twice: ids are unique
        side = cmd.side
        qty = cmd.qty
        market = cmd.type is MARKET
        if market:
            price = 0
            limit_key = book.band_high if side is BUY else -book.band_low
        else:
            price = cmd.price
            limit_key = price if side is BUY else -price
        order = Order(
            order_id,
            book.id,
            account,
            coid,
            side,
            price,
            qty,
            cmd.tif,
            cmd.expire_ts,
            cmd.stp,
            cmd.post_only,
            S_NEW,
        )
        events.append(Accepted(order_id, account, coid, book.id, side, price, qty, cmd.ts))
        if cmd.tif is FOK and (
            book.fillable(side, account, cmd.stp, qty, limit_key, cmd.max_notional) < qty
        ):
            if not MAY[order.status][S_CANCELLED]:
                raise illegal(order_id, order.status, S_CANCELLED)
            order.status = S_CANCELLED
            events.append(
                Cancelled(order_id, account, book.id, side, qty, CancelReason.FILL_OR_KILL, cmd.ts)
            )
            return
        self._enter(book, order, limit_key, cmd.max_notional, market, cmd.ts, events)

    def _enter(
        self,
        book: OrderBook,
        order: Order,
        limit_key: int,
        max_notional: int,
        market: bool,
        ts: int,
        events: list[Event],
        gtd_indexed: bool = False,
    ) -> None:
        """Match an order on arrival, then rest what is left or cancel it as its TIF says.
        `gtd_indexed`: the order's expiry is already in the GTD heap (an amended order)."""
        stopped = None
        if (book.ask_top if order.side is BUY else book.bid_top) <= limit_key:  # book.crosses
            closed: list[Order] = []
            self.next_trade_id, stopped = book.match(
                order, limit_key, max_notional, ts, self.next_trade_id, events, closed
            )
            open_orders, open_by_coid = self.open_orders, self.open_by_coid
            for maker in closed:  # `_unindex`, inlined: the hot path
                del open_orders[maker.order_id]
                del open_by_coid[maker.account][maker.client_order_id]
            if not order.qty:
                return
        tif = order.tif
        if stopped is not None or market or tif is IOC or tif is FOK:
            if not MAY[order.status][S_CANCELLED]:
                raise illegal(order.order_id, order.status, S_CANCELLED)
            order.status = S_CANCELLED
            if stopped is None:
                stopped = (
                    CancelReason.MARKET_NO_LIQUIDITY if market else CancelReason.IMMEDIATE_OR_CANCEL
                )
            events.append(
                Cancelled(
                    order.order_id, order.account, book.id, order.side, order.qty, stopped, ts
                )
            )
            return
        book.rest(order, events)
        self.open_orders[order.order_id] = order
        by_coid = self.open_by_coid.get(order.account)
        if by_coid is None:
            by_coid = self.open_by_coid[order.account] = {}
        by_coid[order.client_order_id] = order
        if tif is GTD and not gtd_indexed:
            heappush(self._gtd, (order.expire_ts, order.order_id))

    # -- cancel and amend ---------------------------------------------------------------

    def _find(self, account: int, order_id: int, coid: str) -> Order | None:
        """An open order of `account`; another account's order is indistinguishable from an
        unknown one, so nothing leaks."""
        if order_id:
            order = self.open_orders.get(order_id)
            return order if order is not None and order.account == account else None
        return self.open_by_coid.get(account, {}).get(coid)

    def _check_cancel(self, cmd: Cancel) -> Rejected | None:
        if self._find(cmd.account, cmd.order_id, cmd.client_order_id) is None:
            return self._unknown_order(cmd)
        return None

    @staticmethod
    def _unknown_order(cmd: Cancel) -> Rejected:
        name = f"{cmd.order_id}" if cmd.order_id else f"{cmd.client_order_id!r}"
        return _reject(
            cmd.account,
            cmd.client_order_id,
            cmd.order_id,
            Reason.UNKNOWN_ORDER,
            f"no open order {name} for this account",
            cmd.ts,
        )

    def _unindex(self, order: Order) -> None:
        """Drop an order that left its book from the open-order index."""
        del self.open_orders[order.order_id]
        del self.open_by_coid[order.account][order.client_order_id]

    def _remove(self, order: Order, events: list[Event]) -> None:
        """Take an open order out of its book and the index (no event of its own)."""
        self.books[order.series].reduce(order, order.qty, events)
        self._unindex(order)

    def _cancel(self, order: Order, reason: CancelReason, ts: int, events: list[Event]) -> None:
        qty = order.qty
        order_id = order.order_id
        if not MAY[order.status][S_CANCELLED]:
            raise illegal(order_id, order.status, S_CANCELLED)
        self.books[order.series].reduce(order, qty, events)  # `_remove`, inlined: the hot path
        del self.open_orders[order_id]
        del self.open_by_coid[order.account][order.client_order_id]
        order.status = S_CANCELLED
        events.append(Cancelled(order_id, order.account, order.series, order.side, qty, reason, ts))

    def _check_amend(self, cmd: Amend) -> Rejected | None:
        account, ts = cmd.account, cmd.ts
        order = self._find(account, cmd.order_id, "")
        if order is None:
            return _reject(
                account,
                "",
                cmd.order_id,
                Reason.UNKNOWN_ORDER,
                f"no open order {cmd.order_id} for this account",
                ts,
            )
        book = self.books[order.series]
        coid = order.client_order_id
        if book.halted:
            return _reject(
                account,
                coid,
                order.order_id,
                Reason.SERIES_HALTED,
                f"{book.id} is halted: cancels only",
                ts,
            )
        # 0 means "unchanged"; anything else, negative included, is checked like a new order's.
        if cmd.qty:
            rejected = self._check_qty(book, cmd.qty, account, coid, order.order_id, ts)
            if rejected is not None:
                return rejected
        if cmd.price:
            rejected = self._check_price(book, cmd.price, account, coid, order.order_id, ts)
            if rejected is not None:
                return rejected
        price = cmd.price or order.price
        qty = cmd.qty or order.qty
        if price == order.price and qty == order.qty:
            return _reject(
                account,
                coid,
                order.order_id,
                Reason.NO_CHANGE,
                "the amend changes neither price nor quantity",
                ts,
            )
        if (
            order.post_only
            and price != order.price
            and book.crosses(order.side, _limit_key(book, order.side, LIMIT, price))
        ):
            return _reject(
                account,
                coid,
                order.order_id,
                Reason.POST_ONLY_WOULD_TRADE,
                f"post-only order amended to {price} would trade",
                ts,
            )
        return None

    def _apply_amend(self, cmd: Amend, events: list[Event]) -> None:
        order = self.open_orders[cmd.order_id]
        if not MAY[order.status][order.status]:  # an amend keeps the status it finds
            raise illegal(order.order_id, order.status, order.status)
        series_id = order.series
        book = self.books[series_id]
        price = cmd.price or order.price
        qty = cmd.qty or order.qty
        old_price, old_qty = order.price, order.qty
        if price == old_price and qty < old_qty:
            events.append(
                Amended(
                    order.order_id,
                    order.account,
                    series_id,
                    order.side,
                    old_price,
                    old_qty,
                    price,
                    qty,
                    True,
                    cmd.ts,
                )
            )
            book.reduce(order, old_qty - qty, events)
            return
        # Loses priority: the old object leaves (dead in its deque), a new one enters.
        events.append(
            Amended(
                order.order_id,
                order.account,
                series_id,
                order.side,
                old_price,
                old_qty,
                price,
                qty,
                False,
                cmd.ts,
            )
        )
        self._remove(order, events)
        fresh = Order(
            order.order_id,
            series_id,
            order.account,
            order.client_order_id,
            order.side,
            price,
            qty,
            order.tif,
            order.expire_ts,
            order.stp,
            order.post_only,
            order.status,
        )
        self._enter(
            book,
            fresh,
            _limit_key(book, fresh.side, LIMIT, price),
            0,
            False,
            cmd.ts,
            events,
            gtd_indexed=True,
        )

    # -- shared validation ---------------------------------------------------------------------

    @staticmethod
    def _check_qty(
        book: OrderBook, qty: int, account: int, coid: str, order_id: int, ts: int
    ) -> Rejected | None:
        series = book.series
        if qty <= 0:
            return _reject(
                account,
                coid,
                order_id,
                Reason.INVALID_QUANTITY,
                f"quantity {qty} must be a positive number of tonnes",
                ts,
            )
        if qty % series.lot:
            return _reject(
                account,
                coid,
                order_id,
                Reason.LOT_SIZE,
                f"quantity {qty} is not a multiple of the lot {series.lot}",
                ts,
            )
        if qty > series.max_order_qty:
            return _reject(
                account,
                coid,
                order_id,
                Reason.MAX_ORDER_SIZE,
                f"quantity {qty} exceeds the maximum {series.max_order_qty}",
                ts,
            )
        return None

    @staticmethod
    def _check_price(
        book: OrderBook, price: int, account: int, coid: str, order_id: int, ts: int
    ) -> Rejected | None:
        tick = book.series.tick
        if price <= 0 or price % tick:
            return _reject(
                account,
                coid,
                order_id,
                Reason.INVALID_PRICE,
                f"price {price} is not a positive multiple of the tick {tick}",
                ts,
            )
        if price > MAX_PRICE:
            return _reject(
                account,
                coid,
                order_id,
                Reason.INVALID_PRICE,
                f"price {price} is above the highest price {MAX_PRICE}",
                ts,
            )
        if not book.band_low <= price <= book.band_high:
            return _reject(
                account,
                coid,
                order_id,
                Reason.PRICE_OUT_OF_BAND,
                f"price {price} is outside the band [{book.band_low}, {book.band_high}]",
                ts,
            )
        return None


def _limit_key(book: OrderBook, side: Side, kind: OrderType, price: int) -> int:
    """The book key an incoming order may trade up to (see `engine.book` for keys)."""
    if kind is MARKET:
        return book.band_high if side is BUY else -book.band_low
    return price if side is BUY else -price


def _reject(account: int, coid: str, order_id: int, reason: Reason, text: str, ts: int) -> Rejected:
    return Rejected(account, coid, order_id, reason, text, ts)
