"""Durable throughput: group commit against a commit per command, beside the in-memory core.

All three run the same seeded standard workload (`bench.workload`) through the real core
(engine + settlement, accounts funded so that no order is refused for want of a hold), in the
same run, as `gateway.feed` would: sessions apply each read's commands to the core, append
them to the journal, and await one `flush()` before answering.

- in-memory: `NullJournal`; the yardstick.
- group commit: `Journal` on SQLite (WAL, synchronous=FULL) with the default batch limits,
  committing in a writer thread and in a writer process (what `tonne serve` runs), each.
- per command: the same store, one session, one transaction per command (`batch_max=1`).
  fsync-bound, so it runs on a prefix of the workload (`--per-command`).

It prints commands/s with the ratio to the in-memory core, the p50/p99 time from a
command's arrival (the session takes it) to the return of the flush that made it durable,
the snapshot pauses, and, with `--recovery N`, the time to recover a journal of N commands
(with snapshots) and to replay it from scratch.

    python -m bench.durable_bench [--commands 200000] [--recovery 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.workload import ACCOUNTS, DEFAULT_SEED, generate
from gateway.durability import journal as journal_mod
from gateway.durability.journal import Journal, NullJournal, SettlementCodec
from gateway.durability.recovery import recover, save_genesis
from gateway.durability.store import SQLiteStore

SESSIONS_SWEEP = "32,128,512"  # concurrent sessions feeding the core, one run each
READ_COMMANDS = 4  # commands a session applies per read before it awaits the flush
PER_COMMAND_DEFAULT = 3_000


def fund_commands(series: Sequence[Any], accounts: int, ts: int) -> list[Any]:
    """Settlement commands that give every account ample cash and credits of every series."""
    from bench.funding import funding_commands

    return list(funding_commands(series, accounts, ts))


def workload_commands(n: int, seed: int) -> Any:
    """The standard workload, market buys given the cash limit the core requires (as in
    `tonne bench`), so that the core makes the engine's fills."""
    from bench.funding import with_cash_limits

    workload = generate(n, seed)
    workload.commands = with_cash_limits(workload.commands)
    return workload


class Run:
    """One durable (or not) pass over the commands: rate and arrival-to-commit latencies."""

    def __init__(self, name: str, commands: int, seconds: float, latencies_s: list[float]):
        self.name = name
        self.commands = commands
        self.seconds = seconds
        self.latencies_s = latencies_s

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    def pct_ms(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        xs = sorted(self.latencies_s)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def drive(
    core: Any, journal: Any, commands: Sequence[Any], sessions: int, read_commands: int
) -> tuple[float, list[float]]:
    """Feed `commands` in order through `sessions` concurrent sessions; seconds, latencies."""
    it = iter(commands)
    latencies: list[float] = []
    clock = time.perf_counter
    apply = core.apply
    drain = core.drain_records
    append = journal.append

    async def session() -> None:
        while True:
            arrivals: list[float] = []
            for cmd in it:
                arrivals.append(clock())
                apply(cmd)
                append(cmd, drain())
                if len(arrivals) == read_commands:
                    break
            if not arrivals:
                return
            await journal.flush()
            done = clock()
            latencies.extend(done - a for a in arrivals)

    gc.collect()
    started = clock()
    await asyncio.gather(*(session() for _ in range(sessions)))
    return clock() - started, latencies


def make_core(series: Sequence[Any], projects: Sequence[Any]) -> Any:
    from settlement.core import Core

    return Core(series=series, projects=projects)


class Outcome:
    """A run, with what it leaves behind: the core, and the journal's statistics."""

    def __init__(self, run: Run, core: Any, journal: Journal | None) -> None:
        self.run = run
        self.core = core
        self.journal = journal


async def run_one(
    name: str,
    commands: Sequence[Any],
    setup: Sequence[Any],
    series: Sequence[Any],
    folder: Path | None,
    *,
    sessions: int,
    read_commands: int,
    journal_args: dict[str, Any],
) -> Outcome:
    core = make_core(series, ())
    store = None
    if folder is None:
        journal: Any = NullJournal()
    else:
        store = SQLiteStore(folder)
        save_genesis(store, series=series)
        journal = Journal(store, codec=SettlementCodec(), core=core, **journal_args)
        journal.start()
    for cmd in setup:
        core.apply(cmd)
        journal.append(cmd, core.drain_records())
    await journal.flush()
    try:
        seconds, latencies = await drive(core, journal, commands, sessions, read_commands)
    finally:
        await journal.close()
        if store is not None:
            store.close()
    run = Run(name, len(commands), seconds, latencies)
    return Outcome(run, core, journal if store is not None else None)


def _row(run: Run, base: Run) -> str:
    return (
        f"{run.name:30}{run.commands:>9}{run.rate:>11,.0f}{run.rate / base.rate:>8.2f}"
        f"{run.pct_ms(0.5):>9.2f}{run.pct_ms(0.99):>9.2f}"
    )


def _journal_line(j: Journal) -> str:
    sizes = list(j.batch_sizes)
    mean = statistics.fmean(sizes) if sizes else 0.0
    pauses = sorted(j.snapshot_pauses_s)
    snaps = (
        f"; {len(pauses)} snapshots, loop paused max {pauses[-1] * 1000:.1f} ms" if pauses else ""
    )
    return (
        f"    {j.commits} transactions, mean {mean:.0f} commands (max {max(sizes or [0])}){snaps}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durable_bench", description=__doc__)
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--per-command", type=int, default=PER_COMMAND_DEFAULT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--sessions", default=SESSIONS_SWEEP, help="comma-separated session counts to run"
    )
    parser.add_argument("--read", type=int, default=READ_COMMANDS)
    parser.add_argument("--batch-max", type=int, default=journal_mod.BATCH_MAX)
    parser.add_argument("--window-ms", type=float, default=journal_mod.WINDOW_S * 1000)
    parser.add_argument("--snapshot-every", type=int, default=journal_mod.SNAPSHOT_EVERY)
    parser.add_argument("--recovery", type=int, default=0, help="commands for the recovery run")
    parser.add_argument("--dir", help="where the stores go (default: a temporary folder)")
    args = parser.parse_args(argv)
    sessions = [int(x) for x in str(args.sessions).split(",") if x]

    t0 = time.perf_counter()
    workload = workload_commands(max(args.commands, args.per_command), args.seed)
    series = workload.series
    setup = fund_commands(series, ACCOUNTS, workload.commands[0].ts - 1)
    print(
        f"workload: {len(workload.commands)} commands, seed {args.seed}, generated in "
        f"{time.perf_counter() - t0:.1f} s; {args.read} commands per session read; batch "
        f"max {args.batch_max}, window {args.window_ms} ms, snapshot every "
        f"{args.snapshot_every} commands; SQLite WAL synchronous=FULL"
    )
    journal_args = {
        "batch_max": args.batch_max,
        "window_s": args.window_ms / 1000,
        "snapshot_every": args.snapshot_every,
    }
    cmds = workload.commands[: args.commands]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)

        def once(
            name: str, n: int, folder: Path | None, s: int, read: int, **extra: Any
        ) -> Outcome:
            return uvloop.run(
                run_one(
                    name,
                    workload.commands[:n],
                    setup,
                    series,
                    folder,
                    sessions=s,
                    read_commands=read,
                    journal_args={**journal_args, **extra},
                )
            )

        mem = once("in-memory core (NullJournal)", len(cmds), None, sessions[0], args.read)
        print(f"{'':30}{'commands':>9}{'cmd/s':>11}{'x mem':>8}{'p50 ms':>9}{'p99 ms':>9}")
        print(_row(mem.run, mem.run))
        groups = []
        for n in sessions:
            for writer in ("thread", "process"):
                g = once(
                    f"group commit, {n} sessions, writer {writer}",
                    len(cmds),
                    root / f"g{n}{writer}",
                    n,
                    args.read,
                    writer_process=writer == "process",
                )
                groups.append(g)
                print(_row(g.run, mem.run))
                assert g.journal is not None
                print(_journal_line(g.journal))
        single = once("commit per command", args.per_command, root / "single", 1, 1, batch_max=1)
        print(_row(single.run, mem.run))
        best = max(groups, key=lambda g: g.run.rate)
        print(
            f"group commit ({best.run.name.split(', ', 1)[1]}) / commit per command: "
            f"{best.run.rate / single.run.rate:.1f}x"
        )
        core = groups[-1].core
        t = time.perf_counter()
        data = core.snapshot()
        core.state_hash()
        inline_ms = (time.perf_counter() - t) * 1000
        print(
            f"snapshot of the final state ({len(data):,} bytes): inline core.snapshot() + "
            f"state_hash() would pause the loop {inline_ms:.0f} ms; the forked child pauses "
            f"it for the fork only (above)"
        )
        if args.recovery:
            recovery_run(args, root / "recovery", journal_args, sessions[-1])
    return 0


def recovery_run(
    args: argparse.Namespace, folder: Path, journal_args: dict[str, Any], sessions: int
) -> None:
    """Journal `args.recovery` commands durably (with snapshots), then time the recovery."""
    t0 = time.perf_counter()
    workload = workload_commands(args.recovery, args.seed + 1)
    setup = fund_commands(workload.series, ACCOUNTS, workload.commands[0].ts - 1)
    gen_s = time.perf_counter() - t0
    out = uvloop.run(
        run_one(
            "recovery journal",
            workload.commands,
            setup,
            workload.series,
            folder,
            sessions=sessions,
            read_commands=args.read,
            journal_args=journal_args,
        )
    )
    run = out.run
    del workload, out
    gc.collect()
    print(
        f"recovery: journaled {run.commands:,} commands in {run.seconds:.1f} s "
        f"({run.rate:,.0f} cmd/s; workload generated in {gen_s:.1f} s)"
    )
    with SQLiteStore(folder, readonly=True) as store:
        size_mb = store.path.stat().st_size / 1e6
        fast = _timed(lambda: recover(store))
        print(f"  with snapshots: {fast.summary()} (store {size_mb:.0f} MB)")
        worst = _timed(lambda: recover(_OlderSnapshots(store)))  # about a full interval back
        print(f"  from the snapshot before it (the worst case of one interval): {worst.summary()}")
        full = _timed(lambda: recover(store, use_snapshots=False))
        print(f"  replay from scratch: {full.replayed:,} commands in {full.elapsed_s:.1f} s")
        assert fast.state_hash == full.state_hash, "snapshot recovery must equal a full replay"


class _OlderSnapshots:
    """A store that does not show its newest snapshot (to time the longest replay)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def snapshots(self) -> list[Any]:
        return self._store.snapshots()[1:]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _timed(fn: Callable[[], Any]) -> Any:
    gc.collect()
    return fn()


if __name__ == "__main__":
    sys.exit(main())
