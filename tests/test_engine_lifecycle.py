"""The order lifecycle table and `apply_event`, which folds engine events into statuses."""

from __future__ import annotations

import pytest

from engine import (
    Accepted,
    Amend,
    Amended,
    Cancel,
    Cancelled,
    CancelReason,
    Event,
    Exchange,
    Expired,
    Mitigation,
    NewOrder,
    Series,
    Side,
    TimeInForce,
    Trade,
)
from engine.lifecycle import (
    OPEN,
    TRANSITIONS,
    LifecycleError,
    OrderStatus,
    apply_event,
    is_open,
    transition,
)

NEW = OrderStatus.NEW
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELLED = OrderStatus.CANCELLED
EXPIRED = OrderStatus.EXPIRED
REJECTED = OrderStatus.REJECTED
BUY, SELL = Side.BUY, Side.SELL
TERMINAL = [FILLED, CANCELLED, EXPIRED, REJECTED]


class Fold:
    """Statuses and open quantities, fed by events."""

    def __init__(self) -> None:
        self.statuses: dict[int, OrderStatus] = {}
        self.open_qty: dict[int, int] = {}

    def feed(self, events: list[Event]) -> None:
        for e in events:
            apply_event(self.statuses, e, self.open_qty)


def accepted(order_id: int, qty: int = 10, side: Side = BUY) -> Accepted:
    return Accepted(order_id, 1, f"c{order_id}", "A", side, 100, qty, 0)


def trade(maker: int, taker: int, qty: int, trade_id: int = 1) -> Trade:
    return Trade(trade_id, "A", 100, qty, BUY, maker, 2, taker, 1, 0)


def cancelled(order_id: int, qty: int) -> Cancelled:
    return Cancelled(order_id, 1, "A", BUY, qty, CancelReason.USER, 0)


def amended(order_id: int, old_qty: int, qty: int) -> Amended:
    return Amended(order_id, 1, "A", BUY, 100, old_qty, 100, qty, qty < old_qty, 0)


# -- the table -----------------------------------------------------------------------------------


def test_the_table_names_every_status() -> None:
    assert set(TRANSITIONS) == set(OrderStatus) | {None}


def test_an_order_goes_from_new_through_partially_filled_to_filled() -> None:
    status = transition(None, NEW)
    status = transition(status, PARTIALLY_FILLED)
    status = transition(status, PARTIALLY_FILLED)
    assert transition(status, FILLED) is FILLED
    assert transition(NEW, FILLED) is FILLED


@pytest.mark.parametrize("start", [NEW, PARTIALLY_FILLED])
@pytest.mark.parametrize("end", [CANCELLED, EXPIRED])
def test_an_open_order_may_be_cancelled_or_expire(start: OrderStatus, end: OrderStatus) -> None:
    assert transition(start, end) is end


@pytest.mark.parametrize("status", TERMINAL)
def test_filled_cancelled_expired_and_rejected_are_terminal(status: OrderStatus) -> None:
    assert TRANSITIONS[status] == frozenset()
    assert not is_open(status)
    for new in OrderStatus:
        with pytest.raises(LifecycleError):
            transition(status, new)


def test_only_new_and_partially_filled_are_open() -> None:
    assert frozenset({NEW, PARTIALLY_FILLED}) == OPEN
    assert not is_open(None)


def test_a_partially_filled_order_never_becomes_new_again() -> None:
    with pytest.raises(LifecycleError):
        transition(PARTIALLY_FILLED, NEW)


def test_an_order_starts_new_or_rejected_and_nothing_else() -> None:
    assert TRANSITIONS[None] == {NEW, REJECTED}


# -- folding events ------------------------------------------------------------------------------


def test_trades_move_both_maker_and_taker() -> None:
    fold = Fold()
    fold.feed([accepted(1, 10, SELL), accepted(2, 4)])
    fold.feed([trade(1, 2, 4)])
    assert fold.statuses == {1: PARTIALLY_FILLED, 2: FILLED}
    assert fold.open_qty == {1: 6, 2: 0}
    fold.feed([accepted(3, 6), trade(1, 3, 6, trade_id=2)])
    assert fold.statuses[1] is FILLED and fold.statuses[3] is FILLED


def test_an_amend_keeps_the_status_and_sets_the_open_quantity() -> None:
    fold = Fold()
    fold.feed([accepted(1, 10), accepted(2, 10, SELL), trade(1, 2, 3)])
    fold.feed([amended(1, 7, 12)])
    assert (fold.statuses[1], fold.open_qty[1]) == (PARTIALLY_FILLED, 12)
    fold.feed([amended(2, 7, 2)])
    assert (fold.statuses[2], fold.open_qty[2]) == (PARTIALLY_FILLED, 2)
    fold.feed([accepted(3, 5), amended(3, 5, 1)])
    assert fold.statuses[3] is NEW


def test_cancel_and_expiry_end_an_order_with_its_whole_open_quantity() -> None:
    fold = Fold()
    fold.feed([accepted(1, 10), accepted(2, 3, SELL), trade(2, 1, 3), cancelled(1, 7)])
    fold.feed([accepted(3, 5), Expired(3, 1, "A", BUY, 5, 0)])
    assert fold.statuses == {1: CANCELLED, 2: FILLED, 3: EXPIRED}
    assert not any(is_open(s) for s in fold.statuses.values())


@pytest.mark.parametrize(
    "bad",
    [
        [accepted(1)],  # accepted twice
        [trade(1, 9, 1)],  # unknown taker
        [trade(1, 2, 11)],  # more than is open
        [trade(1, 1, 1)],  # an order meets itself
        [cancelled(1, 9)],  # cancels less than is open
        [cancelled(9, 1)],  # unknown order
        [amended(1, 9, 5)],  # amends from a quantity that is not open
        [amended(1, 10, 0)],  # amends to nothing
        [cancelled(1, 10), cancelled(1, 10)],  # cancelled twice
        [cancelled(1, 10), trade(1, 2, 1)],  # trades after cancel
        [cancelled(1, 10), amended(1, 10, 5)],  # amended after cancel
        [trade(1, 2, 10), Expired(1, 1, "A", BUY, 0, 0)],  # expires once filled
    ],
    ids=[
        "accepted twice",
        "unknown taker",
        "overfill",
        "self",
        "short cancel",
        "unknown cancel",
        "stale amend",
        "amend to zero",
        "cancel twice",
        "trade after cancel",
        "amend after cancel",
        "expire after fill",
    ],
)
def test_an_illegal_event_raises_and_changes_nothing(bad: list[Event]) -> None:
    fold = Fold()
    fold.feed([accepted(1, 10), accepted(2, 10, SELL)])
    fold.feed(bad[:-1])
    before = (dict(fold.statuses), dict(fold.open_qty))
    with pytest.raises(LifecycleError):
        fold.feed(bad[-1:])
    assert (fold.statuses, fold.open_qty) == before


def test_every_event_of_a_real_session_is_a_legal_lifecycle() -> None:
    ex = Exchange([Series(id="A", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020)])
    fold = Fold()

    def new(account: int, side: Side, price: int, qty: int, **kw: object) -> None:
        coid = f"n{len(fold.statuses) + 100}-{kw.get('ts', 0)}"
        cmd = NewOrder(
            account=account,
            client_order_id=coid,
            series="A",
            side=side,
            price=price,
            qty=qty,
            **kw,  # type: ignore[arg-type]
        )
        fold.feed(ex.submit(cmd))
        ex.check_invariants()

    new(1, SELL, 100, 10)  # 1
    new(1, SELL, 101, 10, tif=TimeInForce.GTD, expire_ts=50, ts=1)  # 2
    new(2, BUY, 100, 4, ts=2)  # 3: fills, 1 partially filled
    fold.feed(ex.submit(Amend(account=1, order_id=1, qty=8, ts=3)))
    new(2, BUY, 101, 20, tif=TimeInForce.IOC, ts=4)  # 4: fills 1 and 2, rest cancelled
    new(3, BUY, 99, 5, tif=TimeInForce.GTD, expire_ts=60, ts=5)  # 5
    new(3, BUY, 98, 5, ts=6)  # 6
    fold.feed(ex.submit(Cancel(account=3, order_id=6, ts=7)))
    fold.feed(ex.submit(Cancel(account=3, order_id=6, ts=8)))  # rejected: no change
    new(1, SELL, 95, 5, tif=TimeInForce.FOK, ts=9)  # 7: fills 5 at 99
    new(1, SELL, 95, 5, tif=TimeInForce.FOK, ts=70)  # 8: killed
    assert fold.statuses == {
        1: FILLED,
        2: FILLED,
        3: FILLED,
        4: CANCELLED,
        5: FILLED,
        6: CANCELLED,
        7: FILLED,
        8: CANCELLED,
    }
    assert {oid for oid, s in fold.statuses.items() if is_open(s)} == set(ex.open_orders)
