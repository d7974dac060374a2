"""`tonne demo` without `--steps`: a living market until Ctrl-C or `--seconds N`.

The exchange runs in this process exactly as `tonne serve` runs it (`running()`), funded as
the scripted demo is (cash and every real registry block, through the settlement log). The
participants are the load tester's behaviours (gateway/cli/load_participants.py), each one
client connection, at a calm pace (`PACE_PER_S` requests a second in all, drawn by weight):
two market makers quoting the demo's listed series and the standardized contracts around a
seeded random walk, two takers, and a noisy client whose invalid orders get their
documented rejections; now and then (`RETIRE_EVERY_S`) an airline or a steel maker buys a
screened basket of one project to retire and gets its certificate. A further account's key
is written to `client.key` in the data folder so that one's own client can trade alongside.
A market-data subscriber's local books give the top-of-book table.

On Ctrl-C (SIGINT) or SIGTERM or at the deadline the participants finish the request in
hand, the connections close, the exchange stops as `tonne serve` does (journal committed,
snapshot), and the settlement log is verified as `tonne log verify` does; the exit status
is the verdict's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from engine import Rejected
from gateway.cli.accounts import add_key
from gateway.cli.demo import PARTICIPANTS, funding, list_series, print_verify
from gateway.cli.demo_view import (
    TradeRow,
    Watch,
    counters_line,
    live_view,
    retirement_line,
    trade_line,
)
from gateway.cli.load_participants import FairValue, Participant, Recorder, make_participant
from gateway.cli.load_participants import band as price_band
from gateway.cli.serve import HttpSettings, running
from gateway.client.client import Client, ClientError, RequestRejected
from gateway.contracts import CONTRACTS
from gateway.refdata import load_projects, load_serials
from gateway.wire import protocol as p

PACE_PER_S = 4.0  # participants' requests per second, in all
RETIRE_EVERY_S = 5.0  # a basket bought to retire, about this often
REFRESH_PER_S = 4  # the terminal view
COUNTERS_EVERY_S = 5.0  # plain output: a counters line this often
STOP_TIMEOUT_S = 15.0  # participants finishing the request in hand, at most
ORDERS_MAX = 10**9  # the load's order budget, never reached at this pace
# name, behaviour, weight of its turn, over WebSocket
ROLES = (
    ("Andes Market Maker", "makers", 4.0, False),
    ("Nordic Climate Desk", "makers", 4.0, True),
    ("Bale Forest Fund", "takers", 2.0, False),
    ("Kowloon Steel", "takers", 1.5, False),
    ("Harbour Airlines", "takers", 1.0, False),
    ("Fat Finger Capital", "noisy", 0.4, False),
)
RETIRERS = {
    "Harbour Airlines": ("label CORSIA", "Harbour Airlines, international flights 2026"),
    "Kowloon Steel": ("mitigation = removal", "Kowloon Steel Ltd, FY2026 scope 1"),
}
assert {name for name, *_ in ROLES} >= set(RETIRERS) and set(PARTICIPANTS.values()) <= {
    name for name, *_ in ROLES
}


class Market:
    """The running demo: its participants, the watcher and what stops them."""

    def __init__(
        self,
        ex: Any,
        clients: dict[str, Client],
        watcher: Client,
        seed: int,
        retire_every_s: float = RETIRE_EVERY_S,
    ) -> None:
        self.ex = ex
        self.clients = clients
        self.watcher = watcher
        self.rng = random.Random(f"demo pace {seed}")
        self.stop = asyncio.Event()
        self.rec = Recorder(ORDERS_MAX, 2**62)
        self.parts: list[tuple[Participant, float]] = []
        self.series: list[p.SeriesInfo] = []
        self.fair: FairValue | None = None
        self.retire_every_s = retire_every_s

    async def setup(self, seed: int) -> None:
        listed = (await self.watcher.series()).series
        self.series = [s for s in listed if not s.halted]
        mids = reference_mids()
        start = {s.id: mids.get(s.id) or _start(s) for s in self.series}
        self.fair = FairValue(self.series, start, seed)
        for i, (name, kind, weight, _) in enumerate(ROLES):
            part = make_participant(
                kind, self.clients[name], self.series, self.fair, seed, i, self.rec
            )
            self.parts.append((part, weight))
        await self.watcher.subscribe(*(s.id for s in self.series))

    async def pace(self) -> None:
        """One participant's request at a time, `PACE_PER_S` a second, until told to stop."""
        weights = [w for _, w in self.parts]
        due = time.monotonic()
        while not self.stop.is_set():
            (part, _) = self.rng.choices(self.parts, weights)[0]
            await part.act(time.perf_counter_ns())
            due += 1 / PACE_PER_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), max(0.0, due - time.monotonic()))

    async def retire_now_and_then(self) -> None:
        """An airline or a steel maker buys a screened basket of one project to retire."""
        names = sorted(RETIRERS)
        turn = 0
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.retire_every_s)
            if self.stop.is_set():
                return
            name = names[turn % len(names)]
            turn += 1
            await self._retire(name)

    async def _retire(self, name: str) -> None:
        screen, beneficiary = RETIRERS[name]
        client = self.clients[name]
        of_project = {s.id: s for s in self.series if s.project is not None}  # not contracts
        hits = [
            h
            for h in (await client.screen(screen)).hits
            if h.best_ask is not None and h.series in of_project
        ]
        if not hits:
            return
        hit = self.rng.choice(hits)
        s = of_project[hit.series]
        if s.project is None or hit.best_ask is None:
            return
        cap = min(price_band(s)[1], hit.best_ask + 4 * s.tick)
        self.rec.take_order(0)
        with contextlib.suppress(RequestRejected, ClientError, TimeoutError):
            await client.basket_buy(
                f"project = {s.project}",
                self.rng.randint(2, 12) * s.lot,
                cap,
                currency=s.currency,
                retire_for=p.RetireFor(beneficiary=beneficiary, claim="demo offsetting claim"),
            )


def reference_mids() -> dict[str, int]:
    """Series id -> where its fair value starts: the demo's mids and the contracts' prices
    (a contract's band is open, so the middle of it is no price)."""
    mids = {s.id: mid for s, _, mid in list_series(load_projects())}
    mids.update({c.series.id: c.series.ref_price for c in CONTRACTS})
    return mids


def _start(s: p.SeriesInfo) -> int:
    low, high = price_band(s)
    mid = (low + high) // 2
    return mid - mid % s.tick


def provision(data_dir: Path) -> tuple[dict[str, tuple[int, str, str]], tuple[int, str, str]]:
    """A trading key for every participant and one for your own client."""
    perms = frozenset({"trade", "retire"})
    keys = {name: add_key(data_dir, permissions=perms) for name, *_ in ROLES}
    return keys, add_key(data_dir, permissions=perms)


def write_key_file(data_dir: Path, key: tuple[int, str, str]) -> Path:
    """The key as `tonne accounts add --json` prints it, for `--key FILE`."""
    account, key_id, secret = key
    path = data_dir / "client.key"
    path.write_text(json.dumps({"account": account, "key_id": key_id, "secret": secret}) + "\n")
    path.chmod(0o600)
    return path


async def fund(server: Any, accounts: list[int]) -> int:
    """The scripted demo's funding, for every account; how many deposits."""
    deposits = funding(list_series(load_projects()), load_serials(), accounts)
    for cmd in deposits:
        events = await server.operator(cmd)
        assert not any(isinstance(e, Rejected) for e in events), events
    return len(deposits)


async def connect_all(info: dict[str, Any], keys: dict[str, tuple[int, str, str]]) -> Any:
    clients: dict[str, Client] = {}
    for name, _, _, over_ws in ROLES:
        if over_ws:
            client = await Client.connect_ws(f"ws://127.0.0.1:{info['ws_port']}")
        else:
            client = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
        _, key_id, secret = keys[name]
        await client.logon(key_id, secret, cancel_on_disconnect=True)
        clients[name] = client
    watcher = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
    watcher_key = keys["Bale Forest Fund"]
    await watcher.logon(watcher_key[1], watcher_key[2])
    return clients, watcher


def connect_hint(
    info: dict[str, Any], data_dir: Path, key_file: Path, kept: bool, console: Any = None
) -> str:
    where = "" if kept else " (a temporary folder, removed at the end: --data DIR keeps it)"
    web = (
        f"  the operator console: http://127.0.0.1:{console.port}/ (user token, password "
        f"{console.token})\n"
        if console is not None
        else ""
    )
    return (
        f"tonne demo: exchange on 127.0.0.1, TCP port {info['tcp_port']}, WebSocket port "
        f"{info['ws_port']}, data in {data_dir}{where}\n"
        f"  your own client: tonne order --connect 127.0.0.1:{info['tcp_port']} "
        f"--key {key_file} ... (a funded trading account; --ws with port {info['ws_port']})\n"
        f"  the settlement log as it grows: tonne log tail -f --data {data_dir}\n"
        f"{web}"
        f"  Ctrl-C stops the market, shuts the exchange down and verifies its log"
    )


def view_hint(
    info: dict[str, Any], data_dir: Path, key_file: Path, console: Any = None
) -> list[str]:
    """`connect_hint` in short lines for the live view, which keeps them on the screen (an
    80-column terminal folds only the longest)."""
    web = (
        [f"console: http://127.0.0.1:{console.port}/ (user token, password {console.token})"]
        if console is not None
        else []
    )
    return [
        f"exchange on 127.0.0.1: TCP {info['tcp_port']}, WebSocket {info['ws_port']} · "
        "Ctrl-C stops and verifies",
        f"your own client: tonne order --connect 127.0.0.1:{info['tcp_port']} --key {key_file} ...",
        f"the settlement log: tonne log tail -f --data {data_dir}",
        *web,
    ]


class View:
    """Where the rows go: rich's live view on a terminal, plain lines otherwise."""

    def __init__(self, plain: bool, out: Callable[[str], None], hint: list[str]) -> None:
        self.plain = plain
        self.out = out
        self.hint = hint
        self.started = time.monotonic()
        self.next_counters = self.started + COUNTERS_EVERY_S
        self.counters_shown = ""  # the last counters line printed
        self.live: Live | None = None

    def start(self, watch: Watch, books: dict[str, Any]) -> None:
        if self.plain:
            return
        self.live = Live(
            live_view(watch, books, 0.0, self.hint),
            console=Console(),
            refresh_per_second=REFRESH_PER_S,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def update(self, watch: Watch, books: dict[str, Any]) -> None:
        now = time.monotonic()
        rows = watch.poll(now)
        if self.live is not None:
            self.live.update(live_view(watch, books, now - self.started, self.hint))
            return
        for row in rows:
            self.out(trade_line(row) if isinstance(row, TradeRow) else retirement_line(row))
        if now >= self.next_counters:
            self.next_counters = now + COUNTERS_EVERY_S
            self._counters(watch, now)

    def stop(self, watch: Watch) -> None:
        if self.live is not None:
            self.live.stop()
        self._counters(watch, time.monotonic())

    def _counters(self, watch: Watch, now: float) -> None:
        line = counters_line(watch.counters, now - self.started)
        if line != self.counters_shown:  # the last update may just have printed it
            self.counters_shown = line
            self.out(line)


async def show(market: Market, view: View, seconds: float | None) -> None:
    """Refresh the view until the deadline or a stop signal; then stop the participants."""
    watch = Watch(market.clients, {s.id: s.currency for s in market.series})
    books = {s.id: market.watcher.books[s.id] for s in market.series}
    tasks = [
        asyncio.ensure_future(market.pace()),
        asyncio.ensure_future(market.retire_now_and_then()),
    ]
    deadline = None if seconds is None else time.monotonic() + seconds
    view.start(watch, books)
    try:
        while not market.stop.is_set():
            watch.counters.orders = market.rec.orders
            view.update(watch, books)
            if deadline is not None and time.monotonic() >= deadline:
                market.stop.set()
            if any(t.done() for t in tasks):  # a participant failed: stop, and say why
                market.stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(market.stop.wait(), 1 / REFRESH_PER_S)
        done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for t in pending:
            t.cancel()
        for client in (*market.clients.values(), market.watcher):
            with contextlib.suppress(ClientError, TimeoutError):
                await client.heartbeat()  # every report sent so far has arrived
        watch.counters.orders = market.rec.orders
        view.update(watch, books)
    finally:
        view.stop(watch)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def run_live(
    data_dir: Path, seed: int, seconds: float | None, plain: bool, kept: bool,
    out: Callable[[str], None], http_port: int | None = None, *,
    retire_every_s: float = RETIRE_EVERY_S,
) -> int:  # fmt: skip
    """The live demo on `data_dir`; the exit status of the log's verification. A basket is
    bought to retire every `retire_every_s` (a test need not wait five seconds for one)."""
    loop = asyncio.get_running_loop()
    stop_signal = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_signal.set)
    try:
        keys, yours = provision(data_dir)
        key_file = write_key_file(data_dir, yours)
        http = None if http_port is None else HttpSettings(port=http_port)
        async with running(data_dir, tcp_port=0, ws_port=0, http=http) as ex:
            await fund(ex.server, [k[0] for k in keys.values()] + [yours[0]])
            clients, watcher = await connect_all(ex.info, keys)
            market = Market(ex, clients, watcher, seed, retire_every_s)
            await market.setup(seed)
            hint = connect_hint(ex.info, data_dir, key_file, kept, ex.console)
            out(hint + "\n")
            view = View(plain, out, view_hint(ex.info, data_dir, key_file, ex.console))
            relay = asyncio.ensure_future(_relay(stop_signal, market.stop))
            try:
                await show(market, view, seconds)
            finally:
                relay.cancel()
                for client in (*clients.values(), watcher):
                    await client.close()
            ex.server.core.check_invariants()
        out("\nThe exchange stopped: journal committed, snapshot taken.")
        return print_verify(data_dir, out)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _relay(signalled: asyncio.Event, stop: asyncio.Event) -> None:
    await signalled.wait()
    stop.set()


def is_terminal() -> bool:
    return sys.stdout.isatty()


__all__ = ["is_terminal", "run_live"]
