"""The matcher-only reference: bare price-time matching, as fast as straightforward Python goes.

This is the lower yardstick of `tonne bench`: what matching alone costs in CPython, with none
of the exchange around it. It takes commands in their cheapest form, prebuilt tuples
(`compile_ops`, run before the clock starts), and produces nothing but fills, appended as
`(maker id, taker id, price, qty)` tuples to one list for the whole run.

`Matcher`, the yardstick: per series and side, a dict from price to a `collections.deque` of
orders in time priority, and a plain list of that side's prices kept sorted with
`bisect.insort`, best price last (bids by price, asks by minus the price), so the best level
is `tops[-1]` and an emptied best level is `tops.pop()`. An order is a list
`[order id, open qty, account, price, own side, other side]`; a dict maps order id to it.
A cancel takes the order out of its deque with `deque.remove` and drops the level when it
empties. An amend that lowers the quantity at the same price changes the order in place;
any other amend takes it out and enters it again at the back of its (new) level, where it
may trade. Trades are at the maker's price; meeting an order of the taker's own account
stops the match and drops the rest of the taker (self-trade prevention "cancel incoming",
the engine's default).

`SortedDictMatcher` is the same matcher with each side a `sortedcontainers.SortedDict` of
price to deque, the "obvious" version issue 17 names. Both run in `tonne bench`; the plain
sorted list measured 1.4x the SortedDict's rate on the standard workload (bench/README.md),
because a side holds a few dozen prices at most, where `insort` and `list.remove` are single
C calls and `SortedDict.peekitem` is several Python-level ones.

What the matchers leave out, so that they bound the cost of matching from below (the full
list, with the engine's side of it, is in bench/README.md):

- no validation at all: the workload is valid by construction, and every `NewOrder` in it is
  accepted, so order ids are 1, 2, 3, ... in command order (which `compile_ops` relies on);
- no account check on a cancel or an amend, no client-order-id index: `compile_ops` turns a
  cancel by client order id into one by order id, and a cancel of an order that is no longer
  open (one that lost the race against a fill) changes nothing;
- no events (acknowledgements, cancel confirmations, L2 updates), no trade ids, no
  timestamps, no order status, no expiry, no notional cap (the workload's never binds: a
  market order is compiled into a limit order at the far end of the price range);
- no per-command result: the caller gives a chunk of tuples and reads the fills after it.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from sortedcontainers import SortedDict

from engine.commands import Amend, Cancel, Command, NewOrder, OrderType, Side, TimeInForce

Fill = tuple[int, int, int, int]
"""One trade: (maker order id, taker order id, price, qty)."""

Op = tuple[Any, ...]
"""A command in its cheapest form, one of

- `(NEW, account, book, is_buy, limit_price, qty, rests)`: `book` is the series' position in
  the list the matcher was built with; `rests`: the rest stays in the book (limit GTC);
- `(CANCEL, order_id)`;
- `(AMEND, order_id, price, qty)`: 0 leaves the price or the quantity as it is.
"""

NEW, CANCEL, AMEND = 0, 1, 2
MARKET_BUY_LIMIT = 1 << 62  # a market order is a limit order at the far end of the range
MARKET_SELL_LIMIT = 0


class OpCompiler:
    """Turns `engine` commands into `Op`s, one at a time, as `compile_ops` does for a list.

    It numbers `NewOrder`s 1, 2, 3, ... (every one in the workload is accepted) and
    remembers each one's id by (account, client order id), so that a cancel by client order
    id becomes a cancel by order id."""

    def __init__(self, series_ids: Sequence[str]) -> None:
        self.book_of = {series_id: i for i, series_id in enumerate(series_ids)}
        self.id_of: dict[tuple[int, str], int] = {}
        self.next_order_id = 1

    def op(self, cmd: Command) -> Op:
        kind = type(cmd)
        if kind is NewOrder:
            assert isinstance(cmd, NewOrder)
            buy = cmd.side is Side.BUY
            if cmd.type is OrderType.MARKET:
                limit = MARKET_BUY_LIMIT if buy else MARKET_SELL_LIMIT
            else:
                limit = cmd.price
            rests = cmd.type is OrderType.LIMIT and cmd.tif is TimeInForce.GTC
            self.id_of[(cmd.account, cmd.client_order_id)] = self.next_order_id
            self.next_order_id += 1
            return (NEW, cmd.account, self.book_of[cmd.series], buy, limit, cmd.qty, rests)
        if kind is Cancel:
            assert isinstance(cmd, Cancel)
            order_id = cmd.order_id or self.id_of.get((cmd.account, cmd.client_order_id), 0)
            return (CANCEL, order_id)
        if kind is Amend:
            assert isinstance(cmd, Amend)
            return (AMEND, cmd.order_id, cmd.price, cmd.qty)
        raise NotImplementedError(f"the matcher does not handle {kind.__name__}")


def compile_ops(commands: Iterable[Command], series_ids: Sequence[str]) -> list[Op]:
    """The commands as `Op`s for a matcher built with `series_ids` (see `OpCompiler`)."""
    compiler = OpCompiler(series_ids)
    return [compiler.op(cmd) for cmd in commands]


class Matcher:
    """Many books of bare price-time matching; `run(ops)` appends the fills to `fills`.

    A side is a tuple `(levels, tops, sign)`: price -> deque of orders, the sorted list of
    `price * sign` (best last), and the sign (bids 1, asks -1)."""

    def __init__(self, books: int) -> None:
        self.books = [self.new_book() for _ in range(books)]
        self.orders: dict[int, list[Any]] = {}  # open orders by id
        self.next_order_id = 1
        self.fills: list[Fill] = []

    @staticmethod
    def new_book() -> tuple[Any, Any]:
        """(bids, asks)."""
        return ({}, [], 1), ({}, [], -1)

    def run(self, ops: Iterable[Op]) -> None:
        new, cancel, amend = self.new, self.cancel, self.amend
        for op in ops:
            kind = op[0]
            if kind == NEW:
                new(op[1], op[2], op[3], op[4], op[5], op[6])
            elif kind == CANCEL:
                cancel(op[1])
            else:
                amend(op[1], op[2], op[3])

    def new(self, account: int, book: int, buy: bool, limit: int, qty: int, rests: bool) -> None:
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        bids, asks = self.books[book]
        own, other = (bids, asks) if buy else (asks, bids)
        qty = self.match(order_id, account, other, limit, qty)
        if qty and rests:
            self.rest([order_id, qty, account, limit, own, other])

    def cancel(self, order_id: int) -> None:
        order = self.orders.pop(order_id, None)
        if order is not None:
            self.unrest(order)

    def amend(self, order_id: int, price: int, qty: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        price = price or order[3]
        qty = qty or order[1]
        if price == order[3] and qty < order[1]:
            order[1] = qty  # keeps its place in the queue
            return
        del self.orders[order_id]
        self.unrest(order)
        qty = self.match(order_id, order[2], order[5], price, qty)
        if qty:
            order[1], order[3] = qty, price
            self.rest(order)

    def rest(self, order: list[Any]) -> None:
        levels, tops, sign = order[4]
        price = order[3]
        level = levels.get(price)
        if level is None:
            levels[price] = deque((order,))
            insort(tops, price * sign)
        else:
            level.append(order)
        self.orders[order[0]] = order

    def unrest(self, order: list[Any]) -> None:
        levels, tops, sign = order[4]
        price = order[3]
        level = levels[price]
        level.remove(order)
        if not level:
            del levels[price]
            tops.remove(price * sign)

    def match(self, taker_id: int, account: int, side: Any, limit: int, qty: int) -> int:
        """Trade a taker against `side`, best price first, then time, up to `limit`; returns
        the quantity left to rest (0 after self-trade prevention)."""
        levels, tops, sign = side
        limit_key = limit * sign
        fills, orders = self.fills, self.orders
        while tops:
            key = tops[-1]
            if key < limit_key:
                return qty
            price = key * sign
            level = levels[price]
            while True:
                maker = level[0]
                if maker[2] == account:
                    return 0
                maker_qty = maker[1]
                if qty < maker_qty:
                    fills.append((maker[0], taker_id, price, qty))
                    maker[1] = maker_qty - qty
                    return 0
                fills.append((maker[0], taker_id, price, maker_qty))
                level.popleft()
                del orders[maker[0]]
                qty -= maker_qty
                if not level:
                    del levels[price]
                    tops.pop()
                    break
                if not qty:
                    return 0
            if not qty:
                return 0
        return qty

    # -- queries (the workload generator's; not on the timed path) -----------------------------

    def best_bid(self, book: int) -> int | None:
        tops = self.books[book][0][1]
        return tops[-1] if tops else None

    def best_ask(self, book: int) -> int | None:
        tops = self.books[book][1][1]
        return -tops[-1] if tops else None

    def highest_ask(self, book: int) -> int | None:
        tops = self.books[book][1][1]
        return -tops[0] if tops else None

    def open_qty(self, order_id: int) -> int:
        """The open quantity of an order (0 once it has left the book)."""
        order = self.orders.get(order_id)
        return 0 if order is None else int(order[1])

    def price_of(self, order_id: int) -> int:
        return int(self.orders[order_id][3])


class SortedDictMatcher(Matcher):
    """`Matcher` with each side a `SortedDict` from `price * sign` to deque (best last), the
    version issue 17 calls obvious; the same orders, the same fills. A side is
    `(levels, sign)`."""

    @staticmethod
    def new_book() -> tuple[Any, Any]:
        return (SortedDict(), 1), (SortedDict(), -1)

    def rest(self, order: list[Any]) -> None:
        levels, sign = order[4]
        key = order[3] * sign
        level = levels.get(key)
        if level is None:
            levels[key] = deque((order,))
        else:
            level.append(order)
        self.orders[order[0]] = order

    def unrest(self, order: list[Any]) -> None:
        levels, sign = order[4]
        key = order[3] * sign
        level = levels[key]
        level.remove(order)
        if not level:
            del levels[key]

    def match(self, taker_id: int, account: int, side: Any, limit: int, qty: int) -> int:
        levels, sign = side
        limit_key = limit * sign
        fills, orders = self.fills, self.orders
        while levels:
            key, level = levels.peekitem(-1)
            if key < limit_key:
                return qty
            price = key * sign
            while True:
                maker = level[0]
                if maker[2] == account:
                    return 0
                maker_qty = maker[1]
                if qty < maker_qty:
                    fills.append((maker[0], taker_id, price, qty))
                    maker[1] = maker_qty - qty
                    return 0
                fills.append((maker[0], taker_id, price, maker_qty))
                level.popleft()
                del orders[maker[0]]
                qty -= maker_qty
                if not level:
                    del levels[key]
                    break
                if not qty:
                    return 0
            if not qty:
                return 0
        return qty

    def best_bid(self, book: int) -> int | None:
        levels = self.books[book][0][0]
        return levels.peekitem(-1)[0] if levels else None  # type: ignore[no-any-return]

    def best_ask(self, book: int) -> int | None:
        levels = self.books[book][1][0]
        return -levels.peekitem(-1)[0] if levels else None

    def highest_ask(self, book: int) -> int | None:
        levels = self.books[book][1][0]
        return -levels.peekitem(0)[0] if levels else None
