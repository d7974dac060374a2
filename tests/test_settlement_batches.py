"""Registry-true serials in the core: a block's identity is its registry batch (issue 11).

CAR, ACR, ART, Gold Standard and Cercarbono number serials within an issuance batch, so two
real blocks of one project and vintage can share numbers; Verra numbers across its registry.
The ledger keeps each batch apart, checks overlaps within the registry's scope, delivers and
retires exact serials of a batch, and every record and certificate names the batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import NewOrder, OrderType, Side, TimeInForce
from engine.events import Reason, Rejected
from settlement import limits, registry
from settlement.commands import DepositCredits, Retire, WithdrawCredits
from settlement.core import Core
from settlement.events import CreditsDeposited, RetirementCertificate, Settled
from settlement.log import verify
from settlement.serials import BAND_SHIFT, SerialRange
from tests.settlement_builders import batch_of, catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()

CAR_A = "CAR-1-US-1335-31-983-KS-2025-9205-*"  # 1 to 5000
CAR_B = "CAR-1-US-1335-31-983-KS-2025-9659-*"  # 1 to 7275
FCPF_20 = "FCPF-CI-130-2023-20-*"  # 1 to 46404
FCPF_21 = "FCPF-CI-130-2023-21-*"  # 1 to 63392


def core_and_blocks() -> tuple[Core, list]:  # type: ignore[type-arg]
    return catalogue_core(PROJECTS, SERIALS, accounts=(1, 2, 3))


def deposit(core: Core, **kw: object) -> list:  # type: ignore[type-arg]
    fields: dict[str, object] = {"account": 1, "project": "CAR1335", "vintage": 2025}
    fields.update(kw)
    if "quantity" not in fields:
        fields["quantity"] = int(fields["end"]) - int(fields["start"]) + 1  # type: ignore[call-overload]
    events = core.apply(DepositCredits(**fields))  # type: ignore[arg-type]
    core.drain_records()
    return events


def refused(events: list, reason: Reason) -> Rejected:  # type: ignore[type-arg]
    assert len(events) == 1 and isinstance(events[0], Rejected), events
    assert events[0].reason is reason, events[0]
    return events[0]


def test_every_real_block_enters_one_exchange_under_its_batch():
    core, blocks = core_and_blocks()
    assert len(blocks) == 77
    for i, block in enumerate(blocks):
        events = core.apply(deposit_block(1 + i % 3, block, ts=i + 1, batch=True))
        assert isinstance(events[-1], CreditsDeposited), (block.serial_string, events)
        assert str(events[-1].range) == block.serial_string or block.registry == "CERCARBONO"
    core.check_invariants()
    records = core.drain_records()
    assert verify(records).ok
    assert sum(b.quantity for b in blocks) == sum(core.ledger.credits_net.values())


@pytest.mark.parametrize(
    ("project", "vintage", "a", "b"),
    [
        ("CAR1335", 2025, (CAR_A, 1, 5000), (CAR_B, 1, 7275)),
        (
            "CAR1098",
            2024,
            ("CAR-ROC-US-1098-125-102-CA-2024-8533-*", 1, 101728),
            ("CAR-ROC-US-1098-125-102-CA-2024-8534-*", 1, 24230),
        ),
        ("ART130", 2023, (FCPF_20, 1, 46404), (FCPF_21, 1, 63392)),
    ],
)
def test_the_same_numbers_under_another_batch_are_accepted(project, vintage, a, b):
    core, _ = core_and_blocks()
    for batch, first, last in (a, b):
        events = deposit(core, project=project, vintage=vintage, start=first, end=last, batch=batch)
        assert isinstance(events[-1], CreditsDeposited), events
    assert core.ledger.credits_net[(project, vintage)] == a[2] + b[2]
    core.check_invariants()


def test_an_overlap_inside_one_batch_is_refused_and_changes_nothing():
    core, _ = core_and_blocks()
    deposit(core, start=1, end=5000, batch=CAR_A)
    before = core.state_hash()
    refused(deposit(core, start=4000, end=4010, batch=CAR_A), Reason.SERIALS_OVERLAP)
    refused(deposit(core, account=2, start=1, end=5000, batch=CAR_A), Reason.SERIALS_OVERLAP)
    assert core.state_hash() == before


def test_verra_numbers_are_unique_across_the_registry_not_per_batch():
    """Two Verra batch strings (different projects) that claim one serial number collide."""
    core, _ = core_and_blocks()
    ok = deposit(
        core,
        project="VCS1340",
        vintage=2020,
        start=941467007,
        end=941467431,
        batch="19385-*-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1",
    )
    assert isinstance(ok[-1], CreditsDeposited)
    clash = deposit(
        core,
        project="VCS4268",
        vintage=2024,
        start=941467400,
        end=941467500,
        batch="19334-*-VCS-VCU-576-VER-US-14-4268-01062024-31122024-1",
    )
    assert "VERRA" in refused(clash, Reason.SERIALS_OVERLAP).text


def test_a_batch_less_block_never_shares_a_number_with_a_batch_of_its_key():
    """Without its batch a block is identified by project and vintage, as before batches;
    its serial 7 may be any batch's serial 7, so the two are never held side by side."""
    core, _ = core_and_blocks()
    assert isinstance(deposit(core, start=1, end=100)[-1], CreditsDeposited)
    refused(deposit(core, start=50, end=60), Reason.SERIALS_OVERLAP)
    clash = refused(deposit(core, start=90, end=120, batch=CAR_A), Reason.SERIALS_OVERLAP)
    assert "no batch" in clash.text
    assert isinstance(deposit(core, start=101, end=200, batch=CAR_A)[-1], CreditsDeposited)
    back = refused(deposit(core, start=150, end=150), Reason.SERIALS_OVERLAP)
    assert "batch CAR-1-US-1335-31-983-KS-2025-9205-*" in back.text
    # a batch-less block of another project and vintage is another identity
    other = deposit(core, project="CAR1568", start=150, end=150)
    assert isinstance(other[-1], CreditsDeposited)
    core.check_invariants()


def test_a_retired_batch_serial_refuses_the_same_number_without_a_batch():
    core = _two_batches_one_seller()
    core.apply(
        Retire(account=1, beneficiary="b", ranges=(SerialRange("CAR1335", 2025, 5, 5, CAR_A),))
    )
    core.apply(
        WithdrawCredits(
            account=1, project="CAR1335", vintage=2025, start=1, end=30, quantity=30, batch=CAR_B
        )
    )
    refused(deposit(core, account=3, start=5, end=5), Reason.SERIALS_RETIRED)


@pytest.mark.parametrize(
    ("fields", "reason", "why"),
    [
        ({"batch": "CAR-1-US-1335-31-983-KS-2025-*"}, Reason.INVALID_SERIAL_BLOCK, "not a CAR"),
        ({"batch": "ACR-FR-1129-2025-2917-*"}, Reason.INVALID_SERIAL_BLOCK, "not a CAR"),
        ({"batch": "CAR-1-MX-1568-42-1130-QR-2025-9680-*"}, Reason.INVALID_SERIAL_BLOCK, "CAR1568"),
        ({"batch": "CAR-1-US-1335-31-983-KS-2024-9205-*"}, Reason.INVALID_SERIAL_BLOCK, "2024"),
        ({"batch": CAR_A, "quantity": 99}, Reason.INVALID_SERIAL_BLOCK, "quantity 99"),
        ({"batch": CAR_A, "end": 10**15}, Reason.INVALID_SERIAL_BLOCK, "no serial range"),
        ({"batch": CAR_A, "project": "NOPE1"}, Reason.UNKNOWN_PROJECT, "NOPE1"),
    ],
)
def test_a_bad_batch_gets_a_typed_rejection_and_changes_nothing(fields, reason, why):
    core, _ = core_and_blocks()
    before = core.state_hash()
    kw = {"start": 1, "end": 100, **fields}
    if "quantity" not in kw:
        kw["quantity"] = 100 if kw["end"] == 100 else kw["end"] - kw["start"] + 1
    assert why in refused(deposit(core, **kw), reason).text
    assert core.state_hash() == before


def test_a_project_of_a_registry_without_serial_rules_is_refused():
    from engine.reference import Project

    core, _ = core_and_blocks()
    core.projects["XYZ1"] = Project(id="XYZ1", registry="PURO", name="somewhere")
    before = core.state_hash()
    refused(
        deposit(core, project="XYZ1", vintage=2025, start=1, end=10, batch="PURO-*"),
        Reason.UNKNOWN_REGISTRY,
    )
    assert core.state_hash() == before


def test_the_batch_limit_per_project_and_vintage(monkeypatch):
    monkeypatch.setattr("settlement.ledger.BATCHES_PER_KEY_MAX", 3)
    core, _ = core_and_blocks()
    for n in range(3):
        batch = f"CAR-1-US-1335-31-983-KS-2025-{n + 1}-*"
        assert isinstance(deposit(core, start=1, end=10, batch=batch)[-1], CreditsDeposited)
    before = core.state_hash()
    over = deposit(core, start=1, end=10, batch="CAR-1-US-1335-31-983-KS-2025-99-*")
    assert "3 batches" in refused(over, Reason.LIMIT_EXCEEDED).text
    assert core.state_hash() == before
    # a batch the key already has is not a new one
    assert isinstance(
        deposit(core, start=11, end=20, batch="CAR-1-US-1335-31-983-KS-2025-1-*")[-1],
        CreditsDeposited,
    )
    assert limits.BATCHES_PER_KEY_MAX == 4096


def _two_batches_one_seller() -> Core:
    """Account 1 holds serials 1..30 of two CAR batches of one project and vintage; 1 and 2
    have cash. Its records stay undrained (the log's genesis is in them)."""
    from settlement.commands import Deposit

    core, _ = core_and_blocks()
    for batch in (CAR_A, CAR_B):
        core.apply(
            DepositCredits(
                account=1,
                project="CAR1335",
                vintage=2025,
                start=1,
                end=30,
                quantity=30,
                batch=batch,
            )
        )
    for account in (1, 2):
        core.apply(Deposit(account=account, currency="USD", amount=10_000_000))
    return core


def _cross(core: Core, qty: int, ts: int) -> Settled:
    series = "CAR-1335-2025"
    core.apply(
        NewOrder(
            account=1,
            client_order_id=f"s{ts}",
            series=series,
            side=Side.SELL,
            type=OrderType.LIMIT,
            price=1000,
            qty=qty,
            tif=TimeInForce.GTC,
            ts=ts,
        )
    )
    events = core.apply(
        NewOrder(
            account=2,
            client_order_id=f"b{ts}",
            series=series,
            side=Side.BUY,
            type=OrderType.LIMIT,
            price=1000,
            qty=qty,
            tif=TimeInForce.IOC,
            ts=ts + 1,
        )
    )
    (settled,) = [e for e in events if isinstance(e, Settled)]
    return settled


def test_a_fill_delivers_exact_serials_of_the_earliest_batch_first_and_names_them():
    core = _two_batches_one_seller()
    settled = _cross(core, 40, 10)
    assert settled.ranges == (
        SerialRange("CAR1335", 2025, 1, 30, CAR_A),
        SerialRange("CAR1335", 2025, 1, 10, CAR_B),
    )
    assert [str(r) for r in settled.ranges] == [
        "CAR-1-US-1335-31-983-KS-2025-9205-1 to 30",
        "CAR-1-US-1335-31-983-KS-2025-9659-1 to 10",
    ]
    assert core.ledger.holding(2, ("CAR1335", 2025)) == list(settled.ranges)
    assert core.ledger.holding(1, ("CAR1335", 2025)) == [
        SerialRange("CAR1335", 2025, 11, 30, CAR_B)
    ]
    core.check_invariants()
    assert verify(core.drain_records()).ok


def test_retiring_exact_serials_of_a_batch_leaves_the_same_numbers_of_another():
    core = _two_batches_one_seller()
    events = core.apply(
        Retire(
            account=1,
            beneficiary="Harbour Airlines",
            ranges=(SerialRange("CAR1335", 2025, 5, 9, CAR_B),),
            ts=5,
        )
    )
    (cert,) = [e for e in events if isinstance(e, RetirementCertificate)]
    assert [str(r) for r in cert.ranges] == ["CAR-1-US-1335-31-983-KS-2025-9659-5 to 9"]
    assert core.ledger.holding(1, ("CAR1335", 2025)) == [
        SerialRange("CAR1335", 2025, 1, 30, CAR_A),
        SerialRange("CAR1335", 2025, 1, 4, CAR_B),
        SerialRange("CAR1335", 2025, 10, 30, CAR_B),
    ]
    # retired serials never come back: not by retiring, depositing or withdrawing them again
    again = Retire(account=1, beneficiary="x", ranges=(SerialRange("CAR1335", 2025, 5, 5, CAR_B),))
    refused(core.apply(again), Reason.SERIALS_RETIRED)
    refused(deposit(core, account=3, start=5, end=5, batch=CAR_B), Reason.SERIALS_RETIRED)
    # ...but serial 5 of the other batch retires
    ok = core.apply(
        Retire(account=1, beneficiary="x", ranges=(SerialRange("CAR1335", 2025, 5, 5, CAR_A),))
    )
    assert isinstance(ok[-1], RetirementCertificate)
    core.check_invariants()


def test_retiring_or_withdrawing_serials_of_a_batch_the_ledger_never_saw_is_refused():
    core = _two_batches_one_seller()
    before = core.state_hash()
    ghost = "CAR-1-US-1335-31-983-KS-2025-1-*"
    refused(
        core.apply(
            Retire(account=1, beneficiary="x", ranges=(SerialRange("CAR1335", 2025, 1, 1, ghost),))
        ),
        Reason.SERIALS_NOT_HELD,
    )
    refused(
        core.apply(
            WithdrawCredits(
                account=1, project="CAR1335", vintage=2025, start=1, end=1, quantity=1, batch=ghost
            )
        ),
        Reason.SERIALS_NOT_HELD,
    )
    # serials beyond a band are refused, not read as another band's
    big = SerialRange("CAR1335", 2025, 1 << BAND_SHIFT, (1 << BAND_SHIFT) + 1, CAR_A)
    refused(
        core.apply(Retire(account=1, beneficiary="x", ranges=(big,))), Reason.INVALID_SERIAL_BLOCK
    )
    assert core.state_hash() == before


def test_a_withdrawal_of_a_batch_frees_its_numbers_for_a_later_deposit():
    core = _two_batches_one_seller()
    out = core.apply(
        WithdrawCredits(
            account=1, project="CAR1335", vintage=2025, start=1, end=30, quantity=30, batch=CAR_B
        )
    )
    assert str(out[-1].range) == "CAR-1-US-1335-31-983-KS-2025-9659-1 to 30"
    assert core.ledger.holding(1, ("CAR1335", 2025)) == [SerialRange("CAR1335", 2025, 1, 30, CAR_A)]
    assert isinstance(deposit(core, account=3, start=1, end=30, batch=CAR_B)[-1], CreditsDeposited)
    core.check_invariants()


def test_the_canonical_state_names_batches_and_stays_within_the_limits():
    core = _two_batches_one_seller()
    _cross(core, 40, 10)
    state = core.canonical()
    assert state[0] == "tonne-core-4"

    def ints(x: object):  # type: ignore[no-untyped-def]
        if isinstance(x, list | tuple):
            for y in x:
                yield from ints(y)
        elif isinstance(x, int):
            yield x

    assert max(ints(state)) <= limits.AMOUNT_MAX
    assert ["CAR1335", 2025] in [k for k, _ in state[1][-1]] and CAR_B in state[1][-1][0][1]
    restored = Core.restore(core.snapshot())
    assert restored.state_hash() == core.state_hash()
    restored.check_invariants()


def test_the_log_verifier_refuses_a_delivery_of_another_batchs_serials():
    core = _two_batches_one_seller()
    records = core.drain_records()
    settled = _cross(core, 5, 10)
    good = core.drain_records()
    assert verify(records + good).ok
    # the same numbers, claimed from the batch the seller holds too, but not of this batch
    forged_body = settled.__class__(
        **{
            **{f: getattr(settled, f) for f in settled.__struct_fields__},
            "ranges": (SerialRange("CAR1335", 2025, 1, 5, "CAR-1-US-1335-31-983-KS-2025-1-*"),),
        }
    )
    from settlement.log import SettlementLog

    log = SettlementLog()
    for r in records:
        log.append(r.movement())
    log.append(forged_body)
    verdict = verify(log.drain())
    assert not verdict.ok and "not in the ledger" in verdict.error


def test_every_real_batch_names_exactly_one_registry():
    _, blocks = core_and_blocks()
    for block in blocks:
        assert registry.registry_of_batch(batch_of(block)) == block.registry
    with pytest.raises(registry.SerialFormatError):
        registry.registry_of_batch("NOT-A-BATCH-*")


def test_a_key_with_hundreds_of_batches_finds_the_range_at_each_bands_first_serial():
    """Band k's numbers are k << 54 | n: past band 255 they pass 2^62, so the range searches
    must look beyond any ledger number (a search bounded at 2^62 missed the range starting
    exactly at `first` and refused, or crashed a retirement halfway)."""
    core, _ = core_and_blocks()
    batches = [f"CAR-1-US-1335-31-983-KS-2025-{20000 + n}-*" for n in range(300)]
    for batch in batches:
        block = DepositCredits(
            account=1, project="CAR1335", vintage=2025, start=1, end=5, quantity=5, batch=batch
        )
        assert isinstance(core.apply(block)[-1], CreditsDeposited)
    key = ("CAR1335", 2025)
    last = batches[-1]
    out = core.apply(
        WithdrawCredits(
            account=1, project="CAR1335", vintage=2025, start=1, end=5, quantity=5, batch=last
        )
    )
    assert str(out[-1].range) == "CAR-1-US-1335-31-983-KS-2025-20299-1 to 5", out
    ranges = (SerialRange(*key, 1, 2, batches[280]), SerialRange(*key, 1, 1, batches[290]))
    exact = core.apply(Retire(account=1, beneficiary="b", ranges=ranges))
    assert isinstance(exact[-1], RetirementCertificate), exact
    by_qty = core.apply(Retire(account=1, beneficiary="b", series="CAR-1335-2025", qty=1480))
    assert isinstance(by_qty[-1], RetirementCertificate), by_qty
    assert core.ledger.credits_net[key] == 300 * 5 - 5 - 3 - 1480
    core.check_invariants()
    assert verify(core.drain_records()).ok
