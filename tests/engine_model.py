"""A deliberately simple reference model of the matching engine, for the stateful test.

Obviously correct and slow: every book is one plain list of resting orders, sorted afresh on
every query; time priority is a global counter stamped when an order (re-)enters a book. It
is written from the rules (`engine.commands` docstrings, the issue), not from engine/book.py,
which it never imports. It emits the same events as `engine.Exchange` except BookDelta (the
test checks L2 deltas against the book separately) and with Rejected.text left empty.

Choices the rules leave open, fixed here and in the engine alike:
- a client order id is a duplicate while it is one of the account's last `coid_window` ids
  (of accepted orders) or the id of one of its open orders;
- validation order of a new order: series, halt, client order id (empty, duplicate),
  quantity (positive, lot, maximum), price (tick, band) or market TIF, expiry, notional,
  post-only;
- a mass cancel cancels oldest (in time priority) first; due GTD orders expire by
  (expire_ts, order_id);
- `max_notional` caps the notional of the order's arrival matching, in whole lots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.commands import (
    AdvanceTime,
    Amend,
    Cancel,
    Command,
    Halt,
    MassCancel,
    NewOrder,
    OrderType,
    Resume,
    SelfTrade,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.events import (
    Accepted,
    Amended,
    Cancelled,
    CancelReason,
    Event,
    Expired,
    Reason,
    Rejected,
    StatusChanged,
    Trade,
)
from engine.reference import Series

BUY, SELL = Side.BUY, Side.SELL


@dataclass
class MOrder:
    order_id: int
    account: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int
    tif: TimeInForce
    expire_ts: int
    stp: SelfTrade
    post_only: bool
    priority: int = 0  # smaller = earlier; stamped when the order enters a book


@dataclass
class MBook:
    series: Series
    ref_price: int
    halted: bool = False
    resting: list[MOrder] = field(default_factory=list)

    def band(self) -> tuple[int, int] | None:
        if not self.series.band_bps or not self.ref_price:
            return None
        width = self.ref_price * self.series.band_bps // 10_000
        return self.ref_price - width, self.ref_price + width

    def side(self, side: Side) -> list[MOrder]:
        """Resting orders on one side, best first (price, then time)."""
        orders = [o for o in self.resting if o.side is side]
        if side is BUY:
            return sorted(orders, key=lambda o: (-o.price, o.priority))
        return sorted(orders, key=lambda o: (o.price, o.priority))

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = []
        for side in (BUY, SELL):
            levels: dict[int, int] = {}
            for o in self.side(side):
                levels[o.price] = levels.get(o.price, 0) + o.qty
            out.append(list(levels.items()))
        return out[0], out[1]

    def queues(self) -> dict[tuple[Side, int], list[int]]:
        queues: dict[tuple[Side, int], list[int]] = {}
        for side in (BUY, SELL):
            for o in self.side(side):
                queues.setdefault((side, o.price), []).append(o.order_id)
        return queues


def _within(taker_side: Side, maker_price: int, limit: int | None) -> bool:
    """Whether a resting price is acceptable to a taker on `taker_side` (None = any)."""
    if limit is None:
        return True
    return maker_price <= limit if taker_side is BUY else maker_price >= limit


class Model:
    def __init__(self, series: list[Series], coid_window: int = 100_000) -> None:
        self.books = {s.id: MBook(s, s.ref_price) for s in series}
        self.coid_window = coid_window
        self.coids_used: dict[int, list[str]] = {}  # every id each account used, in order
        self.next_order_id = 1
        self.next_trade_id = 1
        self._priority = 0

    # -- queries ------------------------------------------------------------------------

    def open_orders(self) -> dict[int, MOrder]:
        return {o.order_id: o for b in self.books.values() for o in b.resting}

    # -- commands -----------------------------------------------------------------------

    def next_expiry_ts(self) -> int | None:
        """The earliest expiry among open GTD orders, None when there is none."""
        gtd = [o.expire_ts for o in self.open_orders().values() if o.tif is TimeInForce.GTD]
        return min(gtd) if gtd else None

    def submit(self, cmd: Command) -> list[Event]:
        events: list[Event] = []
        self._expire(cmd.ts, events)
        if isinstance(cmd, AdvanceTime):
            pass  # the expiry above is all it does
        elif isinstance(cmd, NewOrder):
            self._new(cmd, events)
        elif isinstance(cmd, Cancel):
            self._cancel_cmd(cmd, events)
        elif isinstance(cmd, Amend):
            self._amend(cmd, events)
        elif isinstance(cmd, MassCancel):
            self._mass_cancel(cmd, events)
        else:
            self._operator(cmd, events)
        return events

    def _expire(self, ts: int, events: list[Event]) -> None:
        due = [o for o in self.open_orders().values() if o.tif is TimeInForce.GTD]
        due = [o for o in due if o.expire_ts <= ts]
        for o in sorted(due, key=lambda o: (o.expire_ts, o.order_id)):
            self.books[o.series].resting.remove(o)
            events.append(Expired(o.order_id, o.account, o.series, o.side, o.qty, ts))

    def _reject_new(self, cmd: NewOrder) -> Reason | None:
        book = self.books.get(cmd.series)
        if book is None:
            return Reason.UNKNOWN_SERIES
        if book.halted:
            return Reason.SERIES_HALTED
        if not cmd.client_order_id:
            return Reason.INVALID_CLIENT_ORDER_ID
        recent = self.coids_used.get(cmd.account, [])[-self.coid_window :]
        live = [o.client_order_id for o in self.open_orders().values() if o.account == cmd.account]
        if cmd.client_order_id in recent or cmd.client_order_id in live:
            return Reason.DUPLICATE_CLIENT_ORDER_ID
        reason = self._reject_qty(book, cmd.qty)
        if reason is not None:
            return reason
        market = cmd.type is OrderType.MARKET
        if not market:
            reason = self._reject_price(book, cmd.price)
            if reason is not None:
                return reason
        elif cmd.tif in (TimeInForce.GTC, TimeInForce.GTD) or cmd.post_only:
            return Reason.INVALID_TIF
        if cmd.tif is TimeInForce.GTD:
            if cmd.expire_ts <= cmd.ts:
                return Reason.INVALID_EXPIRY
        elif cmd.expire_ts != 0:
            return Reason.INVALID_EXPIRY
        if cmd.max_notional < 0:
            return Reason.INVALID_QUANTITY
        if cmd.post_only:
            if cmd.tif in (TimeInForce.IOC, TimeInForce.FOK):
                return Reason.INVALID_TIF
            if self._would_trade(book, cmd.side, cmd.price):
                return Reason.POST_ONLY_WOULD_TRADE
        return None

    @staticmethod
    def _reject_qty(book: MBook, qty: int) -> Reason | None:
        if qty <= 0:
            return Reason.INVALID_QUANTITY
        if qty % book.series.lot != 0:
            return Reason.LOT_SIZE
        if qty > book.series.max_order_qty:
            return Reason.MAX_ORDER_SIZE
        return None

    @staticmethod
    def _reject_price(book: MBook, price: int) -> Reason | None:
        if price <= 0 or price % book.series.tick != 0:
            return Reason.INVALID_PRICE
        band = book.band()
        if band is not None and not band[0] <= price <= band[1]:
            return Reason.PRICE_OUT_OF_BAND
        return None

    @staticmethod
    def _would_trade(book: MBook, side: Side, price: int) -> bool:
        other = SELL if side is BUY else BUY
        return any(_within(side, o.price, price) for o in book.resting if o.side is other)

    def _new(self, cmd: NewOrder, events: list[Event]) -> None:
        reason = self._reject_new(cmd)
        if reason is not None:
            events.append(Rejected(cmd.account, cmd.client_order_id, 0, reason, "", cmd.ts))
            return
        book = self.books[cmd.series]
        order = MOrder(
            self.next_order_id,
            cmd.account,
            cmd.client_order_id,
            cmd.series,
            cmd.side,
            cmd.price,
            cmd.qty,
            cmd.tif,
            cmd.expire_ts,
            cmd.stp,
            cmd.post_only,
        )
        self.next_order_id += 1
        self.coids_used.setdefault(cmd.account, []).append(cmd.client_order_id)
        events.append(
            Accepted(
                order.order_id,
                cmd.account,
                cmd.client_order_id,
                cmd.series,
                cmd.side,
                cmd.price,
                cmd.qty,
                cmd.ts,
            )
        )
        market = cmd.type is OrderType.MARKET
        if market:
            band = book.band()
            limit = None if band is None else (band[1] if cmd.side is BUY else band[0])
        else:
            limit = cmd.price
        self._enter(book, order, limit, cmd.max_notional, market, cmd.ts, events)

    def _plan(
        self, book: MBook, taker: MOrder, limit: int | None, max_notional: int
    ) -> tuple[list[tuple[MOrder, int]], int, CancelReason | None]:
        """What matching `taker` would do, without doing it: a list of (maker, qty) where
        qty 0 means "cancelled by self-trade prevention", the quantity left, and why
        matching stopped early (None if it ran out of crossing orders or filled)."""
        steps: list[tuple[MOrder, int]] = []
        remaining = taker.qty
        notional_left = max_notional
        lot = book.series.lot
        for maker in book.side(SELL if taker.side is BUY else BUY):
            if not remaining:
                break
            if not _within(taker.side, maker.price, limit):
                break
            if maker.account == taker.account:
                if taker.stp is SelfTrade.CANCEL_INCOMING:
                    return steps, remaining, CancelReason.SELF_TRADE
                steps.append((maker, 0))
                if taker.stp is SelfTrade.CANCEL_BOTH:
                    return steps, remaining, CancelReason.SELF_TRADE
                continue
            qty = min(remaining, maker.qty)
            if max_notional:
                qty = min(qty, notional_left // (maker.price * lot) * lot)
                if qty == 0:
                    return steps, remaining, CancelReason.NOTIONAL_LIMIT
                notional_left -= qty * maker.price
            steps.append((maker, qty))
            remaining -= qty
            if maker.qty > qty:
                # The taker is done, or the notional cap bit: this maker stays first in line.
                if remaining and max_notional:
                    return steps, remaining, CancelReason.NOTIONAL_LIMIT
                break
        return steps, remaining, None

    def _enter(
        self,
        book: MBook,
        order: MOrder,
        limit: int | None,
        max_notional: int,
        market: bool,
        ts: int,
        events: list[Event],
    ) -> None:
        steps, remaining, stopped = self._plan(book, order, limit, max_notional)
        if order.tif is TimeInForce.FOK and remaining:
            events.append(
                Cancelled(
                    order.order_id,
                    order.account,
                    order.series,
                    order.side,
                    order.qty,
                    CancelReason.FILL_OR_KILL,
                    ts,
                )
            )
            return
        for maker, qty in steps:
            if qty == 0:
                book.resting.remove(maker)
                events.append(
                    Cancelled(
                        maker.order_id,
                        maker.account,
                        maker.series,
                        maker.side,
                        maker.qty,
                        CancelReason.SELF_TRADE,
                        ts,
                    )
                )
                continue
            events.append(
                Trade(
                    self.next_trade_id,
                    book.series.id,
                    maker.price,
                    qty,
                    order.side,
                    maker.order_id,
                    maker.account,
                    order.order_id,
                    order.account,
                    ts,
                )
            )
            self.next_trade_id += 1
            maker.qty -= qty
            if not maker.qty:
                book.resting.remove(maker)
        order.qty = remaining
        if not remaining:
            return
        if stopped is None and (market or order.tif in (TimeInForce.IOC, TimeInForce.FOK)):
            stopped = (
                CancelReason.MARKET_NO_LIQUIDITY if market else CancelReason.IMMEDIATE_OR_CANCEL
            )
        if stopped is not None:
            events.append(
                Cancelled(
                    order.order_id, order.account, order.series, order.side, remaining, stopped, ts
                )
            )
            return
        self._priority += 1
        order.priority = self._priority
        book.resting.append(order)

    def _find(self, account: int, order_id: int, coid: str) -> MOrder | None:
        for o in self.open_orders().values():
            if o.account != account:
                continue
            if order_id and o.order_id == order_id:
                return o
            if not order_id and coid and o.client_order_id == coid:
                return o
        return None

    def _cancel(self, o: MOrder, reason: CancelReason, ts: int, events: list[Event]) -> None:
        self.books[o.series].resting.remove(o)
        events.append(Cancelled(o.order_id, o.account, o.series, o.side, o.qty, reason, ts))

    def _cancel_cmd(self, cmd: Cancel, events: list[Event]) -> None:
        o = self._find(cmd.account, cmd.order_id, cmd.client_order_id)
        if o is None:
            events.append(
                Rejected(
                    cmd.account,
                    cmd.client_order_id,
                    cmd.order_id,
                    Reason.UNKNOWN_ORDER,
                    "",
                    cmd.ts,
                )
            )
            return
        self._cancel(o, CancelReason.USER, cmd.ts, events)

    def _reject_amend(self, cmd: Amend, o: MOrder) -> Reason | None:
        book = self.books[o.series]
        if book.halted:
            return Reason.SERIES_HALTED
        if cmd.qty:
            reason = self._reject_qty(book, cmd.qty)
            if reason is not None:
                return reason
        if cmd.price:
            reason = self._reject_price(book, cmd.price)
            if reason is not None:
                return reason
        price = cmd.price or o.price
        qty = cmd.qty or o.qty
        if price == o.price and qty == o.qty:
            return Reason.NO_CHANGE
        if o.post_only and price != o.price and self._would_trade(book, o.side, price):
            return Reason.POST_ONLY_WOULD_TRADE
        return None

    def _amend(self, cmd: Amend, events: list[Event]) -> None:
        o = self._find(cmd.account, cmd.order_id, "") if cmd.order_id else None
        if o is None:
            events.append(Rejected(cmd.account, "", cmd.order_id, Reason.UNKNOWN_ORDER, "", cmd.ts))
            return
        reason = self._reject_amend(cmd, o)
        if reason is not None:
            events.append(Rejected(cmd.account, o.client_order_id, o.order_id, reason, "", cmd.ts))
            return
        price = cmd.price or o.price
        qty = cmd.qty or o.qty
        keep = price == o.price and qty < o.qty
        events.append(
            Amended(
                o.order_id, o.account, o.series, o.side, o.price, o.qty, price, qty, keep, cmd.ts
            )
        )
        if keep:
            o.qty = qty
            return
        book = self.books[o.series]
        book.resting.remove(o)
        o.price, o.qty = price, qty
        self._enter(book, o, price, 0, False, cmd.ts, events)

    def _mass_cancel(self, cmd: MassCancel, events: list[Event]) -> None:
        if cmd.series and cmd.series not in self.books:
            events.append(Rejected(cmd.account, "", 0, Reason.UNKNOWN_SERIES, "", cmd.ts))
            return
        mine = [
            o
            for o in self.open_orders().values()
            if o.account == cmd.account and (not cmd.series or o.series == cmd.series)
        ]
        for o in sorted(mine, key=lambda o: o.priority):
            self._cancel(o, CancelReason.MASS_CANCEL, cmd.ts, events)

    def _operator(self, cmd: Command, events: list[Event]) -> None:
        assert isinstance(cmd, Halt | Resume | SetReferencePrice)
        book = self.books.get(cmd.series)
        if book is None:
            events.append(Rejected(0, "", 0, Reason.UNKNOWN_SERIES, "", cmd.ts))
            return
        if isinstance(cmd, SetReferencePrice):
            if cmd.price <= 0 or cmd.price % book.series.tick:
                events.append(Rejected(0, "", 0, Reason.INVALID_PRICE, "", cmd.ts))
                return
            book.ref_price = cmd.price
        else:
            book.halted = isinstance(cmd, Halt)
        events.append(StatusChanged(cmd.series, book.halted, book.ref_price, cmd.ts))
