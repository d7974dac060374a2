"""Operators' commands on a real data folder written through the journal by the real core:
`tonne log tail [-f]`, `tonne log verify`, `tonne recover --check`; and the command feed."""

from __future__ import annotations

import asyncio
import io
import select
import signal
import sqlite3
import subprocess
import sys
import threading

import msgspec
import pytest

from bench.funding import funding_commands
from bench.workload import generate
from gateway.cli import logcmd, recover
from gateway.cli import main as cli
from gateway.durability.journal import Journal, SettlementCodec
from gateway.durability.recovery import recover as recover_store
from gateway.durability.recovery import save_genesis
from gateway.durability.store import SQLiteStore, db_path, log_crc
from settlement.commands import Retire
from settlement.core import Core
from settlement.log import decode_record, encode_record, format_record
from tests.crash_harness import FeedClient, FeedProcess

TIMEOUT_S = 10.0
COMMANDS = 1_500


def _build(folder, *, commands: int = COMMANDS, snapshot_every: int = 400) -> Core:
    """A data folder with the standard workload journaled (and snapshotted) by the real core."""
    workload = generate(commands, seed=3)
    setup = list(funding_commands(workload.series, 50, ts=workload.commands[0].ts - 1))
    retire = Retire(
        account=1,
        beneficiary="Acme Ltd",
        period_start="2025-01-01",
        period_end="2025-12-31",
        series=workload.series[0].id,
        qty=7,
        ts=workload.commands[-1].ts + 1,
    )
    core = Core(series=workload.series)

    async def main() -> None:
        store = SQLiteStore(folder)
        save_genesis(store, series=workload.series)
        # Inline snapshots, so that where they fall does not depend on timing (the crash
        # test covers the forked ones).
        journal = Journal(store, core=core, snapshot_every=snapshot_every, snapshot_fork=False)
        for cmd in [*setup, *workload.commands, retire]:
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
            if journal.backlog >= 100:
                await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        await journal.close()
        store.close()

    asyncio.run(main())
    return core


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    core = _build(path)
    return path, core.state_hash()


def _run(main, argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def test_log_verify_passes_and_prints_the_state_hash(folder, capsys):
    path, state_hash = folder
    code, out = _run(cli.main, ["log", "verify", "--data", str(path)], capsys)
    assert code == 0
    assert out.startswith("OK ") and out.count("\n") == 1
    assert f"state hash {state_hash}" in out


def test_log_tail_prints_one_readable_line_per_record(folder, capsys):
    path, _ = folder
    code, out = _run(logcmd.main, ["tail", "-n", "5", "--data", str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    with SQLiteStore(path, readonly=True) as store:
        head = store.head()
        last = decode_record(list(store.records(head.log_seq - 1))[0].record)
    assert lines[-1] == format_record(last)
    assert "retirement" in lines[-1] and "Acme Ltd" in lines[-1]
    code, out = _run(
        logcmd.main, ["tail", "--after", str(head.log_seq - 3), "--data", str(path)], capsys
    )
    assert code == 0 and out.splitlines() == lines[-3:]


def test_log_tail_follow_prints_records_as_they_are_committed(tmp_path):
    _build(tmp_path, commands=200, snapshot_every=10_000)
    seen = threading.Event()
    lines: list[str] = []

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            lines.extend(text.splitlines())
            if any("Late Ltd" in line for line in lines):
                seen.set()
            return len(text)

    stop = threading.Event()
    with SQLiteStore(tmp_path, readonly=True) as reader:
        tailer = threading.Thread(
            target=logcmd.tail,
            args=(reader, Out()),
            kwargs={"follow": True, "poll_s": 0.01, "stop": stop.is_set},
        )
        tailer.start()
        try:
            with SQLiteStore(tmp_path) as store:  # a later writer (a restarted server)
                got = recover_store(store)
                journal_cmd = Retire(
                    account=2,
                    beneficiary="Late Ltd",
                    period_start="2025-01-01",
                    period_end="2025-12-31",
                    series="VCS-1340-2020",
                    qty=3,
                    ts=2 * 10**18,
                )

                async def append() -> None:
                    journal = Journal(
                        store, seq=got.seq, log_seq=got.log_seq, log_head=got.log_head
                    )
                    got.core.apply(journal_cmd)
                    journal.append(journal_cmd, got.core.drain_records())
                    await asyncio.wait_for(journal.flush(), TIMEOUT_S)
                    await journal.close()

                asyncio.run(append())
            assert seen.wait(TIMEOUT_S), "tail -f did not print the new record"
        finally:
            stop.set()
            tailer.join(TIMEOUT_S)
    assert not tailer.is_alive()


def test_tonne_log_tail_follow_runs_until_interrupted(folder):
    path, _ = folder
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "log", "tail", "-f", "-n", "2"]
        + ["--data", str(path), "--poll-s", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT_S)
        assert ready, "no output from tail -f"
        assert "retirement" in proc.stdout.readline() + proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err


def test_tonne_log_tail_into_a_reader_that_stops_early_ends_quietly(folder):
    """`tonne log tail | head -1`: the reader closes the pipe; tonne stops with no traceback."""
    path, _ = folder
    tail = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "log", "tail", "--data", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tail.stdout is not None and tail.stderr is not None
    first = tail.stdout.readline()
    tail.stdout.close()  # what `head -1` does after its line
    err = tail.stderr.read().decode()
    tail.stderr.close()
    assert tail.wait(30) == 0, err
    assert first and "Traceback" not in err and "BrokenPipe" not in err


def test_recover_check_reports_snapshot_replay_and_hashes(folder, capsys):
    path, state_hash = folder
    code, out = _run(cli.main, ["recover", "--check", str(path), "--full"], capsys)
    assert code == 0, out
    assert "snapshot used   seq " in out
    assert f"state hash      {state_hash}" in out
    assert "full replay" in out and "matches" in out
    assert "invariants      hold" in out


def _copy(src, dst):
    with sqlite3.connect(db_path(src)) as a, sqlite3.connect(db_path(dst)) as b:
        a.backup(b)
    a.close()
    b.close()


def test_recover_sets_a_corrupt_snapshot_aside_and_uses_an_older_one(folder, tmp_path, capsys):
    path, state_hash = folder
    _copy(path, tmp_path)
    with SQLiteStore(tmp_path, readonly=True) as store:
        newest, older = store.snapshots()[:2]
    with sqlite3.connect(db_path(tmp_path)) as db:
        db.execute("UPDATE snapshot SET data = X'00' || data WHERE seq = ?", (newest.seq,))
    db.close()
    code, out = _run(recover.main, ["--check", str(tmp_path)], capsys)
    assert code == 0, out
    assert f"set aside       snapshot seq {newest.seq}: corrupt" in out
    assert f"snapshot used   seq {older.seq}" in out
    assert f"state hash      {state_hash}" in out


def test_log_verify_fails_naming_the_first_bad_record(folder, tmp_path, capsys):
    path, _ = folder
    _copy(path, tmp_path)
    with SQLiteStore(tmp_path) as store:  # a forged record whose row checksum still holds
        row = next(store.records(99))
        record = decode_record(row.record)
        forged = msgspec.structs.replace(record, ts=record.ts + 1)
        data = encode_record(forged)
        store._db.execute(
            "UPDATE log SET record = ?, crc = ? WHERE seq = 100",
            (data, log_crc(100, data, row.hash)),
        )
    code, out = _run(logcmd.main, ["verify", "--data", str(tmp_path)], capsys)
    assert code == 1
    assert out.startswith("FAIL") and "settlement log record seq 100 is corrupt" in out


def test_log_verify_fails_when_a_record_is_dropped(folder, tmp_path, capsys):
    path, _ = folder
    _copy(path, tmp_path)
    with SQLiteStore(tmp_path) as store:
        store._db.execute("DELETE FROM log WHERE seq = 100")
    code, out = _run(logcmd.main, ["verify", "--data", str(tmp_path)], capsys)
    assert code == 1
    assert out.startswith("FAIL") and "settlement log record seq 100 is missing" in out


def test_log_verify_fails_when_two_records_are_swapped_with_valid_checksums(
    folder, tmp_path, capsys
):
    """Reordering is caught by the chain itself, not only by the row checksums: the rows are
    rewritten with checksums that hold for their new places."""
    path, _ = folder
    _copy(path, tmp_path)
    with SQLiteStore(tmp_path) as store:
        a, b = next(store.records(99)), next(store.records(100))
        for seq, row in ((100, b), (101, a)):
            store._db.execute(
                "UPDATE log SET record = ?, hash = ?, crc = ? WHERE seq = ?",
                (row.record, row.hash, log_crc(seq, row.record, row.hash), seq),
            )
    code, out = _run(logcmd.main, ["verify", "--data", str(tmp_path)], capsys)
    assert code == 1
    assert out.startswith("FAIL") and "settlement log record seq 100 is corrupt" in out
    assert "does not follow record 99" in out


def test_log_verify_and_recover_name_a_corrupt_journal_record(folder, tmp_path, capsys):
    path, _ = folder
    _copy(path, tmp_path)
    with SQLiteStore(tmp_path, readonly=True) as store:
        last = store.snapshots()[0].seq + 1  # a record the recovery must replay
        assert last <= store.head().seq
    with sqlite3.connect(db_path(tmp_path)) as db:
        db.execute("UPDATE journal SET ts = ts + 1 WHERE seq = ?", (last,))
    db.close()
    code, out = _run(recover.main, ["--check", str(tmp_path)], capsys)
    assert code == 1
    assert f"journal record seq {last} is corrupt" in out and "REFUSE" in out
    code, out = _run(logcmd.main, ["verify", "--data", str(tmp_path)], capsys)
    assert code == 1 and f"journal record seq {last}" in out


def test_the_operator_commands_say_when_there_is_no_store(tmp_path, capsys):
    assert logcmd.main(["verify", "--data", str(tmp_path / "none")]) == 2
    assert recover.main(["--check", str(tmp_path / "none")]) == 2
    assert "no store at" in capsys.readouterr().err


# -- the command feed -------------------------------------------------------------------------


def test_the_feed_answers_after_commit_and_restarts_where_it_stopped(tmp_path):
    workload = generate(300, seed=4)
    with SQLiteStore(tmp_path) as store:
        save_genesis(store, series=workload.series)
    setup = list(funding_commands(workload.series, 50, ts=0))
    codec = SettlementCodec()

    async def session(feed: FeedProcess, commands) -> tuple[list, list]:
        info = await feed.start()
        client = FeedClient()
        await client.connect(info["port"])
        answers = []
        try:
            for cmd in commands:
                client.send(codec.encode_command(msgspec.structs.replace(cmd, ts=0)))
                answers.append(await client.answer())
            client.send(b"\x00")  # does not decode: an error answer, nothing applied
            bad = await client.answer()
            client.send("hash")
            hashed = await client.answer()
        finally:
            await client.close()
            await feed.stop()  # SIGTERM: commit, final snapshot, exit 0
        assert feed.proc is None
        return answers, [bad, hashed, info]

    async def main() -> None:
        answers, (bad, hashed, info) = await session(FeedProcess(tmp_path), setup)
        assert info["seq"] == 0
        assert [a[1] for a in answers] == list(range(1, len(setup) + 1))
        assert bad[1] == 0 and "bad request" in bad[2]
        seq, state_hash = hashed[1], hashed[2]
        assert seq == len(setup)
        answers, (_, hashed, info) = await session(FeedProcess(tmp_path), workload.commands[:50])
        assert (info["seq"], info["state_hash"]) == (seq, state_hash)
        assert "from snapshot at seq" in info["recovery"]  # the clean stop wrote one
        assert answers[0][1] == seq + 1

    asyncio.run(main())
