"""Micro benchmarks (pytest-benchmark): one command at a time, our engine beside the matcher.

Not part of the normal test run (pytest collects `tests/test_*.py` only). Run them with

    python -m pytest bench/bench_engine_micro.py --benchmark-only --benchmark-group-by=group

Each benchmark starts from books warmed up by 20,000 commands of the standard workload, so
levels and indexes have realistic sizes. Every round is timed on its own (`pedantic` with a
setup), because each round needs a fresh command: the engine refuses a reused client order
id, and a cancel needs an order that is open.

- add passive: a GTC limit buy far below the book, joining one deep level.
- cancel: an order placed (untimed) near the best bid is cancelled by its order id.
- marketable: a resting sell is placed (untimed) in an otherwise empty series; a limit IOC
  buy takes it in one fill, leaving that series empty again.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from bench.reference_engine import Matcher, OpCompiler
from bench.workload import generate
from engine import Cancel, Command, Exchange, NewOrder, Series, Side, TimeInForce
from engine.reference import Mitigation

WARMUP_COMMANDS = 20_000
ROUNDS = 20_000
DEEP_SERIES = "VCS-1340-2020"  # tick 1, lot 1 in the standard workload
EMPTY = Series(id="MICRO-EMPTY", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020)


class Subject:
    """One engine warmed up with the standard workload; knows the id its next order gets.

    `prepare(cmd)` is what `submit` takes for `cmd`, made in the (untimed) setup: the command
    itself for the engine, a one-tuple of its prebuilt tuple (`bench.reference_engine.Op`)
    for the matcher, which is fed tuples in `tonne bench` too."""

    def __init__(self, kind: str) -> None:
        workload = generate(WARMUP_COMMANDS, seed=3)
        series = [*workload.series, EMPTY]
        self.submit: Callable[[Any], Any]
        self.prepare: Callable[[Command], Any]
        if kind == "engine":
            exchange = Exchange(series)
            self.submit = exchange.submit
            self.prepare = lambda cmd: cmd
            self.best_bid = lambda: exchange.books[DEEP_SERIES].best_bid()
        else:
            series_ids = [s.id for s in series]
            matcher, compiler = Matcher(len(series)), OpCompiler(series_ids)
            deep = series_ids.index(DEEP_SERIES)
            self.submit = matcher.run
            self.prepare = lambda cmd: (compiler.op(cmd),)
            self.best_bid = lambda: matcher.best_bid(deep)
        for cmd in workload.commands:
            self.submit(self.prepare(cmd))
        self.last_id = 0
        self.next_id = 1 + sum(type(c) is NewOrder for c in workload.commands)
        self.coids = count(1)
        self.ts = count(workload.commands[-1].ts + 1)

    def new_order(
        self, series: str, side: Side, price: int, qty: int, tif: TimeInForce
    ) -> NewOrder:
        """A valid new order; `last_id` becomes the id the engine will give it."""
        self.last_id = self.next_id
        self.next_id += 1
        return NewOrder(
            account=1 + self.last_id % 50,
            client_order_id=f"micro{next(self.coids)}",
            series=series,
            side=side,
            price=price,
            qty=qty,
            tif=tif,
            ts=next(self.ts),
        )


@pytest.fixture(params=["engine", "matcher"])
def subject(request: pytest.FixtureRequest) -> Subject:
    return Subject(request.param)


@pytest.mark.benchmark(group="add passive")
def test_add_passive(benchmark: Any, subject: Subject) -> None:
    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        return (
            subject.prepare(subject.new_order(DEEP_SERIES, Side.BUY, 1, 1, TimeInForce.GTC)),
        ), {}

    benchmark.pedantic(subject.submit, setup=setup, rounds=ROUNDS)


@pytest.mark.benchmark(group="cancel")
def test_cancel(benchmark: Any, subject: Subject) -> None:
    levels = count()

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        price = subject.best_bid() - next(levels) % 5
        order = subject.new_order(DEEP_SERIES, Side.BUY, price, 1, TimeInForce.GTC)
        subject.submit(subject.prepare(order))
        return (subject.prepare(Cancel(account=order.account, order_id=subject.last_id)),), {}

    benchmark.pedantic(subject.submit, setup=setup, rounds=ROUNDS)


@pytest.mark.benchmark(group="marketable")
def test_marketable_one_fill(benchmark: Any, subject: Subject) -> None:
    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        subject.submit(
            subject.prepare(subject.new_order(EMPTY.id, Side.SELL, 100, 10, TimeInForce.GTC))
        )
        return (
            subject.prepare(subject.new_order(EMPTY.id, Side.BUY, 100, 10, TimeInForce.IOC)),
        ), {}

    benchmark.pedantic(subject.submit, setup=setup, rounds=ROUNDS)
