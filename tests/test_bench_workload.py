"""The standard bench workload and the matcher-only references: deterministic, the promised mix,
valid commands, and the same fills from both matchers as from the real `engine.Exchange`.

Nothing here asserts a timing: the machine is shared, and `tonne bench` reports ratios."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from bench import engine_bench
from bench.reference_engine import Fill, Matcher, SortedDictMatcher, compile_ops
from bench.workload import Workload, generate, standard_series
from engine import (
    Amend,
    BookDelta,
    Cancel,
    Cancelled,
    CancelReason,
    Command,
    Event,
    Exchange,
    NewOrder,
    OrderType,
    Reason,
    Rejected,
    Side,
    TimeInForce,
    Trade,
)

COMMANDS = 20_000


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(COMMANDS, seed=11)


def test_the_same_seed_gives_the_same_commands() -> None:
    assert generate(3_000, seed=5).commands == generate(3_000, seed=5).commands


def test_another_seed_gives_other_commands() -> None:
    assert generate(3_000, seed=5).commands != generate(3_000, seed=6).commands


def test_the_mix_is_the_promised_one(workload: Workload) -> None:
    stats = workload.stats
    n = len(workload.commands)
    assert stats.commands == n == COMMANDS
    kinds = Counter(type(c).__name__ for c in workload.commands)
    assert kinds["Cancel"] == stats.count("cancel")
    assert kinds["Amend"] == stats.count("amend")
    assert stats.count("new.passive") / n == pytest.approx(0.60, abs=0.015)
    assert stats.count("new.marketable") / n == pytest.approx(0.10, abs=0.01)
    assert stats.count("cancel") / n == pytest.approx(0.25, abs=0.015)
    assert stats.count("amend") / n == pytest.approx(0.05, abs=0.01)
    assert stats.cancels_live / stats.count("cancel") > 0.95
    assert 0.2 < stats.cancels_by_client_id / stats.cancels_live < 0.4
    for kind in ("limit_ioc", "limit_gtc", "market_ioc"):
        assert stats.kinds[f"new.marketable.{kind}"] > 0
    for kind in ("qty_down", "qty_up", "price"):
        assert stats.kinds[f"amend.{kind}"] > 0


def test_market_buys_carry_a_cash_limit_and_nothing_else_does(workload: Workload) -> None:
    for cmd in workload.commands:
        if isinstance(cmd, NewOrder):
            market_buy = cmd.type is OrderType.MARKET and cmd.side is Side.BUY
            assert (cmd.max_notional > 0) is market_buy


def test_commands_respect_ticks_lots_and_time(workload: Workload) -> None:
    series = {s.id: s for s in standard_series()}
    assert len(series) == 10
    last_ts = 0
    for cmd in workload.commands:
        assert cmd.ts > last_ts
        last_ts = cmd.ts
        if isinstance(cmd, NewOrder):
            s = series[cmd.series]
            assert cmd.qty > 0 and cmd.qty % s.lot == 0
            if cmd.type is OrderType.LIMIT:
                assert cmd.price > 0 and cmd.price % s.tick == 0


def test_the_engine_accepts_everything_but_cancels_of_orders_already_gone(
    workload: Workload,
) -> None:
    exchange = Exchange(workload.series)
    next_id = 1
    rejected: Counter[Reason] = Counter()
    user_cancels = 0
    for cmd in workload.commands:
        events = exchange.submit(cmd)
        if isinstance(cmd, NewOrder):
            assert events[0].order_id == next_id  # ids are predictable: 1, 2, 3, ...
            next_id += 1
        for e in events:
            if isinstance(e, Rejected):
                rejected[e.reason] += 1
            elif isinstance(e, Cancelled) and e.reason is CancelReason.USER:
                user_cancels += 1
    stats = workload.stats
    assert rejected == {Reason.UNKNOWN_ORDER: stats.count("cancel") - stats.cancels_live}
    assert user_cancels == stats.cancels_live
    exchange.check_invariants()


MATCHERS = [Matcher, SortedDictMatcher]


def engine_fills(exchange: Exchange, commands: list[Command]) -> list[Fill]:
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.qty)
        for cmd in commands
        for e in exchange.submit(cmd)
        if isinstance(e, Trade)
    ]


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_and_engine_make_the_same_fills(
    workload: Workload, matcher_class: type[Matcher]
) -> None:
    exchange = Exchange(workload.series)
    matcher = matcher_class(len(workload.series))
    ours = engine_fills(exchange, workload.commands)
    matcher.run(compile_ops(workload.commands, [s.id for s in workload.series]))
    assert len(ours) > COMMANDS // 10
    assert ours == matcher.fills
    assert len(matcher.orders) == len(exchange.open_orders)
    for order_id in matcher.orders:
        assert exchange.open_orders[order_id].qty == matcher.open_qty(order_id)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matchers_fill_like_the_engine_on_seeded_streams_fed_in_chunks(
    seed: int, matcher_class: type[Matcher]
) -> None:
    """Chunks of tuples, as `tonne bench` feeds them, on other seeds and a smaller set of
    accounts (more self-trades)."""
    stream = generate(5_000, seed=seed, accounts=3)
    ops = compile_ops(stream.commands, [s.id for s in stream.series])
    matcher = matcher_class(len(stream.series))
    for i in range(0, len(ops), 700):
        matcher.run(ops[i : i + 700])
    assert matcher.fills == engine_fills(Exchange(stream.series), stream.commands)


# -- the matchers on small examples ---------------------------------------------------------


def _order(account: int, coid: str, side: Side, price: int, qty: int, **kw: object) -> NewOrder:
    return NewOrder(
        account=account,
        client_order_id=coid,
        series="S",
        side=side,
        price=price,
        qty=qty,
        **kw,  # type: ignore[arg-type]
    )


def _run(matcher_class: type[Matcher], commands: list[Command]) -> tuple[Matcher, list[Fill]]:
    """A one-series matcher after `commands`, and the fills of the last one."""
    matcher = matcher_class(1)
    ops = compile_ops(commands, ["S"])
    matcher.run(ops[:-1])
    before = len(matcher.fills)
    matcher.run(ops[-1:])
    return matcher, matcher.fills[before:]


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_trades_best_price_first_then_time(matcher_class: type[Matcher]) -> None:
    matcher, fills = _run(
        matcher_class,
        [
            _order(1, "a", Side.SELL, 101, 5),  # id 1
            _order(2, "b", Side.SELL, 100, 5),  # id 2
            _order(3, "c", Side.SELL, 100, 5),  # id 3
            _order(4, "d", Side.BUY, 101, 12, tif=TimeInForce.IOC),
        ],
    )
    assert fills == [(2, 4, 100, 5), (3, 4, 100, 5), (1, 4, 101, 2)]
    assert matcher.open_qty(1) == 3 and 4 not in matcher.orders
    assert matcher.best_ask(0) == matcher.highest_ask(0) == 101 and matcher.best_bid(0) is None


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_amend_down_keeps_priority_and_up_loses_it(matcher_class: type[Matcher]) -> None:
    commands: list[Command] = [
        _order(account, coid, Side.BUY, 50, 10) for account, coid in ((1, "a"), (2, "b"), (3, "c"))
    ]
    commands += [
        Amend(account=1, order_id=1, qty=4),
        Amend(account=2, order_id=2, qty=20),
        _order(9, "s", Side.SELL, 0, 40, type=OrderType.MARKET, tif=TimeInForce.IOC),
    ]
    _, fills = _run(matcher_class, commands)
    assert fills == [(1, 4, 50, 4), (3, 4, 50, 10), (2, 4, 50, 20)]


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_amend_to_a_crossing_price_trades_and_rests_the_rest(
    matcher_class: type[Matcher],
) -> None:
    matcher, fills = _run(
        matcher_class,
        [
            _order(1, "a", Side.SELL, 60, 5),
            _order(2, "b", Side.BUY, 50, 8),
            Amend(account=2, order_id=2, price=60),
        ],
    )
    assert fills == [(1, 2, 60, 5)]
    assert matcher.open_qty(2) == 3 and matcher.price_of(2) == 60 and matcher.best_bid(0) == 60


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_cancels_by_id_or_client_id_and_ignores_unknown_orders(
    matcher_class: type[Matcher],
) -> None:
    matcher, _ = _run(
        matcher_class,
        [
            _order(1, "a", Side.BUY, 50, 10),
            _order(1, "b", Side.BUY, 50, 10),
            Cancel(account=1, order_id=1),
            Cancel(account=1, client_order_id="b"),
            Cancel(account=1, order_id=1),
            Cancel(account=2, client_order_id="a"),
        ],
    )
    assert not matcher.orders and matcher.best_bid(0) is None


@pytest.mark.parametrize("matcher_class", MATCHERS)
def test_matcher_stops_at_its_own_order_and_drops_the_rest(matcher_class: type[Matcher]) -> None:
    matcher, fills = _run(
        matcher_class,
        [
            _order(1, "a", Side.SELL, 100, 5),
            _order(2, "b", Side.SELL, 100, 5),
            _order(3, "c", Side.SELL, 100, 5),
            _order(2, "d", Side.BUY, 100, 15),
        ],
    )
    assert fills == [(1, 4, 100, 5)]
    assert 4 not in matcher.orders and sorted(matcher.orders) == [2, 3]


# -- the runner ---------------------------------------------------------------------------------


def test_bench_runs_every_engine_and_prints_rates_and_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert engine_bench.main(["--commands", "20000"]) == 0
    out = capsys.readouterr().out
    assert "commands/s" in out
    lines = out.splitlines()
    assert any(line.startswith("matcher only (no validation, fills only) ") for line in lines)
    assert any(line.startswith("reference (full: validation + events) ") for line in lines)
    assert any(line.startswith("reference ") for line in lines)
    assert any(line.startswith("engine ") for line in lines)
    assert any(line.startswith("engine / reference: ") for line in lines)
    assert any(line.startswith("engine / matcher only: ") for line in lines)
    assert any(line.startswith("matcher only, SortedDict levels ") for line in lines)
    assert any(line.startswith("engine / matcher, SortedDict: ") for line in lines)
    assert "fill sequences identical" in out
    assert "event streams identical (reference (full: validation + events) and engine" in out
    if engine_bench.settlement_contender()[0] is not None:
        assert any(line.startswith("engine + settlement ") for line in lines)
        assert any(line.startswith("engine + settlement / reference: ") for line in lines)


def test_the_headline_ratio_is_the_engine_against_the_full_reference() -> None:
    def result(name: str, seconds: float) -> engine_bench.Result:
        return engine_bench.Result(name, [seconds], 1, "f" * 64, 5, "e" * 64)

    lines = engine_bench.describe_results(
        [
            result(engine_bench.MATCHER_ONLY, 1.0),
            result(engine_bench.FULL_REFERENCE, 3.0),
            result(engine_bench.ENGINE, 1.5),
            result(engine_bench.ENGINE_SETTLEMENT, 6.0),
        ],
        commands=1_000,
    )
    ratios = {
        line.split(":")[0]: line.split(":")[1].split()[0]
        for line in lines
        if " / " in line.split(":")[0]
    }
    assert ratios == {
        "engine / reference": "2.00x",
        "engine / matcher only": "0.67x",
        "engine + settlement / reference": "0.50x",
        "engine + settlement / matcher only": "0.17x",
    }
    headline = next(i for i, line in enumerate(lines) if " / " in line.split(":")[0])
    assert lines[headline].startswith("engine / reference:")


def test_bench_fails_when_the_event_streams_differ(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same fills, but the full reference's L2 updates go missing: exit 1."""
    honest = engine_bench.full_reference_contender()

    def lossy() -> engine_bench.Contender:
        def events_of(results: list[list[Event]]) -> list[list[Event]]:
            return [[e for e in events if not isinstance(e, BookDelta)] for events in results]

        return dataclasses.replace(honest, events_of=events_of)

    monkeypatch.setattr(engine_bench, "full_reference_contender", lossy)
    assert engine_bench.main(["--commands", "3000"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: the event streams of" in out
    assert "event streams identical" not in out


def test_bench_fails_when_the_fills_differ(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = engine_bench.matcher_only_contender()

    def short() -> engine_bench.Contender:
        def fills_of(fills: list[Fill]) -> list[Fill]:
            return fills[1:]

        return dataclasses.replace(honest, fills_of=fills_of)

    monkeypatch.setattr(engine_bench, "matcher_only_contender", short)
    assert engine_bench.main(["--commands", "3000"]) == 1
    assert "FAIL: the engines' fill sequences differ" in capsys.readouterr().out


def test_the_floor_builds_the_engines_events_and_bounds_the_matcher_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert engine_bench.main(["--commands", "3000", "--floor"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("floor: the engine's events alone ") for line in out.splitlines())
    assert "events alone / matcher only:" in out
    assert "event streams identical (floor: the engine's events alone and" in out
