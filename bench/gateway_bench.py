"""The gateway benchmark: the same seeded orders through the network and straight into the core.

    python -m bench.gateway_bench [--orders 20000] [--clients 4] [--window 64]
                                  [--journal null|sqlite] [--seed 7]

Three measurements, each printed beside an in-memory run of the same core (`Core.apply`
in a loop, no network, no journal) measured in the same process, as a ratio:

(a) one TCP client, one order in flight: round trip p50/p99 (send -> ack), against the
    in-memory per-command p50/p99;
(b) `--clients` TCP clients pipelining `--window` orders per frame: orders/s;
(c) the same over WebSocket (JSON): messages/s.

`--journal null` (default) measures the gateway alone; `sqlite` adds the real group-commit
journal on a temporary folder (acks after COMMIT, synchronous=FULL), which is what
`tonne serve` runs.

Measured 2026-11-25 on the 2-core development VM (another benchmark running on the other
core), client and server in one process on loopback, uvloop:

    journal null,   20 000 orders: (a) p50 33 us / p99 64 us vs 2.0 / 6.1 us in memory;
                                   (b) 66 500 orders/s vs 147 000/s (2.2x slower);
                                   (c) 57 900 messages/s vs 114 000/s (2.0x slower)
    journal sqlite, 10 000 orders: (a) p50 215 us / p99 348 us (a COMMIT per order);
                                   (b) 42 900 orders/s (3.4x); (c) 49 400 messages/s (3.0x)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from engine.commands import Side, TimeInForce
from engine.reference import Mitigation, Series
from gateway import protocol as p
from gateway.auth import Authenticator, KeyStore
from gateway.client import Client
from gateway.server import Server
from gateway.session import Limits

SERIES = Series(
    id="VCS-1340-2020",
    standard="VCS",
    mitigation=Mitigation.AVOIDANCE,
    vintage=2020,
    project="VCS1340",
    tick=1,
    lot=1,
    ref_price=1000,
    band_bps=5000,
)
MID = 1000
ACCOUNTS = 8


def funding() -> list[Any]:
    """The operator commands that open and fund every benchmark account."""
    from settlement.commands import Deposit, DepositCredits, OpenAccount

    cmds: list[Any] = []
    for a in range(1, ACCOUNTS + 1):
        cmds += [
            OpenAccount(account=a),
            Deposit(account=a, currency="USD", amount=10**14),
            DepositCredits(
                account=a,
                project="VCS1340",
                vintage=2020,
                start=a * 10**9,
                end=a * 10**9 + 10**8 - 1,
                quantity=10**8,
            ),
        ]
    return cmds


def make_core(funded: bool = True) -> Any:
    from gateway.refdata import load_projects
    from settlement.core import Core

    core = Core([SERIES], [load_projects()["VCS1340"]])
    if funded:
        for cmd in funding():
            core.apply(cmd)
        core.drain_records()
    return core


def workload(n: int, seed: int, prefix: str) -> list[p.NewOrder]:
    """Seeded limit orders around a mid: a third IOC (they take), the rest rest or trade."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        away = rng.randint(0, 5)
        price = MID - away if side is Side.BUY else MID + away
        tif = TimeInForce.GTC
        if rng.random() < 0.34:
            price = MID + 5 if side is Side.BUY else MID - 5
            tif = TimeInForce.IOC
        out.append(
            p.NewOrder(
                client_order_id=f"{prefix}{i}",
                series=SERIES.id,
                side=side,
                qty=rng.randint(1, 5),
                price=price,
                tif=tif,
            )
        )
    return out


def in_memory(orders: list[tuple[int, p.NewOrder]]) -> tuple[list[int], float]:
    """Per-command ns and total seconds of the same (account, order)s applied straight to a
    fresh core, in the order given."""
    import engine.commands as ec

    core = make_core()
    times = []
    ts = time.time_ns()
    started = time.perf_counter()
    for i, (account, o) in enumerate(orders):
        cmd = ec.NewOrder(
            account=account,
            client_order_id=o.client_order_id,
            series=o.series,
            side=o.side,
            qty=o.qty,
            price=o.price,
            tif=o.tif,
            ts=ts + i,
        )
        t0 = time.perf_counter_ns()
        core.apply(cmd)
        core.drain_records()
        times.append(time.perf_counter_ns() - t0)
    return times, time.perf_counter() - started


class Bench:
    def __init__(self, journal_kind: str) -> None:
        self.journal_kind = journal_kind
        self.keys: list[tuple[str, str]] = []

    async def __aenter__(self) -> Bench:
        core = make_core(funded=False)
        store = KeyStore(secrets.token_bytes(32))
        self.keys = [store.add(a) for a in range(1, ACCOUNTS + 1)]
        self._tmp = None
        self._store = None
        if self.journal_kind == "sqlite":
            from gateway.journal import Journal
            from gateway.store import SQLiteStore

            self._tmp = tempfile.TemporaryDirectory(prefix="tonne-bench-")
            self._store = SQLiteStore(Path(self._tmp.name))
            journal: Any = Journal(self._store)
            journal.start()
        else:
            from gateway.journal import NullJournal

            journal = NullJournal()
        self.journal = journal
        limits = Limits(messages_per_s=10**7, burst_messages=10**7, open_orders_max=10**6)
        self.server = Server(core, journal, Authenticator(store), limits=limits)
        for cmd in funding():  # journaled like any command
            await self.server.operator(cmd)
        await self.server.start("127.0.0.1", 0, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()
        if hasattr(self.journal, "close"):
            await self.journal.close()
        if self._store is not None:
            self._store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def client(self, i: int, ws: bool = False) -> Client:
        if ws:
            c = await Client.connect_ws(f"ws://127.0.0.1:{self.server.ws_port}")
        else:
            c = await Client.connect_tcp("127.0.0.1", self.server.tcp_port)
        await c.logon(*self.keys[i])
        return c


async def one_in_flight(b: Bench, orders: list[p.NewOrder]) -> list[int]:
    c = await b.client(0)
    rtt = []
    for o in orders:
        fut = c.order_future(o.client_order_id)
        t0 = time.perf_counter_ns()
        await c.send(o)
        await fut
        rtt.append(time.perf_counter_ns() - t0)
    await c.close()
    return rtt


async def pipelined(b: Bench, per_client: list[list[p.NewOrder]], window: int, ws: bool) -> float:
    clients = [await b.client(i, ws) for i in range(len(per_client))]

    async def drive(c: Client, orders: list[p.NewOrder]) -> None:
        for start in range(0, len(orders), window):
            chunk = orders[start : start + window]
            futs = [c.order_future(o.client_order_id) for o in chunk]
            await c.send(*chunk)
            await asyncio.gather(*futs)

    started = time.perf_counter()
    await asyncio.gather(*[drive(c, o) for c, o in zip(clients, per_client, strict=True)])
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.close()
    return elapsed


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000


async def run(args: argparse.Namespace) -> list[str]:
    n = args.orders
    lines = [f"gateway bench: {n} orders, journal {args.journal}, seed {args.seed}"]
    # (a) latency
    latency_orders = workload(min(n, 5000), args.seed, "a")
    mem_times, _ = in_memory([(1, o) for o in latency_orders])
    async with Bench(args.journal) as b:
        rtt = await one_in_flight(b, latency_orders)
    for q in (0.5, 0.99):
        g, m = pct(rtt, q), pct(mem_times, q)
        lines.append(
            f"(a) 1 client, 1 in flight, p{int(q * 100)}: gateway {g:,.1f} us, "
            f"in-memory {m:,.1f} us, ratio {g / m:,.0f}x"
        )
    # (b) pipelined TCP and (c) WebSocket
    for label, ws in (("(b) TCP pipelined", False), ("(c) WebSocket pipelined", True)):
        per = max(1, n // args.clients)
        per_client = [
            workload(per, args.seed + i, f"{'w' if ws else 't'}{i}-") for i in range(args.clients)
        ]
        # the clients' orders interleaved, as the server sees them (round robin)
        flat = [
            (i + 1, orders[k])
            for k in range(per)
            for i, orders in enumerate(per_client)
            if k < len(orders)
        ]
        _, mem_s = in_memory(flat)
        async with Bench(args.journal) as b:
            elapsed = await pipelined(b, per_client, args.window, ws)
        g_rate, m_rate = len(flat) / elapsed, len(flat) / mem_s
        unit = "messages/s" if ws else "orders/s"
        lines.append(
            f"{label}, {args.clients} clients x window {args.window}: gateway "
            f"{g_rate:,.0f} {unit}, in-memory {m_rate:,.0f}/s, "
            f"ratio {m_rate / g_rate:,.1f}x slower"
        )
    lines.append(f"(in-memory per-command mean {statistics.fmean(mem_times) / 1000:.1f} us)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--journal", choices=["null", "sqlite"], default="null")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for line in uvloop.run(run(args)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
