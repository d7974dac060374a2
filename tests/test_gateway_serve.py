"""`tonne serve` end to end: the real store in a temporary folder, provisioned keys, a
restart that recovers what was acknowledged."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_gateway_harness import run

from engine.commands import Side
from gateway.cli.accounts import add_key
from gateway.cli.serve import serve
from gateway.client.client import Client
from gateway.wire import protocol as p
from settlement.build import compiled


async def _serving(data_dir, stop: asyncio.Event) -> tuple[asyncio.Task, dict]:
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(
        serve(data_dir, tcp_port=0, ws_port=0, ready=ready.set_result, stop=stop)
    )
    done, _ = await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    assert ready in done, task.result()
    return task, ready.result()


def test_an_acknowledged_order_survives_a_restart(tmp_path):
    account, key_id, secret = add_key(tmp_path, permissions=frozenset({"trade", "fund"}))

    async def body():
        stop = asyncio.Event()
        task, info = await _serving(tmp_path, stop)
        assert info["accounts_opened"] == 1
        assert info["compiled"] is compiled()  # which build of the core serves
        c = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
        await c.logon(key_id, secret)
        listed = await c.series()
        series = listed.series[0]
        await c.request(p.Deposit(currency=series.currency, amount=10**7, req_id=1))
        price = series.band_low + series.tick * 3
        price -= price % series.tick
        ack = await c.place(series.id, Side.BUY, qty=2, price=price)
        await c.close()
        stop.set()
        assert await task == 0

        stop = asyncio.Event()
        task, info = await _serving(tmp_path, stop)
        assert info["accounts_opened"] == 0 and info["seq"] >= 3
        w = await Client.connect_ws(f"ws://127.0.0.1:{info['ws_port']}")
        await w.logon(key_id, secret)
        orders = (await w.open_orders()).orders
        assert [(o.order_id, o.qty, o.price) for o in orders] == [(ack.order_id, 2, price)]
        await w.close()
        stop.set()
        assert await task == 0

    run(body, 40)


def test_a_gtd_order_expires_on_time_in_a_quiet_market_and_replay_reproduces_it(tmp_path):
    """The real clock, a short expiry and nothing else sent: the owner gets `expired`, the
    order leaves open_orders and the L2 book; the journal holds the one `AdvanceTime`, and a
    replay from genesis and a restart reproduce it."""
    from engine.commands import AdvanceTime, TimeInForce
    from gateway.durability.recovery import recover
    from gateway.durability.store import SQLiteStore
    from settlement.commands import decode_command

    account, key_id, secret = add_key(tmp_path, permissions=frozenset({"trade", "fund"}))

    async def body():
        stop = asyncio.Event()
        task, info = await _serving(tmp_path, stop)
        c = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
        await c.logon(key_id, secret)
        series = (await c.series()).series[0]
        await c.request(p.Deposit(currency=series.currency, amount=10**7, req_id=1))
        books = await c.subscribe(series.id)
        price = series.band_low + series.tick * 3
        price -= price % series.tick
        expire_ts = time.time_ns() + 200_000_000  # 0.2 s ahead
        ack = await c.place(
            series.id, Side.BUY, qty=2, price=price, tif=TimeInForce.GTD, expire_ts=expire_ts
        )
        expired = await c.wait_for(lambda m: isinstance(m, p.Expired), timeout_s=10)
        assert (expired.order_id, expired.qty) == (ack.order_id, 2) and expired.ts >= expire_ts
        await c.wait_for(lambda m: isinstance(m, p.BookUpdate) and m.qty == 0, timeout_s=5)
        assert books[series.id].depth() == ([], [])
        assert (await c.open_orders()).orders == []
        await c.close()
        stop.set()
        assert await task == 0

        store = SQLiteStore(tmp_path)
        try:
            cmds = [decode_command(row.cmd) for row in store.commands()]
            assert [type(x) for x in cmds].count(AdvanceTime) == 1
            (advance,) = [x for x in cmds if isinstance(x, AdvanceTime)]
            assert advance.ts == expired.ts and cmds[-1] is advance
            replayed = recover(store, use_snapshots=False)
            assert replayed.core.exchange.open_orders == {}
            assert replayed.state_hash == recover(store).state_hash
        finally:
            store.close()

        stop = asyncio.Event()
        task, info = await _serving(tmp_path, stop)
        assert info["state_hash"] == replayed.state_hash
        w = await Client.connect_ws(f"ws://127.0.0.1:{info['ws_port']}")
        await w.logon(key_id, secret)
        assert (await w.open_orders()).orders == []
        await w.close()
        stop.set()
        assert await task == 0

    run(body, 40)


def test_the_group_commit_bounds_are_set_from_the_command_line(tmp_path):
    from gateway.cli.serve import JournalSettings, running

    async def body():
        settings = JournalSettings(batch_max=7, window_s=0.002, snapshot_every=50)
        async with running(tmp_path, tcp_port=0, ws_port=0, journaling=settings) as ex:
            assert (ex.journal.batch_max, ex.journal.window_s, ex.journal.snapshot_every) == (
                7,
                0.002,
                50,
            )

    run(body)


def test_the_journal_commits_in_a_writer_process_unless_told_a_thread(tmp_path):
    from gateway.cli.serve import JournalSettings, running

    async def body():
        async with running(tmp_path, tcp_port=0, ws_port=0) as ex:
            assert ex.journal._process is not None and ex.journal._process.pid
            c = await Client.connect_tcp("127.0.0.1", ex.server.tcp_port)
            await c.heartbeat()
            await c.close()
        thread = JournalSettings(writer_process=False)
        async with running(tmp_path, tcp_port=0, ws_port=0, journaling=thread) as ex:
            assert ex.journal._process is None and ex.journal._thread is not None

    run(body)


def test_out_of_range_group_commit_bounds_are_refused_with_a_message(tmp_path, capsys):
    import pytest

    from gateway.cli.serve import main

    for argv in (
        ["--batch-max", "0"],
        ["--window-ms", "5000"],
        ["--reads-in-flight-max", "0"],
        ["--inbox-frames-max", "0"],
        ["--logon-failures-max", "0"],
        ["--slow-consumer-linger-s", "-1"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["--data", str(tmp_path), *argv])
        assert exit_info.value.code == 2
        assert "must be" in capsys.readouterr().err


def test_the_serving_gc_policy_is_applied_for_a_while_and_undone():
    import gc

    from gateway.server.gcpolicy import YOUNG, serving

    before = gc.get_threshold()
    with serving():
        assert gc.get_threshold()[0] == YOUNG
        assert gc.get_freeze_count() > 0  # what existed is frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_serve_refuses_a_bad_key_file_before_starting_anything(tmp_path, capsys):
    """A key file it cannot read stops `tonne serve` with a message, before the journal's
    writer process or the ports exist."""
    import multiprocessing

    (tmp_path / "accounts.json").write_text('{"version": 1, "keys": []}')

    async def body():
        before = set(multiprocessing.active_children())
        code = await serve(tmp_path, tcp_port=0, ws_port=0, ready=lambda info: None)
        assert code == 1
        assert set(multiprocessing.active_children()) == before  # no writer left behind

    run(body)
    err = capsys.readouterr().err
    assert "refusing to start" in err and "accounts.json" in err


def test_the_session_limits_and_the_journal_writer_are_read_from_the_command_line():
    import argparse

    from gateway.cli.serve import limits_arguments, limits_from

    parser = argparse.ArgumentParser()
    limits_arguments(parser)
    limits = limits_from(
        parser.parse_args(["--reads-in-flight-max", "3", "--inbox-frames-max", "17"])
    )
    assert (limits.reads_in_flight_max, limits.inbox_frames_max) == (3, 17)


def test_a_journal_writer_process_needs_a_store_with_a_path():
    import pytest

    from gateway.durability.journal import Journal

    class NoPath:
        pass

    with pytest.raises(ValueError, match="path"):
        Journal(NoPath(), writer_process=True)  # type: ignore[arg-type]


def test_a_running_server_sees_keys_added_and_revoked_without_a_restart(tmp_path):
    """The operator provisions and revokes keys with `tonne accounts` while `tonne serve`
    runs: a new key (of a new account) can log on and trade within a check, and the
    sessions of a revoked key end with `goodbye` KEY_REVOKED; it cannot log on again."""
    from engine.events import Reason
    from gateway.cli.accounts import revoke_key
    from gateway.cli.serve import running
    from gateway.client.client import ConnectionLost, LogonFailed

    _, old_key, old_secret = add_key(tmp_path)

    async def body():
        async with running(tmp_path, tcp_port=0, ws_port=0, keys_check_s=0.02) as ex:
            port = ex.server.tcp_port
            old = await Client.connect_tcp("127.0.0.1", port)
            await old.logon(old_key, old_secret)
            account, new_key, new_secret = add_key(tmp_path)  # while it runs
            revoke_key(tmp_path, old_key)
            bye = await old.wait_for(lambda m: isinstance(m, p.Goodbye), timeout_s=5)
            assert bye.reason is Reason.KEY_REVOKED
            with pytest.raises(ConnectionLost):
                await old.heartbeat()
            await old.close()
            again = await Client.connect_tcp("127.0.0.1", port)
            with pytest.raises(LogonFailed) as refused:
                await again.logon(old_key, old_secret)
            assert refused.value.reason is Reason.UNKNOWN_KEY
            await again.close()
            new = await Client.connect_tcp("127.0.0.1", port)
            ack = await new.logon(new_key, new_secret)
            assert ack.account == account
            assert (await new.balances()).account == account  # its account was opened
            await new.close()
            assert ex.server.counters["keys_reloaded"] >= 1

    run(body)


def test_a_key_file_that_cannot_be_read_keeps_the_keys_in_use(tmp_path):
    from gateway.cli.serve import running

    _, key_id, secret = add_key(tmp_path)

    async def body():
        async with running(tmp_path, tcp_port=0, ws_port=0, keys_check_s=0.02) as ex:
            (tmp_path / "accounts.json").write_text("{not json")
            await ex.server.wait_counter("key_reload_failed", 1, timeout_s=5)
            c = await Client.connect_tcp("127.0.0.1", ex.server.tcp_port)
            await c.logon(key_id, secret)  # the keys loaded before still hold
            await c.close()

    run(body)


def test_a_key_file_moved_away_for_a_moment_ends_no_session(tmp_path):
    """A reload that finds no key file (moved, being restored) keeps the keys in use: it is
    not read as "every key revoked"."""
    from gateway.cli.serve import running

    _, key_id, secret = add_key(tmp_path)

    async def body():
        async with running(tmp_path, tcp_port=0, ws_port=0, keys_check_s=0.02) as ex:
            c = await Client.connect_tcp("127.0.0.1", ex.server.tcp_port)
            await c.logon(key_id, secret)
            (tmp_path / "accounts.json").rename(tmp_path / "accounts.json.moved")
            await ex.server.wait_counter("key_reload_failed", 1, timeout_s=5)
            await c.heartbeat()  # still logged on
            assert not any(isinstance(m, p.Goodbye) for m in c.history)
            (tmp_path / "accounts.json.moved").rename(tmp_path / "accounts.json")
            other = await Client.connect_tcp("127.0.0.1", ex.server.tcp_port)
            await other.logon(key_id, secret)
            await other.close()
            await c.close()

    run(body)


def test_a_core_that_fails_stops_the_server_and_is_never_snapshotted(tmp_path, monkeypatch, capsys):
    """A broken invariant in the core fails the server: every session closes, `tonne serve`
    exits 1 by itself (no client can log on to a server that no longer serves) and writes no
    snapshot on the way out, so the next start replays the journal instead of restoring a
    half-applied state."""
    from gateway.durability.store import SQLiteStore
    from settlement.core import Core

    account, key_id, secret = add_key(tmp_path, permissions=frozenset({"trade", "fund"}))

    async def body():
        stop = asyncio.Event()
        task, info = await _serving(tmp_path, stop)
        c = await Client.connect_tcp("127.0.0.1", info["tcp_port"])
        await c.logon(key_id, secret)
        await c.request(p.Deposit(currency="USD", amount=10**7, req_id=1))
        with SQLiteStore(tmp_path, readonly=True) as store:
            before = [s.seq for s in store.snapshots()]
        real = Core.apply

        def broken(self, cmd):  # the core breaks on the next order
            if type(cmd).__name__ == "NewOrder":
                raise AssertionError("an invariant broke")
            return real(self, cmd)

        monkeypatch.setattr(Core, "apply", broken)
        series = (await c.series()).series[0]
        await c.send(
            p.NewOrder(client_order_id="x", series=series.id, side="buy", qty=1, price=series.tick)
        )
        assert await asyncio.wait_for(task, 20) == 1  # it stopped by itself
        await c.close()
        with SQLiteStore(tmp_path, readonly=True) as store:
            assert [s.seq for s in store.snapshots()] == before
        with pytest.raises(OSError):
            await Client.connect_tcp("127.0.0.1", info["tcp_port"])

    run(body, 40)
    assert "the core or journal failed" in capsys.readouterr().err
