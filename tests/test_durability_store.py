"""The SQLite store on its own: WAL + synchronous=FULL, batches in one transaction, checksums
that catch an edited row and name it, snapshots newest first, pruning, reference data."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.store import (
    Batch,
    CorruptRecord,
    Head,
    JournalRow,
    LogRow,
    Snapshot,
    SnapshotInfo,
    SQLiteStore,
    StoreError,
    db_path,
)


def _batch(first: int, n: int, snapshot: Snapshot | None = None) -> Batch:
    cmds = [JournalRow(s, 1000 + s, b"cmd%d" % s) for s in range(first, first + n)]
    recs = [LogRow(s, b"rec%d" % s, f"h{s}") for s in range(first, first + n)]
    return Batch(cmds, recs, snapshot)


def _edit(tmp_path, sql: str, *args: object) -> None:
    with sqlite3.connect(db_path(tmp_path)) as db:
        db.execute(sql, args)
    db.close()


def test_the_store_uses_wal_and_full_sync(tmp_path):
    with SQLiteStore(tmp_path) as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_batch_is_one_transaction_and_reads_back_in_order(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
        store.write(_batch(6, 3))
        assert store.transactions == 2
        assert [r.seq for r in store.commands()] == list(range(1, 9))
        assert [r.seq for r in store.commands(5)] == [6, 7, 8]
        assert [r.record for r in store.records(7)] == [b"rec8"]
        assert store.head() == Head(8, 8, "h8")


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 2))
        with pytest.raises(sqlite3.IntegrityError):
            store.write(_batch(2, 2))  # seq 2 again
        assert store.head() == Head(2, 2, "h2")
        assert store.count("journal") == 2


def test_an_edited_journal_row_is_named(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
    _edit(tmp_path, "UPDATE journal SET cmd = ? WHERE seq = 3", b"evil")
    with SQLiteStore(tmp_path, readonly=True) as store:
        rows = store.commands()
        assert next(rows).seq == 1
        assert next(rows).seq == 2
        with pytest.raises(CorruptRecord, match="journal record seq 3"):
            next(rows)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE journal SET cmd = CAST(X'FF00FE' AS TEXT) WHERE seq = 3",
        "UPDATE journal SET ts = 'yesterday' WHERE seq = 3",
        "UPDATE journal SET crc = 'x' WHERE seq = 3",
    ],
)
def test_a_journal_row_of_the_wrong_type_is_named_not_a_crash(tmp_path, edit):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
    _edit(tmp_path, edit)
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(CorruptRecord, match="journal record seq 3"),
    ):
        list(store.commands())


def test_an_edited_log_row_is_named(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
    _edit(tmp_path, "UPDATE log SET hash = 'forged' WHERE seq = 4")
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(CorruptRecord, match="settlement log record seq 4"),
    ):
        list(store.records())


def test_snapshots_are_listed_newest_first_checked_and_pruned(tmp_path):
    with SQLiteStore(tmp_path) as store:
        for seq in (2, 4, 6):
            info = SnapshotInfo(seq, seq, f"h{seq}", f"state{seq}", 0, 3)
            store.write(_batch(seq - 1, 2, Snapshot(info, b"abc")))
        assert [s.seq for s in store.snapshots()] == [6, 4, 2]
        assert store.snapshot(4).data == b"abc"
        assert store.prune_snapshots(2) == 1
        assert [s.seq for s in store.snapshots()] == [6, 4]
    _edit(tmp_path, "UPDATE snapshot SET data = ? WHERE seq = 6", b"abd")
    _edit(tmp_path, "UPDATE snapshot SET state_hash = CAST(X'FF' AS TEXT) WHERE seq = 4")
    with SQLiteStore(tmp_path, readonly=True) as store:
        with pytest.raises(CorruptRecord, match="snapshot seq 6"):
            store.snapshot(6)
        with pytest.raises(CorruptRecord, match="snapshot seq 4"):
            store.snapshot(4)
        assert [s.seq for s in store.snapshots()] == [6, 4]


def test_reference_data_round_trips(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.put_reference("series", [("B", b"2"), ("A", b"1")])
        assert store.reference("series") == [("A", b"1"), ("B", b"2")]
        assert store.reference("projects") == []


def test_opening_a_missing_store_read_only_says_where(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        SQLiteStore(tmp_path / "nowhere", readonly=True)
