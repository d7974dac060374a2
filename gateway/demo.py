"""`tonne demo`: a seeded demo market on real projects, with simulated participants.

Series are listed for real projects from data/ (Verra REDD+ in Ethiopia, Gold Standard wind in
Chile, a CAR removal project in Mexico, a Verra cookstove programme in Cambodia traded in HKD).
Simulated participants quote and trade around a drifting mid; every trade is printed as it
happens, then the final books. The same seed always prints the same market.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass

from engine import Exchange, NewOrder, OrderType, Series, Side, TimeInForce, Trade
from engine.commands import Cancel, Command
from engine.events import Event
from engine.reference import Project, series_id
from gateway.refdata import load_projects

DEMO_SECOND_NS = 1_000_000_000
MARKET_OPEN_NS = 9 * 3600 * DEMO_SECOND_NS + 30 * 60 * DEMO_SECOND_NS  # 09:30 on the demo day


@dataclass(frozen=True)
class Listing:
    """A project-vintage listed as a series, with the demo's starting mid price."""

    project_id: str
    vintage: int
    currency: str
    mid: int  # minor units per tonne


LISTINGS = (
    Listing("VCS1340", 2020, "USD", 525),  # Bale Mountains REDD+, Ethiopia
    Listing("GS12065", 2024, "USD", 210),  # Cabo Leones wind farm, Chile
    Listing("CAR1568", 2025, "USD", 1850),  # Laguna Om removal, Mexico
    Listing("VCS2925", 2024, "HKD", 6400),  # cookstoves, Cambodia (CORSIA, Article 6)
)

PARTICIPANTS = {
    1: "Bale Forest Fund",
    2: "Harbour Airlines",
    3: "Kowloon Steel",
    4: "Andes Market Maker",
    5: "Nordic Climate Desk",
}


def list_series(projects: dict[str, Project]) -> list[tuple[Series, Project, int]]:
    """The demo's series with their project and starting mid."""
    out = []
    for listing in LISTINGS:
        project = projects[listing.project_id]
        assert project.mitigation is not None
        series = Series(
            id=series_id(project.standard, listing.vintage, project=project.id),
            standard=project.standard,
            mitigation=project.mitigation,
            vintage=listing.vintage,
            project=project.id,
            currency=listing.currency,
            tick=5,
            lot=1,
            ref_price=listing.mid,
            band_bps=2_000,
            max_order_qty=5_000,
        )
        out.append((series, project, listing.mid))
    return out


class Simulation:
    """Seeded participants around a drifting mid; yields valid commands."""

    def __init__(self, series: list[tuple[Series, Project, int]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.series = [s for s, _, _ in series]
        self.mid = {s.id: mid for s, _, mid in series}
        self.ts = MARKET_OPEN_NS
        self.next_coid = 1
        self.live: list[tuple[int, str]] = []  # (account, client order id) it may cancel

    def next_command(self) -> Command:
        rng = self.rng
        self.ts += rng.randrange(50_000_000, 900_000_000)
        if self.live and rng.random() < 0.2:
            account, coid = self.live.pop(rng.randrange(len(self.live)))
            return Cancel(account=account, client_order_id=coid, ts=self.ts)
        series = rng.choice(self.series)
        tick = series.tick
        mid = self.mid[series.id] = max(
            10 * tick, self.mid[series.id] + tick * rng.choice((-1, 0, 0, 1))
        )
        account = rng.choice(list(PARTICIPANTS))
        side = rng.choice((Side.BUY, Side.SELL))
        qty = rng.choice((10, 25, 50, 100, 250))
        coid = f"demo-{self.next_coid}"
        self.next_coid += 1
        if rng.random() < 0.25:  # takes liquidity: a limit through the mid, IOC
            offset = tick * rng.randrange(1, 4)
            price = mid + offset if side is Side.BUY else mid - offset
            return NewOrder(
                account=account,
                client_order_id=coid,
                series=series.id,
                side=side,
                qty=qty,
                price=price,
                tif=TimeInForce.IOC,
                ts=self.ts,
            )
        offset = tick * rng.randrange(1, 6)
        price = mid - offset if side is Side.BUY else mid + offset
        self.live.append((account, coid))
        return NewOrder(
            account=account,
            client_order_id=coid,
            series=series.id,
            side=side,
            qty=qty,
            price=price,
            type=OrderType.LIMIT,
            ts=self.ts,
        )


def clock(ts: int) -> str:
    seconds, ns = divmod(ts, DEMO_SECOND_NS)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{ns // 1_000_000:03d}"


def money(minor: int, currency: str) -> str:
    return f"{currency} {minor // 100}.{minor % 100:02d}"


def levels_text(levels: list[tuple[int, int]], currency: str) -> str:
    return "  ".join(f"{qty}@{money(price, currency)}" for price, qty in levels) or "-"


def describe_trade(trade: Trade, currency: str) -> str:
    buyer, seller = PARTICIPANTS[trade.buyer], PARTICIPANTS[trade.seller]
    return (
        f"{clock(trade.ts)}  trade #{trade.trade_id:<4} {trade.series:<15} {trade.qty:>4} t "
        f"@ {money(trade.price, currency):>11}/t  {buyer} buys from {seller}"
    )


def run(
    apply: Callable[[Command], list[Event]],
    sim: Simulation,
    steps: int,
    out: Callable[[str], None],
    currency_of: dict[str, str],
) -> int:
    """Feed `steps` commands through `apply`; print each trade; return the trade count."""
    trades = 0
    for _ in range(steps):
        for event in apply(sim.next_command()):
            if isinstance(event, Trade):
                trades += 1
                out(describe_trade(event, currency_of[event.series]))
    return trades


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tonne demo", description=__doc__)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--steps", type=int, default=400, help="commands to simulate")
    args = parser.parse_args(argv)

    projects = load_projects()
    listed = list_series(projects)
    exchange = Exchange(s for s, _, _ in listed)
    print("tonne demo market (in-process engine)\n")
    for series, project, mid in listed:
        labels = ", ".join(project.labels) or "no labels"
        print(
            f"  {series.id:<15} {project.name[:48]:<48} {project.country}  "
            f"{series.mitigation.value}/{project.basis.value if project.basis else '?'}  "
            f"{labels}; starts near {money(mid, series.currency)}"
        )
    print()
    currency_of = {s.id: s.currency for s, _, _ in listed}
    trades = run(exchange.submit, Simulation(listed, args.seed), args.steps, print, currency_of)
    exchange.check_invariants()
    print(f"\n{args.steps} commands, {trades} trades. Closing books (best 3 levels):")
    for series, _, _ in listed:
        bids, asks = exchange.books[series.id].depth(3)
        print(f"  {series.id:<15} bids {levels_text(bids, series.currency)}")
        print(f"  {'':<15} asks {levels_text(asks, series.currency)}")
    return 0
