"""Delivery versus payment: one fill settled as one atomic ledger transaction.

Split as TigerBeetle splits a transfer, into a plan and an apply:

- `plan_fill` reads the ledger and changes nothing. It checks everything (both holds
  exist, belong to the fill's buyer and seller and cover the fill, in the series'
  currency) and computes every movement as typed values: the fees, the buyer's cost and
  the seller's proceeds, the parts of the sell hold the fill uses, per key a `Delivery`
  (the seller's lowest serials of each key its hold reserves, in the hold's order,
  splitting the last range), the `Settled` event and its chained log record (encoded and
  hashed here). A fill the holds do not cover raises `SettlementError`, and nothing has
  moved.
- `Ledger.apply_fill` applies a plan: plain arithmetic and list edits on the entries the
  plan found, nothing that can refuse or raise. So both legs move or neither does, by
  construction; there is no undo code.

The plan's values are frozen msgspec Structs, as the project's other values are: built in C
and read through slots. (As NamedTuples, whose `__new__` is Python and whose unpacking is
generic, they cost the settlement core 1.3% more instructions on the bench workload.)

`settle_fill` is the two in a row; `Core` runs them for every `Trade`.
"""

from __future__ import annotations

from typing import Any

from engine.commands import Side
from engine.events import Trade
from settlement.events import Settled, contract_fill
from settlement.fees import BPS
from settlement.fill_plan import Delivery as Delivery  # apart: see settlement/fill_plan.py
from settlement.fill_plan import FillPlan as FillPlan
from settlement.fill_plan import Parts
from settlement.ledger import Ledger, SettlementError
from settlement.serials import BAND_MASK, BAND_SHIFT, Key, Range, SerialRange

BUY = Side.BUY
# SerialRange's own __new__ is a Python function, a frame per piece delivered (2.5 to 5 a
# fill); SerialRange(project, vintage, first, last) is just these four items
_tuple_new = tuple.__new__


def settle_fill(ledger: Ledger, trade: Trade, currency: str) -> Settled:
    """Settle `trade` (of a series traded in `currency`); return the movement event."""
    return ledger.apply_fill(plan_fill(ledger, trade, currency))


def plan_fill(ledger: Ledger, trade: Trade, currency: str, rule_version: int = 0) -> FillPlan:
    """Check `trade` (of a contract's `rule_version`, or 0) against the holds and compute
    its movements; changes nothing. `SettlementError` if the holds do not cover it."""
    price, qty = trade.price, trade.qty
    if trade.aggressor is BUY:
        buy_id, sell_id = trade.taker_order_id, trade.maker_order_id
        buyer_id, seller_id = trade.taker_account, trade.maker_account
        buyer_bps, seller_bps = ledger.taker_bps, ledger.maker_bps
    else:
        buy_id, sell_id = trade.maker_order_id, trade.taker_order_id
        buyer_id, seller_id = trade.maker_account, trade.taker_account
        buyer_bps, seller_bps = ledger.maker_bps, ledger.taker_bps
    if price <= 0 or qty <= 0 or buyer_id == seller_id:
        raise SettlementError(f"trade {trade.trade_id}: not a fill between two accounts")
    notional = price * qty
    buyer_fee = notional * buyer_bps // BPS
    seller_fee = notional * seller_bps // BPS
    cost = notional + buyer_fee
    cash_hold = ledger.cash_holds.get(buy_id)
    credit_hold = ledger.credit_holds.get(sell_id)
    if cash_hold is None or cash_hold.amount < cost or cash_hold.currency != currency:
        raise SettlementError(f"trade {trade.trade_id}: buy order {buy_id} holds too little cash")
    if credit_hold is None or credit_hold.qty < qty:
        raise SettlementError(f"trade {trade.trade_id}: sell order {sell_id} holds too few credits")
    if cash_hold.account != buyer_id or credit_hold.account != seller_id:
        raise SettlementError(f"trade {trade.trade_id}: holds belong to other accounts")
    accounts = ledger.accounts  # a hold's account exists: holds are placed on accounts
    buyer = accounts[buyer_id]
    seller = accounts[seller_id]
    part = credit_hold.parts[0]
    owned, batches = seller.credits, ledger.batches
    if part[1] >= qty:  # the common case: one key
        key = part[0]
        used = [(key, qty)]
        d = _lowest(key, qty, owned.get(key), batches.get(key))
        deliveries, delivered = [d], tuple(d.serials)
    else:
        used, wanted = _parts_used(credit_hold.parts, qty)
        deliveries = [_lowest(k, m, owned.get(k), batches.get(k)) for k, m in wanted]
        delivered = tuple([r for d in deliveries for r in d.serials])
    body = Settled(
        trade.trade_id,
        trade.series,
        currency,
        price,
        qty,
        buyer_id,
        seller_id,
        buyer_fee,
        seller_fee,
        ledger.fee_account,
        delivered,
        trade.ts,
    )
    body = contract_fill(body, rule_version) if rule_version else body
    return FillPlan(
        cash_hold,
        credit_hold,
        buyer,
        seller,
        accounts[ledger.fee_account],
        currency,
        cost,
        notional - seller_fee,
        buyer_fee + seller_fee,
        used,
        deliveries,
        body,
        ledger.log.next_record(body),
    )


def _parts_used(parts: list[list[Any]], qty: int) -> tuple[Parts, Parts]:
    """The (key, qty) a fill of `qty` takes from a sell hold's parts, in order, and the
    same per key, each key once (a key may recur in a hold after an amend up)."""
    used: Parts = []
    left = qty
    for key, n in parts:
        m = n if n <= left else left
        used.append((key, m))
        left -= m
        if not left:
            break
    else:
        raise SettlementError(f"a sell hold's parts add up to less than {qty}")
    want: dict[Key, int] = {}
    for key, m in used:
        want[key] = want.get(key, 0) + m
    return used, list(want.items())


def _lowest(key: Key, qty: int, ranges: list[Range] | None, names: list[str] | None) -> Delivery:
    """The lowest `qty` serials of the seller's range list of `key`, and the same as the
    serials and batches they are (`names`: the key's batches; None: it has none)."""
    if not ranges:
        raise SettlementError(f"the seller holds {key} but owns no serials of it")
    a, b = ranges[0]
    c = b - a + 1
    whole, rest = 0, None
    if c > qty:  # the lowest range alone is enough: split it
        rest, pieces = (a + qty, b), [(a, a + qty - 1)]
    elif c == qty:
        whole, pieces = 1, ranges[:1]
    else:
        need = qty - c
        for whole in range(1, len(ranges)):
            a, b = ranges[whole]
            c = b - a + 1
            if c < need:
                need -= c
                continue
            pieces = ranges[: whole + 1]  # the whole ranges and the one that ends it
            if c == need:
                whole += 1
            else:
                pieces[-1] = (a, a + need - 1)
                rest = (a + need, b)
            break
        else:
            raise SettlementError(f"the seller owns fewer serials of {key} than it holds")
    project, vintage = key
    if names is None:  # every serial of the key is batch-less (band 0)
        serials = [_tuple_new(SerialRange, (project, vintage, x, y)) for x, y in pieces]
    else:  # band numbers stay inside the ledger
        serials = [
            SerialRange(project, vintage, x & BAND_MASK, y & BAND_MASK, names[x >> BAND_SHIFT])
            for x, y in pieces
        ]
    return Delivery(key, qty, ranges, whole, rest, pieces, serials)
