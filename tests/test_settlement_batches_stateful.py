"""Property test: many registry batches that share serial numbers, traded, retired and
withdrawn at random; every serial is in exactly one place, per identity (issue 11).

A reference model keeps one entry per serial identity (its registry scope: the CAR batch, or
all of Verra, whatever the project; or the project and vintage for batch-less serials; and
the number; a batch-less number also collides with the same number of any batch of its
project and vintage, and the other way round): who owns it, or
that it is retired. Numbers are drawn from 1..40 in every batch, so any mix-up of batches in
the ledger (a delivery, retirement or withdrawal of the wrong batch's serial 7) shows as a
difference from the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.commands import Cancel, NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected
from settlement.commands import Deposit, DepositCredits, Retire, WithdrawCredits
from settlement.core import Core
from settlement.events import CreditsDeposited, CreditsWithdrawn, RetirementCertificate, Settled
from settlement.log import verify
from settlement.serials import SerialRange
from tests.settlement_builders import catalogue_core

DATA = Path(__file__).resolve().parent.parent / "data"
ACCOUNTS = (1, 2, 3)
KEYS = (("CAR1335", 2025), ("CAR1568", 2025), ("VCS1340", 2020), ("VCS4268", 2024))
SERIES = {
    ("CAR1335", 2025): "CAR-1335-2025",
    ("CAR1568", 2025): "CAR-1568-2025",
    ("VCS1340", 2020): "VCS-1340-2020",
    ("VCS4268", 2024): "VCS-4268-2024",
}
BATCHES = {  # CAR: numbers unique per batch; Verra: across the registry, batches and projects
    ("CAR1335", 2025): ["", *(f"CAR-1-US-1335-31-983-KS-2025-{n}-*" for n in (9205, 9659, 1, 2))],
    ("CAR1568", 2025): ["", *(f"CAR-1-MX-1568-42-1130-QR-2025-{n}-*" for n in (9680, 7))],
    ("VCS1340", 2020): [
        "",
        "19385-*-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1",
        "19386-*-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-0",
    ],
    ("VCS4268", 2024): ["19334-*-VCS-VCU-576-VER-US-14-4268-01062024-31122024-1"],
}
RETIRED = 0

Where = dict[tuple[str, int], tuple[int, tuple[str, int, str]]]  # (scope, n) -> owner, what

keys = st.sampled_from(KEYS)
accounts = st.sampled_from(ACCOUNTS)
numbers = st.integers(1, 40)


def scope(project: str, vintage: int, batch: str) -> str:
    """The model's own statement of each registry's rule (not the ledger's code)."""
    if not batch:
        return f"{project}/{vintage}"
    return "VERRA" if batch[0].isdigit() else batch


class Batches(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.core: Core = catalogue_core(
            (DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text(), ACCOUNTS
        )[0]
        self.records: list[Any] = []
        self.where: Where = {}
        self.ts = 0
        for a in ACCOUNTS:
            self.apply(Deposit(account=a, currency="USD", amount=10**9))

    def apply(self, cmd: Any) -> list[Any]:
        self.ts += 1
        fields = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        events = self.core.apply(cmd.__class__(**{**fields, "ts": self.ts}))
        self.records += self.core.drain_records()
        return events

    def holders(self, key: tuple[str, int], batch: str, n: int) -> list[int]:
        """Every owner (RETIRED for a retired serial) of a serial that number n of this batch
        would collide with: the same number in its registry scope, and, across a key's
        batch-less and batched serials, the same number on the other side (a batch-less 7
        may be any batch's 7). A block may collide with several at once, a held one and a
        retired one, and the ledger may name either."""
        same = self.where.get((scope(*key, batch), n))
        found = [] if same is None else [same[0]]
        for (_, number), (owner, what) in self.where.items():
            if number == n and what[:2] == key and bool(what[2]) != bool(batch):
                found.append(owner)
        return found

    def _owned_by(self, account: int, r: SerialRange) -> bool:
        what = (r.project, r.vintage, r.batch)
        return all(
            self.where.get((scope(*what), n)) == (account, what) for n in range(r.first, r.last + 1)
        )

    def _move(self, r: SerialRange, to: int | None) -> None:
        what = (r.project, r.vintage, r.batch)
        for n in range(r.first, r.last + 1):
            if to is None:
                del self.where[(scope(*what), n)]
            else:
                self.where[(scope(*what), n)] = (to, what)

    # -- rules -----------------------------------------------------------------------------

    @rule(account=accounts, key=keys, b=st.integers(0, 4), first=numbers, n=st.integers(1, 12))
    def deposit(self, account: int, key: tuple[str, int], b: int, first: int, n: int) -> None:
        batch = BATCHES[key][b % len(BATCHES[key])]
        last = first + n - 1
        events = self.apply(
            DepositCredits(
                account=account,
                project=key[0],
                vintage=key[1],
                start=first,
                end=last,
                quantity=n,
                batch=batch,
            )
        )
        taken = [o for i in range(first, last + 1) for o in self.holders(key, batch, i)]
        if taken:
            assert isinstance(events[-1], Rejected), events
            retired = RETIRED in taken
            assert events[-1].reason in (Reason.SERIALS_OVERLAP, Reason.SERIALS_RETIRED)
            assert retired or events[-1].reason is Reason.SERIALS_OVERLAP
        else:
            assert isinstance(events[-1], CreditsDeposited), events
            self._move(events[-1].range, account)

    @rule(seller=accounts, buyer=accounts, key=keys, qty=st.integers(1, 30))
    def trade(self, seller: int, buyer: int, key: tuple[str, int], qty: int) -> None:
        if seller == buyer:
            return
        series = SERIES[key]
        cid = f"s{self.ts}"
        sell = self.apply(
            NewOrder(
                account=seller,
                client_order_id=cid,
                series=series,
                side=Side.SELL,
                type=OrderType.LIMIT,
                price=100,
                qty=qty,
                tif=TimeInForce.GTC,
            )
        )
        if isinstance(sell[-1], Rejected):
            assert sell[-1].reason is Reason.INSUFFICIENT_CREDITS
            return
        events = self.apply(
            NewOrder(
                account=buyer,
                client_order_id=f"b{self.ts}",
                series=series,
                side=Side.BUY,
                type=OrderType.LIMIT,
                price=100,
                qty=qty,
                tif=TimeInForce.IOC,
            )
        )
        delivered = 0
        for e in events:
            if isinstance(e, Settled):
                for r in e.ranges:
                    assert self._owned_by(seller, r), (r, "was not the seller's")
                    self._move(r, buyer)
                delivered += e.qty
        assert delivered == qty  # the buyer has ample cash and the seller's ask is the book's
        for oid in list(self.core.exchange.open_orders):  # nothing rests between rules
            o = self.core.exchange.open_orders[oid]
            self.apply(Cancel(account=o.account, series=o.series, order_id=oid))

    @rule(account=accounts, key=keys, qty=st.integers(1, 20))
    def retire_quantity(self, account: int, key: tuple[str, int], qty: int) -> None:
        events = self.apply(Retire(account=account, beneficiary="b", series=SERIES[key], qty=qty))
        certs = [e for e in events if isinstance(e, RetirementCertificate)]
        owned = sum(1 for o, what in self.where.values() if o == account and what[:2] == key)
        assert bool(certs) == (qty <= owned)
        for c in certs:
            for r in c.ranges:
                assert self._owned_by(account, r)
                self._move(r, RETIRED)

    @rule(account=accounts, key=keys, b=st.integers(0, 4), first=numbers, n=st.integers(1, 8))
    def retire_or_withdraw_range(
        self, account: int, key: tuple[str, int], b: int, first: int, n: int
    ) -> None:
        batch = BATCHES[key][b % len(BATCHES[key])]
        r = SerialRange(*key, first, first + n - 1, batch)
        ok = self._owned_by(account, r)
        if n % 2:
            events = self.apply(Retire(account=account, beneficiary="b", ranges=(r,)))
            assert isinstance(events[-1], RetirementCertificate) == ok, (r, events)
            if ok:
                assert events[-1].ranges == (r,)
                self._move(r, RETIRED)
        else:
            events = self.apply(
                WithdrawCredits(
                    account=account,
                    project=key[0],
                    vintage=key[1],
                    start=r.first,
                    end=r.last,
                    quantity=n,
                    batch=batch,
                )
            )
            assert isinstance(events[-1], CreditsWithdrawn) == ok, (r, events)
            if ok:
                self._move(r, None)

    @rule()
    def snapshot_and_restore(self) -> None:
        """Batches and the scope indexes rebuilt from them survive a snapshot."""
        restored = Core.restore(self.core.snapshot())
        assert restored.state_hash() == self.core.state_hash()
        ledger = restored.ledger
        assert (ledger.scoped, ledger.scoped_retired) == self.core.ledger.scopes()
        self.core = restored

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_serial_is_where_the_model_says(self) -> None:
        ledger = self.core.ledger
        ledger.check_invariants()
        seen: Where = {}
        for account in ACCOUNTS:
            for key in ledger.accounts[account].credits:
                for r in ledger.holding(account, key):
                    for n in range(r.first, r.last + 1):
                        what = (r.project, r.vintage, r.batch)
                        assert (scope(*what), n) not in seen, "a serial in two places"
                        seen[(scope(*what), n)] = (account, what)
        for key, ranges in ledger.retired.items():
            for a, b in ranges:
                r = ledger.serial_range(key, a, b)
                for n in range(r.first, r.last + 1):
                    what = (r.project, r.vintage, r.batch)
                    assert (scope(*what), n) not in seen, "a retired serial still held"
                    seen[(scope(*what), n)] = (RETIRED, what)
        assert seen == self.where

    def teardown(self) -> None:
        if hasattr(self, "records"):
            verdict = verify(self.records)
            assert verdict.ok, verdict.error


TestBatches = Batches.TestCase
TestBatches.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_a_block_colliding_with_a_retired_and_a_held_serial_may_be_refused_for_either() -> None:
    """Found by CI: Verra serial 1 of one batch collides with VCS4268's held serial 1 (one
    Verra-wide scope) and with VCS1340's retired batch-less serial 1 at once; the ledger
    names the retired one, and the model must know both collisions."""
    machine = Batches()
    machine.setup()
    machine.deposit(account=3, key=("VCS1340", 2020), b=0, first=1, n=1)
    machine.retire_quantity(account=3, key=("VCS1340", 2020), qty=1)
    machine.deposit(account=1, key=("VCS4268", 2024), b=0, first=1, n=1)
    machine.deposit(account=1, key=("VCS1340", 2020), b=1, first=1, n=1)
    machine.every_serial_is_where_the_model_says()
    machine.teardown()
