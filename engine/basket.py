"""A basket's matching (issue 14): one buy order, one order id and client order id, that
takes from the front of several books in turn and never rests.

This is the engine's part only: the id and the client-order-id window, each take against a
book's front (the book's own `match`, so price-time priority and the L2 deltas are the
book's), and the cancel of what is left. Which books, in which order and how much from
each is the settlement core's plan (settlement/basket.py), made before anything changes.
"""

from __future__ import annotations

from collections import deque

from engine.book import Order
from engine.commands import SelfTrade, Side, TimeInForce
from engine.events import Accepted, Cancelled, CancelReason, Event, Rejected
from engine.exchange import Exchange
from engine.lifecycle import S_NEW

BASKET = ""  # the series an accepted basket names: it belongs to no one book


def check_entry(ex: Exchange, account: int, coid: str, ts: int) -> Rejected | None:
    """Whether a basket may take `coid`, as a new order's entry judges it."""
    return ex.check_client_order_id(account, coid, ts)


def open_basket(
    ex: Exchange, account: int, coid: str, price: int, qty: int, ts: int, events: list[Event]
) -> int:
    """Give the basket the next order id and record its client order id (as a new order's
    entry does); its `Accepted` names no series."""
    order_id = ex.next_order_id
    ex.next_order_id = order_id + 1
    seen = ex.coids_seen.get(account)
    if seen is None:
        seen = ex.coids_seen[account] = set()
        recent = ex.coids_recent[account] = deque()
    else:
        recent = ex.coids_recent[account]
    seen.add(coid)
    recent.append(coid)
    if len(recent) > ex.coid_window:
        seen.discard(recent.popleft())
    events.append(Accepted(order_id, account, coid, BASKET, Side.BUY, price, qty, ts))
    return order_id


def take(
    ex: Exchange,
    order_id: int,
    account: int,
    coid: str,
    series: str,
    qty: int,
    price: int,
    ts: int,
    events: list[Event],
) -> int:
    """Buy up to `qty` from the front of `series`' book, at most `price`; what filled. The
    plan stops before the buyer's own resting orders, so self-trade prevention never fires
    (if it did, the take stops there, as an incoming order's would)."""
    book = ex.books[series]
    taker = Order(
        order_id,
        series,
        account,
        coid,
        Side.BUY,
        price,
        qty,
        TimeInForce.IOC,
        0,
        SelfTrade.CANCEL_INCOMING,
        False,
        S_NEW,
    )
    closed: list[Order] = []
    ex.next_trade_id, _ = book.match(taker, price, 0, ts, ex.next_trade_id, events, closed)
    for maker in closed:
        ex._unindex(maker)
    return qty - taker.qty


def close_basket(
    ex: Exchange,
    order_id: int,
    account: int,
    left: int,
    tif: TimeInForce,
    ts: int,
    events: list[Event],
) -> None:
    """Cancel what the basket did not fill (it never rests)."""
    if left:
        reason = (
            CancelReason.FILL_OR_KILL
            if tif is TimeInForce.FOK
            else (CancelReason.IMMEDIATE_OR_CANCEL)
        )
        events.append(Cancelled(order_id, account, BASKET, Side.BUY, left, reason, ts))
