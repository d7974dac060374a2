"""What the live `tonne demo` shows: trades, retirements, books and counters.

`Watch` reads the new messages of every participant's connection (its bounded history, as
the load's end check does) and turns them into rows: a trade once both sides' fills have
arrived (a side whose counterparty is not one of ours, your own client say, is shown after
`ONE_SIDED_S` with the other name unknown), a retirement for each certificate, and the
counters. `live_view` draws them with rich for a terminal, refreshed in place; `trade_line`
and `retirement_line` are the same rows as plain lines for pipes and `--plain`.
Pure apart from the `now_s` the caller passes in.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from engine.commands import Side
from gateway.cli.demo import money, serials_text
from gateway.client.client import Client, LocalBook
from gateway.wire import protocol as p

TAPE_ROWS = 12  # trades kept for the view
RETIREMENTS_ROWS = 5
PENDING_MAX = 2_000  # one-sided trades waiting for their other side, at most (then shown)
ONE_SIDED_S = 2.0  # a trade's other side not seen by then: not one of ours


@dataclass(frozen=True)
class TradeRow:
    trade_id: int
    series: str
    price: int
    qty: int
    currency: str
    buyer: str
    seller: str
    serials: str


@dataclass(frozen=True)
class RetireRow:
    cert_id: str
    holder: str
    beneficiary: str
    qty: int
    serials: str
    records: str


@dataclass
class Counters:
    orders: int = 0
    fills: int = 0  # fill reports, one per side of a trade
    trades: int = 0
    traded_t: int = 0
    retirements: int = 0
    retired_t: int = 0
    rejects: int = 0


@dataclass
class Watch:
    """The participants' connections (name -> client), read as their messages arrive."""

    clients: dict[str, Client]
    currency_of: dict[str, str]  # series id -> currency
    counters: Counters = field(default_factory=Counters)
    tape: deque[TradeRow] = field(default_factory=lambda: deque(maxlen=TAPE_ROWS))
    retired: deque[RetireRow] = field(default_factory=lambda: deque(maxlen=RETIREMENTS_ROWS))
    last: dict[str, int] = field(default_factory=dict)  # series -> last trade price
    _seen: dict[str, int] = field(default_factory=dict)
    _pending: dict[int, tuple[float, dict[Side, tuple[str, p.Fill]]]] = field(default_factory=dict)

    def poll(self, now_s: float) -> list[TradeRow | RetireRow]:
        """The rows that became complete since the last poll, in order."""
        retired: list[RetireRow] = []
        for name, client in self.clients.items():
            for msg in self._new(name, client):
                kind = type(msg)
                if kind is p.Fill:
                    self.counters.fills += 1
                    entry = self._pending.setdefault(msg.trade_id, (now_s, {}))
                    entry[1][msg.side] = (name, msg)
                elif kind is p.OrderCertificate or kind is p.Certificate:
                    retired.append(self._retirement(name, msg))
                elif kind is p.Reject:
                    self.counters.rejects += 1
        rows: list[TradeRow | RetireRow] = [*self._trades(now_s)]
        return rows + retired  # a certificate follows the fills it retired

    def _new(self, name: str, client: Client) -> list[Any]:
        new = client.received - self._seen.get(name, 0)
        self._seen[name] = client.received
        msgs = list(itertools.islice(reversed(client.history), min(new, len(client.history))))
        msgs.reverse()
        return msgs

    def _trades(self, now_s: float) -> list[TradeRow]:
        rows = []
        overflow = len(self._pending) - PENDING_MAX
        for trade_id in sorted(self._pending):
            since, sides = self._pending[trade_id]
            if len(sides) < 2 and now_s - since < ONE_SIDED_S and overflow <= 0:
                continue
            overflow -= 1
            del self._pending[trade_id]
            rows.append(self._trade(trade_id, sides))
        return rows

    def _trade(self, trade_id: int, sides: dict[Side, tuple[str, p.Fill]]) -> TradeRow:
        buyer, bought = sides.get(Side.BUY, ("(another client)", None))
        seller, sold = sides.get(Side.SELL, ("(another client)", None))
        fill = bought or sold
        assert fill is not None
        row = TradeRow(
            trade_id,
            fill.series,
            fill.price,
            fill.qty,
            self.currency_of.get(fill.series, "?"),
            buyer,
            seller,
            serials_text(fill.serials),
        )
        self.counters.trades += 1
        self.counters.traded_t += fill.qty
        self.last[fill.series] = fill.price
        self.tape.append(row)
        return row

    def _retirement(self, holder: str, cert: p.OrderCertificate | p.Certificate) -> RetireRow:
        if isinstance(cert, p.OrderCertificate):
            ranges = [r for f in cert.fills for r in f.serials]
            records = ", ".join(f"#{f.record_seq}" for f in cert.fills)
        else:
            ranges, records = cert.serials, f"#{cert.record_seq}"
        row = RetireRow(
            cert.cert_id, holder, cert.beneficiary, cert.qty, serials_text(ranges), records
        )
        self.counters.retirements += 1
        self.counters.retired_t += cert.qty
        self.retired.append(row)
        return row


def trade_line(row: TradeRow) -> str:
    return (
        f"trade #{row.trade_id:<5} {row.series:<15} {row.qty:>4} t @ "
        f"{money(row.price, row.currency):>11}  {row.seller} -> {row.buyer}  {row.serials}"
    )


def retirement_line(row: RetireRow) -> str:
    return (
        f"retired {row.qty} t, certificate {row.cert_id} for {row.beneficiary!r} "
        f"({row.holder}), serials {row.serials}, settlement-log records {row.records}"
    )


def counters_line(c: Counters, elapsed_s: float) -> str:
    return (
        f"after {elapsed_s:.0f} s: {c.orders} orders, {c.fills} fills, {c.trades} trades, "
        f"{c.traded_t} t traded, {c.retirements} retirements ({c.retired_t} t retired), "
        f"{c.rejects} rejects"
    )


def top_of_book(
    book: LocalBook | None, currency: str
) -> tuple[str, str]:  # (best bid, best ask) as text
    if book is None or not book.synced:
        return "…", "…"
    bids, asks = book.depth()
    bid = f"{bids[0][1]} @ {money(bids[0][0], currency)}" if bids else "-"
    ask = f"{asks[0][1]} @ {money(asks[0][0], currency)}" if asks else "-"
    return bid, ask


def _tape_table(rows: Iterable[TradeRow]) -> Table:
    t = Table(title="Trades, as they settle", expand=True, title_justify="left")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("series", {}),
        ("qty t", {"justify": "right"}),
        ("price", {"justify": "right"}),
        ("seller -> buyer", {}),
        ("registry serials delivered", {"overflow": "fold", "ratio": 1}),
    ):
        t.add_column(col, **kw)
    for r in reversed(list(rows)):
        t.add_row(
            str(r.trade_id),
            r.series,
            str(r.qty),
            money(r.price, r.currency),
            f"{r.seller} -> {r.buyer}",
            r.serials,
        )
    return t


def _retire_table(rows: Iterable[RetireRow]) -> Table:
    t = Table(title="Retirements and their certificates", expand=True, title_justify="left")
    for col in ("certificate", "t", "for", "serials retired", "log records"):
        t.add_column(col, overflow="fold")
    for r in reversed(list(rows)):
        t.add_row(r.cert_id, str(r.qty), f"{r.beneficiary} ({r.holder})", r.serials, r.records)
    return t


def _books_table(watch: Watch, books: dict[str, LocalBook]) -> Table:
    t = Table(title="Top of book (market-data subscriber's local books)", title_justify="left")
    for col in ("series", "bid", "ask", "last"):
        t.add_column(col, justify="left" if col == "series" else "right")
    for sid, book in books.items():
        currency = watch.currency_of.get(sid, "?")
        bid, ask = top_of_book(book, currency)
        last = watch.last.get(sid)
        t.add_row(sid, bid, ask, "-" if last is None else money(last, currency))
    return t


def live_view(watch: Watch, books: dict[str, LocalBook], elapsed_s: float, hint: str) -> Group:
    """The whole screen: counters, the books, the tape, the retirements."""
    head = Text(counters_line(watch.counters, elapsed_s), style="bold")
    return Group(
        head,
        Text(hint, style="dim"),
        _books_table(watch, books),
        _tape_table(watch.tape),
        _retire_table(watch.retired),
    )


__all__ = [
    "Counters",
    "RetireRow",
    "TradeRow",
    "Watch",
    "counters_line",
    "live_view",
    "retirement_line",
    "trade_line",
]
