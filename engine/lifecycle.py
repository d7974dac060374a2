"""The order lifecycle: one table that says which order status may follow which.

All transition logic lives here (h11's habit). `TRANSITIONS` is the table, and it drives the
engine: every `Order` carries its `status`, and each operation that changes an order (a fill
or a self-trade cancel in `OrderBook.match`; the acceptance, a cancel, an expiry, an amend in
`Exchange`) first looks the step up in `MAY`, the same table as nested tuples indexed by
status, and raises `LifecycleError` before it changes anything if the table does not allow
it. Statuses are small ints (an `IntEnum`; an `Order` holds the plain int, which indexes a
tuple fastest), so a check costs two tuple indexings and no hashing or allocation.

`transition` checks one step against the table by name; `apply_event` folds the engine's
events into per-order statuses and open quantities, so a test (or an auditor replaying a
journal) can check that every event sequence the engine emits is a legal lifecycle::

    (accepted) -> NEW -> PARTIALLY_FILLED -> FILLED
                  NEW | PARTIALLY_FILLED  -> CANCELLED | EXPIRED
                  an amend keeps the status it finds (NEW stays NEW, ...)
    REJECTED: a command that changed nothing; terminal and never open

A rejected new order never receives an order id, so neither the engine nor `apply_event`
has an order to mark REJECTED; the status exists so that clients and reports share one
vocabulary.

An illegal transition raises `LifecycleError` and leaves the order (or, for `apply_event`,
both dictionaries) unchanged.
"""

from __future__ import annotations

from enum import IntEnum

from engine.events import Accepted, Amended, Cancelled, Event, Expired, Trade


class OrderStatus(IntEnum):
    NEW = 0
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5

    def __str__(self) -> str:
        return self.name.lower()


NEW = OrderStatus.NEW
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELLED = OrderStatus.CANCELLED
EXPIRED = OrderStatus.EXPIRED
REJECTED = OrderStatus.REJECTED

# None is "no such order yet". A status may follow itself only where listed: NEW -> NEW and
# PARTIALLY_FILLED -> PARTIALLY_FILLED are amends (and further partial fills).
TRANSITIONS: dict[OrderStatus | None, frozenset[OrderStatus]] = {
    None: frozenset({NEW, REJECTED}),
    NEW: frozenset({NEW, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED}),
    FILLED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
    REJECTED: frozenset(),
}

OPEN: frozenset[OrderStatus] = frozenset({NEW, PARTIALLY_FILLED})

# The table as the engine reads it, by plain-int status: `MAY[old][new]` is whether `new` may
# follow `old`; `MAY_START` whether an accepted order may start NEW; `MAY_TRADE[s]` whether an
# order in `s` may take fills, which leave it PARTIALLY_FILLED or FILLED (only the end of a
# match tells which, so a taker is checked for both before it trades); `IS_OPEN[s]` whether
# `s` is open.
assert [int(s) for s in OrderStatus] == list(range(len(OrderStatus))), "statuses index MAY"
S_NEW = int(NEW)
S_PARTIALLY_FILLED = int(PARTIALLY_FILLED)
S_FILLED = int(FILLED)
S_CANCELLED = int(CANCELLED)
S_EXPIRED = int(EXPIRED)
MAY: tuple[tuple[bool, ...], ...] = tuple(
    tuple(new in TRANSITIONS[old] for new in OrderStatus) for old in OrderStatus
)
MAY_START: bool = NEW in TRANSITIONS[None]
MAY_TRADE: tuple[bool, ...] = tuple(
    MAY[s][S_PARTIALLY_FILLED] and MAY[s][S_FILLED] for s in range(len(OrderStatus))
)
IS_OPEN: tuple[bool, ...] = tuple(s in OPEN for s in OrderStatus)


class LifecycleError(Exception):
    """An event would move an order along a transition the table does not allow."""


def illegal(order_id: int, old: int | None, new: int) -> LifecycleError:
    """The error for order `order_id` stepping from `old` to `new` against the table."""
    was = "nothing" if old is None else str(OrderStatus(old))
    return LifecycleError(f"order {order_id} cannot go from {was} to {OrderStatus(new)}")


def cannot_trade(order_id: int, old: int) -> LifecycleError:
    """The error for order `order_id` taking fills in `old`, where `MAY_TRADE` says no."""
    return illegal(order_id, old, S_FILLED if MAY[old][S_PARTIALLY_FILLED] else S_PARTIALLY_FILLED)


def is_open(status: OrderStatus | None) -> bool:
    """Whether an order in `status` rests in (or may still enter) a book."""
    return status in OPEN


def transition(old: OrderStatus | None, new: OrderStatus) -> OrderStatus:
    """`new`, if the table allows it to follow `old`; else raise `LifecycleError`."""
    if new not in TRANSITIONS[old]:
        raise LifecycleError(f"an order cannot go from {old} to {new}")
    return new


def apply_event(statuses: dict[int, OrderStatus], event: Event, open_qty: dict[int, int]) -> None:
    """Fold one engine event into `statuses` (order id -> status) and `open_qty` (order id ->
    open tonnes, needed to tell a fill from a partial fill).

    Accepted creates an order; Trade moves maker and taker; Amended sets the open quantity and
    keeps the status; Cancelled and Expired end the order and must name its whole open
    quantity. Other events (Rejected, BookDelta, StatusChanged) change no order. On an illegal
    step nothing is changed and `LifecycleError` is raised.
    """
    if isinstance(event, Accepted):
        if event.order_id in statuses:
            raise LifecycleError(f"order {event.order_id} accepted twice")
        if event.qty <= 0:
            raise LifecycleError(f"order {event.order_id} accepted with quantity {event.qty}")
        statuses[event.order_id] = transition(None, NEW)
        open_qty[event.order_id] = event.qty
    elif isinstance(event, Trade):
        if event.qty <= 0:
            raise LifecycleError(f"trade {event.trade_id} of quantity {event.qty}")
        if event.maker_order_id == event.taker_order_id:
            raise LifecycleError(f"trade {event.trade_id}: order {event.maker_order_id} met itself")
        steps = [_fill(statuses, open_qty, oid, event.qty) for oid in _trade_orders(event)]
        for oid, (status, left) in zip(_trade_orders(event), steps, strict=True):
            statuses[oid] = status
            open_qty[oid] = left
    elif isinstance(event, Amended):
        old = _status(statuses, event.order_id)
        if old not in OPEN:
            raise LifecycleError(f"order {event.order_id} amended while {old}")
        if event.old_qty != open_qty[event.order_id]:
            raise LifecycleError(
                f"order {event.order_id} amended from {event.old_qty}, "
                f"but its open quantity is {open_qty[event.order_id]}"
            )
        if event.qty <= 0:
            raise LifecycleError(f"order {event.order_id} amended to quantity {event.qty}")
        statuses[event.order_id] = transition(old, old)
        open_qty[event.order_id] = event.qty
    elif isinstance(event, Cancelled | Expired):
        new = CANCELLED if isinstance(event, Cancelled) else EXPIRED
        old = _status(statuses, event.order_id)
        status = transition(old, new)
        if event.qty != open_qty[event.order_id]:
            raise LifecycleError(
                f"order {event.order_id} {new} with {event.qty} t, "
                f"but its open quantity is {open_qty[event.order_id]}"
            )
        statuses[event.order_id] = status
        open_qty[event.order_id] = 0


def _trade_orders(trade: Trade) -> tuple[int, int]:
    return trade.maker_order_id, trade.taker_order_id


def _status(statuses: dict[int, OrderStatus], order_id: int) -> OrderStatus:
    status = statuses.get(order_id)
    if status is None:
        raise LifecycleError(f"order {order_id} is unknown")
    return status


def _fill(
    statuses: dict[int, OrderStatus], open_qty: dict[int, int], order_id: int, qty: int
) -> tuple[OrderStatus, int]:
    """The status and open quantity of `order_id` after a fill of `qty` (changes nothing)."""
    left = open_qty.get(order_id, 0) - qty
    if left < 0:
        raise LifecycleError(f"order {order_id} filled {qty} t with {left + qty} t open")
    return transition(_status(statuses, order_id), FILLED if not left else PARTIALLY_FILLED), left
