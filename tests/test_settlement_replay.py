"""The auditor's replay (settlement/replay.py) refuses every forged record: each of its
rejections, hit by a record a forger could write with a valid chain (the chain is recomputed
here, so only the replay can tell), names that record; the end-of-log conservation checks,
which no sequence of records that passed the per-record checks can break, are hit by a
replay whose state is edited."""

from __future__ import annotations

import msgspec
import pytest

from settlement.events import (
    CashDeposited,
    CashWithdrawn,
    CreditsCancelled,
    CreditsDeposited,
    CreditsWithdrawn,
    Movement,
    ProjectReinstated,
    ProjectSuspended,
    Purpose,
    Retired,
    RuleVersionAdded,
    Settled,
    contract_fill,
)
from settlement.limits import AMOUNT_MAX
from settlement.log import SettlementLog, verify
from settlement.replay import Replay, ReplayError
from settlement.serials import RangeConvention, SerialRange

INCLUSIVE = RangeConvention.INCLUSIVE
VERRA = "19385-*-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1"  # VCS1340 2020's batch


def sr(first: int, last: int, project: str = "VCS1340", batch: str = "") -> SerialRange:
    return SerialRange(project, 2020, first, last, batch)


# A sound log: account 2 has cash, account 1 a batch-less block and a Verra one, and a fill
# of ten batch-less serials from 1 to 2 (notional 10,000, fees 25 and 10).
FILL = Settled(1, "VCS-1340-2020", "USD", 1_000, 10, 2, 1, 25, 10, 0, (sr(1, 10),), 4)
SOUND: list[Movement] = [
    CashDeposited(2, "USD", 100_000, "wire", 1),
    CreditsDeposited(1, sr(1, 100), INCLUSIVE, "block", 2),
    CreditsDeposited(1, sr(1, 10, batch=VERRA), INCLUSIVE, "batch", 3),
    FILL,
]


def fill(**forged: object) -> Settled:
    return msgspec.structs.replace(FILL, **{"trade_id": 2, "ts": 5, **forged})


def retired(**forged: object) -> Retired:
    fields: dict[str, object] = {
        "cert_id": "RC-00000001",
        "account": 2,
        "project": "VCS1340",
        "vintage": 2020,
        "ranges": (sr(1, 10),),
        "qty": 10,
        "beneficiary": "someone",
        "purpose": Purpose.VOLUNTARY,
        "claim": "",
        "period_start": "",
        "period_end": "",
        "ts": 5,
    }
    return Retired(**{**fields, **forged})  # type: ignore[arg-type]


def verdict_of(bodies: list[Movement]) -> tuple[bool, int | None, str]:
    log = SettlementLog()
    for body in bodies:
        log.append(body)  # a valid chain: the forger rehashed it
    v = verify(log.drain())
    return v.ok, v.first_bad, v.error


def test_the_sound_log_verifies() -> None:
    assert verdict_of(SOUND) == (True, None, "")
    assert verdict_of([*SOUND, retired()])[0]


# (what the forger wrote, the records after the sound log, the last one forged; the error)
FORGERIES: list[tuple[str, list[Movement], str]] = [
    # fills
    ("a negative fee", [fill(buyer_fee=-1)], "fill: a fee is negative or exceeds the notional"),
    ("a fee above the notional", [fill(seller_fee=10_001)], "a fee is negative or exceeds"),
    ("buyer equals seller", [fill(buyer=1, seller=1)], "buyer != seller"),
    ("a price of zero", [fill(price=0)], "price and quantity must be positive"),
    ("a negative quantity", [fill(qty=-10)], "price and quantity must be positive"),
    ("serials that do not add up", [fill(qty=11)], "serials delivered do not add up to 11"),
    ("a buyer without the cash", [fill(buyer=3)], "fill: account 3 would have -10025 USD"),
    ("serials never deposited", [fill(ranges=(sr(1, 10, "VCS9"),))], "are not in the ledger"),
    ("serials partly deposited", [fill(qty=20, ranges=(sr(91, 110),))], "not all in the ledger"),
    (
        "serials across a gap",
        [
            CreditsWithdrawn(1, sr(50, 60), "", 5),
            fill(qty=21, price=100, ranges=(sr(45, 65),), seller=1, ts=6),
        ],
        "fill: serials VCS1340/2020:45-65 are not all in the ledger",
    ),
    (
        "another project's serials under its batch",
        [fill(ranges=(sr(1, 10, "VCS9", VERRA),))],
        "are of ('VCS1340', 2020",
    ),
    ("another account's serials", [fill(seller=3)], "belong to account 2"),
    (
        "retired serials",
        [retired(), fill(buyer=1, seller=2, price=100, ts=6)],
        "fill: serials 1-10 of VCS1340/2020:1-10 belong to retired",
    ),
    # cash
    ("a zero deposit", [CashDeposited(1, "USD", 0, "", 5)], "cash movement must be positive"),
    ("a negative withdrawal", [CashWithdrawn(2, "USD", -5, "", 5)], "must be positive"),
    (
        "a withdrawal of more than the balance",
        [CashWithdrawn(2, "USD", 100_000, "", 5)],
        "cash_withdrawal: account 2 would have -10025 USD",
    ),
    (
        "cash past the limit",
        [CashDeposited(1, "USD", AMOUNT_MAX, "", 5)],
        "USD in custody, above the limit",
    ),
    # credits in and out
    ("an empty block", [CreditsDeposited(3, sr(5, 4), INCLUSIVE, "", 5)], "empty range"),
    ("a negative serial", [CreditsDeposited(3, sr(-1, 4), INCLUSIVE, "", 5)], "outside 0.."),
    (
        "credits past the limit",
        [CreditsDeposited(3, sr(0, AMOUNT_MAX - 1, "P"), INCLUSIVE, "", 5)],
        "t in custody, above the limit",
    ),
    (
        "a block over serials held",
        [CreditsDeposited(3, sr(50, 150), INCLUSIVE, "", 5)],
        "overlap serials already held",
    ),
    (
        "a block running into serials held",
        [CreditsDeposited(3, sr(0, 5), INCLUSIVE, "", 5)],
        "overlap serials already held",
    ),
    (
        "a batch no registry writes",
        [CreditsDeposited(3, sr(1, 5, batch="not-a-batch"), INCLUSIVE, "", 5)],
        "credit deposit: serials",
    ),
    (
        "a withdrawal of a reversed range",
        [CreditsWithdrawn(1, sr(20, 11), "", 5)],
        "credit withdrawal: serials VCS1340/2020:20-11 are not in the ledger",
    ),
    # retirements
    ("a retirement that does not add up", [retired(qty=11)], "serials do not add up to 11"),
    ("an empty retirement", [retired(qty=0, ranges=())], "serials do not add up to 0"),
    ("another project's retirement", [retired(project="VCS9")], "serials of another project"),
    # registry events (issue 13): frozen and cancelled credits never move
    (
        "a fill of a suspended project",
        [ProjectSuspended("VCS1340", "", 5), fill(ts=6)],
        "fill: serials VCS1340/2020:1-10 of suspended project VCS1340 moved",
    ),
    (
        "a withdrawal of a suspended project",
        [ProjectSuspended("VCS1340", "", 5), CreditsWithdrawn(1, sr(50, 60), "", 6)],
        "credit withdrawal: serials VCS1340/2020:50-60 of suspended project",
    ),
    (
        "a retirement of a suspended project",
        [ProjectSuspended("VCS1340", "", 5), retired(ts=6)],
        "retirement: serials VCS1340/2020:1-10 of suspended project",
    ),
    (
        "a deposit of a suspended project",
        [ProjectSuspended("VCS1340", "", 5), CreditsDeposited(3, sr(500, 510), INCLUSIVE, "", 6)],
        "credit deposit: serials VCS1340/2020:500-510 of suspended project",
    ),
    (
        "a suspension of a suspended project",
        [ProjectSuspended("VCS1340", "", 5), ProjectSuspended("VCS1340", "", 6)],
        "is suspended already",
    ),
    (
        "a reinstatement of a project never suspended",
        [ProjectReinstated("VCS1340", "", 5)],
        "is not suspended",
    ),
    (
        "a fill of cancelled serials",
        [CreditsCancelled(2, sr(1, 10), "reversal", 5), fill(buyer=1, seller=2, price=100, ts=6)],
        "belong to cancelled",
    ),
    (
        "a reversal of another account's serials",
        [CreditsCancelled(3, sr(1, 10), "", 5)],
        "reversal: serials 1-10 of VCS1340/2020:1-10 belong to account 2",
    ),
    (
        "a rule version out of order",
        [RuleVersionAdded("C", 1, 5, "any", 5), RuleVersionAdded("C", 3, 6, "any", 6)],
        "rule: C v3 out of order or in the past",
    ),
    ("a rule version in the past", [RuleVersionAdded("C", 1, 4, "any", 5)], "in the past"),
    (
        "a contract fill under a version never added",
        [RuleVersionAdded("VCS-1340-2020", 1, 5, "any", 5), contract_fill(fill(ts=6), 2)],
        "fill: VCS-1340-2020 traded under rule version 1, not 2",
    ),
    (
        "a contract fill under a version not yet in effect",
        [
            RuleVersionAdded("VCS-1340-2020", 1, 5, "any", 5),
            RuleVersionAdded("VCS-1340-2020", 2, 9, "any", 6),
            contract_fill(fill(ts=7), 2),
        ],
        "traded under rule version 1, not 2",
    ),
    (
        "a contract's fill recorded as a plain fill",
        [RuleVersionAdded("VCS-1340-2020", 1, 5, "any", 5), fill(ts=6)],
        "traded under rule version 1, not 0",
    ),
    (
        "a rule version effective before the one it follows",
        [RuleVersionAdded("C", 1, 9, "any", 5), RuleVersionAdded("C", 2, 8, "any", 6)],
        "rule: C v2 out of order or in the past",
    ),
]


def test_a_reinstated_project_moves_again_and_a_sound_contract_fill_verifies() -> None:
    assert verdict_of(
        [
            *SOUND,
            ProjectSuspended("VCS1340", "notice", 5),
            ProjectReinstated("VCS1340", "notice", 6),
            RuleVersionAdded("VCS-1340-2020", 2, 7, "any", 7),  # v1: the unrecorded rule
            contract_fill(fill(buyer=1, seller=2, price=100, ts=8), 2),
            CreditsCancelled(1, sr(50, 60), "reversal", 9),
        ]
    )[0]


@pytest.mark.parametrize(
    ("forged", "error"), [(f, e) for _, f, e in FORGERIES], ids=[n for n, _, _ in FORGERIES]
)
def test_a_forged_record_fails_the_replay_at_that_record(
    forged: list[Movement], error: str
) -> None:
    ok, first_bad, got = verdict_of([*SOUND, *forged])
    assert not ok and first_bad == len(SOUND) + len(forged)
    assert error in got
    assert verdict_of([*SOUND, *forged[:-1]])[0], "only the forged record is bad"


def _replayed() -> Replay:
    replay = Replay()
    for body in SOUND:
        replay.apply(body)
    replay.check()
    return replay


def test_cash_that_does_not_add_up_to_the_deposits_is_not_conserved() -> None:
    replay = _replayed()
    replay.cash[(1, "USD")] += 1
    with pytest.raises(ReplayError, match="USD is not conserved"):
        replay.check()


def test_a_serial_owned_twice_is_in_two_places() -> None:
    replay = _replayed()
    spans = replay.owners[("", "VCS1340", "2020")]
    spans.insert(1, [5, 12, 3, ("VCS1340", 2020, "")])
    with pytest.raises(ReplayError, match="a serial is in two places"):
        replay.check()


@pytest.mark.parametrize("count", ["net_credits", "retired"])
def test_serials_that_do_not_add_up_to_the_counts_are_not_conserved(count: str) -> None:
    replay = _replayed()
    setattr(replay, count, getattr(replay, count) + 1)
    with pytest.raises(ReplayError, match="credits are not conserved"):
        replay.check()
