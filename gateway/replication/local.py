"""A node's local copy of the stream: its SQLite folder, written by one thread.

Both roles write through it: the primary after each PubAck (so the folder never holds a
command the stream does not), a standby after applying each message. Each item is a store
`Batch` and the stream sequence it brings the copy to; the thread gathers what is queued into
one transaction (up to COPY_BATCH_MAX commands, never past a snapshot), then records the
stream position in the reference table (`replication`/`stream_seq`). That second write is its
own transaction: after a crash between the two the recorded position is behind the journal,
and catching up skips the commands the folder already has. The copy is a cache of the
stream, so nothing waits for it but `close()`; a write that fails stops the node.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable

import msgspec

from gateway.durability.store import Batch, SQLiteStore
from gateway.durability.writer_process import absorb

REF_REPLICATION = "replication"  # reference kind: the stream this folder copies, and where
COPY_BATCH_MAX = 8192  # commands per local transaction, at most
BACKLOG_MAX = 4096  # batches queued for the copy; more means the disk cannot keep up: stop
BACKLOG_HIGH = 1024  # a follower waits (`drained`) when this many batches are queued
SNAPSHOTS_KEPT = 3


def stream_position(store: SQLiteStore) -> tuple[str, int]:
    """(stream name, last stream seq copied) that the folder records; ("", 0) if none."""
    items = dict(store.reference(REF_REPLICATION))
    name = items.get("stream", b"").decode()
    seq = msgspec.msgpack.decode(items["stream_seq"]) if "stream_seq" in items else 0
    return name, int(seq)


def record_stream(store: SQLiteStore, stream: str) -> None:
    store.put_reference(REF_REPLICATION, [("stream", stream.encode())])


class LocalCopy:
    """The writer thread of the local copy. `copy(batch, stream_seq)` from the loop."""

    def __init__(self, store: SQLiteStore, on_failure: Callable[[str], None]) -> None:
        self.store = store
        self.on_failure = on_failure
        self.copied_stream_seq = 0
        self._queue: queue.SimpleQueue[tuple[Batch, int] | None] = queue.SimpleQueue()
        self._queued = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failed = ""
        self._drained = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Batches handed over and not yet written."""
        return self._queued

    async def drained(self, below: int = BACKLOG_HIGH // 2) -> None:
        """Return once fewer than `below` batches wait (a follower applying a long stream
        waits here, so that it never runs BACKLOG_MAX ahead of its disk)."""
        while self._queued >= below and not self.failed:
            self._drained.clear()
            await self._drained.wait()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="local-copy", daemon=True)
        self._thread.start()

    def copy(self, batch: Batch, stream_seq: int) -> None:
        if self.failed:
            return
        if self._queued >= BACKLOG_MAX:
            self._fail(f"the local copy is {self._queued} batches behind (limit {BACKLOG_MAX})")
            return
        self._queued += 1
        self._queue.put((batch, stream_seq))

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._thread = None

    def _fail(self, why: str) -> None:
        if not self.failed:
            self.failed = why
            self._drained.set()
            self.on_failure(why)

    def _done(self, items: int, stream_seq: int) -> None:
        self._queued -= items
        self.copied_stream_seq = stream_seq
        self._drained.set()

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        q = self._queue
        carry: tuple[Batch, int] | None = None
        while True:
            first = carry if carry is not None else q.get()
            carry = None
            if first is None:
                return
            batch = Batch(list(first[0].commands), list(first[0].records), first[0].snapshot)
            stream_seq, items, stop = first[1], 1, False
            while batch.snapshot is None:
                try:
                    more = q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if not absorb(batch, more[0], COPY_BATCH_MAX):
                    carry = more
                    break
                stream_seq, items = more[1], items + 1
            try:
                self.store.write(batch)
                if batch.snapshot is not None:
                    self.store.prune_snapshots(SNAPSHOTS_KEPT)
                self.store.put_reference(
                    REF_REPLICATION, [("stream_seq", msgspec.msgpack.encode(stream_seq))]
                )
            except BaseException as exc:
                loop.call_soon_threadsafe(self._fail, f"local copy failed: {exc!r}")
                return
            loop.call_soon_threadsafe(self._done, items, stream_seq)
            if stop:
                return
