"""The durable store: command journal, settlement-log records, snapshots, reference data.

`Store` is the narrow interface the journal, recovery and the operator commands use, so that a
PostgreSQL backend can follow; `SQLiteStore` is the embedded default (standard-library
`sqlite3`, WAL mode, `synchronous=FULL`, one writer).

Every row carries a checksum of its own content (CRC-32 for journal and log rows, SHA-256 for
snapshots), so that a flipped bit or an edited row is found by whoever reads it, and named:
`CorruptRecord` says which table and which sequence number. The store only moves bytes: it
never decodes a command or a record, so it depends on nothing else of ours.

Ownership: one `SQLiteStore` object per connection. The journal's writer (thread or process)
owns the one that writes; readers (`tonne log tail -f`, recovery) open their own.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec

DB_NAME = "tonne.db"
DATA_DIR_ENV = "TONNE_DATA"  # the data folder when --data is not given
DATA_DIR_DEFAULT = "var"
SCHEMA_VERSION = 1
READ_CHUNK_ROWS = 4096  # rows fetched per round trip when streaming the journal or the log

_SEQ_TS = struct.Struct(">qq")
_SEQ = struct.Struct(">q")


class StoreError(Exception):
    """The root of the store's errors: something is wrong with the data folder."""


class CorruptRecord(StoreError):
    """A row whose checksum does not match its content. `what` names it, e.g.
    `journal record seq 1234`."""

    def __init__(self, what: str, detail: str = "") -> None:
        self.what = what
        super().__init__(f"{what} is corrupt" + (f": {detail}" if detail else ""))


class JournalRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One accepted command, in sequence: `cmd` is its encoded bytes (with its timestamp)."""

    seq: int
    ts: int
    cmd: bytes


class LogRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One settlement-log record: its encoded bytes and its chain hash (hex)."""

    seq: int
    record: bytes
    hash: str


class SnapshotInfo(msgspec.Struct, frozen=True):
    """What a snapshot covers: the core state after journal command `seq`, whose settlement
    log ended at record `log_seq` with hash `log_head`, and whose state hash was `state_hash`."""

    seq: int
    log_seq: int
    log_head: str
    state_hash: str
    ts: int
    size_bytes: int


class Snapshot(msgspec.Struct, frozen=True):
    info: SnapshotInfo
    data: bytes


class Batch(msgspec.Struct, gc=False):
    """What one transaction writes: journal rows, log rows, and at most one snapshot."""

    commands: list[JournalRow]
    records: list[LogRow]
    snapshot: Snapshot | None = None


class Head(msgspec.Struct, frozen=True):
    """Where the durable journal and log end (0 and "" when empty)."""

    seq: int
    log_seq: int
    log_head: str


class Store(Protocol):
    """The storage interface: narrow on purpose (a PostgreSQL backend implements the same)."""

    def write(self, batch: Batch) -> None:
        """Write a batch in one transaction; returns once it is durably committed."""

    def head(self) -> Head: ...

    def reading(self) -> AbstractContextManager[None]:
        """A consistent view of the store for the duration (a read transaction), so that a
        reader never sees a journal and a log from different commits."""

    def commands(self, after_seq: int = 0) -> Iterator[JournalRow]:
        """Journal rows with seq > after_seq, in order, each checked (`CorruptRecord`)."""

    def records(self, after_seq: int = 0) -> Iterator[LogRow]:
        """Settlement-log rows with seq > after_seq, in order, each checked."""

    def snapshots(self) -> list[SnapshotInfo]:
        """Every stored snapshot, newest first (without the data)."""

    def snapshot(self, seq: int) -> Snapshot:
        """One snapshot with its data, checked (`CorruptRecord`)."""

    def prune_snapshots(self, keep: int) -> int:
        """Delete all but the newest `keep` snapshots; how many went."""

    def put_reference(self, kind: str, items: Iterable[tuple[str, bytes]]) -> None:
        """Reference data (projects, series, accounts) by kind and id, in one transaction."""

    def reference(self, kind: str) -> list[tuple[str, bytes]]: ...

    def close(self) -> None: ...


def journal_crc(seq: int, ts: int, cmd: bytes) -> int:
    return zlib.crc32(cmd, zlib.crc32(_SEQ_TS.pack(seq, ts)))


def log_crc(seq: int, record: bytes, hash_hex: str) -> int:
    return zlib.crc32(hash_hex.encode(), zlib.crc32(record, zlib.crc32(_SEQ.pack(seq))))


def snapshot_digest(info: SnapshotInfo, data: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"{info.seq}|{info.log_seq}|{info.log_head}|{info.state_hash}|{info.ts}|".encode())
    h.update(data)
    return h.hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, cmd BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY, record BLOB NOT NULL, hash TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
    seq INTEGER PRIMARY KEY, log_seq INTEGER NOT NULL, log_head TEXT NOT NULL,
    state_hash TEXT NOT NULL, ts INTEGER NOT NULL, data BLOB NOT NULL, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reference (
    kind TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, id));
"""


def _text(raw: object) -> str:
    """A TEXT column read as bytes (so that a damaged one cannot fail the read itself)."""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _checks(crc_of: Any, crc: object, *fields: Any) -> bool:
    """Whether a row's stored checksum matches its fields; False for fields of a wrong type."""
    try:
        return bool(crc_of(*fields) == crc)
    except (TypeError, struct.error, AttributeError):
        return False


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or DATA_DIR_DEFAULT


def db_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / DB_NAME


class SQLiteStore:
    """The embedded store: one SQLite file in `data_dir`, WAL, synchronous=FULL.

    `readonly=True` opens an existing store for reading only (operators' commands), and
    fails with `StoreError` when there is none. Thread use: the object may be handed to
    another thread (the journal's writer), but only one thread uses it at a time.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, readonly: bool = False) -> None:
        path = db_path(data_dir)
        self.path = path
        self.readonly = readonly
        self.transactions = 0  # commits of `write`, for tests and statistics
        if readonly:
            if not path.exists():
                raise StoreError(f"no store at {path} (is --data the right folder?)")
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"{path}: schema {row[0]}, this build reads {SCHEMA_VERSION}")
        except BaseException:
            self._db.close()
            raise

    # -- writing -------------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.commands:
                db.executemany(
                    "INSERT INTO journal (seq, ts, cmd, crc) VALUES (?, ?, ?, ?)",
                    [(r.seq, r.ts, r.cmd, journal_crc(r.seq, r.ts, r.cmd)) for r in batch.commands],
                )
            if batch.records:
                db.executemany(
                    "INSERT INTO log (seq, record, hash, crc) VALUES (?, ?, ?, ?)",
                    [
                        (r.seq, r.record, r.hash, log_crc(r.seq, r.record, r.hash))
                        for r in batch.records
                    ],
                )
            snap = batch.snapshot
            if snap is not None:
                info = snap.info
                db.execute(
                    "INSERT OR REPLACE INTO snapshot "
                    "(seq, log_seq, log_head, state_hash, ts, data, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        info.seq,
                        info.log_seq,
                        info.log_head,
                        info.state_hash,
                        info.ts,
                        snap.data,
                        snapshot_digest(info, snap.data),
                    ),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.transactions += 1

    def prune_snapshots(self, keep: int) -> int:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        cur = self._db.execute(
            "DELETE FROM snapshot WHERE seq NOT IN "
            "(SELECT seq FROM snapshot ORDER BY seq DESC LIMIT ?)",
            (keep,),
        )
        return cur.rowcount

    def put_reference(self, kind: str, items: Iterable[tuple[str, bytes]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO reference (kind, id, data) VALUES (?, ?, ?)",
                [(kind, key, data) for key, data in items],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- reading -------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        db = self._db
        if db.in_transaction:  # already inside one: it is the view
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("ROLLBACK")

    def head(self) -> Head:
        seq = self._db.execute("SELECT max(seq) FROM journal").fetchone()[0] or 0
        row = self._db.execute(
            "SELECT seq, CAST(hash AS BLOB) FROM log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        log_seq, log_head = (row[0], _text(row[1])) if row else (0, "")
        return Head(seq, log_seq, log_head)

    def count(self, table: str) -> int:
        if table not in ("journal", "log", "snapshot", "reference"):
            raise ValueError(f"no table {table!r}")
        n: int = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return n

    def commands(self, after_seq: int = 0) -> Iterator[JournalRow]:
        seq = after_seq
        while True:
            rows = self._db.execute(
                "SELECT seq, ts, CAST(cmd AS BLOB), crc FROM journal "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, READ_CHUNK_ROWS),
            ).fetchall()
            for seq, ts, cmd, crc in rows:
                if not _checks(journal_crc, crc, seq, ts, cmd):
                    raise CorruptRecord(f"journal record seq {seq}", "checksum mismatch")
                yield JournalRow(seq, ts, cmd)
            if len(rows) < READ_CHUNK_ROWS:
                return

    def records(self, after_seq: int = 0) -> Iterator[LogRow]:
        seq = after_seq
        while True:
            rows = self._db.execute(
                "SELECT seq, CAST(record AS BLOB), CAST(hash AS BLOB), crc FROM log "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, READ_CHUNK_ROWS),
            ).fetchall()
            for seq, record, hash_raw, crc in rows:
                hash_hex = _text(hash_raw)
                if not _checks(log_crc, crc, seq, record, hash_hex):
                    raise CorruptRecord(f"settlement log record seq {seq}", "checksum mismatch")
                yield LogRow(seq, record, hash_hex)
            if len(rows) < READ_CHUNK_ROWS:
                return

    def snapshots(self) -> list[SnapshotInfo]:
        rows = self._db.execute(
            "SELECT seq, log_seq, CAST(log_head AS BLOB), CAST(state_hash AS BLOB), ts, "
            "length(data) FROM snapshot "
            "ORDER BY seq DESC"
        ).fetchall()
        return [SnapshotInfo(a, b, _text(c), _text(d), e, f) for a, b, c, d, e, f in rows]

    def snapshot(self, seq: int) -> Snapshot:
        row = self._db.execute(
            "SELECT seq, log_seq, CAST(log_head AS BLOB), CAST(state_hash AS BLOB), ts, "
            "CAST(data AS BLOB), CAST(digest AS BLOB) FROM snapshot "
            "WHERE seq = ?",
            (seq,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no snapshot at seq {seq}")
        seq_, log_seq, log_head, state_hash, ts, data, digest = row
        if not isinstance(data, bytes) or not isinstance(ts, int) or not isinstance(log_seq, int):
            raise CorruptRecord(f"snapshot seq {seq}", "a column has the wrong type")
        info = SnapshotInfo(seq_, log_seq, _text(log_head), _text(state_hash), ts, len(data))
        if snapshot_digest(info, data) != _text(digest):
            raise CorruptRecord(f"snapshot seq {seq}", "checksum mismatch")
        return Snapshot(info, data)

    def reference(self, kind: str) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT id, data FROM reference WHERE kind = ? ORDER BY id", (kind,)
        ).fetchall()
        return [(key, data) for key, data in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
