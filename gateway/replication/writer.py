"""The primary's journal writer: each group-commit batch becomes one fenced stream message.

`Journal(store, writer=stream_writer_factory(...))` hands this writer its batches in order
(the `ExternalWriter` seam of gateway/durability/journal.py). One task on the loop takes what
is queued, up to `batch_max` commands and MESSAGE_BYTES_MAX bytes (never past a snapshot
point), publishes it as one `Commands` message with

    Nats-Expected-Last-Sequence: the stream sequence of the last message this primary knows
    Nats-Msg-Id:                 "<term>-<last command seq>"

and reports the commit to the journal only after the PubAck (with R3: a quorum has it), so
that is when clients hear their acknowledgements. Then the batch goes to the local copy.

- A PubAck that does not come (a server lost, a leader election) is retried with the same
  message id and the same expected sequence until `publish_deadline_s`: the stream either
  has it once (de-duplicated) or not at all. Past the deadline the journal fails, the
  server stops acknowledging and the node exits.
- A publish refused for a wrong last sequence means another primary has published: this one
  was deposed. Nothing more is committed; `on_deposed` is called (the node exits at once).
- A snapshot batch (its state hash computed by the journal's forked child) is published as a
  `Checkpoint` right behind the commands it covers, and its bytes uploaded to the object
  store by one background task (a snapshot arriving while one uploads is only kept locally).

Time: `clock.monotonic_ns` measures the deadline; the waits between retries are the loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.durability.store import Batch, JournalRow, Snapshot
from gateway.replication.local import LocalCopy
from gateway.replication.stream import (
    DUPLICATE_WINDOW_S,
    MESSAGE_BYTES_MAX,
    WRONG_LAST_SEQUENCE,
    Checkpoint,
    Commands,
    Link,
    StreamMessage,
    encode_message,
)
from gateway.server.clock import NS_PER_S, Clock

log = logging.getLogger("tonne.replication")

PUBLISH_TIMEOUT_S = 1.0  # one publish attempt waits this long for its PubAck
PUBLISH_DEADLINE_S = 10.0  # retries of one message stop after this: the journal fails
# A retry after the stream forgot the message's id would store it twice: the deadline stays
# well inside the de-duplication window.
PUBLISH_DEADLINE_MAX_S = DUPLICATE_WINDOW_S / 2
RETRY_WAIT_S = 0.05
SNAPSHOTS_KEPT_REMOTE = 3  # snapshot objects kept in NAME-snapshots
ROW_OVERHEAD_BYTES = 32  # msgpack framing of one journal row, over its command bytes
MARKS_MAX = 64  # snapshot points remembered before their batches are published
QUEUED_BATCHES_MAX = 1024  # batches waiting to be published; more: the stream cannot keep up


class Deposed(Exception):
    """The stream refused a publish for a wrong last sequence: another primary publishes."""


class LeaseExpired(Deposed):
    """This primary's lease may have expired (no renewal stored in a TTL): it may not
    publish, whether or not its renewal timer has fired yet (a late event loop)."""


class Unavailable(Exception):
    """No PubAck for a message within the publish deadline."""


async def publish(
    link: Link,
    msg: StreamMessage,
    *,
    expected_last: int,
    msg_id: str,
    clock: Clock,
    timeout_s: float = PUBLISH_TIMEOUT_S,
    deadline_s: float = PUBLISH_DEADLINE_S,
    lease_deadline_ns: Callable[[], int] | None = None,
) -> int:
    """Publish `msg` fenced at `expected_last`; its stream sequence. Raises `Deposed`, or
    `Unavailable` after `deadline_s` of retries (same id: never stored twice), or
    `LeaseExpired` instead of an attempt at or past `lease_deadline_ns()` (monotonic)."""
    import nats.errors
    from nats.js.errors import APIError

    payload = encode_message(msg)
    headers = {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Sequence": str(expected_last)}
    deadline = clock.monotonic_ns() + round(deadline_s * NS_PER_S)
    while True:
        if lease_deadline_ns is not None and clock.monotonic_ns() >= lease_deadline_ns():
            raise LeaseExpired(f"{msg_id} not sent: the lease was not renewed in time")
        try:
            ack = await link.js.publish(
                link.subject, payload, timeout=timeout_s, headers=dict(headers)
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise Deposed(
                    f"stream {link.stream} refused message {msg_id}: its last sequence is not "
                    f"{expected_last} (another primary has published)"
                ) from exc
            error: Exception = exc
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            error = exc
        else:
            seq: int = ack.seq
            if not ack.duplicate and seq != expected_last + 1:
                raise Deposed(
                    f"stream {link.stream} stored {msg_id} at {seq}, not {expected_last + 1}"
                )
            return seq
        if clock.monotonic_ns() >= deadline:
            raise Unavailable(f"no PubAck for {msg_id} within {deadline_s} s: {error!r}")
        await asyncio.sleep(RETRY_WAIT_S)


class StreamWriter:
    """See the module docstring. `stream_seq` is the last message the stream has from us (or
    that we caught up to), `log_head` the settlement log's head hash there."""

    def __init__(
        self,
        on_commit: Callable[[int, int], None],
        on_failure: Callable[[str], None],
        *,
        link: Link,
        local: LocalCopy,
        term: int,
        stream_seq: int,
        log_head: str,
        clock: Clock,
        on_deposed: Callable[[str], None],
        batch_max: int,
        message_bytes_max: int = MESSAGE_BYTES_MAX,
        publish_deadline_s: float = PUBLISH_DEADLINE_S,
        lease_deadline_ns: Callable[[], int] | None = None,
    ) -> None:
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.link = link
        self.local = local
        self.term = term
        self.stream_seq = stream_seq
        self.log_head = log_head
        self.clock = clock
        self.on_deposed = on_deposed
        self.batch_max = batch_max
        self.message_bytes_max = message_bytes_max
        self.publish_deadline_s = publish_deadline_s
        self.lease_deadline_ns = lease_deadline_ns  # past it, nothing is sent (LeaseExpired)
        self.messages = 0
        self.last_seq = 0  # the last journal command the stream has from this writer
        self.failed = ""
        self._queue: deque[Batch] = deque()
        self._marks: deque[int] = deque(maxlen=MARKS_MAX)
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._upload: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the ExternalWriter interface ------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    def send(self, batch: Batch) -> None:
        if self.failed:
            return
        if len(self._queue) >= QUEUED_BATCHES_MAX:  # the journal fails: nothing more is acked
            self._fail(
                f"{len(self._queue)} batches wait for the stream (limit {QUEUED_BATCHES_MAX})"
            )
            return
        self._queue.append(batch)
        self._wake.set()

    def send_threadsafe(self, batch: Batch) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.send, batch)

    def mark_snapshot(self, seq: int) -> None:
        """The journal takes a snapshot at command `seq`: the message ending there says so."""
        self._marks.append(seq)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._upload is not None:
            with contextlib.suppress(Exception):
                await self._upload

    # -- the publishing task ---------------------------------------------------------------

    async def _run(self) -> None:
        while not self.failed:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._publish_next()
            except Deposed as exc:
                self._fail(str(exc))
                self.on_deposed(str(exc))
                return
            except Unavailable as exc:
                self._fail(str(exc))
                return
            except Exception as exc:  # a bug: stop committing
                log.exception("stream writer failed")
                self._fail(repr(exc))
                return

    def _fail(self, why: str) -> None:
        self.failed = why
        self.on_failure(why)

    def _take(self) -> tuple[list[JournalRow], list[Any], bool, Snapshot | None]:
        """Rows (and log rows) of the queued batches for one message, within the bounds;
        whether the journal snapshots at its end; or a snapshot-only batch at the head."""
        head = self._queue[0]
        if not head.commands:
            self._queue.popleft()
            return [], list(head.records), False, head.snapshot
        rows: list[JournalRow] = []
        records: list[Any] = []
        size = 0
        while self._queue and self._queue[0].commands:
            batch = self._queue[0]
            for i, row in enumerate(batch.commands):
                row_bytes = len(row.cmd) + ROW_OVERHEAD_BYTES
                if row_bytes > self.message_bytes_max:
                    raise AssertionError(f"command seq {row.seq} is larger than a message")
                if rows and (
                    len(rows) >= self.batch_max or size + row_bytes > self.message_bytes_max
                ):
                    records.extend(self._split(batch, i))
                    return rows, records, False, None
                rows.append(row)
                size += row_bytes
            records.extend(batch.records)
            self._queue.popleft()
            if rows[-1].seq in self._marks:
                return rows, records, True, None
        return rows, records, False, None

    def _split(self, batch: Batch, at: int) -> list[Any]:
        """Leave the rows of the head batch from index `at` (and their records) queued; the
        records of the rows before it."""
        if at == 0:
            return []
        upto = batch.commands[at - 1].log_seq
        taken = [r for r in batch.records if r.seq <= upto]
        self._queue[0] = Batch(
            batch.commands[at:], [r for r in batch.records if r.seq > upto], batch.snapshot
        )
        return taken

    async def _publish_next(self) -> None:
        rows, records, checkpoint, snapshot = self._take()
        if snapshot is not None:
            await self._checkpoint(snapshot)
            return
        if not rows:
            return
        log_head = records[-1].hash if records else self.log_head
        msg = Commands(term=self.term, rows=rows, log_head=log_head, checkpoint=checkpoint)
        self.stream_seq = await publish(
            self.link,
            msg,
            expected_last=self.stream_seq,
            msg_id=f"{self.term}-{rows[-1].seq}",
            clock=self.clock,
            deadline_s=self.publish_deadline_s,
            lease_deadline_ns=self.lease_deadline_ns,
        )
        self.log_head = log_head
        self.messages += 1
        self.last_seq = rows[-1].seq
        self.on_commit(rows[-1].seq, len(rows))
        self.local.copy(Batch(rows, records), self.stream_seq)

    async def _checkpoint(self, snap: Snapshot) -> None:
        info = snap.info
        name = f"seq-{info.seq:016d}"
        uploading = self._upload is not None and not self._upload.done()
        msg = Checkpoint(
            seq=info.seq,
            log_seq=info.log_seq,
            log_head=info.log_head,
            state_hash=info.state_hash,
            snapshot="" if uploading else name,
        )
        self.stream_seq = await publish(
            self.link,
            msg,
            expected_last=self.stream_seq,
            msg_id=f"{self.term}-snapshot-{info.seq}",
            clock=self.clock,
            deadline_s=self.publish_deadline_s,
            lease_deadline_ns=self.lease_deadline_ns,
        )
        self.local.copy(Batch([], [], snap), self.stream_seq)
        if not uploading:
            self._upload = asyncio.get_running_loop().create_task(self._upload_snapshot(name, snap))

    async def _upload_snapshot(self, name: str, snap: Snapshot) -> None:
        """Upload to the object store, then prune to SNAPSHOTS_KEPT_REMOTE. A failure costs
        this upload only (the snapshot is in the local copy; the stream has every command)."""
        store = self.link.snapshots
        try:
            await store.put(name, snap.data)
            names = sorted(
                o.name for o in await store.list() if o.name.startswith("seq-") and not o.deleted
            )
            for old in names[:-SNAPSHOTS_KEPT_REMOTE]:
                await store.delete(old)
        except Exception as exc:
            log.warning("snapshot %s not uploaded: %r", name, exc)


def stream_writer_factory(**settings: Any) -> Callable[..., StreamWriter]:
    """A `writer=` for `Journal`: the journal gives the two callbacks, `settings` the rest;
    the writer made is kept in `factory.made` (the node asks it for its stream position)."""

    def make(
        on_commit: Callable[[int, int], None], on_failure: Callable[[str], None]
    ) -> StreamWriter:
        writer = StreamWriter(on_commit, on_failure, **settings)
        make.made = writer  # type: ignore[attr-defined]
        return writer

    return make
