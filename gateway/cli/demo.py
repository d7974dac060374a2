"""`tonne demo`: a seeded market on real projects, traded through the real exchange.

It starts the exchange exactly as `tonne serve` does (SQLite store, group-commit journal,
settlement core, TCP and WebSocket servers on loopback ports), provisions five participants
with API keys, funds them through the settlement log with cash and with every real registry
serial block in data/serials.csv (all 77, each under its registry's issuance batch, so blocks
of one project and vintage that share numbers are both taken; the listed project-vintages'
blocks are shared among the participants), and lets them trade through the client library
(four over TCP, one over WebSocket), printing every fill as its execution report arrives,
with the exact serials delivered as their registries write them. Then an airline retires
credits for its CORSIA claim and gets a certificate, a market-data subscriber's local L2 book
is checked against the engine's, and the settlement log is printed and verified as `tonne log
tail` / `tonne log verify` do.
The same seed always trades the same market (only the clock times differ).

That is the scripted mode, `--steps N`, in plain lines (CI and pipes). Without `--steps` the
demo is live instead (gateway/cli/demo_live.py): the market runs until Ctrl-C or
`--seconds S`, drawn in place on a terminal (plain lines in a pipe, or with `--plain`), and
ends with the same `tonne log verify`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop

from engine import NewOrder, OrderType, Rejected, Series, Side, TimeInForce
from engine.catalogue import RegistryBlock
from engine.commands import Cancel, Command
from engine.events import Reason
from engine.reference import Project, series_id
from gateway.cli.accounts import add_key
from gateway.cli.demo_catalogue import basket_retire, contract_trade, screen_walk
from gateway.cli.logcmd import tail, verify
from gateway.cli.serve import running
from gateway.client.client import Client, RequestRejected
from gateway.durability.store import SQLiteStore
from gateway.refdata import load_projects, load_serials
from gateway.wire import protocol as p
from settlement import registry
from settlement.commands import Deposit, DepositCredits

CASH_EACH = 50_000_000  # minor units of each currency per participant (500,000.00)
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

    def __init__(
        self, series: list[tuple[Series, Project, int]], seed: int, accounts: list[int]
    ) -> None:
        self.rng = random.Random(seed)
        self.accounts = accounts
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
        account = rng.choice(self.accounts)
        side = rng.choice((Side.BUY, Side.SELL))
        qty = rng.choice((5, 10, 20, 40))
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
    hours, rest = divmod(seconds % 86_400, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{ns // 1_000_000:03d}"


def money(minor: int, currency: str) -> str:
    return f"{currency} {minor // 100}.{minor % 100:02d}"


def levels_text(levels: list[tuple[int, int]], currency: str) -> str:
    return "  ".join(f"{qty}@{money(price, currency)}" for price, qty in levels) or "-"


def serials_text(ranges: list[p.SerialRange]) -> str:
    """Serial ranges as their registries write them (`project/vintage:first-last` for
    serials without a registry batch)."""
    shown = ", ".join(
        r.registry_serial or f"{r.project}/{r.vintage}:{r.first}-{r.last}" for r in ranges[:2]
    )
    return shown + (f" (+{len(ranges) - 2} more)" if len(ranges) > 2 else "")


def split_block(row: RegistryBlock, parts: int) -> list[tuple[int, int]]:
    """A registry block cut into `parts` contiguous inclusive sub-blocks (the same serials)."""
    size = row.quantity // parts
    cuts = [(row.start + i * size, row.start + (i + 1) * size - 1) for i in range(parts)]
    cuts[-1] = (cuts[-1][0], row.end)
    return cuts


def funding(
    listed: list[tuple[Series, Project, int]], serials: list[RegistryBlock], accounts: list[int]
) -> list[Deposit | DepositCredits]:
    """Operator commands that fund every participant: cash in each currency, and every real
    registry serial block of data/serials.csv, each under its registry batch."""
    cmds: list[Deposit | DepositCredits] = []
    for account in accounts:
        for currency in sorted({s.currency for s, _, _ in listed}):
            cmds.append(
                Deposit(account=account, currency=currency, amount=CASH_EACH, ref="demo funding")
            )
    listed_keys = {(s.project, s.vintage) for s, _, _ in listed}
    for i, row in enumerate(serials):
        # Every real block enters under its registry batch, so the two CAR and FCPF blocks
        # of one project and vintage that share serial numbers are both taken into custody.
        # A listed project-vintage's blocks are shared among all participants (each can
        # sell); every other block goes whole to one participant in turn.
        batch = registry.parse(row.registry, row.serial_string, row.start, row.end).batch
        if (row.project, row.vintage) in listed_keys:
            shares = list(zip(accounts, split_block(row, len(accounts)), strict=True))
        else:
            shares = [(accounts[i % len(accounts)], (row.start, row.end))]
        for account, (first, last) in shares:
            cmds.append(
                DepositCredits(
                    account=account,
                    project=row.project,
                    vintage=row.vintage,
                    start=first,
                    end=last,
                    quantity=last - first + 1,
                    ref=row.serial_string,
                    batch=batch,
                )
            )
    return cmds


class Desk:
    """One participant's session, and how far its execution reports have been printed."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.seen = 0

    def new_fills(self) -> list[p.Fill]:
        history = list(self.client.history)
        fresh = [m for m in history[self.seen :] if type(m) is p.Fill]
        self.seen = len(history)
        return fresh


class Tape:
    """Prints each trade once both sides' execution reports have arrived, in trade order."""

    def __init__(
        self, desks: dict[int, Desk], currency_of: dict[str, str], out: Callable[[str], None]
    ) -> None:
        self.desks = desks
        self.currency_of = currency_of
        self.out = out
        self.pending: dict[int, dict[Side, tuple[str, p.Fill]]] = {}
        self.printed = 0

    def collect(self) -> None:
        for desk in self.desks.values():
            for fill in desk.new_fills():
                self.pending.setdefault(fill.trade_id, {})[fill.side] = (desk.name, fill)
        for trade_id in sorted(self.pending):
            sides = self.pending[trade_id]
            if len(sides) < 2:
                break  # keep the tape in trade order
            del self.pending[trade_id]
            (buyer, bought), (seller, sold) = sides[Side.BUY], sides[Side.SELL]
            currency = self.currency_of[bought.series]
            self.printed += 1
            self.out(
                f"{clock(bought.ts)}  #{trade_id:<3} {bought.series:<14} {bought.qty:>3} t @ "
                f"{money(bought.price, currency):>10}  {seller:>19} -> {buyer:<19}  "
                f"{serials_text(bought.serials)}  fees {bought.fee}+{sold.fee}"
            )

    async def settle(self) -> None:
        """Wait until every desk has every report sent so far, then print the rest."""
        for desk in self.desks.values():
            await desk.client.heartbeat()
        self.collect()
        assert not self.pending, f"trades with one side missing: {sorted(self.pending)}"


async def trade(
    sim: Simulation, desks: dict[int, Desk], steps: int, tape: Tape, out: Callable[[str], None]
) -> int:
    """Send `steps` simulated commands through the real protocol, one at a time, printing
    trades as their execution reports arrive; the number of rejected commands."""
    rejects = 0
    for _ in range(steps):
        cmd = sim.next_command()
        assert isinstance(cmd, NewOrder | Cancel)
        desk = desks[cmd.account]
        try:
            if isinstance(cmd, NewOrder):
                await desk.client.place(
                    cmd.series,
                    cmd.side,
                    qty=cmd.qty,
                    price=cmd.price,
                    tif=cmd.tif,
                    client_order_id=cmd.client_order_id,
                )
            else:
                await desk.client.cancel(client_order_id=cmd.client_order_id)
        except RequestRejected as exc:
            rejects += 1
            if exc.reason is not Reason.UNKNOWN_ORDER:  # cancelling a filled order is normal
                out(f"{'':14}{desk.name}: rejected, {exc.reason.value} ({exc.text})")
        tape.collect()
    await tape.settle()
    return rejects


async def retire_for(
    desk: Desk, listed: list[tuple[Series, Project, int]], out: Callable[[str], None]
) -> None:
    """The airline retires part of what it holds of the CORSIA-eligible series."""
    series = next(s for s, project, _ in listed if "CORSIA" in project.labels)
    holdings = await desk.client.holdings()
    available = sum(
        h.available
        for h in holdings.holdings
        if h.project == series.project and h.vintage == series.vintage
    )
    qty = min(available, 100)
    out(f"\n{desk.name} retires {qty} t of {series.id} for its CORSIA claim:")
    answer = await desk.client.request(
        p.Retire(
            series=series.id,
            qty=qty,
            beneficiary="Harbour Airlines, international flights 2026",
            purpose="corsia",
            claim="CORSIA first-phase offsetting requirement",
            period_start="2026-01-01",
            period_end="2026-12-31",
            req_id=desk.client.next_req_id(),
        )
    )
    certificates = [m for m in desk.client.history if type(m) is p.Certificate]
    assert certificates and answer in certificates, answer
    for cert in certificates:
        out(
            f"  certificate {cert.cert_id}: {cert.qty} t of {cert.project}/{cert.vintage}, "
            f"serials {serials_text(cert.serials)}, for {cert.beneficiary!r}, "
            f"settlement-log record #{cert.record_seq} ({cert.record_hash[:16]}...)"
        )


async def run_demo(data_dir: Path, seed: int, steps: int, out: Callable[[str], None]) -> int:
    projects = load_projects()
    listed = list_series(projects)
    keys = [add_key(data_dir, permissions=frozenset({"trade", "retire"})) for _ in PARTICIPANTS]
    names = {
        account: name for (account, _, _), name in zip(keys, PARTICIPANTS.values(), strict=True)
    }
    async with running(data_dir, tcp_port=0, ws_port=0) as ex:
        server = ex.server
        out(
            f"tonne demo: exchange on 127.0.0.1, TCP port {ex.info['tcp_port']}, WebSocket port "
            f"{ex.info['ws_port']}, data in {data_dir}\n"
        )
        for series, project, mid in listed:
            labels = ", ".join(project.labels) or "no labels"
            basis = project.basis.value if project.basis else "?"
            kind = project.mitigation.value if project.mitigation else "?"
            out(
                f"  {series.id:<15} {project.name[:44]:<44} {project.country}  "
                f"{kind}/{basis:<6} {labels:<16} near "
                f"{money(mid, series.currency)}"
            )
        serials = load_serials()
        deposits = funding(listed, serials, list(names))
        for cmd in deposits:
            events = await server.operator(cmd)
            assert not any(isinstance(e, Rejected) for e in events), events
        out(
            f"\n{len(names)} participants funded through the settlement log: {len(deposits)} "
            f"deposits of cash and of all {len(serials)} real registry serial blocks in "
            f"data/serials.csv, each under its registry's issuance batch\n"
        )
        desks: dict[int, Desk] = {}
        for i, (account, key_id, secret) in enumerate(keys):
            if i == 1:
                client = await Client.connect_ws(f"ws://127.0.0.1:{ex.info['ws_port']}")
            else:
                client = await Client.connect_tcp("127.0.0.1", ex.info["tcp_port"])
            await client.logon(key_id, secret, cancel_on_disconnect=True)
            desks[account] = Desk(names[account], client)
        watcher = desks[keys[0][0]].client
        books = await watcher.subscribe(*(s.id for s, _, _ in listed))

        sim = Simulation(listed, seed, accounts=list(names))
        tape = Tape(desks, {s.id: s.currency for s, _, _ in listed}, out)
        out(
            f"{'time':<12}  {'trade':<4} {'series':<14} {'qty':>5} {'price':>12}  "
            f"{'seller':>19} -> {'buyer':<19}  serials delivered  fees (buyer+seller, minor units)"
        )
        rejects = await trade(sim, desks, steps, tape, out)
        out(f"\n{steps} commands over TCP and WebSocket: {tape.printed} trades, {rejects} rejected")
        airline = next(d for d in desks.values() if d.name == "Harbour Airlines")
        await retire_for(airline, listed, out)
        await screen_walk(watcher, out)
        named = [(d.name, d.client) for d in desks.values()]
        await contract_trade(named, out, serials_text)
        await basket_retire(named, out, serials_text)

        await watcher.heartbeat()  # answered after every update sent before it
        out("\nClosing books, from the subscriber's local L2 book (snapshot + updates):")
        for series, _, _ in listed:
            bids, asks = books[series.id].depth()
            assert (bids, asks) == server.exchange.books[series.id].depth(), "L2 out of sync"
            out(f"  {series.id:<15} bids {levels_text(bids[:3], series.currency)}")
            out(f"  {'':<15} asks {levels_text(asks[:3], series.currency)}")
        for desk in desks.values():
            await desk.client.close()
        server.core.check_invariants()

    out("\nThe settlement log, last 6 records (`tonne log tail -n 6`):")
    with SQLiteStore(data_dir, readonly=True) as store:
        text = io.StringIO()
        tail(store, text, last=6)
        for line in text.getvalue().splitlines():
            out("  " + line)
    return print_verify(data_dir, out)


def print_verify(data_dir: Path, out: Callable[[str], None]) -> int:
    """`tonne log verify` of the folder's settlement log, printed; its exit status."""
    with SQLiteStore(data_dir, readonly=True) as store:
        text = io.StringIO()
        status = verify(store, text)
    out("\n`tonne log verify`:")
    for line in text.getvalue().splitlines():
        out("  " + line)
    return status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tonne demo", description=__doc__)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="the short scripted demo of N commands, in plain lines (CI, pipes)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="live demo: stop after S seconds (Ctrl-C)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="live demo: plain lines, not a live view"
    )
    parser.add_argument(
        "--data", default="", help="keep the data folder here (default: a temporary folder)"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        metavar="N",
        help="live demo: also serve the operator console on 127.0.0.1:N (0: any free port)",
    )
    args = parser.parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        parser.error("--seconds must be positive")
    live_only = [
        name
        for name, given in (
            ("--seconds", args.seconds is not None),
            ("--plain", args.plain),
            ("--http-port", args.http_port is not None),
        )
        if given
    ]
    if args.steps is not None and live_only:
        parser.error(
            f"--steps runs the short scripted demo; {' and '.join(live_only)} "
            f"{'is' if len(live_only) == 1 else 'are'} for the live demo (without --steps)"
        )
    with contextlib.ExitStack() as stack:
        if args.data:
            data_dir = Path(args.data)
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tonne-demo-")))
        if args.steps is not None:
            return uvloop.run(run_demo(data_dir, args.seed, args.steps, print))
        from gateway.cli.demo_live import is_terminal, run_live

        plain = args.plain or not is_terminal()
        kept = bool(args.data)
        return uvloop.run(
            run_live(data_dir, args.seed, args.seconds, plain, kept, _flushed, args.http_port)
        )
    raise AssertionError("unreachable")


def _flushed(line: str) -> None:
    print(line, flush=True)  # a pipe or a test reads the lines as they come
