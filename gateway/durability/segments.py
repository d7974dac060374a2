"""The store's archive of one kind of row: segment files and the table of their headers.

`SegmentTable` is the part of `SQLiteStore` (store.py) that the journal's archive
(`archive` table, `journal-*.seg`) and the settlement log's (`log_archive` table,
`log-*.seg`) share: listing the recorded segments, checking them cheaply through their
recorded heads, reading one segment's rows back (checked against its recorded header), and
moving a run of live rows into a new segment. The file format is archive.py's; each
row's own chain (its hash recomputed from the one before) is the store's to check, since
only it knows how a row of each kind is hashed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from gateway.durability import archive
from gateway.durability.storeerrors import CorruptRecord

_COLUMNS = "first_seq, last_seq, first_prev, last_hash, rows, body_bytes, body_sha256"


class SegmentTable:
    """The archived segments of one kind: recorded in `table`, their files in `folder`,
    moved out of the live table `live_table`; `genesis` is the hash (hex) before row 1."""

    def __init__(
        self,
        db: sqlite3.Connection,
        folder: Path,
        kind: archive.SegmentKind,
        *,
        table: str,
        live_table: str,
        genesis: str,
    ) -> None:
        self._db = db
        self.folder = folder
        self.kind = kind
        self.table = table
        self.live_table = live_table
        self.genesis = genesis

    def what(self, seg: archive.SegmentHeader) -> str:
        return f"{self.kind.what} archive segment {seg.first_seq}-{seg.last_seq}"

    def path(self, seg: archive.SegmentHeader) -> Path:
        return self.folder / archive.segment_name(self.kind, seg.first_seq, seg.last_seq)

    def headers(self) -> list[archive.SegmentHeader]:
        """The recorded segments, in order; none when the table does not exist (a folder
        from before it, opened read-only: a writable open creates it)."""
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM {self.table} ORDER BY first_seq"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        try:
            return [archive.SegmentHeader(*row) for row in rows]
        except (TypeError, msgspec.ValidationError) as exc:
            raise CorruptRecord(f"the {self.table} table", str(exc)) from None

    def check(self) -> tuple[int, str]:
        """The recorded heads, cheaply: segments consecutive from seq 1, each chained to
        the one before, each file present with the recorded header and length. Where the
        archived chain ends: (seq, hash hex); (0, genesis) with no segment."""
        pos, prev = 0, self.genesis
        for seg in self.headers():
            self.check_follows(seg, pos, prev)
            self.check_file(seg)
            pos, prev = seg.last_seq, seg.last_hash
        return pos, prev

    def check_follows(self, seg: archive.SegmentHeader, pos: int, prev: str) -> None:
        """`seg` must start right after seq `pos`, whose hash is `prev`."""
        if seg.first_seq != pos + 1 or seg.first_prev != prev:
            raise CorruptRecord(self.what(seg), "it does not follow the segment before")

    def check_file(self, seg: archive.SegmentHeader) -> None:
        """The segment's file is there, of the recorded length, with the recorded header."""
        try:
            header, _ = archive.read_header(self.path(seg), self.kind)
        except archive.SegmentError as exc:
            raise CorruptRecord(self.what(seg), str(exc)) from None
        if header != seg:
            raise CorruptRecord(self.what(seg), "its header is not the one the store recorded")

    def rows(self, seg: archive.SegmentHeader) -> Iterator[archive.Row]:
        """A segment's rows, in order, once its file matches the recorded header (length,
        header, body SHA-256): consecutive from `first_seq`, ending at `last_seq` with
        `last_hash`. Their chain hashes are the caller's to recompute."""
        self.check_file(seg)
        what = self.what(seg)
        pos, last = seg.first_seq - 1, None
        try:
            for row in archive.read_rows(self.path(seg), self.kind):
                if row[0] != pos + 1:
                    raise CorruptRecord(what, f"row {pos + 1} is missing (the next is {row[0]})")
                pos, last = row[0], row
                yield row
        except archive.SegmentError as exc:
            raise CorruptRecord(what, str(exc)) from None
        if pos != seg.last_seq or last is None or self.kind.last_hash(last) != seg.last_hash:
            raise CorruptRecord(what, "it does not end where its header says")

    def move(self, rows: Sequence[archive.Row], first_prev: str) -> archive.SegmentHeader:
        """Write `rows` (consecutive, checked, the first live ones) to a segment file, then
        in one transaction record its header and delete them from the live table."""
        name, header = archive.write_segment(self.folder, self.kind, rows, first_prev)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                f"INSERT INTO {self.table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*msgspec.structs.astuple(header), name),
            )
            db.execute(f"DELETE FROM {self.live_table} WHERE seq <= ?", (header.last_seq,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return header
