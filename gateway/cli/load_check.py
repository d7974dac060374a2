"""The end check of `tonne load`: what each participant's own reports say it must hold.

Pure book-keeping, no I/O and no clock. A `Books` reads one participant's messages in the
order they came (`order_ack`, `fill`, `cancelled`, `expired`, `amended`,
`order_certificate`) and keeps what they imply: its open orders and their open quantity, its
cash change per currency (a buy pays price x qty + fee, a sell receives price x qty - fee),
the serial ranges it received and gave, and the tonnes its certificates retired. At the end
`check_participant` compares that with what the server answers (open orders before the mass
cancel, balances and holdings after it, from a snapshot taken before the run), and
`check_market` compares the participants with each other: every trade reported by both
sides alike, and, when every counterparty is a participant, cash and credits conserved. Each
finding is one line saying what is wrong; no finding means the run lost, doubled and
mis-settled nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.commands import Side
from gateway.wire import protocol as p

SerialKey = tuple[str, int, str]  # (project, vintage, batch): where serial numbers are unique
PROBLEMS_MAX = 50  # findings kept per check (the count goes on)


@dataclass
class Trade:
    """One side of a trade as one participant's fill reported it."""

    account: int
    side: Side
    series: str
    price: int
    qty: int
    serials: tuple[tuple[str, int, str, int, int], ...]


@dataclass
class Books:
    """One participant's position as its own reports tell it."""

    account: int
    currency_of: dict[str, str]  # series id -> currency
    open: dict[int, int] = field(default_factory=dict)  # order id -> open qty
    # order id -> (side, limit price: 0 for none) as its ack said, while it is open
    limits: dict[int, tuple[Side, int]] = field(default_factory=dict)
    retiring: set[str] = field(default_factory=set)  # client order ids that buy to retire
    retire_orders: dict[int, int] = field(default_factory=dict)  # order id -> tonnes filled
    cash: dict[str, int] = field(default_factory=dict)  # currency -> change
    fee_cash: dict[str, int] = field(default_factory=dict)  # currency -> fees paid
    received: list[tuple[SerialKey, int, int]] = field(default_factory=list)
    given: list[tuple[SerialKey, int, int]] = field(default_factory=list)
    trades: dict[int, Trade] = field(default_factory=dict)  # trade id -> this side
    acked = 0
    fills = 0
    filled_t = 0
    fees = 0
    retired_t = 0  # tonnes the certificates retired
    problems: list[str] = field(default_factory=list)

    def feed(self, msgs: Iterable[object]) -> None:
        for m in msgs:
            kind = type(m)
            if kind is p.Fill:
                self._fill(m)  # type: ignore[arg-type]
            elif kind is p.OrderAck:
                self._ack(m)  # type: ignore[arg-type]
            elif kind is p.Cancelled or kind is p.Expired:
                self.open.pop(m.order_id, None)  # type: ignore[attr-defined]
                self.limits.pop(m.order_id, None)  # type: ignore[attr-defined]
            elif kind is p.Amended:
                if m.order_id in self.open:  # type: ignore[attr-defined]
                    self.open[m.order_id] = m.qty  # type: ignore[attr-defined]
                    self.limits[m.order_id] = (m.side, m.price)  # type: ignore[attr-defined]
            elif kind is p.OrderCertificate:
                self._certificate(m)  # type: ignore[arg-type]

    def _ack(self, m: p.OrderAck) -> None:
        self.acked += 1
        if m.order_id in self.open:
            self._problem(f"order {m.order_id} acknowledged twice")
        self.open[m.order_id] = m.qty
        self.limits[m.order_id] = (m.side, m.price)
        if m.client_order_id in self.retiring:
            self.retiring.discard(m.client_order_id)
            self.retire_orders[m.order_id] = 0

    def _fill(self, m: p.Fill) -> None:
        self.fills += 1
        self.filled_t += m.qty
        self.fees += m.fee
        open_qty = self.open.get(m.order_id)
        if open_qty is None:
            self._problem(f"fill of trade {m.trade_id} for order {m.order_id}, not open")
        else:
            self._within(m, open_qty)
            if m.leaves_qty:
                self.open[m.order_id] = m.leaves_qty
            else:
                del self.open[m.order_id]
                self.limits.pop(m.order_id, None)
        if m.trade_id in self.trades:
            self._problem(f"trade {m.trade_id} reported twice")
        ranges = tuple((r.project, r.vintage, r.batch, r.first, r.last) for r in m.serials)
        if sum(last - first + 1 for *_, first, last in ranges) != m.qty:
            self._problem(f"trade {m.trade_id}: {m.qty} t but serials for another quantity")
        self.trades[m.trade_id] = Trade(self.account, m.side, m.series, m.price, m.qty, ranges)
        currency = self.currency_of.get(m.series, "?")
        notional = m.price * m.qty
        change = -(notional + m.fee) if m.side is Side.BUY else notional - m.fee
        self.cash[currency] = self.cash.get(currency, 0) + change
        self.fee_cash[currency] = self.fee_cash.get(currency, 0) + m.fee
        if m.order_id in self.retire_orders:  # bought to retire: never held
            self.retire_orders[m.order_id] += m.qty
            return
        moves = self.received if m.side is Side.BUY else self.given
        moves.extend(((pr, v, b), first, last) for pr, v, b, first, last in ranges)

    def _within(self, m: p.Fill, open_qty: int) -> None:
        """A fill takes no more than the order has open, leaves what is left, and trades at
        its limit or better: what the order's own ack and earlier fills allow."""
        if m.qty <= 0 or m.qty > open_qty:
            self._problem(
                f"trade {m.trade_id}: {m.qty} t filled, order {m.order_id} had {open_qty} t open"
            )
        elif m.leaves_qty != open_qty - m.qty:
            self._problem(
                f"trade {m.trade_id}: leaves {m.leaves_qty} t, order {m.order_id} had "
                f"{open_qty} t open and filled {m.qty} t"
            )
        side, limit = self.limits.get(m.order_id, (m.side, 0))
        if side is not m.side:
            self._problem(f"trade {m.trade_id}: a {m.side.value} fill of a {side.value} order")
        elif limit and (m.price > limit if side is Side.BUY else m.price < limit):
            self._problem(
                f"trade {m.trade_id}: {side.value} order {m.order_id} limited to {limit} "
                f"filled at {m.price}"
            )

    def _certificate(self, m: p.OrderCertificate) -> None:
        self.retired_t += m.qty
        filled = self.retire_orders.pop(m.order_id, None)
        if filled is None:
            self._problem(f"certificate {m.cert_id} for order {m.order_id}, not one to retire")
        elif filled != m.qty:
            self._problem(f"certificate {m.cert_id} retires {m.qty} t, its fills were {filled} t")

    def _problem(self, text: str) -> None:
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append(f"account {self.account}: {text}")


def normalized(ranges: Iterable[tuple[SerialKey, int, int]]) -> dict[SerialKey, list[list[int]]]:
    """Ranges merged where they touch, per serial key, sorted."""
    by_key: dict[SerialKey, list[tuple[int, int]]] = {}
    for key, first, last in ranges:
        by_key.setdefault(key, []).append((first, last))
    out: dict[SerialKey, list[list[int]]] = {}
    for key, spans in by_key.items():
        merged: list[list[int]] = []
        for first, last in sorted(spans):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        out[key] = merged
    return out


def expected_serials(
    before: Iterable[tuple[SerialKey, int, int]],
    received: Iterable[tuple[SerialKey, int, int]],
    given: Iterable[tuple[SerialKey, int, int]],
) -> tuple[dict[SerialKey, list[list[int]]], list[str]]:
    """What an account must hold: `before` + `received` - `given`, as merged ranges, and
    where that is impossible (a serial held twice, or given without being held)."""
    edges: dict[SerialKey, dict[int, int]] = {}
    for sign, ranges in ((1, before), (1, received), (-1, given)):
        for key, first, last in ranges:
            e = edges.setdefault(key, {})
            e[first] = e.get(first, 0) + sign
            e[last + 1] = e.get(last + 1, 0) - sign
    out: list[tuple[SerialKey, int, int]] = []
    problems: list[str] = []
    for key, e in edges.items():
        depth, start = 0, 0
        for at in sorted(e):
            if depth == 1:
                out.append((key, start, at - 1))
            elif depth and len(problems) < PROBLEMS_MAX:
                problems.append(f"{key[0]} {key[1]} serials {start}..{at - 1} held {depth} times")
            depth += e[at]
            start = at
    return normalized(out), problems


def holding_ranges(h: p.Holdings) -> list[tuple[SerialKey, int, int]]:
    return [
        ((r.project, r.vintage, r.batch), r.first, r.last) for x in h.holdings for r in x.serials
    ]


def cash_totals(b: p.Balances) -> dict[str, int]:
    return {c.currency: c.total for c in b.cash if c.total}


def check_participant(
    books: Books,
    open_then: dict[int, int],
    open_orders: p.OpenOrders,
    before: tuple[p.Balances, p.Holdings],
    after: tuple[p.Balances, p.Holdings],
) -> list[str]:
    """Findings for one participant: its open orders as the server lists them (before the
    mass cancel) against `open_then`, what its reports had left open by that answer; its
    cash and serials after the mass cancel against the snapshot before plus what its reports
    moved; nothing held once its orders are cancelled."""
    who = f"account {books.account}"
    found = list(books.problems)
    server_open = {o.order_id: o.qty for o in open_orders.orders}
    for oid in sorted(set(server_open) | set(open_then)):
        mine, theirs = open_then.get(oid), server_open.get(oid)
        if mine != theirs:
            found.append(
                f"{who}: order {oid} open {mine} t by its reports, {theirs} t on the server"
            )
    cash_before, cash_after = cash_totals(before[0]), cash_totals(after[0])
    for cur in sorted(set(cash_before) | set(cash_after) | set(books.cash)):
        want = cash_before.get(cur, 0) + books.cash.get(cur, 0)
        if want != cash_after.get(cur, 0):
            found.append(
                f"{who}: {cur} {cash_after.get(cur, 0)} on the server, {want} by its reports"
            )
    if books.open:
        found.append(f"{who}: {len(books.open)} orders open by its reports after the mass cancel")
    for c in after[0].cash:
        if c.held:
            found.append(f"{who}: {c.held} {c.currency} still held after the mass cancel")
    for h in after[1].holdings:
        if h.held:
            found.append(f"{who}: {h.held} t of {h.project} {h.vintage} still held")
    want_serials, impossible = expected_serials(
        holding_ranges(before[1]), books.received, books.given
    )
    found += [f"{who}: {x}" for x in impossible]
    have = normalized(holding_ranges(after[1]))
    for key in sorted(set(want_serials) | set(have)):
        w, got = want_serials.get(key, []), have.get(key, [])
        if w != got:
            wt = sum(b - a + 1 for a, b in w)
            ht = sum(b - a + 1 for a, b in got)
            found.append(
                f"{who}: {key[0]} {key[1]} {key[2] or '(no batch)'}: the server holds {ht} t in "
                f"{len(got)} ranges, its reports say {wt} t in {len(w)} ranges"
            )
    return found[:PROBLEMS_MAX]


def check_market(all_books: list[Books], closed: bool) -> list[str]:
    """Findings across participants: each trade's two sides agree (price, quantity, series,
    serials), an account never trades with itself; when `closed` (every counterparty is a
    participant, as on a spawned exchange) every trade has both sides reported, and the
    cash moved sums to minus the fees and the credits received to those given."""
    found: list[str] = []
    sides: dict[int, list[Trade]] = {}
    for b in all_books:
        for tid, t in b.trades.items():
            sides.setdefault(tid, []).append(t)
    for tid in sorted(sides):
        ts = sides[tid]
        if len(ts) > 2 or len({t.side for t in ts}) != len(ts):
            found.append(
                f"trade {tid}: reported {len(ts)} times, sides {[t.side.value for t in ts]}"
            )
        elif len(ts) == 2:
            one, other = ts
            if one.account == other.account:
                found.append(f"trade {tid}: account {one.account} on both sides")
            if (one.series, one.price, one.qty, one.serials) != (
                other.series,
                other.price,
                other.qty,
                other.serials,
            ):
                found.append(f"trade {tid}: its buyer and seller were told different things")
        elif closed:
            t = ts[0]
            found.append(
                f"trade {tid}: only the {t.side.value} side (account {t.account}) was reported "
                f"({t.qty} t of {t.series} at {t.price})"
            )
        if len(found) >= PROBLEMS_MAX:
            return found
    if closed:
        cash: dict[str, int] = {}
        fees: dict[str, int] = {}
        for b in all_books:
            for cur, change in b.cash.items():
                cash[cur] = cash.get(cur, 0) + change
            for cur, fee in b.fee_cash.items():
                fees[cur] = fees.get(cur, 0) + fee
        for cur in sorted(cash):
            if cash[cur] != -fees.get(cur, 0):
                found.append(f"{cur}: cash moved {cash[cur]} in all, the fees were {fees[cur]}")
        got = sum(last - first + 1 for b in all_books for _, first, last in b.received)
        gave = sum(last - first + 1 for b in all_books for _, first, last in b.given)
        retired = sum(b.retired_t for b in all_books)
        if got + retired != gave:
            found.append(f"credits given {gave} t, received {got} t + retired {retired} t")
    return found


__all__ = ["Books", "check_market", "check_participant", "expected_serials", "normalized"]
