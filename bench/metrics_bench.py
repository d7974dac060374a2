"""What `/metrics` and the operator console cost the hot path (issue 16).

    python -m bench.metrics_bench [--orders 20000] [--clients 4] [--window 64] [--rounds 3]

The durable gateway bench's pipelined TCP measurement (bench/gateway_bench.py (b): the SQLite
journal in its writer process, clients in a separate process over loopback) run with the
server in three settings, interleaved round after round so that drift on this shared machine
falls on all three alike:

- `off`: no metrics (`tonne serve` without --http-port: the hot path skips every count);
- `metrics`: the counts `/metrics` reads (commands by kind, bytes, commit latency and size,
  rejects and fills from the released batches), nobody scraping;
- `console`: those and the operator console, whose follower reads every new record from its
  own read-only store (`tonne serve --http-port`), nobody looking.

It prints each setting's orders/s (median of the rounds) and server CPU per order, and the
ratios to `off` measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import uvloop

from bench.gateway_bench import Bench, CpuMark, measure, workload
from gateway.server.gcpolicy import serving

SETTINGS = ("off", "metrics", "console")


async def one(setting: str, per_client: list[list[object]], window: int) -> tuple[float, float]:
    """(orders/s, server CPU us per order) of one pipelined TCP run."""
    n = sum(len(x) for x in per_client)
    async with Bench("sqlite", metrics="" if setting == "off" else setting) as b:
        job = {"kind": "pipelined", "per_client": per_client, "window": window, "ws": False}
        cpu = CpuMark(b)
        elapsed, _client_cpu = await measure(b, job, False, n, cpu.mark)
        server_s, _writer_s = cpu.since()
    return n / elapsed, server_s / n * 1e6


async def run(args: argparse.Namespace) -> list[str]:
    per = max(1, args.orders // args.clients)
    per_client = [workload(per, args.seed + i, f"m{i}-") for i in range(args.clients)]
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    started = time.perf_counter()
    for r in range(args.rounds):
        order = SETTINGS if r % 2 == 0 else tuple(reversed(SETTINGS))
        for setting in order:
            results[setting].append(await one(setting, per_client, args.window))
    lines = [
        f"metrics bench: {per * args.clients} orders a run, {args.clients} clients x window "
        f"{args.window}, sqlite journal, {args.rounds} rounds interleaved "
        f"({time.perf_counter() - started:.0f} s)"
    ]
    base = statistics.median(x for x, _ in results["off"])
    base_cpu = statistics.median(c for _, c in results["off"])
    for setting in SETTINGS:
        rate = statistics.median(x for x, _ in results[setting])
        cpu = statistics.median(c for _, c in results[setting])
        runs = ", ".join(f"{x:,.0f}" for x, _ in results[setting])
        lines.append(
            f"  {setting:<8} {rate:>9,.0f} orders/s ({rate / base:.3f}x off), server CPU "
            f"{cpu:.2f} us/order ({cpu - base_cpu:+.2f} us); runs {runs}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metrics_bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with serving():
        lines = uvloop.run(run(args))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
