"""The carbon catalogue in the core (issue 13): standardized contracts with versioned
eligibility rules, and registry events (labels, suspension, reinstatement, reversals).

Every test runs on the real catalogue (data/projects.csv, data/serials.csv). The contract
under test is a nature-based removal contract that requires the CCP label; of the projects
with serials, ACR802 (US, 2022) and CAR1568 (MX, 2025) qualify, VCS2319 (removal, nature,
no CCP) and VCS3866 (CCP, but avoidance) do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.commands import AdvanceTime, NewOrder, OrderType, Side, TimeInForce
from engine.events import Cancelled, CancelReason, Reason, Rejected, StatusChanged
from engine.reference import Mitigation, Series
from settlement.catalogue import year_start_ts
from settlement.commands import (
    AddRuleVersion,
    CancelCredits,
    ChangeLabel,
    Deposit,
    DepositCredits,
    ListContract,
    ListSeries,
    ReinstateProject,
    Retire,
    SuspendProject,
    WithdrawCredits,
)
from settlement.core import Core
from settlement.events import (
    CreditsCancelled,
    LabelChanged,
    Listed,
    ProjectReinstated,
    ProjectSuspended,
    RetirementCertificate,
    RuleVersionAdded,
    Settled,
)
from settlement.log import verify
from settlement.serials import SerialRange
from tests.settlement_builders import batch_of, catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
RULE = "mitigation = removal and basis = nature and label CCP"
CONTRACT = Series(id="TONNE-NBR-CCP", currency="USD")
SELLER, BUYER, POOL = 1, 2, 3
Y2026 = year_start_ts(2026)


class Venue:
    """A catalogue core with the contract listed, every account funded, and every record
    kept, so that each test can end with `tonne log verify`'s check."""

    def __init__(self, rule: str = RULE, ts: int = Y2026) -> None:
        self.core: Core
        self.core, self.blocks = catalogue_core(
            (DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text(), (1, 2, 3)
        )
        self.records: list[Any] = []
        self.ts = ts
        for a in (SELLER, BUYER, POOL):
            self.apply(Deposit(account=a, currency="USD", amount=10**9))
        self.listed = self.apply(ListContract(series=CONTRACT, rule=rule))

    def apply(self, cmd: Any) -> list[Any]:
        self.ts += 1
        fields = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        if fields.get("ts"):
            self.ts = max(self.ts, fields["ts"])
        fields["ts"] = self.ts
        events = self.core.apply(type(cmd)(**fields))
        self.records += self.core.drain_records()
        self.core.check_invariants()
        return events

    def deposit(self, project: str, account: int = SELLER) -> list[Any]:
        block = next(b for b in self.blocks if b.project == project)
        return self.apply(deposit_block(account, block, batch=True))

    def sell(self, qty: int, price: int = 1500, series: str = CONTRACT.id) -> list[Any]:
        return self.apply(_order(SELLER, Side.SELL, series, qty, price, f"s{self.ts}"))

    def buy(self, qty: int, price: int = 1500, series: str = CONTRACT.id) -> list[Any]:
        return self.apply(_order(BUYER, Side.BUY, series, qty, price, f"b{self.ts}"))

    def verified(self) -> None:
        verdict = verify(self.records)
        assert verdict.ok, verdict.summary()


def _order(account: int, side: Side, series: str, qty: int, price: int, coid: str) -> NewOrder:
    return NewOrder(
        account=account,
        client_order_id=coid,
        series=series,
        side=side,
        type=OrderType.LIMIT,
        price=price,
        qty=qty,
        tif=TimeInForce.GTC,
    )


def _one(events: list[Any], kind: type) -> Any:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def _rejected(events: list[Any], reason: Reason) -> Rejected:
    assert isinstance(events[-1], Rejected), events
    assert events[-1].reason is reason, events[-1]
    return events[-1]


# -- listing a contract ----------------------------------------------------------------------


def test_listing_a_contract_opens_its_book_under_rule_version_1() -> None:
    v = Venue()
    assert v.listed[0] == Listed("series", CONTRACT.id, v.ts)
    assert v.listed[1] == RuleVersionAdded(CONTRACT.id, 1, v.ts, RULE, v.ts)
    assert [r.kind for r in v.records][-1] == "contract_rule"
    assert v.core.contract_rules(CONTRACT.id)[0].rule == RULE
    v.verified()


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (ListContract(series=CONTRACT, rule=RULE), Reason.ALREADY_LISTED),
        (
            ListContract(series=Series(id="X", currency="USD"), rule="colour = green"),
            Reason.INVALID_SCREEN,
        ),
        (
            ListContract(series=Series(id="X", project="VCS1340", vintage=2020), rule=RULE),
            Reason.NOT_A_CONTRACT,
        ),
        (ListContract(series=Series(id="X", currency="EUR"), rule=RULE), Reason.UNKNOWN_CURRENCY),
        (ListSeries(series=Series(id="X", currency="USD")), Reason.NOT_A_CONTRACT),
    ],
)
def test_a_contract_that_cannot_be_listed_is_refused_and_changes_nothing(
    cmd: Any, reason: Reason
) -> None:
    v = Venue()
    before = v.core.state_hash()
    _rejected(v.apply(cmd), reason)
    assert v.core.state_hash() == before


def test_a_rule_that_does_not_parse_is_refused_with_the_position() -> None:
    v = Venue()
    bad = _rejected(
        v.apply(ListContract(series=Series(id="X", currency="USD"), rule="label CCP and colour")),
        Reason.INVALID_SCREEN,
    )
    assert "at 14" in bad.text, bad.text


# -- eligibility at deposit and at order entry --------------------------------------------------


def test_only_credits_the_rule_admits_can_be_offered_into_the_contract() -> None:
    v = Venue()
    v.deposit("VCS2319")  # removal, nature, but no CCP label
    v.deposit("VCS3866")  # CCP, but avoidance
    _rejected(v.sell(10), Reason.INSUFFICIENT_CREDITS)
    v.deposit("ACR802")  # removal, nature, CCP
    assert v.core.keys[CONTRACT.id] == [("ACR802", 2022)]
    assert not isinstance(v.sell(10)[-1], Rejected)
    v.verified()


def test_a_contract_fill_delivers_exact_serials_and_records_its_rule_version() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(10)
    fill = _one(v.buy(10), Settled)
    assert fill.rule_version == 1
    (r,) = fill.ranges
    assert (r.project, r.vintage, r.first, r.last) == ("ACR802", 2022, 5741, 5750)
    assert v.records[-1].movement().rule_version == 1
    v.verified()


def test_a_fill_outside_a_contract_records_no_rule_version() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(5, series="ACR-802-2022")
    assert _one(v.buy(5, series="ACR-802-2022"), Settled).rule_version == 0


# -- rule versions -------------------------------------------------------------------------------


def test_a_new_rule_version_cancels_resting_sells_it_no_longer_admits() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.deposit("CAR1568")
    v.sell(10)  # ACR802 first: allocation is by project id
    events = v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE + " and country = MX"))
    assert _one(events, RuleVersionAdded).version == 2
    cancelled = _one(events, Cancelled)
    assert cancelled.reason is CancelReason.INELIGIBLE and cancelled.qty == 10
    assert v.core.credits(SELLER)[("ACR802", 2022)] == (150, 0)  # the hold is released
    assert v.core.keys[CONTRACT.id] == [("CAR1568", 2025)]
    v.sell(10)
    assert _one(v.buy(10), Settled).rule_version == 2  # fills now trade under version 2
    v.verified()


def test_a_rule_version_effective_later_applies_at_the_first_command_at_or_after_it() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(10)
    later = v.ts + 1_000
    events = v.apply(AddRuleVersion(series=CONTRACT.id, rule="country = MX", effective=later))
    assert not any(isinstance(e, Cancelled) for e in events)
    assert _one(v.buy(4), Settled).rule_version == 1  # version 1 still governs
    cancelled = _one(v.apply(AdvanceTime(ts=later)), Cancelled)
    assert cancelled.reason is CancelReason.INELIGIBLE and cancelled.qty == 6
    assert v.core.catalogue.governing[CONTRACT.id] == 2
    v.verified()


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (AddRuleVersion(series=CONTRACT.id, rule=RULE, effective=5), Reason.RULE_IN_PAST),
        (AddRuleVersion(series="NOPE", rule=RULE), Reason.UNKNOWN_SERIES),
        (AddRuleVersion(series="ACR-802-2022", rule=RULE), Reason.NOT_A_CONTRACT),
        (AddRuleVersion(series=CONTRACT.id, rule="vintage >="), Reason.INVALID_SCREEN),
    ],
)
def test_a_rule_version_that_cannot_apply_is_refused_and_changes_nothing(
    cmd: Any, reason: Reason
) -> None:
    v = Venue()
    before = v.core.state_hash()
    _rejected(v.apply(cmd), reason)
    assert v.core.state_hash() == before


def test_a_rule_version_before_the_one_it_follows_is_refused() -> None:
    v = Venue()
    v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE, effective=v.ts + 100))
    _rejected(
        v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE, effective=v.ts + 50)),
        Reason.RULE_IN_PAST,
    )


def test_a_series_listed_by_standard_and_vintage_can_take_a_rule_version() -> None:
    v = Venue()
    acr = Series(id="ACR-REMOVAL-2022", standard="ACR", mitigation=Mitigation.REMOVAL, vintage=2022)
    v.apply(ListSeries(series=acr))
    v.deposit("ACR802")
    v.sell(5, series=acr.id)
    assert _one(v.buy(2, series=acr.id), Settled).rule_version == 0
    events = v.apply(AddRuleVersion(series=acr.id, rule="country = FR"))
    assert _one(events, RuleVersionAdded).version == 2
    assert _one(events, Cancelled).reason is CancelReason.INELIGIBLE
    v.verified()


def test_a_rolling_vintage_window_moves_at_the_new_year() -> None:
    v = Venue(rule="mitigation = removal and vintage >= year - 4")  # 2026: 2022 and later
    v.deposit("ACR802")  # vintage 2022
    v.sell(10)
    assert v.core.keys[CONTRACT.id] == [("ACR802", 2022)]
    events = v.apply(AdvanceTime(ts=year_start_ts(2027)))  # 2027: 2023 and later
    assert _one(events, Cancelled).reason is CancelReason.INELIGIBLE
    assert v.core.keys[CONTRACT.id] == []
    v.verified()


# -- labels ------------------------------------------------------------------------------------


def test_withdrawing_a_label_cancels_the_resting_sells_that_needed_it() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(10, series=CONTRACT.id)
    v.sell(5, series="ACR-802-2022")  # the project's own book does not need the label
    events = v.apply(ChangeLabel(project="ACR802", label="CCP", present=False))
    assert isinstance(events[0], LabelChanged)
    cancelled = _one(events, Cancelled)
    assert (cancelled.series, cancelled.reason) == (CONTRACT.id, CancelReason.INELIGIBLE)
    assert len(v.core.exchange.open_orders) == 1
    assert "label" in [r.kind for r in v.records]
    v.verified()


def test_granting_a_label_makes_credits_eligible() -> None:
    v = Venue()
    v.deposit("VCS2319")
    _rejected(v.sell(10), Reason.INSUFFICIENT_CREDITS)
    v.apply(ChangeLabel(project="VCS2319", vintage=2021, label="CCP", present=True))
    assert v.core.keys[CONTRACT.id] == [("VCS2319", 2021)]
    assert not isinstance(v.sell(10)[-1], Rejected)


def test_a_label_change_on_one_vintage_leaves_the_others() -> None:
    v = Venue()
    v.apply(ChangeLabel(project="ACR802", vintage=2019, label="CCP", present=False))
    v.deposit("ACR802")  # vintage 2022 keeps the project's CCP label
    assert v.core.keys[CONTRACT.id] == [("ACR802", 2022)]


def test_the_latest_label_change_wins_between_project_and_vintage() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.apply(ChangeLabel(project="ACR802", vintage=2022, label="CCP", present=False))
    assert v.core.keys[CONTRACT.id] == []
    v.apply(ChangeLabel(project="ACR802", label="CCP", present=True))
    assert v.core.keys[CONTRACT.id] == [("ACR802", 2022)]


def test_a_label_change_effective_later_waits_and_a_retroactive_one_applies_now() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(10)
    later = v.ts + 500
    v.apply(ChangeLabel(project="ACR802", label="CCP", present=False, effective=later))
    assert len(v.core.exchange.open_orders) == 1
    assert _one(v.apply(AdvanceTime(ts=later)), Cancelled).reason is CancelReason.INELIGIBLE
    # a retroactive grant from before the withdrawal took effect is on the record, and the
    # withdrawal, later in effect, still stands
    v.apply(ChangeLabel(project="ACR802", label="CCP", present=True, effective=later - 1))
    assert v.core.keys[CONTRACT.id] == []
    v.apply(AdvanceTime(ts=later + 100))
    # a retroactive grant from after it takes effect at once
    v.apply(ChangeLabel(project="ACR802", label="CCP", present=True, effective=later + 50))
    assert v.core.keys[CONTRACT.id] == [("ACR802", 2022)]
    assert [r.kind for r in v.records].count("label") == 3
    v.verified()


def test_a_refused_catalogue_command_changes_nothing_not_even_the_year_judged() -> None:
    core = catalogue_core((DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text())[
        0
    ]
    before = core.state_hash()
    for cmd in (
        ReinstateProject(project="ACR802", ts=Y2026),
        ChangeLabel(project="NOPE", label="CCP", present=True, ts=Y2026),
    ):
        assert isinstance(core.apply(cmd)[-1], Rejected)
        assert core.state_hash() == before


def test_a_label_the_screening_language_cannot_name_is_refused() -> None:
    v = Venue()
    for label in ("+X", "-X", ".x", "a..b", "x y"):
        _rejected(
            v.apply(ChangeLabel(project="ACR802", label=label, present=True)), Reason.INVALID_LABEL
        )


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (ChangeLabel(project="NOPE", label="CCP", present=False), Reason.UNKNOWN_PROJECT),
        (ChangeLabel(project="ACR802", label="C C P", present=False), Reason.INVALID_LABEL),
        (ChangeLabel(project="ACR802", label="", present=False), Reason.INVALID_LABEL),
        (ChangeLabel(project="ACR802", label="X" * 33, present=True), Reason.INVALID_LABEL),
        (
            ChangeLabel(project="ACR802", label="CCP", present=True, vintage=-1),
            Reason.INVALID_LABEL,
        ),
    ],
)
def test_a_label_change_that_cannot_apply_is_refused_and_changes_nothing(
    cmd: Any, reason: Reason
) -> None:
    v = Venue()
    before = v.core.state_hash()
    _rejected(v.apply(cmd), reason)
    assert v.core.state_hash() == before


# -- suspension -----------------------------------------------------------------------------------


def test_a_suspended_project_trades_delivers_and_retires_nothing() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.sell(10)
    v.sell(5, series="ACR-802-2022")
    v.buy(3, price=1000, series="ACR-802-2022")
    events = v.apply(SuspendProject(project="ACR802", ref="registry notice 17"))
    assert isinstance(events[0], ProjectSuspended)
    assert _one(events, StatusChanged).halted
    assert {(e.series, e.reason) for e in events if isinstance(e, Cancelled)} == {
        ("ACR-802-2022", CancelReason.SUSPENDED),
        (CONTRACT.id, CancelReason.SUSPENDED),
    }
    assert len([e for e in events if isinstance(e, Cancelled)]) == 3
    assert not v.core.exchange.open_orders and not v.core.ledger.credit_holds
    _rejected(v.sell(1, series="ACR-802-2022"), Reason.SERIES_HALTED)
    _rejected(v.sell(1), Reason.INSUFFICIENT_CREDITS)
    _rejected(
        v.apply(Retire(account=SELLER, beneficiary="b", series="ACR-802-2022", qty=1)),
        Reason.PROJECT_SUSPENDED,
    )
    one = SerialRange("ACR802", 2022, 5741, 5741, "ACR-US-802-2022-3027-*")
    _rejected(
        v.apply(Retire(account=SELLER, beneficiary="b", ranges=(one,))), Reason.PROJECT_SUSPENDED
    )
    withdraw = WithdrawCredits(
        account=SELLER,
        project="ACR802",
        vintage=2022,
        start=5741,
        end=5741,
        quantity=1,
        batch="ACR-US-802-2022-3027-*",
    )
    _rejected(v.apply(withdraw), Reason.PROJECT_SUSPENDED)
    _rejected(v.deposit("ACR802", account=BUYER), Reason.PROJECT_SUSPENDED)
    v.verified()


def test_reinstating_a_project_resumes_its_books_and_unfreezes_its_credits() -> None:
    v = Venue()
    v.deposit("ACR802")
    v.apply(SuspendProject(project="ACR802"))
    events = v.apply(ReinstateProject(project="ACR802"))
    assert isinstance(events[0], ProjectReinstated)
    assert not _one(events, StatusChanged).halted
    v.sell(10)
    assert _one(v.buy(10), Settled).qty == 10
    cert = v.apply(Retire(account=BUYER, beneficiary="b", series=CONTRACT.id, qty=10))
    assert isinstance(cert[-1], RetirementCertificate)
    v.verified()


def test_a_book_halted_before_the_suspension_stays_halted_after_reinstatement() -> None:
    from engine.commands import Halt

    v = Venue()
    v.apply(Halt(series="ACR-802-2022"))
    v.apply(SuspendProject(project="ACR802"))
    events = v.apply(ReinstateProject(project="ACR802"))
    assert not any(isinstance(e, StatusChanged) for e in events)
    assert v.core.exchange.books["ACR-802-2022"].halted


@pytest.mark.parametrize(
    ("cmds", "reason"),
    [
        ([SuspendProject(project="NOPE")], Reason.UNKNOWN_PROJECT),
        (
            [SuspendProject(project="ACR802"), SuspendProject(project="ACR802")],
            Reason.PROJECT_SUSPENDED,
        ),
        ([ReinstateProject(project="ACR802")], Reason.NOT_SUSPENDED),
        ([ReinstateProject(project="NOPE")], Reason.UNKNOWN_PROJECT),
    ],
)
def test_a_suspension_or_reinstatement_that_cannot_apply_is_refused(
    cmds: list[Any], reason: Reason
) -> None:
    v = Venue()
    for cmd in cmds[:-1]:
        v.apply(cmd)
    before = v.core.state_hash()
    _rejected(v.apply(cmds[-1]), reason)
    assert v.core.state_hash() == before


# -- reversals --------------------------------------------------------------------------------


def _reversal(first: int, last: int, account: int = POOL) -> CancelCredits:
    return CancelCredits(
        account=account,
        project="ACR802",
        vintage=2022,
        start=first,
        end=last,
        quantity=last - first + 1,
        batch="ACR-US-802-2022-3027-*",
        ref="reversal 2026-04",
    )


def test_a_reversal_cancels_exact_serials_from_the_buffer_pool_for_good() -> None:
    v = Venue()
    v.deposit("ACR802", account=POOL)
    v.apply(SuspendProject(project="ACR802"))  # a reversal typically follows a suspension
    (ev,) = v.apply(_reversal(5741, 5790))
    assert isinstance(ev, CreditsCancelled) and ev.range.qty == 50
    assert v.core.credits(POOL)[("ACR802", 2022)] == (100, 0)
    v.apply(ReinstateProject(project="ACR802"))
    _rejected(v.apply(_reversal(5741, 5741)), Reason.SERIALS_RETIRED)
    again = DepositCredits(
        account=BUYER,
        project="ACR802",
        vintage=2022,
        start=5741,
        end=5741,
        quantity=1,
        batch="ACR-US-802-2022-3027-*",
    )
    _rejected(v.apply(again), Reason.SERIALS_RETIRED)
    verdict = verify(v.records)
    assert verdict.ok and verdict.counts["reversal"] == 1 and verdict.credits == 100


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (_reversal(5741, 5741, account=99), Reason.UNKNOWN_ACCOUNT),
        (_reversal(5741, 5741, account=BUYER), Reason.SERIALS_NOT_HELD),
        (_reversal(5741, 5740), Reason.INVALID_SERIAL_BLOCK),
        (
            CancelCredits(account=POOL, project="NOPE", vintage=2022, start=1, end=1, quantity=1),
            Reason.UNKNOWN_PROJECT,
        ),
    ],
)
def test_a_reversal_that_cannot_apply_is_refused_and_changes_nothing(
    cmd: Any, reason: Reason
) -> None:
    v = Venue()
    v.deposit("ACR802", account=POOL)
    before = v.core.state_hash()
    _rejected(v.apply(cmd), reason)
    assert v.core.state_hash() == before


def test_a_reversal_of_serials_an_order_holds_is_refused() -> None:
    v = Venue()
    v.deposit("ACR802", account=SELLER)
    v.sell(150, series="ACR-802-2022")
    _rejected(v.apply(_reversal(5741, 5741, account=SELLER)), Reason.CREDITS_HELD)


# -- state ---------------------------------------------------------------------------------------


def test_the_catalogue_is_in_the_state_hash_and_survives_a_snapshot() -> None:
    a, b = Venue(), Venue()
    assert a.core.state_hash() == b.core.state_hash()
    a.apply(ChangeLabel(project="ACR802", label="CCP", present=False, effective=a.ts + 99))
    b.apply(ChangeLabel(project="ACR802", label="CCP", present=True, effective=b.ts + 99))
    assert a.core.state_hash() != b.core.state_hash()
    restored = Core.restore(a.core.snapshot())
    assert restored.state_hash() == a.core.state_hash()
    assert restored.canonical()[0] == "tonne-core-4"


def test_a_contract_screens_by_the_lines_it_could_deliver_now() -> None:
    v = Venue(rule="mitigation = removal")
    from screening.language import parse

    def hits() -> list[str]:
        return [s.id for s, _ in v.core.screened(parse("any"), v.ts) if s.id == CONTRACT.id]

    assert hits() == []  # nothing in custody it could deliver
    v.deposit("VCS960")
    assert hits() == [CONTRACT.id]
    block = next(b for b in v.blocks if b.project == "VCS960")
    v.apply(
        WithdrawCredits(
            account=SELLER,
            project="VCS960",
            vintage=block.vintage,
            start=block.start,
            end=block.end,
            quantity=block.quantity,
            batch=batch_of(block),
        )
    )
    assert hits() == []  # all of it went back to the registry


# -- limits: every count the catalogue keeps has one ---------------------------------------------


def test_a_contract_has_at_most_rule_versions_max_versions() -> None:
    from settlement.catalogue import RULE_VERSIONS_MAX

    v = Venue()
    for _ in range(RULE_VERSIONS_MAX - 1):
        assert not isinstance(v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE))[-1], Rejected)
    _rejected(v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE)), Reason.LIMIT_EXCEEDED)


def test_at_most_pending_max_changes_wait_for_their_time() -> None:
    from settlement.catalogue import PENDING_MAX

    v = Venue()
    later = v.ts + 10**12
    for i in range(PENDING_MAX):
        v.apply(ChangeLabel(project="ACR802", label="CCP", present=bool(i % 2), effective=later))
    before = v.core.state_hash()
    _rejected(
        v.apply(ChangeLabel(project="ACR802", label="CCP", present=True, effective=later)),
        Reason.LIMIT_EXCEEDED,
    )
    _rejected(
        v.apply(AddRuleVersion(series=CONTRACT.id, rule=RULE, effective=later)),
        Reason.LIMIT_EXCEEDED,
    )
    assert v.core.state_hash() == before


def test_a_project_has_at_most_labels_max_labels_changed() -> None:
    from settlement.catalogue import LABELS_MAX

    v = Venue()
    for i in range(LABELS_MAX):
        v.apply(ChangeLabel(project="ACR802", label=f"L{i}", present=True))
    _rejected(
        v.apply(ChangeLabel(project="ACR802", label="ONE_MORE", present=True)),
        Reason.LIMIT_EXCEEDED,
    )
    assert not isinstance(
        v.apply(ChangeLabel(project="ACR802", label="L0", present=False))[-1], Rejected
    )  # one already changed may change again


def test_at_most_contracts_max_generic_series_are_listed() -> None:
    from settlement.catalogue import CONTRACTS_MAX

    v = Venue()
    for i in range(CONTRACTS_MAX - 1):
        v.apply(ListContract(series=Series(id=f"C{i}", currency="USD"), rule="any"))
    _rejected(
        v.apply(ListContract(series=Series(id="ONE_MORE", currency="USD"), rule="any")),
        Reason.LIMIT_EXCEEDED,
    )


def test_a_contract_keeps_its_rule_in_the_canonical_spelling() -> None:
    v = Venue(rule="country in (UG, KE,KE) and ((label CCP))")
    assert v.core.contract_rules(CONTRACT.id)[0].rule == "country in (KE, UG) and label CCP"
