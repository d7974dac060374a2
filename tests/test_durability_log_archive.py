"""Archived settlement-log segments: the live db stops growing, reading stays transparent,
a start checks the archive cheaply through its recorded heads, and tampering is named.

The folder is the journal archive tests' (tests/test_durability_archive.py: the real core and
journal, a snapshot every 100 commands, two kept, 50-row segments), whose log archive holds
records 1-200 in four segments and whose oldest kept snapshot stands at log record 248.
Segment files and the `log_archive` table are damaged directly; every start (`tonne recover
--check`, `tonne serve`) must refuse and name the segment, and the full checks (`tonne log
verify`, `tonne recover --check --full`) must find a byte changed inside one.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import sqlite3
import subprocess
import sys

import msgspec
import pytest

from gateway.cli import journalcmd, logcmd, recover, serve
from gateway.durability import archive
from gateway.durability.chaincheck import ChainError, chain_check, check_chains
from gateway.durability.journal import SettlementCodec
from gateway.durability.recovery import recover as recover_store
from gateway.durability.store import LOG_GENESIS, SQLiteStore, db_path, log_crc
from gateway.durability.writer_process import Archiver
from settlement.log import GENESIS
from tests.test_durability_archive import SEGMENT_ROWS, _build

SERVE_TIMEOUT_S = 60.0
SEGMENT = "settlement log archive segment 51-100"


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    path = tmp_path_factory.mktemp("log-archived")
    core = _build(path, archive_rows=SEGMENT_ROWS)
    return path, core.state_hash()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The same commands with nothing archived: what every read must still give."""
    path = tmp_path_factory.mktemp("log-whole")
    core = _build(path, archive_rows=0)
    return path, core.state_hash()


def _copy(src, dst) -> None:
    """A copy of a data folder: the db (by SQLite's backup) and its archive, if any."""
    with sqlite3.connect(db_path(src)) as a, sqlite3.connect(db_path(dst)) as b:
        a.backup(b)
    a.close()
    b.close()
    if (src / "archive").exists():
        (dst / "archive").mkdir()
        for f in (src / "archive").iterdir():
            (dst / "archive" / f.name).write_bytes(f.read_bytes())


def _seg(folder, first: int = 51, last: int = 100):
    return folder / "archive" / archive.segment_name(archive.LOG, first, last)


def _serve_start(folder, capsys) -> tuple[int, str]:
    """The start path of `tonne serve` (serve.serve, what its main runs), in this process."""
    stop = asyncio.Event()
    code = asyncio.run(
        serve.serve(folder, tcp_port=0, ws_port=0, ready=lambda info: stop.set(), stop=stop)
    )
    return code, capsys.readouterr().err


def test_the_store_keeps_its_own_copy_of_the_logs_genesis():
    assert LOG_GENESIS == GENESIS


def test_the_log_archive_keeps_live_only_what_the_oldest_kept_snapshot_needs(archived):
    path, _ = archived
    with SQLiteStore(path, readonly=True) as store:
        oldest = store.snapshots()[-1]
        segments, live, head = store.log_segments(), store.count("log"), store.head()
        assert store.count("log_archive") == len(segments)
        assert store.archived()[1] == sum(s.rows for s in segments)
    assert segments and segments[0].first_seq == 1 and segments[0].first_prev == GENESIS
    assert all(a.last_seq + 1 == b.first_seq for a, b in itertools.pairwise(segments))
    assert sum(s.rows for s in segments) + live == head.log_seq
    assert oldest.log_seq - SEGMENT_ROWS < segments[-1].last_seq <= oldest.log_seq
    names = sorted(f.name for f in (path / "archive").glob("log-*"))
    assert len(names) == len(segments) and names[0] == "log-000000000001-000000000050.seg"


def test_records_read_through_the_archive_exactly_as_from_a_whole_log(archived, whole):
    with SQLiteStore(archived[0], readonly=True) as a, SQLiteStore(whole[0], readonly=True) as b:
        assert a.log_segments() and not b.log_segments()
        assert list(a.records(0)) == list(b.records(0))
        assert list(a.records(75, 120)) == list(b.records(75, 120))  # across a segment end
        assert [r.seq for r in a.records(75, 120)] == list(range(76, 121))
        assert list(a.records(190)) == list(b.records(190))  # from the archive into live
        assert list(a.records(0, 0)) == []
        out_a, out_b = io.StringIO(), io.StringIO()
        logcmd.tail(a, out_a, after_seq=40)
        logcmd.tail(b, out_b, after_seq=40)
    assert out_a.getvalue() == out_b.getvalue() and out_a.getvalue()


def test_an_archived_folder_passes_every_check_and_replays_to_the_same_state(archived, capsys):
    path, state_hash = archived
    with SQLiteStore(path, readonly=True) as store:
        fast = recover_store(store)
        full = recover_store(store, use_snapshots=False)
        head = store.head()
    assert fast.state_hash == full.state_hash == state_hash
    assert logcmd.main(["verify", "--data", str(path)]) == 0
    assert recover.main(["--check", str(path), "--full"]) == 0
    out = capsys.readouterr().out
    assert f"{head.log_seq} records linked" in out
    assert f"log to seq {head.log_seq}, 200 in 4 archived segments" in out


def test_a_start_checks_the_log_archive_without_reading_a_record_of_it(archived, monkeypatch):
    path, state_hash = archived

    def no_reading(*args, **kwargs):
        raise AssertionError("a start read an archived segment's rows")

    monkeypatch.setattr(archive, "read_rows", no_reading)
    with SQLiteStore(path, readonly=True) as store:
        assert recover_store(store).state_hash == state_hash
        with pytest.raises(AssertionError, match="read an archived segment"):
            check_chains(store, SettlementCodec(), full=True)


def test_a_byte_changed_in_an_archived_record_is_named_by_the_full_checks(
    archived, tmp_path, capsys
):
    _copy(archived[0], tmp_path)
    seg = _seg(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-100] ^= 0x01
    seg.write_bytes(bytes(data))
    assert logcmd.main(["verify", "--data", str(tmp_path)]) == 1
    assert recover.main(["--check", str(tmp_path), "--full"]) == 1
    out = capsys.readouterr().out
    assert out.count(f"{SEGMENT} is corrupt: its body's SHA-256 is not the header's") == 2, out


def _rewrite_header(seg, **changes) -> None:
    header, body_at = archive.read_header(seg, archive.LOG)
    body = seg.read_bytes()[body_at:]
    head = msgspec.msgpack.encode(msgspec.structs.replace(header, **changes))
    seg.write_bytes(archive.LOG.magic + len(head).to_bytes(4, "big") + head + body)


def _damage(folder, damage: str) -> str:
    """Damage the log archive of `folder`; what a start must name."""
    seg = _seg(folder)
    if damage == "file deleted":
        seg.unlink()
    elif damage == "file cut short":
        seg.write_bytes(seg.read_bytes()[:-10])
    elif damage == "file header changed":
        header, _ = archive.read_header(seg, archive.LOG)
        _rewrite_header(seg, body_sha256=header.body_sha256[::-1])  # same length
    elif damage == "recorded header changed":
        with sqlite3.connect(db_path(folder)) as db:
            db.execute("UPDATE log_archive SET body_bytes = body_bytes - 1 WHERE first_seq = 51")
        db.close()
    elif damage == "segments swapped":
        other = _seg(folder, 101, 150)
        a, b = seg.read_bytes(), other.read_bytes()
        seg.write_bytes(b)
        other.write_bytes(a)
    elif damage == "a journal segment in its place":
        journal = folder / "archive" / archive.segment_name(archive.JOURNAL, 51, 100)
        seg.write_bytes(journal.read_bytes())
    elif damage == "its table row deleted":
        with sqlite3.connect(db_path(folder)) as db:
            db.execute("DELETE FROM log_archive WHERE first_seq = 51")
        db.close()
        return "settlement log archive segment 101-150 is corrupt: it does not follow"
    elif damage == "last segment dropped":
        with sqlite3.connect(db_path(folder)) as db:
            db.execute("DELETE FROM log_archive WHERE first_seq = 151")
        db.close()
        _seg(folder, 151, 200).unlink()
        return "settlement log record seq 151 is missing"
    else:
        raise AssertionError(damage)
    return SEGMENT


DAMAGES = [
    "file deleted",
    "file cut short",
    "file header changed",
    "recorded header changed",
    "segments swapped",
    "a journal segment in its place",
    "its table row deleted",
    "last segment dropped",
]


@pytest.fixture(params=DAMAGES)
def damaged(request, archived, tmp_path):
    _copy(archived[0], tmp_path)
    return tmp_path, _damage(tmp_path, request.param)


@pytest.mark.parametrize("full", [False, True], ids=["check", "check-full"])
def test_recover_check_refuses_a_damaged_log_archive_naming_the_segment(damaged, full, capsys):
    folder, name = damaged
    code = recover.main(["--check", str(folder), *(["--full"] if full else [])])
    out = capsys.readouterr().out
    assert code == 1 and "REFUSE" in out and name in out, out


def test_log_verify_refuses_a_damaged_log_archive_naming_the_segment(damaged, capsys):
    folder, name = damaged
    assert logcmd.main(["verify", "--data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and name in out, out


def test_serve_refuses_to_start_on_a_damaged_log_archive_naming_the_segment(damaged, capsys):
    folder, name = damaged
    code, err = _serve_start(folder, capsys)
    assert code == 1 and "refusing to start" in err and name in err, err


def test_the_real_serve_command_refuses_a_missing_log_segment(archived, tmp_path):
    _copy(archived[0], tmp_path)
    name = _damage(tmp_path, "file deleted")
    argv = ["serve", "--data", str(tmp_path), "--tcp-port", "0", "--ws-port", "0", "--archive"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT_S,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{name} is corrupt: the file is missing" in done.stderr
    assert "refusing to start" in done.stderr


def _forge_live(folder, kind: str) -> str:
    """Damage the first live record after the archive (checksums made to hold)."""
    with sqlite3.connect(db_path(folder)) as db:
        seq, record, hash_hex = db.execute(
            "SELECT seq, record, hash FROM log ORDER BY seq LIMIT 1"
        ).fetchone()
        if kind == "deleted":
            db.execute("DELETE FROM log WHERE seq = ?", (seq,))
        else:
            forged = record[:-1] + bytes([record[-1] ^ 0x01])
            db.execute(
                "UPDATE log SET record = ?, crc = ? WHERE seq = ?",
                (forged, log_crc(seq, forged, hash_hex), seq),
            )
    db.close()
    return f"settlement log record seq {seq}"


@pytest.mark.parametrize("kind", ["deleted", "byte changed"])
def test_live_records_must_chain_to_the_last_segment(archived, tmp_path, kind, capsys):
    _copy(archived[0], tmp_path)
    name = _forge_live(tmp_path, kind)
    assert name == "settlement log record seq 201"
    assert recover.main(["--check", str(tmp_path)]) == 1
    assert name in capsys.readouterr().out
    code, err = _serve_start(tmp_path, capsys)
    assert code == 1 and name in err, err


def test_a_snapshot_inside_the_archive_is_pinned_by_reading_its_segment(whole, tmp_path):
    """Archived by hand past every snapshot (no writer does that: it stops at the oldest
    kept one), a folder must still start from its newest snapshot."""
    path, state_hash = whole
    _copy(path, tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:  # the one at the journal's end
        db.execute("DELETE FROM snapshot WHERE seq = (SELECT max(seq) FROM snapshot)")
    db.close()
    check = chain_check(SettlementCodec())
    with SQLiteStore(tmp_path) as store:
        head, newest = store.head(), store.snapshots()[0]
        while store.archive_journal(head.seq, 64):
            pass
        while store.archive_log(head.log_seq, 64, check):
            pass
        segments, log_segments = store.segments(), store.log_segments()
    assert any(s.first_seq <= newest.seq < s.last_seq for s in segments)
    assert any(s.first_seq <= newest.log_seq < s.last_seq for s in log_segments)
    with SQLiteStore(tmp_path, readonly=True) as store:
        got = recover_store(store)
    assert got.snapshot_seq == newest.seq and got.state_hash == state_hash


def test_tonne_journal_archive_moves_the_log_too(whole, tmp_path, capsys):
    _copy(whole[0], tmp_path)
    assert journalcmd.main(["archive", "--data", str(tmp_path), "--segment-rows", "64"]) == 0
    assert "settlement records" in capsys.readouterr().out
    with SQLiteStore(tmp_path, readonly=True) as store:
        oldest = store.snapshots()[-1]
        assert store.log_segments()[-1].last_seq == oldest.log_seq // 64 * 64
        assert recover_store(store, use_snapshots=False).state_hash == whole[1]


@pytest.mark.parametrize("kind", ["deleted", "byte changed"])
def test_tonne_journal_archive_refuses_a_damaged_live_record(whole, tmp_path, kind, capsys):
    _copy(whole[0], tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:
        if kind == "deleted":
            db.execute("DELETE FROM log WHERE seq = 30")
        else:
            record, hash_hex = db.execute("SELECT record, hash FROM log WHERE seq = 30").fetchone()
            forged = record[:-1] + bytes([record[-1] ^ 0x01])
            db.execute(
                "UPDATE log SET record = ?, crc = ? WHERE seq = 30",
                (forged, log_crc(30, forged, hash_hex)),
            )
    db.close()
    assert journalcmd.main(["archive", "--data", str(tmp_path), "--segment-rows", "64"]) == 1
    err = capsys.readouterr().err
    assert "cannot archive" in err and "settlement log record seq 30" in err, err
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert not store.log_segments()  # nothing sealed


def test_the_writers_archiver_refuses_a_record_that_does_not_chain(whole, tmp_path):
    _copy(whole[0], tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:
        a = db.execute("SELECT record, hash FROM log WHERE seq = 10").fetchone()
        b = db.execute("SELECT record, hash FROM log WHERE seq = 11").fetchone()
        for at, (record, hash_hex) in ((10, b), (11, a)):  # swapped, checksums that hold
            db.execute(
                "UPDATE log SET record = ?, hash = ?, crc = ? WHERE seq = ?",
                (record, hash_hex, log_crc(at, record, hash_hex), at),
            )
    db.close()
    with SQLiteStore(tmp_path) as store:
        archiver = Archiver(store, 64)
        with pytest.raises(ChainError, match="settlement log record seq 10"):
            archiver.finish()
        assert archiver.archived_rows and not store.log_segments()


def test_a_folder_from_before_the_log_archive_opens(whole, tmp_path, capsys):
    """Schema 2 without a `log_archive` table: read-only tools read it as it is, and a
    writable open adds the table."""
    _copy(whole[0], tmp_path)
    with sqlite3.connect(db_path(tmp_path)) as db:
        db.execute("DROP TABLE log_archive")
    db.close()
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert store.log_segments() == [] and store.count("log_archive") == 0
        assert store.check_log_archive() == (0, LOG_GENESIS)
    assert logcmd.main(["verify", "--data", str(tmp_path)]) == 0
    assert recover.main(["--check", str(tmp_path)]) == 0
    assert logcmd.main(["tail", "--data", str(tmp_path), "-n", "2"]) == 0
    capsys.readouterr()
    assert journalcmd.main(["archive", "--data", str(tmp_path), "--segment-rows", "64"]) == 0
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert store.log_segments() and recover_store(store).state_hash == whole[1]


@pytest.mark.parametrize("flag", ["--archive", "--archive-journal"])
def test_serve_archive_and_its_older_name_turn_archiving_on(flag, tmp_path, monkeypatch):
    seen = {}

    async def fake_serve(data_dir, **kwargs):
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(serve, "serve", fake_serve)
    argv = ["--data", str(tmp_path), flag, "--archive-segment-rows", "99"]
    assert serve.main(argv) == 0
    assert seen["journaling"].archive_segment_rows == 99
    assert serve.main(["--data", str(tmp_path)]) == 0
    assert seen["journaling"].archive_segment_rows == 0


def test_a_store_that_caches_segments_reads_the_same_and_each_file_once(archived, monkeypatch):
    """The console pages back and forth (gateway/console/records.py): with a cache of checked
    segments every window is what the plain store gives, and each file is read once."""
    from gateway.durability.segments import SegmentTable

    folder, _ = archived
    plain = SQLiteStore(folder, readonly=True)
    want = {(a, b): list(plain.records(a, b)) for a in range(0, 260, 37) for b in (a + 5, a + 60)}
    plain.close()
    reads: list[int] = []
    real_rows = SegmentTable.rows

    def counted(self, seg):
        reads.append(seg.first_seq)
        return real_rows(self, seg)

    monkeypatch.setattr(SegmentTable, "rows", counted)
    cached = SQLiteStore(folder, readonly=True, log_segments_cached=4)
    try:
        for _ in range(3):  # every window, three times over
            for (a, b), rows in want.items():
                assert list(cached.records(a, b)) == rows, (a, b)
    finally:
        cached.close()
    assert sorted(reads) == [1, 51, 101, 151]  # four segments, each read once
