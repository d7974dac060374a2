"""An open order: the one record the engine allocates per order.

Apart from engine/book.py so that the compiled build (README, "The compiled core") can
compile the book: mypyc builds a class it does not compile natively without the keywords of
its class statement, so a msgspec Struct's options (`gc=False` here) would be silently lost.
Modules that define Structs stay pure Python in both builds.
"""

from __future__ import annotations

import msgspec

from engine.commands import SelfTrade, Side, TimeInForce
from engine.lifecycle import S_NEW


class Order(msgspec.Struct, gc=False):
    """An open order: the engine's only per-order allocation. A mutable C-level struct that
    the garbage collector does not track (it refers to no container), built positionally.
    `status` is an `engine.lifecycle.OrderStatus` as a plain int; it changes only along the
    lifecycle table, and an order unpickled from a snapshot older than statuses is NEW (an
    open order then was NEW or PARTIALLY_FILLED, and the table lets both go the same ways).
    """

    order_id: int
    series: str
    account: int
    client_order_id: str
    side: Side
    price: int
    qty: int
    tif: TimeInForce
    expire_ts: int
    stp: SelfTrade
    post_only: bool
    status: int = S_NEW
