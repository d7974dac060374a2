"""`tonne recover --check DIR`: rebuild the state from a data folder and report, without serving.

Reports the snapshot used (and any set aside, with why), the commands replayed, the journal
and log positions, the log head and state hash, and the time taken. `--full` also replays the
whole journal from genesis (re-hashing every archived settlement record first) and checks
that it reaches the same state hash. Exit 0 when the folder would start cleanly, 1 (naming
the first bad record) when a server would refuse to.
"""

from __future__ import annotations

import argparse
import sys

from gateway.durability.archive import SegmentHeader
from gateway.durability.recovery import RecoveryError, recover
from gateway.durability.store import SQLiteStore, StoreError, default_data_dir


def _archived(segments: list[SegmentHeader]) -> str:
    """What the archive holds, as `, 688,128 in 42 archived segments` (or nothing)."""
    if not segments:
        return ""
    return f", {sum(s.rows for s in segments):,} in {len(segments)} archived segments"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tonne recover", description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="DIR", help="the data folder to rebuild")
    parser.add_argument("--data", help="the same as --check DIR")
    parser.add_argument("--full", action="store_true", help="also replay from genesis")
    args = parser.parse_args(argv)
    folder = args.check or args.data or default_data_dir()
    try:
        store = SQLiteStore(folder, readonly=True)
    except StoreError as exc:
        print(f"tonne recover: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            got = recover(store)
        except RecoveryError as exc:
            print(f"tonne recover: REFUSE to start: {exc}")
            return 1
        print(f"data folder     {folder}")
        journal_archived = _archived(store.segments())
        log_archived = _archived(store.log_segments())
        print(
            f"chains          journal to seq {got.seq:,}{journal_archived} and log to seq "
            f"{got.log_seq:,}{log_archived} checked from genesis in {got.chains_s:.3f} s"
        )
        stored = ", ".join(f"seq {s.seq} ({s.size_bytes:,} bytes)" for s in store.snapshots())
        print(f"snapshots       {stored or 'none'}")
        print(f"snapshot used   {f'seq {got.snapshot_seq}' if got.snapshot_seq else 'none'}")
        for reason in got.skipped:
            print(f"set aside       {reason}")
        print(f"replayed        {got.replayed} commands to journal seq {got.seq}")
        print(f"settlement log  seq {got.log_seq}, head {got.log_head or '-'}")
        checked = " (matches a snapshot at this seq)" if got.checked_state_hash else ""
        print(f"state hash      {got.state_hash}{checked}")
        print(f"time            {got.elapsed_s:.3f} s")
        if args.full:
            try:
                full = recover(store, use_snapshots=False)
            except RecoveryError as exc:
                print(f"tonne recover: full replay REFUSES: {exc}")
                return 1
            same = full.state_hash == got.state_hash and full.seq == got.seq
            print(
                f"full replay     {full.replayed} commands, state hash "
                f"{'matches' if same else 'DIFFERS: ' + full.state_hash}, {full.elapsed_s:.3f} s"
            )
            if not same:
                return 1
        got.core.check_invariants()
        print("invariants      hold")
        return 0
    finally:
        store.close()
