"""DvP per fill: both legs or neither, exact serials to the buyer, fees by role, holds
released on cancel, expiry, amend down and price improvement; failure injected at every
step leaves the ledger exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import Amend, Cancel, NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected, Trade
from engine.reference import Mitigation, Series
from settlement.commands import Deposit, DepositCredits, ListSeries
from settlement.core import Core
from settlement.dvp import settle_fill
from settlement.events import Settled
from settlement.fees import FeeSchedule
from settlement.ledger import InjectedFault, SettlementError
from settlement.serials import SerialRange
from settlement.testing import catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()
SID = "VCS-1340-2020"
FEES = FeeSchedule(10, 25)  # maker 0.10%, taker 0.25%


def order(account: int, coid: str, side: Side, price: int, qty: int, **kw: object) -> NewOrder:
    return NewOrder(
        account=account, client_order_id=coid, series=SID, side=side, price=price, qty=qty, **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def core() -> Core:
    """Account 1 holds the real VCS1340 2020 block (425 t); 2 and 3 have 1,000,000 USD cents."""
    c, blocks = catalogue_core(PROJECTS, SERIALS, maker_fee_bps=10, taker_fee_bps=25)
    c.apply(deposit_block(1, blocks[0]))
    for a in (2, 3):
        c.apply(Deposit(account=a, currency="USD", amount=1_000_000))
    c.drain_records()
    return c


FIRST = 941467007  # the block's first serial


def settled(events: list) -> list[Settled]:
    return [e for e in events if isinstance(e, Settled)]


def test_a_fill_pays_the_seller_delivers_exact_serials_and_charges_fees_by_role(
    core: Core,
) -> None:
    core.apply(order(1, "s", Side.SELL, 1_000, 100))
    events = core.apply(order(2, "b", Side.BUY, 1_000, 30))
    (s,) = settled(events)
    notional = 30_000
    assert s.buyer_fee == notional * 25 // 10_000 == 75  # buyer is the taker
    assert s.seller_fee == notional * 10 // 10_000 == 30  # seller is the maker
    assert s.ranges == (SerialRange("VCS1340", 2020, FIRST, FIRST + 29),)
    assert core.balances(2)["USD"] == (1_000_000 - notional - 75, 0)
    assert core.balances(1)["USD"] == (notional - 30, 0)
    assert core.balances(0)["USD"] == (105, 0)
    assert core.credits(2) == {("VCS1340", 2020): (30, 0)}
    assert core.credits(1) == {("VCS1340", 2020): (325, 70)}
    assert core.ledger.accounts[2].credits[("VCS1340", 2020)] == [(FIRST, FIRST + 29)]
    core.check_invariants()


def test_consecutive_fills_deliver_consecutive_serials_oldest_first(core: Core) -> None:
    core.apply(order(1, "s", Side.SELL, 1_000, 100))
    a = settled(core.apply(order(2, "b1", Side.BUY, 1_000, 10)))[0]
    b = settled(core.apply(order(3, "b2", Side.BUY, 1_000, 10)))[0]
    c = settled(core.apply(order(2, "b3", Side.BUY, 1_000, 5)))[0]
    assert a.ranges[0].first == FIRST and b.ranges[0].first == FIRST + 10
    assert c.ranges[0] == SerialRange("VCS1340", 2020, FIRST + 20, FIRST + 24)
    # buyer 2's two receipts are not adjacent; buyer 3's is between them
    assert core.ledger.accounts[2].credits[("VCS1340", 2020)] == [
        (FIRST, FIRST + 9),
        (FIRST + 20, FIRST + 24),
    ]


def test_serials_that_close_a_gap_join_the_buyers_ranges_into_one(core: Core) -> None:
    core.apply(order(1, "s", Side.SELL, 1_000, 100))
    core.apply(order(2, "b1", Side.BUY, 1_000, 10))  # FIRST .. +9 to 2
    core.apply(order(3, "b2", Side.BUY, 1_000, 10))  # +10 .. +19 to 3
    core.apply(order(2, "b3", Side.BUY, 1_000, 5))  # +20 .. +24 to 2
    core.apply(order(3, "s3", Side.SELL, 990, 10))  # ahead of what is left of 1's sell
    (s,) = settled(core.apply(order(2, "b4", Side.BUY, 990, 10)))
    assert s.ranges == (SerialRange("VCS1340", 2020, FIRST + 10, FIRST + 19),)
    assert core.ledger.accounts[2].credits[("VCS1340", 2020)] == [(FIRST, FIRST + 24)]
    assert core.ledger.accounts[3].credits[("VCS1340", 2020)] == []
    core.check_invariants()


def test_pieces_from_a_fragmented_seller_arrive_exact_and_merge_where_they_touch(
    core: Core,
) -> None:
    # 2 holds FIRST..+9 and +20..+24; 3 holds +10..+19 and +25..+34: sold on by 3 in one
    # fill, its two pieces fill both of 2's gaps and 2 holds one range
    core.apply(order(1, "s", Side.SELL, 1_000, 35))
    for i, (buyer, qty) in enumerate(((2, 10), (3, 10), (2, 5), (3, 10))):
        core.apply(order(buyer, f"b{i}", Side.BUY, 1_000, qty))
    assert core.ledger.accounts[3].credits[("VCS1340", 2020)] == [
        (FIRST + 10, FIRST + 19),
        (FIRST + 25, FIRST + 34),
    ]
    core.apply(order(3, "s3", Side.SELL, 1_000, 20))
    (s,) = settled(core.apply(order(2, "all", Side.BUY, 1_000, 20)))
    assert s.ranges == (
        SerialRange("VCS1340", 2020, FIRST + 10, FIRST + 19),
        SerialRange("VCS1340", 2020, FIRST + 25, FIRST + 34),
    )
    assert core.ledger.accounts[2].credits[("VCS1340", 2020)] == [(FIRST, FIRST + 34)]
    core.check_invariants()


def test_a_buy_filled_at_a_better_price_releases_the_unused_hold(core: Core) -> None:
    core.apply(order(1, "s", Side.SELL, 900, 50))
    core.apply(order(2, "b", Side.BUY, 1_000, 80))  # 50 fill at 900, 30 rest at 1000
    assert core.balances(2)["USD"] == (1_000_000 - 45_000 - 112, FEES.buy_hold(30_000))
    core.check_invariants()


def test_cancel_expiry_and_amend_down_release_holds(core: Core) -> None:
    core.apply(order(2, "b", Side.BUY, 500, 100))
    assert core.balances(2)["USD"][1] == FEES.buy_hold(50_000)
    core.apply(Amend(account=2, order_id=1, qty=40))
    assert core.balances(2)["USD"][1] == FEES.buy_hold(20_000)
    core.apply(Cancel(account=2, order_id=1))
    assert core.balances(2)["USD"][1] == 0
    core.apply(order(1, "s", Side.SELL, 2_000, 100, tif=TimeInForce.GTD, expire_ts=50, ts=10))
    assert core.credits(1)[("VCS1340", 2020)] == (325, 100)
    core.apply(Amend(account=1, order_id=2, qty=60, ts=20))
    assert core.credits(1)[("VCS1340", 2020)] == (365, 60)
    core.apply(Deposit(account=3, currency="USD", amount=1, ts=50))  # time passes: expiry
    assert core.credits(1)[("VCS1340", 2020)] == (425, 0)
    core.check_invariants()


def test_amend_up_needs_the_extra_hold_first(core: Core) -> None:
    core.apply(order(2, "b", Side.BUY, 1_000, 900))
    before = core.state_hash()
    ev = core.apply(Amend(account=2, order_id=1, qty=1_000))  # 1,000,000 + fee > cash
    assert isinstance(ev[0], Rejected) and ev[0].reason is Reason.INSUFFICIENT_CASH
    assert core.state_hash() == before
    ev = core.apply(Amend(account=2, order_id=1, price=1_100))  # 990,000 + 2475: fits
    assert core.balances(2)["USD"][1] == FEES.buy_hold(990_000)
    core.apply(order(1, "s", Side.SELL, 5_000, 400))
    before = core.state_hash()
    ev = core.apply(Amend(account=1, order_id=2, qty=426))
    assert isinstance(ev[0], Rejected) and ev[0].reason is Reason.INSUFFICIENT_CREDITS
    assert core.state_hash() == before
    core.apply(Amend(account=1, order_id=2, qty=425))
    assert core.credits(1)[("VCS1340", 2020)] == (0, 425)
    core.check_invariants()


def test_amend_that_crosses_settles_its_fills(core: Core) -> None:
    core.apply(order(1, "s", Side.SELL, 1_200, 100))
    core.apply(order(2, "b", Side.BUY, 1_000, 50))
    ev = core.apply(Amend(account=2, order_id=2, price=1_200))
    (s,) = settled(ev)
    assert s.qty == 50 and s.price == 1_200
    assert core.balances(2)["USD"] == (1_000_000 - 60_000 - 60_000 * 25 // 10_000, 0)
    core.check_invariants()


def test_market_buy_needs_a_cash_limit_and_spends_at_most_it(core: Core) -> None:
    core.apply(order(1, "s1", Side.SELL, 1_000, 50))
    core.apply(order(1, "s2", Side.SELL, 1_100, 50))
    mkt = dict(type=OrderType.MARKET, tif=TimeInForce.IOC)
    ev = core.apply(order(2, "m0", Side.BUY, 0, 80, **mkt))
    assert isinstance(ev[0], Rejected) and ev[0].reason is Reason.MARKET_BUY_NEEDS_CASH_LIMIT
    ev = core.apply(order(2, "m1", Side.BUY, 0, 80, max_notional=72_000, **mkt))
    fills = settled(ev)
    assert sum(f.price * f.qty for f in fills) <= 72_000
    assert [f.qty for f in fills] == [50, 20]
    assert core.balances(2)["USD"][1] == 0  # the market order is gone; its hold too
    core.check_invariants()


def test_a_generic_series_delivers_any_eligible_projects_exact_serials(core: Core) -> None:
    generic = Series(
        id="VCS-AVOIDANCE-2020", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020
    )
    core.apply(ListSeries(series=generic))
    # VCS1340 (avoidance, 2020) is eligible; a second eligible project, VCS513 2020
    core.apply(
        DepositCredits(account=1, project="VCS513", vintage=2020, start=1, end=10, quantity=10)
    )
    sell = NewOrder(
        account=1, client_order_id="g", series=generic.id, side=Side.SELL, price=700, qty=430
    )
    assert not isinstance(core.apply(sell)[0], Rejected)
    buy = NewOrder(
        account=2, client_order_id="gb", series=generic.id, side=Side.BUY, price=700, qty=430
    )
    (s,) = settled(core.apply(buy))
    assert s.ranges == (
        SerialRange("VCS1340", 2020, FIRST, FIRST + 424),
        SerialRange("VCS513", 2020, 1, 5),
    )
    assert core.credits(2) == {("VCS1340", 2020): (425, 0), ("VCS513", 2020): (5, 0)}
    # a removal project is never eligible for an avoidance series
    core.apply(
        DepositCredits(account=3, project="VCS960", vintage=2020, start=1, end=5, quantity=5)
    )
    ev = core.apply(
        NewOrder(
            account=3, client_order_id="x", series=generic.id, side=Side.SELL, price=700, qty=1
        )
    )
    assert isinstance(ev[0], Rejected) and ev[0].reason is Reason.INSUFFICIENT_CREDITS
    core.check_invariants()


def test_self_trade_cancel_releases_the_resting_orders_hold(core: Core) -> None:
    core.apply(Deposit(account=1, currency="USD", amount=100_000))
    core.apply(order(1, "b", Side.BUY, 1_000, 10))
    from engine.commands import SelfTrade

    core.apply(order(1, "s", Side.SELL, 1_000, 10, stp=SelfTrade.CANCEL_RESTING))
    assert core.balances(1)["USD"][1] == 0
    core.check_invariants()


# -- atomicity ------------------------------------------------------------------------------


def _ready_to_fill(core: Core) -> tuple[Trade, str]:
    """Resting sell and buy orders and the trade that would match them, not yet settled."""
    core.apply(order(1, "s", Side.SELL, 1_000, 100))
    core.apply(order(2, "b", Side.BUY, 900, 60))
    trade = Trade(99, SID, 900, 60, Side.BUY, 1, 1, 2, 2, 0)
    return trade, "USD"


@pytest.mark.parametrize("step", range(1, 8))
def test_a_failure_at_any_step_of_a_fill_leaves_the_ledger_exactly_as_before(
    core: Core, step: int
) -> None:
    trade, currency = _ready_to_fill(core)
    core.drain_records()
    before = core.state_hash()
    core.ledger.fault = step
    with pytest.raises(InjectedFault):
        settle_fill(core.ledger, trade, currency)
    assert core.state_hash() == before
    assert core.drain_records() == []
    core.ledger.fault = 0
    # and the same fill then goes through
    s = settle_fill(core.ledger, trade, currency)
    assert s.qty == 60 and len(core.drain_records()) == 1
    assert core.state_hash() != before


def test_a_failure_with_fragmented_serials_undoes_every_piece(core: Core) -> None:
    # account 1 holds serials in three pieces, then sells across all of them
    acct = core.ledger.accounts[1]
    from settlement.commands import WithdrawCredits

    for k in (10, 20):
        core.apply(
            WithdrawCredits(
                account=1,
                project="VCS1340",
                vintage=2020,
                start=FIRST + k,
                end=FIRST + k,
                quantity=1,
            )
        )
    assert len(acct.credits[("VCS1340", 2020)]) == 3
    trade, currency = _ready_to_fill(core)
    core.drain_records()
    before = core.state_hash()
    for step in range(1, 8):
        core.ledger.fault = step
        with pytest.raises(InjectedFault):
            settle_fill(core.ledger, trade, currency)
        assert core.state_hash() == before, step
    core.ledger.fault = 0
    s = settle_fill(core.ledger, trade, currency)
    assert [r.qty for r in s.ranges] == [10, 9, 41]


def test_a_fill_the_holds_do_not_cover_is_refused_before_anything_moves(core: Core) -> None:
    _ready_to_fill(core)
    before = core.state_hash()
    too_big = Trade(99, SID, 900, 101, Side.BUY, 1, 1, 2, 2, 0)
    with pytest.raises(SettlementError):
        settle_fill(core.ledger, too_big, "USD")
    too_dear = Trade(99, SID, 100_000, 60, Side.BUY, 1, 1, 2, 2, 0)
    with pytest.raises(SettlementError):
        settle_fill(core.ledger, too_dear, "USD")
    assert core.state_hash() == before
