"""The order lifecycle table; `apply_event`, which folds engine events into statuses; and the
engine, which the table drives: every order carries its status, and a step the table does not
allow raises before anything changes."""

from __future__ import annotations

import pytest

import engine.exchange as exchange_module
from engine import (
    Accepted,
    AdvanceTime,
    Amend,
    Amended,
    BookDelta,
    Cancel,
    Cancelled,
    CancelReason,
    Event,
    Exchange,
    Expired,
    Mitigation,
    NewOrder,
    SelfTrade,
    Series,
    Side,
    TimeInForce,
    Trade,
)
from engine.book import Order
from engine.lifecycle import (
    IS_OPEN,
    MAY,
    MAY_START,
    MAY_TRADE,
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


# -- the table drives the engine -------------------------------------------------------------


def test_the_engine_reads_the_same_table_by_index() -> None:
    for old in OrderStatus:
        for new in OrderStatus:
            assert MAY[old][new] is (new in TRANSITIONS[old])
        assert IS_OPEN[old] is (old in OPEN)
        assert MAY_TRADE[old] is (MAY[old][PARTIALLY_FILLED] and MAY[old][FILLED])
    assert MAY_START is (NEW in TRANSITIONS[None])


def _ex() -> Exchange:
    return Exchange([Series(id="A", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020)])


def _new(ex: Exchange, account: int, side: Side, price: int, qty: int, **kw: object) -> int:
    kw.setdefault("client_order_id", f"c{ex.next_order_id}")
    cmd = NewOrder(account=account, series="A", side=side, price=price, qty=qty, **kw)  # type: ignore[arg-type]
    events = ex.submit(cmd)
    ex.check_invariants()
    return next(e.order_id for e in events if isinstance(e, Accepted))


def _state(ex: Exchange) -> tuple[object, ...]:
    """Everything a command could change, as plain values."""
    return (
        {b.id: (b.depth(), b.seq, b.bid_top, b.ask_top) for b in ex.books.values()},
        {i: (o.price, o.qty, o.status) for i, o in ex.open_orders.items()},
        {a: sorted(c) for a, c in ex.open_by_coid.items()},
        {a: list(r) for a, r in ex.coids_recent.items()},
        (ex.next_order_id, ex.next_trade_id, ex.next_expiry_ts()),
    )


def test_an_open_order_carries_its_status_through_fills_and_amends() -> None:
    ex = _ex()
    sell = _new(ex, 1, SELL, 100, 10)
    maker = ex.order(sell)
    assert maker is not None and maker.status == NEW
    buy = _new(ex, 2, BUY, 100, 4)
    assert maker.status == PARTIALLY_FILLED and ex.order(buy) is None
    ex.submit(Amend(account=1, order_id=sell, qty=5, ts=1))  # keeps priority: the same order
    assert ex.order(sell) is maker and maker.status == PARTIALLY_FILLED
    ex.submit(Amend(account=1, order_id=sell, price=101, ts=2))  # loses it: a fresh object
    moved = ex.order(sell)
    assert moved is not None and moved is not maker and moved.status == PARTIALLY_FILLED
    _new(ex, 2, BUY, 101, 5, ts=3)
    assert moved.status == FILLED and ex.order(sell) is None
    rest = ex.order(_new(ex, 1, SELL, 100, 5, ts=4))
    gtd = ex.order(_new(ex, 1, SELL, 105, 5, ts=4, tif=TimeInForce.GTD, expire_ts=9))
    assert rest is not None and gtd is not None
    ex.submit(Cancel(account=1, order_id=rest.order_id, ts=5))
    ex.submit(AdvanceTime(ts=9))
    assert (rest.status, gtd.status) == (CANCELLED, EXPIRED)


@pytest.mark.parametrize("status", TERMINAL)
def test_cancelling_an_order_the_table_says_is_closed_raises_and_changes_nothing(
    status: OrderStatus,
) -> None:
    ex = _ex()
    order = ex.order(_new(ex, 1, SELL, 100, 10))
    assert order is not None
    order.status = int(status)  # a bug elsewhere, as the table sees it
    before = _state(ex)
    with pytest.raises(LifecycleError, match=f"order 1 cannot go from {status} to cancelled"):
        ex.submit(Cancel(account=1, order_id=1, ts=1))
    assert _state(ex) == before


def test_expiring_or_amending_a_closed_order_raises_and_changes_nothing() -> None:
    ex = _ex()
    order = ex.order(_new(ex, 1, SELL, 100, 10, tif=TimeInForce.GTD, expire_ts=5))
    assert order is not None
    order.status = int(FILLED)
    before = _state(ex)
    with pytest.raises(LifecycleError, match="from filled to filled"):
        ex.submit(Amend(account=1, order_id=1, qty=5, ts=1))
    assert _state(ex) == before
    with pytest.raises(LifecycleError, match="from filled to expired"):
        ex.submit(AdvanceTime(ts=5))
    assert _state(ex) == before and ex.next_expiry_ts() == 5  # still due, not popped


@pytest.mark.parametrize("own", [False, True], ids=["fill", "self-trade cancel"])
def test_trading_against_a_closed_resting_order_raises_before_it_changes(own: bool) -> None:
    """The maker is checked before its fill, or before self-trade prevention cancels it."""
    ex = _ex()
    order = ex.order(_new(ex, 1, SELL, 100, 10))
    assert order is not None
    order.status = int(CANCELLED)
    book = ex.books["A"]
    stp = SelfTrade.CANCEL_RESTING
    taker = Order(9, "A", 1 if own else 2, "t", BUY, 100, 4, TimeInForce.IOC, 0, stp, False)
    before = _state(ex)
    events: list[Event] = []
    closed: list[Order] = []
    with pytest.raises(LifecycleError, match="from cancelled to"):
        book.match(taker, 100, 0, 1, ex.next_trade_id, events, closed)
    assert _state(ex) == before and order.qty == 10 and taker.qty == 4
    assert events == [] and closed == []


def test_a_taker_the_table_says_cannot_trade_raises_before_anything_trades() -> None:
    ex = _ex()
    _new(ex, 1, SELL, 100, 10)
    taker = Order(9, "A", 2, "t", BUY, 100, 4, TimeInForce.IOC, 0, SelfTrade.CANCEL_INCOMING, False)
    taker.status = int(EXPIRED)
    before = _state(ex)
    events: list[Event] = []
    with pytest.raises(LifecycleError, match="order 9 cannot go from expired to partially_filled"):
        ex.books["A"].match(taker, 100, 0, 1, ex.next_trade_id, events, [])
    assert _state(ex) == before and taker.qty == 4 and events == []


def test_the_table_decides_a_step_it_forbids_is_refused_by_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With PARTIALLY_FILLED -> CANCELLED struck from the table, the engine refuses to cancel a
    partially filled order (and nothing changes) but still cancels a new one."""
    table = [list(row) for row in exchange_module.MAY]
    table[PARTIALLY_FILLED][CANCELLED] = False
    monkeypatch.setattr(exchange_module, "MAY", tuple(tuple(row) for row in table))
    ex = _ex()
    partial = _new(ex, 1, SELL, 100, 10)
    _new(ex, 2, BUY, 100, 4)
    fresh = _new(ex, 1, SELL, 101, 10)
    before = _state(ex)
    with pytest.raises(LifecycleError, match="from partially_filled to cancelled"):
        ex.submit(Cancel(account=1, order_id=partial, ts=1))
    assert _state(ex) == before
    assert [type(e) for e in ex.submit(Cancel(account=1, order_id=fresh, ts=2))] == [
        BookDelta,
        Cancelled,
    ]


def test_a_table_that_lets_no_order_start_refuses_every_new_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exchange_module, "MAY_START", False)
    ex = _ex()
    before = _state(ex)
    with pytest.raises(LifecycleError, match="order 1 cannot go from nothing to new"):
        ex.submit(NewOrder(account=1, client_order_id="x", series="A", side=BUY, price=1, qty=1))
    assert _state(ex) == before
