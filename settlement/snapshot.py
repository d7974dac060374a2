"""Snapshots: the whole state of a core as plain data, independent of class layout.

`dump(core)` writes `[FORMAT, body]` as msgpack, where `body` maps a section name to plain
lists, ints, strings and booleans (and the reference data's own msgspec encoding: projects,
series, rule versions); `load(data)` builds a new core from it through the classes' own
constructors. Nothing in it names a class or an attribute, so a snapshot written by the pure
Python build restores in the compiled one and back (README, "The compiled core"), and a
class may change its layout without breaking the snapshots in a data folder: only a change
of this format does, and it gets a new `FORMAT`.

What it holds is the canonical walk's content (settlement/state.py) and what that walk leaves
out but behaviour or queries read:

- every dict in its iteration order (books, accounts, holds, keys, labels, ...), since a
  mass cancel, a catalogue change or a basket walks some of them in that order;
- each open order's lifecycle status, the open orders' index order, the GTD heap as it is;
- each series' eligible keys in allocation order, and the last trade price of each series;
- each account's available credits per key and the catalogue's `due`, which are derived
  but kept as they are rather than recomputed.

Left out, and rebuilt on load: cancelled orders still sitting in a level's queue and stale
heap entries of a book (neither is ever seen: matching skips them), the currency of each
series (its series says it), the fee copies of the ledger, the scope indexes (from known and
retired serials: `Ledger.scopes`) and the rule cache.

An integer outside msgpack's range (only in a state past the limits, which `Core.restore`
then refuses) is written as the state hash writes it, an extension carrying its digits.
Range lists are flattened to `[first, last, first, last, ...]`; keys are `[project,
vintage]` pairs. Records still pending in the settlement log (none after a drain, which is
when the journal snapshots) travel as their encoded bytes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from engine.book import Order
from engine.commands import SelfTrade, Side, TimeInForce
from engine.reference import Project, Series
from settlement.catalogue_types import RuleVersion
from settlement.ledger import Account, CashHold, CreditHold
from settlement.log import decode_record, encode_record
from settlement.serials import Key, Range
from settlement.state import BIG_INT_EXT, _big_ints_as_ext
from settlement.state import _order as _walked_order

if TYPE_CHECKING:
    from settlement.core import Core

FORMAT = "tonne-snapshot-1"

_encode = msgspec.msgpack.Encoder().encode


def _ext(code: int, data: memoryview) -> Any:
    if code != BIG_INT_EXT:
        raise SnapshotError(f"unknown msgpack extension {code}")
    return int(bytes(data))


_decode = msgspec.msgpack.Decoder(ext_hook=_ext).decode
_SIDE = {s.value: s for s in Side}
_TIF = {t.value: t for t in TimeInForce}
_STP = {s.value: s for s in SelfTrade}


class SnapshotError(ValueError):
    """Bytes that are not a snapshot of a format this version reads."""


# -- dump ---------------------------------------------------------------------------------------


def dump(core: Core) -> bytes:
    """The state of `core` as `FORMAT` bytes."""
    body = {
        "config": _config(core),
        "projects": list(core.projects.values()),
        "exchange": _exchange(core),
        "ledger": _ledger(core),
        "keys": [[sid, [list(k) for k in keys]] for sid, keys in core.keys.items()],
        "last_price": list(core.last_price.items()),
        "catalogue": _catalogue(core),
    }
    try:
        return _encode([FORMAT, body])
    except OverflowError:  # past the limits (a core lifted as before them): restore refuses it
        return _encode([FORMAT, _big_ints_as_ext(body)])


def _config(core: Core) -> dict[str, Any]:
    ledger = core.ledger
    return {
        "maker_fee_bps": core.fees.maker_bps,
        "taker_fee_bps": core.fees.taker_bps,
        "currencies": list(ledger.currencies),
        "fee_account": ledger.fee_account,
        "cash_total_max": ledger.cash_total_max,
        "credits_total_max": ledger.credits_total_max,
        "coid_window": core.exchange.coid_window,
    }


def _order(o: Order) -> list[Any]:
    """A resting order as the state hash walks it, and its status (which the hash leaves
    out: it follows from the rest, but the restored order must carry it)."""
    walked: list[Any] = _walked_order(o)
    walked.append(o.status)
    return walked


def _exchange(core: Core) -> dict[str, Any]:
    ex = core.exchange
    books = []
    for b in ex.books.values():
        sides = []
        for levels, sign in ((b.bids, -1), (b.asks, 1)):
            sides.append(
                [
                    [key * sign, [_order(o) for o in levels[key].orders if o.qty]]
                    for key in sorted(levels)
                ]
            )
        books.append([b.series, b.halted, b.seq, b.ref_price, sides])
    return {
        "books": books,
        "open": list(ex.open_orders),
        "by_coid": list(ex.open_by_coid),
        "coids": [[a, list(recent)] for a, recent in ex.coids_recent.items()],
        "ids": [ex.next_order_id, ex.next_trade_id],
        "gtd": [x for entry in ex._gtd for x in entry],
    }


def _flat(ranges: list[Range]) -> list[int]:
    return [x for r in ranges for x in r]


def _keyed(d: dict[Key, Any]) -> list[list[Any]]:
    return [[k[0], k[1], v] for k, v in d.items()]


def _keyed_ranges(d: dict[Key, list[Range]]) -> list[list[Any]]:
    return [[k[0], k[1], _flat(r)] for k, r in d.items()]


def _ledger(core: Core) -> dict[str, Any]:
    ledger = core.ledger
    accounts = [
        [
            a.id,
            list(a.cash.items()),
            list(a.cash_held.items()),
            _keyed_ranges(a.credits),
            _keyed(a.credit_qty),
            _keyed(a.credits_held),
        ]
        for a in ledger.accounts.values()
    ]
    return {
        "accounts": accounts,
        "cash_holds": [[o, h.account, h.currency, h.amount] for o, h in ledger.cash_holds.items()],
        "credit_holds": [
            [o, h.account, h.series, h.qty, [[k[0], k[1], n] for k, n in h.parts]]
            for o, h in ledger.credit_holds.items()
        ],
        "known": _keyed_ranges(ledger.known),
        "retired": _keyed_ranges(ledger.retired),
        "batches": _keyed(ledger.batches),
        "cash_net": list(ledger.cash_net.items()),
        "credits_net": _keyed(ledger.credits_net),
        "next_cert": ledger.next_cert,
        "log": [
            ledger.log.head_seq,
            ledger.log.head_hash,
            [encode_record(r) for r in ledger.log.pending],
        ],
    }


def _catalogue(core: Core) -> dict[str, Any]:
    cat = core.catalogue
    return {
        "labels": [
            [p, v, [[name, *change] for name, change in ls.items()]]
            for (p, v), ls in cat.labels.items()
        ],
        "suspended": list(cat.suspended.items()),
        "rules": list(cat.rules.items()),
        "governing": list(cat.governing.items()),
        "fill_version": list(cat.fill_version.items()),
        "pending": [[e, seq, kind, list(change)] for e, seq, kind, change in cat.pending],
        "seq": cat.seq,
        "year": cat.year,
        "due": cat.due,
    }


# -- load ---------------------------------------------------------------------------------------


def is_snapshot(data: bytes) -> bool:
    """Whether `data` starts as this module's snapshots do (a msgpack array of two)."""
    return data[:1] == b"\x92"


def load(data: bytes) -> Core:
    """The core a `FORMAT` snapshot holds; `SnapshotError` if it is not one."""
    from settlement.core import Core

    try:
        decoded = _decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not a snapshot: {exc}") from exc
    if not (type(decoded) is list and len(decoded) == 2 and type(decoded[1]) is dict):
        raise SnapshotError("not a snapshot")
    if decoded[0] != FORMAT:
        raise SnapshotError(f"snapshot format {decoded[0]!r}: this version reads {FORMAT!r}")
    body = decoded[1]
    try:
        core = Core(**body["config"])
        core.projects = {p.id: p for p in msgspec.convert(body["projects"], list[Project])}
        _load_exchange(core, body["exchange"])
        _load_ledger(core, body["ledger"])
        core.keys = {sid: [(p, v) for p, v in keys] for sid, keys in body["keys"]}
        core.last_price = dict(body["last_price"])
        _load_catalogue(core, body["catalogue"])
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"a damaged {FORMAT} snapshot: {exc!r}") from exc
    return core


def _pairs(flat: list[int]) -> list[Range]:
    it = iter(flat)
    return list(zip(it, it, strict=True))


def _load_exchange(core: Core, body: dict[str, Any]) -> None:
    ex = core.exchange
    orders: dict[int, Order] = {}
    scratch: list[Any] = []
    for series_raw, halted, seq, ref_price, sides in body["books"]:
        series = msgspec.convert(series_raw, Series)
        book = ex.add_series(series)
        core.currency[series.id] = series.currency
        book.set_reference_price(ref_price)
        book.halted = halted
        for levels in sides:
            for price, queue in levels:
                for oid, acct, coid, side, p, qty, tif, exp, stp, post_only, status in queue:
                    assert p == price, "an order sits at its level's price"
                    o = Order(
                        oid,
                        series.id,
                        acct,
                        coid,
                        _SIDE[side],
                        p,
                        qty,
                        _TIF[tif],
                        exp,
                        _STP[stp],
                        post_only,
                        status,
                    )
                    book.rest(o, scratch)
                    orders[oid] = o
        scratch.clear()
        book.seq = seq
    ex.open_orders = {oid: orders[oid] for oid in body["open"]}
    if len(ex.open_orders) != len(orders):
        raise SnapshotError("the open-order index and the books disagree")
    by_coid: dict[int, dict[str, Order]] = {a: {} for a in body["by_coid"]}
    for o in ex.open_orders.values():
        by_coid.setdefault(o.account, {})[o.client_order_id] = o
    ex.open_by_coid = by_coid
    ex.coids_recent = {a: deque(coids) for a, coids in body["coids"]}
    ex.coids_seen = {a: set(coids) for a, coids in body["coids"]}
    ex.next_order_id, ex.next_trade_id = body["ids"]
    ex._gtd = _pairs(body["gtd"])


def _load_ledger(core: Core, body: dict[str, Any]) -> None:
    ledger = core.ledger
    currencies = ledger.currencies
    ledger.accounts = {}
    for aid, cash, cash_held, credits, credit_qty, credits_held in body["accounts"]:
        a = ledger.accounts[aid] = Account(aid, currencies)
        a.cash = dict(cash)
        a.cash_held = dict(cash_held)
        a.credits = {(p, v): _pairs(r) for p, v, r in credits}
        a.credit_qty = {(p, v): n for p, v, n in credit_qty}
        a.credits_held = {(p, v): n for p, v, n in credits_held}
    for oid, acct, currency, amount in body["cash_holds"]:
        ledger.cash_holds[oid] = CashHold(acct, currency, amount)
    for oid, acct, series, qty, parts in body["credit_holds"]:
        h = ledger.credit_holds[oid] = CreditHold(acct, series)
        h.parts = [[(p, v), n] for p, v, n in parts]
        h.qty = qty
    ledger.known = {(p, v): _pairs(r) for p, v, r in body["known"]}
    ledger.retired = {(p, v): _pairs(r) for p, v, r in body["retired"]}
    ledger.batches = {(p, v): names for p, v, names in body["batches"]}
    ledger.scoped, ledger.scoped_retired = ledger.scopes()
    ledger.cash_net = dict(body["cash_net"])
    ledger.credits_net = {(p, v): n for p, v, n in body["credits_net"]}
    ledger.next_cert = body["next_cert"]
    head_seq, head_hash, pending = body["log"]
    ledger.log.head_seq = head_seq
    ledger.log.head_hash = head_hash
    ledger.log.pending = [decode_record(r) for r in pending]


def _load_catalogue(core: Core, body: dict[str, Any]) -> None:
    cat = core.catalogue
    cat.labels = {
        (p, v): {name: (present, effective, seq) for name, present, effective, seq in ls}
        for p, v, ls in body["labels"]
    }
    cat.suspended = dict(body["suspended"])
    cat.rules = {
        sid: msgspec.convert(versions, list[RuleVersion]) for sid, versions in body["rules"]
    }
    cat.governing = dict(body["governing"])
    cat.fill_version = dict(body["fill_version"])
    cat.pending = [(e, seq, kind, tuple(change)) for e, seq, kind, change in body["pending"]]
    cat.seq = body["seq"]
    cat.year = body["year"]
    cat.due = body["due"]
