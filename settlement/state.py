"""The canonical walk of a core's state, which `Core.state_hash` hashes.

Everything that decides future behaviour, as plain lists, ints and strings in a fixed
order: sorted keys, books best level first with live orders in time priority, counters,
client order ids, accounts, holds, known and retired serials, net totals, log head. Never a
`set`, a dict's insertion order or a pickle, so equal states hash equally in any process.
Derived indexes (eligible keys per series, currencies per series) are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from settlement.core import Core


def canonical(core: Core) -> list[Any]:
    ex, ledger = core.exchange, core.ledger
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
                sorted([list(k), r] for k, r in a.credits.items() if r),
                sorted([list(k), n] for k, n in a.credits_held.items() if n),
            ]
        )
    return [
        "tonne-core-1",
        [core.fees.maker_bps, core.fees.taker_bps, ledger.fee_account, ledger.currencies],
        [core.projects[p] for p in sorted(core.projects)],
        books,
        [ex.next_order_id, ex.next_trade_id],
        sorted([a, sorted(s)] for a, s in ex.coids_seen.items()),
        accounts,
        sorted([o, h.account, h.currency, h.amount] for o, h in ledger.cash_holds.items()),
        sorted(
            [o, h.account, h.series, h.qty, [[list(k), n] for k, n in h.parts]]
            for o, h in ledger.credit_holds.items()
        ),
        sorted([list(k), r] for k, r in ledger.known.items() if r),
        sorted([list(k), r] for k, r in ledger.retired.items() if r),
        sorted(ledger.cash_net.items()),
        sorted([list(k), n] for k, n in ledger.credits_net.items() if n),
        [ledger.next_cert, ledger.log.head_seq, ledger.log.head_hash],
    ]


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
