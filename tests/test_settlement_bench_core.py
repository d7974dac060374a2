"""The core under the standard engine workload: funded by `bench.funding`, it makes
exactly the engine's fills, settles every one, and its log verifies."""

from __future__ import annotations

from bench.funding import funding_commands, with_cash_limits
from bench.workload import generate
from engine.commands import NewOrder, OrderType
from engine.events import Rejected, Trade
from engine.exchange import Exchange
from settlement import serials
from settlement.core import Core
from settlement.events import CreditsDeposited, Settled
from settlement.log import verify
from settlement.serials import Key, Range


def test_the_standard_workload_settles_every_fill_of_the_engine() -> None:
    w = generate(3_000, seed=11)
    # the ledger needs a cash limit on market buys; a generous one changes no fill
    cmds = with_cash_limits(w.commands)
    assert sum(1 for c in cmds if type(c) is NewOrder and c.type is OrderType.MARKET) > 10
    ex = Exchange(w.series)
    engine_fills = [e for c in cmds for e in ex.submit(c) if type(e) is Trade]
    core = Core(w.series, [], maker_fee_bps=5, taker_fee_bps=20)
    for c in funding_commands(w.series, 50, cmds[0].ts - 1):
        assert not any(isinstance(e, Rejected) for e in core.apply(c))
    records = core.drain_records()
    fills, settled = [], 0
    for c in cmds:
        events = core.apply(c)
        fills += [e for e in events if type(e) is Trade]
        settled += sum(1 for e in events if isinstance(e, Settled))
        records += core.drain_records()
    assert fills == engine_fills and settled == len(fills) > 100
    core.check_invariants()
    v = verify(records, head=core.ledger.log.head_hash)
    assert v.ok, v.summary()
    assert v.counts["fill"] == len(fills)


def test_every_account_holds_exactly_the_serials_the_log_gave_it() -> None:
    """Ranges split by one fill and joined by another: each account's range list is exactly
    its deposits plus what it received minus what it delivered (replayed from the log with
    the plain range-list helpers), merged; many fills deliver several pieces."""
    w = generate(3_000, seed=12)
    cmds = with_cash_limits(w.commands)
    core = Core(w.series, [], maker_fee_bps=5, taker_fee_bps=20)
    for c in funding_commands(w.series, 50, cmds[0].ts - 1):
        core.apply(c)
    for c in cmds:
        core.apply(c)
    model: dict[tuple[int, Key], list[Range]] = {}
    multi = 0
    for record in core.drain_records():
        body = record.movement()
        if isinstance(body, CreditsDeposited):
            r = body.range
            serials.add(
                model.setdefault((body.account, (r.project, r.vintage)), []), r.first, r.last
            )
        elif isinstance(body, Settled):
            multi += len(body.ranges) > 1
            for r in body.ranges:
                key = (r.project, r.vintage)
                serials.remove(model[(body.seller, key)], r.first, r.last)
                serials.add(model.setdefault((body.buyer, key), []), r.first, r.last)
    assert multi > 50
    held = {
        (a.id, key): ranges
        for a in core.ledger.accounts.values()
        for key, ranges in a.credits.items()
        if ranges
    }
    assert held == {k: v for k, v in model.items() if v}
    core.check_invariants()
