"""Ledger rules: accounts, cash and credit deposits and withdrawals, holds, and every
rejection leaving the state unchanged. Real projects and registry blocks from data/."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import NewOrder, Side
from engine.events import Reason, Rejected
from settlement import serials
from settlement.commands import (
    Deposit,
    DepositCredits,
    OpenAccount,
    Withdraw,
    WithdrawCredits,
)
from settlement.core import Core
from settlement.events import AccountOpened, CashDeposited, CreditsDeposited, CreditsWithdrawn
from settlement.fees import FeeSchedule, fee
from settlement.serials import RangeConvention
from tests.settlement_builders import catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()


@pytest.fixture
def core_blocks() -> tuple[Core, list]:
    return catalogue_core(PROJECTS, SERIALS, maker_fee_bps=10, taker_fee_bps=25)


def rejected(events: list, reason: Reason) -> None:
    assert len(events) == 1 and isinstance(events[0], Rejected), events
    assert events[0].reason is reason, events[0]


def unchanged(core: Core, cmd: object, reason: Reason) -> None:
    before = core.state_hash()
    rejected(core.apply(cmd), reason)  # type: ignore[arg-type]
    assert core.state_hash() == before
    assert core.drain_records() == []
    core.check_invariants()


# -- serial ranges ------------------------------------------------------------------------


def test_every_registry_block_in_the_data_is_inclusive_and_normalizes() -> None:
    _, blocks = catalogue_core(PROJECTS, SERIALS)
    for b in blocks:
        assert b.convention == "inclusive"
        rng = serials.normalize(b.start, b.end, b.quantity, RangeConvention.INCLUSIVE)
        assert rng == (b.start, b.end)


def test_half_open_blocks_end_one_past_the_last_serial() -> None:
    assert serials.normalize(11, 21, 10, RangeConvention.HALF_OPEN) == (11, 20)
    assert isinstance(serials.normalize(11, 21, 11, RangeConvention.HALF_OPEN), str)
    assert isinstance(serials.normalize(11, 11, 0, RangeConvention.HALF_OPEN), str)


def test_range_lists_merge_neighbours_and_split_on_removal() -> None:
    ranges: list[tuple[int, int]] = []
    serials.add(ranges, 10, 19)
    serials.add(ranges, 30, 39)
    serials.add(ranges, 20, 29)
    assert ranges == [(10, 39)]
    serials.remove(ranges, 15, 16)
    assert ranges == [(10, 14), (17, 39)]
    assert serials.covers(ranges, 17, 39) and not serials.covers(ranges, 14, 17)
    assert serials.overlaps(ranges, 0, 10) and not serials.overlaps(ranges, 15, 16)
    assert serials.take_front(ranges, 7) == [(10, 14), (17, 18)]
    assert ranges == [(19, 39)]


# -- accounts and cash --------------------------------------------------------------------


def test_opening_an_account_twice_is_rejected(core_blocks: tuple[Core, list]) -> None:
    core, _ = core_blocks
    assert core.apply(OpenAccount(account=9)) == [AccountOpened(9, 0)]
    unchanged(core, OpenAccount(account=9), Reason.ACCOUNT_EXISTS)


def test_cash_deposit_and_withdrawal_are_logged_with_their_reference(
    core_blocks: tuple[Core, list],
) -> None:
    core, _ = core_blocks
    assert core.apply(Deposit(account=1, currency="HKD", amount=500, ref="bank-1", ts=5)) == [
        CashDeposited(1, "HKD", 500, "bank-1", 5)
    ]
    core.apply(Withdraw(account=1, currency="HKD", amount=200, ref="bank-2", ts=6))
    assert core.balances(1)["HKD"] == (300, 0)
    kinds = [r.kind for r in core.drain_records()]
    assert kinds == ["cash_deposit", "cash_withdrawal"]
    core.check_invariants()


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (Deposit(account=77, currency="USD", amount=1), Reason.UNKNOWN_ACCOUNT),
        (Deposit(account=1, currency="EUR", amount=1), Reason.UNKNOWN_CURRENCY),
        (Deposit(account=1, currency="USD", amount=0), Reason.INVALID_AMOUNT),
        (Deposit(account=1, currency="USD", amount=-5), Reason.INVALID_AMOUNT),
        (Withdraw(account=1, currency="USD", amount=1), Reason.INSUFFICIENT_CASH),
        (Withdraw(account=77, currency="USD", amount=1), Reason.UNKNOWN_ACCOUNT),
        (Withdraw(account=1, currency="XXX", amount=1), Reason.UNKNOWN_CURRENCY),
    ],
)
def test_bad_cash_movements_are_rejected_and_change_nothing(
    core_blocks: tuple[Core, list], cmd: object, reason: Reason
) -> None:
    core, _ = core_blocks
    core.drain_records()
    unchanged(core, cmd, reason)


def test_held_cash_cannot_be_withdrawn(core_blocks: tuple[Core, list]) -> None:
    core, _ = core_blocks
    core.apply(Deposit(account=2, currency="USD", amount=100_000))
    buy = NewOrder(
        account=2, client_order_id="b", series="VCS-1340-2020", side=Side.BUY, price=900, qty=100
    )
    core.apply(buy)
    held = FeeSchedule(10, 25).buy_hold(90_000)
    assert core.balances(2)["USD"] == (100_000, held)
    core.drain_records()
    unchanged(
        core,
        Withdraw(account=2, currency="USD", amount=100_000 - held + 1),
        Reason.INSUFFICIENT_CASH,
    )
    core.apply(Withdraw(account=2, currency="USD", amount=100_000 - held))
    core.check_invariants()


# -- credits in and out ---------------------------------------------------------------------


def test_every_real_block_deposits_except_the_registry_rows_that_overlap(
    core_blocks: tuple[Core, list],
) -> None:
    """The sample has registry rows that repeat serials (an issuance and a later transfer of
    the same block): the second of each must be refused, never double-counted."""
    core, blocks = core_blocks
    accepted, overlaps = 0, []
    for i, b in enumerate(blocks):
        ev = core.apply(deposit_block(1 + i % 3, b, ts=i))
        if isinstance(ev[0], CreditsDeposited):
            accepted += 1
        else:
            rejected(ev, Reason.SERIALS_OVERLAP)
            overlaps.append((b.project, b.vintage))
    assert accepted + len(overlaps) == len(blocks) == 77
    assert ("CAR1335", 2025) in overlaps and ("ART130", 2023) in overlaps
    core.check_invariants()
    total = sum(q for a in (1, 2, 3) for q, h in core.credits(a).values())
    assert total == sum(core.ledger.credits_net.values())


def test_a_block_overlapping_any_serial_in_the_system_is_rejected(
    core_blocks: tuple[Core, list],
) -> None:
    core, blocks = core_blocks
    b = blocks[0]  # VCS1340 2020, 941467007..941467431
    core.apply(deposit_block(1, b))
    core.drain_records()
    inner = DepositCredits(
        account=2,
        project=b.project,
        vintage=b.vintage,
        start=b.start + 5,
        end=b.start + 5,
        quantity=1,
    )
    unchanged(core, inner, Reason.SERIALS_OVERLAP)
    # the same serials of another vintage are other credits
    other = DepositCredits(
        account=2,
        project=b.project,
        vintage=b.vintage + 1,
        start=b.start,
        end=b.end,
        quantity=b.quantity,
    )
    assert isinstance(core.apply(other)[0], CreditsDeposited)
    core.check_invariants()


@pytest.mark.parametrize(
    ("start", "end", "quantity", "convention", "reason"),
    [
        (100, 99, 0, RangeConvention.INCLUSIVE, Reason.INVALID_SERIAL_BLOCK),  # end < start
        (100, 199, 99, RangeConvention.INCLUSIVE, Reason.INVALID_SERIAL_BLOCK),  # qty mismatch
        (
            100,
            200,
            101,
            RangeConvention.HALF_OPEN,
            Reason.INVALID_SERIAL_BLOCK,
        ),  # read as inclusive
        (100, 100, 0, RangeConvention.HALF_OPEN, Reason.INVALID_SERIAL_BLOCK),  # empty
        (-5, 10, 16, RangeConvention.INCLUSIVE, Reason.INVALID_SERIAL_BLOCK),
    ],
)
def test_malformed_blocks_are_rejected(
    core_blocks: tuple[Core, list],
    start: int,
    end: int,
    quantity: int,
    convention: RangeConvention,
    reason: Reason,
) -> None:
    core, _ = core_blocks
    core.drain_records()
    cmd = DepositCredits(
        account=1,
        project="VCS1340",
        vintage=2020,
        start=start,
        end=end,
        quantity=quantity,
        convention=convention,
    )
    unchanged(core, cmd, reason)


def test_a_half_open_block_is_stored_inclusive(core_blocks: tuple[Core, list]) -> None:
    core, _ = core_blocks
    ev = core.apply(
        DepositCredits(
            account=1,
            project="CDC-1",
            vintage=2009,
            start=10,
            end=20,
            quantity=10,
            convention=RangeConvention.HALF_OPEN,
        )
    )
    assert isinstance(ev[0], CreditsDeposited)
    assert ev[0].range.first == 10 and ev[0].range.last == 19
    assert core.ledger.accounts[1].credits[("CDC-1", 2009)] == [(10, 19)]


def test_deposits_of_unknown_projects_or_accounts_are_rejected(
    core_blocks: tuple[Core, list],
) -> None:
    core, _ = core_blocks
    core.drain_records()
    unchanged(
        core,
        DepositCredits(account=1, project="VCS999999", vintage=2020, start=1, end=1, quantity=1),
        Reason.UNKNOWN_PROJECT,
    )
    unchanged(
        core,
        DepositCredits(account=42, project="VCS1340", vintage=2020, start=1, end=1, quantity=1),
        Reason.UNKNOWN_ACCOUNT,
    )


def test_withdrawal_takes_exact_serials_and_they_may_come_back(
    core_blocks: tuple[Core, list],
) -> None:
    core, blocks = core_blocks
    b = blocks[0]
    core.apply(deposit_block(1, b))
    out = WithdrawCredits(
        account=1,
        project=b.project,
        vintage=b.vintage,
        start=b.start + 10,
        end=b.start + 19,
        quantity=10,
        ref="registry-transfer-1",
    )
    ev = core.apply(out)
    assert isinstance(ev[0], CreditsWithdrawn) and ev[0].range.qty == 10
    assert core.ledger.accounts[1].credits[(b.project, b.vintage)] == [
        (b.start, b.start + 9),
        (b.start + 20, b.end),
    ]
    back = DepositCredits(
        account=2,
        project=b.project,
        vintage=b.vintage,
        start=b.start + 10,
        end=b.start + 19,
        quantity=10,
    )
    assert isinstance(core.apply(back)[0], CreditsDeposited)
    core.check_invariants()


def test_withdrawing_serials_not_owned_or_held_is_rejected(core_blocks: tuple[Core, list]) -> None:
    core, blocks = core_blocks
    b = blocks[0]
    core.apply(deposit_block(1, b))
    sell = NewOrder(
        account=1,
        client_order_id="s",
        series="VCS-1340-2020",
        side=Side.SELL,
        price=900,
        qty=b.quantity - 5,
    )
    core.apply(sell)
    core.drain_records()
    whole = WithdrawCredits(
        account=1, project=b.project, vintage=b.vintage, start=b.start, end=b.start + 9, quantity=10
    )
    unchanged(core, whole, Reason.CREDITS_HELD)  # only 5 are not held
    other = WithdrawCredits(
        account=2, project=b.project, vintage=b.vintage, start=b.start, end=b.start, quantity=1
    )
    unchanged(core, other, Reason.SERIALS_NOT_HELD)
    five = WithdrawCredits(
        account=1, project=b.project, vintage=b.vintage, start=b.end - 4, end=b.end, quantity=5
    )
    assert isinstance(core.apply(five)[0], CreditsWithdrawn)
    core.check_invariants()


# -- holds --------------------------------------------------------------------------------


def test_an_order_without_its_hold_is_rejected_and_nothing_changes(
    core_blocks: tuple[Core, list],
) -> None:
    core, blocks = core_blocks
    core.apply(deposit_block(1, blocks[0]))  # 425 t
    core.apply(Deposit(account=2, currency="USD", amount=1_000))
    core.drain_records()
    sell = NewOrder(
        account=1, client_order_id="s", series="VCS-1340-2020", side=Side.SELL, price=10, qty=426
    )
    unchanged(core, sell, Reason.INSUFFICIENT_CREDITS)
    # 100 t at 10 = 1000 plus a 0.25% fee of 2: one unit short
    buy = NewOrder(
        account=2, client_order_id="b", series="VCS-1340-2020", side=Side.BUY, price=10, qty=100
    )
    unchanged(core, buy, Reason.INSUFFICIENT_CASH)
    nobody = NewOrder(
        account=99, client_order_id="x", series="VCS-1340-2020", side=Side.BUY, price=1, qty=1
    )
    unchanged(core, nobody, Reason.UNKNOWN_ACCOUNT)
    # the order id was not used up: the next accepted order gets id 1
    ok = NewOrder(
        account=2, client_order_id="b2", series="VCS-1340-2020", side=Side.BUY, price=9, qty=100
    )
    assert core.apply(ok)[0].order_id == 1  # type: ignore[union-attr]


def test_fees_are_basis_points_rounded_down() -> None:
    assert fee(10_000, 25) == 25
    assert fee(399, 25) == 0  # 0.9975 rounds down to 0
    assert fee(401, 25) == 1  # 1.0025 rounds down to 1
    assert fee(1, 10_000) == 1
    s = FeeSchedule(10, 25)
    assert s.buy_hold(1_000) == 1_002
    with pytest.raises(ValueError):
        FeeSchedule(-1, 0)
    # rounding down is sub-additive, so a hold for the whole covers any split into fills
    for a in range(0, 2_000, 7):
        for b in range(0, 2_000, 13):
            assert fee(a, 25) + fee(b, 25) <= fee(a + b, 25)
