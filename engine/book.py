"""One series' order book: price-time priority, the matching rule, and L2 deltas.

Layout, chosen for CPython speed (see bench/ for the measurements):

- Each side is a dict from a *key* to a `Level`; the key is the price for asks and minus the
  price for bids, so on both sides the best level is the smallest key and "crosses" is
  `key <= limit_key`. A binary heap of keys (C `heapq`) finds the best level; a level that
  empties is deleted from the dict and its heap entry goes stale, to be dropped when it
  reaches the top (and the heap is rebuilt when stale entries outnumber live ones).
- `bid_top` and `ask_top` are each side's best key, kept by every operation that changes the
  side (`EMPTY` when it has no level): the root of its heap, stale entries above it dropped.
  So "would an order trade on arrival?" is one attribute read and a comparison, for the
  `Exchange` as for the book, and no query ever has to pop stale entries.
- A `Level` is a FIFO deque of orders plus its live total. Cancelling is O(1): the order's
  open quantity is set to 0 and it stays in the deque until matching pops it or the level is
  compacted. An order object is never reinserted after that (an amend that loses priority
  makes a new one), so a zero in the deque always means "dead".

The book never validates: `Exchange` checks a command completely before calling it, so every
method here may assume well-formed input and is free to mutate. What it does not assume is
the lifecycle: `match` moves the orders it fills or cancels along the table in
engine/lifecycle.py, checking each step before it changes the order. It knows nothing of the
exchange: `match` is given the id of its first trade and returns the next one, and it reports
the resting orders it took off the book in a list, for the exchange to drop from its index.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import heapify, heappop, heappush

from engine.commands import SelfTrade, Side
from engine.events import BookDelta, Cancelled, CancelReason, Event, Trade
from engine.lifecycle import (
    IS_OPEN,
    MAY,
    MAY_TRADE,
    S_CANCELLED,
    S_FILLED,
    S_PARTIALLY_FILLED,
    cannot_trade,
    illegal,
)
from engine.order import Order as Order  # defined apart: mypyc drops a Struct's class keywords
from engine.reference import Series

BUY = Side.BUY
SELL = Side.SELL
CANCEL_RESTING = SelfTrade.CANCEL_RESTING
CANCEL_BOTH = SelfTrade.CANCEL_BOTH

MAX_PRICE = 1 << 53  # the highest price any order may carry, band or no band
EMPTY = MAX_PRICE + 1  # the top key of a side with no level: above every limit key
_DEAD_COMPACT_MIN = 64  # a level compacts once it holds this many dead orders...
_HEAP_SLACK = 64  # ...and a side's heap is rebuilt past 2 x levels + this many entries


class Level:
    """Orders at one price in time priority; `qty` is the live total, `dead` the count of
    cancelled orders still sitting in `orders`."""

    __slots__ = ("qty", "orders", "dead")

    def __init__(self) -> None:
        self.qty = 0
        self.orders: deque[Order] = deque()
        self.dead = 0


class OrderBook:
    """The book of one series: its levels, their heaps and best keys, and its L2 sequence.
    Only its own methods change them; `Exchange` (which owns the open-order index) calls
    them."""

    def __init__(self, series: Series) -> None:
        self.series = series
        self.id = series.id
        self.halted = False
        self.seq = 0  # L2 delta sequence number
        self.bids: dict[int, Level] = {}  # key = -price
        self.asks: dict[int, Level] = {}  # key = price
        self._bid_heap: list[int] = []
        self._ask_heap: list[int] = []
        self.bid_top = EMPTY  # the best key of each side (see the module docstring)
        self.ask_top = EMPTY
        self.set_reference_price(series.ref_price)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickle, giving a book from a snapshot written before the best keys were kept
        its `bid_top` and `ask_top` (the heaps' live roots), and dropping the exchange it
        used to refer to."""
        state.pop("_ex", None)
        self.__dict__.update(state)
        if "bid_top" not in state:
            self.bid_top = _live_top(self._bid_heap, self.bids)
            self.ask_top = _live_top(self._ask_heap, self.asks)

    # -- reference price and band ------------------------------------------------------

    def set_reference_price(self, price: int) -> None:
        self.ref_price = price
        if self.series.band_bps and price:
            width = price * self.series.band_bps // 10_000
            # Clamped, so that a band test alone also proves 0 < price <= MAX_PRICE.
            self.band_low = max(1, price - width)
            self.band_high = min(MAX_PRICE, price + width)
        else:
            self.band_low, self.band_high = 1, MAX_PRICE

    # -- queries -------------------------------------------------------------------------

    def best_key(self, side: Side) -> int | None:
        """The best key on `side` (ask: price, bid: -price); None when the side is empty."""
        key = self.bid_top if side is BUY else self.ask_top
        return None if key == EMPTY else key

    def best_bid(self) -> int | None:
        key = self.best_key(BUY)
        return None if key is None else -key

    def best_ask(self) -> int | None:
        return self.best_key(SELL)

    def depth(self, levels_max: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """L2 snapshot: (bids best first, asks best first) as (price, qty); 0 = all levels."""
        bid_keys = sorted(self.bids)
        ask_keys = sorted(self.asks)
        if levels_max:
            bid_keys, ask_keys = bid_keys[:levels_max], ask_keys[:levels_max]
        return (
            [(-k, self.bids[k].qty) for k in bid_keys],
            [(k, self.asks[k].qty) for k in ask_keys],
        )

    def orders(self) -> Iterator[Order]:
        """Every live order, bids then asks, each side by key, in time priority."""
        for levels in (self.bids, self.asks):
            for key in sorted(levels):
                yield from (o for o in levels[key].orders if o.qty)

    def queue(self, side: Side, price: int) -> list[Order]:
        """The live orders at one price in time priority (for tests and snapshots)."""
        level = self.bids.get(-price) if side is BUY else self.asks.get(price)
        return [] if level is None else [o for o in level.orders if o.qty]

    def crosses(self, side: Side, limit_key: int) -> bool:
        """Whether an incoming order on `side` with `limit_key` would trade on arrival."""
        return (self.ask_top if side is BUY else self.bid_top) <= limit_key

    def fillable(
        self, side: Side, account: int, stp: SelfTrade, qty: int, limit_key: int, max_notional: int
    ) -> int:
        """How much of an incoming order would fill now, without changing anything.

        Used for fill-or-kill only, so a walk over the crossing orders is acceptable; it
        honours self-trade prevention and a notional cap exactly as `match` does.
        """
        levels, sign = (self.asks, 1) if side is BUY else (self.bids, -1)
        lot = self.series.lot
        total = 0
        notional_left = max_notional
        for key in sorted(k for k in levels if k <= limit_key):
            price = key * sign
            for m in levels[key].orders:
                if not m.qty:
                    continue
                if m.account == account:
                    if stp is CANCEL_RESTING:
                        continue
                    return total
                want = min(m.qty, qty - total)
                take = want
                if max_notional:
                    take = min(take, notional_left // price // lot * lot)
                    if not take:
                        return total
                    notional_left -= take * price
                total += take
                if total >= qty or take < want:  # the cap stops `match` here too
                    return total
        return total

    # -- mutation ---------------------------------------------------------------------------

    def rest(self, order: Order, events: list[Event]) -> None:
        """Append an order to the back of its price level."""
        if order.side is BUY:
            key, levels, heap = -order.price, self.bids, self._bid_heap
        else:
            key, levels, heap = order.price, self.asks, self._ask_heap
        level = levels.get(key)
        if level is None:
            level = levels[key] = Level()
            heappush(heap, key)
            if len(heap) > 2 * len(levels) + _HEAP_SLACK:
                heap[:] = levels
                heapify(heap)
            if order.side is BUY:
                if key < self.bid_top:
                    self.bid_top = key
            elif key < self.ask_top:
                self.ask_top = key
        level.orders.append(order)
        total = level.qty = level.qty + order.qty
        seq = self.seq = self.seq + 1
        events.append(BookDelta(self.id, seq, order.side, order.price, total))

    def reduce(self, order: Order, qty_t: int, events: list[Event]) -> None:
        """Take `qty_t` tonnes off a resting order in place (keeps its priority). Reducing
        to zero removes it; the caller updates the open-order index."""
        if order.side is BUY:
            key, levels = -order.price, self.bids
        else:
            key, levels = order.price, self.asks
        level = levels[key]
        order.qty -= qty_t
        level.qty -= qty_t
        if not order.qty:
            level.dead += 1
            if not level.qty:
                del levels[key]
                if order.side is BUY:
                    if key == self.bid_top:
                        self.bid_top = _live_top(self._bid_heap, levels)
                elif key == self.ask_top:
                    self.ask_top = _live_top(self._ask_heap, levels)
            elif level.dead >= _DEAD_COMPACT_MIN and level.dead * 2 > len(level.orders):
                level.orders = deque(o for o in level.orders if o.qty)
                level.dead = 0
        seq = self.seq = self.seq + 1
        events.append(BookDelta(self.id, seq, order.side, order.price, level.qty))

    def match(
        self,
        taker: Order,
        limit_key: int,
        max_notional: int,
        ts: int,
        trade_id: int,
        events: list[Event],
        closed: list[Order],
    ) -> tuple[int, CancelReason | None]:
        """Trade `taker` against the opposite side up to `limit_key`, best price first, then
        time; `trade_id` is the id of the first trade. Lowers `taker.qty` by what filled and
        appends to `closed` every resting order it took off the book (filled, or cancelled by
        self-trade prevention). Returns the id the next trade takes, and why matching stopped
        early with quantity left (self-trade prevention or the notional cap) or None.

        This walks the levels (one L2 delta for each level it changed); `_take` walks the
        orders of one level. The taker's status moves once, at the end, so it is checked
        before anything trades: the table must let it be partially filled and filled."""
        taker_qty = taker.qty
        if not MAY_TRADE[taker.status]:
            raise cannot_trade(taker.order_id, taker.status)
        if taker.side is BUY:
            levels, heap, sign, maker_side, key = self.asks, self._ask_heap, 1, SELL, self.ask_top
        else:
            levels, heap, sign, maker_side, key = self.bids, self._bid_heap, -1, BUY, self.bid_top
        capped = max_notional > 0
        notional_left = max_notional
        stopped: CancelReason | None = None
        while taker.qty and key <= limit_key:
            level = levels[key]
            level_qty_before = level.qty
            price = key * sign
            trade_id, notional_left, stopped = self._take(
                level, price, taker, capped, notional_left, trade_id, ts, events, closed
            )
            if level.qty != level_qty_before:
                seq = self.seq = self.seq + 1
                events.append(BookDelta(self.id, seq, maker_side, price, level.qty))
            if not level.qty:  # `_live_top`, inlined: the hot path
                del levels[key]
                heappop(heap)
                while heap and heap[0] not in levels:
                    heappop(heap)
                key = heap[0] if heap else EMPTY
            if stopped is not None:
                break
        if taker.side is BUY:
            self.ask_top = key
        else:
            self.bid_top = key
        if taker.qty != taker_qty:
            taker.status = S_PARTIALLY_FILLED if taker.qty else S_FILLED
        return trade_id, stopped

    def _take(
        self,
        level: Level,
        price: int,
        taker: Order,
        capped: bool,
        notional_left: int,
        trade_id: int,
        ts: int,
        events: list[Event],
        closed: list[Order],
    ) -> tuple[int, int, CancelReason | None]:
        """Trade `taker` against the orders of one level in time priority, until either is
        done or matching must stop. Returns the next trade id, the notional the taker may
        still spend (if `capped`), and why matching stopped (or None)."""
        orders, append, series_id, lot = level.orders, events.append, self.id, self.series.lot
        taker_side, taker_id, taker_account = taker.side, taker.order_id, taker.account
        remaining = taker.qty
        stopped: CancelReason | None = None
        while True:
            m = orders[0]
            mq = m.qty
            if not mq:
                orders.popleft()
                level.dead -= 1
                continue
            if m.account == taker_account:
                stopped = self._self_trade(level, m, taker.stp, ts, events, closed)
                if stopped is not None or not level.qty:
                    break
                continue
            q = remaining if remaining < mq else mq
            if capped:  # whole lots the taker can still pay for at this price
                q = min(q, notional_left // price // lot * lot)
                if not q:
                    stopped = CancelReason.NOTIONAL_LIMIT
                    break
                notional_left -= q * price
            status = S_FILLED if q == mq else S_PARTIALLY_FILLED
            if not MAY[m.status][status]:
                raise illegal(m.order_id, m.status, status)
            append(
                Trade(
                    trade_id,
                    series_id,
                    price,
                    q,
                    taker_side,
                    m.order_id,
                    m.account,
                    taker_id,
                    taker_account,
                    ts,
                )
            )
            trade_id += 1
            remaining -= q
            level.qty -= q
            m.status = status
            if q == mq:
                m.qty = 0
                orders.popleft()
                closed.append(m)
            else:
                m.qty = mq - q
            if not remaining or not level.qty:
                break
        taker.qty = remaining
        return trade_id, notional_left, stopped

    def _self_trade(
        self,
        level: Level,
        resting: Order,
        stp: SelfTrade,
        ts: int,
        events: list[Event],
        closed: list[Order],
    ) -> CancelReason | None:
        """Self-trade prevention, at the front of `level`: `resting` is the incoming order's
        own. Cancels it (cancel_resting, cancel_both) and says whether matching stops there
        (cancel_incoming, cancel_both: SELF_TRADE) or goes on (None)."""
        if stp is CANCEL_RESTING or stp is CANCEL_BOTH:
            if not MAY[resting.status][S_CANCELLED]:
                raise illegal(resting.order_id, resting.status, S_CANCELLED)
            qty = resting.qty
            resting.qty = 0
            resting.status = S_CANCELLED
            level.orders.popleft()
            level.qty -= qty
            closed.append(resting)
            events.append(
                Cancelled(
                    resting.order_id,
                    resting.account,
                    self.id,
                    resting.side,
                    qty,
                    CancelReason.SELF_TRADE,
                    ts,
                )
            )
        return None if stp is CANCEL_RESTING else CancelReason.SELF_TRADE

    # -- checks -------------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Plain asserts over the whole structure; tests call this after every step."""
        for levels, heap, side, sign in (
            (self.bids, self._bid_heap, BUY, -1),
            (self.asks, self._ask_heap, SELL, 1),
        ):
            assert set(levels) <= set(heap), "every level has a heap entry"
            top = self.bid_top if side is BUY else self.ask_top
            assert top == min(levels, default=EMPTY), "the top is the side's best key"
            assert not levels or heap[0] == top, "the top is the heap's root"
            for key, level in levels.items():
                live = [o for o in level.orders if o.qty]
                assert live, "no empty level is kept"
                assert level.qty == sum(o.qty for o in live), "level total = sum of live orders"
                assert level.dead == len(level.orders) - len(live), "dead count is exact"
                for o in live:
                    assert o.side is side and o.price == key * sign, "order sits at its price"
                    assert IS_OPEN[o.status], "a live order's status is open"
                    assert o.qty % self.series.lot == 0, "open quantity is a lot multiple"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"book crossed: {bid} >= {ask}"


def _live_top(heap: list[int], levels: dict[int, Level]) -> int:
    """The best key of a side whose old best level has just gone: the heap's root once the
    stale entries above it are dropped (`EMPTY` if none is left)."""
    while heap and heap[0] not in levels:
        heappop(heap)
    return heap[0] if heap else EMPTY
