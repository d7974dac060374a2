"""The settlement log: every movement recorded, chained by SHA-256; verify replays it and
detects any edit, drop, insertion or reordering; one readable line per record."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.commands import NewOrder, Side
from settlement.commands import Deposit, Retire, Withdraw, WithdrawCredits
from settlement.events import Purpose, Settled
from settlement.log import (
    GENESIS,
    LogRecord,
    decode_record,
    encode_record,
    format_record,
    record_hash,
    verify,
)
from tests.settlement_builders import catalogue_core, deposit_block

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS = (DATA / "projects.csv").read_text()
SERIALS = (DATA / "serials.csv").read_text()
TS = 1_767_225_600_000_000_000


def a_days_log() -> list[LogRecord]:
    core, blocks = catalogue_core(PROJECTS, SERIALS, maker_fee_bps=10, taker_fee_bps=25)
    ts = TS
    for i, b in enumerate(blocks[:20]):
        core.apply(deposit_block(1 + i % 2, b, ts=ts + i))
    for a in (2, 3):
        core.apply(Deposit(account=a, currency="USD", amount=50_000_000, ref=f"wire-{a}", ts=ts))
    rng = random.Random(7)
    for i in range(60):
        seller, buyer = rng.choice([(1, 2), (1, 3), (2, 3)])
        sid = "VCS-1340-2020" if seller != 2 else "VCS-4268-2024"
        qty = rng.randint(1, 20)
        price = rng.randint(900, 1100)
        core.apply(
            NewOrder(
                account=seller,
                client_order_id=f"s{i}",
                series=sid,
                side=Side.SELL,
                price=price,
                qty=qty,
                ts=ts + 100 + i,
            )
        )
        core.apply(
            NewOrder(
                account=buyer,
                client_order_id=f"b{i}",
                series=sid,
                side=Side.BUY,
                price=1100,
                qty=qty,
                ts=ts + 100 + i,
            )
        )
    core.apply(
        Retire(
            account=3,
            beneficiary="HK Jockey Club",
            purpose=Purpose.VOLUNTARY,
            period_start="2025-01-01",
            period_end="2025-12-31",
            series="VCS-1340-2020",
            qty=5,
            ts=ts + 500,
        )
    )
    core.apply(Withdraw(account=1, currency="USD", amount=1_000, ref="payout", ts=ts + 600))
    core.apply(
        WithdrawCredits(
            account=2,
            project="VCS4268",
            vintage=2024,
            start=940097954,
            end=940097954,
            quantity=1,
            ts=ts + 700,
        )
    )
    core.check_invariants()
    return core.drain_records()


LOG = a_days_log()


def test_the_log_of_a_trading_day_verifies_and_counts_what_happened() -> None:
    kinds = {r.kind for r in LOG}
    assert kinds == {
        "credit_deposit",
        "cash_deposit",
        "fill",
        "retirement",
        "cash_withdrawal",
        "credit_withdrawal",
    }
    v = verify(LOG)
    assert v.ok, v.summary()
    assert v.records == len(LOG) and v.first_bad is None
    assert v.head_seq == LOG[-1].seq and v.head_hash == LOG[-1].hash
    assert v.cash == {"USD": 100_000_000 - 1_000}
    assert v.retired == 5
    assert v.summary().startswith(f"OK {len(LOG)} records")
    assert LOG[0].prev == GENESIS and [r.seq for r in LOG] == list(range(1, len(LOG) + 1))


def test_records_round_trip_through_their_bytes() -> None:
    assert [decode_record(encode_record(r)) for r in LOG] == LOG


def _rehash(records: list[LogRecord], start: int) -> list[LogRecord]:
    """Recompute the chain from `start` on, as a forger with the whole log would."""
    out = records[:start]
    prev = out[-1].hash if out else GENESIS
    for r in records[start:]:
        h = record_hash(r.seq, r.ts, r.kind, r.body, prev)
        out.append(LogRecord(r.seq, r.ts, r.kind, r.body, prev, h))
        prev = h
    return out


FILL = next(i for i, r in enumerate(LOG) if r.kind == "fill")


def _edit_fill_price(r: LogRecord) -> LogRecord:
    body = r.movement()
    assert isinstance(body, Settled)
    forged = msgspec.structs.replace(body, price=body.price - 1)
    return msgspec.structs.replace(r, body=msgspec.msgpack.encode(forged))


@pytest.mark.parametrize("where", [0, FILL, len(LOG) // 2, len(LOG) - 1])
def test_editing_a_record_is_detected(where: int) -> None:
    records = list(LOG)
    r = records[where]
    records[where] = msgspec.structs.replace(r, ts=r.ts + 1)
    v = verify(records)
    assert not v.ok and v.first_bad == r.seq


def test_editing_a_fill_is_detected_even_if_the_chain_is_rehashed() -> None:
    records = list(LOG)
    records[FILL] = _edit_fill_price(records[FILL])
    assert verify(records).first_bad == LOG[FILL].seq  # the chain breaks
    forged = _rehash(records, FILL)  # a consistent forgery of the rest of the chain...
    assert verify(forged).ok
    v = verify(forged, head=LOG[-1].hash)  # ...no longer ends at the head kept elsewhere
    assert not v.ok and v.first_bad == LOG[-1].seq and "expected" in v.error
    assert verify(LOG, head=LOG[-1].hash).ok


@pytest.mark.parametrize("where", [0, FILL, len(LOG) // 2, len(LOG) - 1])
def test_dropping_a_record_is_detected(where: int) -> None:
    records = LOG[:where] + LOG[where + 1 :]
    v = verify(records)
    if where == len(LOG) - 1:
        # dropping the tail leaves a shorter valid chain; the kept head catches it
        assert v.ok and not verify(records, head=LOG[-1].hash).ok
    else:
        assert not v.ok and v.first_bad == LOG[where + 1].seq


def test_inserting_or_reordering_records_is_detected() -> None:
    records = LOG[:5] + [LOG[3]] + LOG[5:]
    assert verify(records).first_bad == LOG[3].seq
    swapped = list(LOG)
    swapped[7], swapped[8] = swapped[8], swapped[7]
    v = verify(swapped)
    assert not v.ok and v.first_bad == LOG[8].seq


def test_a_rehashed_forgery_that_moves_serials_twice_fails_the_replay() -> None:
    """Even with a recomputed chain, a duplicated delivery breaks 'every serial in one
    place' or a balance, and verify names that record."""
    dup = LOG[FILL]
    records = _rehash(
        LOG[: FILL + 1]
        + [msgspec.structs.replace(dup, seq=dup.seq + 1)]
        + [msgspec.structs.replace(r, seq=r.seq + 1) for r in LOG[FILL + 1 :]],
        FILL + 1,
    )
    v = verify(records)
    assert not v.ok and v.first_bad == dup.seq + 1


def test_format_record_gives_one_line_with_the_essentials() -> None:
    lines = [format_record(r) for r in LOG]
    assert all("\n" not in line for line in lines)
    fill = lines[FILL]
    body = LOG[FILL].movement()
    assert isinstance(body, Settled)
    assert f"{LOG[FILL].seq}" in fill and "fill" in fill and "2026-01-01T00:00:00" in fill
    assert f"buyer={body.buyer} seller={body.seller}" in fill
    assert f"qty={body.qty} price={body.price} USD" in fill and "serials=VCS" in fill
    retirement = next(line for line in lines if " retirement " in line)
    assert "HK Jockey Club" in retirement and "RC-00000001" in retirement


@given(
    where=st.integers(0, len(LOG) - 1),
    how=st.sampled_from(["edit_ts", "edit_body", "drop", "duplicate", "swap"]),
)
@settings(max_examples=60, deadline=None)
def test_any_single_tampering_fails_verification_against_the_kept_head(
    where: int, how: str
) -> None:
    records = list(LOG)
    r = records[where]
    if how == "edit_ts":
        records[where] = msgspec.structs.replace(r, ts=r.ts + 1)
    elif how == "edit_body":
        records[where] = msgspec.structs.replace(r, body=r.body[:-1] + bytes([r.body[-1] ^ 1]))
    elif how == "drop":
        del records[where]
    elif how == "duplicate":
        records.insert(where, r)
    else:
        other = (where + 1) % len(records)
        records[where], records[other] = records[other], records[where]
    assert not verify(records, head=LOG[-1].hash).ok
