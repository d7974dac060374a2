"""The standard engine workload: a seeded, valid command stream over ten series.

Mix (of all commands): 60% passive limit orders a few ticks from the mid on their own side,
10% marketable orders (limit IOC, crossing limit GTC whose rest stays in the book, market
IOC; a market buy carries a cash limit, as the exchange requires, set so that it never
binds), 25% cancels of open orders (by order id or by client order id), 5% amends (quantity
down in place, quantity up, price moves of a few ticks). Each series' mid drifts as a random
walk; prices respect each series' tick and quantities its lot.

The generator runs the matcher-only reference (`bench.reference_engine.Matcher`) as it goes,
untimed, to know the book: passive orders are clamped so they never cross, and cancels and
amends pick an order that is open at that moment. A small share of cancels deliberately names
an order that is already gone (a cancel that lost the race against a fill), which the engine
rejects. Order ids are predictable because every generated `NewOrder` is valid: the engine numbers
accepted orders 1, 2, 3, ... in command order, exactly as the reference does.

Everything random comes from one `random.Random(seed)`: a seed replays the same commands.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from bench.reference_engine import Matcher, OpCompiler
from engine.commands import Amend, Cancel, Command, NewOrder, OrderType, Side, TimeInForce
from engine.reference import Mitigation, Series

DEFAULT_SEED = 20_261_125
ACCOUNTS = 50
SHARE_PASSIVE = 0.60
SHARE_MARKETABLE = 0.10
SHARE_CANCEL = 0.25
SHARE_AMEND = 0.05
SHARE_CANCEL_BY_CLIENT_ID = 0.30  # of cancels
SHARE_CANCEL_STALE = 0.02  # of cancels: name an order that has already left the book
MID_STEP_CHANCE = 0.10  # per command on a series, the mid moves one tick up or down
MID_TICKS_MIN = 50  # the mid reflects off this many ticks, so prices stay positive
PASSIVE_OFFSET_TICKS_MAX = 12
GONE_REMEMBERED = 1_000  # recently departed orders kept as targets for stale cancels
PICK_TRIES_MAX = 32  # attempts to find an open order among remembered ids
TS_START = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds
TS_STEP_NS_MAX = 20_000

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC = TimeInForce.GTC, TimeInForce.IOC
MARKET = OrderType.MARKET


def standard_series() -> list[Series]:
    """The ten series of the standard workload, with varied ticks, lots and price levels."""
    spec = [
        # (id, standard, mitigation, vintage, project, tick, lot, ref_price)
        ("VCS-1340-2020", "VCS", Mitigation.AVOIDANCE, 2020, "VCS1340", 1, 1, 450),
        ("VCS-981-2019", "VCS", Mitigation.AVOIDANCE, 2019, "VCS981", 1, 10, 320),
        ("GS-7542-2021", "GS", Mitigation.AVOIDANCE, 2021, "GS7542", 5, 1, 1_250),
        ("GS-11019-2022", "GS", Mitigation.AVOIDANCE, 2022, "GS11019", 5, 5, 980),
        ("ACR-REMOVAL-2023", "ACR", Mitigation.REMOVAL, 2023, None, 10, 1, 2_400),
        ("CAR-1173-2018", "CAR", Mitigation.AVOIDANCE, 2018, "CAR1173", 1, 100, 610),
        ("ART-TREES-2021", "ART", Mitigation.AVOIDANCE, 2021, "ARTTREES", 1, 1, 1_475),
        ("ISO-REMOVAL-2024", "ISO", Mitigation.REMOVAL, 2024, None, 100, 1, 45_000),
        ("VCS-AVOIDANCE-2022", "VCS", Mitigation.AVOIDANCE, 2022, None, 1, 1, 290),
        ("CDC-REMOVAL-2023", "CDC", Mitigation.REMOVAL, 2023, None, 25, 1, 16_500),
    ]
    return [
        Series(
            id=sid,
            standard=standard,
            mitigation=mitigation,
            vintage=vintage,
            project=project,
            tick=tick,
            lot=lot,
            ref_price=ref,
        )
        for sid, standard, mitigation, vintage, project, tick, lot, ref in spec
    ]


@dataclass
class WorkloadStats:
    """What was generated, counted while generating (the matcher's view)."""

    kinds: Counter[str] = field(default_factory=Counter)
    cancels_live: int = 0
    cancels_by_client_id: int = 0
    amends_live: int = 0
    fills: int = 0
    open_orders_end: int = 0
    open_orders_max: int = 0

    @property
    def commands(self) -> int:
        return sum(self.kinds.values())

    def count(self, group: str) -> int:
        """Commands whose kind starts with `group` (`new.passive`, `new.marketable`, ...)."""
        return sum(n for kind, n in self.kinds.items() if kind.startswith(group))


@dataclass
class Workload:
    series: list[Series]
    commands: list[Command]
    stats: WorkloadStats
    seed: int


class _Mid:
    """One series' drifting mid, in ticks."""

    __slots__ = ("ticks",)

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks


def generate(commands: int, seed: int = DEFAULT_SEED, accounts: int = ACCOUNTS) -> Workload:
    """The standard workload of `commands` commands for `seed` (see the module docstring)."""
    return _Generator(seed, accounts).run(commands)


class _Generator:
    def __init__(self, seed: int, accounts: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.accounts = accounts
        self.series = standard_series()
        self.mids = [_Mid(s.ref_price // s.tick) for s in self.series]
        self.book_of = {s.id: i for i, s in enumerate(self.series)}
        self.ref = Matcher(len(self.series))
        self.compiler = OpCompiler([s.id for s in self.series])
        self.accounts_of: dict[int, int] = {}  # account of each id in `open_ids`
        self.coid_of: dict[int, str] = {}  # ... its client order id
        self.book_of_order: dict[int, int] = {}  # ... and its book
        self.open_ids: list[int] = []  # ids that were open when remembered; checked on pick
        self.gone: list[tuple[int, int]] = []  # (order id, account) of orders that left
        self.gone_next = 0  # where the next one goes once `gone` is full (a ring)
        self.stats = WorkloadStats()
        self.ts = TS_START
        self.coid_seq = 0

    def run(self, n: int) -> Workload:
        rng = self.rng
        out: list[Command] = []
        cut_passive = SHARE_PASSIVE
        cut_marketable = cut_passive + SHARE_MARKETABLE
        cut_cancel = cut_marketable + SHARE_CANCEL
        for _ in range(n):
            self.ts += rng.randint(1, TS_STEP_NS_MAX)
            r = rng.random()
            if r < cut_passive:
                cmd = self.passive()
            elif r < cut_marketable:
                cmd = self.marketable()
            elif r < cut_cancel:
                cmd = self.cancel()
            else:
                cmd = self.amend()
            out.append(cmd)
            self.apply(cmd)
        self.stats.open_orders_end = len(self.ref.orders)
        return Workload(self.series, out, self.stats, self.seed)

    # -- keeping track ---------------------------------------------------------------------------

    def apply(self, cmd: Command) -> None:
        """Run `cmd` through the matcher and remember what is open."""
        ref = self.ref
        new_id = ref.next_order_id if type(cmd) is NewOrder else 0
        fills_before = len(ref.fills)
        ref.run((self.compiler.op(cmd),))
        self.stats.fills += len(ref.fills) - fills_before
        del ref.fills[:]
        if new_id and new_id in ref.orders:
            assert isinstance(cmd, NewOrder)
            self.open_ids.append(new_id)
            self.accounts_of[new_id] = cmd.account
            self.coid_of[new_id] = cmd.client_order_id
            self.book_of_order[new_id] = self.book_of[cmd.series]
        open_now = len(ref.orders)
        if open_now > self.stats.open_orders_max:
            self.stats.open_orders_max = open_now

    def pick_open(self) -> int:
        """The id of an order that is open now (0 if none was found), chosen uniformly among
        remembered ids; ids that have left are forgotten as they are met."""
        rng, ids, orders = self.rng, self.open_ids, self.ref.orders
        for _ in range(PICK_TRIES_MAX):
            if not ids:
                return 0
            i = rng.randrange(len(ids))
            order_id = ids[i]
            order = orders.get(order_id)
            if order is not None:
                return order_id
            ids[i] = ids[-1]
            ids.pop()
            self.remember_gone(order_id)
        return 0

    def remember_gone(self, order_id: int) -> None:
        account = self.accounts_of.pop(order_id)
        del self.coid_of[order_id], self.book_of_order[order_id]
        if len(self.gone) < GONE_REMEMBERED:
            self.gone.append((order_id, account))
        else:
            self.gone[self.gone_next] = (order_id, account)
            self.gone_next = (self.gone_next + 1) % GONE_REMEMBERED

    # -- command kinds -------------------------------------------------------------------------

    def next_coid(self) -> str:
        self.coid_seq += 1
        return f"c{self.coid_seq}"

    def pick_series(self) -> int:
        i = self.rng.randrange(len(self.series))
        mid = self.mids[i]
        if self.rng.random() < MID_STEP_CHANCE:
            mid.ticks += 1 if self.rng.random() < 0.5 else -1
            if mid.ticks < MID_TICKS_MIN:
                mid.ticks = MID_TICKS_MIN + 1
        return i

    def passive(self) -> NewOrder:
        rng = self.rng
        i = self.pick_series()
        s, mid = self.series[i], self.mids[i].ticks
        ref = self.ref
        offset = 1 + min(int(rng.expovariate(0.35)), PASSIVE_OFFSET_TICKS_MAX - 1)
        if rng.random() < 0.5:
            side, ticks = BUY, mid - offset
            best_ask = ref.best_ask(i)
            if best_ask is not None and ticks * s.tick >= best_ask:
                ticks = best_ask // s.tick - 1
        else:
            side, ticks = SELL, mid + offset
            best_bid = ref.best_bid(i)
            if best_bid is not None and ticks * s.tick <= best_bid:
                ticks = best_bid // s.tick + 1
        self.stats.kinds["new.passive"] += 1
        return NewOrder(
            account=rng.randrange(1, self.accounts + 1),
            client_order_id=self.next_coid(),
            series=s.id,
            side=side,
            price=max(ticks, 1) * s.tick,
            qty=s.lot * rng.randint(1, 20),
            ts=self.ts,
        )

    def marketable(self) -> NewOrder:
        rng = self.rng
        i = self.pick_series()
        s, mid = self.series[i], self.mids[i].ticks
        ref = self.ref
        side = BUY if rng.random() < 0.5 else SELL
        qty = s.lot * rng.randint(1, 90)
        account = rng.randrange(1, self.accounts + 1)
        r = rng.random()
        if r < 0.25:
            self.stats.kinds["new.marketable.market_ioc"] += 1
            cash_limit = 0
            if side is BUY:  # the exchange wants a cash limit; this one never binds
                highest_ask = ref.highest_ask(i)
                cash_limit = qty * (s.tick if highest_ask is None else highest_ask)
            return NewOrder(
                account=account,
                client_order_id=self.next_coid(),
                series=s.id,
                side=side,
                type=MARKET,
                tif=IOC,
                qty=qty,
                max_notional=cash_limit,
                ts=self.ts,
            )
        through = rng.randint(0, 3)
        if side is BUY:
            best = ref.best_ask(i)
            ticks = (mid if best is None else best // s.tick) + through
        else:
            best = ref.best_bid(i)
            ticks = (mid if best is None else best // s.tick) - through
        if r < 0.75:
            tif, kind = IOC, "new.marketable.limit_ioc"
        else:
            tif, kind = GTC, "new.marketable.limit_gtc"
        self.stats.kinds[kind] += 1
        return NewOrder(
            account=account,
            client_order_id=self.next_coid(),
            series=s.id,
            side=side,
            price=max(ticks, 1) * s.tick,
            qty=qty,
            tif=tif,
            ts=self.ts,
        )

    def cancel(self) -> Cancel:
        rng = self.rng
        order_id = 0
        if not (self.gone and rng.random() < SHARE_CANCEL_STALE):
            order_id = self.pick_open()
        if order_id:
            account, coid = self.accounts_of[order_id], self.coid_of[order_id]
            self.stats.cancels_live += 1
        elif self.gone:
            order_id, account = self.gone[rng.randrange(len(self.gone))]
            coid = ""
        else:  # nothing was ever open: a cancel of an order that never existed
            order_id, account, coid = 1 << 40, 1, ""
        self.stats.kinds["cancel"] += 1
        if coid and rng.random() < SHARE_CANCEL_BY_CLIENT_ID:
            self.stats.cancels_by_client_id += 1
            return Cancel(account=account, client_order_id=coid, ts=self.ts)
        return Cancel(account=account, order_id=order_id, ts=self.ts)

    def amend(self) -> Command:
        rng = self.rng
        order_id = self.pick_open()
        if not order_id:
            return self.passive()  # nothing open to amend: the stream stays valid
        account = self.accounts_of[order_id]
        s = self.series[self.book_of_order[order_id]]
        open_qty, open_price = self.ref.open_qty(order_id), self.ref.price_of(order_id)
        lots = open_qty // s.lot
        r = rng.random()
        price = qty = 0
        if r < 0.4 and lots > 1:
            kind, qty = "amend.qty_down", s.lot * rng.randint(1, lots - 1)
        elif r < 0.7:
            kind, qty = "amend.qty_up", open_qty + s.lot * rng.randint(1, 10)
        else:
            kind = "amend.price"
            step = rng.randint(1, 3) * (1 if rng.random() < 0.5 else -1)
            ticks = open_price // s.tick + step
            if ticks < 1:
                ticks = open_price // s.tick + 1
            price = ticks * s.tick
        self.stats.kinds[kind] += 1
        self.stats.amends_live += 1
        return Amend(account=account, order_id=order_id, price=price, qty=qty, ts=self.ts)
