"""Group commit and recovery mechanics, on the real SQLite store and real threads.

The core here is a toy with the Core contract's shape (apply, drain_records, state_hash,
snapshot/restore) so that the journal's and recovery's own rules are tested apart from the
settlement core; the crash test (test_durability_crash.py) uses the real core.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time

import msgspec
import pytest

from gateway.durability.journal import Journal, JournalFailed, NullJournal
from gateway.durability.recovery import RecoveryError, recover
from gateway.durability.store import Batch, JournalRow, LogRow, SQLiteStore, db_path, log_crc

TIMEOUT_S = 10.0


class Add(msgspec.Struct, frozen=True, kw_only=True, tag="add", tag_field="cmd"):
    account: int
    amount: int
    ts: int = 0


class Rec(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    ts: int
    account: int
    amount: int
    prev: str
    hash: str


class ToyCore:
    """Balances that never go negative; each accepted Add is one hash-chained record."""

    def __init__(self) -> None:
        self.balances: dict[int, int] = {}
        self.log_seq = 0
        self.log_head = ""
        self._drained: list[Rec] = []

    def apply(self, cmd: Add) -> list[str]:
        balance = self.balances.get(cmd.account, 0) + cmd.amount
        if balance < 0:
            return ["rejected"]
        self.balances[cmd.account] = balance
        self.log_seq += 1
        body = f"{self.log_seq}|{cmd.ts}|{cmd.account}|{cmd.amount}|{self.log_head}"
        digest = hashlib.sha256(body.encode()).hexdigest()
        self._drained.append(
            Rec(self.log_seq, cmd.ts, cmd.account, cmd.amount, self.log_head, digest)
        )
        self.log_head = digest
        return ["accepted"]

    def drain_records(self) -> list[Rec]:
        out, self._drained = self._drained, []
        return out

    def state_hash(self) -> str:
        return hashlib.sha256(
            msgspec.msgpack.encode([sorted(self.balances.items()), self.log_seq, self.log_head])
        ).hexdigest()

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode([sorted(self.balances.items()), self.log_seq, self.log_head])

    @classmethod
    def restore(cls, data: bytes) -> ToyCore:
        balances, log_seq, log_head = msgspec.msgpack.decode(data)
        core = cls()
        core.balances = {a: b for a, b in balances}
        core.log_seq, core.log_head = log_seq, log_head
        return core


class ToyCodec:
    encode_command = staticmethod(msgspec.msgpack.encode)
    decode_command = staticmethod(msgspec.msgpack.Decoder(Add).decode)
    encode_record = staticmethod(msgspec.msgpack.encode)
    decode_record = staticmethod(msgspec.msgpack.Decoder(Rec).decode)
    log_genesis = ""

    @staticmethod
    def record_hash(r: Rec) -> str:
        body = f"{r.seq}|{r.ts}|{r.account}|{r.amount}|{r.prev}"
        return hashlib.sha256(body.encode()).hexdigest()


class GatedStore(SQLiteStore):
    """A real store whose writes wait for the test to open a gate, and record when each
    COMMIT returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.commit_times: list[float] = []

    def write(self, batch: Batch) -> None:
        self.entered.set()
        assert self.gate.wait(TIMEOUT_S)
        super().write(batch)
        self.commit_times.append(time.monotonic())


def _recover(store):
    return recover(store, codec=ToyCodec(), genesis=lambda s: ToyCore(), restore=ToyCore.restore)


async def _run(core: ToyCore, journal: Journal, cmds: list[Add]) -> None:
    for cmd in cmds:
        core.apply(cmd)
        journal.append(cmd, core.drain_records())
        await asyncio.wait_for(journal.flush(), TIMEOUT_S)


def _adds(n: int, start_ts: int = 1) -> list[Add]:
    return [Add(account=i % 3, amount=(i % 5) - 1, ts=start_ts + i) for i in range(n)]


def _committed_seq(path) -> int:
    with SQLiteStore(path, readonly=True) as other:
        return other.head().seq


# -- group commit ---------------------------------------------------------------------------------


def test_flush_does_not_return_before_the_commit(tmp_path):
    async def main() -> None:
        store = GatedStore(tmp_path)
        store.gate.clear()
        journal = Journal(store, codec=ToyCodec())
        core = ToyCore()
        cmd = Add(account=1, amount=5, ts=1)
        core.apply(cmd)
        journal.append(cmd, core.drain_records())
        flush = asyncio.ensure_future(journal.flush())
        await asyncio.wait_for(asyncio.to_thread(store.entered.wait, TIMEOUT_S), TIMEOUT_S)
        done, _ = await asyncio.wait([flush], timeout=0.05)
        assert not done, "flush returned while the COMMIT was held back"
        assert _committed_seq(tmp_path) == 0
        store.gate.set()
        await asyncio.wait_for(flush, TIMEOUT_S)
        released = time.monotonic()
        assert store.commit_times and store.commit_times[0] <= released
        assert _committed_seq(tmp_path) == 1  # another connection sees it: durable
        await journal.close()
        store.close()

    asyncio.run(main())


def test_concurrent_awaiters_share_one_commit(tmp_path):
    async def main() -> None:
        store = GatedStore(tmp_path)
        journal = Journal(store, codec=ToyCodec())
        core = ToyCore()
        store.gate.clear()
        first = asyncio.ensure_future(_run(core, journal, _adds(1)))
        await asyncio.wait_for(asyncio.to_thread(store.entered.wait, TIMEOUT_S), TIMEOUT_S)
        # The writer is inside the first transaction; ten sessions arrive meanwhile.
        sessions = [
            asyncio.ensure_future(_run(core, journal, [Add(account=k, amount=1, ts=10 + k)]))
            for k in range(10)
        ]
        await asyncio.sleep(0)  # let every session append and queue its flush
        assert journal.backlog == 11
        store.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *sessions), TIMEOUT_S)
        assert store.transactions == 2
        assert list(journal.batch_sizes) == [1, 10]
        await journal.close()
        store.close()

    asyncio.run(main())


def test_a_batch_never_exceeds_batch_max(tmp_path):
    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = Journal(store, codec=ToyCodec(), batch_max=3)
        core = ToyCore()
        for cmd in _adds(10):
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
        await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        assert max(journal.batch_sizes) <= 3
        assert sum(journal.batch_sizes) == 10
        assert store.transactions == 4
        await journal.close()
        store.close()

    asyncio.run(main())


def test_the_time_window_gathers_late_arrivals_and_is_bounded(tmp_path):
    window_s = 0.2

    async def main() -> None:
        store = GatedStore(tmp_path)
        journal = Journal(store, codec=ToyCodec(), window_s=window_s)
        core = ToyCore()
        started = time.monotonic()
        early = asyncio.ensure_future(_run(core, journal, _adds(1)))
        await asyncio.sleep(window_s / 4)  # a second session arrives inside the window
        late = asyncio.ensure_future(_run(core, journal, _adds(1, start_ts=100)))
        await asyncio.wait_for(asyncio.gather(early, late), TIMEOUT_S)
        elapsed = time.monotonic() - started
        assert store.transactions == 1, "the late arrival joined the window's transaction"
        assert store.commit_times[0] - started >= window_s * 0.9
        assert elapsed < window_s + 2.0
        await journal.close()
        store.close()

    asyncio.run(main())


def test_a_full_batch_does_not_wait_for_the_window(tmp_path):
    window_s = 1.0

    async def main() -> None:
        store = GatedStore(tmp_path)
        journal = Journal(store, codec=ToyCodec(), window_s=window_s, batch_max=3)
        core = ToyCore()
        started = time.monotonic()
        for cmd in _adds(3):
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
        await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        assert store.commit_times[0] - started < window_s / 2
        await journal.close()
        store.close()

    asyncio.run(main())


def test_a_failed_commit_fails_every_waiter_and_later_appends(tmp_path):
    class BrokenStore(SQLiteStore):
        def write(self, batch: Batch) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    async def main() -> None:
        store = BrokenStore(tmp_path)
        journal = Journal(store, codec=ToyCodec())
        core = ToyCore()
        with pytest.raises(JournalFailed):
            await _run(core, journal, _adds(1))
        with pytest.raises(JournalFailed):
            journal.append(Add(account=1, amount=1, ts=5), [])
        await journal.close()
        store.close()

    asyncio.run(main())


def test_the_null_journal_has_the_same_interface():
    async def main() -> None:
        journal = NullJournal()
        assert journal.append(Add(account=1, amount=1), []) == 1
        await journal.flush()
        await journal.close()

    asyncio.run(main())


# -- snapshots and recovery ---------------------------------------------------------------------


def _fill(tmp_path, n: int, *, snapshot_every: int, fork: bool = False) -> tuple[ToyCore, Journal]:
    async def main() -> Journal:
        store = SQLiteStore(tmp_path)
        journal = Journal(
            store,
            codec=ToyCodec(),
            core=core,
            snapshot_every=snapshot_every,
            snapshot_fork=fork,
        )
        await _run(core, journal, _adds(n))
        await journal.close()
        store.close()
        return journal

    core = ToyCore()
    return core, asyncio.run(main())


def test_snapshots_are_taken_every_n_commands_and_old_ones_pruned(tmp_path):
    core, journal = _fill(tmp_path, 23, snapshot_every=5)
    assert journal.snapshots_taken == 4  # at 5, 10, 15, 20
    assert len(journal.snapshot_pauses_s) == 4
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert [s.seq for s in store.snapshots()] == [20, 15, 10]  # three kept
        got = _recover(store)
    assert got.snapshot_seq == 20 and got.replayed == 3 and got.seq == 23
    assert got.state_hash == core.state_hash()
    assert got.log_head == core.log_head


def test_a_forked_snapshot_is_stored_behind_its_commands_and_recovers(tmp_path):
    core, journal = _fill(tmp_path, 30, snapshot_every=12, fork=True)
    assert journal.snapshots_taken >= 1 and journal.snapshot_failures == 0
    assert len(journal.snapshot_pauses_s) == journal.snapshots_taken
    with SQLiteStore(tmp_path, readonly=True) as store:
        snaps = store.snapshots()
        assert snaps and snaps[0].seq >= 12
        got = _recover(store)
    assert got.snapshot_seq == snaps[0].seq
    assert got.state_hash == core.state_hash()


def test_recovery_from_snapshot_equals_replay_from_scratch(tmp_path):
    _fill(tmp_path, 40, snapshot_every=7)
    with SQLiteStore(tmp_path, readonly=True) as store:
        fast = _recover(store)
        full = recover(
            store,
            codec=ToyCodec(),
            genesis=lambda s: ToyCore(),
            restore=ToyCore.restore,
            use_snapshots=False,
        )
    assert full.snapshot_seq == 0 and full.replayed == 40
    assert fast.state_hash == full.state_hash


def _edit(tmp_path, sql: str, *args: object) -> None:
    with sqlite3.connect(db_path(tmp_path)) as db:
        db.execute(sql, args)
    db.close()


def test_a_corrupt_snapshot_falls_back_to_an_older_one(tmp_path):
    core, _ = _fill(tmp_path, 23, snapshot_every=5)
    _edit(tmp_path, "UPDATE snapshot SET data = X'00' WHERE seq = 20")
    with SQLiteStore(tmp_path, readonly=True) as store:
        got = _recover(store)
    assert got.snapshot_seq == 15 and got.replayed == 8
    assert got.skipped and "snapshot seq 20" in got.skipped[0]
    assert got.state_hash == core.state_hash()


def test_a_snapshot_with_a_wrong_state_hash_is_set_aside(tmp_path):
    core, _ = _fill(tmp_path, 12, snapshot_every=5)
    with SQLiteStore(tmp_path) as store:  # a snapshot whose checksum holds but content lies
        good = store.snapshot(10)
        forged = ToyCore.restore(good.data)
        forged.balances[99] = 1
        bad = msgspec.structs.replace(good, data=forged.snapshot())
        store.write(Batch([], [], bad))
        got = _recover(store)
    assert got.snapshot_seq == 5
    assert "state hash" in got.skipped[0]
    assert got.state_hash == core.state_hash()


def test_when_every_snapshot_is_corrupt_recovery_starts_from_genesis(tmp_path):
    core, _ = _fill(tmp_path, 12, snapshot_every=5)
    _edit(tmp_path, "UPDATE snapshot SET digest = 'x'")
    with SQLiteStore(tmp_path, readonly=True) as store:
        got = _recover(store)
    assert got.snapshot_seq == 0 and got.replayed == 12 and len(got.skipped) == 2
    assert got.state_hash == core.state_hash()


def test_a_corrupt_journal_record_refuses_to_start_and_names_it(tmp_path):
    _fill(tmp_path, 23, snapshot_every=5)
    _edit(tmp_path, "UPDATE journal SET cmd = X'00' WHERE seq = 22")
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(RecoveryError, match="journal record seq 22"),
    ):
        _recover(store)


def test_a_missing_journal_record_refuses_to_start_and_names_it(tmp_path):
    _fill(tmp_path, 23, snapshot_every=5)
    _edit(tmp_path, "DELETE FROM journal WHERE seq = 21")
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(RecoveryError, match="journal record seq 21 is missing"),
    ):
        _recover(store)


def test_a_corrupt_log_record_refuses_to_start_and_names_it(tmp_path):
    _fill(tmp_path, 23, snapshot_every=5)
    # Rewrite a record so that its checksum holds but it says something else.
    with SQLiteStore(tmp_path) as store:
        row = next(store.records(21))
        forged = msgspec.structs.replace(ToyCodec.decode_record(row.record), amount=1000)
        store._db.execute(
            "UPDATE log SET record = ?, crc = ? WHERE seq = ?",
            (
                ToyCodec.encode_record(forged),
                log_crc(row.seq, ToyCodec.encode_record(forged), row.hash),
                row.seq,
            ),
        )
        with pytest.raises(RecoveryError, match=f"settlement log record seq {row.seq}"):
            _recover(store)


def test_a_log_record_without_a_command_refuses_to_start(tmp_path):
    """Even when the journal's recorded head is rewritten to hide the deleted command, the
    log record it produced is left without one."""
    _fill(tmp_path, 12, snapshot_every=5)
    _edit(tmp_path, "DELETE FROM journal WHERE seq = 12")
    _edit(
        tmp_path,
        "UPDATE heads SET journal_seq = 11, "
        "journal_hash = (SELECT hash FROM journal WHERE seq = 11)",
    )
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(RecoveryError, match="no journal command produces it"),
    ):
        _recover(store)


def test_closing_with_a_snapshot_leaves_nothing_to_replay(tmp_path):
    core = ToyCore()

    async def main() -> None:
        store = SQLiteStore(tmp_path)
        journal = Journal(store, codec=ToyCodec(), core=core, snapshot_every=4)
        await _run(core, journal, _adds(10))
        await journal.close(snapshot=True)
        store.close()

    asyncio.run(main())
    with SQLiteStore(tmp_path, readonly=True) as store:
        got = _recover(store)
    assert (got.snapshot_seq, got.replayed, got.seq) == (10, 0, 10)
    assert got.checked_state_hash and got.state_hash == core.state_hash()


def test_a_snapshot_beyond_the_stored_journal_refuses_the_start_as_a_truncation(tmp_path):
    """Rows deleted from the end, with the heads row rewritten to match: an intact snapshot
    that covers more commands than the journal holds is the evidence left (it used to be set
    aside, and the start went on with the shorter journal)."""
    _fill(tmp_path, 12, snapshot_every=5)
    _edit(tmp_path, "DELETE FROM log WHERE seq > (SELECT log_seq FROM snapshot WHERE seq = 5)")
    _edit(tmp_path, "DELETE FROM journal WHERE seq > 5")
    _edit(
        tmp_path,
        "UPDATE heads SET journal_seq = 5, journal_hash = (SELECT hash FROM journal WHERE seq = 5),"
        " log_seq = (SELECT max(seq) FROM log), "
        "log_hash = (SELECT hash FROM log ORDER BY seq DESC LIMIT 1)",
    )
    with (
        SQLiteStore(tmp_path, readonly=True) as store,
        pytest.raises(
            RecoveryError, match="journal record seq 6 is missing: intact snapshot seq 10"
        ),
    ):
        _recover(store)


def test_recovery_reads_a_consistent_view_while_a_server_writes(tmp_path):
    """A reader (tonne log verify, recover --check) beside a live writer never sees a journal
    and a log from different commits."""
    core = ToyCore()
    batches = 150
    with SQLiteStore(tmp_path):
        pass
    done = threading.Event()

    def writer() -> None:
        with SQLiteStore(tmp_path) as store:
            seq = 0
            for i in range(batches):
                cmds, recs = [], []
                for cmd in _adds(7, start_ts=i * 10):
                    seq += 1
                    core.apply(cmd)
                    cmds.append(JournalRow(seq, cmd.ts, ToyCodec.encode_command(cmd)))
                    recs += [
                        LogRow(r.seq, ToyCodec.encode_record(r), r.hash)
                        for r in core.drain_records()
                    ]
                store.write(Batch(cmds, recs))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    recoveries = 0
    try:
        with SQLiteStore(tmp_path, readonly=True) as store:
            while not done.is_set() or recoveries == 0:
                _recover(store)  # never a false alarm
                recoveries += 1
    finally:
        thread.join(TIMEOUT_S)
    assert recoveries >= 1 and not thread.is_alive()


def test_a_replay_that_misses_a_snapshots_state_hash_refuses_and_names_it(tmp_path):
    """The snapshots are checkpoints of the replay: a core that wrote a state its journal
    does not reproduce (nondeterminism) is found by the audit replay."""
    _fill(tmp_path, 12, snapshot_every=5)
    with SQLiteStore(tmp_path) as store:
        good = store.snapshot(5)
        info = msgspec.structs.replace(good.info, seq=7, state_hash="0" * 64)
        store.write(Batch([], [], msgspec.structs.replace(good, info=info)))
        with pytest.raises(RecoveryError, match="snapshot seq 7 recorded"):
            recover(
                store,
                codec=ToyCodec(),
                genesis=lambda s: ToyCore(),
                restore=ToyCore.restore,
                use_snapshots=False,
            )
        assert _recover(store).snapshot_seq == 10  # the newest is sound and passes no checkpoint
