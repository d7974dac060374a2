"""The simulated participants of `tonne load`, and the two ways of driving them.

Each participant is one client connection (gateway/client/client.py) with a behaviour:

- `maker`: quotes both sides of every traded series a few ticks around the fair value,
  at most `LEVELS` orders a side a series; once there, re-quotes its oldest order on a side
  to the current fair value with an `amend`, or `cancel`s it.
- `taker`: marketable orders a couple of ticks through the fair value: limit GTC (what does
  not fill rests, and is cancelled once it has `OPEN_MAX` open), IOC and FOK.
- `basket`: in turn a screened basket buy of one series' project, the same to retire, and a
  buy-and-retire IOC order (`retire_for`).
- `noisy`: invalid requests, each of which must get its documented rejection
  (`NOISE`): anything else (an ack, another reason, an error) is counted as an error.

The fair value of each series is one seeded random walk (`FairValue`) that every participant
reads at its own step count, so every run with a seed walks the same prices. Each participant
draws its choices from its own seeded generator: the same seed sends the same sequence of
decisions; which order an amend or cancel names depends on what has traded meanwhile.

A participant whose connection is lost reconnects (`reopen`: a new connection, logged on
with the same key), at most `RECONNECTS_MAX` times, and starts a new segment of its books:
first a `mass_cancel` on the new connection, which the core orders after everything the old
one sent, so that nothing of the old connection's can still change the account; then its
balances and holdings as the new segment's baseline. The request that was in flight is not
retried: it may or may not have been applied, and its report went with the connection. The
end check then checks each participant from its last baseline, and keeps the old segments'
trades for the market check (gateway/cli/load.py says what a reconnect leaves unchecked).

`closed_loop` keeps `in_flight` requests outstanding per connection; `open_loop` sends
requests at a fixed total rate, round robin over the participants, and times each from the
moment the schedule meant to send it, so a server that falls behind shows in the latency
rather than slowing the schedule down (coordinated omission). Both stop at the order budget
or the deadline. Latencies go to an HDR histogram in microseconds (`Recorder`).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from hdrh.histogram import HdrHistogram

from engine.commands import Side, TimeInForce
from engine.events import Reason
from gateway.cli.load_check import Books
from gateway.client.client import Client, ClientError, ConnectionLost, RequestRejected
from gateway.wire import protocol as p

KINDS = ("makers", "takers", "baskets", "noisy")
LEVELS = 2  # a maker's orders per side per series, at most
OPEN_MAX = 20  # a taker's resting orders, at most, before it cancels its oldest
LATENCY_US_MAX = 600_000_000  # the histogram's range: 10 minutes
ERROR_SAMPLES_MAX = 20
IN_FLIGHT_MAX = 10_000  # open loop: requests outstanding at once, at most (then it waits)
WALK_STEP_TICKS = 1  # the fair value's step, each way
RECONNECTS_MAX = 10  # a participant's reconnects in one run, at most (then it stops: an error)
RECONNECT_TRIES = 3  # connection attempts per reconnect
RECONNECT_PAUSE_S = 0.2  # between attempts

Position = tuple[p.Balances, p.Holdings]


class Recorder:
    """What every participant counts: latencies, orders, rejects by reason, errors."""

    def __init__(self, orders_max: int, deadline_ns: int) -> None:
        self.hist = HdrHistogram(1, LATENCY_US_MAX, 3)
        self.orders_left = orders_max
        self.deadline_ns = deadline_ns
        self.requests = 0
        self.orders = 0  # new orders and baskets sent (the budget), noisy ones included
        self.ordered_t = 0
        self.rejects: Counter[str] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []
        self.disconnects = 0
        self.reconnects = 0
        self.noisy_sent = 0
        self.noisy_as_documented = 0
        self.baskets = 0

    def running(self) -> bool:
        return self.orders_left > 0 and time.monotonic_ns() < self.deadline_ns

    def take_order(self, qty: int) -> bool:
        """One order of the budget, if any is left."""
        if self.orders_left <= 0:
            return False
        self.orders_left -= 1
        self.orders += 1
        self.ordered_t += max(qty, 0)
        return True

    def done(self, intended_ns: int) -> None:
        self.requests += 1
        us = (time.perf_counter_ns() - intended_ns) // 1000
        self.hist.record_value(min(max(us, 1), LATENCY_US_MAX))

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES_MAX:
            self.error_samples.append(text)


class FairValue:
    """One seeded random walk per series, in ticks, kept inside its band."""

    def __init__(self, series: list[p.SeriesInfo], start: dict[str, int], seed: int) -> None:
        self.rng = random.Random(f"fair value {seed}")
        self.series = series
        self.walk: dict[str, list[int]] = {s.id: [start[s.id]] for s in series}

    def at(self, s: p.SeriesInfo, step: int) -> int:
        walk = self.walk[s.id]
        while len(walk) <= step:  # extended for every series at once: the same walk always
            for t in self.series:
                w = self.walk[t.id]
                low, high = band(t)
                moved = w[-1] + self.rng.choice((-1, 0, 1)) * WALK_STEP_TICKS * t.tick
                w.append(min(high - 5 * t.tick, max(low + 5 * t.tick, moved)))
        return walk[step]


def band(s: p.SeriesInfo) -> tuple[int, int]:
    """The prices a series accepts, as multiples of its tick."""
    low = max(s.band_low, s.tick)
    high = min(s.band_high, 10**9)
    low += -low % s.tick
    return low, high - high % s.tick


def start_price(s: p.SeriesInfo) -> int:
    low, high = band(s)
    mid = (low + high) // 2
    return mid - mid % s.tick


class Participant:
    """One connection, its behaviour, and its books kept from its own reports."""

    def __init__(
        self,
        kind: str,
        client: Client,
        series: list[p.SeriesInfo],
        fair: FairValue,
        rng: random.Random,
        rec: Recorder,
        reopen: Callable[[], Awaitable[Client]] | None = None,
    ) -> None:
        self.kind = kind
        self.client = client
        self.reopen = reopen  # a new logged-on connection for the same account, or None
        self.series = series
        self.fair = fair
        self.rng = rng
        self.rec = rec
        self.books = Books(client.account, {s.id: s.currency for s in series})
        self.seen = client.received
        self.steps = 0
        self.mine: list[int] = []  # order ids acked, oldest first (some ended since)
        self._series_of: dict[int, str] = {}  # of the order ids in `mine`
        self._side_of: dict[int, Side] = {}
        self.lost = False
        self.before: Position | None = None  # the current segment's baseline (set by drive)
        self.segments: list[Books] = []  # the books of the segments before each reconnect
        self._rejoining: asyncio.Future[None] | None = None
        self._act: Callable[[], Any] = getattr(self, f"_{kind}")

    def drain(self) -> None:
        """Feed the messages received since the last look to the books."""
        c = self.client
        new = c.received - self.seen
        if new > len(c.history):
            self.rec.error(f"account {c.account}: history overflowed, reports lost to the check")
            new = len(c.history)
        msgs = list(itertools.islice(reversed(c.history), new))
        msgs.reverse()
        self.seen = c.received
        self.books.feed(msgs)

    async def act(self, intended_ns: int = 0) -> bool:
        """One request; False when there was nothing to do (the budget is spent). It is
        timed from `intended_ns` (open loop: when the schedule meant to send it), or with
        0 from when it is sent, after the participant's own book-keeping (closed loop)."""
        if self.lost:
            return False
        self.drain()
        self.steps += 1
        client = self.client
        if not intended_ns:
            intended_ns = time.perf_counter_ns()
        try:
            sent = await self._act()
        except RequestRejected as exc:
            self.rec.rejects[exc.reason.value] += 1
            sent = True
        except ConnectionLost as exc:
            return await self._lost(exc, client)
        except TimeoutError as exc:  # unanswered: as slow as it was, at least
            self.rec.done(intended_ns)
            self.rec.error(f"account {client.account} ({self.kind}): {exc!r}")
            return True
        except ClientError as exc:
            if not client.connected:  # a protocol violation closes the client: reconnect
                return await self._lost(ConnectionLost("closed", str(exc)), client)
            self.rec.error(f"account {client.account} ({self.kind}): {exc!r}")
            return True
        if sent:
            self.rec.done(intended_ns)
        return bool(sent)

    def all_books(self) -> list[Books]:
        """Every segment's books, oldest first, the current one last."""
        return [*self.segments, self.books]

    async def _lost(self, exc: ConnectionLost, client: Client) -> bool:
        """The connection went: reconnect once for every lane that saw it go (a lane whose
        request went with a connection already replaced just goes on)."""
        if self.lost:
            return False
        if client is not self.client and self._rejoining is None:
            return True
        if self._rejoining is None:
            self.rec.disconnects += 1
            self._rejoining = asyncio.ensure_future(self._rejoin(exc))
        rejoining = self._rejoining
        await asyncio.shield(rejoining)
        if self._rejoining is rejoining:
            self._rejoining = None
        return not self.lost

    async def _rejoin(self, exc: ConnectionLost) -> None:
        who = f"account {self.client.account} ({self.kind})"
        if self.reopen is None:
            self.lost = True
            self.rec.error(f"{who}: {exc}")
            return
        if len(self.segments) >= RECONNECTS_MAX:
            self.lost = True
            self.rec.error(f"{who}: {exc}; {RECONNECTS_MAX} reconnects already, it stops")
            return
        last: BaseException = exc
        for attempt in range(RECONNECT_TRIES):
            if attempt:
                await asyncio.sleep(RECONNECT_PAUSE_S)
            try:
                client = await self.reopen()
                await client.mass_cancel()
                before = (await client.balances(), await client.holdings())
            except (ClientError, TimeoutError, OSError) as e:
                last = e
                continue
            self.drain()  # what the old connection received, into the old segment
            await self.client.close()
            self.segments.append(self.books)
            self.books = Books(client.account, {s.id: s.currency for s in self.series})
            self.client, self.seen, self.before = client, client.received, before
            self.mine.clear()
            self._series_of.clear()
            self._side_of.clear()
            self.rec.reconnects += 1
            return
        self.lost = True
        self.rec.error(f"{who}: {exc}; reconnecting failed: {last!r}")

    # -- the behaviours: each sends one request, or returns False ------------------------

    def _pick(self) -> tuple[p.SeriesInfo, int]:
        s = self.rng.choice(self.series)
        return s, self.fair.at(s, self.steps)

    def _price(self, s: p.SeriesInfo, price: int) -> int:
        low, high = band(s)
        return min(high, max(low, price - price % s.tick))

    def _open_of(self, s: p.SeriesInfo | None = None) -> list[int]:
        open_ = self.books.open
        self.mine = [o for o in self.mine if o in open_]
        if len(self._series_of) > 2 * len(self.mine) + 64:  # bounded: forget the ended
            self._series_of = {o: self._series_of[o] for o in self.mine if o in self._series_of}
            self._side_of = {o: v for o, v in self._side_of.items() if o in open_}
        if s is None:
            return self.mine
        return [o for o in self.mine if self._series_of.get(o) == s.id]

    async def _place(self, s: p.SeriesInfo, side: Side, qty: int, price: int, **kw: Any) -> bool:
        if not self.rec.take_order(qty):
            return False
        ack = await self.client.place(s.id, side, qty=qty, price=price, **kw)
        self.mine.append(ack.order_id)
        self._series_of[ack.order_id] = s.id
        return True

    async def _makers(self) -> bool:
        s, fv = self._pick()
        rng = self.rng
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = -1 if side is Side.BUY else 1
        price = self._price(s, fv + sign * rng.randint(1, 3) * s.tick)
        mine = [o for o in self._open_of(s) if self._side_of.get(o) is side]
        if len(mine) < LEVELS:
            if not await self._place(s, side, rng.randint(1, 10) * s.lot, price):
                return False
            self._side_of[self.mine[-1]] = side
            return True
        if rng.random() < 0.6:
            await self.client.amend(mine[0], price=price)
        else:
            await self.client.cancel(mine[0])
        return True

    async def _takers(self) -> bool:
        s, fv = self._pick()
        rng = self.rng
        resting = self._open_of()
        if len(resting) >= OPEN_MAX:
            await self.client.cancel(resting[0])
            return True
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        price = self._price(s, fv + sign * 2 * s.tick)
        r = rng.random()
        tif = TimeInForce.GTC if r < 0.5 else TimeInForce.IOC if r < 0.8 else TimeInForce.FOK
        return await self._place(s, side, rng.randint(1, 5) * s.lot, price, tif=tif)

    async def _baskets(self) -> bool:
        s, fv = self._pick()
        rng = self.rng
        qty = rng.randint(1, 5) * s.lot
        price = self._price(s, fv + 3 * s.tick)
        which = self.steps % 3
        retire = p.RetireFor(beneficiary=f"tonne load {self.client.account}") if which else None
        if which == 2:  # a buy-and-retire order
            coid = self.client.next_client_order_id()
            self.books.retiring.add(coid)
            return await self._place(
                s, Side.BUY, qty, price, tif=TimeInForce.IOC, retire_for=retire,
                client_order_id=coid,
            )  # fmt: skip
        if s.project is None or not self.rec.take_order(qty):
            return False
        coid = self.client.next_client_order_id()
        if retire is not None:
            self.books.retiring.add(coid)
        await self.client.basket_buy(
            f"project = {s.project}",
            qty,
            price,
            currency=s.currency,
            retire_for=retire,
            client_order_id=coid,
        )
        self.rec.baskets += 1
        return True

    async def _noisy(self) -> bool:
        s, fv = self._pick()
        case = NOISE[self.steps % len(NOISE)]
        name, reason, fields = case(s, fv)
        if not self.rec.take_order(fields.get("qty", 0)):
            return False
        self.rec.noisy_sent += 1
        try:
            ack = await self.client.place(**fields)
        except RequestRejected as exc:
            if exc.reason is reason:
                self.rec.noisy_as_documented += 1
                self.rec.rejects[exc.reason.value] += 1
            else:
                self.rec.error(f"noisy {name}: {exc.reason.value}, documented {reason.value}")
            return True
        self.mine.append(ack.order_id)
        self.rec.error(f"noisy {name}: acknowledged (order {ack.order_id}), not {reason.value}")
        return True


def _noise(s: p.SeriesInfo, fv: int) -> list[tuple[str, Reason, dict[str, Any]]]:
    low, high = band(s)
    base: dict[str, Any] = {"series": s.id, "side": Side.BUY, "qty": s.lot, "price": fv}
    return [
        # off the tick; with a tick of 1 every positive price is on it, so no price at all
        ("bad tick", Reason.INVALID_PRICE, {**base, "price": fv + 1 if s.tick > 1 else 0}),
        ("unknown series", Reason.UNKNOWN_SERIES, {**base, "series": "NO-SUCH-SERIES"}),
        ("zero quantity", Reason.INVALID_QUANTITY, {**base, "qty": 0}),
        ("out of band", Reason.PRICE_OUT_OF_BAND, {**base, "price": high + s.tick}),
    ]


def _case(i: int) -> Callable[[p.SeriesInfo, int], tuple[str, Reason, dict[str, Any]]]:
    return lambda s, fv: _noise(s, fv)[i]


NOISE = [_case(i) for i in range(4)]


def make_participant(
    kind: str,
    client: Client,
    series: list[p.SeriesInfo],
    fair: FairValue,
    seed: int,
    index: int,
    rec: Recorder,
    reopen: Callable[[], Awaitable[Client]] | None = None,
) -> Participant:
    rng = random.Random(f"{seed} {index} {kind}")
    return Participant(kind, client, series, fair, rng, rec, reopen)


async def closed_loop(parts: list[Participant], in_flight: int) -> None:
    """Each participant keeps `in_flight` requests outstanding until the recorder stops."""

    async def lane(part: Participant) -> None:
        rec = part.rec
        while rec.running() and not part.lost:
            if not await part.act():
                if rec.orders_left <= 0 or part.lost:
                    return
                await asyncio.sleep(0)  # nothing to do this turn (a basket with no project)

    await asyncio.gather(*[lane(part) for part in parts for _ in range(in_flight)])


async def open_loop(parts: list[Participant], rate: float) -> int:
    """Requests at `rate` per second in total on a fixed schedule, round robin; each timed
    from its intended send time. How many requests were sent (a slot whose participant had
    nothing to send, its budget spent or its connection lost for good, is not one)."""
    rec = parts[0].rec
    interval_ns = 1e9 / rate
    start = time.perf_counter_ns()
    tasks: set[asyncio.Task[bool]] = set()
    sent = 0  # slots of the schedule used
    done = [0]  # requests actually sent

    def count(task: asyncio.Task[bool]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is None and task.result():
            done[0] += 1

    live = [p_ for p_ in parts]
    while rec.running() and live:
        now = time.perf_counter_ns()
        due = start + int(sent * interval_ns)
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            continue
        if len(tasks) >= IN_FLIGHT_MAX:  # late requests keep their intended time
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            continue
        part = live[sent % len(live)]
        task = asyncio.ensure_future(part.act(due))
        tasks.add(task)
        task.add_done_callback(count)
        sent += 1
        if part.lost:
            live.remove(part)
    if tasks:
        await asyncio.gather(*tasks)
    return done[0]


__all__ = [
    "KINDS",
    "FairValue",
    "Participant",
    "Recorder",
    "closed_loop",
    "make_participant",
    "open_loop",
]
