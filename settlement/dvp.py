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

`settle_fill` is the two in a row, which is what `Core` runs for every `Trade`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from engine.commands import Side
from engine.events import Trade
from settlement.events import Settled
from settlement.fees import BPS
from settlement.ledger import Account, CashHold, CreditHold, Ledger, SettlementError
from settlement.log import LogRecord
from settlement.serials import BAND_MASK, BAND_SHIFT, Key, Range, SerialRange

BUY = Side.BUY
# The plan's values are built with tuple.__new__: the generated __new__ of a NamedTuple, and
# SerialRange's, are Python functions, a frame per plan, per key and per piece delivered
# (measured: 2-3% of the settlement core's time on the bench workload). SerialRange(project,
# vintage, first, last) is those four items.
_tuple_new = tuple.__new__
Parts = list[tuple[Key, int]]  # (key, qty) per part of a sell hold


class Delivery(NamedTuple):
    """The serials of one key that leave the seller: the lowest `qty` of its range list
    `ranges`, which are its first `whole` ranges and, when the last one is split, the lowest
    part of the next (`rest` is what stays of it). `pieces` are the serials delivered, a
    sorted, merged range list of their own (handed over to the buyer on apply)."""

    key: Key
    qty: int
    ranges: list[Range]
    whole: int
    rest: Range | None
    pieces: list[Range]


class FillPlan(NamedTuple):
    """Every movement of one fill, checked against the ledger it was planned on; applied at
    once (before anything else changes the ledger) by `Ledger.apply_fill`, and only once."""

    cash_hold: CashHold
    credit_hold: CreditHold
    buyer: Account
    seller: Account
    fee_acct: Account
    currency: str
    cost: int  # the buyer pays: notional + buyer fee, from its hold
    proceeds: int  # the seller receives: notional - seller fee
    fees: int  # the fee account receives: both fees
    used: Parts  # (key, qty) taken from the sell hold's parts, in order
    deliveries: list[Delivery]  # per key, each key once
    body: Settled
    record: LogRecord


def settle_fill(ledger: Ledger, trade: Trade, currency: str) -> Settled:
    """Settle `trade` (of a series traded in `currency`); return the movement event."""
    plan = plan_fill(ledger, trade, currency)
    ledger.apply_fill(plan)
    return plan.body


def plan_fill(ledger: Ledger, trade: Trade, currency: str) -> FillPlan:
    """Check `trade` against the holds and compute all its movements; changes nothing.
    `SettlementError` if the holds do not cover it (a bug upstream: matching needs holds)."""
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
    seller_credits = seller.credits
    if part[1] >= qty:  # the common case: one key
        key = part[0]
        used = [(key, qty)]
        deliveries = [_lowest(key, qty, seller_credits.get(key))]
    else:
        used, wanted = _parts_used(credit_hold.parts, qty)
        deliveries = [_lowest(key, m, seller_credits.get(key)) for key, m in wanted]
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
        _delivered(ledger.batches, deliveries),
        trade.ts,
    )
    return _tuple_new(
        FillPlan,
        (
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
        ),
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


def _lowest(key: Key, qty: int, ranges: list[Range] | None) -> Delivery:
    """The lowest `qty` serials of the seller's range list of `key`."""
    if not ranges:
        raise SettlementError(f"the seller holds {key} but owns no serials of it")
    a, b = ranges[0]
    c = b - a + 1
    if c > qty:  # the lowest range alone is enough: split it
        return _tuple_new(Delivery, (key, qty, ranges, 0, (a + qty, b), [(a, a + qty - 1)]))
    if c == qty:
        return _tuple_new(Delivery, (key, qty, ranges, 1, None, ranges[:1]))
    need = qty - c
    for whole in range(1, len(ranges)):
        a, b = ranges[whole]
        c = b - a + 1
        if c < need:
            need -= c
        elif c == need:
            return _tuple_new(Delivery, (key, qty, ranges, whole + 1, None, ranges[: whole + 1]))
        else:
            pieces = ranges[:whole]
            pieces.append((a, a + need - 1))
            return _tuple_new(Delivery, (key, qty, ranges, whole, (a + need, b), pieces))
    raise SettlementError(f"the seller owns fewer serials of {key} than it holds")


def _delivered(
    batches: dict[Key, list[str]], deliveries: list[Delivery]
) -> tuple[SerialRange, ...]:
    """The delivered pieces as the serials and batches they are (band numbers stay inside
    the ledger)."""
    out: list[SerialRange] = []
    for key, _, _, _, _, pieces in deliveries:
        project, vintage = key
        names = batches.get(key)
        if names is None:  # every serial of the key is batch-less (band 0)
            out += [_tuple_new(SerialRange, (project, vintage, x, y)) for x, y in pieces]
        else:
            out += [
                SerialRange(project, vintage, x & BAND_MASK, y & BAND_MASK, names[x >> BAND_SHIFT])
                for x, y in pieces
            ]
    return tuple(out)
