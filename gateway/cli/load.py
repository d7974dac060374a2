"""`tonne load`: simulated participants against a server; throughput, latency, end check.

    tonne load [--spawn | --connect HOST:PORT --keys FILE [--ws-port N] [--series ID]]
               [--mix makers=2,takers=4,baskets=1,noisy=1 | --participants N]
               [--transport tcp|ws] [--seed 1] [--orders 20000] [--seconds 10]
               [--in-flight K | --rate R | --find-max --p99-ms 5 [--rate R0]] [--json FILE]

Where the exchange runs. `--spawn` (the default) starts `tonne serve` as a separate process
on a fresh temporary folder (ports 0, its own process group, SIGTERM at the end),
provisions every participant a trading key and a `fund` key, and funds each through the
protocol, as `tonne custody deposit` does: 10^10 minor units of every currency traded and a
registry-style serial block of 1 000 000 t of every project series, in a real issuance batch
of its project and vintage (gateway/cli/load_spawn.py). Server and load then share the
machine's cores. `--connect HOST:PORT --keys FILE` drives a running server instead: FILE
holds JSON lines `{"account", "key_id", "secret"}` (as `tonne accounts add --json` prints)
of accounts funded beforehand; the load trades `--series`, or every listed project series
that all of them hold cash and credits of.

Who trades (gateway/cli/load_participants.py). `--mix` counts each behaviour: market makers
quoting both sides of every series around a seeded random-walk fair value and re-quoting
with amends and cancels; takers sending marketable limit, IOC and FOK orders; basket buyers
(screened baskets, to retire or not, and buy-and-retire orders); noisy clients sending
invalid orders, each of which must get its documented rejection (INVALID_PRICE,
UNKNOWN_SERIES, INVALID_QUANTITY, PRICE_OUT_OF_BAND), or it counts as an error. `--participants
N` without `--mix` is half makers, half takers. Each is one connection over `--transport`.
`--seed` seeds the fair value and every participant's choices.

How it is driven. Closed loop (the default): each connection keeps `--in-flight` requests
outstanding. Open loop, `--rate R`: R requests per second in total (new orders, amends,
cancels, baskets) on a fixed schedule, each timed from when the schedule meant to send it,
so queueing in the server shows as latency instead of slowing the load (coordinated
omission). A run stops after `--orders` orders (new orders and baskets, the noisy ones
included) or `--seconds`, whichever comes first. `--find-max --p99-ms B` runs open-loop
steps of `--seconds` each from `--rate` (default 500) up by `--step` (x1.5) until a step's
p99 passes B ms, its achieved rate falls below 90% of the asked one, or it has errors; it
reports the highest rate that held. Progress: one line a second on stderr (in place on a
terminal): orders/s, fills/s, p50/p99 so far, rejects, errors, disconnects, reconnects.

A participant whose connection is lost reconnects with its key (up to 10 times; failing that
it stops, and that is an error) and goes on; the request in flight is lost with its answer
(gateway/cli/load_participants.py). Its new connection first mass-cancels the account's
orders and takes its balances and holdings as a new baseline, so its end check covers what
it did since then, exactly. What a reconnect leaves unchecked: the reports lost with the old
connection, so across a run with reconnects the market check does not demand both sides of
every trade, nor conservation (it says so in its findings' place: `end_check.unchecked`).

The end check (gateway/cli/load_check.py). Each participant's books are kept from its own
reports: acks, fills (cash with fees, serials), cancels, amends, certificates. At the end,
before the mass cancel, its open orders on the server must be the ones its reports leave
open, with the same open quantity; after it, its balances and holdings must be the snapshot
taken before the run plus what its reports moved, serial for serial, with nothing held.
Across participants each trade's two reports must agree, and with `--spawn` (where every
counterparty is a participant) every trade must have both, the cash moved must sum to minus
the fees, and the credits received plus those retired to those given. Any finding, any
error or a server that did not stop cleanly: exit status 1, and the findings printed.

`--json FILE` writes the report as one JSON object:

- `mode` (`closed`|`open`|`find_max`), `transport`, `mix` {kind: count}, `in_flight`,
  `seed`, `where` (`spawn`|`connect`), `series` [ids];
- `seconds` (the driven part), `requests`, `orders`, `ordered_t` (tonnes asked by the
  orders), `fills` (fill reports, one per side of a trade), `filled_t` (their tonnes), and
  `requests_per_s`, `orders_per_s`, `fills_per_s`; filled_t <= 2 x ordered_t always holds;
- `latency_us` {`p50`, `p90`, `p99`, `p99_9`, `max`, `count`}: send (or, open loop,
  intended send) to the answer, microseconds, HDR histogram with 3 significant digits;
- `rejects` {reason code: count}, `noisy` {`sent`, `as_documented`}, `baskets`,
  `retired_t`, `errors`, `error_samples` [text], `disconnects`, `reconnects`;
- open loop: `rate_asked`, `rate_achieved` (requests sent per second);
- `find_max`: {`p99_ms`, `steps` [{`rate_asked`, `rate_achieved`, `latency_us`, `errors`,
  `held`}], `max_rate` (0: no step held)};
- `end_check` {`ok`, `problems` [text], `trades`, `open_orders_checked`, `unchecked`
  [text: what reconnects left unchecked]}, and with
  `--spawn` `server_exit`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from gateway.cli.load_check import check_market, check_participant
from gateway.cli.load_participants import (
    KINDS,
    FairValue,
    Participant,
    Recorder,
    closed_loop,
    make_participant,
    open_loop,
    start_price,
)
from gateway.cli.load_report import fills_of, progress, report, retired_of, text
from gateway.cli.load_spawn import SERVE, Key, Spawned, fund, provision
from gateway.client.client import Client, ClientError
from gateway.server.gcpolicy import serving
from gateway.wire import protocol as p

DEFAULT_MIX = {"makers": 2, "takers": 4, "baskets": 1, "noisy": 1}
FIND_MAX_STEPS_MAX = 20
FIND_MAX_START_RATE = 500.0
HELD_SHARE = 0.9  # a find-max step holds only if it achieved this share of the asked rate
TIMEOUT_S = 30.0  # connecting, logging on, each end-check query


def parse_mix(text: str) -> dict[str, int]:
    """`makers=2,takers=4` as counts of every kind; ValueError if it is not one."""
    mix = dict.fromkeys(KINDS, 0)
    for part in filter(None, (x.strip() for x in text.split(","))):
        name, sep, count = part.partition("=")
        if not sep or name not in mix or not count.isdigit():
            raise ValueError(f"--mix {text!r}: want KIND=N,... with KIND in {', '.join(KINDS)}")
        mix[name] = int(count)
    if not sum(mix.values()):
        raise ValueError("--mix has no participant")
    return mix


def _funded(series: p.SeriesInfo, holdings: p.Holdings, balances: p.Balances) -> bool:
    credits = sum(
        h.available
        for h in holdings.holdings
        if (h.project, h.vintage) == (series.project, series.vintage)
    )
    cash = sum(c.total - c.held for c in balances.cash if c.currency == series.currency)
    return credits > 0 and cash > 0


def choose_series(
    listed: list[p.SeriesInfo],
    wanted: str,
    holdings: list[p.Holdings],
    balances: list[p.Balances],
) -> p.SeriesInfo | str:
    """The series a remote load trades: `wanted`, or else the first listed one that every
    participant holds available cash and credits of (accounts funded by hand, with `tonne
    custody`, hold what they were given, which need not be the first series); or why none."""
    if wanted:
        found = [s for s in listed if s.id == wanted]
        if found:
            return found[0]
        return f"no series {wanted!r} on the server (listed: {', '.join(s.id for s in listed)})"
    for s in listed:
        tradable = s.project is not None and not s.halted
        if tradable and all(_funded(s, h, b) for h, b in zip(holdings, balances, strict=True)):
            return s
    return (
        "no listed series whose cash and credits every participant holds: fund them "
        "(`tonne custody deposit`) or name one with --series"
    )


def tradable(listed: list[p.SeriesInfo]) -> list[p.SeriesInfo]:
    return [s for s in listed if s.project is not None and not s.halted]


async def connect(transport: str, host: str, tcp_port: int, ws_port: int | None) -> Client:
    async with asyncio.timeout(TIMEOUT_S):
        if transport == "ws":
            return await Client.connect_ws(f"ws://{host}:{ws_port}")
        return await Client.connect_tcp(host, tcp_port)


def reopener(k: Key, opener: Any) -> Callable[[], Awaitable[Client]]:
    """A new connection logged on with `k` (what a participant reconnects with)."""

    async def one() -> Client:
        c: Client = await opener()
        try:
            await c.logon(k.key_id, k.secret, timeout_s=TIMEOUT_S)
        except BaseException:
            await c.close()
            raise
        return c

    return one


async def logged_on(keys: Sequence[Key], opener: Any) -> list[Client]:
    return list(await asyncio.gather(*[reopener(k, opener)() for k in keys]))


async def positions(clients: list[Client]) -> list[tuple[p.Balances, p.Holdings]]:
    async def one(c: Client) -> tuple[p.Balances, p.Holdings]:
        return await c.balances(), await c.holdings()

    return list(await asyncio.gather(*[one(c) for c in clients]))


def kinds_of(mix: dict[str, int]) -> list[str]:
    return [kind for kind in KINDS for _ in range(mix[kind])]


async def run_steps(
    args: argparse.Namespace, parts: list[Participant], seconds: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Drive the participants as the options say: (the report of the run, or of the last
    find-max step, and the find-max summary or None)."""
    settings = {"in_flight": args.in_flight, "seed": args.seed}

    def fresh() -> Recorder:
        rec = Recorder(args.orders, time.monotonic_ns() + int(seconds * 1e9))
        for x in parts:
            x.rec = rec
        return rec

    async def one(rate: float | None) -> dict[str, Any]:
        fresh()
        for x in parts:
            x.drain()
        fills_before = fills_of(parts)
        retired_before = retired_of(parts)
        started = time.perf_counter_ns()
        ticker = asyncio.ensure_future(progress(parts, started, sys.stderr))
        try:
            if rate is None:
                await closed_loop(parts, args.in_flight)
                sent = 0
            else:
                sent = await open_loop(parts, rate)
        finally:
            ticker.cancel()
            if sys.stderr.isatty():
                sys.stderr.write("\n")
        elapsed_s = (time.perf_counter_ns() - started) / 1e9
        # the server answers a heartbeat after every report it sent before it: the last
        # trades' reports to the other side (on another connection) are in by then
        await asyncio.gather(*[x.client.heartbeat() for x in parts], return_exceptions=True)
        for x in parts:
            x.drain()
        return report(parts, elapsed_s, settings, rate, sent, fills_before, retired_before)

    if not args.find_max:
        return await one(args.rate), None
    steps: list[dict[str, Any]] = []
    rate, best, last = args.rate or FIND_MAX_START_RATE, 0.0, {}
    for _ in range(FIND_MAX_STEPS_MAX):
        last = await one(rate)
        held = (
            last["latency_us"]["p99"] <= args.p99_ms * 1000
            and last["rate_achieved"] >= HELD_SHARE * rate
            and not last["errors"]
        )
        steps.append({k: last[k] for k in ("rate_asked", "rate_achieved", "latency_us", "errors")})
        steps[-1]["held"] = held
        print(
            f"step {rate:,.0f} requests/s: achieved {last['rate_achieved']:,.0f}/s, "
            f"p99 {last['latency_us']['p99']:,} us: {'held' if held else 'did not hold'}",
            flush=True,
        )
        if not held:
            break
        best = rate
        rate = round(rate * args.step)
    return last, {"p99_ms": args.p99_ms, "steps": steps, "max_rate": best}


async def end_check(parts: list[Participant], closed: bool) -> dict[str, Any]:
    """Open orders, then mass cancel, balances and holdings: compared with the books. A
    participant whose connection was lost for good cannot be asked: it is a finding."""
    problems: list[str] = []
    for x in parts:
        if x.lost:
            problems.append(
                f"account {x.client.account} ({x.kind}): its connection was lost for good; "
                "its books could not be checked"
            )
    all_parts, parts = parts, [x for x in parts if not x.lost]
    clients = [x.client for x in parts]
    opened = await asyncio.gather(*[c.open_orders() for c in clients])
    for x in parts:
        x.drain()
    open_then = [dict(x.books.open) for x in parts]
    await asyncio.gather(*[c.mass_cancel() for c in clients])
    after = await positions(clients)
    for x in parts:
        x.drain()
    for x, then, oo, a in zip(parts, open_then, opened, after, strict=True):
        assert x.before is not None  # drive() set every baseline
        problems += check_participant(x.books, then, oo, x.before, a)
    books = [b for x in all_parts for b in x.all_books()]
    rejoined = sum(len(x.segments) for x in all_parts) + sum(x.lost for x in all_parts)
    unchecked = []
    if closed and rejoined:
        unchecked.append(
            f"{rejoined} reconnects (or lost connections) lost the reports in flight: neither "
            "both sides of every "
            "trade nor conservation of cash and credits could be checked"
        )
    problems += check_market(books, closed and not rejoined)
    return {
        "ok": not problems,
        "problems": problems,
        "trades": len({t for b in books for t in b.trades}),
        "open_orders_checked": sum(len(o.orders) for o in opened),
        "unchecked": unchecked,
    }


async def drive(
    args: argparse.Namespace,
    clients: list[Client],
    traded: list[p.SeriesInfo],
    closed: bool,
    reopen: Sequence[Callable[[], Awaitable[Client]]],
) -> dict[str, Any]:
    """The participants on `clients` (`reopen[i]` reconnects the i-th), the run, the end
    check: the whole report."""
    mix_kinds = kinds_of(args.mix)
    fair = FairValue(traded, {s.id: start_price(s) for s in traded}, args.seed)
    rec = Recorder(args.orders, 0)
    before = await positions(clients)
    parts = [
        make_participant(kind, c, traded, fair, args.seed, i, rec, again)
        for i, (kind, c, again) in enumerate(zip(mix_kinds, clients, reopen, strict=True))
    ]
    for x, b in zip(parts, before, strict=True):
        x.before = b
    result, found = await run_steps(args, parts, args.seconds)
    result.update(
        mode="find_max" if args.find_max else "open" if args.rate else "closed",
        transport=args.transport,
        mix=args.mix,
        series=[s.id for s in traded],
    )
    if found is not None:
        result["find_max"] = found
    result["end_check"] = await end_check(parts, closed)
    clients[:] = [x.client for x in parts]  # the caller closes what is open now
    return result


def finish(args: argparse.Namespace, result: dict[str, Any]) -> int:
    for line in text(result):
        print(line)
    if "find_max" in result:
        print(
            f"highest rate with p99 <= {args.p99_ms} ms: "
            f"{result['find_max']['max_rate']:,.0f} requests/s"
        )
    check = result["end_check"]
    server = result.get("server_exit")
    if server not in (None, 0):
        check["ok"] = False
        check["problems"].append(f"the server exited {server}")
    if check["ok"]:
        print(
            f"end check: OK ({check['trades']} trades, {check['open_orders_checked']} open "
            "orders, every participant's balances and holdings as its reports say"
            + (
                ", cash and credits conserved)"
                if result["where"] == "spawn" and not check["unchecked"]
                else ")"
            )
        )
        for gap in check["unchecked"]:
            print(f"  not checked: {gap}")
    else:
        print(f"end check: FAILED, {len(check['problems'])} findings:")
        for problem in check["problems"]:
            print(f"  {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if check["ok"] and not result["errors"] else 1


async def spawned(args: argparse.Namespace, serve_command: Sequence[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="tonne-load-") as tmp:
        data_dir = Path(tmp)
        n = sum(args.mix.values())
        keys = provision(data_dir, n)
        server = Spawned(data_dir, serve_command)
        clients: list[Client] = []
        try:
            info = await server.start()
            host, tcp, ws = "127.0.0.1", info["tcp_port"], info["ws_port"]

            def opener() -> Any:
                return connect(args.transport, host, tcp, ws)

            clients = await logged_on([k for k, _ in keys], opener)
            traded = tradable((await clients[0].series()).series)
            await fund(lambda: connect("tcp", host, tcp, ws), [f for _, f in keys], traded)
            print(f"series {', '.join(s.id for s in traded)}", flush=True)
            again = [reopener(k, opener) for k, _ in keys]
            result = await drive(args, clients, traded, closed=True, reopen=again)
        finally:
            for c in clients:
                await c.close()
            code = await server.stop()
        result["where"] = "spawn"
        result["server_exit"] = code
        if code != 0:
            print(server.stderr_tail(), file=sys.stderr)
        return finish(args, result)


async def remote(args: argparse.Namespace) -> int:
    host, _, port = args.connect.rpartition(":")
    rows = [json.loads(line) for line in Path(args.keys).read_text().splitlines() if line.strip()]
    n = sum(args.mix.values())
    if len(rows) < n:
        print(f"tonne load: the mix needs {n} keys, {args.keys} has {len(rows)}", file=sys.stderr)
        return 2
    keys = [Key(int(r.get("account", 0)), r["key_id"], r["secret"]) for r in rows[:n]]

    def opener() -> Any:
        return connect(args.transport, host, int(port), args.ws_port)

    clients = await logged_on(keys, opener)
    try:
        listed = (await clients[0].series()).series
        held = await positions(clients)
        holdings, balances = [h for _, h in held], [b for b, _ in held]
        chosen = choose_series(listed, args.series, holdings, balances)
        if isinstance(chosen, str):
            print(f"tonne load: {chosen}", file=sys.stderr)
            return 2
        traded = [chosen]
        if not args.series:
            traded = [
                s
                for s in tradable(listed)
                if all(_funded(s, h, b) for h, b in zip(holdings, balances, strict=True))
            ]
        print(f"series {', '.join(s.id for s in traded)}", flush=True)
        again = [reopener(k, opener) for k in keys]
        result = await drive(args, clients, traded, closed=False, reopen=again)
    finally:
        for c in clients:
            await c.close()
    result["where"] = "connect"
    return finish(args, result)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--spawn", action="store_true", help="start tonne serve (the default)")
    where.add_argument("--connect", metavar="HOST:PORT", help="a running server (TCP, or WS)")
    ap.add_argument("--keys", help="JSON lines of funded accounts' keys (with --connect)")
    ap.add_argument("--ws-port", type=int, help="with --connect and --transport ws")
    ap.add_argument("--series", default="", help="with --connect: the one series to trade")
    ap.add_argument("--mix", help="KIND=N,... of makers, takers, baskets, noisy")
    ap.add_argument("--participants", type=int, help="without --mix: half makers, half takers")
    ap.add_argument("--transport", choices=["tcp", "ws"], default="tcp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--orders", type=int, default=20_000, help="orders in total, at most")
    ap.add_argument("--seconds", type=float, default=10.0, help="run time (a find-max step)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--in-flight", type=int, default=1, help="closed loop: per connection")
    mode.add_argument("--rate", type=float, help="open loop: requests/s in total")
    ap.add_argument("--find-max", action="store_true", help="step --rate up until p99 fails")
    ap.add_argument("--p99-ms", type=float, default=5.0, help="with --find-max: the bound")
    ap.add_argument("--step", type=float, default=1.5, help="with --find-max: rate factor")
    ap.add_argument("--json", metavar="FILE", help="write the report as JSON")
    return ap


def options(argv: list[str]) -> argparse.Namespace:
    ap = parser()
    args = ap.parse_args(argv)
    if args.orders < 1 or args.seconds <= 0 or args.in_flight < 1:
        ap.error("--in-flight, --orders and --seconds must be positive")
    if args.rate is not None and args.rate <= 0:
        ap.error("--rate must be positive")
    if args.find_max and (args.p99_ms <= 0 or args.step <= 1):
        ap.error("--find-max needs a positive --p99-ms and a --step above 1")
    if args.mix and args.participants is not None:
        ap.error("give --mix or --participants, not both")
    try:
        if args.mix:
            args.mix = parse_mix(args.mix)
        elif args.participants is not None:
            if args.participants < 1:
                ap.error("--participants must be positive")
            half = (args.participants + 1) // 2
            args.mix = parse_mix(f"makers={half},takers={args.participants - half}")
        else:
            args.mix = dict(DEFAULT_MIX)
    except ValueError as exc:
        ap.error(str(exc))
    if args.connect:
        if not args.keys:
            ap.error("--connect needs --keys")
        if args.transport == "ws" and args.ws_port is None:
            args.ws_port = int(args.connect.rpartition(":")[2])
    elif args.keys or args.ws_port is not None or args.series:
        ap.error("--keys, --ws-port and --series go with --connect")
    return args


def main(argv: list[str], serve_command: Sequence[str] = SERVE) -> int:
    """`serve_command`: the module (and arguments) the spawned server runs: a test's altered
    server in place of `tonne serve`."""
    args = options(argv)
    with serving():  # a load client is a serving process: gateway/server/gcpolicy.py
        try:
            if args.connect:
                return uvloop.run(remote(args))
            return uvloop.run(spawned(args, serve_command))
        except (ClientError, TimeoutError, OSError, RuntimeError) as exc:
            print(f"tonne load: {exc!r}", file=sys.stderr)
            return 2


__all__ = ["choose_series", "main", "parse_mix"]
