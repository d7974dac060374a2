"""Property test: a standardized contract under random registry events, against a reference
model of eligibility written without the catalogue's code (issue 13).

Four real projects with one vintage each trade in their own books and in one contract.
The registry, at random, grants and withdraws labels (now, later, or retroactively),
suspends and reinstates projects, and versions the contract's rule (now or later); time
moves on in small steps and across new years (one rule has a rolling vintage window).

The model keeps each project's labels, the suspensions, the rule versions and the changes
still waiting, and judges each rule with a plain Python predicate. After every step:
- the contract's eligible keys are exactly the deposited keys the model admits;
- every resting sell holds only credits its series admits, and every order the venue
  cancelled (`ineligible`, `suspended`) had held credits the model no longer admits;
- a suspended project's book is halted and empty, and no account's holding of it moved.
At the end `tonne log verify`'s check passes, and the journal codec's copy of every command
replays into a fresh core to the same state hash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.commands import AdvanceTime, NewOrder, OrderType, Side, TimeInForce
from engine.events import Cancelled, CancelReason, Rejected
from engine.reference import Series
from settlement.catalogue import year_of, year_start_ts
from settlement.commands import (
    AddRuleVersion,
    CancelCredits,
    ChangeLabel,
    Deposit,
    DepositCredits,
    ListContract,
    ReinstateProject,
    Retire,
    SuspendProject,
    decode_command,
    encode_command,
)
from settlement.core import Core
from settlement.events import CreditsCancelled
from settlement.log import verify
from tests.settlement_builders import catalogue_core

DATA = Path(__file__).resolve().parent.parent / "data"
ACCOUNTS = (1, 2, 3)
# project -> (vintage, country, base labels, the first serial of its first block, its batch)
PROJECTS = {
    "ACR802": (2022, "US", {"CCP"}, 5741, "ACR-US-802-2022-3027-*"),
    "CAR1568": (2025, "MX", {"CCP"}, 1, "CAR-1-MX-1568-42-1130-QR-2025-9680-*"),
    "VCS2319": (2021, "CG", set(), 0, ""),
    "VCS960": (2019, "UY", {"CCB"}, 0, ""),
}
CONTRACT = "TONNE-REMOVAL"
Judge = Callable[[str, int, set[str], int], bool]  # project, vintage, labels, year
RULES: list[tuple[str, Judge]] = [
    ("label CCP", lambda p, v, ls, y: "CCP" in ls),
    ("label CCP or label CCB", lambda p, v, ls, y: bool(ls & {"CCP", "CCB"})),
    (
        "country in (US, MX) and not label CCB",
        lambda p, v, ls, y: PROJECTS[p][1] in {"US", "MX"} and "CCB" not in ls,
    ),
    ("vintage >= year - 5", lambda p, v, ls, y: v >= y - 5),
]
START = year_start_ts(2026)
YEAR_NS = year_start_ts(2027) - year_start_ts(2026)
VENUE = (CancelReason.INELIGIBLE, CancelReason.SUSPENDED)


def _series_of(project: str) -> str:
    vintage = PROJECTS[project][0]
    standard = project[:3] if project[:3] in ("ACR", "CAR", "VCS") else project
    return f"{standard}-{project[3:]}-{vintage}"


class Catalogue(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.core: Core = catalogue_core(
            (DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text(), ACCOUNTS
        )[0]
        self.serials = {p: (PROJECTS[p][3] or 1) for p in PROJECTS}
        self.cmds: list[Any] = []
        self.records: list[Any] = []
        self.ts = START
        self.labels = {p: set(PROJECTS[p][2]) for p in PROJECTS}
        self.label_keys: dict[tuple[str, str], tuple[int, int]] = {}  # (effective, seq)
        self.suspended: dict[str, dict[int, int]] = {}  # project -> account -> frozen qty
        self.versions: list[tuple[int, int]] = [(0, START)]  # (rule index, effective)
        self.waiting: list[tuple[int, int, Any]] = []  # (effective, seq, change)
        self.seq = 0
        self.deposited: set[str] = set()
        self.holds_before: dict[int, list[tuple[str, int]]] = {}
        for a in ACCOUNTS:
            self.apply(Deposit(account=a, currency="USD", amount=10**10))
        self.apply(ListContract(series=Series(id=CONTRACT, currency="USD"), rule=RULES[0][0]))
        for project in sorted(PROJECTS):  # every seller starts with credits of every project
            for account in ACCOUNTS[:2]:
                self.deposit(project, account, 40)

    def apply(self, cmd: Any, ts: int | None = None) -> list[Any]:
        self.ts = max(self.ts + 1, ts or 0)
        cmd = type(cmd)(**{**{f: getattr(cmd, f) for f in cmd.__struct_fields__}, "ts": self.ts})
        self.model_advance()
        holds = self.core.ledger.credit_holds
        self.holds_before = {o: [k for k, n in h.parts if n] for o, h in holds.items()}
        events = self.core.apply(cmd)
        self.cmds.append(cmd)
        self.records += self.core.drain_records()
        self.check_venue_cancels(events)
        return events

    # -- the model --------------------------------------------------------------------------

    def model_advance(self) -> None:
        """Apply the changes effective by now, in (effective, order of arrival)."""
        for change in sorted(c for c in self.waiting if c[0] <= self.ts):
            self.waiting.remove(change)
            kind, *args = change[2]
            if kind == "label":
                project, label, present, effective, seq = args
                if (effective, seq) > self.label_keys.get((project, label), (-1, 0)):
                    self.label_keys[project, label] = (effective, seq)
                    labels = self.labels[project]
                    (labels.add if present else labels.discard)(label)
            else:
                self.versions.append((args[0], change[0]))

    def governing(self) -> Judge:
        return RULES[self.versions[-1][0]][1]

    def admitted(self, project: str) -> bool:
        if project in self.suspended:
            return False
        vintage = PROJECTS[project][0]
        return self.governing()(project, vintage, self.labels[project], year_of(self.ts))

    def check_venue_cancels(self, events: list[Any]) -> None:
        """Every order the venue cancelled had to go: in a project's book, because the
        project was suspended; in the contract, because its credits lost eligibility."""
        for e in events:
            if isinstance(e, Cancelled) and e.reason in VENUE:
                if e.series != CONTRACT:
                    assert e.reason is CancelReason.SUSPENDED
                    assert e.series in {_series_of(p) for p in self.suspended}, e
                    continue
                held = self.holds_before.get(e.order_id)
                assert held is not None, "a venue cancel of an order that held nothing"
                assert any(not self.admitted(p) for p, _ in held), (e, held)

    # -- rules -----------------------------------------------------------------------------

    @rule(
        project=st.sampled_from(sorted(PROJECTS)),
        account=st.sampled_from(ACCOUNTS),
        n=st.integers(1, 30),
    )
    def deposit(self, project: str, account: int, n: int) -> None:
        vintage, _, _, _, batch = PROJECTS[project]
        first = self.serials[project]
        events = self.apply(
            DepositCredits(
                account=account,
                project=project,
                vintage=vintage,
                start=first,
                end=first + n - 1,
                quantity=n,
                batch=batch,
            )
        )
        if project in self.suspended:
            assert isinstance(events[-1], Rejected)
            return
        assert not isinstance(events[-1], Rejected), events
        self.serials[project] += n
        self.deposited.add(project)

    @rule(
        project=st.sampled_from(sorted(PROJECTS)),
        account=st.sampled_from(ACCOUNTS),
        back=st.integers(1, 60),
    )
    def reversal(self, project: str, account: int, back: int) -> None:
        """The registry cancels one serial (if the account holds it free): a reversal may
        take frozen credits, the one way a suspended project's holding may shrink."""
        vintage, _, _, _, batch = PROJECTS[project]
        serial = self.serials[project] - back
        events = self.apply(
            CancelCredits(
                account=account,
                project=project,
                vintage=vintage,
                start=serial,
                end=serial,
                quantity=1,
                batch=batch,
            )
        )
        if isinstance(events[-1], CreditsCancelled) and project in self.suspended:
            self.suspended[project][account] -= 1

    @rule(
        account=st.sampled_from(ACCOUNTS),
        contract=st.booleans(),
        project=st.sampled_from(sorted(PROJECTS)),
        qty=st.integers(1, 20),
        buy=st.booleans(),
        price=st.integers(95, 105),
    )
    def order(
        self, account: int, contract: bool, project: str, qty: int, buy: bool, price: int
    ) -> None:
        self.apply(
            NewOrder(
                account=account,
                client_order_id=f"o{self.ts}",
                series=CONTRACT if contract else _series_of(project),
                side=Side.BUY if buy else Side.SELL,
                type=OrderType.LIMIT,
                price=price,
                qty=qty,
                tif=TimeInForce.GTC,
            )
        )

    @rule(account=st.sampled_from(ACCOUNTS[:2]), qty=st.integers(1, 15))
    def offer_into_the_contract(self, account: int, qty: int) -> None:
        self.apply(
            NewOrder(
                account=account,
                client_order_id=f"o{self.ts}",
                series=CONTRACT,
                side=Side.SELL,
                type=OrderType.LIMIT,
                price=110,
                qty=qty,
                tif=TimeInForce.GTC,
            )
        )

    @rule(account=st.sampled_from(ACCOUNTS), qty=st.integers(1, 10))
    def retire(self, account: int, qty: int) -> None:
        self.apply(Retire(account=account, beneficiary="b", series=CONTRACT, qty=qty))

    @rule(
        project=st.sampled_from(sorted(PROJECTS)),
        label=st.sampled_from(["CCP", "CCB"]),
        present=st.booleans(),
        when=st.sampled_from(["now", "later", "past"]),
        delay=st.integers(0, 50),
    )
    def change_label(self, project: str, label: str, present: bool, when: str, delay: int) -> None:
        now = self.ts + 1
        effective = {"now": 0, "later": now + 1 + delay, "past": START - 1}[when]
        # it takes effect at its time (or at once), and only if no change of the label
        # later in effect (then later to arrive) is there: see `model_advance`
        self.seq += 1
        change = ("label", project, label, present, effective or now, self.seq)
        self.waiting.append((max(effective, now), self.seq, change))
        events = self.apply(
            ChangeLabel(project=project, label=label, present=present, effective=effective)
        )
        assert not isinstance(events[0], Rejected), events

    @rule(index=st.integers(0, len(RULES) - 1), later=st.booleans(), delay=st.integers(0, 50))
    def version(self, index: int, later: bool, delay: int) -> None:
        now = self.ts + 1
        effective = now + 1 + delay if later else 0
        last = max(
            [e for _, e in self.versions] + [c[0] for c in self.waiting if c[2][0] == "rule"]
        )
        refused = (effective or now) < last  # before the version it follows
        if not refused:  # the model changes first: the checks of the command's cancels use it
            self.seq += 1
            self.waiting.append((effective or now, self.seq, ("rule", index)))
        events = self.apply(
            AddRuleVersion(series=CONTRACT, rule=RULES[index][0], effective=effective)
        )
        assert isinstance(events[-1], Rejected) == refused, events

    @rule(project=st.sampled_from(sorted(PROJECTS)))
    def suspend_or_reinstate(self, project: str) -> None:
        if project in self.suspended:  # the model changes first: the checks of the
            del self.suspended[project]  # command's own cancels judge by it
            events = self.apply(ReinstateProject(project=project))
            assert not isinstance(events[-1], Rejected), events
            return
        key = (project, PROJECTS[project][0])
        self.suspended[project] = {a: sum(self.core.credits(a).get(key, (0, 0))) for a in ACCOUNTS}
        events = self.apply(SuspendProject(project=project))
        assert not isinstance(events[-1], Rejected), events

    @rule(step=st.sampled_from([1, 10**6, 10**9, YEAR_NS // 2, YEAR_NS]))
    def advance(self, step: int) -> None:
        self.apply(AdvanceTime(), ts=self.ts + step)

    @rule()
    def snapshot_and_restore(self) -> None:
        """Waiting label changes, rule versions and suspensions survive a snapshot, and the
        restored core carries on as the model says (settlement/snapshot.py)."""
        restored = Core.restore(self.core.snapshot())
        assert restored.state_hash() == self.core.state_hash()
        assert restored.snapshot() == self.core.snapshot()
        self.core = restored

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def eligibility_is_what_the_model_says(self) -> None:
        if not hasattr(self, "core"):
            return
        self.core.check_invariants()
        want = sorted((p, PROJECTS[p][0]) for p in self.deposited if self.admitted(p))
        assert self.core.keys[CONTRACT] == want
        ex, ledger = self.core.exchange, self.core.ledger
        for oid, hold in ledger.credit_holds.items():
            if hold.series == CONTRACT:
                assert all(self.admitted(p) for (p, _), n in hold.parts if n), (oid, hold.parts)
        for project, frozen in self.suspended.items():
            sid = _series_of(project)
            assert ex.books[sid].halted
            assert not any(o.series == sid for o in ex.open_orders.values())
            key = (project, PROJECTS[project][0])
            assert all(ledger.accounts[a].credits_held.get(key, 0) == 0 for a in ACCOUNTS)
            now = {a: sum(self.core.credits(a).get(key, (0, 0))) for a in ACCOUNTS}
            assert now == frozen, "a frozen holding moved"

    def teardown(self) -> None:
        if not hasattr(self, "core"):
            return
        verdict = verify(self.records)
        assert verdict.ok, verdict.summary()
        again = catalogue_core(
            (DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text(), ACCOUNTS
        )[0]
        for cmd in self.cmds:
            again.apply(decode_command(encode_command(cmd)))
        assert again.state_hash() == self.core.state_hash()


TestCatalogue = Catalogue.TestCase
TestCatalogue.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
