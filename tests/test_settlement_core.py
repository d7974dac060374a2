"""The core as a state machine: commands through one codec, a canonical state hash that
equal states share across processes, and snapshots that restore to the same behaviour."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from engine.commands import (
    AdvanceTime,
    Amend,
    Cancel,
    Halt,
    MassCancel,
    NewOrder,
    Resume,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.events import Expired, Reason, Rejected
from engine.reference import Mitigation, Project, Series
from settlement.commands import (
    Deposit,
    DepositCredits,
    ListProject,
    ListSeries,
    OpenAccount,
    Retire,
    Withdraw,
    WithdrawCredits,
    decode_command,
    encode_command,
)
from settlement.core import Core
from settlement.events import Listed, Purpose
from settlement.serials import RangeConvention, SerialRange
from tests.builds import pickles_of_the_pure_layout
from tests.settlement_builders import catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()
SID = "VCS-1340-2020"


def script() -> list[object]:
    """A short session of every kind of command, with fills, GTD expiries (one by
    `AdvanceTime`, one by a later command) and a retirement."""
    from engine.catalogue import parse_serials

    b = parse_serials(SERIALS)[0]
    cmds: list[object] = [deposit_block(1, b, ts=1)]
    cmds += [Deposit(account=a, currency="USD", amount=2_000_000, ts=2) for a in (2, 3)]
    cmds += [
        NewOrder(
            account=1, client_order_id="s1", series=SID, side=Side.SELL, price=1_000, qty=100, ts=3
        ),
        NewOrder(
            account=1,
            client_order_id="s2",
            series=SID,
            side=Side.SELL,
            price=1_050,
            qty=100,
            ts=4,
            tif=TimeInForce.GTD,
            expire_ts=40,
        ),
        NewOrder(
            account=2, client_order_id="b1", series=SID, side=Side.BUY, price=1_020, qty=60, ts=5
        ),
        NewOrder(
            account=3, client_order_id="b2", series=SID, side=Side.BUY, price=990, qty=30, ts=6
        ),
        Amend(account=3, order_id=4, price=1_000, ts=7),
        NewOrder(
            account=2, client_order_id="b3", series=SID, side=Side.BUY, price=980, qty=10, ts=8
        ),
        Cancel(account=2, order_id=5, ts=9),
        Retire(
            account=2,
            beneficiary="B",
            series=SID,
            qty=10,
            period_start="2025-01-01",
            period_end="2025-12-31",
            ts=10,
        ),
        NewOrder(
            account=3,
            client_order_id="b4",
            series=SID,
            side=Side.BUY,
            price=900,
            qty=10,
            ts=11,
            tif=TimeInForce.GTD,
            expire_ts=50,
        ),
        AdvanceTime(ts=45),  # expires s2 in a quiet market, as the gateway's timer would
        Withdraw(account=1, currency="USD", amount=100, ts=55),
    ]
    return cmds


def run(core: Core, cmds: list[object]) -> list[object]:
    out = []
    for c in cmds:
        out.extend(core.apply(c))  # type: ignore[arg-type]
        core.check_invariants()
    return out


def fresh() -> Core:
    return catalogue_core(PROJECTS, SERIALS, maker_fee_bps=10, taker_fee_bps=25)[0]


def test_every_command_round_trips_through_the_journal_codec() -> None:
    project = Project(
        id="X1", registry="VERRA", name="x", mitigation=Mitigation.REMOVAL, sdgs=(13,)
    )
    series = Series(
        id="VCS-X1-2020", standard="VCS", mitigation=Mitigation.REMOVAL, vintage=2020, project="X1"
    )
    cmds = [
        *script(),
        OpenAccount(account=5),
        WithdrawCredits(
            account=1,
            project="P",
            vintage=1,
            start=1,
            end=2,
            quantity=1,
            convention=RangeConvention.HALF_OPEN,
        ),
        DepositCredits(account=1, project="P", vintage=1, start=1, end=2, quantity=2),
        Retire(
            account=1,
            beneficiary="b",
            purpose=Purpose.ARTICLE6,
            ranges=(SerialRange("P", 1, 1, 2),),
        ),
        ListProject(project=project),
        ListSeries(series=series),
        MassCancel(account=1),
        Halt(series=SID),
        Resume(series=SID),
        SetReferencePrice(series=SID, price=5),
        AdvanceTime(ts=7),
    ]
    for c in cmds:
        data = encode_command(c)  # type: ignore[arg-type]
        assert decode_command(data) == c
    with pytest.raises(msgspec.ValidationError):
        decode_command(msgspec.msgpack.encode({"cmd": "nope"}))


def test_the_same_commands_give_the_same_events_and_state_hash() -> None:
    a, b = fresh(), fresh()
    assert a.state_hash() == b.state_hash()
    ea, eb = run(a, script()), run(b, script())
    assert ea == eb
    assert a.state_hash() == b.state_hash() != fresh().state_hash()
    assert any(type(e).__name__ == "Expired" for e in ea)
    assert a.balances(3)["USD"][1] == 0  # the expired GTD buy released its hold


def test_the_state_hash_is_the_same_in_another_process() -> None:
    core = fresh()
    run(core, script())
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from test_settlement_core import fresh, run, script;"
        "c = fresh(); run(c, script()); print(c.state_hash())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=DATA.parent,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == core.state_hash()


def test_a_restored_snapshot_has_the_same_hash_and_behaves_identically() -> None:
    cmds = script()
    whole = fresh()
    events_whole = run(whole, cmds)
    for cut in (0, 4, 8, len(cmds)):
        first = fresh()
        events = run(first, cmds[:cut])
        first.drain_records()
        restored = Core.restore(first.snapshot())
        assert restored.state_hash() == first.state_hash()
        events += run(restored, cmds[cut:])
        assert events == events_whole
        assert restored.state_hash() == whole.state_hash()
    with pytest.raises(ValueError):
        Core.restore(pickle.dumps({"not": "a core"}))


def _orders(core: Core, coids: list[str]) -> None:
    """IOC buys on an empty book: each is accepted, uses its id and leaves nothing open."""
    for coid in coids:
        core.apply(
            NewOrder(
                account=2,
                client_order_id=coid,
                series=SID,
                side=Side.BUY,
                price=10,
                qty=1,
                tif=TimeInForce.IOC,
                ts=5,
            )
        )


def test_the_state_hash_covers_the_order_of_each_client_order_id_window() -> None:
    """Two states with the same ids in their windows, used in another order, forget them in
    another order: they must hash apart."""
    a, b = fresh(), fresh()
    for core in (a, b):
        core.apply(Deposit(account=2, currency="USD", amount=1_000, ts=1))
    _orders(a, ["x", "y"])
    _orders(b, ["y", "x"])
    assert a.exchange.coids_seen == b.exchange.coids_seen
    assert a.state_hash() != b.state_hash()


def test_a_snapshot_hash_recorded_in_the_format_before_the_window_still_matches() -> None:
    """Version 1 of the canonical walk had neither the limits nor the windows' order; a
    folder whose snapshots recorded it keeps them (Core.has_state_hash)."""
    from settlement.state import LEGACY, VERSION, canonical, state_digest

    core = fresh()
    run(core, script())
    legacy = state_digest(canonical(core, LEGACY))
    assert canonical(core)[0] == VERSION and legacy != core.state_hash()
    assert core.has_state_hash(legacy) and core.has_state_hash(core.state_hash())
    assert not core.has_state_hash("0" * 64)


@pickles_of_the_pure_layout
def test_a_snapshot_pickled_before_the_window_restores_with_one() -> None:
    core = fresh()
    run(core, script())
    ex = core.exchange
    expected = {a: sorted(s) for a, s in ex.coids_seen.items()}
    del ex.coids_recent, ex.coid_window  # what an older pickle lacks
    restored = Core.restore(pickle.dumps(core, protocol=5))  # how snapshots were written
    got = restored.exchange
    assert {a: list(r) for a, r in got.coids_recent.items()} == expected
    restored.check_invariants()


def test_drained_records_continue_the_chain_across_drains() -> None:
    from settlement.log import verify

    core = fresh()
    records = []
    for c in script():
        core.apply(c)  # type: ignore[arg-type]
        records += core.drain_records()
    v = verify(records)
    assert v.ok, v.summary()
    assert v.head_hash == core.ledger.log.head_hash


def test_listing_projects_and_series_through_commands() -> None:
    core = fresh()
    generic = Series(
        id="ACR-REMOVAL-2030", standard="ACR", mitigation=Mitigation.REMOVAL, vintage=2030
    )
    assert core.apply(ListSeries(series=generic)) == [Listed("series", generic.id, 0)]
    before = core.state_hash()
    (ev,) = core.apply(ListSeries(series=generic))
    assert isinstance(ev, Rejected) and ev.reason is Reason.ALREADY_LISTED
    (ev,) = core.apply(ListSeries(series=msgspec.structs.replace(generic, id="X", currency="EUR")))
    assert isinstance(ev, Rejected) and ev.reason is Reason.UNKNOWN_CURRENCY
    assert core.state_hash() == before
    new = Project(id="ACR9999", registry="ACR", name="new removal", mitigation=Mitigation.REMOVAL)
    core.apply(ListProject(project=new))
    assert core.keys[generic.id] == []  # nothing of the project is in custody yet
    deposit = DepositCredits(account=1, project="ACR9999", vintage=2030, start=1, end=9, quantity=9)
    core.apply(deposit)
    assert core.keys[generic.id] == [("ACR9999", 2030)]  # its credits now deliver into it
    (ev,) = core.apply(ListProject(project=new))
    assert isinstance(ev, Rejected) and ev.reason is Reason.ALREADY_LISTED
    core.check_invariants()


def test_engine_rejections_pass_through_unchanged() -> None:
    core = fresh()
    (ev,) = core.apply(
        NewOrder(account=2, client_order_id="x", series="NOPE", side=Side.BUY, price=1, qty=1)
    )
    assert isinstance(ev, Rejected) and ev.reason is Reason.UNKNOWN_SERIES
    (ev,) = core.apply(Cancel(account=2, order_id=77))
    assert isinstance(ev, Rejected) and ev.reason is Reason.UNKNOWN_ORDER


def test_advance_time_expires_what_is_due_and_releases_its_holds_and_nothing_else() -> None:
    core = fresh()
    cmds = script()
    at = next(i for i, c in enumerate(cmds) if isinstance(c, AdvanceTime))
    run(core, cmds[:at])
    core.drain_records()
    assert core.next_expiry_ts() == 40  # s2, the GTD sell; b4 expires at 50
    available, held = core.credits(1)[("VCS1340", 2020)]
    events = core.apply(AdvanceTime(ts=45))
    assert [(type(e), e.side, e.qty, e.ts) for e in events if isinstance(e, Expired)] == [
        (Expired, Side.SELL, 100, 45)
    ]
    assert core.credits(1)[("VCS1340", 2020)] == (available + 100, held - 100)  # hold back
    assert core.next_expiry_ts() == 50 and not core.drain_records()
    core.check_invariants()
    before = core.state_hash()
    assert core.apply(AdvanceTime(ts=46)) == []  # nothing due: no event, no change
    assert core.state_hash() == before
