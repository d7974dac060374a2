"""The durable store: command journal, settlement-log records, snapshots, reference data.

`Store` is the narrow interface the journal, recovery and the operator commands use, so that a
PostgreSQL backend can follow; `SQLiteStore` is the embedded default (standard-library
`sqlite3`, WAL mode, `synchronous=FULL`, one writer).

The journal is hash-chained, as the settlement log is: each row stores
`hash = sha256(prev hash | seq | ts | log_seq | cmd)` (`journal_hash`), with 32 zero bytes
before the first row, so that an edited, dropped, inserted or reordered row breaks the chain
at that row. `log_seq` is the settlement log's last record after the command, which links the
two: the records a command produced are exactly those after the previous row's `log_seq`.
Log rows carry a CRC-32 of their content (their chain is in the record itself, which only the
codec can decode: recovery.py checks it), snapshots a SHA-256.

Every transaction also rewrites the one-row `heads` table: the journal's last seq and hash and
the log's last seq and hash. Deleting trailing rows therefore contradicts the recorded head
(`check_ends`), unless the heads row is rewritten to match: that one disk cannot prove
(README, Durability). `CorruptRecord` names the bad table and sequence number. The store only
moves bytes: it never decodes a command or a record, so it depends on nothing else of ours.

Journal rows and settlement-log records that the oldest kept snapshot covers can be
archived to segment files (archive.py; the `archive` and `log_archive` tables record
their headers, segments.py) and deleted from the live tables; `commands()` and
`records()` then read through the segments transparently, each segment checked against its
recorded header, and `check_archive()` / `check_log_archive()` check the recorded heads
cheaply. A folder of schema 2 from before the log archive has no `log_archive` table: a
writable open creates it, a read-only one reads no log segments.

Ownership: one `SQLiteStore` object per connection. The journal's writer (thread or process)
owns the one that writes; readers (`tonne log tail -f`, recovery) open their own.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec

from gateway.durability import archive
from gateway.durability.segments import SegmentTable
from gateway.durability.storeerrors import CorruptRecord as CorruptRecord
from gateway.durability.storeerrors import MissingRecord as MissingRecord
from gateway.durability.storeerrors import StoreError as StoreError

DB_NAME = "tonne.db"
DATA_DIR_ENV = "TONNE_DATA"  # the data folder when --data is not given
DATA_DIR_DEFAULT = "var"
SCHEMA_VERSION = 2  # 2: chained journal rows with their log_seq, the heads row, archives
READ_CHUNK_ROWS = 4096  # rows fetched per round trip when streaming the journal or the log
ARCHIVE_SEGMENT_ROWS = 16_384  # journal rows or log records per archived segment (~7 MB)
ZERO_HASH = bytes(32)  # the journal's "previous hash" before its first row
# The settlement log's `prev` before its first record (settlement.log.GENESIS; the store
# decodes no record, so it keeps its own copy, and a test checks that the two agree).
LOG_GENESIS = "0" * 64
LOG_SEQ_UNKNOWN = -1  # a row journaled before schema 2 (migrated) or written without one

_SEQ_TS_LOG = struct.Struct(">qqq")
_SEQ_TS = struct.Struct(">qq")
_SEQ = struct.Struct(">q")


class JournalRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One accepted command, in sequence: `cmd` is its encoded bytes (with its timestamp),
    `log_seq` the settlement log's last record once it was applied. `hash` is its chain hash
    as stored (filled when read; the store computes it on write)."""

    seq: int
    ts: int
    cmd: bytes
    log_seq: int = LOG_SEQ_UNKNOWN
    hash: bytes = b""


class LogRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One settlement-log record: its encoded bytes and its chain hash (hex)."""

    seq: int
    record: bytes
    hash: str


class SnapshotInfo(msgspec.Struct, frozen=True):
    """What a snapshot covers: the core state after journal command `seq`, whose settlement
    log ended at record `log_seq` with hash `log_head`, and whose state hash was `state_hash`.
    `journal_head` is the chain hash of journal row `seq` (hex), filled in by the store when
    it writes the snapshot ("" in a snapshot from before schema 2)."""

    seq: int
    log_seq: int
    log_head: str
    state_hash: str
    ts: int
    size_bytes: int
    journal_head: str = ""


class Snapshot(msgspec.Struct, frozen=True):
    info: SnapshotInfo
    data: bytes


class Batch(msgspec.Struct, gc=False):
    """What one transaction writes: journal rows, log rows, and at most one snapshot."""

    commands: list[JournalRow]
    records: list[LogRow]
    snapshot: Snapshot | None = None


class Head(msgspec.Struct, frozen=True):
    """Where the durable journal and log end, as the heads row records them (0 and "" when
    empty): the last command, the last settlement record and its hash, the last command's
    chain hash (hex)."""

    seq: int
    log_seq: int
    log_head: str
    journal_head: str = ""


class Store(Protocol):
    """The storage interface: narrow on purpose (a PostgreSQL backend implements the same)."""

    def write(self, batch: Batch) -> None:
        """Write a batch in one transaction; returns once it is durably committed."""

    def head(self) -> Head:
        """The recorded heads (see `Head`), not what the rows happen to say."""

    def reading(self) -> AbstractContextManager[None]:
        """A consistent view of the store for the duration (a read transaction), so that a
        reader never sees a journal and a log from different commits."""

    def commands(self, after_seq: int = 0) -> Iterator[JournalRow]:
        """Journal rows with seq > after_seq, in order, through archived segments, each
        checked against the chain from row `after_seq` (`CorruptRecord`, `MissingRecord`)."""

    def check_journal(
        self, through: int | None = None, pins: Collection[int] = ()
    ) -> tuple[int, bytes, dict[int, bytes]]:
        """Check the archive's recorded heads and the chain of every live row (through seq
        `through`): hashes only. Where the chain ends (seq, hash), and the hashes at the
        seqs in `pins` that it passed."""

    def records(self, after_seq: int = 0, through: int | None = None) -> Iterator[LogRow]:
        """Settlement-log rows with after_seq < seq <= through, in order, through archived
        segments, each checked (a live row against its CRC, an archived one against its
        segment's recorded header); the chain inside the records is the codec's to check."""

    def check_log_archive(self) -> tuple[int, str]:
        """Check the log archive's recorded heads (cheaply, as `check_journal` does the
        journal's): where the archived log ends (seq, hash hex), (0, LOG_GENESIS) if none."""

    def log_segments(self) -> list[archive.SegmentHeader]:
        """The archived settlement-log segments, in order."""

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


def journal_hash(prev: bytes, seq: int, ts: int, log_seq: int, cmd: bytes) -> bytes:
    """A journal row's chain hash: SHA-256 over the previous row's hash and this row."""
    return hashlib.sha256(prev + _SEQ_TS_LOG.pack(seq, ts, log_seq) + cmd).digest()


def journal_crc(seq: int, ts: int, cmd: bytes) -> int:
    """A schema-1 journal row's checksum (read only to migrate such a store)."""
    return zlib.crc32(cmd, zlib.crc32(_SEQ_TS.pack(seq, ts)))


def log_crc(seq: int, record: bytes, hash_hex: str) -> int:
    return zlib.crc32(hash_hex.encode(), zlib.crc32(record, zlib.crc32(_SEQ.pack(seq))))


def snapshot_digest(info: SnapshotInfo, data: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"{info.seq}|{info.log_seq}|{info.log_head}|{info.state_hash}|{info.ts}|".encode())
    if info.journal_head:  # a schema-1 snapshot's digest did not cover one
        h.update(f"{info.journal_head}|".encode())
    h.update(data)
    return h.hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, log_seq INTEGER NOT NULL,
    cmd BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY, record BLOB NOT NULL, hash TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
    seq INTEGER PRIMARY KEY, log_seq INTEGER NOT NULL, log_head TEXT NOT NULL,
    state_hash TEXT NOT NULL, ts INTEGER NOT NULL, data BLOB NOT NULL, digest TEXT NOT NULL,
    journal_head TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS reference (
    kind TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS heads (
    id INTEGER PRIMARY KEY CHECK (id = 1), journal_seq INTEGER NOT NULL,
    journal_hash BLOB NOT NULL, log_seq INTEGER NOT NULL, log_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archive (
    first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, first_prev TEXT NOT NULL,
    last_hash TEXT NOT NULL, rows INTEGER NOT NULL, body_bytes INTEGER NOT NULL,
    body_sha256 TEXT NOT NULL, file TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_archive (
    first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, first_prev TEXT NOT NULL,
    last_hash TEXT NOT NULL, rows INTEGER NOT NULL, body_bytes INTEGER NOT NULL,
    body_sha256 TEXT NOT NULL, file TEXT NOT NULL);
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


def _chained(prev: bytes, seq: int, ts: object, log_seq: object, cmd: object) -> bytes | None:
    """A row's chain hash from its fields; None for fields of a wrong type."""
    if not (isinstance(ts, int) and isinstance(log_seq, int) and isinstance(cmd, bytes)):
        return None
    try:
        return journal_hash(prev, seq, ts, log_seq, cmd)
    except struct.error:
        return None


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or DATA_DIR_DEFAULT


def db_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / DB_NAME


class SQLiteStore:
    """The embedded store: one SQLite file in `data_dir`, WAL, synchronous=FULL.

    `readonly=True` opens an existing store for reading only (operators' commands), and
    fails with `StoreError` when there is none. Thread use: the object may be handed to
    another thread (the journal's writer), but only one thread uses it at a time.
    A writable open of a schema-1 store migrates it (`_migrate_from_1`); a read-only one
    refuses, saying so.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        readonly: bool = False,
        log_segments_cached: int = 0,
    ) -> None:
        path = db_path(data_dir)
        # archived log segments whose checked rows this store keeps (0: none, each read of
        # one reads and checks its file again): for a reader that pages back and forth, as
        # the operator console does; a segment is about 7 MB
        self._log_segments_cached = log_segments_cached
        self._log_rows: OrderedDict[tuple[int, int, str], list[archive.Row]] = OrderedDict()
        self.path = path
        self.archive_dir = path.parent / archive.ARCHIVE_DIR
        self.readonly = readonly
        self.transactions = 0  # commits of `write`, for tests and statistics
        self.migrated_from: int | None = None  # the schema this open upgraded, if any
        if readonly:
            if not path.exists():
                raise StoreError(f"no store at {path} (is --data the right folder?)")
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            self._archives()
            try:
                self._check_schema_readonly()
            except BaseException:
                self._db.close()
                raise
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._archives()
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._open_schema()
            head = self._read_heads()
            self._jhead = (head.seq, bytes.fromhex(head.journal_head))
            self._lhead = (head.log_seq, head.log_head)
        except BaseException:
            self._db.close()
            raise

    def _archives(self) -> None:
        """The journal's and the log's archived segments, read through this connection."""
        self._journal_archive = SegmentTable(
            self._db,
            self.archive_dir,
            archive.JOURNAL,
            table="archive",
            live_table="journal",
            genesis=ZERO_HASH.hex(),
        )
        self._log_archive = SegmentTable(
            self._db,
            self.archive_dir,
            archive.LOG,
            table="log_archive",
            live_table="log",
            genesis=LOG_GENESIS,
        )

    def _schema_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError:  # no meta table: a new file
            return None
        try:
            return None if row is None else int(row[0])
        except ValueError:
            raise StoreError(f"{self.path}: schema {row[0]!r} is not a schema version") from None

    def _check_schema_readonly(self) -> None:
        version = self._schema_version()
        if version == 1:
            raise StoreError(
                f"{self.path}: schema 1 (a journal without a hash chain); this build reads "
                f"schema {SCHEMA_VERSION}: `tonne journal migrate --data DIR` (or starting "
                "`tonne serve` on it) upgrades the folder"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {version}, this build reads {SCHEMA_VERSION}")

    def _open_schema(self) -> None:
        version = self._schema_version()
        if version == 1:
            self._migrate_from_1()
            return
        if version is not None and version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {version}, this build reads {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        self._db.execute(
            "INSERT OR IGNORE INTO heads VALUES (1, 0, ?, 0, '')",
            (ZERO_HASH,),
        )

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2 in one transaction: chain the existing journal rows (each checked
        against its CRC first; their log_seq is not known, so LOG_SEQ_UNKNOWN), add the heads
        row and the archive tables. A damaged row refuses the migration, naming it."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("ALTER TABLE journal RENAME TO journal_v1")
            for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT
                if statement.strip():
                    db.execute(statement)
            db.execute("ALTER TABLE snapshot ADD COLUMN journal_head TEXT NOT NULL DEFAULT ''")
            prev, seq = ZERO_HASH, 0
            rows = db.execute("SELECT seq, ts, CAST(cmd AS BLOB), crc FROM journal_v1 ORDER BY seq")
            for chunk in iter(lambda: rows.fetchmany(READ_CHUNK_ROWS), []):
                out = []
                for row_seq, ts, cmd, crc in chunk:
                    if row_seq != seq + 1 or not _checks(journal_crc, crc, row_seq, ts, cmd):
                        raise CorruptRecord(f"journal record seq {seq + 1}", "cannot migrate it")
                    seq, prev = row_seq, journal_hash(prev, row_seq, ts, LOG_SEQ_UNKNOWN, cmd)
                    out.append((seq, ts, LOG_SEQ_UNKNOWN, cmd, prev))
                db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?)", out)
            db.execute("DROP TABLE journal_v1")
            last = db.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
            log_seq, log_hash = (last[0], _text(last[1])) if last else (0, "")
            db.execute("INSERT INTO heads VALUES (1, ?, ?, ?, ?)", (seq, prev, log_seq, log_hash))
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.migrated_from = 1

    # -- writing -------------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        db = self._db
        jseq, jhash = self._jhead
        rows = []
        for r in batch.commands:
            if r.seq > jseq + 1:
                raise StoreError(f"journal record seq {r.seq} would leave a gap after {jseq}")
            jseq, jhash = r.seq, journal_hash(jhash, r.seq, r.ts, r.log_seq, r.cmd)
            rows.append((r.seq, r.ts, r.log_seq, r.cmd, jhash))
        lhead = (batch.records[-1].seq, batch.records[-1].hash) if batch.records else self._lhead
        db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                db.executemany(
                    "INSERT INTO journal (seq, ts, log_seq, cmd, hash) VALUES (?, ?, ?, ?, ?)", rows
                )
            if batch.records:
                db.executemany(
                    "INSERT INTO log (seq, record, hash, crc) VALUES (?, ?, ?, ?)",
                    [
                        (r.seq, r.record, r.hash, log_crc(r.seq, r.record, r.hash))
                        for r in batch.records
                    ],
                )
            db.execute(
                "UPDATE heads SET journal_seq = ?, journal_hash = ?, log_seq = ?, log_hash = ? "
                "WHERE id = 1",
                (jseq, jhash, *lhead),
            )
            if batch.snapshot is not None:
                self._write_snapshot(batch.snapshot, jseq, jhash)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._jhead, self._lhead = (jseq, jhash), lhead
        self.transactions += 1

    def _write_snapshot(self, snap: Snapshot, jseq: int, jhash: bytes) -> None:
        """Store a snapshot with the chain hash of the journal row it ends at, so that a start
        can pin the chain to it."""
        info = snap.info
        if info.seq == jseq:
            head = jhash
        else:
            row = self._db.execute(
                "SELECT CAST(hash AS BLOB) FROM journal WHERE seq = ?", (info.seq,)
            ).fetchone()
            if row is None:
                raise StoreError(f"snapshot seq {info.seq}: no journal row {info.seq} to pin")
            head = row[0]
        info = msgspec.structs.replace(info, journal_head=head.hex())
        self._db.execute(
            "INSERT OR REPLACE INTO snapshot "
            "(seq, log_seq, log_head, state_hash, ts, data, digest, journal_head) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.seq,
                info.log_seq,
                info.log_head,
                info.state_hash,
                info.ts,
                snap.data,
                snapshot_digest(info, snap.data),
                info.journal_head,
            ),
        )

    def archive_journal(self, through: int, segment_rows: int = ARCHIVE_SEGMENT_ROWS) -> int:
        """Move the first `segment_rows` live journal rows to a segment file and delete them
        from the live table, if all of them are at or below seq `through` (the oldest kept
        snapshot's); how many rows moved (0 or `segment_rows`). One segment per call, so that
        a writer can interleave its commits."""
        if segment_rows < 1:
            raise ValueError("segment_rows must be at least 1")
        pos, prev = self._live_start()
        if through - pos < segment_rows:
            return 0
        rows = [
            (r.seq, r.ts, r.log_seq, r.cmd, r.hash)
            for r in self._live(pos, prev, pos + segment_rows)
        ]
        if len(rows) < segment_rows:
            raise MissingRecord(f"journal record seq {pos + len(rows) + 1}", "cannot archive")
        self._journal_archive.move(rows, prev.hex())
        return len(rows)

    def archive_log(
        self,
        through: int,
        segment_rows: int = ARCHIVE_SEGMENT_ROWS,
        check: Callable[[Sequence[LogRow], str], object] | None = None,
    ) -> int:
        """Move the first `segment_rows` live settlement-log records to a segment file and
        delete them from the live table, if all of them are at or below log seq `through`
        (the oldest kept snapshot's `log_seq`); how many moved (0 or `segment_rows`). Each
        record's checksum is checked; `check(records, prev)` checks that they chain from the
        hash `prev` (the codec's job: the store decodes no record) and raises if not, so that
        a damaged record is refused here rather than sealed into a segment."""
        if segment_rows < 1:
            raise ValueError("segment_rows must be at least 1")
        pos, prev = self.check_log_archive()
        if through - pos < segment_rows:
            return 0
        rows = list(self._live_records(pos, pos + segment_rows))
        gap = next((pos + 1 + i for i, r in enumerate(rows) if r.seq != pos + 1 + i), None)
        if gap is None and len(rows) < segment_rows:
            gap = pos + len(rows) + 1
        if gap is not None:
            raise MissingRecord(f"settlement log record seq {gap}", "cannot archive")
        if check is not None:
            check(rows, prev)
        self._log_archive.move([(r.seq, r.record, r.hash) for r in rows], prev)
        return len(rows)

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
        return self._read_heads()

    def _read_heads(self) -> Head:
        row = self._db.execute(
            "SELECT journal_seq, CAST(journal_hash AS BLOB), log_seq, CAST(log_hash AS BLOB) "
            "FROM heads WHERE id = 1"
        ).fetchone()
        if row is None:
            raise CorruptRecord("the heads row", "it is missing")
        seq, jhash, log_seq, log_hash = row
        if not (isinstance(seq, int) and isinstance(log_seq, int) and isinstance(jhash, bytes)):
            raise CorruptRecord("the heads row", "a column has the wrong type")
        return Head(seq, log_seq, _text(log_hash), jhash.hex())

    def count(self, table: str) -> int:
        """Rows in a live table (`archived` says how many the archives hold)."""
        if table not in ("journal", "log", "snapshot", "reference", "archive", "log_archive"):
            raise ValueError(f"no table {table!r}")
        if table == "log_archive":  # 0 also when an old folder, opened read-only, has none
            return len(self.log_segments())
        n: int = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return n

    def archived(self) -> tuple[int, int]:
        """(journal rows, settlement records) held in archived segments, as recorded."""
        return (
            sum(s.rows for s in self.segments()),
            sum(s.rows for s in self.log_segments()),
        )

    def commands(self, after_seq: int = 0) -> Iterator[JournalRow]:
        pos, prev = 0, ZERO_HASH
        for seg in self.segments():
            if seg.last_seq > after_seq:
                self._journal_archive.check_follows(seg, pos, prev.hex())
                for row in self._segment_rows(seg):
                    if row.seq > after_seq:
                        yield row
            pos, prev = seg.last_seq, bytes.fromhex(seg.last_hash)
        if after_seq > pos:
            pos, prev = after_seq, self._stored_hash(after_seq)
        yield from self._live(pos, prev)

    def check_journal(
        self, through: int | None = None, pins: Collection[int] = ()
    ) -> tuple[int, bytes, dict[int, bytes]]:
        """A pin at a segment's end is its recorded last hash; a pin inside a segment (no
        kept snapshot is: only rows the oldest covers are archived) costs reading it."""
        pinned: dict[int, bytes] = {}
        for seg in self.segments() if pins else ():
            if seg.last_seq in pins:
                pinned[seg.last_seq] = bytes.fromhex(seg.last_hash)
            if any(seg.first_seq <= p < seg.last_seq for p in pins):
                pinned.update((r.seq, r.hash) for r in self._segment_rows(seg) if r.seq in pins)
        pos, prev = self._live_start()
        for row in self._live(pos, prev, through):
            pos, prev = row.seq, row.hash
            if pos in pins:
                pinned[pos] = prev
        return pos, prev, pinned

    def _live_start(self) -> tuple[int, bytes]:
        """Where the live table's chain starts: after the last archived segment (its recorded
        heads checked, `check_archive`), or at genesis."""
        return self.check_archive()

    def _stored_hash(self, seq: int) -> bytes:
        row = self._db.execute(
            "SELECT CAST(hash AS BLOB) FROM journal WHERE seq = ?", (seq,)
        ).fetchone()
        if row is None:
            raise MissingRecord(f"journal record seq {seq}")
        if not isinstance(row[0], bytes):
            raise CorruptRecord(f"journal record seq {seq}", "its hash has the wrong type")
        return bytes(row[0])

    def _live(self, pos: int, prev: bytes, through: int | None = None) -> Iterator[JournalRow]:
        """Live rows after seq `pos`, whose chain hash is `prev`, each checked: consecutive,
        and its stored hash the one its fields and the previous hash give."""
        last = (1 << 62) if through is None else through
        while True:
            rows = self._db.execute(
                "SELECT seq, ts, log_seq, CAST(cmd AS BLOB), CAST(hash AS BLOB) FROM journal "
                "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (pos, last, READ_CHUNK_ROWS),
            ).fetchall()
            for seq, ts, log_seq, cmd, stored in rows:
                if seq != pos + 1:
                    raise MissingRecord(f"journal record seq {pos + 1}", f"the next is {seq}")
                if _chained(prev, seq, ts, log_seq, cmd) != stored:
                    raise CorruptRecord(
                        f"journal record seq {seq}", "its hash does not chain (row edited?)"
                    )
                pos, prev = seq, stored
                yield JournalRow(seq, ts, cmd, log_seq, stored)
            if len(rows) < READ_CHUNK_ROWS:
                return

    def records(self, after_seq: int = 0, through: int | None = None) -> Iterator[LogRow]:
        last = (1 << 62) if through is None else through
        pos, prev = 0, LOG_GENESIS
        for seg in self.log_segments():
            if seg.first_seq > last:
                return
            if seg.last_seq > after_seq:
                self._log_archive.check_follows(seg, pos, prev)
                yield from self._segment_records(seg, after_seq, last)
            pos, prev = seg.last_seq, seg.last_hash
        if pos < last:
            yield from self._live_records(max(pos, after_seq), last)

    def _segment_records(
        self, seg: archive.SegmentHeader, after_seq: int, last: int
    ) -> Iterator[LogRow]:
        """The archived records of `seg` with after_seq < seq <= last; from the cache of
        checked segments when there is one (its rows are consecutive from first_seq)."""
        if not self._log_segments_cached:
            for seq, record, hash_hex in self._log_archive.rows(seg):
                if after_seq < seq <= last:
                    yield LogRow(seq, record, hash_hex)
            return
        key = (seg.first_seq, seg.last_seq, seg.last_hash)
        rows = self._log_rows.get(key)
        if rows is None:
            rows = list(self._log_archive.rows(seg))  # read whole: its end is checked too
            self._log_rows[key] = rows
            while len(self._log_rows) > self._log_segments_cached:
                self._log_rows.popitem(last=False)
        else:
            self._log_rows.move_to_end(key)
        start = max(0, after_seq + 1 - seg.first_seq)
        for seq, record, hash_hex in rows[start : max(start, last - seg.first_seq + 1)]:
            yield LogRow(seq, record, hash_hex)

    def _live_records(self, after_seq: int, through: int | None = None) -> Iterator[LogRow]:
        """Live log rows with after_seq < seq <= through, each checked against its CRC."""
        seq, last = after_seq, (1 << 62) if through is None else through
        while True:
            rows = self._db.execute(
                "SELECT seq, CAST(record AS BLOB), CAST(hash AS BLOB), crc FROM log "
                "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (seq, last, READ_CHUNK_ROWS),
            ).fetchall()
            for seq, record, hash_raw, crc in rows:
                hash_hex = _text(hash_raw)
                if not _checks(log_crc, crc, seq, record, hash_hex):
                    raise CorruptRecord(f"settlement log record seq {seq}", "checksum mismatch")
                yield LogRow(seq, record, hash_hex)
            if len(rows) < READ_CHUNK_ROWS:
                return

    # -- the archives ---------------------------------------------------------------------------

    def segments(self) -> list[archive.SegmentHeader]:
        """The archived journal segments the store records, in order."""
        return self._journal_archive.headers()

    def log_segments(self) -> list[archive.SegmentHeader]:
        return self._log_archive.headers()

    def check_archive(self) -> tuple[int, bytes]:
        """The journal archive's recorded heads, cheaply: segments consecutive from seq 1,
        each chained to the one before, each file present with the recorded header and
        length. Where the archived chain ends: (seq, hash); (0, zeros) with no archive."""
        pos, prev = self._journal_archive.check()
        return pos, bytes.fromhex(prev)

    def check_log_archive(self) -> tuple[int, str]:
        return self._log_archive.check()

    def _segment_rows(self, seg: archive.SegmentHeader) -> Iterator[JournalRow]:
        """A journal segment's rows, each checked against the chain from its first_prev."""
        prev = bytes.fromhex(seg.first_prev)
        for seq, ts, log_seq, cmd, stored in self._journal_archive.rows(seg):
            if _chained(prev, seq, ts, log_seq, cmd) != stored:
                what = self._journal_archive.what(seg)
                raise CorruptRecord(f"journal record seq {seq} (archived in {what})")
            prev = stored
            yield JournalRow(seq, ts, cmd, log_seq, stored)

    def snapshots(self) -> list[SnapshotInfo]:
        rows = self._db.execute(
            "SELECT seq, log_seq, CAST(log_head AS BLOB), CAST(state_hash AS BLOB), ts, "
            "length(data), CAST(journal_head AS BLOB) FROM snapshot "
            "ORDER BY seq DESC"
        ).fetchall()
        return [
            SnapshotInfo(a, b, _text(c), _text(d), e, f, _text(g)) for a, b, c, d, e, f, g in rows
        ]

    def snapshot(self, seq: int) -> Snapshot:
        row = self._db.execute(
            "SELECT seq, log_seq, CAST(log_head AS BLOB), CAST(state_hash AS BLOB), ts, "
            "CAST(data AS BLOB), CAST(digest AS BLOB), CAST(journal_head AS BLOB) FROM snapshot "
            "WHERE seq = ?",
            (seq,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no snapshot at seq {seq}")
        seq_, log_seq, log_head, state_hash, ts, data, digest, journal_head = row
        if not isinstance(data, bytes) or not isinstance(ts, int) or not isinstance(log_seq, int):
            raise CorruptRecord(f"snapshot seq {seq}", "a column has the wrong type")
        info = SnapshotInfo(
            seq_, log_seq, _text(log_head), _text(state_hash), ts, len(data), _text(journal_head)
        )
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
