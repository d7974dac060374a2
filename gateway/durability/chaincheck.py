"""What every start checks before it replays: both chains, from genesis, hashes only.

Recovery replays only the journal after the newest snapshot, so by itself it would never read
what lies before it: a changed byte, a deleted or a swapped row there would go unseen. So a
start first walks

- the journal: the archive's recorded heads (archive.py), then every live row, each
  row's hash recomputed from the previous one (`Store.check_journal`);
- the settlement log: the log archive's recorded heads (`Store.check_log_archive`: every
  segment present, of the recorded length, with the recorded header, chained to the one
  before), then every live record, decoded, its hash recomputed from the previous record's,
  the first from the last segment's recorded last hash (`check_log`). With `full` (the
  audit: `tonne log verify`, `tonne recover --check --full`) every archived record is read
  and re-hashed too;

and compares where each chain ends with the heads the store recorded in the same transaction
as the last commit (`check_ends`): rows deleted from the end contradict the recorded head.
Each check collects the hashes at the snapshots' positions (`pins`), so a snapshot is used
only if the chain passes through exactly the heads it recorded. A pin at an archived
segment's end is its recorded last hash; a pin inside a segment costs reading that segment
(no kept snapshot lies inside the archive: only what the oldest kept snapshot covers is
archived, so this happens only on a folder archived by hand past it). No command is decoded
and nothing is replayed: measured at 10^6 commands in README.md (Durability).

`check_links` is the audit's extra step (`tonne log verify`): it reads the archived journal
too and checks that every settlement record belongs to a journaled command (each journal row
names the log's last record after it, and the records in between carry its timestamp) and
that the counts agree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import msgspec

from gateway.durability.store import LOG_SEQ_UNKNOWN, Head, LogRow, Store
from gateway.server.clock import NS_PER_S, SystemClock


class ChainError(Exception):
    """A chain that does not hold; the message names the first bad record."""


class Checked(msgspec.Struct):
    """Where both chains end, the hashes at the requested positions, and the time taken."""

    seq: int
    journal_head: str
    log_seq: int
    log_head: str
    journal_pins: dict[int, str]
    log_pins: dict[int, str]
    elapsed_s: float


def check_chains(
    store: Store,
    codec: Any,
    *,
    seq_pins: Collection[int] = (),
    log_pins: Collection[int] = (),
    full: bool = False,
    monotonic_ns: Callable[[], int] | None = None,
) -> Checked:
    """Check both chains from genesis and their ends against the recorded heads; the log's
    archive through its recorded heads, or with `full` record by record."""
    monotonic_ns = monotonic_ns or SystemClock().monotonic_ns
    started = monotonic_ns()
    seq, last_hash, pinned = store.check_journal(pins=seq_pins)
    journal_head = last_hash.hex()
    journal_pins = {s: h.hex() for s, h in pinned.items()}
    if full:
        log_seq, log_head, pinned_log = check_log(store.records(0), codec, log_pins)
    else:
        log_seq, log_head, pinned_log = check_log_through_archive(store, codec, log_pins)
    check_ends(store.head(), seq, journal_head, log_seq, log_head)
    return Checked(
        seq,
        journal_head,
        log_seq,
        log_head,
        journal_pins,
        pinned_log,
        (monotonic_ns() - started) / NS_PER_S,
    )


def check_log_through_archive(
    store: Store, codec: Any, pins: Collection[int] = ()
) -> tuple[int, str, dict[int, str]]:
    """The settlement log's chain, cheaply: the archive's recorded heads, then every live
    record re-hashed, chained from the last segment's recorded hash. `check_log`'s result."""
    pos, prev = store.check_log_archive()
    pinned: dict[int, str] = {}
    for seg in store.log_segments() if pins else ():
        if seg.last_seq in pins:
            pinned[seg.last_seq] = seg.last_hash
        if any(seg.first_seq <= p < seg.last_seq for p in pins):  # only a full read tells
            before = (seg.first_seq - 1, seg.first_prev)
            rows = store.records(seg.first_seq - 1, seg.last_seq)
            pinned.update(check_log(rows, codec, pins, start=before)[2])
    after = (pos, prev) if pos else None  # no segment: from the codec's genesis
    seq, head, live = check_log(store.records(pos), codec, pins, start=after)
    pinned.update(live)
    return seq, head, pinned


def check_log(
    rows: Iterator[LogRow],
    codec: Any,
    pins: Collection[int] = (),
    *,
    start: tuple[int, str] | None = None,
) -> tuple[int, str, dict[int, str]]:
    """Walk the settlement log's chain: consecutive, each record's prev the previous hash
    and its hash recomputed by `codec.record_hash`, from genesis or from `start` (the seq
    and hash before the first row); (last seq, its hash, pinned hashes)."""
    decode, rehash = codec.decode_record, codec.record_hash
    seq, prev = start if start is not None else (0, codec.log_genesis)
    pinned: dict[int, str] = {}
    for row in rows:
        if row.seq != seq + 1:
            raise ChainError(f"settlement log record seq {seq + 1} is missing (next is {row.seq})")
        try:
            record = decode(row.record)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ChainError(f"settlement log record seq {row.seq} does not decode: {exc}") from exc
        if record.seq != row.seq or record.prev != prev:
            raise ChainError(
                f"settlement log record seq {row.seq} is corrupt: it does not follow record "
                f"{seq} (records removed, inserted or swapped?)"
            )
        if record.hash != row.hash or rehash(record) != row.hash:
            raise ChainError(
                f"settlement log record seq {row.seq} is corrupt: its hash does not match it"
            )
        seq, prev = row.seq, row.hash
        if seq in pins:
            pinned[seq] = prev
    return seq, (prev if seq else ""), pinned


def chain_check(codec: Any) -> Callable[[Sequence[LogRow], str], None]:
    """`check(records, prev)`: that consecutive records chain from the hash `prev` (before
    they are archived: `SQLiteStore.archive_log`); `ChainError` naming the first that does
    not."""

    def check(records: Sequence[LogRow], prev: str) -> None:
        if records:
            check_log(iter(records), codec, start=(records[0].seq - 1, prev))

    return check


def check_ends(head: Head, seq: int, journal_head: str, log_seq: int, log_head: str) -> None:
    """The chains must end exactly at the heads recorded with the last commit."""
    if seq < head.seq:
        raise ChainError(
            f"journal record seq {seq + 1} is missing: the journal ends at seq {seq}, but the "
            f"store recorded its head at seq {head.seq} (rows deleted from the end?)"
        )
    if seq > head.seq or journal_head != head.journal_head:
        raise ChainError(
            f"journal record seq {head.seq + 1 if seq > head.seq else seq} is not the recorded "
            f"head (seq {head.seq}, hash {head.journal_head[:16]})"
        )
    if log_seq < head.log_seq:
        raise ChainError(
            f"settlement log record seq {log_seq + 1} is missing: the log ends at seq "
            f"{log_seq}, but the store recorded its head at seq {head.log_seq}"
        )
    if log_seq > head.log_seq or log_head != head.log_head:
        raise ChainError(
            f"settlement log record seq {head.log_seq + 1 if log_seq > head.log_seq else log_seq}"
            f" is not the recorded head (seq {head.log_seq}, hash {head.log_head[:16]})"
        )


def check_links(store: Store, codec: Any) -> tuple[int, int]:
    """Every settlement record belongs to a journaled command and the counts agree: each
    journal row's `log_seq` says where the log stood after it, and the records in between
    carry the command's timestamp. Reads the whole journal, archived segments included
    (each re-hashed). (commands, records) on success; `ChainError` naming the first break."""
    records = store.records(0)
    log_seq = commands = 0
    loose = False  # rows without a log_seq came before: their records cannot be attributed
    for row in store.commands(0):
        commands += 1
        if row.log_seq == LOG_SEQ_UNKNOWN:  # migrated from schema 1: not recorded
            loose = True
            continue
        if row.log_seq < log_seq:
            raise ChainError(
                f"journal record seq {row.seq} says the log stood at record {row.log_seq}, "
                f"behind record {log_seq} of an earlier command"
            )
        while log_seq < row.log_seq:
            rec_row = next(records, None)
            if rec_row is None:
                raise ChainError(
                    f"settlement log record seq {log_seq + 1} is missing: journal record seq "
                    f"{row.seq} produced records through {row.log_seq}"
                )
            log_seq = rec_row.seq
            if not loose and codec.decode_record(rec_row.record).ts != row.ts:
                raise ChainError(
                    f"settlement log record seq {rec_row.seq} does not belong to journal record "
                    f"seq {row.seq} (their timestamps differ)"
                )
        loose = False
    extra = next(records, None)
    if extra is not None and not loose:
        raise ChainError(
            f"settlement log record seq {extra.seq} belongs to no journaled command (the last "
            f"command, seq {commands}, left the log at record {log_seq})"
        )
    return commands, log_seq
