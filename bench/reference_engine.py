"""The reference engine: price-time matching written the obvious way, the baseline of `tonne bench`.

Per series, each side is a `sortedcontainers.SortedDict` from price to a `collections.deque`
of orders in time priority; a dict maps order id to order. Cancel takes the order out of its
deque (`deque.remove`) and drops the level when it empties. An amend that lowers the quantity
at the same price changes the order in place; any other amend takes the order out and enters
it again at the back of its (new) level, where it may trade. Trades are at the maker's price.

It implements only what the standard workload uses (limit GTC/IOC, market IOC, cancel by
order id or client order id, amend, self-trade prevention "cancel incoming", which is the
engine's default) and validates nothing: the workload is valid by construction. It ignores a
market buy's cash limit (`max_notional`): the workload sets limits that never bind. A command
that names an order which is no longer open (a cancel that lost the race against a fill)
changes nothing, as in the engine, where it is rejected.

The point of this module is to be plainly correct and idiomatic, not slow: it is the yardstick
the engine's speed is reported against, and the fill sequence the engine's must equal.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sortedcontainers import SortedDict

from engine.commands import Amend, Cancel, Command, NewOrder, OrderType, Side, TimeInForce

Fill = tuple[int, int, int, int]
"""One trade: (maker order id, taker order id, price, qty)."""


@dataclass(slots=True, eq=False)
class RefOrder:
    order_id: int
    account: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int


class RefBook:
    """One series: bids and asks as price -> deque of orders, oldest first."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # best = highest price = last item
        self.asks: SortedDict = SortedDict()  # best = lowest price = first item

    def best_bid(self) -> int | None:
        return self.bids.peekitem(-1)[0] if self.bids else None

    def best_ask(self) -> int | None:
        return self.asks.peekitem(0)[0] if self.asks else None

    def highest_ask(self) -> int | None:
        return self.asks.peekitem(-1)[0] if self.asks else None

    def add(self, order: RefOrder) -> None:
        side = self.bids if order.side is Side.BUY else self.asks
        level = side.get(order.price)
        if level is None:
            level = side[order.price] = deque()
        level.append(order)

    def remove(self, order: RefOrder) -> None:
        side = self.bids if order.side is Side.BUY else self.asks
        level = side[order.price]
        level.remove(order)
        if not level:
            del side[order.price]


class ReferenceEngine:
    """Many `RefBook`s and one open-order index; `submit` returns the fills of one command."""

    def __init__(self, series_ids: list[str]) -> None:
        self.books = {series_id: RefBook() for series_id in series_ids}
        self.orders: dict[int, RefOrder] = {}
        self.by_client_id: dict[tuple[int, str], RefOrder] = {}
        self.next_order_id = 1

    def submit(self, cmd: Command) -> list[Fill]:
        fills: list[Fill] = []
        if isinstance(cmd, NewOrder):
            self.new_order(cmd, fills)
        elif isinstance(cmd, Cancel):
            self.cancel(cmd)
        elif isinstance(cmd, Amend):
            self.amend(cmd, fills)
        else:
            raise NotImplementedError(f"the reference engine does not handle {type(cmd).__name__}")
        return fills

    def new_order(self, cmd: NewOrder, fills: list[Fill]) -> None:
        order = RefOrder(
            self.next_order_id,
            cmd.account,
            cmd.client_order_id,
            cmd.series,
            cmd.side,
            cmd.price,
            cmd.qty,
        )
        self.next_order_id += 1
        market = cmd.type is OrderType.MARKET
        self_trade = self.match(order, market, fills)
        if order.qty and not self_trade and not market and cmd.tif is TimeInForce.GTC:
            self.rest(order)

    def cancel(self, cmd: Cancel) -> None:
        if cmd.order_id:
            order = self.orders.get(cmd.order_id)
            if order is None or order.account != cmd.account:
                return
        else:
            order = self.by_client_id.get((cmd.account, cmd.client_order_id))
            if order is None:
                return
        self.unrest(order)

    def amend(self, cmd: Amend, fills: list[Fill]) -> None:
        order = self.orders.get(cmd.order_id)
        if order is None or order.account != cmd.account:
            return
        price = cmd.price or order.price
        qty = cmd.qty or order.qty
        if price == order.price and qty < order.qty:
            order.qty = qty  # keeps its place in the queue
            return
        self.unrest(order)
        order.price, order.qty = price, qty
        self_trade = self.match(order, False, fills)
        if order.qty and not self_trade:
            self.rest(order)

    def rest(self, order: RefOrder) -> None:
        self.books[order.series].add(order)
        self.orders[order.order_id] = order
        self.by_client_id[(order.account, order.client_order_id)] = order

    def unrest(self, order: RefOrder) -> None:
        self.books[order.series].remove(order)
        del self.orders[order.order_id]
        del self.by_client_id[(order.account, order.client_order_id)]

    def match(self, taker: RefOrder, market: bool, fills: list[Fill]) -> bool:
        """Match `taker` against the opposite side, best price first, then time; lowers
        `taker.qty` by what filled. Returns True when it met an order of the taker's own
        account, which stops the match and cancels the rest of the taker (self-trade
        prevention)."""
        book = self.books[taker.series]
        buy = taker.side is Side.BUY
        opposite = book.asks if buy else book.bids
        while taker.qty and opposite:
            price, level = opposite.peekitem(0 if buy else -1)
            if not market and (price > taker.price if buy else price < taker.price):
                return False
            while taker.qty and level:
                maker = level[0]
                if maker.account == taker.account:
                    return True
                qty = min(taker.qty, maker.qty)
                fills.append((maker.order_id, taker.order_id, price, qty))
                taker.qty -= qty
                maker.qty -= qty
                if not maker.qty:
                    level.popleft()
                    del self.orders[maker.order_id]
                    del self.by_client_id[(maker.account, maker.client_order_id)]
            if not level:
                del opposite[price]
        return False
