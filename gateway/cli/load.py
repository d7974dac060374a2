"""`tonne load`: simulated participants against a server; throughput, latency, end check.

    tonne load [--participants 8] [--in-flight 1] [--orders 2000] [--seconds 20]
               [--transport tcp|ws] [--seed 1] [--connect HOST:PORT --keys FILE]

Without `--connect` it opens its own exchange on a temporary data folder (the real SQLite
store, journal and settlement core, exactly what `tonne serve` runs), provisions the
participants, funds each with cash and a serial block of the first series through the
operator pipeline, and runs them. With `--connect`, `--keys` is a file of JSON lines
`{"account", "key_id", "secret"}` (as `tonne accounts add --json` prints) of accounts funded
with `tonne custody deposit`, and the load trades `--series`, or else the first listed series
that every participant holds both cash and credits of.

Each participant keeps `--in-flight` requests in flight (closed loops on one connection;
1 by default): a limit order around the reference price, or a cancel of its oldest open
order once it has `--open-max` open; a `--baskets` share of its requests (0.05) are screened
basket buys of the series' project (issue 14), half of them buy-and-retire. The run
stops after `--orders` orders in total or `--seconds`, whichever comes first. Printed: orders
and requests per second, the round-trip latency percentiles (send -> ack or reject), and the
end check: with its own exchange, cash and credits conserved in the ledger (every account
including the fee account; the credits retired by baskets are the ones certificates name)
and the core's invariants; against a remote server, the
participants' cash changes sum to minus the fees their fills reported.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from engine.commands import Side
from gateway.client.client import Client, ClientError, RequestRejected
from gateway.server.gcpolicy import serving
from gateway.wire import protocol as p

CASH_EACH = 10**10  # minor units deposited per participant (own exchange)
CREDITS_EACH = 1_000_000  # tonnes deposited per participant (own exchange)


class Stats:
    def __init__(self) -> None:
        self.rtt_ns: list[int] = []
        self.orders = 0
        self.cancels = 0
        self.rejects: dict[str, int] = {}
        self.fills = 0
        self.fees = 0
        self.errors = 0
        self.baskets = 0
        self.retired = 0  # tonnes retired by buy-and-retire baskets (their certificates)


def percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class _Quoting:
    """What a participant's lanes share: its open orders, and how far it has read."""

    def __init__(self, client: Client) -> None:
        self.mine: list[int] = []
        self.seen = client.received
        # ended before the lane that placed them had its ack in hand (the fill came in the
        # same batch as the ack, and another lane read it first): never to be tracked
        self.ended_early: set[int] = set()
        self.cancelling: set[int] = set()  # untracked already: their end is expected

    def forget_ended(self, client: Client) -> None:
        """Drop orders that filled or left the book since the last look (bounded scan)."""
        history = client.history
        new = min(client.received - self.seen, len(history))  # the newest, at the right end
        filled, cancelled = set(), set()
        for m in itertools.islice(reversed(history), new):
            if type(m) is p.Fill and not m.leaves_qty:
                filled.add(m.order_id)
            elif type(m) is p.Cancelled:
                cancelled.add(m.order_id)
        self.seen = client.received
        if filled or cancelled:
            tracked = set(self.mine)
            done = filled | cancelled
            self.ended_early |= done - tracked - self.cancelling
            self.mine[:] = [o for o in self.mine if o not in done]  # in place: lanes share it

    def placed(self, order_id: int) -> None:
        """An order's ack, in the hands of the lane that placed it: track it, unless it has
        already ended."""
        if order_id in self.ended_early:
            self.ended_early.discard(order_id)
        else:
            self.mine.append(order_id)


async def basket(
    client: Client, series: p.SeriesInfo, price: int, rng: random.Random, stats: Stats
) -> None:
    """A screened basket buy of the series' project, half of them buy-and-retire."""
    retire = p.RetireFor(beneficiary=f"load test {client.account}") if rng.random() < 0.5 else None
    try:
        b = await client.basket_buy(
            f"project = {series.project}",
            rng.randint(1, 5) * series.lot,
            price,
            retire_for=retire,
        )
    except RequestRejected as exc:
        stats.rejects[exc.reason.value] = stats.rejects.get(exc.reason.value, 0) + 1
        return
    stats.baskets += 1
    if b.certificate is not None:
        stats.retired += b.certificate.qty


async def participant(
    client: Client,
    series: p.SeriesInfo,
    ref_price: int,
    rng: random.Random,
    stats: Stats,
    budget: list[int],
    deadline: float,
    open_max: int,
    in_flight: int = 1,
    basket_share: float = 0.0,
) -> None:
    """Quote and trade around `ref_price` until the shared order `budget` or time runs out,
    with `in_flight` requests outstanding at a time on this participant's connection."""
    state = _Quoting(client)

    async def lane() -> None:
        """One closed loop: one request in flight at a time."""
        tick = series.tick
        low = max(series.band_low, tick)
        high = min(series.band_high, ref_price * 2 or 1000 * tick)
        while budget[0] > 0 and time.monotonic() < deadline:
            state.forget_ended(client)
            mine = state.mine  # the one list, changed in place by every lane
            started = time.perf_counter_ns()
            try:
                if len(mine) >= open_max:
                    order_id = mine.pop(0)
                    state.cancelling.add(order_id)
                    try:
                        await client.cancel(order_id)
                        stats.cancels += 1
                    except RequestRejected as exc:  # it traded meanwhile
                        stats.rejects[exc.reason.value] = stats.rejects.get(exc.reason.value, 0) + 1
                    finally:
                        state.cancelling.discard(order_id)
                elif series.project and rng.random() < basket_share:
                    budget[0] -= 1
                    price = min(high, ref_price + rng.randint(0, 5) * tick)
                    await basket(client, series, price - price % tick, rng, stats)
                else:
                    budget[0] -= 1
                    side = Side.BUY if rng.random() < 0.5 else Side.SELL
                    offset = rng.randint(-5, 5) * tick
                    price = min(high, max(low, ref_price + offset))
                    price -= price % tick
                    qty = rng.randint(1, 5) * series.lot
                    try:
                        ack = await client.place(series.id, side, qty=qty, price=price)
                        stats.orders += 1
                        state.placed(ack.order_id)
                    except RequestRejected as exc:
                        stats.rejects[exc.reason.value] = stats.rejects.get(exc.reason.value, 0) + 1
            except ClientError:
                stats.errors += 1
                return
            stats.rtt_ns.append(time.perf_counter_ns() - started)

    await asyncio.gather(*[lane() for _ in range(in_flight)])


def _collect_fills(clients: list[Client], stats: Stats) -> None:
    for c in clients:
        for m in c.history:
            if type(m) is p.Fill:
                stats.fills += 1
                stats.fees += m.fee


async def run_load(
    clients: list[Client],
    series: p.SeriesInfo,
    ref_price: int,
    *,
    orders: int,
    seconds: float,
    seed: int,
    open_max: int,
    in_flight: int = 1,
    basket_share: float = 0.0,
) -> tuple[Stats, float]:
    stats = Stats()
    budget = [orders]
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *[
            participant(
                c,
                series,
                ref_price,
                random.Random(seed * 1000 + i),
                stats,
                budget,
                deadline,
                open_max,
                in_flight,
                basket_share,
            )
            for i, c in enumerate(clients)
        ]
    )
    elapsed = time.perf_counter() - started
    return stats, elapsed


def report(
    stats: Stats, elapsed: float, transport: str, participants: int, in_flight: int = 1
) -> list[str]:
    rtt = sorted(stats.rtt_ns)
    requests = len(rtt)
    lines = [
        f"transport {transport}, {participants} participants x {in_flight} in flight, "
        f"{elapsed:.2f} s",
        f"orders {stats.orders} ({stats.orders / elapsed:,.0f}/s), cancels {stats.cancels}, "
        f"requests {requests} ({requests / elapsed:,.0f}/s), fills {stats.fills}, "
        f"baskets {stats.baskets} ({stats.retired} t retired), "
        f"rejects {dict(sorted(stats.rejects.items())) or 0}, errors {stats.errors}",
        "round trip us: "
        + ", ".join(f"p{int(q * 100)} {percentile(rtt, q) / 1000:,.0f}" for q in (0.5, 0.9, 0.99))
        + f", max {rtt[-1] / 1000 if rtt else 0:,.0f}",
    ]
    return lines


async def _connect(transport: str, host: str, tcp_port: int, ws_port: int | None) -> Client:
    if transport == "ws":
        return await Client.connect_ws(f"ws://{host}:{ws_port}")
    return await Client.connect_tcp(host, tcp_port)


async def own_exchange(args: argparse.Namespace) -> int:
    """Load against an exchange of our own on a temporary data folder."""
    from gateway.cli.accounts import add_key
    from gateway.cli.serve import running
    from settlement.commands import Deposit, DepositCredits

    with tempfile.TemporaryDirectory(prefix="tonne-load-") as tmp:
        data_dir = Path(tmp)
        keys = [
            add_key(data_dir, permissions=frozenset({"trade"})) for _ in range(args.participants)
        ]
        async with running(data_dir, tcp_port=0, ws_port=0) as ex:
            server = ex.server
            core = server.core
            book = next(iter(server.exchange.books.values()))
            se = book.series
            assert se.project is not None, "the load series is project-specific"
            for i, (account, _, _) in enumerate(keys):
                first = 10**12 + i * CREDITS_EACH
                for cmd in (
                    Deposit(account=account, currency=se.currency, amount=CASH_EACH),
                    DepositCredits(
                        account=account,
                        project=se.project,
                        vintage=se.vintage,
                        start=first,
                        end=first + CREDITS_EACH - 1,
                        quantity=CREDITS_EACH,
                    ),
                ):
                    events = await server.operator(cmd)
                    assert type(events[-1]).__name__ != "Rejected", events
            ledger = core.ledger
            cash_before = sum(a.cash.get(se.currency, 0) for a in ledger.accounts.values())
            credits_before = sum(
                sum(a.credit_qty.values()) + sum(a.credits_held.values())
                for a in ledger.accounts.values()
            )
            clients = []
            for _, key_id, secret in keys:
                c = await _connect(
                    args.transport, "127.0.0.1", ex.info["tcp_port"], ex.info["ws_port"]
                )
                await c.logon(key_id, secret)
                clients.append(c)
            series = next(s for s in (await clients[0].series()).series if s.id == se.id)
            stats, elapsed = await run_load(
                clients,
                series,
                book.ref_price or 1000,
                orders=args.orders,
                seconds=args.seconds,
                seed=args.seed,
                open_max=args.open_max,
                in_flight=args.in_flight,
                basket_share=args.baskets,
            )
            for c in clients:
                await c.mass_cancel()
            _collect_fills(clients, stats)
            for c in clients:
                await c.close()
            for line in report(stats, elapsed, args.transport, args.participants, args.in_flight):
                print(line)
            core.check_invariants()
            cash_after = sum(a.cash.get(se.currency, 0) for a in ledger.accounts.values())
            credits_after = sum(
                sum(a.credit_qty.values()) + sum(a.credits_held.values())
                for a in ledger.accounts.values()
            )
            held = sum(
                sum(a.cash_held.values()) + sum(a.credits_held.values())
                for a in ledger.accounts.values()
            )
            ok = (
                cash_after == cash_before
                and credits_after + stats.retired == credits_before
                and held == 0
            )
            print(
                f"end check: cash {cash_before} -> {cash_after}, credits {credits_before} -> "
                f"{credits_after} ({stats.retired} retired), held after mass cancel {held}, "
                "journal seq "
                f"{ex.journal.seq}, commits {ex.journal.commits}, core invariants hold: "
                f"{'OK' if ok else 'FAILED'}"
            )
            return 0 if ok and stats.errors == 0 else 1


def _funded(series: p.SeriesInfo, holdings: p.Holdings, balances: p.Balances) -> bool:
    credits = sum(
        h.available
        for h in holdings.holdings
        if (h.project, h.vintage) == (series.project, series.vintage)
    )
    cash = sum(c.total - c.held for c in balances.cash if c.currency == series.currency)
    return credits > 0 and cash > 0


def choose_series(
    listed: list[p.SeriesInfo],
    wanted: str,
    holdings: list[p.Holdings],
    balances: list[p.Balances],
) -> p.SeriesInfo | str:
    """The series a remote load trades: `wanted`, or else the first listed one that every
    participant holds available cash and credits of (accounts funded by hand, with `tonne
    custody`, hold what they were given, which need not be the first series); or why none."""
    if wanted:
        found = [s for s in listed if s.id == wanted]
        if found:
            return found[0]
        return f"no series {wanted!r} on the server (listed: {', '.join(s.id for s in listed)})"
    for s in listed:
        tradable = s.project is not None and not s.halted
        if tradable and all(_funded(s, h, b) for h, b in zip(holdings, balances, strict=True)):
            return s
    return (
        "no listed series whose cash and credits every participant holds: fund them "
        "(`tonne custody deposit`) or name one with --series"
    )


async def remote(args: argparse.Namespace) -> int:
    host, _, port = args.connect.rpartition(":")
    keys = [json.loads(line) for line in Path(args.keys).read_text().splitlines() if line.strip()]
    keys = keys[: args.participants]
    clients = []
    for k in keys:
        c = await _connect(args.transport, host, int(port), args.ws_port)
        await c.logon(k["key_id"], k["secret"])
        clients.append(c)
    listed = (await clients[0].series()).series
    before = [await c.balances() for c in clients]
    chosen = choose_series(listed, args.series, [await c.holdings() for c in clients], before)
    if isinstance(chosen, str):
        for c in clients:
            await c.close()
        print(f"tonne load: {chosen}", file=sys.stderr)
        return 2
    series = chosen
    print(f"series {series.id}")
    ref = (series.band_low + series.band_high) // 2 if series.band_high < 1 << 40 else 1000
    stats, elapsed = await run_load(
        clients,
        series,
        ref,
        orders=args.orders,
        seconds=args.seconds,
        seed=args.seed,
        open_max=args.open_max,
        in_flight=args.in_flight,
    )
    for c in clients:
        await c.mass_cancel()
    _collect_fills(clients, stats)
    after = [await c.balances() for c in clients]
    for c in clients:
        await c.close()
    for line in report(stats, elapsed, args.transport, len(clients), args.in_flight):
        print(line)

    def total(bs: list[p.Balances]) -> int:
        return sum(c.total for b in bs for c in b.cash if c.currency == series.currency)

    delta = total(after) - total(before)
    ok = delta == -stats.fees
    print(
        f"end check: participants' cash moved {delta}, fees reported {stats.fees}: "
        f"{'OK' if ok else 'FAILED'}"
    )
    return 0 if ok and stats.errors == 0 else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument(
        "--in-flight", type=int, default=1, help="requests outstanding per participant"
    )
    parser.add_argument("--orders", type=int, default=2000, help="orders in total, at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="run time, at most")
    parser.add_argument("--transport", choices=["tcp", "ws"], default="tcp")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--open-max", type=int, default=20, help="open orders per participant")
    parser.add_argument(
        "--baskets", type=float, default=0.05, help="share of requests that are basket buys"
    )
    parser.add_argument("--connect", help="HOST:PORT of a running server (TCP, or WS port)")
    parser.add_argument("--ws-port", type=int, help="with --connect and --transport ws")
    parser.add_argument("--keys", help="JSON lines of funded accounts' keys (with --connect)")
    parser.add_argument(
        "--series",
        default="",
        help="series id (with --connect; default: the first one every participant is funded for)",
    )
    args = parser.parse_args(argv)
    if args.participants < 1 or args.orders < 1 or args.seconds <= 0 or args.in_flight < 1:
        parser.error("--participants, --in-flight, --orders and --seconds must be positive")
    if not 0 <= args.baskets <= 1:
        parser.error("--baskets is a share, 0 to 1")
    if args.connect:
        if not args.keys:
            parser.error("--connect needs --keys")
        if args.transport == "ws" and args.ws_port is None:
            args.ws_port = int(args.connect.rpartition(":")[2])
        with serving():  # a load client is a serving process: gateway/server/gcpolicy.py
            return uvloop.run(remote(args))
    try:
        with serving():
            return uvloop.run(own_exchange(args))
    except ImportError as exc:
        print(f"tonne load: needs the settlement core ({exc})", file=sys.stderr)
        return 2


__all__ = ["main", "run_load", "Stats"]
