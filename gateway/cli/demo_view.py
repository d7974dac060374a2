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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
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

    @property
    def parties(self) -> str:
        return f"{self.seller} -> {self.buyer}"


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


GAP = "  "  # between the columns of a row
SERIALS_WIDTH_MIN = 48  # serials beside their row if this much is left, else under it
SERIALS_INDENT = 6  # serials under their row start here


def _aligned(rows: Sequence[tuple[str, ...]], right: tuple[bool, ...]) -> list[str]:
    """Rows of cells padded to each column's widest, the columns `GAP` apart."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    return [
        GAP.join(
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(row, widths, right, strict=True)
        )
        for row in rows
    ]


def _with_serials(lines: list[str], serials: list[str], width: int) -> list[RenderableType]:
    """Each row with its serials folded beside it, in a column of their own if the width
    leaves `SERIALS_WIDTH_MIN` for them, or else on their own lines under it."""
    out: list[RenderableType] = []
    beside = bool(lines) and width - len(lines[0]) - len(GAP) >= SERIALS_WIDTH_MIN
    for line, ranges in zip(lines, serials, strict=True):
        if beside:
            grid = Table.grid(padding=(0, 0, 0, len(GAP)))
            grid.add_column(width=len(line), no_wrap=True)
            grid.add_column(overflow="fold", style="dim")
            grid.add_row(line, ranges)
            out.append(grid)
        else:
            under = Text(ranges, style="dim", overflow="fold")
            row = Text(line.rstrip(), no_wrap=True, overflow="ellipsis")
            out.append(Group(row, Padding(under, (0, 0, 0, SERIALS_INDENT), expand=False)))
    return out


def _tape_rows(rows: list[TradeRow], width: int) -> list[RenderableType]:
    """The trades, newest first, in aligned columns, each with the serials it delivered."""
    cells = [
        (f"#{r.trade_id}", r.series, f"{r.qty} t @", money(r.price, r.currency), r.parties)
        for r in reversed(rows)
    ]
    lines = _aligned(cells, (True, False, True, True, False)) if cells else []
    return _with_serials(lines, [r.serials for r in reversed(rows)], width)


def _retire_rows(rows: list[RetireRow], width: int) -> list[RenderableType]:
    """The retirements, newest first, each with the serials retired and their records."""
    cells = [(r.cert_id, f"{r.qty} t", f"for {_for(r)}") for r in reversed(rows)]
    lines = _aligned(cells, (False, True, False)) if cells else []
    serials = [f"{r.serials} (log {r.records})" for r in reversed(rows)]
    return _with_serials(lines, serials, width)


def _for(r: RetireRow) -> str:
    """The beneficiary, and who retired for it unless its name says so already."""
    named = r.beneficiary.startswith(r.holder)
    return repr(r.beneficiary) if named else f"{r.beneficiary!r} ({r.holder})"


def _books_table(watch: Watch, books: dict[str, LocalBook]) -> Table:
    t = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for col in ("Top of book", "bid", "ask", "last"):
        t.add_column(col, justify="left" if col == "Top of book" else "right", no_wrap=True)
    for sid, book in books.items():
        currency = watch.currency_of.get(sid, "?")
        bid, ask = top_of_book(book, currency)
        last = watch.last.get(sid)
        t.add_row(sid, bid, ask, "-" if last is None else money(last, currency))
    return t


def head_line(c: Counters, elapsed_s: float) -> str:
    """The counters, short enough for one line of an 80-column terminal."""
    return (
        f"{elapsed_s:.0f} s: {c.orders} orders, {c.fills} fills, {c.trades} trades "
        f"({c.traded_t} t), {c.retirements} retirements ({c.retired_t} t), {c.rejects} rejects"
    )


def plan(room: int, books: int, trades: list[int], retired: list[int]) -> tuple[bool, int, int]:
    """What fits in `room` lines, from the height of the books and of each trade and each
    retirement, newest first: whether the books do, and how many trades and retirements.
    The latest trade goes in first, then the latest retirement, then older trades, then older
    retirements; the books give way to the latest trade and retirement if need be."""
    with_books = books + sum(trades[:1]) + sum(retired[:1]) <= room
    room -= books if with_books else 0
    shown = [0, 0]
    for kind, upto in ((0, 1), (1, 1), (0, len(trades)), (1, len(retired))):
        heights = (trades, retired)[kind]
        while shown[kind] < min(upto, len(heights)) and heights[shown[kind]] <= room:
            room -= heights[shown[kind]]
            shown[kind] += 1
    return with_books, shown[0], shown[1]


@dataclass(frozen=True)
class Screen:
    """The whole live view, laid out for the console it is drawn on (`plan`): the counters,
    how to join, the books, and as many of the latest trades and retirements as fit."""

    watch: Watch
    books: dict[str, LocalBook]
    elapsed_s: float
    hint: tuple[str, ...]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        def heights(parts: list[RenderableType]) -> list[int]:
            return [len(console.render_lines(r, options, pad=False)) for r in parts]

        fixed: list[RenderableType] = [
            Text(head_line(self.watch.counters, self.elapsed_s), style="bold"),
            *(Text(line, style="dim") for line in self.hint),
        ]
        trades = _tape_rows(list(self.watch.tape), options.max_width)
        retired = _retire_rows(list(self.watch.retired), options.max_width)
        books = _books_table(self.watch, self.books)
        room = options.max_height - sum(heights(fixed)) - 2  # the two titles
        with_books, n_trades, n_retired = plan(
            room, sum(heights([books])), heights(trades), heights(retired)
        )
        yield from fixed
        if with_books:
            yield books
        yield _title("Trades, as they settle", trades)
        yield from trades[:n_trades]
        yield _title("Retirements and their certificates", retired)
        yield from retired[:n_retired]


def _title(title: str, rows: list[RenderableType]) -> Text:
    return Text(title if rows else f"{title}: none yet", style="bold", no_wrap=True)


def live_view(
    watch: Watch, books: dict[str, LocalBook], elapsed_s: float, hint: Iterable[str]
) -> Screen:
    """The whole screen: counters, how to join, the books, the tape, the retirements."""
    return Screen(watch, books, elapsed_s, tuple(hint))


__all__ = [
    "Counters",
    "RetireRow",
    "TradeRow",
    "Watch",
    "counters_line",
    "head_line",
    "live_view",
    "plan",
    "retirement_line",
    "trade_line",
]
