"""Bad input gets a typed rejection and changes nothing: one test per reason the engine gives.

Every test submits one command to a populated exchange and asserts that the only event is a
`Rejected` with the expected reason and a readable text, that the books, open orders, id
counters, client order ids and L2 sequence numbers are exactly as before, and that the
exchange's invariants hold.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_series import SERIES

from engine import (
    Accepted,
    Amend,
    Cancel,
    Command,
    Exchange,
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
)

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK, GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD
MARKET = OrderType.MARKET
TS = 1_000


def new(**kw: Any) -> NewOrder:
    """A valid limit buy of 10 t at 100 on B for account 1, changed by `kw`."""
    fields: dict[str, Any] = dict(
        account=1, client_order_id="fresh", series="B", side=BUY, price=100, qty=10, ts=TS
    )
    fields.update(kw)
    return NewOrder(**fields)


@pytest.fixture
def ex() -> Exchange:
    """Both books populated: account 1 has open orders 1 (bid A), 2 (ask B, GTD) and 3 (bid B,
    post-only, client order id "p1"); account 2 has order 4 (ask A) and a filled order."""
    ex = Exchange(SERIES)
    script: list[Command] = [
        new(client_order_id="a1", series="A", price=99, qty=5, ts=1),
        new(client_order_id="b1", side=SELL, price=105, qty=20, tif=GTD, expire_ts=10**6, ts=1),
        new(client_order_id="p1", price=95, qty=30, post_only=True, ts=1),
        new(account=2, client_order_id="a2", series="A", side=SELL, price=101, qty=5, ts=1),
        new(account=2, client_order_id="done", series="A", side=SELL, price=100, qty=2, ts=1),
        new(account=3, client_order_id="take", series="A", price=101, qty=2, ts=1),
    ]
    for cmd in script:
        assert not any(isinstance(e, Rejected) for e in ex.submit(cmd))
    assert set(ex.open_orders) == {1, 2, 3, 4}
    ex.check_invariants()
    return ex


def state(ex: Exchange) -> object:
    """Everything a command could change, as plain values."""
    return (
        {
            sid: (b.depth(), b.seq, b.halted, b.ref_price, b.band_low, b.band_high)
            for sid, b in ex.books.items()
        },
        {
            oid: (o.account, o.client_order_id, o.series, o.side, o.price, o.qty, o.tif)
            for oid, o in ex.open_orders.items()
        },
        {
            (sid, side, price): [o.order_id for o in b.queue(side, price)]
            for sid, b in ex.books.items()
            for side, levels in ((BUY, b.depth()[0]), (SELL, b.depth()[1]))
            for price, _ in levels
        },
        ex.next_order_id,
        ex.next_trade_id,
        {account: set(coids) for account, coids in ex.coids_seen.items()},
        {account: list(coids) for account, coids in ex.coids_recent.items()},
        {account: set(by) for account, by in ex.open_by_coid.items()},
    )


def assert_rejected(ex: Exchange, cmd: Command, reason: Reason) -> Rejected:
    before = state(ex)
    events = ex.submit(cmd)
    assert len(events) == 1, events
    (rejected,) = events
    assert isinstance(rejected, Rejected)
    assert rejected.reason is reason, rejected
    assert rejected.text and rejected.ts == cmd.ts
    assert state(ex) == before
    ex.check_invariants()
    return rejected


# -- new orders ----------------------------------------------------------------------------------


def test_order_for_an_unknown_series_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    rejected = assert_rejected(ex, new(series="NOPE"), Reason.UNKNOWN_SERIES)
    assert (rejected.account, rejected.client_order_id, rejected.order_id) == (1, "fresh", 0)


def test_order_on_a_halted_series_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    ex.submit(Halt(series="B", ts=TS))
    assert_rejected(ex, new(), Reason.SERIES_HALTED)
    assert_rejected(ex, new(side=SELL, type=MARKET, tif=IOC, price=0), Reason.SERIES_HALTED)


def test_order_with_an_empty_client_order_id_is_rejected_and_changes_nothing(
    ex: Exchange,
) -> None:
    assert_rejected(ex, new(client_order_id=""), Reason.INVALID_CLIENT_ORDER_ID)


@pytest.mark.parametrize("coid", ["p1", "b1", "a1", "done", "take"])
def test_a_client_order_id_the_account_used_before_is_rejected_and_changes_nothing(
    ex: Exchange, coid: str
) -> None:
    account = 3 if coid == "take" else 2 if coid == "done" else 1
    assert_rejected(
        ex, new(account=account, client_order_id=coid), Reason.DUPLICATE_CLIENT_ORDER_ID
    )


def _windowed(window: int) -> Exchange:
    """Account 1 with an open bid "live", then `window` IOC orders that leave nothing open
    ("i1".. in order), so the window holds exactly the IOC ids."""
    ex = Exchange(SERIES, coid_window=window)
    assert isinstance(ex.submit(new(client_order_id="live", price=90))[0], Accepted)
    for i in range(1, window + 1):
        events = ex.submit(new(client_order_id=f"i{i}", price=95, tif=IOC))
        assert isinstance(events[0], Accepted)
    assert list(ex.coids_recent[1]) == [f"i{i}" for i in range(1, window + 1)]
    ex.check_invariants()
    return ex


def test_a_client_order_id_resent_within_the_window_is_a_duplicate() -> None:
    ex = _windowed(3)
    for coid in ("i1", "i2", "i3"):
        assert_rejected(ex, new(client_order_id=coid), Reason.DUPLICATE_CLIENT_ORDER_ID)


def test_a_client_order_id_beyond_the_window_may_be_used_again() -> None:
    ex = _windowed(3)
    assert isinstance(ex.submit(new(client_order_id="i4", price=95, tif=IOC))[0], Accepted)
    assert list(ex.coids_recent[1]) == ["i2", "i3", "i4"]  # i1 fell out
    events = ex.submit(new(client_order_id="i1", price=95, tif=IOC))
    assert isinstance(events[0], Accepted), events
    assert list(ex.coids_recent[1]) == ["i3", "i4", "i1"]
    assert_rejected(ex, new(client_order_id="i1"), Reason.DUPLICATE_CLIENT_ORDER_ID)
    ex.check_invariants()


def test_an_open_orders_client_order_id_is_a_duplicate_however_old() -> None:
    ex = _windowed(3)  # "live" fell out of the window three orders ago, but it is still open
    assert "live" not in ex.coids_seen[1]
    assert_rejected(ex, new(client_order_id="live"), Reason.DUPLICATE_CLIENT_ORDER_ID)
    assert_rejected(
        ex, new(client_order_id="live", price=95, tif=IOC), Reason.DUPLICATE_CLIENT_ORDER_ID
    )
    (order,) = ex.open_orders.values()
    ex.submit(Cancel(account=1, order_id=order.order_id, ts=TS))
    assert isinstance(ex.submit(new(client_order_id="live"))[0], Accepted)  # closed: free


def test_windows_are_per_account() -> None:
    ex = _windowed(3)
    assert isinstance(ex.submit(new(account=2, client_order_id="i1"))[0], Accepted)


def test_the_window_is_a_positive_named_limit_with_a_large_default() -> None:
    from engine.exchange import COID_WINDOW

    assert Exchange().coid_window == COID_WINDOW == 100_000
    with pytest.raises(ValueError, match="coid_window"):
        Exchange(coid_window=0)


def test_a_rejected_orders_client_order_id_is_not_used_up(ex: Exchange) -> None:
    assert_rejected(ex, new(client_order_id="again", qty=0), Reason.INVALID_QUANTITY)
    assert isinstance(ex.submit(new(client_order_id="again"))[0], Accepted)


@pytest.mark.parametrize("qty", [0, -10])
def test_zero_or_negative_quantity_is_rejected_and_changes_nothing(ex: Exchange, qty: int) -> None:
    assert_rejected(ex, new(qty=qty), Reason.INVALID_QUANTITY)
    assert_rejected(ex, new(qty=qty, type=MARKET, tif=IOC, price=0), Reason.INVALID_QUANTITY)


def test_quantity_not_a_multiple_of_the_lot_is_rejected_and_changes_nothing(
    ex: Exchange,
) -> None:
    assert_rejected(ex, new(qty=15), Reason.LOT_SIZE)


def test_quantity_above_the_maximum_order_size_is_rejected_and_changes_nothing(
    ex: Exchange,
) -> None:
    assert_rejected(ex, new(qty=510), Reason.MAX_ORDER_SIZE)
    assert isinstance(ex.submit(new(qty=500))[0], Accepted)  # the maximum itself is allowed


@pytest.mark.parametrize("price", [102, 0, -100])
def test_price_off_the_tick_grid_or_not_positive_is_rejected_and_changes_nothing(
    ex: Exchange, price: int
) -> None:
    assert_rejected(ex, new(price=price), Reason.INVALID_PRICE)


@pytest.mark.parametrize("price", [85, 115, 5_000])
def test_price_outside_the_band_is_rejected_and_changes_nothing(ex: Exchange, price: int) -> None:
    assert_rejected(ex, new(price=price), Reason.PRICE_OUT_OF_BAND)


@pytest.mark.parametrize("price", [90, 110])
def test_the_band_edges_are_inside_the_band(ex: Exchange, price: int) -> None:
    assert isinstance(
        ex.submit(new(side=SELL, price=price, client_order_id=str(price)))[0], Accepted
    )


def test_negative_max_notional_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    assert_rejected(
        ex, new(type=MARKET, tif=IOC, price=0, max_notional=-1), Reason.INVALID_QUANTITY
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(type=MARKET, tif=GTC),
        dict(type=MARKET, tif=GTD, expire_ts=TS + 10),
        dict(type=MARKET, tif=IOC, post_only=True),
        dict(tif=IOC, post_only=True),
        dict(tif=FOK, post_only=True),
    ],
    ids=["market gtc", "market gtd", "market post-only", "post-only ioc", "post-only fok"],
)
def test_an_order_that_contradicts_its_time_in_force_is_rejected_and_changes_nothing(
    ex: Exchange, kw: dict[str, Any]
) -> None:
    assert_rejected(ex, new(**kw), Reason.INVALID_TIF)


@pytest.mark.parametrize(
    "kw",
    [
        dict(tif=GTD, expire_ts=TS),
        dict(tif=GTD, expire_ts=TS - 1),
        dict(tif=GTD, expire_ts=0),
        dict(tif=GTC, expire_ts=TS + 10),
        dict(tif=IOC, expire_ts=TS + 10),
    ],
    ids=["gtd now", "gtd past", "gtd without expiry", "gtc with expiry", "ioc with expiry"],
)
def test_an_expiry_that_is_not_in_the_future_or_not_for_gtd_is_rejected_and_changes_nothing(
    ex: Exchange, kw: dict[str, Any]
) -> None:
    assert_rejected(ex, new(**kw), Reason.INVALID_EXPIRY)


def test_post_only_order_that_would_trade_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    assert_rejected(ex, new(price=105, post_only=True), Reason.POST_ONLY_WOULD_TRADE)
    # even against the account's own order, whatever its self-trade mode
    assert_rejected(
        ex,
        new(price=110, post_only=True, stp=SelfTrade.CANCEL_RESTING),
        Reason.POST_ONLY_WOULD_TRADE,
    )


# -- cancel --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        Cancel(account=1, order_id=999, ts=TS),
        Cancel(account=2, order_id=1, ts=TS),  # account 1's order
        Cancel(account=2, order_id=5, ts=TS),  # filled
        Cancel(account=1, client_order_id="nope", ts=TS),
        Cancel(account=2, client_order_id="p1", ts=TS),  # account 1's client order id
        Cancel(account=2, client_order_id="done", ts=TS),  # filled
        Cancel(account=1, ts=TS),  # names no order at all
    ],
    ids=[
        "unknown id",
        "another account's id",
        "filled order's id",
        "unknown client id",
        "another account's client id",
        "filled order's client id",
        "no id",
    ],
)
def test_cancel_of_an_unknown_or_another_accounts_order_is_rejected_and_changes_nothing(
    ex: Exchange, cmd: Cancel
) -> None:
    rejected = assert_rejected(ex, cmd, Reason.UNKNOWN_ORDER)
    assert (rejected.order_id, rejected.client_order_id) == (cmd.order_id, cmd.client_order_id)


def test_a_cancelled_order_cannot_be_cancelled_again(ex: Exchange) -> None:
    ex.submit(Cancel(account=1, order_id=1, ts=TS))
    assert_rejected(ex, Cancel(account=1, order_id=1, ts=TS), Reason.UNKNOWN_ORDER)


def test_mass_cancel_of_an_unknown_series_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    assert_rejected(ex, MassCancel(account=1, series="NOPE", ts=TS), Reason.UNKNOWN_SERIES)


# -- amend ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        Amend(account=1, order_id=999, qty=10, ts=TS),
        Amend(account=2, order_id=1, qty=1, ts=TS),
        Amend(account=2, order_id=5, qty=1, ts=TS),
        Amend(account=1, order_id=0, qty=1, ts=TS),
    ],
    ids=["unknown", "another account's", "filled", "no id"],
)
def test_amend_of_an_unknown_or_another_accounts_order_is_rejected_and_changes_nothing(
    ex: Exchange, cmd: Amend
) -> None:
    assert_rejected(ex, cmd, Reason.UNKNOWN_ORDER)


def test_amend_on_a_halted_series_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    ex.submit(Halt(series="B", ts=TS))
    assert_rejected(ex, Amend(account=1, order_id=3, qty=10, ts=TS), Reason.SERIES_HALTED)


@pytest.mark.parametrize(
    ("price", "qty", "reason"),
    [
        (0, -10, Reason.INVALID_QUANTITY),
        (0, 15, Reason.LOT_SIZE),
        (0, 510, Reason.MAX_ORDER_SIZE),
        (97, 0, Reason.INVALID_PRICE),
        (-5, 0, Reason.INVALID_PRICE),
        (85, 0, Reason.PRICE_OUT_OF_BAND),
        (95, 30, Reason.NO_CHANGE),
        (0, 0, Reason.NO_CHANGE),
        (105, 0, Reason.POST_ONLY_WOULD_TRADE),
    ],
    ids=[
        "negative qty",
        "off lot",
        "too large",
        "off tick",
        "negative price",
        "out of band",
        "same",
        "nothing",
        "post-only crosses",
    ],
)
def test_amend_to_a_bad_price_or_quantity_is_rejected_and_changes_nothing(
    ex: Exchange, price: int, qty: int, reason: Reason
) -> None:
    rejected = assert_rejected(
        ex, Amend(account=1, order_id=3, price=price, qty=qty, ts=TS), reason
    )
    assert (rejected.order_id, rejected.client_order_id) == (3, "p1")


# -- operator commands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        Halt(series="NOPE", ts=TS),
        Resume(series="NOPE", ts=TS),
        SetReferencePrice(series="NOPE", price=100, ts=TS),
    ],
    ids=["halt", "resume", "reference price"],
)
def test_operator_command_for_an_unknown_series_is_rejected_and_changes_nothing(
    ex: Exchange, cmd: Command
) -> None:
    assert_rejected(ex, cmd, Reason.UNKNOWN_SERIES)


@pytest.mark.parametrize("price", [0, -100, 102])
def test_reference_price_off_the_tick_grid_or_not_positive_is_rejected_and_changes_nothing(
    ex: Exchange, price: int
) -> None:
    assert_rejected(ex, SetReferencePrice(series="B", price=price, ts=TS), Reason.INVALID_PRICE)


# -- time still moves ----------------------------------------------------------------------------


def test_a_rejected_command_still_expires_due_gtd_orders_first(ex: Exchange) -> None:
    events = ex.submit(new(series="NOPE", ts=10**6))
    assert [type(e).__name__ for e in events] == ["BookDelta", "Expired", "Rejected"]
    assert 2 not in ex.open_orders
    ex.check_invariants()
