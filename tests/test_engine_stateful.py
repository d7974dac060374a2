"""The whole engine against a tiny reference model, driven by the same random commands.

After every step: the events (all but BookDelta, Rejected compared by reason) are equal, the
books are equal level by level and queue by queue, the L2 deltas add up to the book with
gapless per-series sequence numbers, every order's status sequence is a legal lifecycle (and
every open order carries the status its events say), and `Exchange.check_invariants()` holds.
"""

from __future__ import annotations

import random

from engine_model import Model
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from engine import (
    Accepted,
    AdvanceTime,
    Amend,
    BookDelta,
    Cancel,
    Command,
    Event,
    Exchange,
    Halt,
    MassCancel,
    Mitigation,
    NewOrder,
    OrderType,
    Rejected,
    Resume,
    SelfTrade,
    Series,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.lifecycle import OPEN, OrderStatus, apply_event

# A: lot 1, tick 1, no band. B: lot 5, tick 2, band +/-5% around 100. Prices near 100 so that
# orders cross often; a few off the grid or outside the band.
SERIES = [
    Series(
        id="A",
        standard="VCS",
        mitigation=Mitigation.AVOIDANCE,
        vintage=2020,
        max_order_qty=30,
    ),
    Series(
        id="B",
        standard="GS",
        mitigation=Mitigation.REMOVAL,
        vintage=2023,
        tick=2,
        lot=5,
        ref_price=100,
        band_bps=500,
        max_order_qty=60,
    ),
]
PRICES = {"A": st.integers(98, 102), "B": st.sampled_from(range(96, 105, 2))}
QTYS = {"A": st.integers(1, 12), "B": st.sampled_from([5, 10, 15, 20, 25])}
ACCOUNTS = st.sampled_from([1, 2, 3])
SERIES_IDS = st.sampled_from(["A", "B"])
SIDES = st.sampled_from([Side.BUY, Side.SELL])
STPS = st.sampled_from(list(SelfTrade))
# A window this small fills within a run, so reused ids fall in it, beyond it and on open
# orders older than it.
COID_WINDOW = 2
NOTIONALS = st.sampled_from([0, 0, 0, 0, 1_000, 350, 2_500])


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ex = Exchange(SERIES, coid_window=COID_WINDOW)
        self.model = Model(SERIES, coid_window=COID_WINDOW)
        self.ts = 1_000
        self.coids = 0
        self.statuses: dict[int, OrderStatus] = {}
        self.open_qty: dict[int, int] = {}
        self.l2: dict[str, dict[tuple[Side, int], int]] = {s.id: {} for s in SERIES}
        self.seq: dict[str, int] = {s.id: 0 for s in SERIES}
        self.used_coids: list[tuple[int, str]] = []

    # -- the step --------------------------------------------------------------------------

    def step(self, cmd: Command) -> list[Event]:
        events = self.ex.submit(cmd)
        expected = self.model.submit(cmd)
        got = [
            Rejected(e.account, e.client_order_id, e.order_id, e.reason, "", e.ts)
            if isinstance(e, Rejected)
            else e
            for e in events
            if not isinstance(e, BookDelta)
        ]
        assert got == expected, f"{cmd}\nengine: {got}\nmodel:  {expected}"
        for e in events:
            if isinstance(e, Rejected):
                assert e.text, f"a rejection without a readable text: {e}"
            if isinstance(e, BookDelta):
                assert e.seq == self.seq[e.series] + 1, f"gap in {e.series} deltas: {e}"
                self.seq[e.series] = e.seq
                level = (e.side, e.price)
                if e.qty:
                    self.l2[e.series][level] = e.qty
                else:
                    assert level in self.l2[e.series], f"delta removes a level never seen: {e}"
                    del self.l2[e.series][level]
            apply_event(self.statuses, e, self.open_qty)
        if isinstance(cmd, NewOrder) and not isinstance(events[-1], Rejected):
            self.used_coids.append((cmd.account, cmd.client_order_id))
        return events

    def tick(self, dt: int) -> int:
        self.ts += dt
        return self.ts

    def fresh_coid(self) -> str:
        self.coids += 1
        return f"c{self.coids}"

    def pick_order(self, pick: int) -> tuple[int, int]:
        """(order id, owner) of some open order, or of a closed/unknown one if none is open."""
        orders = sorted(self.model.open_orders().values(), key=lambda o: o.order_id)
        if not orders:
            return pick % 50 + 1, pick % 3 + 1
        o = orders[pick % len(orders)]
        return o.order_id, o.account

    # -- rules -------------------------------------------------------------------------------
    # Hypothesis picks rules uniformly, so the common commands are split over several rules
    # and the rare or invalid ones share one.

    @initialize()
    def start(self) -> None:
        """Some resting liquidity on both sides of both books, so that most runs trade."""
        for account, series, side, price, qty in [
            (1, "A", Side.BUY, 99, 5),
            (2, "A", Side.SELL, 101, 5),
            (3, "A", Side.SELL, 102, 8),
            (2, "B", Side.BUY, 98, 10),
            (3, "B", Side.SELL, 102, 15),
        ]:
            self.step(
                NewOrder(
                    account=account,
                    client_order_id=self.fresh_coid(),
                    series=series,
                    side=side,
                    price=price,
                    qty=qty,
                    ts=self.ts,
                )
            )
        self.check_state()

    def limit_order(self, data: st.DataObject, series: str, tif: TimeInForce) -> None:
        ts = self.tick(data.draw(st.integers(0, 3), label="dt"))
        price = data.draw(PRICES[series], label="price")
        qty = data.draw(QTYS[series], label="qty")
        oddity = data.draw(st.sampled_from(range(40)), label="oddity")
        # Hypothesis favours the first choice of a sampled_from, so the odd ones come last.
        if oddity == 38:
            price = data.draw(st.sampled_from([101, 1_000, 0, -100, 94, 106]), label="odd price")
        elif oddity == 39:
            qty = data.draw(st.sampled_from([7, 1_000, 0, -5]), label="odd qty")
        life = data.draw(st.integers(-1, 12), label="life") if tif is TimeInForce.GTD else 0
        post_only = (
            tif in (TimeInForce.GTC, TimeInForce.GTD)
            and data.draw(st.sampled_from(range(5)), label="post only") == 4
        )
        self.step(
            NewOrder(
                account=data.draw(ACCOUNTS, label="account"),
                client_order_id=self.fresh_coid(),
                series=series,
                side=data.draw(SIDES, label="side"),
                price=price,
                qty=qty,
                tif=tif,
                expire_ts=ts + life if tif is TimeInForce.GTD else 0,
                post_only=post_only,
                stp=data.draw(STPS, label="stp"),
                max_notional=data.draw(NOTIONALS, label="max_notional"),
                ts=ts,
            )
        )

    @rule(data=st.data(), series=SERIES_IDS)
    def gtc_order(self, data: st.DataObject, series: str) -> None:
        self.limit_order(data, series, TimeInForce.GTC)

    @rule(data=st.data(), series=SERIES_IDS)
    def another_gtc_order(self, data: st.DataObject, series: str) -> None:
        self.limit_order(data, series, TimeInForce.GTC)

    @rule(data=st.data(), series=SERIES_IDS)
    def gtd_order(self, data: st.DataObject, series: str) -> None:
        self.limit_order(data, series, TimeInForce.GTD)

    @rule(
        data=st.data(), series=SERIES_IDS, tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK])
    )
    def immediate_order(self, data: st.DataObject, series: str, tif: TimeInForce) -> None:
        self.limit_order(data, series, tif)

    @rule(
        account=ACCOUNTS,
        series=SERIES_IDS,
        side=SIDES,
        tif=st.sampled_from(
            [
                TimeInForce.IOC,
                TimeInForce.FOK,
                TimeInForce.FOK,
                TimeInForce.IOC,
                TimeInForce.GTC,
                TimeInForce.GTD,
            ]
        ),
        lots=st.integers(1, 8),
        stp=STPS,
        notional=NOTIONALS,
        dt=st.integers(0, 3),
    )
    def market_order(
        self,
        account: int,
        series: str,
        side: Side,
        tif: TimeInForce,
        lots: int,
        stp: SelfTrade,
        notional: int,
        dt: int,
    ) -> None:
        ts = self.tick(dt)
        lot = 5 if series == "B" else 1
        self.step(
            NewOrder(
                account=account,
                client_order_id=self.fresh_coid(),
                series=series,
                side=side,
                type=OrderType.MARKET,
                qty=lots * lot,
                tif=tif,
                expire_ts=ts + 5 if tif is TimeInForce.GTD else 0,
                stp=stp,
                max_notional=notional,
                ts=ts,
            )
        )

    @precondition(lambda self: self.model.open_orders())
    @rule(pick=st.integers(0, 1000), own=st.sampled_from(range(7)), dt=st.integers(0, 3))
    def cancel_by_id(self, pick: int, own: int, dt: int) -> None:
        order_id, owner = self.pick_order(pick)
        account = owner % 3 + 1 if own == 6 else owner  # sometimes someone else
        self.step(Cancel(account=account, order_id=order_id, ts=self.tick(dt)))

    @precondition(lambda self: self.used_coids)
    @rule(pick=st.integers(0, 1000), own=st.sampled_from(range(7)), dt=st.integers(0, 3))
    def cancel_by_client_order_id(self, pick: int, own: int, dt: int) -> None:
        owner, coid = self.used_coids[-1 - pick % len(self.used_coids)]
        account = owner % 3 + 1 if own == 6 else owner  # sometimes someone else
        self.step(Cancel(account=account, client_order_id=coid, ts=self.tick(dt)))

    @precondition(lambda self: self.model.open_orders())
    @rule(
        data=st.data(),
        pick=st.integers(0, 1000),
        own=st.sampled_from(range(10)),
        change=st.sampled_from(["price", "down", "up", "price", "both", "same", "bad"]),
        dt=st.integers(0, 3),
    )
    def amend(self, data: st.DataObject, pick: int, own: int, change: str, dt: int) -> None:
        order_id, owner = self.pick_order(pick)
        account = owner % 3 + 1 if own == 9 else owner  # sometimes someone else
        o = self.model.open_orders()[order_id]
        lot = 5 if o.series == "B" else 1
        qty = price = 0
        if change == "down":
            qty = max(lot, o.qty - lot * data.draw(st.integers(1, 3), label="down by"))
        elif change == "up":
            qty = o.qty + lot * data.draw(st.integers(1, 3), label="up by")
        elif change == "price":
            price = data.draw(PRICES[o.series], label="price")
        elif change == "both":
            price = data.draw(PRICES[o.series], label="price")
            qty = lot * data.draw(st.integers(1, 6), label="qty lots")
        elif change == "same":
            price, qty = o.price, o.qty
        else:
            price = data.draw(st.sampled_from([0, -2, 101, 90, 1_000]), label="bad price")
            qty = data.draw(st.sampled_from([0, -5, 3, 1_000]), label="bad qty")
        self.step(Amend(account=account, order_id=order_id, price=price, qty=qty, ts=self.tick(dt)))

    @rule(account=ACCOUNTS, series=st.sampled_from(["", "A", "B"]), dt=st.integers(0, 3))
    def mass_cancel(self, account: int, series: str, dt: int) -> None:
        self.step(MassCancel(account=account, series=series, ts=self.tick(dt)))

    @rule(
        action=st.sampled_from(["reference", "resume", "reference", "halt"]),
        series=SERIES_IDS,
        price=st.sampled_from([100, 96, 104, 101, 0]),
        dt=st.integers(0, 3),
    )
    def operator(self, action: str, series: str, price: int, dt: int) -> None:
        ts = self.tick(dt)
        if action == "halt":
            self.step(Halt(series=series, ts=ts))
        elif action == "resume":
            halted = [sid for sid, book in self.ex.books.items() if book.halted]
            self.step(Resume(series=halted[0] if halted else series, ts=ts))
        else:
            self.step(SetReferencePrice(series=series, price=price, ts=ts))

    @rule(dt=st.integers(0, 8), to_next=st.booleans())
    def advance_time(self, dt: int, to_next: bool) -> None:
        """What the gateway sends when an expiry is due: exactly at the next expiry, or
        somewhere after it (or with nothing due at all)."""
        due = self.ex.next_expiry_ts()
        if to_next and due is not None and due > self.ts:
            self.ts = due
            self.step(AdvanceTime(ts=due))
        else:
            self.step(AdvanceTime(ts=self.tick(dt)))
        nxt = self.ex.next_expiry_ts()
        assert nxt is None or nxt > self.ts, "nothing due is left after an AdvanceTime"

    @rule(
        data=st.data(),
        account=ACCOUNTS,
        what=st.sampled_from(
            [
                "reuse coid",
                "coid of another",
                "empty coid",
                "unknown series",
                "unknown order",
                "unknown mass",
                "operator unknown",
                "time passes",
            ]
        ),
        dt=st.integers(1, 6),
    )
    def oddity(self, data: st.DataObject, account: int, what: str, dt: int) -> None:
        """Rare and invalid commands; every one of them also moves time, so GTDs expire."""
        ts = self.tick(dt)
        coid = self.fresh_coid()
        series = "A"
        if what in ("reuse coid", "coid of another") and self.used_coids:
            owner, coid = data.draw(st.sampled_from(self.used_coids), label="used coid")
            account = owner if what == "reuse coid" else owner % 3 + 1
            if what == "reuse coid":
                live = coid in self.ex.open_by_coid.get(account, {})
                recent = coid in self.ex.coids_recent.get(account, ())
                event(
                    "reused coid "
                    + (
                        "in the window"
                        if recent
                        else "of an older open order"
                        if live
                        else "beyond"
                    )
                )
        elif what == "empty coid":
            coid = ""
        elif what == "unknown series":
            series = "X"
        elif what == "unknown order":
            self.step(Amend(account=account, order_id=10_000, qty=5, ts=ts))
            return
        elif what == "unknown mass":
            self.step(MassCancel(account=account, series="X", ts=ts))
            return
        elif what == "operator unknown":
            self.step(Halt(series="X", ts=ts))
            return
        elif what == "time passes":
            self.step(Cancel(account=account, order_id=10_000, ts=ts))
            return
        self.step(
            NewOrder(
                account=account,
                client_order_id=coid,
                series=series,
                side=data.draw(SIDES, label="side"),
                price=100,
                qty=5,
                ts=ts,
            )
        )

    # -- comparisons ---------------------------------------------------------------------------

    @invariant()
    def check_state(self) -> None:
        self.ex.check_invariants()
        assert self.ex.next_order_id == self.model.next_order_id
        assert self.ex.next_trade_id == self.model.next_trade_id
        windows = {a: list(r) for a, r in self.ex.coids_recent.items()}
        assert windows == {a: u[-COID_WINDOW:] for a, u in self.model.coids_used.items()}
        assert self.ex.next_expiry_ts() == self.model.next_expiry_ts()
        for sid, mbook in self.model.books.items():
            book = self.ex.books[sid]
            assert book.halted == mbook.halted
            depth = book.depth()
            assert depth == mbook.depth(), f"{sid}: {depth} != {mbook.depth()}"
            l2 = self.l2[sid]
            assert sorted(l2.items()) == sorted(
                [((Side.BUY, p), q) for p, q in depth[0]]
                + [((Side.SELL, p), q) for p, q in depth[1]]
            ), f"{sid}: L2 deltas {l2} do not add up to {depth}"
            for (side, price), queue in mbook.queues().items():
                assert [o.order_id for o in book.queue(side, price)] == queue
        model_open = self.model.open_orders()
        assert set(self.ex.open_orders) == set(model_open)
        for oid, o in self.ex.open_orders.items():
            m = model_open[oid]
            assert (o.account, o.series, o.side, o.price, o.qty, o.client_order_id) == (
                m.account,
                m.series,
                m.side,
                m.price,
                m.qty,
                m.client_order_id,
            )
            assert self.open_qty[oid] == o.qty
            assert OrderStatus(o.status) is self.statuses[oid], "the engine's status = the fold's"
        assert {oid for oid, s in self.statuses.items() if s in OPEN} == set(self.ex.open_orders)


EngineMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
test_engine_matches_the_reference_model = EngineMachine.TestCase


def test_a_long_seeded_session_with_deep_queues_matches_the_reference_model() -> None:
    """Hundreds of orders on a few prices, most of them then cancelled: long queues full of
    dead orders (which the book compacts) and many emptied levels (whose stale heap entries it
    rebuilds away), which the short random sequences above never build."""
    rng = random.Random(20_260_101)
    machine = EngineMachine()
    far = [*range(50, 96), *range(105, 150)]
    for _cycle in range(4):
        for _ in range(400):
            ts = machine.tick(rng.randint(0, 1))
            side = rng.choice([Side.BUY, Side.SELL])
            near = rng.choice([97, 98]) if side is Side.BUY else rng.choice([102, 103])
            gtd = rng.random() < 0.2
            machine.step(
                NewOrder(
                    account=rng.randint(1, 3),
                    client_order_id=machine.fresh_coid(),
                    series="A",
                    side=side,
                    price=rng.choice(far) if rng.random() < 0.25 else near,
                    qty=rng.randint(1, 5),
                    tif=TimeInForce.GTD if gtd else TimeInForce.GTC,
                    expire_ts=ts + rng.randint(100, 2_000) if gtd else 0,
                    ts=ts,
                )
            )
        for n in range(300):
            ts = machine.tick(rng.randint(0, 1))
            open_orders = machine.model.open_orders()
            if not open_orders:
                break
            o = open_orders[rng.choice(sorted(open_orders))]
            roll = rng.random()
            cmd: Command
            if roll < 0.85:
                cmd = Cancel(account=o.account, order_id=o.order_id, ts=ts)
            elif roll < 0.93:
                cmd = Amend(account=o.account, order_id=o.order_id, qty=rng.randint(1, 6), ts=ts)
            else:
                cmd = NewOrder(
                    account=rng.randint(1, 3),
                    client_order_id=machine.fresh_coid(),
                    series="A",
                    side=rng.choice([Side.BUY, Side.SELL]),
                    type=OrderType.MARKET,
                    qty=rng.randint(1, 30),
                    tif=rng.choice([TimeInForce.IOC, TimeInForce.FOK]),
                    stp=rng.choice(list(SelfTrade)),
                    ts=ts,
                )
            machine.step(cmd)
            if n % 25 == 0:
                machine.check_state()
        for side, price in ((Side.BUY, 99), (Side.SELL, 101)):  # a best level that stays
            machine.step(
                NewOrder(
                    account=1,
                    client_order_id=machine.fresh_coid(),
                    series="A",
                    side=side,
                    price=price,
                    qty=1,
                    ts=machine.tick(1),
                )
            )
        for _ in range(100):  # levels that come and go below the best: stale heap entries
            ts = machine.tick(1)
            side = rng.choice([Side.BUY, Side.SELL])
            account = rng.randint(1, 3)
            events = machine.step(
                NewOrder(
                    account=account,
                    client_order_id=machine.fresh_coid(),
                    series="A",
                    side=side,
                    price=rng.choice(far[:46] if side is Side.BUY else far[46:]),
                    qty=1,
                    ts=ts,
                )
            )
            (accepted,) = [e for e in events if isinstance(e, Accepted)]
            machine.step(Cancel(account=account, order_id=accepted.order_id, ts=ts))
        machine.check_state()
