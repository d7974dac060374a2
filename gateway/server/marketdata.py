"""Market data fan-out: subscriptions, L2 snapshots and the public messages of core events.

The per-series sequence number is the engine's (`BookDelta.seq`, `OrderBook.seq`), so a
snapshot taken at `book.seq` and the updates that follow it line up exactly. The server
takes a snapshot while it processes a `subscribe`, and registers the subscription when that
batch is released (after the journal commit, in batch order): every update with a larger
seq is then released after it, and every update with a smaller or equal one before it. A
client that sees a seq other than last + 1 re-subscribes and gets a fresh snapshot.
"""

from __future__ import annotations

from typing import Any

from engine.book import OrderBook
from engine.events import BookDelta, StatusChanged, Trade
from gateway.server.session import Session
from gateway.wire import protocol as p


class MarketData:
    """Who is subscribed to which series, and how core events become public messages."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[Session]] = {}
        self.updates_sent = 0

    def snapshot(self, book: OrderBook, req_id: int = 0) -> p.BookSnapshot:
        bids, asks = book.depth()
        return p.BookSnapshot(series=book.id, seq=book.seq, bids=bids, asks=asks, req_id=req_id)

    def subscribe(self, session: Session, series: str) -> None:
        if session.closed:
            return
        self.subscribers.setdefault(series, set()).add(session)
        session.subscriptions.add(series)

    def unsubscribe(self, session: Session, series: str) -> None:
        subs = self.subscribers.get(series)
        if subs is not None:
            subs.discard(session)
        session.subscriptions.discard(series)

    def drop(self, session: Session) -> None:
        for series in list(session.subscriptions):
            self.unsubscribe(session, series)

    @staticmethod
    def public(event: Any) -> tuple[str, Any] | None:
        """(series, message) for an event the market sees, else None."""
        kind = type(event)
        if kind is BookDelta:
            return event.series, p.BookUpdate(
                series=event.series,
                seq=event.seq,
                side=event.side,
                price=event.price,
                qty=event.qty,
            )
        if kind is Trade:
            return event.series, p.PublicTrade(
                series=event.series,
                trade_id=event.trade_id,
                price=event.price,
                qty=event.qty,
                aggressor=event.aggressor,
                ts=event.ts,
            )
        if kind is StatusChanged:
            return event.series, p.SeriesStatus(
                series=event.series, halted=event.halted, ref_price=event.ref_price, ts=event.ts
            )
        return None

    def publish(self, series: str, msg: Any, touched: set[Session]) -> None:
        """Queue `msg` for every subscriber of `series`; the caller writes `touched` once."""
        subs = self.subscribers.get(series)
        if not subs:
            return
        for s in subs:
            s.out.append(msg)
            touched.add(s)
        self.updates_sent += len(subs)
