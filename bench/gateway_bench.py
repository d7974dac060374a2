"""The gateway benchmark: the same seeded orders through the network and straight into the core.

    python -m bench.gateway_bench [--orders 20000] [--clients 4] [--window 64]
                                  [--journal null|sqlite|jetstream-r1|jetstream-r3[,...]]
                                  [--nats-r1 URL] [--nats-r3 URL] [--no-ws]
                                  [--seed 7] [--same-process]

Three measurements, each printed beside an in-memory run of the same core (`Core.apply`
in a loop, no network, no journal) measured in the same process, as a ratio:

(a) one TCP client, one order in flight: round trip p50/p99 (send -> ack), against the
    in-memory per-command p50/p99;
(b) `--clients` TCP clients, each keeping `--window` orders in flight (a sliding window: as
    acks arrive, as many new orders go out in one frame): orders/s;
(c) the same over WebSocket (JSON): messages/s.

By default the load clients of (a), (b) and (c) run in a separate OS process (one child
process, `multiprocessing` spawn, started per measurement) connecting over loopback to the
server in this process, so on a 2-core machine client and server each have a core; the
child measures and sends back its timings (the round trips, or the seconds from the first
send to the last ack). `--same-process` runs the clients in the server's own event loop, as
the benchmark originally did (client and server share one core, which understates the
server). Every wait on the child is bounded; the child is always joined, or killed.

`--journal null` (default) measures the gateway alone; `sqlite` adds the real group-commit
journal on a temporary folder (acks after COMMIT, synchronous=FULL), which is what
`tonne serve` runs; `jetstream-r1` the replicated journal (gateway/replication/) on a fresh
stream of the machine's NATS server (acks after the PubAck, then the local copy), and
`jetstream-r3` the same with three replicas on a 3-node cluster the bench starts on
loopback. A comma list measures each in turn and ends with a table of them side by side.

Measured 2026-11-25 on the 2-core development VM (no other benchmark running), 20 000
orders, uvloop, loopback, the serving GC policy (gateway/server/gcpolicy.py) for server, in-memory
runs and clients alike; clients in a separate process (the default) / `--same-process`:

    journal sqlite (the writer process, as `tonne serve`):
        (a) p50 251-300 us / p99 467-681 us   (same process: 249 / 409 us; fsync-bound)
        (b) 70 300-78 900 orders/s, 1.9-2.1x slower than in memory   (same process: 55 900)
        (c) 56 000-66 100 messages/s, 2.3-2.6x slower                (same process: 44 400)
    journal null:
        (a) p50 87 us / p99 145 us            (same process: 39 / 68 us)
        (b) 91 400-103 800 orders/s, 1.4-1.6x slower                  (same process: 81 500)
        (c) 90 200-93 600 messages/s, 1.4-1.6x slower                 (same process: 61 700)

The CPU line under (b) and (c) is the budget: CPU seconds per order of the server process
(from the moment the client process has its job), of the journal's writer process and of
the client process. With sqlite over TCP: server 11.4-12.8 us (the core itself is ~6.7 us of
it), writer 3.5-4.5 us, clients 2.2-2.4 us, so at most ~105 000-114 000 orders/s fit on two
cores however well the work overlaps; the server's one thread alone caps it near 80 000.

With one order in flight, (a) is slower across processes: each round trip wakes the other
process from its poll twice, where one event loop turns it around without sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import secrets
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from engine.commands import Side, TimeInForce
from engine.reference import Mitigation, Series
from gateway.client.client import Client
from gateway.console.metrics import ServerMetrics
from gateway.server.auth import Authenticator, KeyStore
from gateway.server.gcpolicy import serving, tune_for_serving
from gateway.server.server import Server
from gateway.server.session import Limits
from gateway.wire import protocol as p
from settlement.build import compiled

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
HOST = "127.0.0.1"  # loopback only
CHILD_START_S = 60.0  # spawn, imports, connects and logons of the client process, at most
CHILD_PER_ORDER_S = 0.005  # and this much per order on top, at most
CHILD_EXIT_S = 10.0  # for the client process to exit after its result, before a kill

# (client index, WebSocket?) -> a logged-on client
Connect = Callable[[int, bool], Awaitable[Client]]


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


JOURNALS = ("null", "sqlite", "jetstream-r1", "jetstream-r3")
NATS_LOCAL = "nats://127.0.0.1:4222"  # the R1 runs: the machine's own NATS server
_streams = 0  # streams this process made (each run gets its own, deleted after)


class JetStreamJournal:
    """The primary's journal on a fresh JetStream stream (gateway/replication/writer.py), with
    its local copy in a temporary folder: what `tonne serve --journal nats://...` runs, less
    the lease (a bench has one writer). The stream and its buckets are deleted on close."""

    def __init__(self, url: str, replicas: int) -> None:
        self.url = url
        self.replicas = replicas

    async def open(self) -> Any:
        from gateway.durability.journal import Journal
        from gateway.durability.store import SQLiteStore
        from gateway.replication.local import LocalCopy
        from gateway.replication.stream import open_link, parse_servers
        from gateway.replication.writer import stream_writer_factory
        from gateway.server.clock import SystemClock

        global _streams
        _streams += 1
        self.stream = f"BENCH{os.getpid()}x{_streams}"
        self.link = await open_link(
            parse_servers(self.url), self.stream, node="bench", replicas=self.replicas
        )
        self.tmp = tempfile.TemporaryDirectory(prefix="tonne-bench-js-")
        self.store = SQLiteStore(Path(self.tmp.name))
        self.local = LocalCopy(self.store, lambda why: print(f"local copy failed: {why}"))
        self.local.start()
        factory = stream_writer_factory(
            link=self.link,
            local=self.local,
            term=1,
            stream_seq=0,
            log_head="",
            clock=SystemClock(),
            on_deposed=lambda why: print(f"deposed: {why}"),
            batch_max=2048,
        )
        self.journal = Journal(self.store, writer=factory)
        self.journal.start()
        return self.journal

    async def close(self) -> None:
        from gateway.replication.stream import stream_names

        await self.journal.close()
        await self.local.close()
        names = stream_names(self.stream)
        js = self.link.js
        for delete, name in (
            (js.delete_stream, self.stream),
            (js.delete_key_value, names["lease"]),
            (js.delete_key_value, names["nodes"]),
            (js.delete_object_store, names["snapshots"]),
        ):
            try:
                await delete(name)
            except Exception as exc:
                print(f"could not delete {name}: {exc!r}")
        await self.link.close()
        self.store.close()
        self.tmp.cleanup()


class Bench:
    """One server for one measurement. `metrics`: "" (none, as `tonne serve` without
    --http-port), "metrics" (the counts /metrics reads) or "console" (those and the
    operator console following the log, as with --http-port): bench/metrics_bench.py.
    `nats_urls`: where the JetStream journals' servers are."""

    def __init__(
        self, journal_kind: str, nats_urls: dict[str, str] | None = None, metrics: str = ""
    ) -> None:
        self.journal_kind = journal_kind
        self.nats_urls = nats_urls or {}
        self.metrics = metrics
        self.keys: list[tuple[str, str]] = []
        self.console: Any = None

    async def __aenter__(self) -> Bench:
        core = make_core(funded=False)
        store = KeyStore(secrets.token_bytes(32))
        self.keys = [store.add(a) for a in range(1, ACCOUNTS + 1)]
        self._tmp = None
        self._store = None
        self._js: JetStreamJournal | None = None
        if self.journal_kind.startswith("jetstream-"):
            replicas = int(self.journal_kind[-1])
            self._js = JetStreamJournal(self.nats_urls[self.journal_kind], replicas)
            journal: Any = await self._js.open()
        elif self.journal_kind == "sqlite":
            from gateway.durability.journal import Journal
            from gateway.durability.store import SQLiteStore

            self._tmp = tempfile.TemporaryDirectory(prefix="tonne-bench-")
            self._store = SQLiteStore(Path(self._tmp.name))
            journal = Journal(self._store, writer_process=True)
            journal.start()
        else:
            from gateway.durability.journal import NullJournal

            journal = NullJournal()
        self.journal = journal
        limits = Limits(messages_per_s=10**7, burst_messages=10**7, open_orders_max=10**6)
        counts = ServerMetrics() if self.metrics else None
        self.server = Server(core, journal, Authenticator(store), limits=limits, metrics=counts)
        for cmd in funding():  # journaled like any command
            await self.server.operator(cmd)
        await self.server.start(HOST, 0, 0)
        if self.metrics == "console":
            from gateway.console.app import Console

            assert self._tmp is not None and counts is not None, "the console reads the store"
            self.console = Console(self.server, journal, Path(self._tmp.name), {}, counts)
            await self.console.start(HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.console is not None:
            await self.console.close()
        await self.server.close()
        if self._js is not None:
            await self._js.close()
        elif hasattr(self.journal, "close"):
            await self.journal.close()
        if self._store is not None:
            self._store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def writer_cpu_s(self) -> float:
        """CPU seconds used so far by the journal's writer process (0 without one)."""
        process = getattr(self.journal, "_process", None)
        pid = getattr(process, "pid", None)  # a JetStream writer is a task here: 0
        if pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime

    @property
    def endpoint(self) -> dict[str, Any]:
        """What a client process needs to connect and log on."""
        return {
            "tcp_port": self.server.tcp_port,
            "ws_port": self.server.ws_port,
            "keys": list(self.keys),
        }

    async def client(self, i: int, ws: bool = False) -> Client:
        return await connect_client(self.endpoint, i, ws)


async def connect_client(endpoint: dict[str, Any], i: int, ws: bool) -> Client:
    if ws:
        c = await Client.connect_ws(f"ws://{HOST}:{endpoint['ws_port']}")
    else:
        c = await Client.connect_tcp(HOST, endpoint["tcp_port"])
    await c.logon(*endpoint["keys"][i])
    return c


async def one_in_flight(connect: Connect, orders: list[p.NewOrder]) -> list[int]:
    c = await connect(0, False)
    rtt = []
    for o in orders:
        fut = c.order_future(o.client_order_id)
        t0 = time.perf_counter_ns()
        await c.send(o)
        await fut
        rtt.append(time.perf_counter_ns() - t0)
    await c.close()
    return rtt


async def pipelined(
    connect: Connect, per_client: list[list[p.NewOrder]], window: int, ws: bool
) -> tuple[float, float]:
    """Seconds from the first send to the last ack, and the CPU seconds this process spent
    meanwhile."""
    clients = [await connect(i, ws) for i in range(len(per_client))]

    async def drive(c: Client, orders: list[p.NewOrder]) -> None:
        # A sliding window: `window` orders in flight; each time acks arrive, as many new
        # orders go out, in one frame.
        inflight: deque[asyncio.Future[Any]] = deque()
        sent = 0
        while sent < len(orders) or inflight:
            room = window - len(inflight)
            if room and sent < len(orders):
                chunk = orders[sent : sent + room]
                sent += len(chunk)
                inflight.extend(c.order_future(o.client_order_id) for o in chunk)
                await c.send(*chunk)
            await inflight.popleft()
            while inflight and inflight[0].done():
                inflight.popleft().result()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[drive(c, o) for c, o in zip(clients, per_client, strict=True)])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for c in clients:
        await c.close()
    return elapsed, cpu


# -- the load clients in a separate process ----------------------------------------------


async def client_job(job: dict[str, Any]) -> Any:
    """Run one measurement's clients against the server at job["endpoint"]: the round trips
    (ns) for "latency", (elapsed seconds, CPU seconds) for "pipelined"."""

    async def connect(i: int, ws: bool) -> Client:
        return await connect_client(job["endpoint"], i, ws)

    if job["kind"] == "latency":
        return await one_in_flight(connect, job["orders"])
    return await pipelined(connect, job["per_client"], job["window"], job["ws"])


def client_main(job: dict[str, Any], conn: Any) -> None:
    """The client process: run the job (bounded by job["timeout_s"]) and send back
    ("ok", result) or ("error", text) on `conn`."""
    tune_for_serving()  # a load client is a serving process too
    try:
        result = uvloop.run(asyncio.wait_for(client_job(job), job["timeout_s"]))
        conn.send(("ok", result))
    except BaseException as exc:  # reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def child_timeout_s(orders: int) -> float:
    return CHILD_START_S + orders * CHILD_PER_ORDER_S


async def in_child(
    job: dict[str, Any], timeout_s: float, started: Callable[[], None] = lambda: None
) -> Any:
    """Run `client_main(job)` in a new process (spawn) while this event loop keeps serving;
    its result, or RuntimeError/TimeoutError. The child is always joined, or killed."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=client_main, args=(dict(job, timeout_s=timeout_s), send))
    loop = asyncio.get_running_loop()
    try:
        proc.start()
        started()  # the job has been handed over (pickled): what follows is serving it
        send.close()  # the child holds the only write end: EOF if it dies without a word
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(recv.fileno(), ready)
        try:
            # a little longer than the child's own bound, so that it reports first
            await asyncio.wait_for(readable, timeout_s + CHILD_EXIT_S)
        except TimeoutError:
            raise TimeoutError(f"client process: no result in {timeout_s:.0f} s") from None
        finally:
            loop.remove_reader(recv.fileno())
        # The loop made the pipe non-blocking to watch it; the child is writing its result
        # now (a large one arrives in pieces), so read it whole, blocking.
        os.set_blocking(recv.fileno(), True)
        try:
            status, value = recv.recv()
        except EOFError:
            proc.join(CHILD_EXIT_S)
            raise RuntimeError(
                f"client process exited (code {proc.exitcode}) without a result"
            ) from None
        if status != "ok":
            raise RuntimeError(f"client process failed: {value}")
        return value
    finally:
        if not send.closed:
            send.close()
        if proc.pid is not None:  # started
            deadline = time.monotonic() + CHILD_EXIT_S
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # keep serving while it closes its connections
            if proc.is_alive():
                proc.kill()
            proc.join(CHILD_EXIT_S)
        recv.close()


async def measure(
    b: Bench,
    job: dict[str, Any],
    same_process: bool,
    orders: int,
    started: Callable[[], None] = lambda: None,
) -> Any:
    """One measurement's client side, in this process or in a client process."""
    if same_process:
        return await client_job(dict(job, endpoint=b.endpoint))
    return await in_child(dict(job, endpoint=b.endpoint), child_timeout_s(orders), started)


class CpuMark:
    """CPU seconds of this (server) process and of its journal writer since `mark()`."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.mark()

    def mark(self) -> None:
        self.server, self.writer = time.process_time(), self.bench.writer_cpu_s()

    def since(self) -> tuple[float, float]:
        return time.process_time() - self.server, self.bench.writer_cpu_s() - self.writer


def cpu_budget(orders: int, server_s: float, writer_s: float, client_s: float) -> str:
    """CPU per order of each process, and the rate their sum allows on this machine's cores:
    what the machine can do at best with this code, however the work is overlapped."""
    us = [x / orders * 1e6 for x in (server_s, writer_s, client_s)]
    cores = os.cpu_count() or 1
    return (
        f"    CPU per order: server {us[0]:.1f} us, journal writer {us[1]:.1f} us, "
        f"clients {us[2]:.1f} us; sum {sum(us):.1f} us -> at most "
        f"{cores / sum(us) * 1e6:,.0f}/s on {cores} cores"
    )


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000


async def run(args: argparse.Namespace) -> list[str]:
    """Each journal of `--journal` (a comma list) in turn, then a table of them side by side.
    A `jetstream-r3` run starts its own 3-node NATS cluster on loopback (bench/nats_servers.py)
    unless `--nats-r3 URL` names one."""
    kinds = args.journal.split(",")
    if args.same_process:
        mode = "same process: clients share the server's process and event loop"
    else:
        mode = (
            "separate process: (a), (b) and (c) clients in one spawned client process, "
            "server in this one, loopback"
        )
    lines = [f"gateway bench: {args.orders} orders, journal {args.journal}, seed {args.seed}"]
    lines.append(f"mode: {mode}")
    lines.append(f'core: compiled: {str(compiled()).lower()} (README, "The compiled core")')
    table: list[tuple[str, float, float, float]] = []
    with contextlib.ExitStack() as stack:
        urls = {"jetstream-r1": args.nats_r1, "jetstream-r3": args.nats_r3}
        if "jetstream-r3" in kinds and not args.nats_r3:
            from bench.nats_servers import nats_cluster

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="tonne-bench-nats-"))
            cluster = stack.enter_context(nats_cluster(Path(folder), 3))
            await cluster.wait_jetstream()
            urls["jetstream-r3"] = cluster.url
        for kind in kinds:
            if len(kinds) > 1:
                where = f" ({urls[kind]})" if kind in urls else ""
                lines.append(f"-- journal {kind}{where}")
            lines += await run_one(args, kind, urls, table)
    if len(table) > 1:
        base = next((row for row in table if row[0] == "sqlite"), table[0])
        lines.append(f"durable TCP, side by side (ratios against {base[0]}):")
        for kind, p50, p99, rate in table:
            lines.append(
                f"  {kind:<13} (a) p50 {p50:>8,.1f} us  p99 {p99:>8,.1f} us   (b) {rate:>8,.0f} "
                f"orders/s  = {rate / base[3]:.2f}x the throughput, {p50 / base[1]:.2f}x the p50"
            )
    return lines


async def run_one(
    args: argparse.Namespace,
    kind: str,
    urls: dict[str, str],
    table: list[tuple[str, float, float, float]],
) -> list[str]:
    n = args.orders
    lines: list[str] = []
    # (a) latency
    latency_orders = workload(min(n, 5000), args.seed, "a")
    mem_times, _ = in_memory([(1, o) for o in latency_orders])
    async with Bench(kind, urls) as b:
        job = {"kind": "latency", "orders": latency_orders}
        rtt = await measure(b, job, args.same_process, len(latency_orders))
    for q in (0.5, 0.99):
        g, m = pct(rtt, q), pct(mem_times, q)
        lines.append(
            f"(a) 1 client, 1 in flight, p{int(q * 100)}: gateway {g:,.1f} us, "
            f"in-memory {m:,.1f} us, ratio {g / m:,.0f}x"
        )
    tcp_rate = 0.0
    # (b) pipelined TCP and (c) WebSocket
    for label, ws in (("(b) TCP pipelined", False), ("(c) WebSocket pipelined", True)):
        if ws and args.no_ws:
            continue
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
        async with Bench(kind, urls) as b:
            job = {"kind": "pipelined", "per_client": per_client, "window": args.window, "ws": ws}
            cpu_from = CpuMark(b)  # server, writer: from when the client process has its job
            elapsed, client_cpu = await measure(b, job, args.same_process, len(flat), cpu_from.mark)
            server_cpu, writer_cpu = cpu_from.since()
        g_rate, m_rate = len(flat) / elapsed, len(flat) / mem_s
        if not ws:
            tcp_rate = g_rate
        unit = "messages/s" if ws else "orders/s"
        lines.append(
            f"{label}, {args.clients} clients x window {args.window}: gateway "
            f"{g_rate:,.0f} {unit}, in-memory {m_rate:,.0f}/s, "
            f"ratio {m_rate / g_rate:,.1f}x slower"
        )
        if not args.same_process:
            lines.append(cpu_budget(len(flat), server_cpu, writer_cpu, client_cpu))
    lines.append(f"(in-memory per-command mean {statistics.fmean(mem_times) / 1000:.1f} us)")
    table.append((kind, pct(rtt, 0.5), pct(rtt, 0.99), tcp_rate))
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
    parser.add_argument(
        "--journal",
        default="null",
        help=f"one or a comma list of {', '.join(JOURNALS)} (each measured in turn)",
    )
    parser.add_argument("--nats-r1", default=NATS_LOCAL, help="the NATS server of jetstream-r1")
    parser.add_argument(
        "--nats-r3", default="", help="a 3-node cluster for jetstream-r3 (default: start one)"
    )
    parser.add_argument("--no-ws", action="store_true", help="skip (c), the WebSocket run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run the clients in the server's process (the old way) instead of a child process",
    )
    args = parser.parse_args(argv)
    unknown = set(args.journal.split(",")) - set(JOURNALS)
    if unknown:
        parser.error(f"unknown journals {sorted(unknown)}: choose from {', '.join(JOURNALS)}")
    with serving():  # the GC policy of `tonne serve`, for the server and the in-memory runs
        lines = uvloop.run(run(args))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
