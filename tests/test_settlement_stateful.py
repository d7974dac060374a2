"""Property test of the whole core: random orders, amends, cancels, deposits, withdrawals
and retirements, with the ledger's invariants checked after every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.commands import Amend, Cancel, NewOrder, OrderType, Side, TimeInForce
from engine.events import Rejected, Trade
from engine.reference import Mitigation, Series
from settlement import serials
from settlement.commands import (
    Deposit,
    DepositCredits,
    ListSeries,
    Retire,
    Withdraw,
    WithdrawCredits,
)
from settlement.core import Core
from settlement.events import (
    CashDeposited,
    CashWithdrawn,
    CreditsDeposited,
    CreditsWithdrawn,
    RetirementCertificate,
    Settled,
)
from settlement.log import verify
from settlement.serials import SerialRange
from tests.settlement_builders import catalogue_core

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()
ACCOUNTS = (1, 2, 3, 4)
GENERIC = Series(
    id="VCS-AVOIDANCE-2022", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2022
)
SERIES = ("VCS-1974-2022", "VCS-3739-2022", GENERIC.id)
# small real blocks (VCS1974 2022: 175 t, VCS3739 2022 split up) so holds run short
BLOCKS = [  # four slices each of VCS1974 2022 (175 t) and a 160 t part of VCS3739 2022
    *[
        ("VCS1974", 2022, 935772476 + 44 * i, min(935772650, 935772476 + 44 * i + 43))
        for i in range(4)
    ],
    *[("VCS3739", 2022, 938136116 + 40 * i, 938136116 + 40 * i + 39) for i in range(4)],
]

accounts = st.sampled_from(ACCOUNTS)


class CoreMachine(RuleBasedStateMachine):
    CONFIG: dict[str, int] = {"maker_fee_bps": 10, "taker_fee_bps": 25}  # the Core's arguments

    @initialize()
    def setup(self) -> None:
        self.core: Core = catalogue_core(PROJECTS, SERIALS, accounts=ACCOUNTS, **self.CONFIG)[0]
        self.ts = 1
        self.commands: list[Any] = []
        self.records: list[Any] = []
        self.cash_net = 0
        self.credits_net = 0
        self.retired: list[SerialRange] = []
        self.apply(ListSeries(series=GENERIC))
        for i, (p, v, a, b) in enumerate(BLOCKS):
            self.apply(
                DepositCredits(
                    account=1 + i % 4, project=p, vintage=v, start=a, end=b, quantity=b - a + 1
                )
            )
        for acct in ACCOUNTS:
            self.apply(Deposit(account=acct, currency="USD", amount=200_000))

    # -- plumbing ------------------------------------------------------------------------

    def owned(self) -> dict[int, tuple[int, dict[tuple[str, int], list[tuple[int, int]]]]]:
        return {
            a: (acct.cash["USD"], {k: list(r) for k, r in acct.credits.items()})
            for a, acct in self.core.ledger.accounts.items()
        }

    def apply(self, cmd: Any) -> list[Any]:
        self.ts += 1
        cmd = cmd.__class__(
            **{**{f: getattr(cmd, f) for f in cmd.__struct_fields__}, "ts": self.ts}
        )
        before = self.owned()
        self.commands.append(cmd)
        events = self.core.apply(cmd)
        self.records += self.core.drain_records()
        after = self.owned()
        # each fill's two legs: cash and serials moved exactly as the Settled events say
        cash_delta = {a: 0 for a in after}
        got: dict[int, list[SerialRange]] = {}
        for e in events:
            if isinstance(e, Settled):
                n = e.price * e.qty
                cash_delta[e.buyer] -= n + e.buyer_fee
                cash_delta[e.seller] += n - e.seller_fee
                cash_delta[e.fee_account] += e.buyer_fee + e.seller_fee
                got.setdefault(e.buyer, []).extend(e.ranges)
                assert sum(r.qty for r in e.ranges) == e.qty
            elif isinstance(e, CashDeposited):
                cash_delta[e.account] += e.amount
                self.cash_net += e.amount
            elif isinstance(e, CashWithdrawn):
                cash_delta[e.account] -= e.amount
                self.cash_net -= e.amount
            elif isinstance(e, CreditsDeposited):
                self.credits_net += e.range.qty
            elif isinstance(e, CreditsWithdrawn):
                self.credits_net -= e.range.qty
            elif isinstance(e, RetirementCertificate):
                self.credits_net -= e.qty
                self.retired.extend(e.ranges)
        for a in after:
            assert after[a][0] - before.get(a, (0, {}))[0] == cash_delta[a], f"cash of {a}"
        for buyer, ranges in got.items():
            for r in ranges:
                assert serials.covers(after[buyer][1][(r.project, r.vintage)], r.first, r.last)
        trades = sum(1 for e in events if isinstance(e, Trade))
        assert trades == sum(1 for e in events if isinstance(e, Settled)), "every trade settled"
        if trades:
            event("fills settled")
        if any(isinstance(e, RetirementCertificate) for e in events):
            event("retired")
        if any(isinstance(e, Rejected) for e in events):
            event(f"rejected {next(e for e in events if isinstance(e, Rejected)).reason.value}")
        return events

    def open_orders(self) -> list[Any]:
        return sorted(self.core.exchange.open_orders.values(), key=lambda o: o.order_id)

    # -- rules ---------------------------------------------------------------------------

    @rule(
        account=accounts,
        series=st.sampled_from(SERIES),
        side=st.sampled_from(Side),
        price=st.integers(95, 105),
        qty=st.integers(1, 80),
        kind=st.sampled_from(["gtc", "ioc", "gtd", "market"]),
    )
    def new_order(
        self, account: int, series: str, side: Side, price: int, qty: int, kind: str
    ) -> None:
        kw: dict[str, Any] = {}
        if kind == "ioc":
            kw["tif"] = TimeInForce.IOC
        elif kind == "gtd":
            kw.update(tif=TimeInForce.GTD, expire_ts=self.ts + 5)
        elif kind == "market":
            kw.update(type=OrderType.MARKET, tif=TimeInForce.IOC, max_notional=price * qty)
        self.apply(
            NewOrder(
                account=account,
                client_order_id=f"c{self.ts}",
                series=series,
                side=side,
                price=price,
                qty=qty,
                **kw,
            )
        )

    @rule(
        seller=accounts,
        buyer=accounts,
        series=st.sampled_from(SERIES),
        price=st.integers(95, 105),
        qty=st.integers(1, 40),
        improve=st.integers(0, 3),
        buyer_rests=st.booleans(),
    )
    def crossing_pair(
        self,
        seller: int,
        buyer: int,
        series: str,
        price: int,
        qty: int,
        improve: int,
        buyer_rests: bool,
    ) -> None:
        """A resting order and an incoming one that crosses it by `improve` ticks."""
        sell = NewOrder(
            account=seller,
            client_order_id=f"s{self.ts}",
            series=series,
            side=Side.SELL,
            price=price,
            qty=qty,
        )
        buy = NewOrder(
            account=buyer,
            client_order_id=f"b{self.ts}",
            series=series,
            side=Side.BUY,
            price=price + improve,
            qty=qty + improve,
        )
        for cmd in (buy, sell) if buyer_rests else (sell, buy):
            self.apply(cmd)

    @precondition(lambda self: self.core.exchange.open_orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        o = data.draw(st.sampled_from(self.open_orders()))
        self.apply(Cancel(account=o.account, order_id=o.order_id))

    @precondition(lambda self: self.core.exchange.open_orders)
    @rule(data=st.data(), price=st.integers(0, 110), qty=st.integers(0, 120))
    def amend(self, data: st.DataObject, price: int, qty: int) -> None:
        o = data.draw(st.sampled_from(self.open_orders()))
        self.apply(Amend(account=o.account, order_id=o.order_id, price=price, qty=qty))

    @rule(account=accounts, amount=st.integers(1, 100_000), out=st.booleans())
    def move_cash(self, account: int, amount: int, out: bool) -> None:
        kind = Withdraw if out else Deposit
        self.apply(kind(account=account, currency="USD", amount=amount))

    @rule(account=accounts, series=st.sampled_from(SERIES), qty=st.integers(1, 60))
    def retire_quantity(self, account: int, series: str, qty: int) -> None:
        self.apply(
            Retire(
                account=account,
                beneficiary="b",
                series=series,
                qty=qty,
                period_start="2025-01-01",
                period_end="2025-12-31",
            )
        )

    @rule(account=accounts, data=st.data(), retire=st.booleans())
    def retire_or_withdraw_exact_serials(
        self, account: int, data: st.DataObject, retire: bool
    ) -> None:
        acct = self.core.ledger.accounts[account]
        pieces = [(k, r) for k, rs in sorted(acct.credits.items()) for r in rs]
        if self.retired and data.draw(st.booleans()):
            r = data.draw(st.sampled_from(self.retired))  # an attempt on retired serials
            key, (a, b) = (r.project, r.vintage), (r.first, r.last)
        elif pieces:
            key, (a, b) = data.draw(st.sampled_from(pieces))
        else:
            return
        first = data.draw(st.integers(a, b))
        last = data.draw(st.integers(first, min(b, first + 30)))
        if retire:
            cmd: Any = Retire(
                account=account,
                beneficiary="b",
                ranges=(SerialRange(key[0], key[1], first, last),),
                period_start="2025-01-01",
                period_end="2025-12-31",
            )
        else:
            cmd = WithdrawCredits(
                account=account,
                project=key[0],
                vintage=key[1],
                start=first,
                end=last,
                quantity=last - first + 1,
            )
        was_retired = any(
            (r.project, r.vintage) == key and r.first <= last and first <= r.last
            for r in self.retired
        )
        events = self.apply(cmd)
        if was_retired:
            assert isinstance(events[-1], Rejected), "retired serials never move"

    @rule(data=st.data(), account=accounts)
    def redeposit_known_serials(self, data: st.DataObject, account: int) -> None:
        known = [(k, r) for k, rs in sorted(self.core.ledger.known.items()) for r in rs]
        key, (a, b) = data.draw(st.sampled_from(known))
        first = data.draw(st.integers(a, b))
        events = self.apply(
            DepositCredits(
                account=account, project=key[0], vintage=key[1], start=first, end=first, quantity=1
            )
        )
        assert isinstance(events[-1], Rejected), "deposits never overlap known serials"

    @rule()
    def snapshot_and_restore(self) -> None:
        """The durability engineer's path: the restored core carries on identically."""
        restored = Core.restore(self.core.snapshot())
        assert restored.state_hash() == self.core.state_hash()
        self.core = restored

    def teardown(self) -> None:
        if not hasattr(self, "core"):
            return
        replayed = catalogue_core(PROJECTS, SERIALS, accounts=ACCOUNTS, **self.CONFIG)[0]
        for cmd in self.commands:
            replayed.apply(cmd)
        assert replayed.state_hash() == self.core.state_hash(), "replay reproduces the state"

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def ledger_invariants_hold(self) -> None:
        self.core.check_invariants()

    @invariant()
    def cash_and_credits_are_conserved(self) -> None:
        ledger = self.core.ledger
        assert sum(a.cash["USD"] for a in ledger.accounts.values()) == self.cash_net
        owned = sum(serials.total(r) for a in ledger.accounts.values() for r in a.credits.values())
        assert owned == self.credits_net
        for a in ledger.accounts.values():
            for c in a.cash:
                assert 0 <= a.cash_held[c] <= a.cash[c]
            for k in a.credit_qty:
                assert a.credit_qty[k] >= 0 and a.credits_held.get(k, 0) >= 0

    @invariant()
    def retired_serials_stay_retired_and_owned_by_no_one(self) -> None:
        ledger = self.core.ledger
        for r in self.retired:
            key = (r.project, r.vintage)
            assert serials.covers(ledger.retired[key], r.first, r.last)
            for a in ledger.accounts.values():
                assert not serials.overlaps(a.credits.get(key, []), r.first, r.last)

    @invariant()
    def the_log_verifies(self) -> None:
        v = verify(self.records, head=self.core.ledger.log.head_hash)
        assert v.ok, v.summary()


CoreMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCoreMachine = CoreMachine.TestCase
