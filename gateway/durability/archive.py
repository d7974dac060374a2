"""Segments archived to files, so that the live journal and log tables stop growing.

A segment is a run of consecutive rows of one kind (`JOURNAL` rows or settlement-log
records, `LOG`) that the oldest kept snapshot covers, moved out of its live table
(store.py `archive_journal`, `archive_log`) into `archive/<prefix>-<first>-<last>.seg`
in the data folder (sequence numbers zero-padded to 12 digits, so names sort in order):

    MAGIC | header length (4 bytes, big-endian) | header (msgpack `SegmentHeader`) | body
    body: chunks, each a 4-byte length and a msgpack array of rows, at most `CHUNK_ROWS`
          rows per chunk; a row is the kind's shape:
          journal  [seq, ts, log_seq, cmd, hash]   (hash: 32 bytes)
          log      [seq, record, hash]             (hash: hex, as the log table keeps it)

Each kind has its own magic and file-name prefix, so a segment of one kind can never be read
as the other. The header holds the segment's first and last seq, the hash before its first
row (`first_prev`), its last row's hash (both hex), the row count and the body's length and
SHA-256. The store keeps the same header as a row of its `archive` (journal) or
`log_archive` table, written in the transaction that deletes the rows, so a start can check
the archived chain cheaply through those recorded heads (every segment present, its header
the recorded one, each segment's `first_prev` the previous one's `last_hash`), while a full
check (`tonne log verify`, `recover --check --full`) reads and re-hashes every archived row.
Files are written to a temporary name, fsynced, renamed and the folder fsynced, so a crash
leaves either no segment or a whole one (a file the table does not name is ignored, and
overwritten by the next archive of the same rows).

Only this module knows the file format; it raises `SegmentError` and the store names the
segment.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

ARCHIVE_DIR = "archive"
CHUNK_ROWS = 4096  # rows per length-prefixed chunk of a segment's body
HEADER_BYTES_MAX = 4096  # a header longer than this is damage, not a header

_LEN = struct.Struct(">I")

JournalRow = tuple[int, int, int, bytes, bytes]  # seq, ts, log_seq, cmd, hash
LogRow = tuple[int, bytes, str]  # seq, record, hash (hex)
Row = tuple[Any, ...]  # one kind's row: seq first


class SegmentError(Exception):
    """A segment file that is missing, unreadable or not what its header says."""


class SegmentHeader(msgspec.Struct, frozen=True, array_like=True):
    """What a segment holds: rows `first_seq..last_seq`, chained from `first_prev` to
    `last_hash` (hex), and its body's length and SHA-256 (hex)."""

    first_seq: int
    last_seq: int
    first_prev: str
    last_hash: str
    rows: int
    body_bytes: int
    body_sha256: str


class SegmentKind:
    """One kind of segment: its file names' prefix, its magic, what it is called in
    messages, the shape of its rows and where a row keeps its chain hash."""

    __slots__ = ("prefix", "magic", "what", "last_hash", "_decode_chunk")

    def __init__(
        self, prefix: str, magic: bytes, what: str, row_type: Any, last_hash: Callable[[Row], str]
    ) -> None:
        self.prefix = prefix
        self.magic = magic
        self.what = what  # "journal": a segment is named "journal archive segment 1-50"
        self.last_hash = last_hash  # a row's chain hash, hex
        self._decode_chunk = msgspec.msgpack.Decoder(list[row_type]).decode

    def decode_chunk(self, data: bytes | memoryview) -> list[Row]:
        rows: list[Row] = self._decode_chunk(data)
        return rows


JOURNAL = SegmentKind(
    "journal", b"TONNE-JOURNAL-SEGMENT-1\n", "journal", JournalRow, lambda r: bytes(r[4]).hex()
)
LOG = SegmentKind("log", b"TONNE-LOG-SEGMENT-1\n", "settlement log", LogRow, lambda r: str(r[2]))

_encode = msgspec.msgpack.Encoder().encode
_decode_header = msgspec.msgpack.Decoder(SegmentHeader).decode


def segment_name(kind: SegmentKind, first_seq: int, last_seq: int) -> str:
    return f"{kind.prefix}-{first_seq:012d}-{last_seq:012d}.seg"


def write_segment(
    folder: Path, kind: SegmentKind, rows: Sequence[Row], first_prev: str
) -> tuple[str, SegmentHeader]:
    """Write `rows` (consecutive, already checked) as one segment file of `kind`, durably;
    its file name and header. `first_prev` is the chain hash before the first row (hex)."""
    if not rows:
        raise ValueError("a segment holds at least one row")
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    chunks = []
    for i in range(0, len(rows), CHUNK_ROWS):
        data = _encode(list(rows[i : i + CHUNK_ROWS]))
        chunk = _LEN.pack(len(data)) + data
        digest.update(chunk)
        chunks.append(chunk)
    header = SegmentHeader(
        rows[0][0],
        rows[-1][0],
        first_prev,
        kind.last_hash(rows[-1]),
        len(rows),
        sum(len(c) for c in chunks),
        digest.hexdigest(),
    )
    name = segment_name(kind, header.first_seq, header.last_seq)
    head = _encode(header)
    tmp = folder / (name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(kind.magic + _LEN.pack(len(head)) + head)
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    _fsync_dir(folder)
    return name, header


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header(path: Path, kind: SegmentKind) -> tuple[SegmentHeader, int]:
    """A segment's header and the offset of its body; `SegmentError` if the file is missing,
    not a segment of `kind`, or its length is not the header's."""
    magic = kind.magic
    try:
        with open(path, "rb") as f:
            start = f.read(len(magic) + _LEN.size)
            if len(start) < len(magic) + _LEN.size or not start.startswith(magic):
                raise SegmentError(f"not a {kind.what} segment")
            (n,) = _LEN.unpack_from(start, len(magic))
            if n > HEADER_BYTES_MAX:
                raise SegmentError("its header is damaged")
            try:
                header = _decode_header(f.read(n))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise SegmentError(f"its header is damaged: {exc}") from None
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise SegmentError("the file is missing") from None
    except OSError as exc:
        raise SegmentError(f"unreadable: {exc}") from None
    body_at = len(start) + n
    if size != body_at + header.body_bytes:
        raise SegmentError(f"{size} bytes, its header says {body_at + header.body_bytes}")
    return header, body_at


def read_rows(path: Path, kind: SegmentKind) -> Iterator[Row]:
    """Every row of a segment, in order. The body is read whole (a segment is a bounded
    number of rows) and its SHA-256 checked against the header before the first row is
    yielded, so a changed byte anywhere in it is found before any row is used; each row's
    chain is the caller's to check, as it goes."""
    header, body_at = read_header(path, kind)
    try:
        with open(path, "rb") as f:
            f.seek(body_at)
            body = f.read(header.body_bytes)
    except OSError as exc:
        raise SegmentError(f"unreadable: {exc}") from None
    if len(body) != header.body_bytes:
        raise SegmentError("its body is cut short")
    if hashlib.sha256(body).hexdigest() != header.body_sha256:
        raise SegmentError("its body's SHA-256 is not the header's")
    view, pos = memoryview(body), 0
    while pos < len(body):
        if len(body) - pos < _LEN.size:
            raise SegmentError("its body is cut short")
        (n,) = _LEN.unpack_from(body, pos)
        pos += _LEN.size
        if n > len(body) - pos:
            raise SegmentError("its body is cut short")
        try:
            rows = kind.decode_chunk(view[pos : pos + n])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SegmentError(f"a chunk does not decode: {exc}") from None
        pos += n
        yield from rows
