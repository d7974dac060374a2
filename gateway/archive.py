"""Journal segments archived to files, so that the live journal table stops growing.

A segment is a run of consecutive journal rows that a kept snapshot covers, moved out of the
live table (gateway/store.py `archive_journal`) into `archive/journal-<first>-<last>.seg` in
the data folder (sequence numbers zero-padded to 12 digits, so names sort in order):

    MAGIC | header length (4 bytes, big-endian) | header (msgpack `SegmentHeader`) | body
    body: chunks, each a 4-byte length and a msgpack array of rows
          [seq, ts, log_seq, cmd, hash], at most `CHUNK_ROWS` rows per chunk

The header holds the segment's first and last seq, the hash before its first row
(`first_prev`), its last row's hash, the row count and the body's length and SHA-256. The
store keeps the same header as a row of its `archive` table, written in the transaction that
deletes the rows, so a start can check the archived chain cheaply through those recorded
heads (every segment present, its header the recorded one, each segment's `first_prev` the
previous one's `last_hash`), while a full check (`tonne log verify`, `recover --check --full`)
re-hashes every archived row. Files are written to a temporary name, fsynced, renamed and the
folder fsynced, so a crash leaves either no segment or a whole one (a file the table does not
name is ignored, and overwritten by the next archive of the same rows).

Only this module knows the file format; it raises `SegmentError` and the store names the
segment.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

MAGIC = b"TONNE-JOURNAL-SEGMENT-1\n"
ARCHIVE_DIR = "archive"
CHUNK_ROWS = 4096  # rows per length-prefixed chunk of a segment's body
HEADER_BYTES_MAX = 4096  # a header longer than this is damage, not a header

_LEN = struct.Struct(">I")

Row = tuple[int, int, int, bytes, bytes]  # seq, ts, log_seq, cmd, hash


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


_encode = msgspec.msgpack.Encoder().encode
_decode_header = msgspec.msgpack.Decoder(SegmentHeader).decode
_decode_chunk = msgspec.msgpack.Decoder(list[tuple[int, int, int, bytes, bytes]]).decode


def segment_name(first_seq: int, last_seq: int) -> str:
    return f"journal-{first_seq:012d}-{last_seq:012d}.seg"


def write_segment(
    folder: Path, rows: Sequence[Row], first_prev: bytes
) -> tuple[str, SegmentHeader]:
    """Write `rows` (consecutive, already checked) as one segment file, durably; its file
    name and header."""
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
        first_prev.hex(),
        rows[-1][4].hex(),
        len(rows),
        sum(len(c) for c in chunks),
        digest.hexdigest(),
    )
    name = segment_name(header.first_seq, header.last_seq)
    head = _encode(header)
    tmp = folder / (name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + _LEN.pack(len(head)) + head)
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


def read_header(path: Path) -> tuple[SegmentHeader, int]:
    """A segment's header and the offset of its body; `SegmentError` if the file is missing
    or its length is not the header's."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(MAGIC) + _LEN.size)
            if len(start) < len(MAGIC) + _LEN.size or not start.startswith(MAGIC):
                raise SegmentError("not a journal segment")
            (n,) = _LEN.unpack_from(start, len(MAGIC))
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


def read_rows(path: Path) -> Iterator[Row]:
    """Every row of a segment, in order; the body's SHA-256 is checked at its end (each row's
    chain hash is the caller's to check, as it goes)."""
    header, body_at = read_header(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(body_at)
        left = header.body_bytes
        while left > 0:
            size_b = f.read(_LEN.size)
            if len(size_b) < _LEN.size:
                raise SegmentError("its body is cut short")
            (n,) = _LEN.unpack(size_b)
            data = f.read(n)
            if len(data) < n or n + _LEN.size > left:
                raise SegmentError("its body is cut short")
            digest.update(size_b + data)
            left -= n + _LEN.size
            try:
                rows = _decode_chunk(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise SegmentError(f"a chunk does not decode: {exc}") from None
            yield from rows
    if digest.hexdigest() != header.body_sha256:
        raise SegmentError("its body's SHA-256 is not the header's")
