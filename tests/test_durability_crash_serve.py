"""The crash test against the real server: `tonne serve` on its SQLite store, real clients,
real SIGKILLs (issue 5).

Each cycle starts `python -m gateway.cli.main serve` on the same data folder, so it recovers from
whatever the last kill left, and checks that it came back where the replay from scratch
says: the journal seq and state hash it reports, and each participant's balances, holdings
and open orders as its client sees them. The participants are clients of gateway/client/client.py
(three over TCP, one over WebSocket), each its own account with a `trade,retire,fund` key.
In the first cycle they fund themselves over the wire (`deposit`, `deposit_credits`); then
they trade with several requests in flight each: limit orders around each series' mid (many
cross, so there are fills), IOC orders, cancels and retirements.

Everything a client receives was sent after the commit of what it reports, so a client's
whole history is the record of what was acknowledged. After a seeded number of answered
requests the server gets SIGKILL. Then, with the process dead, `check_recovery`
(tests/crash_harness.py) replays the journal from scratch and checks the invariants, that
every fill settled exactly once, `tonne log verify`, and that recovery from the newest
snapshot equals the replay; and every acknowledged order, fill, cancel, retirement
certificate and deposit is in the replay exactly as it was acknowledged. A last start
checks the state once more and stops cleanly (exit 0, a final snapshot).

`TONNE_CRASH_CYCLES` sets the number of kill cycles (default 3), `TONNE_CRASH_SEED` the seed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine.commands import Side, TimeInForce
from gateway.cli.accounts import add_key
from gateway.client.client import Client, ClientError, RequestRejected
from gateway.durability.journal import SettlementCodec
from gateway.wire import protocol as p
from tests.crash_harness import FeedProcess, Tally, check_recovery

CYCLES = int(os.environ.get("TONNE_CRASH_CYCLES", "3"))
SEED = int(os.environ.get("TONNE_CRASH_SEED", "21"))
SERVE = ("gateway.cli.main", "serve")
PARTICIPANTS = 4  # the last one over WebSocket, the others over TCP
WORKERS = 3  # requests each participant has in flight at once
KILL_AFTER_ANSWERS = (100, 400)  # the kill comes after a seeded number of answered requests
SNAPSHOT_EVERY = 150  # commands between the server's snapshots, so that restarts use them
CASH = 10**10  # minor units of each currency each participant deposits
CREDITS = 10**6  # tonnes of each series each participant deposits
WAIT_S = 20.0  # the longest any one await of the test may take
OPEN_KEPT = 64  # own open order ids a participant remembers as cancel targets
PERMISSIONS = frozenset({"trade", "retire", "fund"})


class Answers:
    """Counts answered requests; `reached` is set at the kill target."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.n = 0
        self.reached = asyncio.Event()

    def count(self) -> None:
        self.n += 1
        if self.n >= self.target:
            self.reached.set()


class Participant:
    """One account: its key, its seeded behaviour, one client per cycle, and the deposits
    it was acknowledged."""

    def __init__(self, index: int, key: tuple[int, str, str], rng: random.Random) -> None:
        self.account, self.key_id, self.secret = key
        self.ws = index == PARTICIPANTS - 1
        self.rng = rng
        self.coid = 0  # never reset: a client order id is never reused by the account
        self.open: list[int] = []
        self.series: list[p.SeriesInfo] = []
        self.client: Client | None = None
        self.in_flight = 0
        self.deposits: Counter[tuple[Any, ...]] = Counter()

    async def connect(self, info: dict[str, Any]) -> Client:
        async with asyncio.timeout(WAIT_S):
            if self.ws:
                self.client = await Client.connect_ws(f"ws://127.0.0.1:{info['ws_port']}")
            else:
                self.client = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
            await self.client.logon(self.key_id, self.secret)
            # the projects' series: a contract (no project) is funded by the credits it admits,
            # which the deposits below of each project's series already are
            listed = (await self.client.series()).series
            self.series = [s for s in listed if s.project is not None]
            orders = (await self.client.open_orders()).orders
        self.open = [o.order_id for o in orders][-OPEN_KEPT:]
        return self.client

    async def fund(self) -> None:
        """Cash in each currency and a registry block of each series, over the wire."""
        c = self.client
        assert c is not None
        for currency in sorted({s.currency for s in self.series}):
            msg = p.Deposit(currency=currency, amount=CASH, req_id=c.next_req_id())
            done = await c.request(msg, WAIT_S)
            assert isinstance(done, p.Done), done
            self.deposits[("cash", self.account, currency, CASH)] += 1
        start = self.account * 10**8 + 1
        for s in self.series:
            assert s.project is not None
            msg = p.DepositCredits(
                project=s.project,
                vintage=s.vintage,
                start=start,
                end=start + CREDITS - 1,
                quantity=CREDITS,
                ref=f"crash test {self.account} {s.id}",
                req_id=c.next_req_id(),
            )
            done = await c.request(msg, WAIT_S)
            assert isinstance(done, p.Done), done
            key = ("credits", self.account, s.project, s.vintage, start, start + CREDITS - 1)
            self.deposits[key] += 1

    async def work(self, answers: Answers) -> None:
        """Requests one after another until the connection is lost."""
        c = self.client
        assert c is not None
        while True:
            self.in_flight += 1
            try:
                await self.step(c)
            except RequestRejected:
                pass  # changed nothing: not an acknowledgement, nothing to check
            except ClientError:
                return  # the kill
            finally:
                self.in_flight -= 1
            answers.count()

    async def step(self, c: Client) -> None:
        rng = self.rng
        r = rng.random()
        s = rng.choice(self.series)
        if r < 0.15 and self.open:
            await c.cancel(self.open.pop(rng.randrange(len(self.open))), timeout_s=WAIT_S)
        elif r < 0.22:
            msg = p.Retire(
                series=s.id,
                qty=rng.randint(1, 5),
                beneficiary=f"crash test beneficiary {self.account}",
                period_start="2025-01-01",
                period_end="2025-12-31",
                req_id=c.next_req_id(),
            )
            answer = await c.request(msg, WAIT_S)
            if isinstance(answer, p.Reject):
                raise RequestRejected(answer)
        else:
            self.coid += 1
            mid = (s.band_low + s.band_high) // 2 // s.tick * s.tick
            ioc = r > 0.9
            ack = await c.place(
                s.id,
                Side.BUY if rng.random() < 0.5 else Side.SELL,
                qty=s.lot * rng.randint(1, 20),
                price=mid + rng.randint(-4, 4) * s.tick,
                tif=TimeInForce.IOC if ioc else TimeInForce.GTC,
                client_order_id=f"c{self.account}-{self.coid}",
                timeout_s=WAIT_S,
            )
            if not ioc:
                self.open.append(ack.order_id)
                del self.open[:-OPEN_KEPT]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class Replayed:
    """What the replay from scratch did, by id: where acknowledgements are looked up.
    Passed to `check_recovery` as its `on_command`."""

    def __init__(self) -> None:
        self.accepted: dict[int, Any] = {}
        self.trades: dict[int, Any] = {}
        self.settled: dict[int, Any] = {}
        self.cancelled: dict[int, Any] = {}
        self.certificates: dict[str, Any] = {}
        self.deposits: Counter[tuple[Any, ...]] = Counter()

    def __call__(self, seq: int, cmd: Any, events: list[Any]) -> None:
        for ev in events:
            tag = ev.__struct_config__.tag
            if tag == "accepted":
                self.accepted[ev.order_id] = ev
            elif tag == "trade":
                self.trades[ev.trade_id] = ev
            elif tag == "fill":  # settlement.events.Settled
                self.settled[ev.trade_id] = ev
            elif tag == "cancelled":
                self.cancelled[ev.order_id] = ev
            elif tag == "certificate":
                self.certificates[ev.cert_id] = ev
            elif tag == "cash_deposit":
                self.deposits[("cash", ev.account, ev.currency, ev.amount)] += 1
            elif tag == "credit_deposit":
                r = ev.range
                self.deposits[("credits", ev.account, r.project, r.vintage, r.first, r.last)] += 1


def ranges(serials: Any) -> list[tuple[str, int, int, int]]:
    return [(r.project, r.vintage, r.first, r.last) for r in serials]


def check_acknowledged(part: Participant, replayed: Replayed, tally: Tally) -> None:
    """Every order ack, fill, cancel and certificate the participant's client received is in
    the replay exactly as it was reported."""
    c = part.client
    assert c is not None
    assert c.received == len(c.history), "the client's history dropped messages"
    acct = part.account
    for m in c.history:
        kind = type(m)
        if kind is p.OrderAck:
            ev = replayed.accepted.get(m.order_id)
            assert ev is not None, f"acknowledged order {m.order_id} ({m.client_order_id}) lost"
            assert (
                ev.account,
                ev.client_order_id,
                ev.series,
                ev.side,
                ev.price,
                ev.qty,
                ev.ts,
            ) == (
                acct,
                m.client_order_id,
                m.series,
                m.side,
                m.price,
                m.qty,
                m.ts,
            ), f"order {m.order_id} replays differently: {ev} for {m}"
            tally.orders += 1
        elif kind is p.Fill:
            trade = replayed.trades.get(m.trade_id)
            settled = replayed.settled.get(m.trade_id)
            assert trade is not None and settled is not None, f"acknowledged fill {m.trade_id} lost"
            buy = m.side is Side.BUY
            maker = m.liquidity == "maker"
            assert (
                trade.maker_order_id if maker else trade.taker_order_id,
                trade.buyer if buy else trade.seller,
                trade.series,
                trade.price,
                trade.qty,
                trade.ts,
                settled.buyer_fee if buy else settled.seller_fee,
                ranges(settled.ranges),
                replayed.accepted[m.order_id].client_order_id,
            ) == (
                m.order_id,
                acct,
                m.series,
                m.price,
                m.qty,
                m.ts,
                m.fee,
                ranges(m.serials),
                m.client_order_id,
            ), f"fill {m.trade_id} replays differently: {trade}, {settled} for {m}"
            tally.fills += not maker  # one per trade: ours are always the taker too
        elif kind is p.Cancelled:
            ev = replayed.cancelled.get(m.order_id)
            assert ev is not None, f"acknowledged cancel of order {m.order_id} lost"
            assert (ev.account, ev.series, ev.side, ev.qty, ev.reason, ev.ts) == (
                acct,
                m.series,
                m.side,
                m.qty,
                m.reason,
                m.ts,
            ), f"cancel of {m.order_id} replays differently: {ev} for {m}"
        elif kind is p.Certificate:
            ev = replayed.certificates.get(m.cert_id)
            assert ev is not None, f"acknowledged retirement {m.cert_id} lost"
            assert (
                ev.account,
                ev.project,
                ev.vintage,
                ev.qty,
                ranges(ev.ranges),
                ev.beneficiary,
                ev.purpose.value,
                ev.period_start,
                ev.period_end,
                ev.ts,
                ev.record_seq,
                ev.record_hash,
            ) == (
                acct,
                m.project,
                m.vintage,
                m.qty,
                ranges(m.serials),
                m.beneficiary,
                m.purpose,
                m.period_start,
                m.period_end,
                m.ts,
                m.record_seq,
                m.record_hash,
            ), f"retirement {m.cert_id} replays differently: {ev} for {m}"
            tally.retirements += 1
        else:
            continue
        tally.acked += 1
    lost = part.deposits - replayed.deposits
    assert not lost, f"acknowledged deposits lost: {sorted(lost)}"


async def check_views(part: Participant, core: Any) -> None:
    """The restarted server shows the participant what the replay from scratch holds."""
    c = part.client
    assert c is not None
    acct = core.ledger.accounts[part.account]
    balances = await c.balances()
    assert [(b.currency, b.total, b.held) for b in balances.cash] == [
        (cur, acct.cash[cur], acct.cash_held[cur]) for cur in sorted(acct.cash)
    ]
    holdings = await c.holdings()
    assert [
        ((h.project, h.vintage), h.available, h.held, [(r.first, r.last) for r in h.serials])
        for h in holdings.holdings
    ] == [
        (
            key,
            acct.credit_qty.get(key, 0),
            acct.credits_held.get(key, 0),
            [tuple(r) for r in acct.credits.get(key, [])],
        )
        for key in sorted(set(acct.credits) | set(acct.credits_held))
    ]
    orders = await c.open_orders()
    mine = core.exchange.open_by_coid.get(part.account, {}).values()
    assert sorted((o.order_id, o.client_order_id, o.price, o.qty) for o in orders.orders) == sorted(
        (o.order_id, o.client_order_id, o.price, o.qty) for o in mine
    )


async def start(
    data_dir: Path, participants: list[Participant], replay: Any, tally: Tally
) -> FeedProcess:
    """Start the server, check it recovered to the replay's state, connect everyone."""
    args = ["--tcp-port", "0", "--ws-port", "0", "--snapshot-every", str(SNAPSHOT_EVERY)]
    server = FeedProcess(data_dir, args, command=SERVE)
    info = await server.start()
    if "from snapshot" in info["recovery"]:
        tally.snapshot_recoveries += 1
    if replay is not None:
        assert (info["seq"], info["state_hash"]) == (replay.seq, replay.state_hash), (
            f"restart reported {info}, the replay from scratch {replay.summary()}"
        )
    for part in participants:
        await part.connect(info)
        if replay is not None:
            async with asyncio.timeout(WAIT_S):
                await check_views(part, replay.core)
    return server


async def trade_until_killed(
    server: FeedProcess, participants: list[Participant], rng: random.Random, tally: Tally
) -> None:
    answers = Answers(rng.randint(*KILL_AFTER_ANSWERS))
    tasks = [
        asyncio.ensure_future(part.work(answers)) for part in participants for _ in range(WORKERS)
    ]
    reached = asyncio.ensure_future(answers.reached.wait())
    try:
        await asyncio.wait([reached, *tasks], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        assert reached.done(), f"{answers.n} of {answers.target} requests answered: {tasks}"
        tally.in_flight_at_kill += sum(part.in_flight for part in participants)
        await server.kill()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(*tasks)
    finally:
        for task in (reached, *tasks):
            task.cancel()
        await asyncio.gather(reached, *tasks, return_exceptions=True)


async def crash_cycles(data_dir: Path, cycles: int, seed: int) -> Tally:
    """Kill and restart `tonne serve` `cycles` times (see the module docstring)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    keys = [add_key(data_dir, permissions=PERMISSIONS) for _ in range(PARTICIPANTS)]
    participants = [Participant(i, k, random.Random(rng.random())) for i, k in enumerate(keys)]
    codec = SettlementCodec()
    replayed = Replayed()
    tally = Tally()
    replay: Any = None
    for cycle in range(cycles):
        server: FeedProcess | None = None
        try:
            server = await start(data_dir, participants, replay, tally)
            if cycle == 0:
                await asyncio.gather(*(part.fund() for part in participants))
            await trade_until_killed(server, participants, rng, tally)
        finally:
            if server is not None:
                await server.kill()
            for part in participants:
                await part.close()
        checks_started = time.perf_counter()
        replay = check_recovery(data_dir, codec, replay, replayed)
        for part in participants:
            check_acknowledged(part, replayed, tally)
        tally.check_s += time.perf_counter() - checks_started
        tally.journal_seq = replay.seq
        tally.cycles += 1
    # One more start: it must come back where the last check says, and stop cleanly.
    server = None
    try:
        server = await start(data_dir, participants, replay, tally)
    finally:
        for part in participants:
            await part.close()
        if server is not None:
            await server.stop()
    assert server.returncode == 0, (data_dir / "feed.stderr").read_text()[-2000:]
    final = check_recovery(data_dir, codec, replay, replayed)
    assert (final.seq, final.state_hash) == (replay.seq, replay.state_hash)
    tally.elapsed_s = time.perf_counter() - started
    return tally


def test_sigkill_of_tonne_serve_loses_nothing_acknowledged_and_half_applies_nothing(tmp_path):
    tally = asyncio.run(crash_cycles(tmp_path, CYCLES, SEED))
    print(f"crash test of tonne serve passed, seed {SEED}: {tally.summary()}")
    assert tally.cycles == CYCLES
    assert tally.orders > 0 and tally.fills > 0 and tally.retirements > 0
    assert tally.snapshot_recoveries > 0, "some restart must have used a snapshot"
