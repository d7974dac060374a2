"""Retirement: certificates for a named beneficiary, provable against the log; retired
serials never move again."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import NewOrder, Side
from engine.events import Reason, Rejected
from settlement.commands import DepositCredits, Retire, WithdrawCredits
from settlement.core import Core
from settlement.events import Purpose, RetirementCertificate
from settlement.log import check_certificate, format_record, verify
from settlement.serials import SerialRange
from tests.settlement_builders import catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()
FIRST = 941467007  # VCS1340 2020's first serial; the block holds 425


@pytest.fixture
def core() -> Core:
    c, blocks = catalogue_core(PROJECTS, SERIALS)
    c.apply(deposit_block(1, blocks[0]))
    return c


def retire(**kw: object) -> Retire:
    base: dict[str, object] = dict(
        account=1,
        beneficiary="Cathay Pacific Airways Ltd",
        purpose=Purpose.CORSIA,
        claim="CORSIA first phase offsetting obligation",
        period_start="2024-01-01",
        period_end="2024-12-31",
        ts=1_767_225_600_000_000_000,
    )
    base.update(kw)
    return Retire(**base)  # type: ignore[arg-type]


def test_retiring_a_quantity_gives_a_certificate_checkable_against_its_record(
    core: Core,
) -> None:
    (cert,) = core.apply(retire(series="VCS-1340-2020", qty=100))
    assert isinstance(cert, RetirementCertificate)
    assert cert.cert_id == "RC-00000001"
    assert (cert.project, cert.vintage, cert.qty) == ("VCS1340", 2020, 100)
    assert cert.ranges == (SerialRange("VCS1340", 2020, FIRST, FIRST + 99),)
    assert cert.beneficiary == "Cathay Pacific Airways Ltd" and cert.purpose is Purpose.CORSIA
    records = core.drain_records()
    record = records[-1]
    assert record.kind == "retirement" and record.seq == cert.record_seq
    assert check_certificate(cert, record)
    assert not check_certificate(cert, records[0])
    forged = cert.__class__(**{**_fields(cert), "beneficiary": "Someone Else"})
    assert not check_certificate(forged, record)
    assert verify(records).ok and verify(records).retired == 100
    assert core.credits(1) == {("VCS1340", 2020): (325, 0)}
    core.check_invariants()


def test_a_retirement_without_a_period_states_none_on_its_certificate_and_record(
    core: Core,
) -> None:
    (cert,) = core.apply(retire(series="VCS-1340-2020", qty=5, period_start="", period_end=""))
    assert isinstance(cert, RetirementCertificate)
    assert (cert.period_start, cert.period_end) == ("", "")
    records = core.drain_records()
    body = records[-1].movement()
    assert (body.period_start, body.period_end) == ("", "")  # type: ignore[union-attr]
    assert check_certificate(cert, records[-1]) and verify(records).ok
    assert "no period stated" in format_record(records[-1])
    core.check_invariants()


@pytest.mark.parametrize(
    ("start", "end"), [("2024-01-01", ""), ("", "2024-12-31")], ids=["start_only", "end_only"]
)
def test_a_reporting_period_with_one_end_only_is_rejected_and_changes_nothing(
    core: Core, start: str, end: str
) -> None:
    _unchanged(
        core,
        retire(series="VCS-1340-2020", qty=1, period_start=start, period_end=end),
        Reason.INVALID_RETIREMENT,
    )


def _fields(cert: RetirementCertificate) -> dict[str, object]:
    return {f: getattr(cert, f) for f in cert.__struct_fields__}


def test_retiring_exact_ranges_one_certificate_per_project_and_vintage(core: Core) -> None:
    core.apply(
        DepositCredits(
            account=1, project="GS4823", vintage=2019, start=1463953, end=1467609, quantity=3657
        )
    )
    certs = core.apply(
        retire(
            ranges=(
                SerialRange("VCS1340", 2020, FIRST + 10, FIRST + 19),
                SerialRange("GS4823", 2019, 1463953, 1463962),
                SerialRange("VCS1340", 2020, FIRST + 30, FIRST + 30),
            )
        )
    )
    assert [(c.project, c.qty) for c in certs] == [("GS4823", 10), ("VCS1340", 11)]
    assert certs[1].ranges == (
        SerialRange("VCS1340", 2020, FIRST + 10, FIRST + 19),
        SerialRange("VCS1340", 2020, FIRST + 30, FIRST + 30),
    )
    assert len({c.cert_id for c in certs}) == 2
    core.check_invariants()


def _unchanged(core: Core, cmd: object, reason: Reason) -> None:
    before = core.state_hash()
    (ev,) = core.apply(cmd)  # type: ignore[arg-type]
    assert isinstance(ev, Rejected) and ev.reason is reason, ev
    assert core.state_hash() == before
    core.check_invariants()


def test_retired_serials_never_move_again(core: Core) -> None:
    core.apply(retire(ranges=(SerialRange("VCS1340", 2020, FIRST, FIRST + 9),)))
    core.drain_records()
    again = retire(ranges=(SerialRange("VCS1340", 2020, FIRST + 5, FIRST + 5),))
    _unchanged(core, again, Reason.SERIALS_RETIRED)
    out = WithdrawCredits(
        account=1, project="VCS1340", vintage=2020, start=FIRST, end=FIRST + 9, quantity=10
    )
    _unchanged(core, out, Reason.SERIALS_RETIRED)
    back = DepositCredits(
        account=2, project="VCS1340", vintage=2020, start=FIRST + 9, end=FIRST + 12, quantity=4
    )
    _unchanged(core, back, Reason.SERIALS_RETIRED)
    # a sale of everything left delivers none of the retired serials
    core.apply(
        NewOrder(
            account=1, client_order_id="s", series="VCS-1340-2020", side=Side.SELL, price=5, qty=415
        )
    )
    from settlement.commands import Deposit

    core.apply(Deposit(account=2, currency="USD", amount=10_000))
    ev = core.apply(
        NewOrder(
            account=2, client_order_id="b", series="VCS-1340-2020", side=Side.BUY, price=5, qty=415
        )
    )
    delivered = [r for e in ev if hasattr(e, "ranges") for r in e.ranges]
    assert delivered == [SerialRange("VCS1340", 2020, FIRST + 10, FIRST + 424)]
    _unchanged(
        core, retire(ranges=(SerialRange("VCS1340", 2020, FIRST, FIRST),)), Reason.SERIALS_RETIRED
    )
    assert verify(core.drain_records()).ok is False  # drained log misses its start
    core.check_invariants()


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(series="VCS-1340-2020", qty=426), Reason.INSUFFICIENT_CREDITS),
        (dict(series="VCS-1340-2020", qty=0), Reason.INVALID_QUANTITY),
        (dict(series="NOPE-2020", qty=1), Reason.UNKNOWN_SERIES),
        (dict(series="VCS-1340-2020", qty=1, beneficiary="  "), Reason.INVALID_RETIREMENT),
        (dict(series="VCS-1340-2020", qty=1, period_start="2024"), Reason.INVALID_RETIREMENT),
        (
            dict(series="VCS-1340-2020", qty=1, period_start="2025-01-01"),
            Reason.INVALID_RETIREMENT,
        ),
        (dict(series="VCS-1340-2020", qty=1, account=5), Reason.UNKNOWN_ACCOUNT),
        (
            dict(ranges=(SerialRange("VCS1340", 2020, FIRST, FIRST + 425),)),
            Reason.SERIALS_NOT_HELD,
        ),
        (
            dict(ranges=(SerialRange("VCS1340", 2020, FIRST + 9, FIRST),)),
            Reason.INVALID_SERIAL_BLOCK,
        ),
        (
            dict(
                ranges=(
                    SerialRange("VCS1340", 2020, FIRST, FIRST + 5),
                    SerialRange("VCS1340", 2020, FIRST + 5, FIRST + 6),
                )
            ),
            Reason.INVALID_SERIAL_BLOCK,
        ),
        (
            dict(ranges=(SerialRange("VCS1340", 2020, FIRST, FIRST),), series="VCS-1340-2020"),
            Reason.INVALID_RETIREMENT,
        ),
    ],
)
def test_bad_retirements_are_rejected_and_change_nothing(
    core: Core, kw: dict[str, object], reason: Reason
) -> None:
    _unchanged(core, retire(**kw), reason)


def test_credits_held_by_a_sell_order_cannot_be_retired(core: Core) -> None:
    core.apply(
        NewOrder(
            account=1, client_order_id="s", series="VCS-1340-2020", side=Side.SELL, price=5, qty=420
        )
    )
    _unchanged(core, retire(series="VCS-1340-2020", qty=6), Reason.INSUFFICIENT_CREDITS)
    _unchanged(
        core,
        retire(ranges=(SerialRange("VCS1340", 2020, FIRST, FIRST + 5),)),
        Reason.CREDITS_HELD,
    )
    (cert,) = core.apply(retire(series="VCS-1340-2020", qty=5))
    assert isinstance(cert, RetirementCertificate) and cert.qty == 5
    core.check_invariants()
