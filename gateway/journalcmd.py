"""`tonne journal`: operators migrate a data folder's store and archive its journal.

    tonne journal migrate [--data DIR]   upgrade a schema-1 store (chain its journal rows)
    tonne journal archive [--data DIR]   move journal rows the oldest snapshot covers to
                                         archive/journal-<first>-<last>.seg, in segments

`archive` moves whole segments of `--segment-rows` rows (gateway/archive.py), only rows at or
below the oldest stored snapshot, so every kept snapshot can still start without them; what
is left over (less than a segment) stays live. `tonne serve --archive-journal` does the same
after every snapshot. Run this command while no server runs on the folder: a server's writer
and this command would wait on each other's transactions.
"""

from __future__ import annotations

import argparse
import sys

from gateway.store import ARCHIVE_SEGMENT_ROWS, SQLiteStore, StoreError, default_data_dir


def archive_covered(store: SQLiteStore, segment_rows: int = ARCHIVE_SEGMENT_ROWS) -> int:
    """Archive every whole segment the oldest stored snapshot covers; rows moved."""
    snapshots = store.snapshots()
    if not snapshots:
        return 0
    through = snapshots[-1].seq
    moved = 0
    while n := store.archive_journal(through, segment_rows):
        moved += n
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tonne journal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("migrate", help="upgrade a schema-1 store to this build's schema")
    p_archive = sub.add_parser("archive", help="archive journal rows a snapshot covers")
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
        moved = archive_covered(store, args.segment_rows)
        segments = store.segments()
        print(
            f"archived {moved} journal rows; {len(segments)} segments hold "
            f"{sum(s.rows for s in segments)} rows, {store.count('journal')} rows live"
        )
        return 0
