"""A deterministic simulation of the whole gateway: one seed, one run, replayed exactly.

As TigerBeetle's VOPR does, a seeded scheduler drives the real `Server` (its sessions,
policy, commit pipeline, timers), the real `Journal` on a real SQLite store in a temporary
folder, and the real core, through a fake network, with crashes injected at chosen points:

- time is a `ManualClock` that only the scheduler advances (heartbeats, idle and logon
  timeouts, GTD expiry, the journal's snapshot interval all run on it);
- the network is in memory: each connection is a `TcpSession` on a fake transport whose
  bytes wait in two queues, one per direction, delivered one chunk per step, in order per
  connection and in a seeded order across connections; a connection can be reset;
- the disk is the journal's writer, substituted (`Journal(writer=...)`): batches wait until
  the scheduler commits them to the real store with the real merge rule (`merge`), so a
  crash loses exactly the batches not yet committed. The writer thread or process would
  make the moment of each commit a matter of OS scheduling, and the run could not replay;
  snapshots are taken in the loop (`snapshot_fork=False`) for the same reason;
- clients are small models that log on, place, cancel and retire, send seeded GTD orders,
  and answer heartbeats (or, by seed, fall silent and time out); an operator deposits cash;
- a crash drops the server, the journal and every connection mid-run; the folder is
  reopened with recovery, and every acknowledged command (each order ack, each deposit the
  operator was told of, each retirement certificate) must be there; then the run goes on.

After each crash and at the end: the core's invariants hold, the recovered journal ends
exactly at the last commit, and at the end a full replay from genesis gives the same state
hash and `tonne log verify` passes. Every step, every byte a client reads and every
recovered state hash feed one digest: the same seed gives the same digest.

    python -m tests.simulation --seeds 1000 [--first 0] [--steps 400]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.commands import NewOrder as CoreNewOrder
from engine.commands import Side, TimeInForce
from gateway.cli.logcmd import verify
from gateway.durability.journal import Journal
from gateway.durability.recovery import recover, save_genesis
from gateway.durability.store import Batch, SQLiteStore
from gateway.durability.writer_process import merge
from gateway.server.auth import Authenticator, KeyStore, sign_logon
from gateway.server.clock import NS_PER_S, ManualClock
from gateway.server.server import Server
from gateway.server.session import Limits, TcpSession
from gateway.wire import protocol as p
from settlement.commands import Deposit as CoreDeposit
from settlement.commands import DepositCredits, OpenAccount

sys.path.insert(0, str(Path(__file__).parent))
from test_gateway_harness import SERIES, make_core, test_series  # noqa: E402

START_NS = 1_800_000_000 * NS_PER_S  # the simulated wall clock starts here, every run
ACCOUNTS = 3
STEPS = 300  # scheduler steps per run (then a drain and a clean shutdown)
CRASHES_MAX = 2  # per run, at seeded steps
SETTLE_MAX = 10_000  # loop turns to reach quiescence after a step: more is a livelock
LIMITS = Limits(
    heartbeat_s=10.0,
    idle_timeout_s=30.0,
    logon_timeout_s=10.0,
    reads_in_flight_max=2,  # back-pressure is reached often
    logon_skew_s=30.0,
)
ADVANCES_NS = (NS_PER_S // 1000, NS_PER_S // 10, NS_PER_S, 3 * NS_PER_S, 11 * NS_PER_S)


class SimulationFailed(AssertionError):
    """A check failed; the message names the seed, which replays it."""


# -- the disk -----------------------------------------------------------------------------


class SteppedWriter:
    """The journal's writer (`ExternalWriter`), committing only when the scheduler says:
    the real store, the real merge rule, on the loop. A crash drops what is not committed."""

    def __init__(
        self,
        store: SQLiteStore,
        on_commit: Callable[[int, int], None],
        batch_max: int,
        snapshots_kept: int,
    ) -> None:
        self.store = store
        self.on_commit = on_commit
        self.batch_max = batch_max
        self.snapshots_kept = snapshots_kept
        self.pending: deque[Batch] = deque()
        self.committed_seq = 0
        self.dead = False
        self.closing = False

    def start(self) -> None:
        pass

    def send(self, batch: Batch) -> None:
        if not self.dead:
            self.pending.append(batch)
            if self.closing:
                asyncio.get_running_loop().call_soon(self.commit)

    def send_threadsafe(self, batch: Batch) -> None:
        raise AssertionError("snapshots are taken in the loop in the simulation")

    def commit(self) -> None:
        """One transaction: what the writer thread would gather from its queue now."""
        if self.dead or not self.pending:
            return
        batch = merge(self.pending, self.batch_max)
        self.store.write(batch)
        if batch.snapshot is not None:
            self.store.prune_snapshots(self.snapshots_kept)
        if batch.commands:
            self.committed_seq = batch.commands[-1].seq
        self.on_commit(self.committed_seq if batch.commands else 0, len(batch.commands))

    async def close(self) -> None:
        while self.pending and not self.dead:
            self.commit()


# -- the network --------------------------------------------------------------------------


class Wire:
    """One TCP connection: bytes each way wait here until the scheduler delivers them."""

    def __init__(self, conn_id: int, client: SimClient) -> None:
        self.conn_id = conn_id
        self.client = client
        self.to_server: deque[bytes] = deque()
        self.to_client: deque[bytes] = deque()
        self.session: TcpSession | None = None
        self.closing = False  # the server closed it: what is queued still reaches the client
        self.dead = False  # gone both ways
        self.paused = False


class FakeTransport:
    """What a `TcpSession` writes to: its bytes join the wire's queue to the client."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def write(self, data: bytes) -> None:
        if not self.wire.closing and not self.wire.dead:
            self.wire.to_client.append(bytes(data))

    def write_eof(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.wire.closing or self.wire.dead

    def close(self) -> None:
        if not self.is_closing():
            self.wire.closing = True
            asyncio.get_running_loop().call_soon(self._lost)

    def abort(self) -> None:
        if not self.wire.dead:
            self.wire.to_client.clear()
            self.close()

    def _lost(self) -> None:
        if self.wire.session is not None and not self.wire.dead:
            self.wire.session.connection_lost(None)

    def get_write_buffer_size(self) -> int:
        return sum(len(b) for b in self.wire.to_client)

    def pause_reading(self) -> None:
        self.wire.paused = True

    def resume_reading(self) -> None:
        self.wire.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


# -- the clients --------------------------------------------------------------------------


class SimClient:
    """A participant: one connection at a time, a model of what it was told."""

    def __init__(self, account: int, key_id: str, secret: str, rng: random.Random) -> None:
        self.account = account
        self.key_id = key_id
        self.secret = secret
        self.rng = rng
        self.wire: Wire | None = None
        self.reader = p.FrameReader(1 << 30)
        self.logged_on = False
        self.silent = False  # by seed: stops answering heartbeats (idle timeout follows)
        self.coids = 0
        self.req_ids = 0
        self.logons = 0
        self.open: dict[int, str] = {}  # order id -> client order id, as acknowledged
        self.acked_orders: set[str] = set()  # client order ids acknowledged, ever
        self.certificates: list[p.Certificate] = []

    def send(self, *msgs: Any) -> None:
        assert self.wire is not None
        self.wire.to_server.append(p.encode_frame(list(msgs)))

    def logon(self, now_ns: int) -> None:
        self.logons += 1
        nonce = f"n{self.account}-{self.logons}"
        sig = sign_logon(self.secret, self.key_id, now_ns, nonce)
        cod = self.rng.random() < 0.5
        self.send(
            p.Logon(
                key_id=self.key_id,
                ts=now_ns,
                nonce=nonce,
                signature=sig,
                cancel_on_disconnect=cod,
                req_id=self.next_req(),
            )
        )

    def next_req(self) -> int:
        self.req_ids += 1
        return self.req_ids

    def request(self, now_ns: int) -> str:
        """Send one seeded request; what it was, for the trace."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.55 or not self.open:
            self.coids += 1
            coid = f"c{self.account}-{self.coids}"
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            price = rng.randint(95, 105)
            qty = rng.randint(1, 20)
            gtd = rng.random() < 0.15
            fields: dict[str, Any] = {}
            if gtd:
                fields = {"tif": TimeInForce.GTD, "expire_ts": now_ns + rng.choice(ADVANCES_NS)}
            order = p.NewOrder(
                client_order_id=coid, series=SERIES, side=side, qty=qty, price=price, **fields
            )
            self.send(order)
            return f"new {coid} {side.value} {qty}@{price}{' gtd' if gtd else ''}"
        if roll < 0.85:
            order_id = rng.choice(sorted(self.open))
            self.send(p.Cancel(order_id=order_id, req_id=self.next_req()))
            return f"cancel {order_id}"
        if roll < 0.95:
            qty = rng.randint(1, 3)
            self.send(p.Retire(beneficiary=f"b{self.account}", series=SERIES, qty=qty, req_id=0))
            return f"retire {qty}"
        self.send(p.QueryBalances(req_id=self.next_req()))
        return "balances"

    def received(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            for msg in p.decode_server_msgpack(frame):
                self._read(msg)

    def _read(self, msg: Any) -> None:
        kind = type(msg)
        if kind is p.LogonAck:
            self.logged_on = True
        elif kind is p.OrderAck:
            self.open[msg.order_id] = msg.client_order_id
            self.acked_orders.add(msg.client_order_id)
        elif kind is p.Fill:
            if msg.leaves_qty == 0:
                self.open.pop(msg.order_id, None)
        elif kind in (p.Cancelled, p.Expired):
            self.open.pop(msg.order_id, None)
        elif kind is p.Certificate:
            self.certificates.append(msg)
        elif kind is p.ServerHeartbeat and not msg.req_id and not self.silent and self.wire:
            self.send(p.Heartbeat(req_id=self.next_req()))

    def disconnected(self) -> None:
        self.wire = None
        self.logged_on = False
        self.reader = p.FrameReader(1 << 30)
        self.open.clear()  # what survives is asked again after the next logon, if at all


# -- the run ------------------------------------------------------------------------------


class Simulation:
    """One seeded run in `data_dir`. `run()` returns the trace digest, or raises
    `SimulationFailed`."""

    writer_class: type[SteppedWriter] = SteppedWriter  # a test substitutes a lying disk

    def __init__(self, seed: int, data_dir: Path, steps: int = STEPS) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.data_dir = data_dir
        self.steps = steps
        self.clock = ManualClock(START_NS)
        self.trace = hashlib.blake2b(digest_size=16)
        self.keys = KeyStore(b"\x07" * 32)
        self.clients: list[SimClient] = []
        for account in range(1, ACCOUNTS + 1):
            key_id, secret = f"sim{account}", f"secret-{seed}-{account}"
            self.keys.put(account, key_id, secret, frozenset({"trade", "retire", "fund"}))
            rng = random.Random(f"{seed}/{account}")
            self.clients.append(SimClient(account, key_id, secret, rng))
        self.wires: list[Wire] = []
        self.conn_ids = 0
        self.deposits_told: dict[int, int] = {}  # account -> deposits the operator was told of
        self.operator_tasks: list[asyncio.Task[None]] = []
        self.crash_at = sorted(self.rng.sample(range(20, steps), self.rng.randint(0, CRASHES_MAX)))
        self.crashes = 0
        self.store: SQLiteStore
        self.writer: SteppedWriter
        self.journal: Journal
        self.server: Server

    def note(self, *parts: object) -> None:
        self.trace.update(repr(parts).encode())

    def fail(self, text: str) -> SimulationFailed:
        return SimulationFailed(f"seed {self.seed}: {text} (replay: {replay_hint(self.seed)})")

    # -- lifecycle ------------------------------------------------------------------------

    def genesis(self) -> None:
        store = SQLiteStore(self.data_dir)
        core = make_core()
        save_genesis(store, series=test_series(), projects=list(core.projects.values()))
        store.close()

    async def open(self) -> None:
        """Open the folder as a (re)started server would: recovery, journal, server."""
        self.store = SQLiteStore(self.data_dir)
        got = recover(self.store, clock=self.clock)
        self.check_recovered(got)

        def writer(on_commit: Callable[[int, int], None], on_failure: Any) -> SteppedWriter:
            self.writer = self.writer_class(self.store, on_commit, 64, 2)
            self.writer.committed_seq = got.seq
            return self.writer

        self.journal = Journal(
            self.store,
            seq=got.seq,
            log_seq=got.log_seq,
            log_head=got.log_head,
            core=got.core,
            batch_max=64,
            snapshot_every=40,
            snapshot_fork=False,
            clock=self.clock,
            writer=writer,
        )
        self.journal.start()
        auth = Authenticator(self.keys, skew_s=LIMITS.logon_skew_s)
        self.server = Server(got.core, self.journal, auth, limits=LIMITS, clock=self.clock)
        await self.server.start(tcp_port=None, ws_port=None)
        self.note("opened", got.seq, got.log_seq, got.state_hash)

    async def fund(self) -> None:
        for account in range(1, ACCOUNTS + 1):
            for cmd in (
                OpenAccount(account=account),
                CoreDeposit(account=account, currency="USD", amount=10**7),
                DepositCredits(
                    account=account,
                    project="VCS1340",
                    vintage=2020,
                    start=account * 10**6,
                    end=account * 10**6 + 9_999,
                    quantity=10_000,
                ),
            ):
                task = asyncio.ensure_future(self.server.operator(cmd))
                for _ in range(SETTLE_MAX):
                    await self.settle()
                    if task.done():
                        break
                    self.writer.commit()
                else:
                    raise self.fail("funding never commits")
                await task

    def check_recovered(self, got: Any) -> None:
        """Every acknowledged command survived, and nothing past the last commit did."""
        if self.crashes and got.seq != self.writer.committed_seq:
            raise self.fail(f"recovered seq {got.seq}, committed {self.writer.committed_seq}")
        got.core.check_invariants()
        codec = self.journal.codec if self.crashes else None
        if codec is None:
            return
        orders: set[tuple[int, str]] = set()
        deposits: dict[int, int] = {}
        for row in self.store.commands(0):
            cmd = codec.decode_command(row.cmd)
            if type(cmd) is CoreNewOrder:
                orders.add((cmd.account, cmd.client_order_id))
            elif type(cmd) is CoreDeposit:
                deposits[cmd.account] = deposits.get(cmd.account, 0) + 1
        for c in self.clients:
            lost = [coid for coid in c.acked_orders if (c.account, coid) not in orders]
            if lost:
                raise self.fail(f"acknowledged orders lost in a crash: {sorted(lost)[:5]}")
            for cert in c.certificates:
                rows = list(self.store.records(cert.record_seq - 1, cert.record_seq))
                if not rows or rows[0].hash != cert.record_hash:
                    raise self.fail(f"certificate {cert.cert_id} lost in a crash")
        for account, told in self.deposits_told.items():
            if deposits.get(account, 0) < told:
                raise self.fail(f"account {account}: a deposit the operator was told of is lost")

    async def crash(self) -> None:
        """The process dies: nothing not committed survives, every connection drops."""
        self.crashes += 1
        self.writer.dead = True
        for wire in self.wires:
            wire.dead = True
            wire.client.disconnected()
        self.wires.clear()
        doomed = [*self.server._tasks, *self.operator_tasks]
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        self.operator_tasks.clear()
        self.store.close()
        self.note("crash", self.writer.committed_seq)
        # a new process: its own monotonic clock (the dead server's timers die with it),
        # the wall time going on
        self.clock = ManualClock(self.clock.now)
        await self.open()

    # -- the scheduler --------------------------------------------------------------------

    async def settle(self) -> None:
        """Run the loop until nothing is ready: every task waits on the network, the disk
        or the clock, which only the scheduler moves."""
        loop = asyncio.get_running_loop()
        ready = loop._ready  # type: ignore[attr-defined]
        for _ in range(SETTLE_MAX):
            await asyncio.sleep(0)
            if not ready:
                return
        raise self.fail("the loop never settles")

    def connect(self, c: SimClient) -> None:
        self.conn_ids += 1
        wire = Wire(self.conn_ids, c)
        c.wire = wire
        self.wires.append(wire)
        session = self.server.tcp_session()
        wire.session = session
        session.connection_made(FakeTransport(wire))  # type: ignore[arg-type]
        c.silent = c.rng.random() < 0.05
        c.logon(self.clock.now_ns())

    def choices(self) -> list[tuple[float, str, Any]]:
        out: list[tuple[float, str, Any]] = []
        for c in self.clients:
            if c.wire is None:
                out.append((0.3, "connect", c))
            elif c.logged_on and not c.wire.closing:
                out.append((2.0, "request", c))
        for wire in self.wires:
            if wire.to_server and not wire.paused and not wire.closing:
                out.append((3.0, "to_server", wire))
            if wire.to_client:
                out.append((3.0, "to_client", wire))
            elif wire.closing:
                out.append((1.0, "eof", wire))
            if not wire.closing:
                out.append((0.02, "reset", wire))
        if self.writer.pending:
            out.append((2.5, "commit", None))
        out.append((0.6, "advance", None))
        out.append((0.1, "deposit", None))
        return out

    async def step(self, n: int) -> None:
        if self.crash_at and n == self.crash_at[0]:
            self.crash_at.pop(0)
            await self.crash()
            return
        options = self.choices()
        pick = self.rng.random() * sum(weight for weight, _, _ in options)
        chosen = options[-1]
        for option in options:
            pick -= option[0]
            if pick < 0:
                chosen = option
                break
        _, what, arg = chosen
        await self.do(what, arg)
        await self.settle()

    async def do(self, what: str, arg: Any) -> None:
        now = self.clock.now_ns()
        if what == "connect":
            self.connect(arg)
            self.note("connect", arg.account, arg.wire.conn_id if arg.wire else 0)
        elif what == "request":
            self.note("request", arg.account, arg.request(now))
        elif what == "to_server":
            wire = arg
            data = wire.to_server.popleft()
            self.note("to_server", wire.conn_id, len(data))
            assert wire.session is not None
            wire.session.data_received(data)
        elif what == "to_client":
            wire = arg
            data = wire.to_client.popleft()
            self.note("to_client", wire.conn_id, data)
            wire.client.received(data)
        elif what == "eof":
            self.note("eof", arg.conn_id)
            self.drop(arg)
        elif what == "reset":
            self.note("reset", arg.conn_id)
            wire = arg
            wire.to_client.clear()
            wire.to_server.clear()
            self.drop(wire)
            assert wire.session is not None
            wire.session.connection_lost(ConnectionResetError())
        elif what == "commit":
            self.writer.commit()
            self.note("commit", self.writer.committed_seq)
        elif what == "advance":
            ns = self.rng.choice(ADVANCES_NS)
            self.note("advance", ns, self.clock.advance(ns))
        elif what == "deposit":
            account = self.rng.randint(1, ACCOUNTS)
            self.note("deposit", account)
            self.operator_tasks.append(asyncio.ensure_future(self.deposit(account)))

    def drop(self, wire: Wire) -> None:
        """The client side of a connection is gone (it read the end, or it was reset)."""
        wire.closing = True
        if not wire.dead:
            wire.dead = True
            wire.client.disconnected()
            self.wires.remove(wire)

    async def deposit(self, account: int) -> None:
        await self.server.operator(CoreDeposit(account=account, currency="USD", amount=1_000))
        self.deposits_told[account] = self.deposits_told.get(account, 0) + 1

    async def drain(self) -> None:
        """No new work: deliver and commit until everything queued has happened."""
        for _ in range(SETTLE_MAX):
            busy = self.writer.pending or any(
                w.to_client or (w.to_server and not w.paused and not w.closing) for w in self.wires
            )
            if not busy:
                return
            self.writer.commit()
            for wire in list(self.wires):
                while wire.to_server and not wire.paused and not wire.closing:
                    wire.session.data_received(wire.to_server.popleft())  # type: ignore[union-attr]
                while wire.to_client:
                    wire.client.received(wire.to_client.popleft())
            await self.settle()
        raise self.fail("the run does not drain")

    async def shutdown(self) -> None:
        """A clean stop: commits from here on happen by themselves, the server closes
        (cancel-on-disconnect is committed too), the journal closes."""
        self.writer.closing = True
        while self.writer.pending:
            self.writer.commit()
        for wire in list(self.wires):  # the clients leave; cancel-on-disconnect is committed
            self.drop(wire)
            assert wire.session is not None
            wire.session.connection_lost(None)
        await self.settle()
        await self.server.close()
        await self.settle()
        await self.journal.close()
        final = self.server.core.state_hash()
        self.server.core.check_invariants()
        self.store.close()
        store = SQLiteStore(self.data_dir)
        try:
            replayed = recover(store, use_snapshots=False, clock=self.clock)
            if replayed.state_hash != final:
                raise self.fail("a full replay from genesis gives another state hash")
            out = io.StringIO()
            if verify(store, out) != 0:
                raise self.fail(f"log verify failed: {out.getvalue()}")
        finally:
            store.close()
        self.note("final", final)

    async def run(self) -> str:
        self.genesis()
        await self.open()
        await self.fund()
        for n in range(self.steps):
            await self.step(n)
        await self.drain()
        await self.shutdown()
        self.stats = {
            "commands": self.journal.seq,
            "crashes": self.crashes,
            "acked": sum(len(c.acked_orders) for c in self.clients),
            "certificates": sum(len(c.certificates) for c in self.clients),
            "connections": self.conn_ids,
            **{k: v for k, v in self.server.counters.items() if "timeout" in k},
        }
        return self.trace.hexdigest()


def replay_hint(seed: int) -> str:
    return f"python -m tests.simulation --first {seed} --seeds 1"


def scratch() -> str | None:
    """Where runs keep their folders: a RAM disk where there is one. The simulated disk is
    the stepped writer (what it committed survives a crash, nothing else does), so fsync
    adds nothing to what a run checks, only time."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def run_seed(seed: int, steps: int = STEPS, simulation: type[Simulation] = Simulation) -> str:
    """One run on a fresh folder and a fresh default event loop; its trace digest."""
    with tempfile.TemporaryDirectory(prefix=f"tonne-sim-{seed}-", dir=scratch()) as data_dir:
        sim = simulation(seed, Path(data_dir), steps)
        with asyncio.Runner() as runner:
            return runner.run(sim.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__)
    parser.add_argument("--seeds", type=int, default=int(os.environ.get("TONNE_SIM_SEEDS", 100)))
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    for seed in range(args.first, args.first + args.seeds):
        digest = run_seed(seed, args.steps)
        print(f"seed {seed}: {digest}", flush=True)
    print(f"{args.seeds} seeds in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
