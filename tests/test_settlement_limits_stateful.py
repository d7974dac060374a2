"""Property test of the core's amount limits: the whole-core machine of
test_settlement_stateful (orders, fills with fees, amends, cancels, withdrawals,
retirements, snapshots) run with tight custody limits, plus rules that drive deposits,
orders, withdrawals and retirements at, just past and far past the limits.

After every step: a command answered by a rejection alone changed nothing (the state hash
is the one before it), and every balance, hold, fee total and custody total is within its
limit."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from engine.book import MAX_PRICE
from engine.commands import NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected
from settlement.commands import Deposit, DepositCredits, Retire, Withdraw
from settlement.limits import AMOUNT_MAX
from tests.test_settlement_stateful import ACCOUNTS, SERIES, CoreMachine

CASH_TOTAL_MAX = 1_000_000  # the setup deposits 800,000 USD
CREDITS_TOTAL_MAX = 400  # the setup deposits 335 t
FRESH_SERIALS = 10**12  # far above the catalogue's serials: fresh blocks never overlap
BIG = [AMOUNT_MAX, AMOUNT_MAX + 1, 2**62, 2**63, 2**64, 2**70]

accounts = st.sampled_from(ACCOUNTS)
near = st.one_of(st.integers(-3, 3), st.sampled_from([-1000, 1000, *BIG]))


class LimitsMachine(CoreMachine):
    CONFIG = {
        "maker_fee_bps": 10,
        "taker_fee_bps": 25,
        "cash_total_max": CASH_TOTAL_MAX,
        "credits_total_max": CREDITS_TOTAL_MAX,
    }

    def apply(self, cmd: Any) -> list[Any]:
        before = self.core.state_hash()
        events = super().apply(cmd)
        if len(events) == 1 and isinstance(events[0], Rejected):
            assert self.core.state_hash() == before, f"a rejection changed the state: {events}"
        return events

    # -- rules at the limits ---------------------------------------------------------------

    @rule(account=accounts, delta=near)
    def deposit_cash_at_the_limit(self, account: int, delta: int) -> None:
        amount = CASH_TOTAL_MAX - self.core.ledger.cash_net["USD"] + delta
        events = self.apply(Deposit(account=account, currency="USD", amount=amount))
        if amount > 0 and delta > 0:
            assert events[-1].reason is Reason.LIMIT_EXCEEDED, events
        elif amount > 0:
            assert not isinstance(events[-1], Rejected), events

    @rule(account=accounts, delta=near)
    def deposit_credits_at_the_limit(self, account: int, delta: int) -> None:
        qty = CREDITS_TOTAL_MAX - sum(self.core.ledger.credits_net.values()) + delta
        start = FRESH_SERIALS + 10**6 * self.ts
        events = self.apply(
            DepositCredits(
                account=account,
                project="VCS1974",
                vintage=2022,
                start=start,
                end=start + qty - 1,
                quantity=qty,
            )
        )
        if qty > 0 and delta > 0:
            expected = Reason.INVALID_SERIAL_BLOCK if start + qty - 1 > AMOUNT_MAX else None
            assert events[-1].reason in (Reason.LIMIT_EXCEEDED, expected), events
        elif qty > 0:
            assert not isinstance(events[-1], Rejected), events

    @rule(account=accounts, amount=st.sampled_from(BIG), out=st.booleans())
    def move_far_too_much_cash(self, account: int, amount: int, out: bool) -> None:
        kind = Withdraw if out else Deposit
        events = self.apply(kind(account=account, currency="USD", amount=amount))
        assert isinstance(events[-1], Rejected), events

    @rule(
        account=accounts,
        series=st.sampled_from(SERIES),
        side=st.sampled_from(Side),
        price=st.sampled_from([MAX_PRICE, MAX_PRICE // 1000, 10**6, 99]),
        qty=st.sampled_from([1, 1_000, 1_000_000]),
        market=st.booleans(),
    )
    def order_of_a_huge_notional(
        self, account: int, series: str, side: Side, price: int, qty: int, market: bool
    ) -> None:
        kw: dict[str, Any] = {"tif": TimeInForce.IOC}
        if market:
            kw.update(type=OrderType.MARKET, max_notional=price * qty)
        events = self.apply(
            NewOrder(
                account=account,
                client_order_id=f"h{self.ts}",
                series=series,
                side=side,
                price=price,
                qty=qty,
                **kw,
            )
        )
        if side is Side.BUY and price * qty > CASH_TOTAL_MAX:
            assert events[-1].reason is Reason.INSUFFICIENT_CASH, events

    @rule(account=accounts, series=st.sampled_from(SERIES), qty=st.sampled_from(BIG))
    def retire_far_too_much(self, account: int, series: str, qty: int) -> None:
        events = self.apply(
            Retire(
                account=account,
                beneficiary="b",
                series=series,
                qty=qty,
                period_start="2025-01-01",
                period_end="2025-12-31",
            )
        )
        assert events[-1].reason is Reason.INSUFFICIENT_CREDITS, events

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def every_amount_and_total_is_within_its_limit(self) -> None:
        ledger = self.core.ledger
        assert 0 <= ledger.cash_net["USD"] <= CASH_TOTAL_MAX
        for acct in ledger.accounts.values():  # the fee account's total among them
            assert 0 <= acct.cash["USD"] <= CASH_TOTAL_MAX
            assert 0 <= acct.cash_held["USD"] <= CASH_TOTAL_MAX
        for hold in ledger.cash_holds.values():
            assert 0 < hold.amount <= CASH_TOTAL_MAX
        assert 0 <= sum(ledger.credits_net.values()) <= CREDITS_TOTAL_MAX
        for hold in ledger.credit_holds.values():
            assert 0 < hold.qty <= CREDITS_TOTAL_MAX
        assert ledger.over_limit() is None


LimitsMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLimitsMachine = LimitsMachine.TestCase
