"""Logon, order life, market data, isolation between accounts, durability of acks."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_gateway_harness import OTHER, SERIES, run, running_server

from engine.commands import Side, TimeInForce
from engine.events import CancelReason, Reason
from gateway.client.client import ConnectionLost, LocalBook, LogonFailed, RequestRejected
from gateway.server.auth import sign_logon
from gateway.server.clock import ManualClock
from gateway.wire import protocol as p

TRANSPORTS = ["tcp", "ws"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logon_with_a_good_signature_is_acknowledged_with_the_keys_account(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport)
            key_id, secret = env.keys[2]
            ack = await c.logon(key_id, secret)
            assert ack.account == 2 and ack.session_id > 0

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_bad_logon_is_rejected_with_its_reason(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport)
            key_id, secret = env.keys[1]
            with pytest.raises(LogonFailed) as e:
                await c.logon(key_id, "0" * 64)
            assert e.value.reason is Reason.BAD_SIGNATURE
            with pytest.raises(LogonFailed) as e:
                await c.logon(key_id, secret, ts=time.time_ns() - 60 * 10**9)
            assert e.value.reason is Reason.STALE_TIMESTAMP
            with pytest.raises(LogonFailed) as e:
                await c.logon("knope", secret)
            assert e.value.reason is Reason.UNKNOWN_KEY
            await c.logon(key_id, secret, nonce="n-1")
            other = await env.connect(transport)
            with pytest.raises(LogonFailed) as e:
                await other.logon(key_id, secret, nonce="n-1")
            assert e.value.reason is Reason.REUSED_NONCE
            assert env.server.counters["logon_rejected"] == 4

    run(body)


def test_a_replayed_logon_message_is_rejected_as_a_reused_nonce():
    async def body():
        async with running_server() as env:
            key_id, secret = env.keys[1]
            ts = time.time_ns()
            logon = p.Logon(
                key_id=key_id,
                ts=ts,
                nonce="abc",
                signature=sign_logon(secret, key_id, ts, "abc"),
                req_id=1,
            )
            first, second = await env.tcp(), await env.tcp()
            assert isinstance(await first.request(logon), p.LogonAck)
            answer = await second.request(logon)
            assert isinstance(answer, p.LogonReject) and answer.reason is Reason.REUSED_NONCE

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requests_before_logon_are_rejected_and_change_nothing(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport)
            coid = "x1"
            fut = c.order_future(coid)
            await c.send(
                p.NewOrder(client_order_id=coid, series=SERIES, side=Side.BUY, qty=1, price=100)
            )
            reject = await fut
            assert reject.reason is Reason.NOT_LOGGED_ON
            assert env.journal.commands == []

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_order_lives_from_ack_through_partial_fill_amend_and_cancel(transport):
    async def body():
        async with running_server() as env:
            seller = await env.connect(transport, 1)
            buyer = await env.connect(transport, 2)
            ask = await seller.place(SERIES, Side.SELL, qty=10, price=1200)
            assert ask.order_id > 0 and ask.qty == 10
            mark = buyer.received
            bid = await buyer.place(SERIES, Side.BUY, qty=4, price=1250, tif=TimeInForce.IOC)
            fill = await buyer.wait_for(lambda m: isinstance(m, p.Fill), since=mark)
            assert (fill.order_id, fill.price, fill.qty, fill.liquidity) == (
                bid.order_id,
                1200,
                4,
                "taker",
            )
            maker = await seller.wait_for(lambda m: isinstance(m, p.Fill))
            assert (maker.order_id, maker.leaves_qty, maker.liquidity) == (ask.order_id, 6, "maker")
            assert maker.trade_id == fill.trade_id and maker.side is Side.SELL
            amended = await seller.amend(ask.order_id, qty=5)
            assert amended.priority_kept and amended.qty == 5
            opened = await seller.open_orders()
            assert [(o.order_id, o.qty) for o in opened.orders] == [(ask.order_id, 5)]
            cancelled = await seller.cancel(ask.order_id)
            assert cancelled.qty == 5 and cancelled.reason is CancelReason.USER
            assert cancelled.client_order_id == ask.client_order_id
            assert (await seller.open_orders()).orders == []

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_invalid_order_gets_the_engines_reason_and_is_not_journaled(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            with pytest.raises(RequestRejected) as e:
                await c.place(OTHER, Side.BUY, qty=1, price=1001)  # tick is 5
            assert e.value.reason is Reason.INVALID_PRICE
            with pytest.raises(RequestRejected) as e:
                await c.place("NOPE", Side.BUY, qty=1, price=1000)
            assert e.value.reason is Reason.UNKNOWN_SERIES
            assert env.journal.commands == []

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_another_accounts_order_is_unknown_to_cancel_and_amend(transport):
    async def body():
        async with running_server() as env:
            owner = await env.connect(transport, 1)
            thief = await env.connect(transport, 2)
            ack = await owner.place(SERIES, Side.BUY, qty=3, price=900)
            with pytest.raises(RequestRejected) as e:
                await thief.cancel(ack.order_id)
            assert e.value.reason is Reason.UNKNOWN_ORDER
            with pytest.raises(RequestRejected) as e:
                await thief.cancel(client_order_id=ack.client_order_id)
            assert e.value.reason is Reason.UNKNOWN_ORDER
            with pytest.raises(RequestRejected) as e:
                await thief.amend(ack.order_id, qty=1)
            assert e.value.reason is Reason.UNKNOWN_ORDER
            assert [o.order_id for o in (await owner.open_orders()).orders] == [ack.order_id]

    run(body)


def test_commands_carry_the_sessions_account_and_a_server_timestamp():
    async def body():
        async with running_server() as env:
            c = await env.tcp(3)
            before = time.time_ns()
            await c.place(SERIES, Side.BUY, qty=1, price=500)
            cmd = env.journal.commands[-1]
            assert cmd.account == 3 and cmd.ts >= before

    run(body)


def test_no_ack_is_sent_before_the_journal_flush_returns():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            env.journal.gate = asyncio.Event()
            env.journal.waiting.clear()
            task = asyncio.ensure_future(c.place(SERIES, Side.BUY, qty=1, price=500))
            await env.journal.waiting.wait()
            assert len(env.journal.commands) == 1  # applied and appended ...
            assert not task.done()  # ... but not acknowledged
            await asyncio.wait([task], timeout=0.05)
            assert not task.done()
            env.journal.gate.set()
            ack = await task
            assert ack.qty == 1

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mass_cancel_cancels_only_the_sessions_account(transport):
    async def body():
        async with running_server() as env:
            a = await env.connect(transport, 1)
            b = await env.connect(transport, 2)
            for price in (100, 101, 102):
                await a.place(SERIES, Side.BUY, qty=1, price=price)
            await b.place(SERIES, Side.BUY, qty=1, price=99)
            done = await a.mass_cancel()
            assert done.count == 3
            assert (await a.open_orders()).orders == []
            assert len((await b.open_orders()).orders) == 1

    run(body)


def test_series_list_describes_every_book():
    async def body():
        async with running_server() as env:
            c = await env.ws(1)
            listed = await c.series()
            assert {s.id for s in listed.series} == {SERIES, OTHER}
            assert {s.id: s.tick for s in listed.series}[OTHER] == 5

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_snapshot_and_increments_reproduce_the_book(transport):
    async def body():
        async with running_server() as env:
            maker = await env.tcp(1)
            taker = await env.tcp(2)
            await maker.place(SERIES, Side.SELL, qty=5, price=1010)  # before the snapshot
            watcher = await env.connect(transport, 3)
            books = await watcher.subscribe(SERIES)
            book = books[SERIES]
            assert book.synced and book.asks == {1010: 5}
            for i in range(20):
                await maker.place(SERIES, Side.SELL, qty=1 + i % 3, price=1011 + i % 4)
                await taker.place(SERIES, Side.BUY, qty=1 + i % 2, price=1000 + i % 5)
            await taker.place(SERIES, Side.BUY, qty=7, price=1012, tif=TimeInForce.IOC)
            trade = await watcher.wait_for(lambda m: isinstance(m, p.PublicTrade))
            assert trade.series == SERIES
            target = env.server.exchange.books[SERIES].seq
            await watcher.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.seq == target)
            assert book.seq == target and book.gaps == 0
            assert book.depth() == env.server.exchange.books[SERIES].depth()

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gap_in_sequence_numbers_brings_a_fresh_snapshot(transport):
    async def body():
        async with running_server() as env:
            maker = await env.connect(transport, 1)
            watcher = await env.connect(transport, 3)
            book = (await watcher.subscribe(SERIES))[SERIES]
            await maker.place(SERIES, Side.SELL, qty=5, price=1010)
            await watcher.wait_for(lambda m: isinstance(m, p.BookUpdate))
            book.seq -= 1  # pretend one update was lost
            mark = watcher.received
            await maker.place(SERIES, Side.SELL, qty=5, price=1020)
            await watcher.wait_for(lambda m: isinstance(m, p.BookSnapshot), since=mark)
            assert book.gaps == 1 and book.synced
            assert book.depth() == env.server.exchange.books[SERIES].depth()

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_on_disconnect_cancels_the_orders_that_session_entered(transport):
    async def body():
        async with running_server() as env:
            leaver = await env.connect(transport, 1, cancel_on_disconnect=True)
            sibling = await env.connect(transport, 1)  # the same account, another session
            stayer = await env.connect(transport, 2)
            keeper = await env.connect(transport, 3, cancel_on_disconnect=False)
            gone = await leaver.place(SERIES, Side.BUY, qty=2, price=700)
            await leaver.place(SERIES, Side.BUY, qty=1, price=701)
            await sibling.place(SERIES, Side.BUY, qty=3, price=690)
            await keeper.place(SERIES, Side.BUY, qty=2, price=650)
            await stayer.subscribe(SERIES)
            await leaver.close()
            await keeper.close()
            await env.server.wait_counter("cancel_on_disconnect", 1)
            update = await stayer.wait_for(
                lambda m: isinstance(m, p.BookUpdate) and m.price == 700 and m.qty == 0
            )
            assert update.series == SERIES
            await stayer.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.price == 701)
            assert stayer.books[SERIES].bids == {690: 3, 650: 2}
            report = await sibling.wait_for(
                lambda m: isinstance(m, p.Cancelled) and m.order_id == gone.order_id
            )
            assert report.client_order_id == gone.client_order_id
            left = await sibling.open_orders()
            assert [(o.price, o.qty) for o in left.orders] == [(690, 3)]

    run(body)


def test_cancel_on_disconnect_covers_a_partly_filled_order_a_sibling_amended():
    """What the session entered is what it cancels: partly filled since, or amended by
    another session of the account, the order is still the leaving session's."""

    async def body():
        async with running_server() as env:
            leaver = await env.tcp(1, cancel_on_disconnect=True)
            sibling = await env.tcp(1)
            seller = await env.tcp(2)
            order = await leaver.place(SERIES, Side.BUY, qty=5, price=700)
            await seller.place(SERIES, Side.SELL, qty=2, price=700)  # 3 t left open
            await sibling.amend(order.order_id, qty=2)  # down: keeps priority
            await leaver.close()
            await env.server.wait_counter("cancel_on_disconnect", 1)
            cancelled = await sibling.wait_for(
                lambda m: isinstance(m, p.Cancelled) and m.order_id == order.order_id
            )
            assert cancelled.qty == 2
            assert (await sibling.open_orders()).orders == []

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_projects_behind_the_series_are_listed_with_what_buyers_screen_on(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            listed = await c.projects()
            assert [pr.id for pr in listed.projects] == ["GS11236", "VCS1340"]
            (bale,) = (await c.projects("VCS1340")).projects
            # data/projects.csv: the Bale Mountains REDD+ project, Ethiopia, CCB label
            assert (bale.registry, bale.country, bale.mitigation, bale.basis) == (
                "VERRA",
                "ET",
                "avoidance",
                "nature",
            )
            assert bale.labels == ["CCB"] and bale.methodology == "VM0015"
            assert bale.name.startswith("Bale Mountains")
            with pytest.raises(RequestRejected) as e:
                await c.projects("VCS1340", "NOPE1")
            assert e.value.reason is Reason.UNKNOWN_PROJECT and "NOPE1" in e.value.text

    run(body)


def test_heartbeat_is_answered():
    async def body():
        async with running_server() as env:
            c = await env.tcp()
            hb = await c.heartbeat()
            assert hb.ts > 0

    run(body)


def test_settlement_requests_need_the_fund_permission():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            answer = await c.request(p.Deposit(currency="USD", amount=100, req_id=9))
            assert isinstance(answer, p.Reject) and answer.reason is Reason.NOT_PERMITTED

    run(body)


def test_a_subscribe_and_an_order_in_one_frame_leave_no_gap():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            c.books[SERIES] = book = LocalBook(SERIES)
            fut = c.order_future("same-frame")
            await c.send(
                p.Subscribe(series=[SERIES], req_id=77),
                p.NewOrder(
                    client_order_id="same-frame", series=SERIES, side=Side.BUY, qty=3, price=640
                ),
            )
            await fut
            await c.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.price == 640)
            assert book.synced and book.gaps == 0 and book.bids == {640: 3}

    run(body)


def test_the_protocol_reference_names_every_message_and_reason_code():
    from pathlib import Path

    from engine.events import CancelReason

    text = (Path(p.__file__).parent / "PROTOCOL.md").read_text()
    for union in (p.ClientMessage, p.ServerMessage):
        for kind in union.__args__:
            assert f"`{kind.__struct_config__.tag}`" in text, kind
            for field in kind.__struct_fields__:
                assert f"`{field}`" in text, (kind, field)
    for reason in Reason:
        assert f"| `{reason.value}` |" in text, reason
    for reason in CancelReason:
        assert f"`{reason.value}`" in text, reason


@pytest.mark.parametrize("where", ["append", "flush"])
def test_a_failing_journal_stops_the_server_without_acknowledging(where):
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            boom = OSError("disk gone")

            def failing_append(cmd, records):
                raise boom

            async def failing_flush():
                raise boom

            if where == "append":
                env.journal.append = failing_append
            else:
                env.journal.flush = failing_flush
            with pytest.raises(ConnectionLost):
                await c.place(SERIES, Side.BUY, qty=1, price=500)
            assert env.server.failed is boom
            assert not any(isinstance(m, p.OrderAck) for m in c.history)

    run(body)


def test_a_failure_while_releasing_answers_stops_the_server_rather_than_hang():
    """Once committed answers cannot all go out in order, the server stops serving: every
    session is closed and operator commands are refused, nobody waits forever."""

    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            (mine,) = [s for s in env.server.sessions if s.account == 1]
            boom = RuntimeError("a bug while writing")

            def broken_write_out():
                raise boom

            mine.write_out = broken_write_out
            with pytest.raises(ConnectionLost):
                await c.place(SERIES, Side.BUY, qty=1, price=500)
            assert env.server.failed is boom
            from settlement.commands import Deposit

            with pytest.raises(RuntimeError, match="has failed"):
                await env.server.operator(Deposit(account=1, currency="USD", amount=1))

    run(body)


def test_a_failure_while_releasing_a_batch_someone_awaits_wakes_them():
    """The batch whose release fails is the one its waiter (an operator command here; a
    back-pressured session in general) waits for: it wakes and hears of the failure."""
    from engine.commands import Halt

    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            await c.subscribe(SERIES)
            boom = RuntimeError("a bug while publishing")

            def broken_publish(series, msg, touched):
                raise boom

            env.server.md.publish = broken_publish
            with pytest.raises(RuntimeError, match="has failed"):
                await asyncio.wait_for(env.server.operator(Halt(series=SERIES)), 10)
            assert env.server.failed is boom
            with pytest.raises(RuntimeError, match="has failed"):  # refused, nothing applied
                await env.server.operator(Halt(series=SERIES))

    run(body)


def test_an_operator_halt_reaches_subscribers_and_the_book_accepts_cancels_only():
    from engine.commands import Halt, Resume

    async def body():
        async with running_server() as env:
            c = await env.ws(1)
            ack = await c.place(SERIES, Side.BUY, qty=1, price=500)
            await c.subscribe(SERIES)
            await env.server.operator(Halt(series=SERIES))
            status = await c.wait_for(lambda m: isinstance(m, p.SeriesStatus))
            assert status.halted and status.series == SERIES
            with pytest.raises(RequestRejected) as e:
                await c.place(SERIES, Side.BUY, qty=1, price=501)
            assert e.value.reason is Reason.SERIES_HALTED
            assert (await c.cancel(ack.order_id)).qty == 1
            await env.server.operator(Resume(series=SERIES))
            await c.wait_for(lambda m: isinstance(m, p.SeriesStatus) and not m.halted)
            assert (await c.place(SERIES, Side.BUY, qty=1, price=501)).qty == 1

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gtd_order_expires_and_its_owner_is_told(transport):
    clock = ManualClock()

    async def body():
        async with running_server(clock=clock) as env:
            c = await env.connect(transport, 1)
            other = await env.connect(transport, 2)
            ack = await c.place(
                SERIES,
                Side.BUY,
                qty=2,
                price=400,
                tif=TimeInForce.GTD,
                expire_ts=clock.now + 10**9,
            )
            clock.now += 2 * 10**9  # time moves, and its timer has not fired yet:
            # the next command stamped after expire_ts sweeps it out of the book
            await other.place(SERIES, Side.BUY, qty=1, price=300)
            expired = await c.wait_for(lambda m: isinstance(m, p.Expired))
            assert (expired.order_id, expired.qty) == (ack.order_id, 2)
            assert expired.client_order_id == ack.client_order_id

    run(body)


def test_every_session_of_an_account_hears_its_fills_but_only_the_sender_its_rejects():
    async def body():
        async with running_server() as env:
            desk = await env.tcp(1)
            monitor = await env.ws(1)
            other = await env.tcp(2)
            ack = await desk.place(SERIES, Side.SELL, qty=2, price=800)
            await other.place(SERIES, Side.BUY, qty=2, price=800)
            for c in (desk, monitor):
                fill = await c.wait_for(lambda m: isinstance(m, p.Fill))
                assert fill.order_id == ack.order_id and fill.leaves_qty == 0
            with pytest.raises(RequestRejected):
                await desk.cancel(ack.order_id)
            await monitor.heartbeat()  # anything for the monitor has arrived by now
            assert not any(isinstance(m, p.Reject) for m in monitor.history)

    run(body)
