"""Every start checks both chains from genesis: tampering anywhere refuses it, naming the record.

One small data folder (the real core, journal and store, snapshots every 100 commands), and
for each kind of tampering (one byte changed, a row deleted, two rows swapped, the last row
deleted), in the journal and in the settlement log, before and after the newest snapshot:
`tonne log verify`, `tonne recover --check`, `tonne recover --check --full` and the start of
`tonne serve` (the in-process path its command runs; a few cases as the real command too)
must all refuse and name the record. Log rows are rewritten with checksums that hold, so only
the chain can tell.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys

import msgspec
import pytest

from bench.funding import funding_commands
from bench.workload import generate
from engine.commands import NewOrder
from gateway.cli import logcmd, recover, serve
from gateway.durability.journal import Journal
from gateway.durability.recovery import save_genesis
from gateway.durability.store import SQLiteStore, db_path, log_crc
from settlement.commands import Retire
from settlement.core import Core

TIMEOUT_S = 10.0
COMMANDS = 300
SNAPSHOT_EVERY = 100
SERVE_TIMEOUT_S = 60.0  # a real `tonne serve` that refuses exits well within this


def _resting_order(core: Core, workload, ts: int) -> NewOrder | None:
    """A new passive order that rests without a fill: the final command, so that deleting
    it leaves no settlement record behind."""
    for cmd in workload.commands:
        if isinstance(cmd, NewOrder):
            probe = msgspec.structs.replace(
                cmd, client_order_id=f"last-{cmd.client_order_id}", ts=ts
            )
            if probe.qty and probe.price:
                return probe
    return None


def _build(folder) -> dict[str, int]:
    """The folder, and where its newest snapshot and its ends are."""
    workload = generate(COMMANDS, seed=5)
    setup = list(funding_commands(workload.series, 20, ts=workload.commands[0].ts - 1))
    end_ts = workload.commands[-1].ts
    retire = Retire(
        account=1,
        beneficiary="Acme Ltd",
        period_start="2025-01-01",
        period_end="2025-12-31",
        series=workload.series[0].id,
        qty=3,
        ts=end_ts + 1,
    )
    core = Core(series=workload.series)

    async def main() -> None:
        store = SQLiteStore(folder)
        save_genesis(store, series=workload.series)
        journal = Journal(store, core=core, snapshot_every=SNAPSHOT_EVERY, snapshot_fork=False)
        for cmd in [*setup, *workload.commands, retire]:
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
            await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        ts = end_ts + 2
        while True:  # a final command that leaves no settlement record
            last = _resting_order(core, workload, ts)
            assert last is not None
            core.apply(last)
            records = core.drain_records()
            journal.append(last, records)
            ts += 1
            if not records:
                break
        await journal.close()
        store.close()

    asyncio.run(main())
    with SQLiteStore(folder, readonly=True) as store:
        head, newest = store.head(), store.snapshots()[0]
    assert newest.seq < head.seq - 3 and newest.log_seq < head.log_seq - 3
    return {
        "seq": head.seq,
        "log_seq": head.log_seq,
        "snap_seq": newest.seq,
        "snap_log_seq": newest.log_seq,
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine")
    return path, _build(path)


def _copy(src, dst) -> None:
    with sqlite3.connect(db_path(src)) as a, sqlite3.connect(db_path(dst)) as b:
        a.backup(b)
    a.close()
    b.close()


def _flip(data: bytes) -> bytes:
    at = len(data) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _tamper_journal(db: sqlite3.Connection, kind: str, seq: int) -> None:
    if kind == "byte":
        (cmd,) = db.execute("SELECT cmd FROM journal WHERE seq = ?", (seq,)).fetchone()
        db.execute("UPDATE journal SET cmd = ? WHERE seq = ?", (_flip(cmd), seq))
    elif kind in ("delete", "last"):
        db.execute("DELETE FROM journal WHERE seq = ?", (seq,))
    else:
        cols = "ts, log_seq, cmd, hash"
        a = db.execute(f"SELECT {cols} FROM journal WHERE seq = ?", (seq,)).fetchone()
        b = db.execute(f"SELECT {cols} FROM journal WHERE seq = ?", (seq + 1,)).fetchone()
        for at, row in ((seq, b), (seq + 1, a)):
            db.execute(
                "UPDATE journal SET ts = ?, log_seq = ?, cmd = ?, hash = ? WHERE seq = ?",
                (*row, at),
            )


def _tamper_log(db: sqlite3.Connection, kind: str, seq: int) -> None:
    """Rewrite log rows with row checksums that hold for their new content and place."""
    if kind == "byte":
        record, hash_hex = db.execute(
            "SELECT record, hash FROM log WHERE seq = ?", (seq,)
        ).fetchone()
        forged = _flip(record)
        db.execute(
            "UPDATE log SET record = ?, crc = ? WHERE seq = ?",
            (forged, log_crc(seq, forged, hash_hex), seq),
        )
    elif kind in ("delete", "last"):
        db.execute("DELETE FROM log WHERE seq = ?", (seq,))
    else:
        a = db.execute("SELECT record, hash FROM log WHERE seq = ?", (seq,)).fetchone()
        b = db.execute("SELECT record, hash FROM log WHERE seq = ?", (seq + 1,)).fetchone()
        for at, (record, hash_hex) in ((seq, b), (seq + 1, a)):
            db.execute(
                "UPDATE log SET record = ?, hash = ?, crc = ? WHERE seq = ?",
                (record, hash_hex, log_crc(at, record, hash_hex), at),
            )


CASES = [
    (table, kind, where)
    for table in ("journal", "log")
    for kind in ("byte", "delete", "swap")
    for where in ("before", "after")
] + [("journal", "last", "end"), ("log", "last", "end")]


def _target(spots: dict[str, int], table: str, kind: str, where: str) -> int:
    """Which record: well before the newest snapshot (and the older ones), just after it, or
    the very last one."""
    if table == "journal":
        return {"before": 40, "after": spots["snap_seq"] + 1, "end": spots["seq"]}[where]
    return {"before": 30, "after": spots["snap_log_seq"] + 1, "end": spots["log_seq"]}[where]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def tampered(request, pristine, tmp_path):
    src, spots = pristine
    table, kind, where = request.param
    seq = _target(spots, table, kind, where)
    _copy(src, tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:
        (_tamper_journal if table == "journal" else _tamper_log)(db, kind, seq)
    db.close()
    name = "journal record" if table == "journal" else "settlement log record"
    return tmp_path, f"{name} seq {seq}"


def test_the_pristine_folder_passes_every_check(pristine, tmp_path, capsys):
    src, spots = pristine
    _copy(src, tmp_path)
    assert logcmd.main(["verify", "--data", str(tmp_path)]) == 0
    assert recover.main(["--check", str(tmp_path), "--full"]) == 0
    out = capsys.readouterr().out
    assert f"journal {spots['seq']} commands, {spots['log_seq']} records linked" in out


def test_log_verify_refuses_tampering_and_names_the_record(tampered, capsys):
    folder, name = tampered
    assert logcmd.main(["verify", "--data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and name in out, out


@pytest.mark.parametrize("full", [False, True], ids=["check", "check-full"])
def test_recover_check_refuses_tampering_and_names_the_record(tampered, full, capsys):
    folder, name = tampered
    code = recover.main(["--check", str(folder), *(["--full"] if full else [])])
    out = capsys.readouterr().out
    assert code == 1 and "REFUSE" in out and name in out, out


def test_serve_refuses_to_start_on_tampering_and_names_the_record(tampered, capsys):
    """The start path of `tonne serve` (serve.serve, what its main runs), in this process."""
    folder, name = tampered
    stop = asyncio.Event()
    code = asyncio.run(
        serve.serve(folder, tcp_port=0, ws_port=0, ready=lambda info: stop.set(), stop=stop)
    )
    err = capsys.readouterr().err
    assert code == 1 and "refusing to start" in err and name in err, err


@pytest.mark.parametrize(
    "case", [("journal", "byte", "before"), ("log", "last", "end"), ("journal", "last", "end")]
)
def test_the_real_serve_command_refuses_tampering_and_names_the_record(case, pristine, tmp_path):
    src, spots = pristine
    table, kind, where = case
    seq = _target(spots, table, kind, where)
    _copy(src, tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:
        (_tamper_journal if table == "journal" else _tamper_log)(db, kind, seq)
    db.close()
    argv = ["serve", "--data", str(tmp_path), "--tcp-port", "0", "--ws-port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT_S,
    )
    name = "journal record" if table == "journal" else "settlement log record"
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{name} seq {seq}" in done.stderr and "refusing to start" in done.stderr
