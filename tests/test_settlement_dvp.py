"""DvP per fill: both legs or neither, exact serials to the buyer, fees by role, holds
released on cancel, expiry, amend down and price improvement; a plan changes nothing, a
failure at any step of it leaves the ledger exactly as before, and a plan that passed
applies in full."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.commands import Amend, Cancel, NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected, Trade
from engine.reference import Mitigation, Series
from settlement import core as core_module
from settlement import dvp, serials
from settlement.commands import Deposit, DepositCredits, ListSeries, WithdrawCredits
from settlement.core import Core
from settlement.dvp import FillPlan, plan_fill, settle_fill
from settlement.events import Settled
from settlement.fees import FeeSchedule
from settlement.ledger import CashHold, CreditHold, Ledger, SettlementError
from settlement.log import LogRecord, SettlementLog, verify
from settlement.serials import SerialRange
from tests.builds import substitutes_module_functions
from tests.settlement_builders import catalogue_core, deposit_block

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


# -- atomicity: a plan that fails changes nothing; an apply cannot fail -------------------------


class InjectedFault(Exception):
    """Raised by a step of the plan that a test substituted with a failing one."""


def _ready_to_fill(core: Core) -> tuple[Trade, str]:
    """Resting sell and buy orders and the trade that would match them, not yet settled."""
    core.apply(order(1, "s", Side.SELL, 1_000, 100))
    core.apply(order(2, "b", Side.BUY, 900, 60))
    trade = Trade(99, SID, 900, 60, Side.BUY, 1, 1, 2, 2, 0)
    return trade, "USD"


def _fragment(core: Core) -> None:
    """Account 1 owns its 423 serials of VCS1340 2020 in three pieces."""
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
    assert len(core.ledger.accounts[1].credits[KEY]) == 3


KEY = ("VCS1340", 2020)
# Every step of `plan_fill` that computes something, each substituted in turn by one that
# raises: the plan fails there, and the ledger, its log and its pending records must be
# exactly as before. (The apply has no step that can fail: see the property test below.)
PLAN_STEPS = ["_parts_used", "_lowest", "Settled", "next_record", "FillPlan"]


def _fail_at(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise InjectedFault(step)

    if step == "next_record":  # a failing log: the record cannot be encoded or hashed
        monkeypatch.setattr(SettlementLog, "next_record", boom)
    else:
        monkeypatch.setattr(dvp, step, boom)


GENERIC = Series(
    id="VCS-AVOIDANCE-2020", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020
)


def _fill_across_two_parts(core: Core) -> tuple[Trade, str]:
    """A sell of a generic series whose hold has two parts (all of account 1's VCS1340, in
    three pieces, and 7 of VCS513) and the fill of all of it."""
    _fragment(core)
    core.apply(ListSeries(series=GENERIC))
    core.apply(
        DepositCredits(account=1, project="VCS513", vintage=2020, start=1, end=10, quantity=10)
    )
    for account, side in ((1, Side.SELL), (2, Side.BUY)):
        core.apply(
            NewOrder(
                account=account,
                client_order_id="g",
                series=GENERIC.id,
                side=side,
                price=700 if side is Side.SELL else 600,
                qty=430,
            )
        )
    assert core.ledger.credit_holds[1].parts == [[KEY, 423], [("VCS513", 2020), 7]]
    return Trade(99, GENERIC.id, 600, 430, Side.SELL, 2, 2, 1, 1, 0), "USD"


@pytest.mark.parametrize(
    "step",
    [  # a module function substituted is never called by compiled code; the rest are
        pytest.param(s, marks=substitutes_module_functions) if s.startswith("_") else s
        for s in PLAN_STEPS
    ],
)
def test_a_failure_at_any_step_of_the_plan_leaves_the_ledger_exactly_as_before(
    core: Core, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trade, currency = _fill_across_two_parts(core)
    core.drain_records()
    before, state = pickle.dumps(core.ledger), core.state_hash()
    with monkeypatch.context() as m:
        _fail_at(m, step)
        with pytest.raises(InjectedFault):
            settle_fill(core.ledger, trade, currency)
    assert pickle.dumps(core.ledger) == before and core.state_hash() == state
    assert core.drain_records() == []
    # and the same fill then goes through, lowest serials first across the pieces and keys
    s = settle_fill(core.ledger, trade, currency)
    assert [(r.project, r.qty) for r in s.ranges] == [
        ("VCS1340", 10),
        ("VCS1340", 9),
        ("VCS1340", 404),
        ("VCS513", 7),
    ]
    assert len(core.drain_records()) == 1 and core.state_hash() != state
    core.ledger.release_credits(1)  # what Core does once the sell is filled
    core.ledger.check_invariants()


def test_a_plan_changes_nothing_and_its_apply_moves_exactly_what_it_planned(core: Core) -> None:
    trade, currency = _ready_to_fill(core)
    core.drain_records()
    before = pickle.dumps(core.ledger)
    plan = plan_fill(core.ledger, trade, currency)
    assert pickle.dumps(core.ledger) == before and core.drain_records() == []
    assert (plan.cost, plan.proceeds, plan.fees) == (54_000 + 135, 54_000 - 54, 135 + 54)
    assert plan.used == [(KEY, 60)] and plan.body.ranges == (
        SerialRange("VCS1340", 2020, FIRST, FIRST + 59),
    )
    cash = {a: core.balances(a)["USD"] for a in (0, 1, 2)}
    core.ledger.apply_fill(plan)
    assert core.balances(2)["USD"] == (cash[2][0] - plan.cost, cash[2][1] - plan.cost)
    assert core.balances(1)["USD"][0] == cash[1][0] + plan.proceeds
    assert core.balances(0)["USD"][0] == cash[0][0] + plan.fees
    assert core.ledger.accounts[2].credits[KEY] == [(FIRST, FIRST + 59)]
    assert core.ledger.accounts[1].credits[KEY] == [(FIRST + 60, FIRST + 424)]
    assert core.drain_records() == [plan.record]
    # a plan is applied once: the log head has moved on, so a second apply is a bug
    with pytest.raises(AssertionError, match="appended at once and once"):
        core.ledger.apply_fill(plan)


def test_a_plan_over_fragmented_serials_leaves_every_piece_in_place(core: Core) -> None:
    _fragment(core)
    trade, currency = _ready_to_fill(core)
    seller = core.ledger.accounts[1].credits[KEY]
    pieces_before = list(seller)
    plan = plan_fill(core.ledger, trade, currency)
    assert seller == pieces_before  # nothing taken yet
    (d,) = plan.deliveries
    assert d.ranges is seller and d.pieces is not seller  # the delivery is a list of its own
    assert d.pieces == [(FIRST, FIRST + 9), (FIRST + 11, FIRST + 19), (FIRST + 21, FIRST + 61)]
    core.ledger.apply_fill(plan)
    assert seller == [(FIRST + 62, FIRST + 424)]
    _release_spent_holds(core.ledger)
    core.ledger.check_invariants()


def test_a_fill_the_holds_do_not_cover_is_refused_before_anything_moves(core: Core) -> None:
    _ready_to_fill(core)
    core.apply(Deposit(account=1, currency="USD", amount=100_000))
    core.apply(order(1, "b1", Side.BUY, 900, 10))  # order 3: account 1 buys and sells
    before = pickle.dumps(core.ledger)
    refused = [
        Trade(99, SID, 900, 101, Side.BUY, 1, 1, 2, 2, 0),  # more than the sell hold
        Trade(99, SID, 100_000, 60, Side.BUY, 1, 1, 2, 2, 0),  # dearer than the buy hold
        Trade(99, SID, 900, 60, Side.BUY, 1, 3, 2, 2, 0),  # the sell hold is account 1's
        Trade(99, SID, 900, 60, Side.BUY, 1, 1, 7, 2, 0),  # no such buy order
        Trade(99, SID, 900, 0, Side.BUY, 1, 1, 2, 2, 0),  # nothing to fill
        Trade(99, SID, 0, 60, Side.BUY, 1, 1, 2, 2, 0),  # no price
        Trade(99, SID, 900, 10, Side.SELL, 3, 1, 1, 1, 0),  # buyer is seller, holds and all
    ]
    for trade in refused:
        with pytest.raises(SettlementError):
            settle_fill(core.ledger, trade, "USD")
        assert pickle.dumps(core.ledger) == before, trade
    with pytest.raises(SettlementError):
        settle_fill(core.ledger, Trade(99, SID, 900, 60, Side.BUY, 1, 1, 2, 2, 0), "HKD")
    assert pickle.dumps(core.ledger) == before


@substitutes_module_functions
def test_a_fill_that_fails_in_a_sweep_leaves_the_earlier_fills_and_nothing_of_itself(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Core settles each fill as it comes: when the second of a sweep's fills cannot be
    planned (a bug), the first has settled and the ledger is exactly as it was before the
    second."""
    core.apply(order(1, "s1", Side.SELL, 1_000, 10))
    core.apply(order(1, "s2", Side.SELL, 1_100, 10))
    real = dvp.plan_fill
    seen: list[bytes] = []

    def second_fails(ledger: Ledger, trade: Trade, currency: str, version: int = 0) -> FillPlan:
        seen.append(pickle.dumps(ledger))
        if len(seen) == 2:
            with monkeypatch.context() as m:
                _fail_at(m, "_lowest")
                return real(ledger, trade, currency, version)
        return real(ledger, trade, currency, version)

    monkeypatch.setattr(core_module, "plan_fill", second_fails)
    with pytest.raises(InjectedFault):
        core.apply(order(2, "sweep", Side.BUY, 1_100, 20))
    assert len(seen) == 2 and pickle.dumps(core.ledger) == seen[1]
    assert core.ledger.accounts[2].credits[KEY] == [(FIRST, FIRST + 9)]
    assert len(core.drain_records()) == 1


# A ledger in many states, and fills of every shape against it, sound or not: each either
# is refused with nothing changed, or plans, applies without failing, keeps the ledger's
# invariants and writes a record that the independent auditor accepts.


@functools.cache
def _many_holds() -> tuple[bytes, list[LogRecord]]:
    """A snapshot of the core and its log records so far."""
    c, blocks = catalogue_core(PROJECTS, SERIALS, maker_fee_bps=10, taker_fee_bps=25)
    c.apply(deposit_block(1, blocks[0]))
    c.apply(Deposit(account=1, currency="USD", amount=1_000_000))
    for a in (2, 3):
        c.apply(Deposit(account=a, currency="USD", amount=1_000_000))
    _fragment(c)
    # sells of 1 (ids 1, 2), of 2 and 3 once they own some; buys of 1, 2 and 3
    c.apply(order(1, "s1", Side.SELL, 1_000, 80))
    c.apply(order(1, "s2", Side.SELL, 1_200, 60))
    c.apply(order(2, "b1", Side.BUY, 1_000, 30))  # takes 30 of s1
    c.apply(order(3, "b2", Side.BUY, 1_000, 25))  # takes 25 of s1
    c.apply(order(2, "s3", Side.SELL, 1_300, 20))
    c.apply(order(3, "s4", Side.SELL, 1_300, 15))
    c.apply(order(2, "b3", Side.BUY, 900, 100))
    c.apply(order(3, "b4", Side.BUY, 950, 200))
    c.apply(order(1, "b5", Side.BUY, 800, 50))
    c.check_invariants()
    records = c.drain_records()
    return c.snapshot(), records


def _release_spent_holds(ledger: Ledger) -> None:
    """Release the holds a fill used up, as Core does when their orders close."""
    for oid in [i for i, h in ledger.cash_holds.items() if not h.amount]:
        ledger.release_cash(oid)
    for oid in [i for i, h in ledger.credit_holds.items() if not h.qty]:
        ledger.release_credits(oid)


def _draw_fill(data: st.DataObject, ledger: Ledger, trade_id: int) -> Trade:
    """A fill between two of the ledger's holds, or of orders it does not know, by their
    accounts or others, at any price and size: sound more often than not."""
    buy_id = data.draw(st.sampled_from([*sorted(ledger.cash_holds), 99]))
    sell_id = data.draw(st.sampled_from([*sorted(ledger.credit_holds), 99]))
    cash, credit = ledger.cash_holds.get(buy_id), ledger.credit_holds.get(sell_id)
    anyone = st.integers(0, 4)
    mostly = st.integers(0, 3)  # 0: someone else, 1-3: the hold's own

    def owner(hold: CashHold | CreditHold | None) -> int:
        return hold.account if hold and data.draw(mostly) else data.draw(anyone)

    buyer, seller = owner(cash), owner(credit)
    qty = data.draw(st.integers(1, credit.qty) if credit and data.draw(mostly) else anyone)
    price = data.draw(st.integers(1, 950) | st.integers(-1, 100_000))
    if data.draw(st.booleans()):  # the buyer took the seller's resting order
        return Trade(trade_id, SID, price, qty, Side.BUY, sell_id, seller, buy_id, buyer, 0)
    return Trade(trade_id, SID, price, qty, Side.SELL, buy_id, buyer, sell_id, seller, 0)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_fill_is_refused_with_nothing_changed_or_applied_in_full(data: st.DataObject) -> None:
    snapshot, records_before = _many_holds()
    core = Core.restore(snapshot)
    ledger = core.ledger
    records = list(records_before)
    applied = 0
    for n in range(data.draw(st.integers(1, 8))):
        trade = _draw_fill(data, ledger, 1_000 + n)
        before = pickle.dumps(ledger)
        try:
            plan = plan_fill(ledger, trade, "USD")
        except SettlementError:
            assert pickle.dumps(ledger) == before
            continue
        assert pickle.dumps(ledger) == before
        ledger.apply_fill(plan)  # must not raise
        _release_spent_holds(ledger)
        ledger.check_invariants()
        (record,) = core.drain_records()
        assert record == plan.record
        got = ledger.accounts[plan.body.buyer].credits
        for r in plan.body.ranges:
            assert serials.covers(got[r.key], r.first, r.last)
        records.append(record)
        applied += 1
    event(f"fills applied: {applied}")
    verdict = verify(records)
    assert verdict.ok, verdict.error
