"""The journal's writer as a separate process: SQLite commits without sharing the GIL.

Why a process and not only a thread: the writer thread needs the GIL for every SQLite step
(each row's insert releases and re-takes it), and the event loop thread holds the GIL while
it matches. Measured with the gateway benchmark, the two then take turns instead of running
side by side: a commit of ~120 commands took 2.5 ms of wall time while the loop was busy
against ~1 ms alone, and a writer that only slept (GIL released) still capped throughput
where the loop had to hand the GIL back and forth. A process has its own interpreter, so the
loop matches while the writer commits, on the second core.

The protocol between them is one socket pair, length-prefixed msgpack frames both ways:

    loop -> writer   Batch (journal rows, log rows, at most one snapshot), in append order
    writer -> loop   [last_seq, commands, error]: one per transaction, after its COMMIT;
                     last_seq 0 for a snapshot-only transaction; error "" unless it failed

The writer gathers the frames already received into one transaction (up to `batch_max`
commands, never past a snapshot, like the thread writer), waiting `window_s` for more after
the first. It replies only after COMMIT returns, so an acknowledgement still means durable.
A failed write is reported and the writer exits; a writer that dies is seen as EOF; either
fails the journal. On Linux the writer is killed with its parent (PR_SET_PDEATHSIG), so that a
crashed server never leaves a writer behind to append to a store that recovery is reading.
The loop closes its end to stop the writer: it commits what it has received, then exits.

Time: a clock object cannot cross the process boundary, so the parent passes a picklable
factory (`process_clock`, `SystemClock` by default) and the writer builds its own clock from
it, for the window. The window's wait is a `select` on the socket, in real time whatever
the clock: the clock says how much of the window is left. The loop side takes the journal's
clock, for how long it waits for the writer to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import select
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from gateway.durability.chaincheck import chain_check
from gateway.durability.store import Batch, LogRow, SQLiteStore, Store
from gateway.server.clock import NS_PER_S, Clock, SystemClock

_LEN = struct.Struct(">I")
RECV_BYTES = 1 << 20
JOIN_S = 30.0  # for the writer to commit what it has and exit, when the journal closes
PR_SET_PDEATHSIG = 1

Reply = tuple[int, int, str]  # (last committed seq or 0, commands in the transaction, error)


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def split_frames(buf: bytearray) -> list[bytes]:
    """Take every complete frame off the front of `buf`."""
    out = []
    pos = 0
    end = len(buf)
    while end - pos >= 4:
        (n,) = _LEN.unpack_from(buf, pos)
        if end - pos - 4 < n:
            break
        out.append(bytes(buf[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    del buf[:pos]
    return out


def absorb(batch: Batch, more: Batch, batch_max: int) -> bool:
    """Add `more` to the transaction `batch` if it fits: at most `batch_max` commands, never
    past a snapshot (it is stored with the batch that ends at its sequence number). The one
    rule of both writers, thread and process."""
    if batch.snapshot is not None or len(batch.commands) + len(more.commands) > batch_max:
        return False
    batch.commands.extend(more.commands)
    batch.records.extend(more.records)
    batch.snapshot = more.snapshot
    return True


class Archiver:
    """Archives the journal rows and the settlement-log records that the oldest kept
    snapshot covers, one segment per commit turn (the journal's first, then the log's), so
    that a writer's pause for it is one segment's (about 7 MB written and fsynced), not a
    whole snapshot interval's. The one rule of both writers; `segment_rows` 0 turns it off.
    Every kept snapshot can still start without the archive: what comes after the oldest
    stays live. Log records are re-hashed before they are sealed into a segment
    (`check_log(records, prev)`; by default the real codec's chain, `chaincheck.chain_check`),
    since a start no longer re-hashes them once they are archived."""

    def __init__(
        self,
        store: Store,
        segment_rows: int,
        check_log: Callable[[Sequence[LogRow], str], object] | None = None,
    ) -> None:
        self.store = store
        self.segment_rows = segment_rows
        self.through = 0  # journal seq of the oldest kept snapshot
        self.log_through = 0  # and its settlement log seq
        self.pending = False
        self.archived_rows = 0
        self.archived_records = 0
        if segment_rows and check_log is None:
            from gateway.durability.journal import (
                SettlementCodec,  # here: gateway.durability.journal imports us
            )

            check_log = chain_check(SettlementCodec())
        self.check_log = check_log
        if segment_rows:
            self.after_snapshot()  # rows covered before this start, if any

    def after_snapshot(self) -> None:
        """A snapshot was stored and the old ones pruned: more may be covered now."""
        if not self.segment_rows or not isinstance(self.store, SQLiteStore):
            return
        kept = self.store.snapshots()
        if kept:
            self.through, self.log_through, self.pending = kept[-1].seq, kept[-1].log_seq, True

    def step(self) -> None:
        """Archive one segment if one is covered (after a commit, between batches)."""
        if self.pending:
            assert isinstance(self.store, SQLiteStore)
            moved = self.store.archive_journal(self.through, self.segment_rows)
            self.archived_rows += moved
            if not moved:
                moved = self.store.archive_log(self.log_through, self.segment_rows, self.check_log)
                self.archived_records += moved
            self.pending = moved > 0

    def finish(self) -> None:
        """Archive every covered segment left (when the writer stops: nothing waits on it)."""
        while self.pending:
            self.step()


def merge(pending: deque[Batch], batch_max: int) -> Batch:
    """One transaction from the front of `pending` (`absorb`'s rule)."""
    first = pending.popleft()
    batch = Batch(list(first.commands), list(first.records), first.snapshot)
    while pending and absorb(batch, pending[0], batch_max):
        pending.popleft()
    return batch


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies; elsewhere, do nothing.

    Linux sends the signal when the parent *thread* that created this process exits, not
    only the whole parent: `WriterProcess.start` runs on the event loop's thread, which lives
    as long as the server does."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def writer_main(
    data_dir: str,
    sock: socket.socket,
    parent_pid: int,
    batch_max: int,
    window_s: float,
    snapshots_kept: int,
    archive_segment_rows: int = 0,
    process_clock: Callable[[], Clock] = SystemClock,
) -> None:
    """The writer process: read batches, commit them, reply; exit at EOF or on a failure."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    # Ctrl-C, or a SIGTERM sent to the whole process group (systemd), stops the server, which
    # then closes our socket: we commit what we have and exit at EOF, or die with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    decode = msgspec.msgpack.Decoder(Batch).decode
    encode = msgspec.msgpack.Encoder().encode
    sock.setblocking(True)
    buf = bytearray()
    pending: deque[Batch] = deque()
    eof = False
    monotonic_ns = process_clock().monotonic_ns
    window_ns = round(window_s * NS_PER_S)

    def receive(timeout_s: float | None) -> None:
        """Read what arrives within `timeout_s` (None: block for at least one read)."""
        nonlocal eof
        if timeout_s is not None:
            ready, _, _ = select.select([sock], [], [], timeout_s)
            if not ready:
                return
        data = sock.recv(RECV_BYTES)
        if not data:
            eof = True
            return
        buf.extend(data)
        pending.extend(decode(f) for f in split_frames(buf))

    store: SQLiteStore | None = None
    try:
        store = SQLiteStore(data_dir)  # a store that cannot open is reported like a failed write
        archiver = Archiver(store, archive_segment_rows)
        while True:
            if not pending:
                if eof:
                    archiver.finish()
                    return
                receive(None)
                continue
            if not eof:  # what else has arrived (up to a full batch) joins this transaction
                deadline = monotonic_ns() + window_ns
                while not eof and sum(len(b.commands) for b in pending) < batch_max:
                    before = len(pending)
                    receive(max(0.0, (deadline - monotonic_ns()) / NS_PER_S))
                    if len(pending) == before:
                        break
            batch = merge(pending, batch_max)
            store.write(batch)
            if batch.snapshot is not None:
                store.prune_snapshots(snapshots_kept)
                archiver.after_snapshot()
            last = batch.commands[-1].seq if batch.commands else 0
            sock.sendall(frame(encode((last, len(batch.commands), ""))))
            archiver.step()  # after the reply: the commit it follows is not held up
    except BaseException as exc:  # tell the loop, then exit: it must stop acknowledging
        with contextlib.suppress(OSError):
            sock.sendall(frame(encode((-1, 0, f"{type(exc).__name__}: {exc}"))))
        raise SystemExit(1) from None
    finally:
        if store is not None:
            store.close()
        sock.close()


class WriterProcess:
    """The loop side: start the writer, send it batches, hear its commits.

    `on_commit(last_seq, commands)` runs on the loop after each transaction; `on_failure(text)`
    once, when the writer reports a failure or goes away while the journal is open."""

    def __init__(
        self,
        data_dir: str,
        *,
        batch_max: int,
        window_s: float,
        snapshots_kept: int,
        on_commit: Callable[[int, int], None],
        on_failure: Callable[[str], None],
        archive_segment_rows: int = 0,
        clock: Clock | None = None,
        process_clock: Callable[[], Clock] = SystemClock,
    ) -> None:
        self._args = (data_dir, batch_max, window_s, snapshots_kept, archive_segment_rows)
        self._clock: Clock = clock or SystemClock()
        self._process_clock = process_clock
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._decode = msgspec.msgpack.Decoder(tuple[int, int, str]).decode
        self._encode = msgspec.msgpack.Encoder().encode
        self._out = bytearray()
        self._in = bytearray()
        self._closing = False
        self._gone = False
        self._failed = False  # on_failure has been called
        self._sock: socket.socket | None = None
        self._proc: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def start(self) -> None:
        """Spawn the writer; call from inside the running loop."""
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        data_dir, batch_max, window_s, snapshots_kept, archive_rows = self._args
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._proc = ctx.Process(
            target=writer_main,
            args=(
                data_dir,
                theirs,
                os.getpid(),
                batch_max,
                window_s,
                snapshots_kept,
                archive_rows,
                self._process_clock,
            ),
            name="tonne-journal-writer",
            daemon=True,
        )
        self._proc.start()
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._loop.add_reader(ours.fileno(), self._readable)

    def send(self, batch: Batch) -> None:
        """Queue a batch to the writer (in order); written as the socket takes it."""
        self._send_bytes(frame(self._encode(batch)))

    def send_threadsafe(self, batch: Batch) -> None:
        """`send` from another thread: the (large, snapshot) batch is encoded there, and only
        the bytes are handed to the loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._send_bytes, frame(self._encode(batch)))

    def _send_bytes(self, data: bytes) -> None:
        if self._gone:
            return
        if self._sock is None:  # never started, or closed: a batch must not vanish
            self._lost("the writer process is not running")
            return
        was_empty = not self._out
        self._out += data
        if was_empty:
            self._write()

    def _write(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            n = sock.send(self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._lost(f"the writer process went away: {exc}")
            return
        del self._out[:n]
        assert self._loop is not None
        if self._out:
            self._loop.add_writer(sock.fileno(), self._write)
        else:
            self._loop.remove_writer(sock.fileno())
            if self._closing:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)

    def _readable(self) -> bool:
        """Read and act on what the writer sent; whether there was anything to read."""
        assert self._sock is not None
        try:
            data = self._sock.recv(RECV_BYTES)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._lost(f"the writer process went away: {exc}")
            return False
        if not data:  # expected only once close() has let it finish
            self._lost("the writer process went away (it exited)", expected=self._closing)
            return False
        self._in += data
        for f in split_frames(self._in):
            last, n, error = self._decode(f)
            if error:
                self._lost(f"the writer process failed: {error}")
                return False
            self._on_commit(last, n)
        return True

    def _lost(self, why: str, *, expected: bool = False) -> None:
        if self._gone:
            return
        self._gone = True
        self._detach()
        if not expected:
            self._fail(why)

    def _fail(self, why: str) -> None:
        if not self._failed:
            self._failed = True
            self._on_failure(why)

    def _detach(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())

    async def close(self) -> None:
        """Let the writer commit everything sent, then wait for it to exit (or kill it)."""
        if self._proc is None or self._sock is None:
            return
        self._closing = True
        if not self._out:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        loop = asyncio.get_running_loop()
        monotonic_ns = self._clock.monotonic_ns
        deadline = monotonic_ns() + round(JOIN_S * NS_PER_S)
        while self._proc.is_alive() and monotonic_ns() < deadline:
            await asyncio.sleep(0.005)  # keep the loop turning: replies, the rest of _out
        if self._proc.is_alive():
            self._proc.kill()
        await loop.run_in_executor(None, self._proc.join, JOIN_S)
        while not self._gone and self._readable():  # replies unread when it exited
            pass
        self._detach()
        self._sock.close()
        self._sock = None
        if self._proc.exitcode != 0:  # a closing commit (or snapshot) that did not happen
            self._fail(f"the writer process exited with code {self._proc.exitcode}")

    def kill(self) -> None:
        """Kill the writer (tests of a writer that dies)."""
        if self._proc is not None:
            self._proc.kill()
