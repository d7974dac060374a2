"""A screened basket against the same fills sent as separate orders (issue 14).

For B books (10 and 50 by default) of one screen, each with the same resting asks (four
sellers, `--asks` orders of 10 t each, at rising prices), one basket buys everything the
books offer, and the yardstick buys the same by sending each book one IOC order for all
of it: the same fills (same makers, prices, quantities, serials), the work of the basket
being the plan and the merge across books on top. Both run on the real core (engine and
settlement, DvP and the log), restored from one snapshot before every run; only `apply`
is timed. Reported: microseconds per run, per fill, and the ratio basket / separate, which
is what a basket costs beyond its fills (this machine is shared: compare ratios).

    python -m bench.basket_bench [--books 10 50] [--asks 2] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

from engine.commands import NewOrder, Side, TimeInForce
from engine.reference import Mitigation, Project, Series
from settlement.commands import BasketBuy, Deposit, DepositCredits, OpenAccount
from settlement.core import Core
from settlement.events import Settled

SELLERS = (1, 2, 3, 4)
BUYER = 5
LOT_T = 10
SCREEN = "mitigation = removal and standard = VCS"


def market(books: int, asks: int) -> Core:
    """B Verra removal books, each with `asks` asks of every seller, the buyer funded."""
    projects = [
        Project(
            id=f"VCS9{i:03d}", registry="VERRA", name=f"bench {i}", mitigation=Mitigation.REMOVAL
        )
        for i in range(books)
    ]
    series = [
        Series(
            id=f"VCS-9{i:03d}-2024",
            standard="VCS",
            mitigation=Mitigation.REMOVAL,
            vintage=2024,
            project=p.id,
        )
        for i, p in enumerate(projects)
    ]
    core = Core(series, projects)
    ts = 0

    def apply(cmd: Any) -> None:
        nonlocal ts
        ts += 1
        fields = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        core.apply(type(cmd)(**{**fields, "ts": ts}))

    for a in (*SELLERS, BUYER):
        apply(OpenAccount(account=a))
        apply(Deposit(account=a, currency="USD", amount=10**12))
    for p, s in zip(projects, series, strict=True):
        for a in SELLERS:
            first = a * 1_000_000
            apply(
                DepositCredits(
                    account=a,
                    project=p.id,
                    vintage=2024,
                    start=first,
                    end=first + 999,
                    quantity=1000,
                )
            )
            for k in range(asks):
                apply(
                    NewOrder(
                        account=a,
                        client_order_id=f"{s.id}-{a}-{k}",
                        series=s.id,
                        side=Side.SELL,
                        qty=LOT_T,
                        price=100 + 4 * k + a,
                    )
                )
    assert len(core.exchange.open_orders) == books * len(SELLERS) * asks, "every ask rests"
    core.drain_records()
    return core


def commands(core: Core, books: int, asks: int) -> tuple[list[Any], list[Any]]:
    """(the basket, the separate orders) that buy everything the books offer."""
    per_book = len(SELLERS) * asks * LOT_T
    basket = [
        BasketBuy(
            account=BUYER,
            client_order_id="basket",
            screen=SCREEN,
            qty=books * per_book,
            price=1_000,
            ts=10**9,
        )
    ]
    separate = [
        NewOrder(
            account=BUYER,
            client_order_id=f"by-hand-{sid}",
            series=sid,
            side=Side.BUY,
            qty=per_book,
            price=1_000,
            tif=TimeInForce.IOC,
            ts=10**9,
        )
        for sid in sorted(core.exchange.books)
    ]
    return basket, separate


def run(snapshot: bytes, cmds: list[Any]) -> tuple[float, list[Any]]:
    core = Core.restore(snapshot)
    gc.collect()
    start = time.perf_counter()
    events = [e for cmd in cmds for e in core.apply(cmd)]
    elapsed = time.perf_counter() - start
    return elapsed, events


def fills(events: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (e.seller, e.series, e.price, e.qty, e.ranges) for e in events if isinstance(e, Settled)
    )


def measure(books: int, asks: int, repeat: int) -> dict[str, float]:
    core = market(books, asks)
    snapshot = core.snapshot()
    basket, separate = commands(core, books, asks)
    times: dict[str, list[float]] = {"basket": [], "separate": []}
    got: dict[str, list[Any]] = {}
    for _ in range(repeat):  # taking turns, so that drift hits both alike
        for name, cmds in (("basket", basket), ("separate", separate)):
            elapsed, events = run(snapshot, cmds)
            times[name].append(elapsed)
            got[name] = events
    assert fills(got["basket"]) == fills(got["separate"]), "the same fills, or no comparison"
    n = len(fills(got["basket"]))
    best = {name: min(ts) for name, ts in times.items()}
    return {
        "books": books,
        "fills": n,
        "basket_us": best["basket"] * 1e6,
        "separate_us": best["separate"] * 1e6,
        "ratio": best["basket"] / best["separate"],
        "ratio_median": statistics.median(
            b / s for b, s in zip(times["basket"], times["separate"], strict=True)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.basket_bench", description=__doc__)
    ap.add_argument("--books", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--asks", type=int, default=2, help="asks per seller per book")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    print(
        f"{'books':>5} {'fills':>6} {'basket us':>10} {'separate us':>12} "
        f"{'us/fill b':>10} {'us/fill s':>10} {'ratio':>6} {'median':>7}"
    )
    for b in args.books:
        r = measure(b, args.asks, args.repeat)
        print(
            f"{r['books']:>5} {r['fills']:>6} {r['basket_us']:>10.0f} {r['separate_us']:>12.0f} "
            f"{r['basket_us'] / r['fills']:>10.2f} {r['separate_us'] / r['fills']:>10.2f} "
            f"{r['ratio']:>6.2f} {r['ratio_median']:>7.2f}"
        )
    print(
        "measured: time.perf_counter around Core.apply, best of the repeats, each run on a "
        "core restored from one snapshot, the two taking turns; ratio = basket / separate"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
