"""The canonical walk of a core's state, which `Core.state_hash` hashes.

Everything that decides future behaviour, as plain lists, ints and strings in a fixed
order: sorted keys, books best level first with live orders in time priority, counters,
each account's client-order-id window (oldest first), accounts, holds, known and retired
serials (each range as its band, that is its registry batch, and serials; the batch names
of each band are in the config), net totals, log head. Never a `set`, a dict's insertion
order or a pickle, so equal states hash equally in any process.
Derived indexes (eligible keys per series, currencies per series, the ledger's scope
indexes) are left out.

`state_digest` hashes the walk's msgpack. The limits (settlement/limits.py) keep every
integer of a state the core reached by `apply` within 2^53; an integer msgpack cannot hold
(outside [-2^63, 2^64 - 1]: a state from before the limits, or a core built by hand) is
hashed as an extension value carrying its decimal digits, so that any state has a hash, and
a state msgpack can encode is hashed as its plain msgpack.
"""

from __future__ import annotations

from hashlib import sha256
from typing import TYPE_CHECKING, Any

import msgspec

from settlement.serials import BAND_MASK, BAND_SHIFT

if TYPE_CHECKING:
    from settlement.core import Core


VERSION = "tonne-core-4"  # 4: the catalogue (labels, suspensions, contract rules: issue 13)
V3 = "tonne-core-3"  # 3: registry batches (each range as [band, first, last])
V2 = "tonne-core-2"  # 2: limits and each account's client-order-id window, in order
LEGACY = "tonne-core-1"  # what snapshots written before version 2 recorded
OLDER = (V3, V2, LEGACY)  # formats a snapshot may have recorded its hash in, newest first
BATCHED = (VERSION, V3)  # the formats that write ranges with their bands


def canonical(core: Core, version: str = VERSION) -> list[Any]:
    """The walk, in `version`'s format. `LEGACY` (version 1) has neither the limits nor the
    order of the client-order-id windows: it is only for checking a hash that a snapshot
    recorded before version 2 (equal when no account's window has dropped an id yet).
    Versions 1 and 2 have no batches: their ranges are the ledger's numbers as they are,
    which for a ledger without batches (all a folder of those versions holds) are its
    serials. Version 3 has no catalogue: a folder of that version has had no registry
    event, and each of its generic series the rule of its standard, mitigation and vintage."""
    ex, ledger = core.exchange, core.ledger
    rs = _ranges if version in BATCHED else _plain
    books = []
    for sid in sorted(ex.books):
        b = ex.books[sid]
        sides = []
        for levels, sign in ((b.bids, -1), (b.asks, 1)):
            sides.append(
                [
                    [key * sign, [_order(o) for o in levels[key].orders if o.qty]]
                    for key in sorted(levels)
                ]
            )
        books.append([sid, b.series, b.halted, b.seq, b.ref_price, sides])
    accounts = []
    for aid in sorted(ledger.accounts):
        a = ledger.accounts[aid]
        accounts.append(
            [
                aid,
                sorted(a.cash.items()),
                sorted(a.cash_held.items()),
                sorted([list(k), rs(r)] for k, r in a.credits.items() if r),
                sorted([list(k), n] for k, n in a.credits_held.items() if n),
            ]
        )
    config: list[Any] = [
        core.fees.maker_bps,
        core.fees.taker_bps,
        ledger.fee_account,
        ledger.currencies,
    ]
    if version == LEGACY:
        coids = sorted([a, sorted(s)] for a, s in ex.coids_seen.items())
    else:
        config += [ledger.cash_total_max, ledger.credits_total_max, ex.coid_window]
        coids = sorted([a, list(r)] for a, r in ex.coids_recent.items())
    if version in BATCHED:
        config.append(sorted([list(k), names] for k, names in ledger.batches.items()))
    walk = [
        version,
        config,
        [core.projects[p] for p in sorted(core.projects)],
        books,
        [ex.next_order_id, ex.next_trade_id],
        coids,
        accounts,
        sorted([o, h.account, h.currency, h.amount] for o, h in ledger.cash_holds.items()),
        sorted(
            [o, h.account, h.series, h.qty, [[list(k), n] for k, n in h.parts]]
            for o, h in ledger.credit_holds.items()
        ),
        sorted([list(k), rs(r)] for k, r in ledger.known.items() if r),
        sorted([list(k), rs(r)] for k, r in ledger.retired.items() if r),
        sorted(ledger.cash_net.items()),
        sorted([list(k), n] for k, n in ledger.credits_net.items() if n),
        [ledger.next_cert, ledger.log.head_seq, ledger.log.head_hash],
    ]
    if version == VERSION:
        walk.append(core.catalogue.canonical())
    return walk


def _ranges(ranges: list[tuple[int, int]]) -> list[list[int]]:
    """A ledger range list as [band, first serial, last serial] items."""
    return [[a >> BAND_SHIFT, a & BAND_MASK, b & BAND_MASK] for a, b in ranges]


def _plain(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return ranges


def _order(o: Any) -> list[Any]:
    return [
        o.order_id,
        o.account,
        o.client_order_id,
        o.side.value,
        o.price,
        o.qty,
        o.tif.value,
        o.expire_ts,
        o.stp.value,
        o.post_only,
    ]


BIG_INT_EXT = 1  # msgpack extension code of an integer outside msgpack's range
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_encode = msgspec.msgpack.Encoder().encode


def state_digest(state: list[Any]) -> str:
    """Hex SHA-256 of the msgpack of a canonical walk, whatever integers it holds."""
    try:
        data = _encode(state)
    except OverflowError:
        data = _encode(_big_ints_as_ext(state))
    return sha256(data).hexdigest()


def _big_ints_as_ext(value: Any) -> Any:
    """`value` with every integer outside msgpack's range as an `Ext` (structs as maps)."""
    if isinstance(value, list | tuple):
        return [_big_ints_as_ext(v) for v in value]
    if isinstance(value, dict):
        return {k: _big_ints_as_ext(v) for k, v in value.items()}
    if isinstance(value, msgspec.Struct):
        return {f: _big_ints_as_ext(getattr(value, f)) for f in value.__struct_fields__}
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        return msgspec.msgpack.Ext(BIG_INT_EXT, str(value).encode())
    return value
