"""The core's amount limits, one rule at a time: each rejection is `LIMIT_EXCEEDED` (or the
reason the rule names) and changes nothing; the state hash encodes any state."""

from __future__ import annotations

import pickle
from hashlib import sha256

import msgspec
import pytest

from engine.book import MAX_PRICE
from engine.commands import NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected
from engine.reference import Mitigation, Project, Series
from settlement.commands import (
    Deposit,
    DepositCredits,
    ListSeries,
    OpenAccount,
    Retire,
    Withdraw,
)
from settlement.core import Core
from settlement.events import CashDeposited, CreditsDeposited
from settlement.limits import AMOUNT_MAX, CERTIFICATES_MAX, SERIAL_MAX
from settlement.log import SettlementLog, verify
from settlement.serials import RangeConvention, SerialRange
from settlement.state import state_digest
from tests.builds import pickles_of_the_pure_layout

PROJECT = Project(id="VCS1340", registry="VERRA", name="p", mitigation=Mitigation.AVOIDANCE)
SERIES = Series(
    id="VCS-1340-2020",
    standard="VCS",
    mitigation=Mitigation.AVOIDANCE,
    vintage=2020,
    project="VCS1340",
)


def _core(**limits: int) -> Core:
    core = Core([SERIES], [PROJECT], maker_fee_bps=5, taker_fee_bps=15, **limits)
    for a in (1, 2, 3, 4, 5):
        core.apply(OpenAccount(account=a))
    return core


def _refused(core: Core, cmd: object, reason: Reason) -> Rejected:
    """Apply `cmd`, which must be refused with `reason` and change nothing."""
    core.drain_records()
    before = core.state_hash()
    events = core.apply(cmd)  # type: ignore[arg-type]
    assert len(events) == 1 and isinstance(events[0], Rejected), events
    assert events[0].reason is reason, events[0]
    assert core.state_hash() == before and not core.drain_records()
    return events[0]


def _credits(account: int, start: int, qty: int) -> DepositCredits:
    return DepositCredits(
        account=account,
        project="VCS1340",
        vintage=2020,
        start=start,
        end=start + qty - 1,
        quantity=qty,
    )


def test_a_deposit_up_to_cash_total_max_is_accepted_and_one_unit_more_is_refused():
    core = _core()
    assert core.apply(Deposit(account=1, currency="USD", amount=AMOUNT_MAX - 1))
    assert isinstance(core.apply(Deposit(account=2, currency="USD", amount=1))[0], CashDeposited)
    rejected = _refused(core, Deposit(account=3, currency="USD", amount=1), Reason.LIMIT_EXCEEDED)
    assert "cash_total_max" in rejected.text and "USD" in rejected.text
    # another currency has its own total
    assert isinstance(core.apply(Deposit(account=3, currency="HKD", amount=5))[0], CashDeposited)
    core.check_invariants()


def test_five_deposits_of_2_to_the_62_into_one_account_are_refused_from_the_first():
    """The hostile client's case (issue 10): every deposit was acknowledged, then the
    balance passed 2^64 - 1 and the server failed."""
    core = _core()
    for _ in range(5):
        _refused(core, Deposit(account=1, currency="USD", amount=2**62), Reason.LIMIT_EXCEEDED)
    assert core.balances(1)["USD"] == (0, 0)


def test_the_limit_bounds_the_sum_over_accounts_not_only_each_balance():
    core = _core(cash_total_max=1_000)
    for a in (1, 2, 3, 4):
        core.apply(Deposit(account=a, currency="USD", amount=250))
    _refused(core, Deposit(account=5, currency="USD", amount=1), Reason.LIMIT_EXCEEDED)
    # a withdrawal makes room again
    core.apply(Withdraw(account=1, currency="USD", amount=10))
    assert isinstance(core.apply(Deposit(account=5, currency="USD", amount=10))[0], CashDeposited)
    assert core.ledger.cash_net["USD"] == 1_000


def test_fills_and_fees_keep_the_custody_total_where_deposits_left_it():
    core = _core(cash_total_max=100_000)
    core.apply(Deposit(account=1, currency="USD", amount=100_000))
    core.apply(_credits(2, 1, 500))
    core.apply(
        NewOrder(
            account=2, client_order_id="s", series=SERIES.id, side=Side.SELL, price=90, qty=500
        )
    )
    core.apply(
        NewOrder(account=1, client_order_id="b", series=SERIES.id, side=Side.BUY, price=90, qty=500)
    )
    ledger = core.ledger
    fees = ledger.accounts[0].cash["USD"]
    assert fees > 0 and ledger.cash_net["USD"] == 100_000
    assert sum(a.cash["USD"] for a in ledger.accounts.values()) == 100_000
    _refused(core, Deposit(account=3, currency="USD", amount=1), Reason.LIMIT_EXCEEDED)
    core.check_invariants()


def test_a_buy_whose_hold_passes_the_custody_total_is_insufficient_cash():
    core = _core(cash_total_max=10_000)
    core.apply(Deposit(account=1, currency="USD", amount=10_000))
    limit = NewOrder(
        account=1, client_order_id="b", series=SERIES.id, side=Side.BUY, price=MAX_PRICE, qty=10**6
    )
    _refused(core, limit, Reason.INSUFFICIENT_CASH)
    market = NewOrder(
        account=1,
        client_order_id="m",
        series=SERIES.id,
        side=Side.BUY,
        type=OrderType.MARKET,
        tif=TimeInForce.IOC,
        qty=10,
        max_notional=2**62,
    )
    _refused(core, market, Reason.INSUFFICIENT_CASH)


def test_a_credit_deposit_past_credits_total_max_is_refused():
    core = _core(credits_total_max=1_000)
    assert isinstance(core.apply(_credits(1, 1, 600))[0], CreditsDeposited)
    assert isinstance(core.apply(_credits(2, 10_000, 400))[0], CreditsDeposited)
    rejected = _refused(core, _credits(3, 20_000, 1), Reason.LIMIT_EXCEEDED)
    assert "credits_total_max" in rejected.text
    # a retirement takes credits out of custody and makes room
    core.apply(
        Retire(
            account=1,
            beneficiary="b",
            series=SERIES.id,
            qty=5,
            period_start="2025-01-01",
            period_end="2025-12-31",
        )
    )
    assert isinstance(core.apply(_credits(3, 20_000, 5))[0], CreditsDeposited)
    core.check_invariants()


def test_serials_above_serial_max_are_an_invalid_block():
    core = _core()
    _refused(core, _credits(1, SERIAL_MAX, 2), Reason.INVALID_SERIAL_BLOCK)
    _refused(core, _credits(1, 2**64, 1), Reason.INVALID_SERIAL_BLOCK)
    assert isinstance(core.apply(_credits(1, SERIAL_MAX, 1))[0], CreditsDeposited)


def test_an_account_id_above_the_limit_is_refused():
    core = _core()
    _refused(core, OpenAccount(account=AMOUNT_MAX + 1), Reason.LIMIT_EXCEEDED)
    assert core.apply(OpenAccount(account=AMOUNT_MAX))[0].__class__ is not Rejected


def test_a_series_with_a_parameter_above_the_limit_is_refused():
    core = _core()
    huge = Series(
        id="VCS-1340-2021",
        standard="VCS",
        mitigation=Mitigation.AVOIDANCE,
        vintage=2021,
        project="VCS1340",
        max_order_qty=2**64,
    )
    _refused(core, ListSeries(series=huge), Reason.LIMIT_EXCEEDED)


def test_the_certificate_counter_is_bounded():
    core = _core()
    core.apply(_credits(1, 1, 10))
    core.ledger.next_cert = CERTIFICATES_MAX + 1  # 2^53 retirements cannot be run in a test
    retire = Retire(
        account=1,
        beneficiary="b",
        series=SERIES.id,
        qty=1,
        period_start="2025-01-01",
        period_end="2025-12-31",
    )
    _refused(core, retire, Reason.LIMIT_EXCEEDED)


@pytest.mark.parametrize("name", ["cash_total_max", "credits_total_max"])
@pytest.mark.parametrize("value", [0, -1, AMOUNT_MAX + 1, 2**64])
def test_a_custody_limit_is_positive_and_at_most_2_to_the_53_minus_1(name, value):
    with pytest.raises(ValueError, match=name):
        _core(**{name: value})


def test_the_state_hash_of_a_normal_state_is_the_sha256_of_its_msgpack():
    """The big-integer encoding is only for states msgpack cannot hold."""
    core = _core()
    core.apply(Deposit(account=1, currency="USD", amount=AMOUNT_MAX))
    expected = sha256(msgspec.msgpack.encode(core.canonical())).hexdigest()
    assert core.state_hash() == expected


def test_the_state_hash_encodes_integers_beyond_msgpack_and_tells_them_apart():
    small = state_digest([1, [2, 2**64 - 1]])
    assert small == sha256(msgspec.msgpack.encode([1, [2, 2**64 - 1]])).hexdigest()
    hashes = {state_digest([1, [2, n]]) for n in (2**64, 2**64 + 1, -(2**63) - 1, 2**200)}
    assert len(hashes) == 4
    assert state_digest([1, [2, 2**64]]) == state_digest([1, [2, 2**64]])


def _lifted(core: Core) -> Core:
    """A core that behaves like the code before the limits (no custody limit at all)."""
    core.ledger.cash_total_max = core.ledger.credits_total_max = 1 << 80
    return core


def test_a_core_holding_totals_past_the_limits_hashes_but_does_not_restore():
    core = _lifted(_core())
    for a in (1, 2, 3, 4, 5):
        core.apply(Deposit(account=a, currency="USD", amount=2**62))
    assert core.ledger.cash_net["USD"] == 5 * 2**62 > 2**64
    assert len(core.state_hash()) == 64
    with pytest.raises(ValueError, match="cash_total_max"):
        Core.restore(core.snapshot())


@pickles_of_the_pure_layout
def test_an_older_snapshot_without_the_limits_restores_with_the_defaults():
    core = _core()
    core.apply(Deposit(account=1, currency="USD", amount=7))
    expected = core.state_hash()
    del core.ledger.cash_total_max, core.ledger.credits_total_max  # as pickled before them
    restored = Core.restore(pickle.dumps(core, protocol=5))  # how snapshots were written
    assert restored.ledger.cash_total_max == AMOUNT_MAX
    assert restored.state_hash() == expected


def test_log_verify_names_the_first_record_past_a_limit():
    log = SettlementLog()
    log.append(CashDeposited(1, "USD", AMOUNT_MAX, "a", 1))
    log.append(CashDeposited(2, "USD", 1, "b", 2))
    verdict = verify(log.drain())
    assert not verdict.ok and verdict.first_bad == 2
    assert "USD in custody" in verdict.error
    block = SettlementLog()
    inclusive = RangeConvention.INCLUSIVE
    block.append(CreditsDeposited(1, SerialRange("P", 2020, 0, AMOUNT_MAX - 1), inclusive, "", 1))
    block.append(CreditsDeposited(1, SerialRange("Q", 2020, 0, 0), inclusive, "", 2))
    verdict = verify(block.drain())
    assert not verdict.ok and verdict.first_bad == 2 and "t in custody" in verdict.error
    serial = SettlementLog()
    serial.append(CreditsDeposited(1, SerialRange("P", 2020, 2**62, 2**62), inclusive, "", 1))
    verdict = verify(serial.drain())
    assert not verdict.ok and verdict.first_bad == 1 and "outside" in verdict.error
