"""`tonne journal`: operators migrate a data folder's store and archive its journal and log.

    tonne journal migrate [--data DIR]   upgrade a schema-1 store (chain its journal rows)
    tonne journal archive [--data DIR]   move the journal rows and settlement-log records the
                                         oldest snapshot covers to archive/journal-*.seg and
                                         archive/log-*.seg, in segments

`archive` moves whole segments of `--segment-rows` rows (gateway/durability/archive.py),
only journal rows at or below the oldest stored snapshot and log records at or below its log
position, so every kept snapshot can still start without them; what is left over (less than
a segment) stays live. Each log record is re-hashed before it is sealed into a segment: a
damaged one refuses the archive, naming it. `tonne serve --archive` does the same after
every snapshot. Run this command while no server runs on the folder: a server's writer and
this command would wait on each other's transactions.
"""

from __future__ import annotations

import argparse
import sys

from gateway.durability.chaincheck import ChainError, chain_check
from gateway.durability.journal import SettlementCodec
from gateway.durability.store import ARCHIVE_SEGMENT_ROWS, SQLiteStore, StoreError, default_data_dir


def archive_covered(
    store: SQLiteStore, segment_rows: int = ARCHIVE_SEGMENT_ROWS
) -> tuple[int, int]:
    """Archive every whole segment the oldest stored snapshot covers, of the journal and of
    the log; (journal rows, log records) moved."""
    snapshots = store.snapshots()
    if not snapshots:
        return 0, 0
    oldest = snapshots[-1]
    check = chain_check(SettlementCodec())
    rows = records = 0
    while n := store.archive_journal(oldest.seq, segment_rows):
        rows += n
    while n := store.archive_log(oldest.log_seq, segment_rows, check):
        records += n
    return rows, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tonne journal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("migrate", help="upgrade a schema-1 store to this build's schema")
    p_archive = sub.add_parser("archive", help="archive what the oldest snapshot covers")
    p_archive.add_argument(
        "--segment-rows", type=int, default=ARCHIVE_SEGMENT_ROWS, help="rows per segment"
    )
    for p in sub.choices.values():
        p.add_argument("--data", default=default_data_dir(), help="the data folder")
    args = parser.parse_args(argv)
    try:
        SQLiteStore(args.data, readonly=True).close()  # a missing folder is not created
    except StoreError as exc:
        if "schema 1" not in str(exc):
            print(f"tonne journal: {exc}", file=sys.stderr)
            return 2
    try:
        store = SQLiteStore(args.data)
    except StoreError as exc:
        print(f"tonne journal: {exc}", file=sys.stderr)
        return 1
    with store:
        if args.what == "migrate":
            was = store.migrated_from
            print(f"schema {was} -> current" if was else "already at the current schema")
            return 0
        if args.segment_rows < 1:
            print("tonne journal: --segment-rows must be at least 1", file=sys.stderr)
            return 2
        try:
            rows, records = archive_covered(store, args.segment_rows)
        except (StoreError, ChainError) as exc:
            print(f"tonne journal: cannot archive: {exc}", file=sys.stderr)
            return 1
        segments, log_segments = store.segments(), store.log_segments()
        print(
            f"archived {rows} journal rows and {records} settlement records; journal: "
            f"{len(segments)} segments hold {sum(s.rows for s in segments)} rows, "
            f"{store.count('journal')} rows live; log: {len(log_segments)} segments hold "
            f"{sum(s.rows for s in log_segments)} records, {store.count('log')} records live"
        )
        return 0
