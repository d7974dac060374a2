"""Snapshot and restore of a large state: the layout-independent format
(settlement/snapshot.py) against the pickle snapshots were before it, same core, same run.

    python -m bench.snapshot_bench [--commands 1000000] [--repeat 3]

The state is the standard workload's (bench/workload.py) through the real core, with 50
funded accounts, as `tonne serve` would hold it after that many commands (the client order id
windows fill up with them). Best of `--repeat`, by `time.perf_counter`, `gc` as the journal
leaves it. The pickle figures are measured only where the build can pickle a core (the pure
build; the compiled one cannot, which is why the format exists).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import time
from collections.abc import Callable
from typing import Any

from bench.funding import funding_commands, with_cash_limits
from bench.workload import generate, standard_series
from settlement import snapshot
from settlement.build import compiled
from settlement.core import Core

ACCOUNTS = 50


def build_core(commands: int, seed: int) -> Core:
    """The standard workload's state after `commands` commands."""
    w = generate(commands, seed=seed, accounts=ACCOUNTS)
    cmds = with_cash_limits(w.commands)
    core = Core(series=standard_series())
    for c in funding_commands(standard_series(), ACCOUNTS, cmds[0].ts - 1):
        core.apply(c)
    for c in cmds:
        core.apply(c)
    core.drain_records()
    return core


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    started = time.perf_counter()
    core = build_core(args.commands, args.seed)
    ex = core.exchange
    print(
        f"snapshot bench: {args.commands:,} commands, {ACCOUNTS} accounts, compiled: "
        f"{str(compiled()).lower()}; state built in {time.perf_counter() - started:.1f} s: "
        f"{len(ex.open_orders):,} open orders, "
        f"{sum(len(r) for r in ex.coids_recent.values()):,} client order ids remembered, "
        f"state hash {core.state_hash()[:16]}",
        flush=True,
    )
    rows = []
    dump_s, data = best(lambda: snapshot.dump(core), args.repeat)
    load_s, restored = best(lambda: snapshot.load(data), args.repeat)
    assert restored.state_hash() == core.state_hash(), "the snapshot restores the same state"
    rows.append((snapshot.FORMAT, dump_s, load_s, len(data)))
    if not compiled():
        pdump_s, pdata = best(lambda: pickle.dumps(core, protocol=pickle.HIGHEST_PROTOCOL), 3)
        pload_s, unpickled = best(lambda: Core.restore(pdata), args.repeat)
        assert unpickled.state_hash() == core.state_hash()
        rows.append(("pickle (before)", pdump_s, pload_s, len(pdata)))
    print(f"{'format':<20} {'snapshot s':>10} {'restore s':>10} {'MB':>8}")
    for name, d, r, size in rows:
        print(f"{name:<20} {d:>10.3f} {r:>10.3f} {size / 1e6:>8.1f}")
    if len(rows) == 2:
        (_, d1, r1, s1), (_, d0, r0, s0) = rows
        print(
            f"layout-independent / pickle: snapshot {d1 / d0:.2f}x the time, restore "
            f"{r1 / r0:.2f}x, size {s1 / s0:.2f}x"
        )


if __name__ == "__main__":
    main()
