"""`tonne load`'s live progress line and its report (text for people, a dict for `--json`).

The fields of the report are documented in gateway/cli/load.py's docstring.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from typing import Any, TextIO

from gateway.cli.load_participants import Participant, Recorder

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def latency(rec: Recorder) -> dict[str, int]:
    h = rec.hist
    out = {name: int(h.get_value_at_percentile(q)) for name, q in PERCENTILES}
    out["max"] = int(h.get_max_value())
    out["count"] = int(h.get_total_count())
    return out


def fills_of(parts: list[Participant]) -> tuple[int, int]:
    """(fill reports, tonnes) the participants' books hold; each trade counts once a side."""
    books = [b for x in parts for b in x.all_books()]
    return sum(b.fills for b in books), sum(b.filled_t for b in books)


def retired_of(parts: list[Participant]) -> int:
    """Tonnes the participants' certificates retired so far."""
    return sum(b.retired_t for x in parts for b in x.all_books())


async def progress(
    parts: list[Participant], started_ns: int, out: TextIO = sys.stderr, every_s: float = 1.0
) -> None:
    """One line a second until cancelled: rewritten in place on a terminal, else appended."""
    tty = out.isatty()
    rec = parts[0].rec
    last_orders, last_fills, last_ns = 0, 0, started_ns
    while True:
        await asyncio.sleep(every_s)
        for x in parts:
            x.drain()
        now = time.perf_counter_ns()
        fills, _ = fills_of(parts)
        dt = max(now - last_ns, 1) / 1e9
        h = rec.hist
        line = (
            f"{(now - started_ns) / 1e9:5.0f} s  {(rec.orders - last_orders) / dt:8,.0f} orders/s "
            f"{(fills - last_fills) / dt:8,.0f} fills/s  p50 {h.get_value_at_percentile(50):,} "
            f"p99 {h.get_value_at_percentile(99):,} us  rejects {sum(rec.rejects.values())} "
            f"errors {rec.errors} disconnects {rec.disconnects} reconnects {rec.reconnects}"
        )
        last_orders, last_fills, last_ns = rec.orders, fills, now
        if tty:  # in place: cut to the terminal's width, the rest of the line cleared
            width = shutil.get_terminal_size((100, 24)).columns - 1
            out.write("\r" + line[: max(width, 20)] + "\x1b[K")
        else:
            out.write(line + "\n")
        out.flush()


def report(
    parts: list[Participant],
    elapsed_s: float,
    settings: dict[str, Any],
    rate_asked: float | None,
    sent: int,
    fills_before: tuple[int, int] = (0, 0),
    retired_before: int = 0,
) -> dict[str, Any]:
    """The run's figures (the end check is added by the caller); `fills_before`: the books'
    (fills, tonnes) when this run (a find-max step) began."""
    rec = parts[0].rec
    fills, filled_t = fills_of(parts)
    fills, filled_t = fills - fills_before[0], filled_t - fills_before[1]
    elapsed_s = max(elapsed_s, 1e-9)
    out: dict[str, Any] = {
        **settings,
        "seconds": round(elapsed_s, 3),
        "requests": rec.requests,
        "orders": rec.orders,
        "ordered_t": rec.ordered_t,
        "fills": fills,
        "filled_t": filled_t,
        "requests_per_s": round(rec.requests / elapsed_s, 1),
        "orders_per_s": round(rec.orders / elapsed_s, 1),
        "fills_per_s": round(fills / elapsed_s, 1),
        "latency_us": latency(rec),
        "rejects": dict(sorted(rec.rejects.items())),
        "noisy": {"sent": rec.noisy_sent, "as_documented": rec.noisy_as_documented},
        "baskets": rec.baskets,
        "retired_t": retired_of(parts) - retired_before,
        "errors": rec.errors,
        "error_samples": list(rec.error_samples),
        "disconnects": rec.disconnects,
        "reconnects": rec.reconnects,
    }
    if rate_asked is not None:
        out["rate_asked"] = rate_asked
        out["rate_achieved"] = round(sent / elapsed_s, 1)
    return out


def text(r: dict[str, Any]) -> list[str]:
    lat = r["latency_us"]
    mix = ", ".join(f"{k} {v}" for k, v in r["mix"].items() if v)
    mode = (
        f"open loop at {r['rate_asked']:,.0f} requests/s (achieved {r['rate_achieved']:,.0f}/s)"
        if "rate_asked" in r
        else f"closed loop, {r['in_flight']} in flight per connection"
    )
    lines = [
        f"{r['transport']}, {mix}; {mode}; {r['seconds']:.2f} s",
        f"orders {r['orders']} ({r['orders_per_s']:,.0f}/s, {r['ordered_t']} t), "
        f"requests {r['requests']} ({r['requests_per_s']:,.0f}/s), fills {r['fills']} "
        f"({r['fills_per_s']:,.0f}/s, {r['filled_t']} t), baskets {r['baskets']} "
        f"({r['retired_t']} t retired)",
        "latency us: "
        + ", ".join(f"{k.replace('_', '.')} {lat[k]:,}" for k, _ in PERCENTILES)
        + f", max {lat['max']:,}",
        f"rejects {r['rejects'] or 0}; noisy {r['noisy']['as_documented']}/"
        f"{r['noisy']['sent']} as documented; errors {r['errors']}, "
        f"disconnects {r['disconnects']}, reconnects {r['reconnects']}",
    ]
    lines += [f"  error: {e}" for e in r["error_samples"]]
    return lines


__all__ = ["fills_of", "progress", "report", "text"]
