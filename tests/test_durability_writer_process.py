"""The journal's writer process: the same promises as the writer thread (acknowledged means
committed, batches bounded, snapshots behind their commands), across a process boundary,
and a writer that fails or dies fails the journal. On the real SQLite store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import deque
from pathlib import Path

import pytest
from test_durability_journal import (
    TIMEOUT_S,
    Add,
    ToyCodec,
    ToyCore,
    _adds,
    _committed_seq,
    _recover,
    _run,
)

from gateway.durability.journal import Journal, JournalFailed
from gateway.durability.store import Batch, JournalRow, SQLiteStore
from gateway.durability.writer_process import frame, merge, split_frames


def _journal(store: SQLiteStore, **kw) -> Journal:
    return Journal(store, codec=ToyCodec(), writer_process=True, **kw)


def test_frames_split_only_when_complete():
    buf = bytearray(frame(b"one") + frame(b"two") + frame(b"three")[:5])
    assert split_frames(buf) == [b"one", b"two"]
    assert len(buf) == 5  # the partial frame waits for its rest
    buf += frame(b"three")[5:]
    assert split_frames(buf) == [b"three"] and not buf


def test_a_transaction_gathers_batches_up_to_batch_max_and_stops_at_a_snapshot():
    def b(*seqs, snap=None):
        return Batch([JournalRow(s, s, b"") for s in seqs], [], snap)

    pending = deque([b(1, 2), b(3), b(4, 5), b(6)])
    assert [r.seq for r in merge(pending, 3).commands] == [1, 2, 3]
    assert [r.seq for r in merge(pending, 3).commands] == [4, 5, 6]
    pending = deque([b(1), b(2, snap="S"), b(3)])
    got = merge(pending, 10)
    assert [r.seq for r in got.commands] == [1, 2] and got.snapshot == "S"
    assert len(pending) == 1


def test_flush_returns_once_committed_and_another_connection_sees_it(tmp_path):
    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = _journal(store, batch_max=4)
        journal.start()
        core = ToyCore()
        for cmd in _adds(10):  # appended together: group commit, at most 4 per transaction
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
        await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        assert journal.durable_seq == 10
        assert _committed_seq(tmp_path) == 10
        assert max(journal.batch_sizes) <= 4 and sum(journal.batch_sizes) == 10
        assert journal.commits < 10
        await _run(core, journal, _adds(5, start_ts=100))
        assert _committed_seq(tmp_path) == 15
        await journal.close()
        store.close()
        with SQLiteStore(tmp_path, readonly=True) as again:
            got = _recover(again)
        assert got.seq == 15 and got.core.state_hash() == core.state_hash()

    asyncio.run(main())


async def _run_letting_snapshots_finish(core: ToyCore, journal: Journal, cmds: list[Add]) -> None:
    """`_run`, waiting after each command for a forked snapshot to be handed to the writer.

    A snapshot that falls due while the previous one is still being written is skipped by
    design (`snapshot_now` returns False); on a loaded machine the forked child can still be
    running five commands later, which made the count of snapshots below depend on timing."""
    for cmd in cmds:
        await _run(core, journal, [cmd])
        reader = journal._snap_reader
        if reader is not None:
            await asyncio.wait_for(asyncio.to_thread(reader.join, TIMEOUT_S), TIMEOUT_S)
            assert not reader.is_alive()


@pytest.mark.parametrize("fork", [False, True])
def test_snapshots_go_behind_their_commands_and_old_ones_are_pruned(tmp_path, fork):
    core = ToyCore()

    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = _journal(store, core=core, snapshot_every=5, snapshot_fork=fork)
        await _run_letting_snapshots_finish(core, journal, _adds(23))
        await journal.close(snapshot=True)
        store.close()

    asyncio.run(main())
    with SQLiteStore(tmp_path, readonly=True) as store:
        seqs = [s.seq for s in store.snapshots()]
        assert len(seqs) == 3 and seqs[0] == 23  # the closing snapshot, newest first
        got = _recover(store)
    assert got.snapshot_seq == 23 and got.replayed == 0
    assert got.core.state_hash() == core.state_hash()


def test_a_write_the_store_refuses_fails_the_journal_with_the_writers_reason(tmp_path):
    async def main() -> None:
        store = SQLiteStore(tmp_path)
        first = _journal(store)
        await _run(ToyCore(), first, _adds(3))
        await first.close()
        stale = _journal(store)  # starts at seq 0 although 1..3 are stored
        with pytest.raises(JournalFailed, match="IntegrityError"):
            await _run(ToyCore(), stale, _adds(1))
        with pytest.raises(JournalFailed):
            stale.append(Add(account=1, amount=1, ts=9), [])
        await stale.close()
        store.close()
        assert _committed_seq(tmp_path) == 3  # nothing of the refused transaction

    asyncio.run(main())


@pytest.mark.parametrize("seen_first", [False, True])
def test_a_writer_that_dies_fails_every_waiter(tmp_path, seen_first):
    """Whether the loop has noticed the death before the next flush (EOF read) or finds it
    while handing the batch over (a broken pipe), the flush fails; it never hangs."""

    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = _journal(store)
        core = ToyCore()
        await _run(core, journal, _adds(2))
        assert journal._process is not None
        journal._process.kill()
        journal._process._proc.join(TIMEOUT_S)  # dead, and the loop has not run since
        if seen_first:
            await asyncio.sleep(0.1)
        with pytest.raises(JournalFailed, match="writer process|closed or failed"):
            await _run(core, journal, _adds(1, start_ts=50))
        assert journal.failed is not None
        await asyncio.wait_for(journal.close(), TIMEOUT_S)
        store.close()

    asyncio.run(main())


def test_a_writer_that_dies_before_close_leaves_the_journal_failed(tmp_path):
    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = _journal(store)
        await _run(ToyCore(), journal, _adds(2))
        assert journal.failed is None
        journal._process.kill()
        journal._process._proc.join(TIMEOUT_S)
        await asyncio.wait_for(journal.close(), TIMEOUT_S)
        assert journal.failed is not None  # not a clean close
        store.close()

    asyncio.run(main())


def test_the_writer_dies_with_a_killed_server(tmp_path):
    """A server killed by SIGKILL leaves no writer behind to append to the store that the
    next start recovers from."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_durability_writer_process import _journal
        from gateway.durability.store import SQLiteStore

        async def main():
            journal = _journal(SQLiteStore({str(tmp_path)!r}))
            journal.start()
            print(journal._process.pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            writer_pid = int(server.stdout.readline())
            os.kill(writer_pid, 0)  # alive
        finally:
            server.kill()
            server.wait(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:  # gone, or a zombie waiting for a reaper (a container's PID 1 may not reap)
            if Path(f"/proc/{writer_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.02)
    os.kill(writer_pid, signal.SIGKILL)
    pytest.fail("the writer process outlived its killed server")
