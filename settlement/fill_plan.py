"""The typed values of a fill's plan (settlement/dvp.py): what leaves the seller per key,
and every movement of the fill.

Apart from settlement/dvp.py so that the compiled build (README, "The compiled core") can
compile the DvP step: mypyc builds a class it does not compile natively without the keywords
of its class statement, so these Structs' `frozen=True, gc=False` would be silently lost.
Modules that define Structs stay pure Python in both builds.
"""

from __future__ import annotations

import msgspec

from settlement.events import Settled
from settlement.ledger import Account, CashHold, CreditHold
from settlement.log import LogRecord
from settlement.serials import Key, Range, SerialRange

Parts = list[tuple[Key, int]]  # (key, qty) per part of a sell hold


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """The serials of one key that leave the seller: the lowest `qty` of its range list
    `ranges`, which are its first `whole` ranges and, when the last one is split, the lowest
    part of the next (`rest` is what stays of it). `pieces` are the serials delivered, a
    sorted, merged range list of their own in the ledger's band numbers (handed over to the
    buyer on apply)."""

    key: Key
    qty: int
    ranges: list[Range]
    whole: int
    rest: Range | None
    pieces: list[Range]
    serials: list[SerialRange]  # the pieces as the serials and batches they are (the event's)


class FillPlan(msgspec.Struct, frozen=True, gc=False):
    """Every movement of one fill, checked against the ledger it was planned on; applied at
    once (before anything else changes the ledger) by `Ledger.apply_fill`, and only once.
    (Not tracked by the collector: short-lived, and nothing it refers to refers to it.)"""

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
