"""GTD orders expire at their time in a quiet market: the server's one expiry timer journals
`AdvanceTime` when the earliest expiry is due, and never when nothing is due. The timer runs
on a `ManualClock` here (no sleeps); `test_gateway_serve.py` runs it on the real clock.
`clock.pending(env.server._expiry_due)` is the expiry timer alone: the sessions' timeouts
and the clients' keepalives are armed on the same clock."""

from __future__ import annotations

import pytest
from test_gateway_harness import SERIES, run, running_server

from engine.commands import AdvanceTime, Side, TimeInForce
from gateway.server.clock import ManualClock
from gateway.wire import protocol as p

GTD = TimeInForce.GTD
S = 10**9


def _advances(env) -> list[AdvanceTime]:
    return [c for c in env.journal.commands if isinstance(c, AdvanceTime)]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_gtd_order_expires_at_its_time_with_no_other_command(transport):
    clock = ManualClock()

    async def body():
        async with running_server(clock=clock) as env:
            owner = await env.connect(transport, 1)
            desk = await env.connect(transport, 1)  # another session of the same account
            watcher = await env.connect(transport, 2)
            books = await watcher.subscribe(SERIES)
            expire_ts = clock.now + S
            ack = await owner.place(
                SERIES, Side.BUY, qty=2, price=400, tif=GTD, expire_ts=expire_ts
            )
            await watcher.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.qty == 2)
            assert clock.pending(env.server._expiry_due) == [expire_ts]  # one timer, at the expiry
            assert clock.advance(S - 1) == 0 and not _advances(env)  # not due yet
            assert clock.advance(1) == 1  # due: the timer fires, nothing else happens
            for c in (owner, desk):
                expired = await c.wait_for(lambda m: isinstance(m, p.Expired))
                assert (expired.order_id, expired.client_order_id, expired.qty) == (
                    ack.order_id,
                    ack.client_order_id,
                    2,
                )
                assert expired.ts == expire_ts
            gone = await watcher.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.qty == 0)
            assert (gone.side, gone.price) == (Side.BUY, 400)
            assert books[SERIES].depth() == ([], [])
            assert (await owner.open_orders()).orders == []
            assert _advances(env) == [AdvanceTime(ts=expire_ts)]  # journaled, once
            assert clock.pending(env.server._expiry_due) == []  # no GTD order left: no timer

    run(body)


def test_the_timer_follows_the_earliest_live_gtd_order_as_orders_come_and_go():
    clock = ManualClock()

    async def body():
        async with running_server(clock=clock) as env:
            c = await env.tcp(1)
            t0 = clock.now
            late = await c.place(SERIES, Side.BUY, qty=1, price=300, tif=GTD, expire_ts=t0 + 5 * S)
            assert clock.pending(env.server._expiry_due) == [t0 + 5 * S]
            soon = await c.place(SERIES, Side.BUY, qty=1, price=301, tif=GTD, expire_ts=t0 + S)
            assert clock.pending(env.server._expiry_due) == [t0 + S]  # moved earlier
            await c.cancel(soon.order_id)
            assert clock.pending(env.server._expiry_due) == [
                t0 + 5 * S
            ]  # moved back: the earliest is gone
            assert clock.advance(2 * S) == 0  # soon's time passes: nothing due, no timer
            assert not _advances(env)
            await c.amend(late.order_id, price=302)  # loses priority, keeps its expiry
            assert clock.pending(env.server._expiry_due) == [t0 + 5 * S]
            assert clock.advance(3 * S) == 1
            await c.wait_for(lambda m: isinstance(m, p.Expired) and m.order_id == late.order_id)
            assert _advances(env) == [AdvanceTime(ts=t0 + 5 * S)]
            assert clock.pending(env.server._expiry_due) == []

    run(body)


def test_orders_that_expire_together_share_one_advance_time_and_later_ones_rearm():
    clock = ManualClock()

    async def body():
        async with running_server(clock=clock) as env:
            c = await env.tcp(1)
            t0 = clock.now
            for i, dt in enumerate([S, S, 3 * S]):
                await c.place(SERIES, Side.SELL, qty=1, price=900 + i, tif=GTD, expire_ts=t0 + dt)
            clock.advance(2 * S)  # late: both of the first two are due at once
            await c.wait_for(lambda m: isinstance(m, p.Expired) and m.qty == 1)
            assert _advances(env) == [AdvanceTime(ts=t0 + 2 * S)]
            assert [o.price for o in (await c.open_orders()).orders] == [902]
            assert clock.pending(env.server._expiry_due) == [t0 + 3 * S]

    run(body)


def test_a_gtd_order_swept_by_a_later_command_journals_no_advance_time():
    clock = ManualClock()

    async def body():
        async with running_server(clock=clock) as env:
            c = await env.tcp(1)
            await c.place(SERIES, Side.BUY, qty=1, price=300, tif=GTD, expire_ts=clock.now + S)
            clock.now += 2 * S  # time moves, the timer has not run yet
            await c.place(SERIES, Side.BUY, qty=1, price=200)  # its expiry comes first
            await c.wait_for(lambda m: isinstance(m, p.Expired))
            assert (
                clock.pending(env.server._expiry_due) == []
            )  # the timer was disarmed with the order gone
            assert clock.run_due() == 0
            assert not _advances(env)

    run(body)
