"""The engine's order rules, one example each: matching, time in force, self-trade
prevention, post-only, market orders, expiry, amend, cancel, halt, band and L2 deltas."""

from __future__ import annotations

from typing import TypeVar

import pytest
from engine_series import SERIES

from engine import (
    Accepted,
    AdvanceTime,
    Amend,
    Amended,
    BookDelta,
    Cancel,
    Cancelled,
    CancelReason,
    Command,
    Event,
    Exchange,
    Expired,
    Halt,
    MassCancel,
    NewOrder,
    OrderType,
    Reason,
    Rejected,
    Resume,
    SelfTrade,
    SetReferencePrice,
    Side,
    TimeInForce,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
E = TypeVar("E")
GTC, IOC, FOK, GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD
MARKET = OrderType.MARKET


@pytest.fixture
def ex() -> Exchange:
    return Exchange(SERIES)


_coids = iter(range(1, 1 << 30))


def order(
    ex: Exchange,
    account: int,
    side: Side,
    price: int,
    qty: int,
    series: str = "A",
    ts: int = 0,
    **kw: object,
) -> list[Event]:
    """Submit a new order with a fresh client order id; check the invariants afterwards."""
    kw.setdefault("client_order_id", f"o{next(_coids)}")
    cmd = NewOrder(account=account, series=series, side=side, price=price, qty=qty, ts=ts, **kw)  # type: ignore[arg-type]
    events = ex.submit(cmd)
    ex.check_invariants()
    return events


def submit(ex: Exchange, cmd: Command) -> list[Event]:
    events = ex.submit(cmd)
    ex.check_invariants()
    return events


def only(events: list[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def order_id(events: list[Event]) -> int:
    (accepted,) = only(events, Accepted)
    assert isinstance(accepted, Accepted)
    return accepted.order_id


def fills(events: list[Event]) -> list[tuple[int, int, int]]:
    """(maker order id, price, qty) of each trade, in order."""
    return [(t.maker_order_id, t.price, t.qty) for t in only(events, Trade)]


def queue(ex: Exchange, side: Side, price: int, series: str = "A") -> list[int]:
    return [o.order_id for o in ex.books[series].queue(side, price)]


def cancels(events: list[Event]) -> list[tuple[int, int, CancelReason]]:
    return [(c.order_id, c.qty, c.reason) for c in only(events, Cancelled)]


# -- price-time priority -------------------------------------------------------------------


def test_a_crossing_order_trades_at_the_resting_orders_price(ex: Exchange) -> None:
    maker = order_id(order(ex, 1, SELL, 100, 10))
    events = order(ex, 2, BUY, 105, 10)
    (trade,) = only(events, Trade)
    assert isinstance(trade, Trade)
    assert (trade.price, trade.qty, trade.maker_order_id) == (100, 10, maker)
    assert (trade.buyer, trade.seller, trade.aggressor) == (2, 1, BUY)
    assert ex.books["A"].depth() == ([], [])


def test_better_price_trades_first_then_earlier_time(ex: Exchange) -> None:
    late_100 = order_id(order(ex, 1, SELL, 100, 5))
    at_99 = order_id(order(ex, 1, SELL, 99, 5))
    later_100 = order_id(order(ex, 3, SELL, 100, 5))
    events = order(ex, 2, BUY, 100, 12)
    assert fills(events) == [(at_99, 99, 5), (late_100, 100, 5), (later_100, 100, 2)]


def test_partial_fill_keeps_time_priority_of_the_rest(ex: Exchange) -> None:
    first = order_id(order(ex, 1, SELL, 100, 10))
    second = order_id(order(ex, 3, SELL, 100, 10))
    order(ex, 2, BUY, 100, 4)
    assert queue(ex, SELL, 100) == [first, second]
    assert ex.order(first).qty == 6  # type: ignore[union-attr]
    assert fills(order(ex, 2, BUY, 100, 8)) == [(first, 100, 6), (second, 100, 2)]


def test_the_unfilled_rest_of_a_limit_order_rests_at_its_price(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    taker = order_id(order(ex, 2, BUY, 101, 8))
    assert ex.books["A"].depth() == ([(101, 3)], [])
    assert queue(ex, BUY, 101) == [taker]


# -- time in force -------------------------------------------------------------------------


def test_ioc_remainder_is_cancelled(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 100, 8, tif=IOC)
    taker = order_id(events)
    assert [t[2] for t in fills(events)] == [5]
    assert cancels(events) == [(taker, 3, CancelReason.IMMEDIATE_OR_CANCEL)]
    assert ex.books["A"].depth() == ([], [])


def test_ioc_that_does_not_cross_is_cancelled_whole(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 99, 8, tif=IOC)
    assert cancels(events) == [(order_id(events), 8, CancelReason.IMMEDIATE_OR_CANCEL)]
    assert ex.books["A"].depth() == ([], [(100, 5)])


def test_fok_that_can_fill_completely_trades_everything(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    order(ex, 3, SELL, 101, 5)
    events = order(ex, 2, BUY, 101, 10, tif=FOK)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 5), (101, 5)]
    assert not only(events, Cancelled)


def test_fok_that_cannot_fill_completely_is_accepted_then_killed_and_trades_nothing(
    ex: Exchange,
) -> None:
    order(ex, 1, SELL, 100, 5)
    order(ex, 3, SELL, 102, 5)
    before = ex.books["A"].depth()
    events = order(ex, 2, BUY, 101, 10, tif=FOK)
    assert isinstance(events[0], Accepted)
    assert cancels(events) == [(order_id(events), 10, CancelReason.FILL_OR_KILL)]
    assert not only(events, Trade) and not only(events, BookDelta)
    assert ex.books["A"].depth() == before


def test_market_fok_is_killed_when_the_book_is_short(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 0, 6, type=MARKET, tif=FOK)
    assert cancels(events) == [(order_id(events), 6, CancelReason.FILL_OR_KILL)]
    assert ex.books["A"].depth() == ([], [(100, 5)])


def test_market_fok_fills_when_the_book_is_deep_enough(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    order(ex, 1, SELL, 150, 5)
    events = order(ex, 2, BUY, 0, 10, type=MARKET, tif=FOK)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 5), (150, 5)]


def test_fok_counts_no_liquidity_behind_its_own_resting_order(ex: Exchange) -> None:
    # With cancel-incoming, matching would stop at the account's own order: not fillable.
    order(ex, 2, SELL, 100, 5)
    own = order_id(order(ex, 2, SELL, 100, 5))
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 100, 10, tif=FOK, stp=SelfTrade.CANCEL_INCOMING)
    assert cancels(events) == [(order_id(events), 10, CancelReason.FILL_OR_KILL)]
    assert own in ex.open_orders  # a killed FOK cancels nobody


def test_fok_with_cancel_resting_skips_own_orders_and_cancels_them_when_it_fills(
    ex: Exchange,
) -> None:
    own = order_id(order(ex, 2, SELL, 100, 5))
    other = order_id(order(ex, 1, SELL, 100, 5))
    events = order(ex, 2, BUY, 100, 5, tif=FOK, stp=SelfTrade.CANCEL_RESTING)
    assert cancels(events) == [(own, 5, CancelReason.SELF_TRADE)]
    assert fills(events) == [(other, 100, 5)]


def test_fok_with_cancel_both_is_killed_at_its_own_order(ex: Exchange) -> None:
    own = order_id(order(ex, 2, SELL, 100, 5))
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 100, 5, tif=FOK, stp=SelfTrade.CANCEL_BOTH)
    assert cancels(events) == [(order_id(events), 5, CancelReason.FILL_OR_KILL)]
    assert own in ex.open_orders


def test_a_gtc_order_stays_until_cancelled(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, ts=1))
    order(ex, 2, SELL, 200, 5, ts=10**18)
    assert oid in ex.open_orders


# -- self-trade prevention -------------------------------------------------------------------


def test_self_trade_cancel_resting_removes_own_order_and_trades_on(ex: Exchange) -> None:
    own = order_id(order(ex, 1, SELL, 100, 5))
    other = order_id(order(ex, 2, SELL, 100, 5))
    events = order(ex, 1, BUY, 100, 8, stp=SelfTrade.CANCEL_RESTING)
    taker = order_id(events)
    assert cancels(events) == [(own, 5, CancelReason.SELF_TRADE)]
    assert fills(events) == [(other, 100, 5)]
    assert ex.books["A"].depth() == ([(100, 3)], [])
    assert queue(ex, BUY, 100) == [taker]


def test_self_trade_cancel_incoming_cancels_the_rest_of_the_incoming_order(ex: Exchange) -> None:
    other = order_id(order(ex, 2, SELL, 99, 3))
    own = order_id(order(ex, 1, SELL, 100, 5))
    events = order(ex, 1, BUY, 100, 8, stp=SelfTrade.CANCEL_INCOMING)
    assert fills(events) == [(other, 99, 3)]
    assert cancels(events) == [(order_id(events), 5, CancelReason.SELF_TRADE)]
    assert queue(ex, SELL, 100) == [own]
    assert ex.books["A"].depth() == ([], [(100, 5)])


def test_self_trade_cancel_both_cancels_the_resting_and_the_incoming_order(ex: Exchange) -> None:
    own = order_id(order(ex, 1, SELL, 100, 5))
    order(ex, 2, SELL, 100, 5)
    events = order(ex, 1, BUY, 100, 8, stp=SelfTrade.CANCEL_BOTH)
    taker = order_id(events)
    assert cancels(events) == [
        (own, 5, CancelReason.SELF_TRADE),
        (taker, 8, CancelReason.SELF_TRADE),
    ]
    assert not only(events, Trade)
    assert ex.books["A"].depth() == ([], [(100, 5)])


def test_orders_of_different_accounts_trade_whatever_their_stp_mode(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5, stp=SelfTrade.CANCEL_BOTH)
    events = order(ex, 2, BUY, 100, 5, stp=SelfTrade.CANCEL_BOTH)
    assert len(fills(events)) == 1 and not only(events, Cancelled)


# -- post-only -------------------------------------------------------------------------------


def test_post_only_order_rests_when_it_does_not_cross(ex: Exchange) -> None:
    order(ex, 1, SELL, 101, 5)
    events = order(ex, 2, BUY, 100, 5, post_only=True)
    oid = order_id(events)
    assert queue(ex, BUY, 100) == [oid]
    assert not only(events, Trade)


def test_post_only_order_that_would_trade_is_rejected(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    events = order(ex, 2, BUY, 100, 5, post_only=True)
    assert [e.reason for e in only(events, Rejected)] == [Reason.POST_ONLY_WOULD_TRADE]
    assert ex.books["A"].depth() == ([], [(100, 5)])


# -- market orders -----------------------------------------------------------------------------


def test_market_order_sweeps_levels_and_cancels_the_rest_for_lack_of_liquidity(
    ex: Exchange,
) -> None:
    order(ex, 1, BUY, 100, 5)
    order(ex, 1, BUY, 90, 5)
    events = order(ex, 2, SELL, 0, 12, type=MARKET, tif=IOC)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 5), (90, 5)]
    assert cancels(events) == [(order_id(events), 2, CancelReason.MARKET_NO_LIQUIDITY)]
    assert ex.books["A"].depth() == ([], [])


def test_market_order_on_an_empty_book_is_cancelled_whole(ex: Exchange) -> None:
    events = order(ex, 2, BUY, 0, 10, type=MARKET, tif=IOC)
    assert cancels(events) == [(order_id(events), 10, CancelReason.MARKET_NO_LIQUIDITY)]


def test_market_buy_never_trades_outside_the_band(ex: Exchange) -> None:
    order(ex, 1, SELL, 110, 10, series="B")
    # The band moves down to 81..99 (width 9): the ask at 110 is now outside it.
    submit(ex, SetReferencePrice(series="B", price=90))
    events = order(ex, 2, BUY, 0, 10, series="B", type=MARKET, tif=IOC)
    assert not only(events, Trade)
    assert cancels(events) == [(order_id(events), 10, CancelReason.MARKET_NO_LIQUIDITY)]
    assert ex.books["B"].depth() == ([], [(110, 10)])


def test_market_sell_trades_down_to_the_band_edge_and_no_further(ex: Exchange) -> None:
    order(ex, 1, BUY, 95, 10, series="B")
    order(ex, 1, BUY, 90, 10, series="B")
    submit(ex, SetReferencePrice(series="B", price=105))  # band 95..115 (width 10)
    events = order(ex, 2, SELL, 0, 20, series="B", type=MARKET, tif=IOC)
    assert [(p, q) for _, p, q in fills(events)] == [(95, 10)]
    assert ex.books["B"].depth() == ([(90, 10)], [])


def test_market_buy_stops_at_max_notional_in_whole_lots(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 30, series="B")
    # 2_500 buys 20 t at 100 (2 lots of 10); the third lot would cost 3_000.
    events = order(ex, 2, BUY, 0, 50, series="B", type=MARKET, tif=IOC, max_notional=2_500)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 20)]
    assert cancels(events) == [(order_id(events), 30, CancelReason.NOTIONAL_LIMIT)]
    assert ex.books["B"].depth() == ([], [(100, 10)])


def test_max_notional_counts_every_level_it_sweeps(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    order(ex, 1, SELL, 200, 5)
    events = order(ex, 2, BUY, 0, 10, type=MARKET, tif=IOC, max_notional=900)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 5), (200, 2)]
    assert cancels(events)[0][1:] == (3, CancelReason.NOTIONAL_LIMIT)


def test_market_fok_within_max_notional_is_killed_when_the_cap_would_bite(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 10)
    events = order(ex, 2, BUY, 0, 10, type=MARKET, tif=FOK, max_notional=999)
    assert cancels(events) == [(order_id(events), 10, CancelReason.FILL_OR_KILL)]
    events = order(ex, 2, BUY, 0, 10, type=MARKET, tif=FOK, max_notional=1_000)
    assert [(p, q) for _, p, q in fills(events)] == [(100, 10)]


# -- good till date ------------------------------------------------------------------------------


def test_gtd_order_rests_until_its_expiry(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=50, ts=10))
    order(ex, 2, SELL, 120, 5, ts=49)
    assert oid in ex.open_orders


def test_gtd_order_expires_on_the_first_command_at_or_after_its_expiry(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=50, ts=10))
    events = order(ex, 2, SELL, 100, 5, ts=50)
    (expired,) = only(events, Expired)
    assert isinstance(expired, Expired)
    assert (expired.order_id, expired.qty, expired.ts) == (oid, 5, 50)
    assert events.index(expired) < events.index(only(events, Accepted)[0])
    assert not only(events, Trade)  # it expired before the sell arrived
    assert ex.books["A"].depth() == ([], [(100, 5)])


@pytest.mark.parametrize(
    "cmd",
    [
        Cancel(account=3, order_id=999, ts=60),
        Halt(series="nowhere", ts=60),
        NewOrder(account=3, client_order_id="x", series="A", side=BUY, price=0, qty=1, ts=60),
        MassCancel(account=3, ts=60),
        SetReferencePrice(series="B", price=100, ts=60),
    ],
    ids=["rejected cancel", "rejected halt", "rejected order", "mass cancel", "operator"],
)
def test_gtd_order_expires_on_any_later_command_even_a_rejected_one(
    ex: Exchange, cmd: Command
) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=50, ts=10))
    events = submit(ex, cmd)
    assert [(e.order_id, e.qty) for e in only(events, Expired)] == [(oid, 5)]
    assert oid not in ex.open_orders
    assert ex.books["A"].depth() == ([], [])


def test_gtd_orders_expire_in_order_of_expiry(ex: Exchange) -> None:
    later = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=40, ts=10))
    sooner = order_id(order(ex, 1, BUY, 99, 5, tif=GTD, expire_ts=30, ts=10))
    events = submit(ex, MassCancel(account=9, ts=45))
    assert [e.order_id for e in only(events, Expired)] == [sooner, later]


def test_an_amended_gtd_order_keeps_its_expiry(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=50, ts=10))
    submit(ex, Amend(account=1, order_id=oid, price=101, ts=20))
    submit(ex, Amend(account=1, order_id=oid, qty=9, ts=30))
    events = submit(ex, MassCancel(account=9, ts=50))
    assert [(e.order_id, e.qty) for e in only(events, Expired)] == [(oid, 9)]
    assert ex.books["A"].depth() == ([], [])


def test_advance_time_expires_the_due_gtd_orders_and_does_nothing_else(ex: Exchange) -> None:
    due = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=50, ts=10))
    later = order_id(order(ex, 1, BUY, 99, 5, tif=GTD, expire_ts=60, ts=10))
    order(ex, 2, SELL, 120, 5, ts=11)
    assert submit(ex, AdvanceTime(ts=49)) == []
    events = submit(ex, AdvanceTime(ts=50))
    assert [(e.order_id, e.qty, e.ts) for e in only(events, Expired)] == [(due, 5, 50)]
    assert [(d.side, d.price, d.qty) for d in only(events, BookDelta)] == [(BUY, 100, 0)]
    assert len(events) == 2  # no Rejected, no Accepted: time is all it carries
    assert set(ex.open_orders) == {later, due + 2}
    assert ex.books["A"].depth() == ([(99, 5)], [(120, 5)])


def test_next_expiry_is_the_earliest_expiry_of_an_open_gtd_order(ex: Exchange) -> None:
    assert ex.next_expiry_ts() is None
    order(ex, 2, SELL, 120, 5, ts=1)  # a GTC order never expires
    assert ex.next_expiry_ts() is None
    late = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=70, ts=10))
    soon = order_id(order(ex, 1, BUY, 99, 5, tif=GTD, expire_ts=30, ts=10))
    assert ex.next_expiry_ts() == 30
    submit(ex, Amend(account=1, order_id=soon, price=98, ts=11))  # loses priority, keeps expiry
    assert ex.next_expiry_ts() == 30
    submit(ex, Cancel(account=1, order_id=soon, ts=12))
    assert ex.next_expiry_ts() == 70  # the cancelled order's entry is skipped
    order(ex, 3, SELL, 100, 5, ts=13)  # fills the GTD buy whole
    assert late not in ex.open_orders and ex.next_expiry_ts() is None


# -- amend ---------------------------------------------------------------------------------------


def test_amend_quantity_down_keeps_time_priority(ex: Exchange) -> None:
    first = order_id(order(ex, 1, SELL, 100, 10))
    second = order_id(order(ex, 2, SELL, 100, 10))
    events = submit(ex, Amend(account=1, order_id=first, qty=4))
    (amended,) = only(events, Amended)
    assert isinstance(amended, Amended)
    assert (amended.old_qty, amended.qty, amended.priority_kept) == (10, 4, True)
    assert queue(ex, SELL, 100) == [first, second]
    assert ex.books["A"].depth() == ([], [(100, 14)])


def test_amend_quantity_up_loses_time_priority(ex: Exchange) -> None:
    first = order_id(order(ex, 1, SELL, 100, 10))
    second = order_id(order(ex, 2, SELL, 100, 10))
    events = submit(ex, Amend(account=1, order_id=first, qty=12))
    assert only(events, Amended)[0].priority_kept is False
    assert queue(ex, SELL, 100) == [second, first]
    assert ex.books["A"].depth() == ([], [(100, 22)])


def test_amend_price_loses_time_priority(ex: Exchange) -> None:
    first = order_id(order(ex, 1, SELL, 100, 10))
    second = order_id(order(ex, 2, SELL, 101, 10))
    submit(ex, Amend(account=1, order_id=first, price=101))
    assert queue(ex, SELL, 101) == [second, first]
    assert ex.books["A"].depth() == ([], [(101, 20)])


def test_amend_price_back_and_forth_still_loses_priority(ex: Exchange) -> None:
    first = order_id(order(ex, 1, SELL, 100, 10))
    second = order_id(order(ex, 2, SELL, 100, 10))
    submit(ex, Amend(account=1, order_id=first, price=101))
    submit(ex, Amend(account=1, order_id=first, price=100))
    assert queue(ex, SELL, 100) == [second, first]


def test_amend_that_crosses_trades_at_once(ex: Exchange) -> None:
    ask = order_id(order(ex, 2, SELL, 101, 4))
    bid = order_id(order(ex, 1, BUY, 100, 10))
    events = submit(ex, Amend(account=1, order_id=bid, price=101))
    assert isinstance(events[0], Amended)
    (trade,) = only(events, Trade)
    assert isinstance(trade, Trade)
    assert (trade.maker_order_id, trade.taker_order_id, trade.price, trade.qty) == (
        ask,
        bid,
        101,
        4,
    )
    assert ex.books["A"].depth() == ([(101, 6)], [])
    assert ex.order(bid).qty == 6  # type: ignore[union-attr]


def test_amend_that_crosses_its_own_order_follows_its_stp_mode(ex: Exchange) -> None:
    own = order_id(order(ex, 1, SELL, 101, 4))
    bid = order_id(order(ex, 1, BUY, 100, 10, stp=SelfTrade.CANCEL_INCOMING))
    events = submit(ex, Amend(account=1, order_id=bid, price=101))
    assert cancels(events) == [(bid, 10, CancelReason.SELF_TRADE)]
    assert queue(ex, SELL, 101) == [own]


def test_amend_quantity_is_the_new_open_quantity_after_a_partial_fill(ex: Exchange) -> None:
    ask = order_id(order(ex, 1, SELL, 100, 10))
    order(ex, 2, BUY, 100, 6)
    events = submit(ex, Amend(account=1, order_id=ask, qty=3))
    assert (only(events, Amended)[0].old_qty, ex.order(ask).qty) == (4, 3)  # type: ignore[union-attr]


def test_amend_of_a_post_only_order_to_a_price_that_does_not_cross_is_allowed(
    ex: Exchange,
) -> None:
    order(ex, 2, SELL, 103, 5)
    bid = order_id(order(ex, 1, BUY, 100, 5, post_only=True))
    submit(ex, Amend(account=1, order_id=bid, price=102))
    assert queue(ex, BUY, 102) == [bid]


# -- cancel --------------------------------------------------------------------------------------


def test_cancel_by_order_id_removes_the_order(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5))
    events = submit(ex, Cancel(account=1, order_id=oid))
    assert cancels(events) == [(oid, 5, CancelReason.USER)]
    assert ex.books["A"].depth() == ([], []) and not ex.open_orders


def test_cancel_by_client_order_id_removes_the_order(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, client_order_id="mine"))
    events = submit(ex, Cancel(account=1, client_order_id="mine"))
    assert cancels(events) == [(oid, 5, CancelReason.USER)]
    assert ex.books["A"].depth() == ([], [])


def test_cancel_cancels_only_the_open_rest_of_a_partly_filled_order(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 10))
    order(ex, 2, SELL, 100, 4)
    assert cancels(submit(ex, Cancel(account=1, order_id=oid))) == [(oid, 6, CancelReason.USER)]


def test_another_account_may_use_the_same_client_order_id(ex: Exchange) -> None:
    order(ex, 1, BUY, 100, 5, client_order_id="same")
    events = order(ex, 2, BUY, 100, 5, client_order_id="same")
    assert only(events, Accepted) and not only(events, Rejected)


def test_mass_cancel_cancels_every_open_order_of_the_account_oldest_first(ex: Exchange) -> None:
    a1 = order_id(order(ex, 1, BUY, 100, 5))
    b1 = order_id(order(ex, 1, SELL, 110, 10, series="B"))
    a2 = order_id(order(ex, 1, SELL, 105, 5))
    others = order_id(order(ex, 2, BUY, 99, 5))
    events = submit(ex, MassCancel(account=1))
    assert cancels(events) == [
        (a1, 5, CancelReason.MASS_CANCEL),
        (b1, 10, CancelReason.MASS_CANCEL),
        (a2, 5, CancelReason.MASS_CANCEL),
    ]
    assert set(ex.open_orders) == {others}


def test_mass_cancel_per_series_leaves_other_series_alone(ex: Exchange) -> None:
    a1 = order_id(order(ex, 1, BUY, 100, 5))
    b1 = order_id(order(ex, 1, SELL, 110, 10, series="B"))
    events = submit(ex, MassCancel(account=1, series="B"))
    assert cancels(events) == [(b1, 10, CancelReason.MASS_CANCEL)]
    assert set(ex.open_orders) == {a1}


def test_mass_cancel_with_nothing_open_is_no_event(ex: Exchange) -> None:
    assert submit(ex, MassCancel(account=1)) == []


# -- halt, resume, reference price --------------------------------------------------------------


def test_halted_series_accepts_cancels_and_resume_reopens_it(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5))
    keep = order_id(order(ex, 1, BUY, 99, 5))
    submit(ex, Halt(series="A"))
    assert ex.books["A"].halted
    rejected = order(ex, 2, SELL, 100, 5)
    assert [e.reason for e in only(rejected, Rejected)] == [Reason.SERIES_HALTED]
    assert cancels(submit(ex, Cancel(account=1, order_id=oid))) == [(oid, 5, CancelReason.USER)]
    assert only(order(ex, 2, SELL, 100, 10, series="B"), Accepted)  # others trade on
    submit(ex, Resume(series="A"))
    assert fills(order(ex, 2, SELL, 99, 5)) == [(keep, 99, 5)]


def test_mass_cancel_works_on_a_halted_series(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5))
    submit(ex, Halt(series="A"))
    assert cancels(submit(ex, MassCancel(account=1))) == [(oid, 5, CancelReason.MASS_CANCEL)]


def test_gtd_orders_expire_on_a_halted_series(ex: Exchange) -> None:
    oid = order_id(order(ex, 1, BUY, 100, 5, tif=GTD, expire_ts=20, ts=10))
    submit(ex, Halt(series="A", ts=15))
    assert [e.order_id for e in only(submit(ex, Halt(series="A", ts=20)), Expired)] == [oid]


def test_set_reference_price_moves_the_band(ex: Exchange) -> None:
    assert only(order(ex, 1, BUY, 110, 10, series="B"), Accepted)
    submit(ex, SetReferencePrice(series="B", price=200))  # band 180..220
    low = order(ex, 1, BUY, 110, 10, series="B")
    assert [e.reason for e in only(low, Rejected)] == [Reason.PRICE_OUT_OF_BAND]
    assert only(order(ex, 1, BUY, 220, 10, series="B"), Accepted)
    assert ex.books["B"].ref_price == 200


def test_resting_orders_outside_a_moved_band_stay_and_still_trade_with_limit_orders(
    ex: Exchange,
) -> None:
    bid = order_id(order(ex, 1, BUY, 110, 10, series="B"))
    submit(ex, SetReferencePrice(series="B", price=120))  # band 108..132
    assert fills(order(ex, 2, SELL, 110, 10, series="B")) == [(bid, 110, 10)]


def test_a_series_without_a_band_accepts_any_positive_price(ex: Exchange) -> None:
    assert only(order(ex, 1, BUY, 1, 1), Accepted)
    assert only(order(ex, 1, SELL, 10**9, 1), Accepted)


# -- L2 book deltas ------------------------------------------------------------------------------


def test_book_deltas_add_up_to_the_depth(ex: Exchange) -> None:
    levels: dict[tuple[str, Side, int], int] = {}

    def sell(price: int, qty: int, account: int = 1, series: str = "A") -> NewOrder:
        return NewOrder(
            account=account,
            client_order_id=f"d{next(_coids)}",
            series=series,
            side=SELL,
            price=price,
            qty=qty,
        )

    script: list[Command] = [
        sell(101, 5),
        sell(101, 3),
        sell(102, 4),
        NewOrder(account=2, client_order_id="bid", series="A", side=BUY, price=99, qty=7),
        NewOrder(account=2, client_order_id="sweep", series="A", side=BUY, price=102, qty=10),
        sell(99, 2, account=3),  # order 4 is now 5 t
        Amend(account=2, order_id=4, qty=2),
        Amend(account=2, order_id=4, price=100),
        Cancel(account=2, order_id=4),
        sell(100, 10, series="B"),
    ]
    for cmd in script:
        for e in submit(ex, cmd):
            if isinstance(e, BookDelta):
                levels[(e.series, e.side, e.price)] = e.qty
        for sid, book in ex.books.items():
            bids, asks = book.depth()
            expected = {(sid, BUY, p): q for p, q in bids} | {(sid, SELL, p): q for p, q in asks}
            assert {k: q for k, q in levels.items() if k[0] == sid and q} == expected


def test_book_delta_seq_increments_per_series_without_gaps(ex: Exchange) -> None:
    seen: dict[str, list[int]] = {"A": [], "B": []}
    events = (
        order(ex, 1, SELL, 100, 5)
        + order(ex, 1, SELL, 100, 10, series="B")
        + order(ex, 1, SELL, 101, 5)
        + order(ex, 2, BUY, 101, 8)
        + order(ex, 2, BUY, 95, 10, series="B")
        + submit(ex, MassCancel(account=1))
    )
    for e in events:
        if isinstance(e, BookDelta):
            seen[e.series].append(e.seq)
    assert seen["A"] == list(range(1, len(seen["A"]) + 1)) and len(seen["A"]) >= 5
    assert seen["B"] == list(range(1, len(seen["B"]) + 1)) and len(seen["B"]) >= 3
    assert ex.books["A"].seq == len(seen["A"])


def test_a_trade_reports_one_delta_per_level_it_touches(ex: Exchange) -> None:
    order(ex, 1, SELL, 100, 5)
    order(ex, 1, SELL, 100, 5)
    order(ex, 1, SELL, 101, 5)
    events = order(ex, 2, BUY, 101, 12)
    deltas = [(e.side, e.price, e.qty) for e in only(events, BookDelta)]
    assert deltas == [(SELL, 100, 0), (SELL, 101, 3)]


def test_a_fok_order_whose_notional_cap_stops_it_at_one_level_does_not_trade():
    """Found by the engine's state machine: `fillable` went on to the next level after the
    cap stopped it at this one, while `match` stops there, so a FOK order half-filled."""
    from engine import Exchange, NewOrder, Series, Side, TimeInForce
    from engine.events import Cancelled, CancelReason, Trade
    from engine.reference import Mitigation

    ex = Exchange([Series(id="A", standard="X", mitigation=Mitigation.REMOVAL, vintage=2020)])
    for account, qty, price in ((3, 8, 1000), (2, 1, 98)):
        ex.submit(
            NewOrder(
                account=account,
                client_order_id=f"b{account}",
                series="A",
                side=Side.BUY,
                qty=qty,
                price=price,
            )
        )
    events = ex.submit(
        NewOrder(
            account=1,
            client_order_id="s",
            series="A",
            side=Side.SELL,
            qty=3,
            price=98,
            tif=TimeInForce.FOK,
            max_notional=2500,
        )
    )
    assert not any(isinstance(e, Trade) for e in events), events
    assert [e.reason for e in events if isinstance(e, Cancelled)] == [CancelReason.FILL_OR_KILL]
