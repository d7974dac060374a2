"""The journal: group commit of commands and settlement records, and snapshots.

The server applies each command to the in-memory core at once, `append`s it with the
settlement records it produced (cheap, no I/O), and before it tells anyone about a read's
results awaits `flush()`, which returns once everything appended before the call is durably
committed. All SQLite work runs in one dedicated writer, so the event loop never waits on an
fsync, and every awaiter whose commands are in the same transaction is released by the same
COMMIT. The writer is a thread (below), or with `writer_process=True` a separate process
(writer_process.py: the same batches, gathered and committed the same way, over a
socket pair, so that SQLite never holds this process's GIL):

    loop thread                                  writer thread
    append(cmd, records) -> buffer
    flush(): cut buffer -> queue, await seq  -->  take first batch; gather more until the
                                                  window closes or the batch is full;
                                                  BEGIN; INSERT...; COMMIT
    waiters with seq <= committed released   <--  call_soon_threadsafe(committed, seq)

Batches are bounded by `batch_max` commands and, after the first batch arrives, by
`window_s` seconds of waiting for more (0 = take what is queued now: the commit itself is the
window, as commands keep arriving while it runs). A full buffer is cut without waiting for a
flush. If a write fails, the journal is *failed*: every waiter and every later `flush()`
raises `JournalFailed`, because the in-memory core is now ahead of the durable state and the
process must stop rather than acknowledge anything (restart = recovery from the store).

Archiving: with `archive_segment_rows` > 0 the writer moves the journal rows and the
settlement-log records that the oldest kept snapshot covers to segment files
(archive.py), one segment per commit turn, so the live tables stop growing
(`writer_process.Archiver`).

The writer can also be given (`writer`, a factory of what `ExternalWriter` describes): the
journal then hands it its batches and hears its commits exactly as it does the writer
process's. The simulation (tests/simulation.py) gives one that commits when its seeded
scheduler says, on the loop, so that a run replays exactly.

Time: the journal reads no clock of its own. The snapshot interval, the commit window and
the snapshot pauses are measured on `clock`'s monotonic reading, and a snapshot's stamp is
its wall time (gateway/server/clock.py; `SystemClock` by default). The window's wait itself
is the writer's queue wait, in real time: the clock only says how much of it is left. A
clock object cannot cross into the writer process, which builds its own from
`process_clock` (a picklable factory, `SystemClock` by default).

Snapshots: when `core` is given, `flush()` takes a snapshot every `snapshot_every` commands or
`snapshot_interval_s` seconds (whichever first) at a point where the core state is exactly the
appended commands. It is queued behind the batch that ends at its sequence number, so it is
never stored before the commands it covers are. By default a forked child serializes it, so
matching pauses only for the fork (`snapshot_now`); `snapshot_pauses_s` records each pause.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.durability.store import Batch, JournalRow, LogRow, Snapshot, SnapshotInfo, Store
from gateway.durability.writer_process import Archiver, WriterProcess, absorb
from gateway.server.clock import NS_PER_S, Clock, SystemClock

BATCH_MAX = 2048  # commands per transaction, at most
WINDOW_S = 0.0  # extra wait for more commands after the first batch arrives
SNAPSHOT_EVERY = 100_000  # commands between snapshots
SNAPSHOT_INTERVAL_S = 300.0  # seconds between snapshots (when commands arrive at all)
SNAPSHOTS_KEPT = 3  # older snapshots are pruned after a new one is stored
WINDOW_S_MAX = 1.0  # the time window may not be set longer than this
PAUSES_KEPT = 1024  # snapshot pause measurements kept for reporting
HASH_HEX_BYTES = 64  # a snapshot child sends its state hash (hex) before the data
FDS_MAX = 1 << 16  # a snapshot child closes every descriptor below this but its pipe


class JournalFailed(Exception):
    """A write to the store failed: nothing after the last commit is durable, and the
    journal accepts nothing more. The process must stop and recover."""


class Codec(Protocol):
    """How commands and settlement records become bytes (settlement's msgpack encoders)."""

    def encode_command(self, cmd: Any) -> bytes: ...
    def decode_command(self, data: bytes) -> Any: ...
    def encode_record(self, record: Any) -> bytes: ...
    def decode_record(self, data: bytes) -> Any: ...
    def record_hash(self, record: Any) -> str: ...  # its chain hash, recomputed

    log_genesis: str  # the `prev` of the first settlement record


class SettlementCodec:
    """The real codec: `settlement.commands` and `settlement.log`."""

    def __init__(self) -> None:
        from settlement.commands import decode_command, encode_command
        from settlement.log import GENESIS, decode_record, encode_record, record_hash

        self.encode_command = encode_command
        self.decode_command = decode_command
        self.encode_record = encode_record
        self.decode_record = decode_record
        self.log_genesis = GENESIS
        self._record_hash = record_hash

    def record_hash(self, record: Any) -> str:
        h: str = self._record_hash(record.seq, record.ts, record.kind, record.body, record.prev)
        return h


class SnapshotSource(Protocol):
    """What the journal needs of the core to take a snapshot."""

    def snapshot(self) -> bytes: ...
    def state_hash(self) -> str: ...


class ExternalWriter(Protocol):
    """A writer outside the journal's own thread (the writer process, or a simulation's):
    it is handed batches in order and reports each commit (`on_commit(last_seq, commands)`)
    on the loop, or a failure (`on_failure(text)`)."""

    def start(self) -> None: ...
    def send(self, batch: Batch) -> None: ...
    def send_threadsafe(self, batch: Batch) -> None: ...
    async def close(self) -> None: ...

    # Optional: `mark_snapshot(seq)`, told before the snapshot at command `seq` is taken
    # (the replicating writer, gateway/replication/writer.py, marks that message).


WriterFactory = Callable[[Callable[[int, int], None], Callable[[str], None]], ExternalWriter]


class NullJournal:
    """The journal interface without durability: for tests and benchmarks of the core alone.
    Keeps nothing (so it is not a memory leak under a long benchmark), counts appends."""

    def __init__(self) -> None:
        self.seq = 0
        self.records = 0

    def append(self, cmd: Any, records: Sequence[Any]) -> int:
        self.seq += 1
        self.records += len(records)
        return self.seq

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Journal:
    """Group commit to a `Store` through one writer (thread or process). See the module
    docstring.

    `seq`, `log_seq` and `log_head` say where the journal starts (from recovery); they are
    the sequence number of the last command, the last settlement record and that record's
    hash. Call `start()` inside the running loop before use, and `await close()` at the end.
    """

    def __init__(
        self,
        store: Store,
        *,
        codec: Codec | None = None,
        seq: int = 0,
        log_seq: int = 0,
        log_head: str = "",
        batch_max: int = BATCH_MAX,
        window_s: float = WINDOW_S,
        core: SnapshotSource | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_interval_s: float = SNAPSHOT_INTERVAL_S,
        snapshots_kept: int = SNAPSHOTS_KEPT,
        snapshot_fork: bool = hasattr(os, "fork"),
        writer_process: bool = False,
        archive_segment_rows: int = 0,
        clock: Clock | None = None,
        process_clock: Callable[[], Clock] = SystemClock,
        writer: WriterFactory | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if not 0 <= window_s <= WINDOW_S_MAX:
            raise ValueError(f"window_s must be within [0, {WINDOW_S_MAX}]")
        if snapshot_every < 1 or snapshot_interval_s <= 0 or snapshots_kept < 1:
            raise ValueError("snapshot_every, snapshot_interval_s, snapshots_kept must be > 0")
        if archive_segment_rows < 0:
            raise ValueError("archive_segment_rows must be >= 0 (0: no archiving)")
        if writer_process and writer is not None:
            raise ValueError("writer_process and writer are two writers: give one")
        if writer_process and not isinstance(getattr(store, "path", None), os.PathLike):
            raise ValueError("writer_process needs a store with a path (SQLiteStore)")
        self.store = store
        self.writer_process = writer_process
        self._writer_factory = writer
        self._process: ExternalWriter | None = None
        self.codec: Codec = codec if codec is not None else SettlementCodec()
        self._encode_command = self.codec.encode_command
        self._encode_record = self.codec.encode_record
        self.batch_max = batch_max
        self.window_s = window_s
        self.core = core
        self.snapshot_every = snapshot_every
        self.snapshot_interval_s = snapshot_interval_s
        self.snapshots_kept = snapshots_kept
        self.archive_segment_rows = archive_segment_rows
        self.clock: Clock = clock or SystemClock()
        self._monotonic_ns = self.clock.monotonic_ns
        self._process_clock = process_clock
        self.window_ns = round(window_s * NS_PER_S)
        self.snapshot_interval_ns = round(snapshot_interval_s * NS_PER_S)
        self.seq = seq  # last appended command
        self.log_seq = log_seq  # last appended settlement record
        self.log_head = log_head
        self.durable_seq = seq  # last committed command
        self.commits = 0  # transactions committed
        self.batch_sizes: deque[int] = deque(maxlen=PAUSES_KEPT)
        self.snapshot_pauses_s: deque[float] = deque(maxlen=PAUSES_KEPT)
        self.snapshots_taken = 0
        self.snapshot_failures = 0
        self.snapshot_fork = snapshot_fork
        self._snap_reader: threading.Thread | None = None
        self._snap_seq = seq
        self._snap_time = self._monotonic_ns()
        self._buf_cmds: list[JournalRow] = []
        self._buf_recs: list[LogRow] = []
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    # -- the loop side ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer (thread or process); call from inside the running event loop."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        on_failure = self._external_failed
        if self._writer_factory is not None:
            self._process = self._writer_factory(self._process_committed, on_failure)
            self._process.start()
            return
        if self.writer_process:
            self._process = WriterProcess(
                str(self.store.path.parent),  # type: ignore[attr-defined]
                batch_max=self.batch_max,
                window_s=self.window_s,
                snapshots_kept=self.snapshots_kept,
                archive_segment_rows=self.archive_segment_rows,
                on_commit=self._process_committed,
                on_failure=on_failure,
                clock=self.clock,
                process_clock=self._process_clock,
            )
            self._process.start()
            return
        self._thread = threading.Thread(target=self._writer, name="journal-writer", daemon=True)
        self._thread.start()

    @property
    def _started(self) -> bool:
        return self._thread is not None or self._process is not None

    def _submit(self, batch: Batch, *, threadsafe: bool = False) -> None:
        """Hand a batch to the writer, in order (`threadsafe` from another thread)."""
        if self._process is None:
            self._queue.put(batch)
        elif threadsafe:
            self._process.send_threadsafe(batch)
        else:
            self._process.send(batch)

    def _external_failed(self, why: str) -> None:
        self._failed(JournalFailed(why))

    def _process_committed(self, last_seq: int, commands: int) -> None:
        self.commits += 1
        self.batch_sizes.append(commands)
        if commands:
            self._committed(last_seq)

    def append(self, cmd: Any, records: Sequence[Any]) -> int:
        """Buffer one accepted command (with its timestamp `cmd.ts`) and the settlement
        records it produced; returns the command's journal sequence number. No I/O."""
        if self._error is not None or self._closed:
            raise JournalFailed("the journal is closed or failed; nothing more is accepted")
        seq = self.seq + 1
        self.seq = seq
        if records:
            encode = self._encode_record
            recs = self._buf_recs
            log_seq = self.log_seq
            for record in records:
                log_seq += 1
                if record.seq != log_seq:
                    raise AssertionError(f"settlement record seq {record.seq}, expected {log_seq}")
                recs.append(LogRow(log_seq, encode(record), record.hash))
            self.log_seq = log_seq
            self.log_head = records[-1].hash
        buf = self._buf_cmds
        buf.append(JournalRow(seq, cmd.ts, self._encode_command(cmd), self.log_seq))
        if len(buf) >= self.batch_max:
            self._cut()
        return seq

    async def flush(self) -> None:
        """Return once every command appended before this call is durably committed."""
        if self._error is not None:
            raise JournalFailed(f"an earlier commit failed: {self._error!r}") from self._error
        target = self.seq
        if self.durable_seq >= target:
            return
        if not self._started:
            self.start()
        self._maybe_snapshot()
        self._cut()
        if self._error is not None:  # the hand-over itself found the writer gone
            raise JournalFailed(f"the journal failed: {self._error!r}") from self._error
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((target, fut))
        await fut

    def snapshot_now(self) -> bool:
        """Take a snapshot of `core` now and queue it behind the appended commands; False when
        one is still being written. Call only where the core state is exactly the appended
        commands (not between apply and append).

        With `snapshot_fork` (the default where `os.fork` exists) the loop pauses only for the
        fork: a child process, holding a copy-on-write image of the core at this instant,
        serializes and hashes it and sends the bytes back through a pipe; a reader thread
        queues them to the writer, which stores them in a later transaction (after the batch
        that ends at the snapshot's seq, which is already queued). Otherwise the loop pauses
        for `core.snapshot()` and `core.state_hash()`."""
        if self.core is None:
            raise ValueError("the journal has no core to snapshot")
        if self._snap_reader is not None and self._snap_reader.is_alive():
            return False
        if not self._started:
            self.start()
        seq, log_seq, log_head = self.seq, self.log_seq, self.log_head
        self._cut()  # the commands the snapshot covers go first
        mark = getattr(self._process, "mark_snapshot", None)
        if mark is not None:  # a replicating writer says so in the message ending at seq
            mark(seq)
        self._snap_seq = seq
        self._snap_time = self._monotonic_ns()
        self.snapshots_taken += 1
        started = self._monotonic_ns()
        if self.snapshot_fork:
            read_fd, pid = _fork_snapshot(self.core)
            self.snapshot_pauses_s.append((self._monotonic_ns() - started) / NS_PER_S)
            self._snap_reader = threading.Thread(
                target=self._collect_snapshot,
                args=(read_fd, pid, seq, log_seq, log_head),
                name="snapshot-reader",
                daemon=True,
            )
            self._snap_reader.start()
            return True
        data = self.core.snapshot()
        state_hash = self.core.state_hash()
        self.snapshot_pauses_s.append((self._monotonic_ns() - started) / NS_PER_S)
        info = SnapshotInfo(seq, log_seq, log_head, state_hash, self.clock.now_ns(), len(data))
        self._submit(Batch([], [], Snapshot(info, data)))
        return True

    def _collect_snapshot(
        self, read_fd: int, pid: int, seq: int, log_seq: int, log_head: str
    ) -> None:
        """Snapshot-reader thread: the child's bytes, then queue them to the writer. A child
        that fails costs only this snapshot (the next one is tried at the next interval)."""
        chunks: list[bytes] = []
        try:
            while chunk := os.read(read_fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            _, status = os.waitpid(pid, 0)
        payload = b"".join(chunks)
        if os.waitstatus_to_exitcode(status) != 0 or len(payload) < HASH_HEX_BYTES:
            self.snapshot_failures += 1
            return
        state_hash = payload[:HASH_HEX_BYTES].decode()
        data = payload[HASH_HEX_BYTES:]
        info = SnapshotInfo(seq, log_seq, log_head, state_hash, self.clock.now_ns(), len(data))
        self._submit(Batch([], [], Snapshot(info, data)), threadsafe=True)

    async def close(self, *, snapshot: bool = False) -> None:
        """Commit what is buffered and stop the writer. With `snapshot`, first store
        a snapshot of the final state (after any still being written), so that the next
        start replays nothing."""
        if self._closed:
            return
        try:
            if self._error is None and self.seq > self.durable_seq:
                await self.flush()
            if snapshot and self.core is not None and self._error is None:
                if self._snap_reader is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self._snap_reader.join)
                if self.seq > self._snap_seq:
                    self.snapshot_now()
        finally:
            self._closed = True
            loop = asyncio.get_running_loop()
            if self._snap_reader is not None:
                await loop.run_in_executor(None, self._snap_reader.join)
                self._snap_reader = None
            if self._thread is not None:
                self._queue.put(None)
                await loop.run_in_executor(None, self._thread.join)
                self._thread = None
            if self._process is not None:
                await asyncio.sleep(0)  # a snapshot the reader just handed over goes first
                await self._process.close()

    async def snapshot_handed_over(self) -> None:
        """Return once the snapshot being written (if any) has been handed to the writer,
        which stores it in its next transaction (tools and benches that report on the
        folder wait for this; serving never does)."""
        reader = self._snap_reader
        if reader is not None and reader.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, reader.join)

    @property
    def failed(self) -> BaseException | None:
        return self._error

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (None: a writer thread, or not started)."""
        return getattr(self._process, "pid", None)

    @property
    def snapshot_seq(self) -> int:
        """The command seq of the last snapshot taken (or where the journal started)."""
        return self._snap_seq

    @property
    def backlog(self) -> int:
        """Commands appended but not yet committed."""
        return self.seq - self.durable_seq

    def _maybe_snapshot(self) -> None:
        if self.core is None or self.seq == self._snap_seq:
            return
        if (
            self.seq - self._snap_seq >= self.snapshot_every
            or self._monotonic_ns() - self._snap_time >= self.snapshot_interval_ns
        ):
            self.snapshot_now()

    def _cut(self, snapshot: Snapshot | None = None) -> None:
        """Hand the buffer (and a snapshot, which covers exactly the buffer's end) to the
        writer."""
        if not self._buf_cmds and snapshot is None:
            return
        if not self._started:
            self.start()
        self._submit(Batch(self._buf_cmds, self._buf_recs, snapshot))
        self._buf_cmds = []
        self._buf_recs = []

    def _committed(self, seq: int) -> None:
        """Loop side of a COMMIT: release every waiter whose commands are now durable."""
        self.durable_seq = seq
        waiters = self._waiters
        while waiters and waiters[0][0] <= seq:
            _, fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _failed(self, exc: BaseException) -> None:
        self._error = exc
        while self._waiters:
            _, fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(JournalFailed(f"commit failed: {exc!r}"))

    # -- the writer thread -----------------------------------------------------------------------

    def _writer(self) -> None:
        q = self._queue
        loop = self._loop
        assert loop is not None
        carry: Batch | None = None  # a batch that did not fit into the last transaction
        stop = False
        archiver: Archiver | None = None
        while not (stop and carry is None):
            first = carry if carry is not None else q.get()
            carry = None
            if first is None:
                self._finish_archive(archiver)
                return
            batch = Batch(list(first.commands), list(first.records), first.snapshot)
            monotonic_ns = self._monotonic_ns
            deadline = monotonic_ns() + self.window_ns
            # Gather more batches: up to batch_max commands, never past a snapshot (it
            # must be stored with the batch that ends at its sequence number).
            while not stop and batch.snapshot is None and len(batch.commands) < self.batch_max:
                try:
                    timeout = (deadline - monotonic_ns()) / NS_PER_S
                    more = q.get(timeout=timeout) if timeout > 0 else q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                elif not absorb(batch, more, self.batch_max):
                    carry = more
                    break
            try:
                if archiver is None:  # made here: it reads the store, in this thread
                    archiver = Archiver(self.store, self.archive_segment_rows)
                self.store.write(batch)
                if batch.snapshot is not None:
                    self.store.prune_snapshots(self.snapshots_kept)
                    archiver.after_snapshot()
            except BaseException as exc:  # the loop must hear of it, then stop writing
                loop.call_soon_threadsafe(self._failed, exc)
                return
            self.commits += 1
            self.batch_sizes.append(len(batch.commands))
            if batch.commands:
                loop.call_soon_threadsafe(self._committed, batch.commands[-1].seq)
            try:
                archiver.step()
            except BaseException as exc:
                loop.call_soon_threadsafe(self._failed, exc)
                return
        self._finish_archive(archiver)

    def _finish_archive(self, archiver: Archiver | None) -> None:
        """Writer thread, stopping: archive what is still covered (nothing waits on it)."""
        if archiver is None:
            return
        try:
            archiver.finish()
        except BaseException as exc:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._failed, exc)


def _fork_snapshot(core: SnapshotSource) -> tuple[int, int]:
    """Fork a child that writes `state_hash + snapshot` of `core` to a pipe and exits; the
    read end and the child's pid. The child touches nothing but the core and the pipe (no
    event loop, no store, no locks another thread may hold) and leaves by `os._exit`."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: see above
        pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            # Keep only the pipe: the listening socket, client connections and the store
            # must not outlive a parent that is killed while this child still works.
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, FDS_MAX)
            data = core.state_hash().encode() + core.snapshot()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return read_fd, pid
