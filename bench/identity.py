"""The digests and state hashes of one seeded workload, for comparing the two builds.

    python -m bench.identity [--commands 200000] [--write-snapshot F | --read-snapshot F]

Run by the pure-Python build and by the compiled one (README, "The compiled core"), the
output must be identical but for its first line, which says which build ran; `.ci/run`
compares them. It prints the standard workload's fill and event digests through the engine
alone (as `tonne bench` computes them), then through engine + settlement: the digest of every
event, the settlement log's head (a chain over every ledger movement), the state hash and the
SHA-256 of the snapshot, each at half the workload and at its end.

`--write-snapshot F` also writes the snapshot taken at half the workload to F;
`--read-snapshot F` restores the core from F (the other build's) at that point instead and
carries on from it, so the second half's figures also say that each build restores the
other's snapshots to the same future.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from bench.engine_bench import EventDigest, digest, funded_core
from bench.funding import with_cash_limits
from bench.workload import DEFAULT_SEED, generate
from engine import Exchange, Trade
from settlement import commands as settlement_commands
from settlement.build import compiled
from settlement.core import Core


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write-snapshot", type=Path, metavar="F")
    group.add_argument("--read-snapshot", type=Path, metavar="F")
    args = p.parse_args(argv)
    print(f"core: compiled: {str(compiled()).lower()}")
    workload = generate(args.commands, seed=args.seed)
    print(f"workload: {args.commands:,} commands, seed {args.seed}")

    ex = Exchange(workload.series)
    fills, events = [], EventDigest()
    for cmd in workload.commands:
        out = ex.submit(cmd)
        events.add(out)
        fills += [
            (e.maker_order_id, e.taker_order_id, e.price, e.qty) for e in out if type(e) is Trade
        ]
    print(f"engine: {len(fills):,} fills sha256 {digest(fills)}")
    print(f"engine: {events.events:,} events sha256 {events.hexdigest()}")

    cmds = with_cash_limits(workload.commands)
    half = len(cmds) // 2
    core: Core = funded_core(workload, Core, settlement_commands)
    core.drain_records()
    for part, chunk in (("half", cmds[:half]), ("end", cmds[half:])):
        if part == "end" and args.read_snapshot is not None:
            core = Core.restore(args.read_snapshot.read_bytes())
            print(f"restored {args.read_snapshot}", file=sys.stderr)  # outputs stay alike
        settled = EventDigest()
        for cmd in chunk:
            settled.add(core.apply(cmd))  # type: ignore[arg-type]
        records = core.drain_records()
        snap = core.snapshot()
        if part == "half" and args.write_snapshot is not None:
            args.write_snapshot.write_bytes(snap)
        log = core.ledger.log
        print(f"core at {part}: {settled.events:,} events sha256 {settled.hexdigest()}")
        print(f"core at {part}: {len(records):,} records, log head {log.head_seq} {log.head_hash}")
        print(f"core at {part}: state hash {core.state_hash()}")
        snap_sha = hashlib.sha256(snap).hexdigest()
        print(f"core at {part}: snapshot {len(snap):,} bytes sha256 {snap_sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
