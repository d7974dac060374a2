"""Snapshots independent of class layout (settlement/snapshot.py): a restored core is the
same state with the same future, in either build, and nothing of a state is left behind."""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
import pytest

from bench.funding import funding_commands, with_cash_limits
from bench.workload import generate, standard_series
from engine.book import Level, Order, OrderBook
from engine.commands import MassCancel, NewOrder, Side, TimeInForce
from engine.exchange import Exchange
from settlement import snapshot
from settlement.build import compiled
from settlement.catalogue import Catalogue
from settlement.core import Core
from settlement.ledger import Account, CashHold, CreditHold, Ledger
from settlement.log import SettlementLog

ACCOUNTS = 20


def _workload_core(commands: int, seed: int = 7) -> tuple[Core, list[Any]]:
    """A funded core of the standard series, and the workload's commands to apply to it."""
    w = generate(commands, seed=seed, accounts=ACCOUNTS)
    cmds = with_cash_limits(w.commands)
    core = Core(series=standard_series(), maker_fee_bps=5, taker_fee_bps=10)
    for c in funding_commands(standard_series(), ACCOUNTS, cmds[0].ts - 1):
        core.apply(c)
    core.drain_records()
    return core, cmds


def _gtd_orders(core: Core, ts: int) -> list[NewOrder]:
    """Resting GTD buys that expire at different times after `ts`, out of id order."""
    sid = next(iter(core.exchange.books))
    book = core.exchange.books[sid]
    price = max(1, (book.best_bid() or book.ref_price or 100) - 5 * book.series.tick)
    price -= price % book.series.tick
    return [
        NewOrder(
            account=1 + i % ACCOUNTS,
            client_order_id=f"gtd-{i}",
            series=sid,
            side=Side.BUY,
            price=price,
            qty=book.series.lot,
            tif=TimeInForce.GTD,
            expire_ts=ts + 1_000 * (7 - i),
            ts=ts,
        )
        for i in range(6)
    ]


def test_a_restored_core_has_the_same_future_events_and_state_hashes() -> None:
    core, cmds = _workload_core(6_000)
    half = len(cmds) // 2
    for c in cmds[:half]:
        core.apply(c)
    ts = cmds[half - 1].ts
    for c in _gtd_orders(core, ts):
        core.apply(c)
    core.drain_records()
    restored = Core.restore(core.snapshot())
    assert restored.state_hash() == core.state_hash()
    assert restored.snapshot() == core.snapshot()
    restored.check_invariants()
    end = cmds[-1].ts
    mass = [MassCancel(account=a, ts=end + a) for a in range(1, ACCOUNTS + 1, 3)]
    for c in cmds[half:] + mass:  # a mass cancel walks an account's orders in index order
        assert restored.apply(c) == core.apply(c), c
        assert restored.drain_records() == core.drain_records()
    assert restored.state_hash() == core.state_hash()
    assert restored.snapshot() == core.snapshot()


def test_a_snapshot_is_plain_data_that_names_no_class() -> None:
    core, cmds = _workload_core(2_000)
    for c in cmds:
        core.apply(c)
    data = core.snapshot()
    assert snapshot.is_snapshot(data)
    fmt, body = msgspec.msgpack.decode(data)
    assert fmt == snapshot.FORMAT
    assert sorted(body) == [
        "catalogue",
        "config",
        "exchange",
        "keys",
        "last_price",
        "ledger",
        "projects",
    ]
    for name in (b"settlement.", b"engine.", b"__"):
        assert name not in data


def test_bytes_that_are_not_a_snapshot_of_this_format_are_refused() -> None:
    core, _ = _workload_core(10)
    fmt, body = msgspec.msgpack.decode(core.snapshot())
    other = msgspec.msgpack.encode(["tonne-snapshot-0", body])
    with pytest.raises(ValueError, match="tonne-snapshot-0"):
        Core.restore(other)
    del body["ledger"]["accounts"]
    with pytest.raises(ValueError, match="damaged"):
        Core.restore(msgspec.msgpack.encode([fmt, body]))
    for junk in (b"\x92\xc1", b"", b"\x00", msgspec.msgpack.encode([fmt, 1])):
        with pytest.raises(ValueError):
            Core.restore(junk)


# Every attribute of every object a core's state is made of, and where the snapshot has it:
# "kept" travels in the snapshot, "rebuilt" is derived again on load. A new attribute fails
# this test until settlement/snapshot.py carries it or rebuilds it (and says so here).
STATE: dict[type, dict[str, str]] = {
    Core: {
        "fees": "kept (config)",
        "_max_bps": "rebuilt: from fees",
        "exchange": "kept",
        "ledger": "kept",
        "projects": "kept",
        "currency": "rebuilt: from each book's series",
        "keys": "kept",
        "catalogue": "kept",
        "last_price": "kept",
        "_retiring": "rebuilt: None (set only while a buy-and-retire order is applied)",
    },
    Exchange: {
        "coid_window": "kept (config)",
        "books": "kept",
        "open_orders": "kept: the index order",
        "open_by_coid": "kept: its accounts; each one's orders in the index order",
        "coids_recent": "kept",
        "coids_seen": "rebuilt: the set of coids_recent",
        "next_order_id": "kept",
        "next_trade_id": "kept",
        "_gtd": "kept: the heap as it is",
    },
    OrderBook: {
        "series": "kept",
        "id": "rebuilt: series.id",
        "halted": "kept",
        "seq": "kept",
        "bids": "kept: live orders of each level",
        "asks": "kept: live orders of each level",
        "_bid_heap": "rebuilt: the levels' keys",
        "_ask_heap": "rebuilt: the levels' keys",
        "bid_top": "rebuilt: the best level",
        "ask_top": "rebuilt: the best level",
        "ref_price": "kept",
        "band_low": "rebuilt: from ref_price",
        "band_high": "rebuilt: from ref_price",
    },
    Level: {"qty": "rebuilt", "orders": "kept: the live ones", "dead": "rebuilt: 0"},
    Ledger: {
        "cash_total_max": "kept (config)",
        "credits_total_max": "kept (config)",
        "currencies": "kept (config)",
        "fees": "kept (config)",
        "maker_bps": "rebuilt: from fees",
        "taker_bps": "rebuilt: from fees",
        "fee_account": "kept (config)",
        "accounts": "kept",
        "cash_holds": "kept",
        "credit_holds": "kept",
        "known": "kept",
        "retired": "kept",
        "batches": "kept",
        "scoped": "rebuilt: Ledger.scopes",
        "scoped_retired": "rebuilt: Ledger.scopes",
        "cash_net": "kept",
        "credits_net": "kept",
        "log": "kept",
        "next_cert": "kept",
    },
    Account: {
        "id": "kept",
        "cash": "kept",
        "cash_held": "kept",
        "credits": "kept",
        "credit_qty": "kept",
        "credits_held": "kept",
    },
    CashHold: {"account": "kept", "currency": "kept", "amount": "kept"},
    CreditHold: {"account": "kept", "series": "kept", "parts": "kept", "qty": "kept"},
    SettlementLog: {"head_seq": "kept", "head_hash": "kept", "pending": "kept"},
    Catalogue: {
        "labels": "kept",
        "suspended": "kept",
        "rules": "kept",
        "governing": "kept",
        "fill_version": "kept",
        "pending": "kept: the heap as it is",
        "seq": "kept",
        "year": "kept",
        "due": "kept",
        "_parsed": "rebuilt: a cache, empty",
    },
}


def _attributes(obj: object) -> set[str]:
    """The instance attributes of `obj`, in either build (a compiled class has no __dict__;
    mypyc lists its attributes in __mypyc_attrs__)."""
    cls = type(obj)
    if hasattr(cls, "__mypyc_attrs__"):
        return {a for a in cls.__mypyc_attrs__ if a != "__dict__" and hasattr(obj, a)}
    slots = [s for c in cls.__mro__ for s in getattr(c, "__slots__", ())]
    return set(getattr(obj, "__dict__", {})) | {s for s in slots if hasattr(obj, s)}


def test_every_attribute_of_a_core_is_kept_or_rebuilt_by_the_snapshot() -> None:
    core, cmds = _workload_core(3_000)
    for c in cmds:
        core.apply(c)
    book = next(b for b in core.exchange.books.values() if b.bids)
    samples: list[object] = [
        core,
        core.exchange,
        book,
        next(iter(book.bids.values())),
        core.ledger,
        next(iter(core.ledger.accounts.values())),
        next(iter(core.ledger.cash_holds.values())),
        next(iter(core.ledger.credit_holds.values())),
        core.ledger.log,
        core.catalogue,
    ]
    for obj in samples:
        got, want = _attributes(obj), set(STATE[type(obj)])
        assert got <= want and want - got <= {"_retiring"}, type(obj).__name__
    assert Order.__struct_fields__ == (
        "order_id",
        "series",
        "account",
        "client_order_id",
        "side",
        "price",
        "qty",
        "tif",
        "expire_ts",
        "stp",
        "post_only",
        "status",
    ), "every field of an open order is in settlement/snapshot.py's _order"


@pytest.mark.skipif(not compiled(), reason="the pure build reads pickled snapshots")
def test_the_compiled_build_refuses_a_pickled_snapshot_with_a_clear_reason() -> None:
    with pytest.raises(ValueError, match="compiled build does not read pickles"):
        Core.restore(pickle.dumps({"a": "pickle"}, protocol=5))
