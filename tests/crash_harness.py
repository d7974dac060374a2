"""The crash test: a real server process, a real SIGKILL, and a check that nothing
acknowledged is lost and nothing unacknowledged is half-applied.

Each cycle starts the command feed (`python -m gateway.feed`, the durable core on loopback)
on the same data folder, so it recovers from whatever the last kill left. Simulated
participants trade through it and record every acknowledged command with the events it was
answered with. At a random moment (from the seed) the process gets SIGKILL. Then, with the
process dead:

- the journal replays from scratch through the real core, and every acknowledged command is
  there, at its sequence number, producing exactly the events it was acknowledged with
  (orders, fills and retirements alike);
- the rebuilt ledger's invariants hold (conservation, available + held = total, every serial
  in one place: a fill's two legs are applied together or not at all);
- `settlement.log.verify` passes over the stored log, and so does `tonne log verify`;
- recovery from the newest snapshot reaches the same state hash as the replay from scratch,
  and the restarted process reports that same journal position and state hash.

    python -m tests.crash_harness --cycles 50 [--seed N] [--data DIR]

CI runs a few cycles (tests/test_durability_crash.py); TONNE_CRASH_CYCLES sets how many.
tests/test_durability_crash_serve.py does the same to the real server, `tonne serve`, with
its clients, using `FeedProcess` and `check_recovery` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gateway.durability.journal import SettlementCodec
from gateway.durability.recovery import REF_SERIES, recover, save_genesis
from gateway.durability.store import SQLiteStore

HEADER = struct.Struct(">I")
START_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 10.0
# the kill comes after a seeded number of acknowledgements in the cycle, in this range, so that
# a failing seed kills at the same point of its command stream again (what was in flight at
# that moment is the OS's to decide; tests/simulation.py replays that exactly too)
KILL_AFTER_ACKS = (20, 4000)
CLIENTS = 4
PIPELINE = 8  # requests a client has in flight at once
COMMANDS_PER_CYCLE_MAX = 20_000  # a cycle ends (by the kill) well before this
DEFAULT_SEED = 5
RETIREMENT_TAGS = frozenset({"certificate"})  # one per project and vintage retired
REGISTRY_TAGS = frozenset({"label", "suspension", "reinstatement", "contract_rule", "reversal"})


ROOT = Path(__file__).resolve().parent.parent  # so that the child finds `tests.*` modules too
FEED = ("gateway.feed",)


class FeedProcess:
    """The server under test, as a child process on loopback: `python -m <command> --data
    DIR <args>`, which prints one JSON line when it is ready (the feed by default; the real
    server is `command=("gateway.cli.main", "serve")`, a broken feed
    `("tests.feed_acks_early",)`)."""

    def __init__(
        self, data_dir: Path, args: Sequence[str] = (), command: Sequence[str] = FEED
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.command = list(command)
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self.returncode: int | None = None

    async def start(self) -> dict[str, Any]:
        log = open(self.data_dir / "feed.stderr", "ab")  # noqa: SIM115 - closed below
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *self.command,
                "--data",
                str(self.data_dir),
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=_with_root_on_path(os.environ),
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
        if not line:
            await self.proc.wait()
            err = (self.data_dir / "feed.stderr").read_text()[-2000:]
            raise RuntimeError(
                f"{self.command} did not start (exit {self.proc.returncode}):\n{err}"
            )
        self.info = json.loads(line)
        return self.info

    async def kill(self) -> None:
        """SIGKILL: no chance to flush, close or snapshot anything."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """SIGTERM: a clean shutdown (final commit and snapshot)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        await self._reap()

    async def _reap(self) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), START_TIMEOUT_S)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.returncode = self.proc.returncode
        if self.proc.stdout is not None:
            with contextlib.suppress(Exception):
                await self.proc.stdout.read()
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()
        self.proc = None


class FeedClient:
    """One connection; `request` pipelines, answers come back in order."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.req_id = 0
        self.encode = msgspec.msgpack.encode
        self.decode = msgspec.msgpack.decode

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), ANSWER_TIMEOUT_S
        )

    def send(self, body_item: bytes | str) -> int:
        assert self.writer is not None
        self.req_id += 1
        body = self.encode([self.req_id, body_item])
        self.writer.write(HEADER.pack(len(body)) + body)
        return self.req_id

    async def answer(self) -> list[Any]:
        assert self.reader is not None
        head = await asyncio.wait_for(self.reader.readexactly(HEADER.size), ANSWER_TIMEOUT_S)
        body = await asyncio.wait_for(
            self.reader.readexactly(HEADER.unpack(head)[0]), ANSWER_TIMEOUT_S
        )
        answer: list[Any] = self.decode(body)
        return answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
            self.writer = None


class Acked(msgspec.Struct):
    """What the server promised: command `cmd` (encoded, before stamping) is journal `seq`
    and produced `events` (encoded)."""

    seq: int
    events: bytes


class Tally(msgspec.Struct):
    cycles: int = 0
    acked: int = 0
    registry_events: int = 0  # labels, suspensions, reinstatements, rule versions applied
    baskets: int = 0  # screened basket buys carried out (issue 14)
    venue_cancels: int = 0  # resting orders the venue cancelled (ineligible, suspended)
    orders: int = 0
    fills: int = 0
    retirements: int = 0
    in_flight_at_kill: int = 0
    journal_seq: int = 0
    snapshot_recoveries: int = 0
    check_s: float = 0.0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.cycles} kill cycles in {self.elapsed_s:.1f} s: {self.acked} acknowledged "
            f"commands ({self.orders} orders accepted, {self.fills} fills, {self.retirements} "
            f"retirements, {self.baskets} baskets, {self.registry_events} registry events, "
            f"{self.venue_cancels} venue "
            f"cancels) all present after recovery; {self.in_flight_at_kill} in flight at "
            f"the kills; journal at seq {self.journal_seq}; {self.snapshot_recoveries} restarts "
            f"recovered from a snapshot; checks took {self.check_s:.1f} s"
        )


# -- the scenario: what the participants do (the only part that knows settlement commands) ----


class Scenario:
    """Reference data, the funding commands, and each participant's seeded behaviour: three
    series of the standard workload and a standardized contract over their Verra credits
    that requires the CCP label, every participant funded with cash and credits; the first
    participant is also the registry, now and then granting or withdrawing the label,
    suspending or reinstating a project, or versioning the contract's rule (issue 13)."""

    SERIES = 3

    def __init__(self, seed: int) -> None:
        from bench.workload import standard_series
        from engine.reference import Series

        self.seed = seed
        self.series = standard_series()[: self.SERIES]
        self.contract = Series(id="VCS-CCP", currency="USD", ref_price=450)

    def genesis(self, store: SQLiteStore) -> None:
        if not store.head().seq and not store.reference(REF_SERIES):
            save_genesis(store, series=self.series)

    def setup_commands(self) -> list[Any]:
        from bench.funding import funding_commands
        from settlement.commands import ChangeLabel, ListContract

        return [
            *funding_commands(self.series, CLIENTS, ts=0, credits=1_000_000),
            ListContract(series=self.contract, rule=CONTRACT_RULES[0]),
            ChangeLabel(project="VCS1340", label="CCP", present=True),
        ]

    def participant(self, index: int, rng: random.Random) -> Script:
        return Script(index + 1, [*self.series, self.contract], rng)


CONTRACT_RULES = ("standard = VCS and label CCP", "label CCP")


def registry_event(rng: random.Random) -> Any:
    """A seeded registry event on the scenario's projects; refusals (suspending a suspended
    project, say) are commands too, and change nothing."""
    from settlement.commands import AddRuleVersion, ChangeLabel, ReinstateProject, SuspendProject

    r = rng.random()
    project = rng.choice(("VCS1340", "VCS981"))
    if r < 0.4:
        return ChangeLabel(project=project, label="CCP", present=rng.random() < 0.6)
    if r < 0.6:
        return SuspendProject(project=project)
    if r < 0.8:
        return ReinstateProject(project=project)
    if r < 0.9:  # a reversal of one of the registry participant's own serials
        from bench.funding import SERIAL_BASE, SPAN_PER_ACCOUNT
        from settlement.commands import CancelCredits

        first = SERIAL_BASE + SPAN_PER_ACCOUNT + rng.randrange(1_000_000)
        vintage = 2020 if project == "VCS1340" else 2019
        return CancelCredits(
            account=1, project=project, vintage=vintage, start=first, end=first, quantity=1
        )
    return AddRuleVersion(series="VCS-CCP", rule=rng.choice(CONTRACT_RULES))


class Script:
    """One participant: limit orders around each series' reference price (many cross, so
    there are fills), IOC orders, cancels of its own open orders, and retirements."""

    OPEN_KEPT = 64  # own open order ids remembered as cancel targets

    def __init__(self, account: int, series: Sequence[Any], rng: random.Random) -> None:
        self.account = account
        self.series = series
        self.rng = rng
        self.coid = 0
        self.open: list[int] = []

    def next_command(self) -> Any:
        from engine.commands import Cancel, NewOrder, Side, TimeInForce
        from settlement.commands import Retire

        rng = self.rng
        r = rng.random()
        s = rng.choice(self.series)
        if self.account == 1 and r < 0.03:
            return registry_event(rng)
        if r < 0.2 and self.open:
            order_id = self.open.pop(rng.randrange(len(self.open)))
            return Cancel(account=self.account, order_id=order_id)
        if 0.27 <= r < 0.31:
            return self.basket(rng)
        if r < 0.27:
            return Retire(
                account=self.account,
                beneficiary=f"crash test beneficiary {self.account}",
                period_start="2025-01-01",
                period_end="2025-12-31",
                series=s.id,
                qty=rng.randint(1, 5),
            )
        self.coid += 1
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = rng.randint(-4, 4) * s.tick
        return NewOrder(
            account=self.account,
            client_order_id=f"c{self.account}-{self.coid}",
            series=s.id,
            side=side,
            qty=s.lot * rng.randint(1, 20),
            price=s.ref_price + offset,
            tif=TimeInForce.IOC if r > 0.9 else TimeInForce.GTC,
        )

    def basket(self, rng: random.Random) -> Any:
        """A screened basket over the Verra books (issue 14), IOC or FOK, half of them
        buy-and-retire."""
        from engine.commands import RetireFor, TimeInForce
        from settlement.commands import BasketBuy

        self.coid += 1
        retire = RetireFor(beneficiary=f"crash test basket {self.account}")
        return BasketBuy(
            account=self.account,
            client_order_id=f"c{self.account}-{self.coid}",
            screen="standard = VCS",
            qty=rng.randint(1, 30),
            price=rng.choice((330, 460, 500)),
            tif=TimeInForce.FOK if rng.random() < 0.3 else TimeInForce.IOC,
            retire=retire if rng.random() < 0.5 else None,
        )

    def answered(self, events: list[Any]) -> None:
        for event in events:
            if event and event[0] == "accepted" and event[2] == self.account:
                self.open.append(event[1])
        if len(self.open) > self.OPEN_KEPT:
            del self.open[: -self.OPEN_KEPT]


# -- one cycle ------------------------------------------------------------------------------------


class Participant:
    """A client that keeps PIPELINE requests in flight and records every acknowledgement."""

    def __init__(
        self,
        script: Any,
        acked: list[tuple[bytes, Acked]],
        codec: Any,
        progress: asyncio.Event | None = None,
    ) -> None:
        self.script = script
        self.acked = acked
        self.progress = progress or asyncio.Event()  # set at every acknowledgement
        self.codec = codec
        self.client = FeedClient()
        self.in_flight = 0
        self.sent = 0

    async def run(self, port: int, commands_max: int) -> None:
        await self.client.connect(port)
        pending: list[bytes] = []
        try:
            while self.sent < commands_max:
                while len(pending) < PIPELINE and self.sent < commands_max:
                    cmd = self.codec.encode_command(self.script.next_command())
                    self.client.send(cmd)
                    pending.append(cmd)
                    self.sent += 1
                self.in_flight = len(pending)
                assert self.client.writer is not None
                await self.client.writer.drain()
                answer = await self.client.answer()
                cmd = pending.pop(0)
                _, seq, events = answer
                assert seq > 0, f"the feed refused a command: {events}"
                self.acked.append((cmd, Acked(seq, events)))
                self.progress.set()
                self.script.answered(msgspec.msgpack.decode(events))
            self.in_flight = len(pending)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            self.in_flight = len(pending)
        finally:
            await self.client.close()


def count_events(events: list[Any], tally: Tally) -> None:
    for event in events:
        tag = event[0] if isinstance(event, list) and event else None
        if tag == "accepted":
            tally.orders += 1
        elif tag == "trade":
            tally.fills += 1
        elif tag in RETIREMENT_TAGS:
            tally.retirements += 1
        elif tag in REGISTRY_TAGS:
            tally.registry_events += 1
        elif tag == "basket_done":
            tally.baskets += 1
        elif tag == "order_certificate":
            tally.retirements += 1
        elif tag == "cancelled" and event[6] in ("ineligible", "suspended"):
            tally.venue_cancels += 1


def check_store(
    data_dir: Path, acked: list[tuple[bytes, Acked]], checked: int, tally: Tally, replay: Any
) -> Any:
    """The checks of the module docstring, with the server process dead. `replay` is the
    replay from scratch so far (None at first): it goes on from where the last check left
    it, over the commands stored since; returned for the next check and the restart.
    `acked[:checked]` were checked before."""
    started = time.perf_counter()
    codec = SettlementCodec()
    encode = msgspec.msgpack.encode
    by_seq = {a.seq: (cmd, a) for cmd, a in acked[checked:]}
    found: set[int] = set()

    def on_command(seq: int, cmd: Any, events: list[Any]) -> None:
        item = by_seq.get(seq)
        if item is None:
            return
        sent, ack = item
        unstamped = codec.encode_command(msgspec.structs.replace(cmd, ts=0))
        assert unstamped == sent, f"journal seq {seq} holds another command than was acked"
        assert encode(events) == ack.events, f"journal seq {seq} replays to other events"
        found.add(seq)

    scratch = check_recovery(data_dir, codec, replay, on_command)
    missing = sorted(set(by_seq) - found)
    assert not missing, f"acknowledged commands lost: journal seqs {missing[:10]}"
    for _, ack in acked[checked:]:
        count_events(msgspec.msgpack.decode(ack.events), tally)
    tally.journal_seq = scratch.seq
    tally.check_s += time.perf_counter() - started
    return scratch


def check_recovery(
    data_dir: Path,
    codec: Any,
    replay: Any,
    on_command: Callable[[int, Any, list[Any]], None] | None = None,
) -> Any:
    """The checks of the module docstring that need no list of acknowledgements, with the
    server process dead: the replay from scratch (going on from `replay`, the result of the
    last check, or from genesis when None) with `on_command` seeing every command replayed,
    the invariants of the rebuilt core, every fill settled exactly once, recovery from the
    newest snapshot equal to the replay, and `tonne log verify`. The replay, for the next
    check."""
    from engine.events import Trade
    from gateway.cli.logcmd import verify as log_verify

    trades: dict[int, Any] = {}  # trade id -> the engine's Trade, from the replay

    def seen(seq: int, cmd: Any, events: list[Any]) -> None:
        for event in events:
            if type(event) is Trade:
                trades[event.trade_id] = event
        if on_command is not None:
            on_command(seq, cmd, events)

    with SQLiteStore(data_dir) as store:
        scratch = recover(store, codec=codec, use_snapshots=False, on_command=seen, resume=replay)
        scratch.core.check_invariants()
        check_fills_settled(store, codec, trades, replay.log_seq if replay is not None else 0)
        fast = recover(store, codec=codec)
        assert (fast.seq, fast.state_hash) == (scratch.seq, scratch.state_hash), (
            f"snapshot recovery {fast.summary()} differs from a replay from scratch "
            f"{scratch.summary()}"
        )
        out = io.StringIO()  # settlement.log.verify over every record, and the state hash
        assert log_verify(store, out) == 0, out.getvalue()
        assert scratch.state_hash in out.getvalue()
    return scratch


def check_fills_settled(
    store: SQLiteStore, codec: Any, trades: dict[int, Any], after_log_seq: int
) -> None:
    """Both legs or neither: every fill the replay made has exactly one DvP record in the
    stored log (buyer, seller, price, quantity, and serials adding up to the quantity), and
    every DvP record belongs to a fill."""
    settled: set[int] = set()
    previous: Any = None
    for row in store.records(after_log_seq):
        record = codec.decode_record(row.record)
        last, previous = previous, record
        if record.kind == "fill_retirement":  # buy-and-retire: right after its own fill
            retired = record.movement()
            assert last is not None and last.kind in ("fill", "contract_fill"), record.seq
            assert last.movement().trade_id == retired.trade_id, f"record {record.seq}"
            continue
        if record.kind not in ("fill", "contract_fill"):
            continue
        fill = record.movement()
        trade = trades.get(fill.trade_id)
        assert trade is not None, f"log record {record.seq} settles no fill of the journal"
        assert fill.trade_id not in settled, f"fill {fill.trade_id} settled twice"
        settled.add(fill.trade_id)
        assert (fill.buyer, fill.seller, fill.price, fill.qty) == (
            trade.buyer,
            trade.seller,
            trade.price,
            trade.qty,
        ), f"log record {record.seq} differs from fill {fill.trade_id}"
        assert sum(r.qty for r in fill.ranges) == fill.qty, f"fill {fill.trade_id}: serials"
    unsettled = sorted(set(trades) - settled)
    assert not unsettled, f"fills without their DvP record: {unsettled[:10]}"


def _with_root_on_path(env: Any) -> dict[str, str]:
    """The environment, with the repository first on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path}


async def run_cycles(
    data_dir: Path,
    cycles: int,
    *,
    seed: int = DEFAULT_SEED,
    feed_args: Sequence[str] = (),
    feed_command: Sequence[str] = FEED,
    log: Any = None,
) -> Tally:
    """Kill and restart the server `cycles` times (see the module docstring)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    scenario = Scenario(seed)
    codec = SettlementCodec()
    tally = Tally()
    with SQLiteStore(data_dir) as store:
        scenario.genesis(store)
    acked: list[tuple[bytes, Acked]] = []
    checked = 0
    scripts = [scenario.participant(i, random.Random(rng.random())) for i in range(CLIENTS)]
    expected: tuple[int, str] | None = None
    replay: Any = None
    for cycle in range(cycles):
        feed = FeedProcess(data_dir, feed_args, feed_command)
        participants: list[Participant] = []
        try:
            info = await feed.start()
            if expected is not None:
                got = (info["seq"], info["state_hash"])
                assert got == expected, f"restart reported {got}, the replay gave {expected}"
            if "from snapshot" in info["recovery"]:
                tally.snapshot_recoveries += 1
            if cycle == 0:
                await send_all(info["port"], scenario.setup_commands(), acked, codec)
            progress = asyncio.Event()
            participants = [Participant(s, acked, codec, progress) for s in scripts]
            tasks = [
                asyncio.ensure_future(p.run(info["port"], COMMANDS_PER_CYCLE_MAX))
                for p in participants
            ]
            kill_at = len(acked) + rng.randint(*KILL_AFTER_ACKS)
            while len(acked) < kill_at and not all(t.done() for t in tasks):
                progress.clear()
                await asyncio.wait_for(progress.wait(), ANSWER_TIMEOUT_S)
            await feed.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), ANSWER_TIMEOUT_S)
        finally:
            await feed.kill()
        tally.in_flight_at_kill += sum(p.in_flight for p in participants)
        replay = check_store(data_dir, acked, checked, tally, replay)
        expected = (replay.seq, replay.state_hash)
        checked = len(acked)
        tally.cycles += 1
        tally.acked = len(acked)
        if log is not None:
            log(f"cycle {cycle + 1}: journal seq {expected[0]}, {len(acked)} acked, ok")
    # One more start: it must come back where the last check says, and stop cleanly.
    feed = FeedProcess(data_dir, feed_args, feed_command)
    try:
        info = await feed.start()
        assert expected is None or (info["seq"], info["state_hash"]) == expected
    finally:
        await feed.stop()
    tally.elapsed_s = time.perf_counter() - started
    return tally


async def send_all(
    port: int, commands: list[Any], acked: list[tuple[bytes, Acked]], codec: Any
) -> None:
    """Send commands one by one, each acknowledged before the next (the funding)."""
    client = FeedClient()
    await client.connect(port)
    try:
        for cmd in commands:
            body = codec.encode_command(cmd)
            client.send(body)
            _, seq, events = await client.answer()
            assert seq > 0, events
            acked.append((body, Acked(seq, events)))
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash_harness", description=__doc__)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data", help="data folder (default: a temporary one, removed after)")
    parser.add_argument("--snapshot-every", type=int, default=2_000)
    args = parser.parse_args(argv)
    feed_args = ["--snapshot-every", str(args.snapshot_every)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data) if args.data else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tally = asyncio.run(
            run_cycles(folder, args.cycles, seed=args.seed, feed_args=feed_args, log=print)
        )
    print(f"crash test passed, seed {args.seed}: {tally.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
