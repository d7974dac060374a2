"""The SQLite store on its own: WAL + synchronous=FULL, batches in one transaction, checksums
that catch an edited row and name it, snapshots newest first, pruning, reference data."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.durability.store import (
    LOG_SEQ_UNKNOWN,
    Batch,
    CorruptRecord,
    JournalRow,
    LogRow,
    Snapshot,
    SnapshotInfo,
    SQLiteStore,
    StoreError,
    db_path,
    journal_crc,
    journal_hash,
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
        head = store.head()
        assert (head.seq, head.log_seq, head.log_head) == (8, 8, "h8")
        assert head.journal_head == list(store.commands())[-1].hash.hex()


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 2))
        with pytest.raises(sqlite3.IntegrityError):
            store.write(_batch(2, 2))  # seq 2 again
        assert (store.head().seq, store.head().log_head) == (2, "h2")
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
        "UPDATE journal SET hash = 'x' WHERE seq = 3",
        "UPDATE journal SET log_seq = 'x' WHERE seq = 3",
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


# -- schema 2: the chained journal, the heads row, and a schema-1 folder ---------------------

_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, cmd BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE log (
    seq INTEGER PRIMARY KEY, record BLOB NOT NULL, hash TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE snapshot (
    seq INTEGER PRIMARY KEY, log_seq INTEGER NOT NULL, log_head TEXT NOT NULL,
    state_hash TEXT NOT NULL, ts INTEGER NOT NULL, data BLOB NOT NULL, digest TEXT NOT NULL);
CREATE TABLE reference (
    kind TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, id));
INSERT INTO meta VALUES ('schema', '1');
"""


def _schema_1_folder(tmp_path, rows: int = 5, *, damaged: int = 0) -> None:
    """A data folder as the schema-1 build wrote it (journal rows with a CRC, no chain)."""
    db = sqlite3.connect(db_path(tmp_path))
    db.executescript(_SCHEMA_1)
    for seq in range(1, rows + 1):
        cmd = b"cmd%d" % seq
        crc = journal_crc(seq, 1000 + seq, cmd) ^ (1 if seq == damaged else 0)
        db.execute("INSERT INTO journal VALUES (?, ?, ?, ?)", (seq, 1000 + seq, cmd, crc))
        db.execute("INSERT INTO log VALUES (?, ?, ?, ?)", (seq, b"rec", f"h{seq}", 0))
    db.commit()
    db.close()


def test_a_schema_1_folder_is_refused_read_only_with_how_to_migrate(tmp_path):
    _schema_1_folder(tmp_path)
    with pytest.raises(StoreError, match="schema 1 .* `tonne journal migrate"):
        SQLiteStore(tmp_path, readonly=True)


def test_a_schema_1_folder_is_migrated_by_a_writable_open_and_its_journal_chained(tmp_path):
    _schema_1_folder(tmp_path)
    with SQLiteStore(tmp_path) as store:
        assert store.migrated_from == 1
        rows = list(store.commands())
        assert [(r.seq, r.ts, r.cmd) for r in rows] == [
            (s, 1000 + s, b"cmd%d" % s) for s in range(1, 6)
        ]
        assert all(r.log_seq == LOG_SEQ_UNKNOWN for r in rows)
        head = store.head()
        assert (head.seq, head.log_seq, head.log_head) == (5, 5, "h5")
        assert head.journal_head == rows[-1].hash.hex()
        store.write(_batch(6, 1))  # the chain goes on from the migrated rows
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert store.check_journal()[0] == 6


def test_a_damaged_schema_1_row_refuses_the_migration_naming_it_and_changes_nothing(tmp_path):
    _schema_1_folder(tmp_path, damaged=3)
    with pytest.raises(CorruptRecord, match="journal record seq 3"):
        SQLiteStore(tmp_path)
    db = sqlite3.connect(db_path(tmp_path))
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
    db.close()


def test_the_journal_cli_migrates_a_schema_1_folder(tmp_path, capsys):
    from gateway.cli import journalcmd

    _schema_1_folder(tmp_path)
    assert journalcmd.main(["migrate", "--data", str(tmp_path)]) == 0
    assert journalcmd.main(["migrate", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "schema 1 -> current",
        "already at the current schema",
    ]


def test_a_journal_row_whose_hash_does_not_chain_is_named(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
    # A row rewritten whole, with its own hash recomputed: the next row no longer chains.
    with SQLiteStore(tmp_path) as store:
        rows = list(store.commands())
        forged = journal_hash(rows[1].hash, 3, 1003, LOG_SEQ_UNKNOWN, b"evil")
    _edit(tmp_path, "UPDATE journal SET cmd = ?, hash = ? WHERE seq = 3", b"evil", forged)
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(CorruptRecord, match="journal record seq 4"),
    ):
        store.check_journal()


def test_every_commit_records_the_heads_so_a_deleted_last_row_is_visible(tmp_path):
    with SQLiteStore(tmp_path) as store:
        store.write(_batch(1, 5))
    _edit(tmp_path, "DELETE FROM journal WHERE seq = 5")
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert store.head().seq == 5
        assert store.check_journal()[0] == 4
