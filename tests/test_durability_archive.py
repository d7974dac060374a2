"""Archived journal segments: the live journal stops growing, and every check still holds.

A folder built by the real core and journal with archiving on (small segments, a snapshot
every 100 commands, two kept): the rows the oldest kept snapshot covers move to segment files,
a start checks the archive through its recorded heads (cheap), and `log verify` and
`recover --check --full` re-hash every archived row.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bench.funding import funding_commands
from bench.workload import generate
from gateway.cli import journalcmd, logcmd, recover
from gateway.durability.journal import Journal
from gateway.durability.recovery import recover as recover_store
from gateway.durability.recovery import save_genesis
from gateway.durability.store import SQLiteStore, db_path
from settlement.core import Core

TIMEOUT_S = 10.0
COMMANDS = 600
SEGMENT_ROWS = 50
SNAPSHOT_EVERY = 100
KEPT = 2


def _build(folder, *, archive_rows: int, writer_process: bool = False) -> Core:
    workload = generate(COMMANDS, seed=6)
    setup = list(funding_commands(workload.series, 20, ts=workload.commands[0].ts - 1))
    core = Core(series=workload.series)

    async def main() -> None:
        store = SQLiteStore(folder)
        save_genesis(store, series=workload.series)
        journal = Journal(
            store,
            core=core,
            snapshot_every=SNAPSHOT_EVERY,
            snapshots_kept=KEPT,
            snapshot_fork=False,
            writer_process=writer_process,
            archive_segment_rows=archive_rows,
        )
        for cmd in [*setup, *workload.commands]:
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
            if journal.backlog >= 20:
                await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        await journal.close(snapshot=True)
        store.close()

    asyncio.run(main())
    return core


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    path = tmp_path_factory.mktemp("archived")
    core = _build(path, archive_rows=SEGMENT_ROWS)
    return path, core.state_hash()


def _copy(src, dst) -> None:
    with sqlite3.connect(db_path(src)) as a, sqlite3.connect(db_path(dst)) as b:
        a.backup(b)
    a.close()
    b.close()
    (dst / "archive").mkdir()
    for f in (src / "archive").iterdir():
        (dst / "archive" / f.name).write_bytes(f.read_bytes())


def test_archiving_keeps_only_what_the_oldest_kept_snapshot_needs_live(archived):
    path, _ = archived
    with SQLiteStore(path, readonly=True) as store:
        oldest = store.snapshots()[-1].seq
        segments = store.segments()
        live = store.count("journal")
        head = store.head()
    assert segments and segments[0].first_seq == 1
    archived_rows = sum(s.rows for s in segments)
    assert archived_rows + live == head.seq
    assert oldest - SEGMENT_ROWS < segments[-1].last_seq <= oldest  # no covered segment left
    names = sorted(f.name for f in (path / "archive").glob("journal-*"))
    assert len(names) == len(segments) and names[0] == "journal-000000000001-000000000050.seg"


def test_a_start_from_an_archived_folder_equals_a_replay_through_the_segments(archived, capsys):
    path, state_hash = archived
    with SQLiteStore(path, readonly=True) as store:
        fast = recover_store(store)
        full = recover_store(store, use_snapshots=False)
    assert fast.state_hash == full.state_hash == state_hash
    assert full.replayed == full.seq  # from genesis, through every segment
    assert recover.main(["--check", str(path), "--full"]) == 0
    assert logcmd.main(["verify", "--data", str(path)]) == 0
    assert f"journal {full.seq} commands" in capsys.readouterr().out


def test_the_writer_process_archives_the_same_way(tmp_path, archived):
    path, state_hash = archived
    _build(tmp_path, archive_rows=SEGMENT_ROWS, writer_process=True)
    with SQLiteStore(tmp_path, readonly=True) as a, SQLiteStore(path, readonly=True) as b:
        assert [s.last_seq for s in a.segments()] == [s.last_seq for s in b.segments()]
        assert a.log_segments() and a.log_segments() == b.log_segments()
        assert recover_store(a).state_hash == state_hash


def test_a_byte_changed_in_an_archived_row_is_named_by_the_full_checks(archived, tmp_path, capsys):
    path, _ = archived
    _copy(path, tmp_path)
    seg = sorted((tmp_path / "archive").iterdir())[1]
    data = bytearray(seg.read_bytes())
    data[-100] ^= 0x01
    seg.write_bytes(bytes(data))
    assert logcmd.main(["verify", "--data", str(tmp_path)]) == 1
    assert recover.main(["--check", str(tmp_path), "--full"]) == 1
    out = capsys.readouterr().out
    assert out.count("journal archive segment 51-100") + out.count("(archived in") >= 2, out


@pytest.mark.parametrize("damage", ["file missing", "file cut short", "row deleted"])
def test_a_start_refuses_a_damaged_archive_naming_the_segment(archived, tmp_path, damage, capsys):
    path, _ = archived
    _copy(path, tmp_path)
    seg = tmp_path / "archive" / "journal-000000000051-000000000100.seg"
    if damage == "file missing":
        seg.unlink()
    elif damage == "file cut short":
        seg.write_bytes(seg.read_bytes()[:-10])
    else:
        with sqlite3.connect(db_path(tmp_path)) as db:
            db.execute("DELETE FROM archive WHERE first_seq = 51")
        db.close()
    assert recover.main(["--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    expected = "journal archive segment 101-150" if damage == "row deleted" else "segment 51-100"
    assert "REFUSE" in out and expected in out, out


def test_tonne_journal_archive_moves_what_the_oldest_snapshot_covers(tmp_path, capsys):
    core = _build(tmp_path, archive_rows=0)
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert not store.segments()
        oldest = store.snapshots()[-1].seq
    assert journalcmd.main(["archive", "--data", str(tmp_path), "--segment-rows", "64"]) == 0
    assert "archived" in capsys.readouterr().out
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert store.segments()[-1].last_seq == oldest // 64 * 64
        assert recover_store(store, use_snapshots=False).state_hash == core.state_hash()
