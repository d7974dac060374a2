"""Soak: N commands through the core and the durable journal, memory and disk every 10^6.

    python -m bench.soak_bench [--commands 10000000] [--report-every 1000000] [--dir DIR]
                               [--no-archive] [--snapshot-every 100000] [--seed N]

What `tonne serve` does with every command, without the network: the standard workload
(bench/workload.py, generated chunk by chunk so the bench holds only one chunk), applied to
the real core, appended to the real journal (SQLite store, group commit in a writer process,
forked snapshots every `--snapshot-every` commands, three kept, and with archiving on, as
`tonne serve --archive` runs it: journal rows and settlement records the oldest kept snapshot
covers move to segment files). One commit is always in flight while the next commands are
applied, as the server overlaps them.

Every `--report-every` commands it prints one line: commands, rate, resident memory (RSS) of
this process and of the writer process, where the core's memory goes (client order ids
remembered, open orders), the data folder on disk (live db + WAL, the journal's archive, the
log's archive), live journal rows, settlement records (all, and how many are live). And what
a start costs there: `tonne recover --check` run as its own process on the folder (both
chains from genesis through the archives' recorded heads + the newest snapshot + replay),
with the chain check's share. Memory and the live db must level off: the live tables keep
about three snapshot intervals once archiving runs, and the client order id window bounds
what the engine remembers; the archives grow with the commands, by design (they are the
audit trail, and a start reads only their headers).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.durable_bench import ACCOUNTS, fund_commands
from bench.workload import DEFAULT_SEED, _Generator
from gateway.durability.journal import SNAPSHOT_EVERY, Journal
from gateway.durability.recovery import save_genesis
from gateway.durability.store import ARCHIVE_SEGMENT_ROWS, SQLiteStore

CHUNK_COMMANDS = 100_000  # commands generated at a time (the bench holds one chunk)
APPLY_COMMANDS = 1024  # commands applied between flushes (one commit in flight meanwhile)
REPORT_EVERY = 1_000_000
CHECK_TIMEOUT_S = 600.0  # for one `tonne recover --check` of the folder


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process, from /proc (0 where there is none)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def folder_mb(folder: Path) -> tuple[float, float, float]:
    """(live db + WAL, journal archive, log archive) in MB."""
    live = sum(p.stat().st_size for p in folder.glob("tonne.db*"))
    journal = sum(p.stat().st_size for p in (folder / "archive").glob("journal-*.seg"))
    log = sum(p.stat().st_size for p in (folder / "archive").glob("log-*.seg"))
    return live / 1e6, journal / 1e6, log / 1e6


def core_counts(core: Any) -> dict[str, int]:
    """Where the core's memory goes (names as the engine has them today; -1 if renamed)."""
    ex = getattr(core, "exchange", None)
    seen = getattr(ex, "coids_seen", None)
    opened = getattr(ex, "open_orders", None)
    return {
        "coids": sum(len(s) for s in seen.values()) if isinstance(seen, dict) else -1,
        "open": len(opened) if isinstance(opened, dict) else -1,
    }


def start_cost(folder: Path) -> tuple[float, float, str]:
    """(total s, chains s, snapshot used) of `tonne recover --check` on the folder, in its
    own process (so its memory is not this one's)."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "recover", "--check", str(folder)],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise SystemExit(f"recover --check failed:\n{done.stdout}{done.stderr}")
    total = re.search(r"^time\s+([\d.]+) s", done.stdout, re.M)
    chains = re.search(r"^chains\s+.* in ([\d.]+) s", done.stdout, re.M)
    used = re.search(r"^snapshot used\s+(.*)$", done.stdout, re.M)
    return (
        float(total.group(1)) if total else -1.0,
        float(chains.group(1)) if chains else -1.0,
        used.group(1) if used else "?",
    )


async def snapshot_stored(journal: Journal, folder: Path, timeout_s: float = 120.0) -> None:
    """Wait until the snapshot the journal last took is in the store, so that each line's
    start cost is measured on the folder as that many commands leave it (a forked snapshot
    is stored a little after it is taken; on a loaded machine, after the next report)."""
    await journal.snapshot_handed_over()
    if journal.snapshot_seq <= 0 or journal.snapshots_taken == journal.snapshot_failures:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with SQLiteStore(folder, readonly=True) as store:
            if any(s.seq >= journal.snapshot_seq for s in store.snapshots()):
                return
        await asyncio.sleep(0.01)
    raise SystemExit(f"the snapshot at seq {journal.snapshot_seq} was not stored in {timeout_s} s")


def report(n: int, elapsed: float, core: Any, journal: Journal, folder: Path) -> None:
    """One line at `n` commands, `elapsed` seconds of applying and committing them (the
    reports' own time left out)."""
    live_mb, journal_mb, log_mb = folder_mb(folder)
    with SQLiteStore(folder, readonly=True) as store:
        live_rows, live_records = store.count("journal"), store.count("log")
        records = store.head().log_seq
    total_s, chains_s, used = start_cost(folder)
    counts = core_counts(core)
    writer = journal._process.pid if journal._process is not None else None
    print(
        f"{n:>11,} cmds {elapsed:7.1f} s ({n / elapsed:6,.0f}/s) | RSS {rss_mb():6.0f} MB, "
        f"writer {rss_mb(writer) if writer else 0:4.0f} MB | coids {counts['coids']:,} "
        f"open {counts['open']:,} | disk live {live_mb:5.0f} MB, journal archive "
        f"{journal_mb:5.0f} MB, log archive {log_mb:5.0f} MB | journal rows live "
        f"{live_rows:,} | records {records:,} ({live_records:,} live) | start {total_s:.2f} s "
        f"(chains {chains_s:.2f} s, {used})",
        flush=True,
    )


async def soak(args: argparse.Namespace, folder: Path) -> None:
    from bench.funding import with_cash_limits
    from settlement.core import Core

    gen = _Generator(args.seed, ACCOUNTS)
    store = SQLiteStore(folder)
    save_genesis(store, series=gen.series)
    core = Core(series=gen.series)
    journal = Journal(
        store,
        core=core,
        snapshot_every=args.snapshot_every,
        writer_process=True,
        archive_segment_rows=0 if args.no_archive else args.archive_segment_rows,
    )
    journal.start()
    first = gen.run(1).commands  # the funding goes before the first command's time
    setup = fund_commands(gen.series, ACCOUNTS, first[0].ts - 1)
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    done, next_report = 0, args.report_every
    inflight: asyncio.Future[None] | None = None
    for cmd in setup:  # the funding: not counted among the commands
        core.apply(cmd)
        journal.append(cmd, core.drain_records())
    pending = with_cash_limits(first)
    while done < args.commands:
        if not pending:  # chunks end at the report points
            size = min(CHUNK_COMMANDS, next_report - done, args.commands - done)
            generating = time.perf_counter()
            pending = with_cash_limits(gen.run(size).commands)
            started += time.perf_counter() - generating  # the workload's making is not timed
        for i in range(0, len(pending), APPLY_COMMANDS):
            for cmd in pending[i : i + APPLY_COMMANDS]:
                core.apply(cmd)
                journal.append(cmd, core.drain_records())
            if inflight is not None:
                await inflight
            inflight = asyncio.ensure_future(journal.flush())
        done += len(pending)
        pending = []
        if done >= next_report:
            if inflight is not None:
                await inflight
                inflight = None
            paused = time.perf_counter()
            await snapshot_stored(journal, folder)
            report(done, paused - started, core, journal, folder)
            started += time.perf_counter() - paused  # the report's time is not the soak's
            next_report += args.report_every
    if inflight is not None:
        await inflight
    await journal.close()
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_bench", description=__doc__)
    parser.add_argument("--commands", type=int, default=10_000_000)
    parser.add_argument("--report-every", type=int, default=REPORT_EVERY)
    parser.add_argument("--snapshot-every", type=int, default=SNAPSHOT_EVERY)
    parser.add_argument("--archive-segment-rows", type=int, default=ARCHIVE_SEGMENT_ROWS)
    parser.add_argument("--no-archive", action="store_true", help="keep the journal whole")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--dir", help="the data folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if args.commands < 1 or args.report_every < 1 or args.archive_segment_rows < 1:
        parser.error("--commands, --report-every and --archive-segment-rows must be >= 1")
    print(
        f"soak: {args.commands:,} commands, snapshot every {args.snapshot_every:,}, "
        f"archive {'off' if args.no_archive else f'on ({args.archive_segment_rows:,} rows)'}, "
        f"pid {os.getpid()}",
        flush=True,
    )
    was_frozen = gc.get_freeze_count() > 0
    try:
        if args.dir:
            folder = Path(args.dir)
            folder.mkdir(parents=True, exist_ok=True)
            asyncio.run(soak(args, folder))
            return 0
        with tempfile.TemporaryDirectory(prefix="tonne-soak-") as tmp:
            asyncio.run(soak(args, Path(tmp)))
        return 0
    finally:  # the run froze what existed: a caller in the same process (a test) gets it back
        if not was_frozen:
            gc.unfreeze()


if __name__ == "__main__":
    sys.exit(main())
