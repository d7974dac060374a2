"""The core under the standard engine workload: funded by `settlement.bootstrap`, it makes
exactly the engine's fills, settles every one, and its log verifies."""

from __future__ import annotations

from bench.workload import generate
from engine.commands import NewOrder, OrderType
from engine.events import Rejected, Trade
from engine.exchange import Exchange
from settlement.bootstrap import funding_commands, with_cash_limits
from settlement.core import Core
from settlement.events import Settled
from settlement.log import verify


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
