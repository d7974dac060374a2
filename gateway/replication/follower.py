"""Applying stream messages to the core: a standby's whole job, and every node's catch-up.

Each `Commands` row is decoded and applied through the same deterministic core as recovery
replays it (gateway/durability/recovery.py), and everything is checked against what the
primary recorded: no gap in the command sequence, each row's settlement-log position, and the
log's head hash at the end of each message. A message marked `checkpoint` (the primary
snapshots at its last command) makes the follower keep its own state hash there, and the
`Checkpoint` that follows (once the primary's snapshot is serialized) must carry the same
hash. Any difference is a `ReplicationError`: the node stops rather than hold another ledger
than the primary's.

Everything applied goes to the local copy (local.py), with a local snapshot every
`snapshot_every` commands so that the node restarts quickly from its own folder.
No I/O here beyond handing batches to the copy; the node (node.py) reads the stream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway.durability.journal import Codec, SettlementCodec
from gateway.durability.store import Batch, JournalRow, LogRow, Snapshot, SnapshotInfo
from gateway.replication.local import LocalCopy
from gateway.replication.stream import (
    Checkpoint,
    Commands,
    Genesis,
    Promotion,
    ReplicationError,
    StreamMessage,
)
from gateway.server.clock import Clock

CHECKPOINTS_PENDING_MAX = 16  # own state hashes kept, waiting for their Checkpoint message
SNAPSHOT_EVERY = 100_000  # commands between a follower's local snapshots


class Follower:
    """The core and the local copy, moved on by stream messages, in stream order."""

    def __init__(
        self,
        core: Any,
        local: LocalCopy | None,
        *,
        seq: int,
        log_seq: int,
        log_head: str,
        stream_seq: int,
        clock: Clock,
        codec: Codec | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
        on_command: Callable[[int, Any, list[Any]], None] | None = None,
    ) -> None:
        self.core = core
        self.on_command = on_command  # sees every command applied and its events (audits)
        self.local = local
        self.seq = seq
        self.log_seq = log_seq
        self.log_head = log_head
        self.stream_seq = stream_seq
        self.clock = clock
        self.codec: Codec = codec if codec is not None else SettlementCodec()
        self.snapshot_every = snapshot_every
        self.snap_seq = seq
        self.term = 0
        self.checkpoints_checked = 0
        self.checkpoints_unchecked = 0  # their point was before this node followed
        self._pending: OrderedDict[int, str] = OrderedDict()
        self.hashes_at: dict[int, str] = {}  # asked for (`want_hash_at`), filled when passed
        self._want: set[int] = set()

    def want_hash_at(self, seqs: set[int]) -> None:
        """Keep the state hash after each of these commands (an audit replay asks)."""
        self._want |= seqs

    def apply(self, stream_seq: int, msg: StreamMessage) -> None:
        """Apply stream message `stream_seq` (messages already applied are skipped)."""
        if stream_seq <= self.stream_seq:
            return
        if stream_seq != self.stream_seq + 1:
            raise ReplicationError(f"stream message {stream_seq} after {self.stream_seq}")
        if isinstance(msg, Commands):
            self._commands(stream_seq, msg)
        elif isinstance(msg, Checkpoint):
            self._checkpoint(stream_seq, msg)
        elif isinstance(msg, Promotion):
            self.term = max(self.term, msg.term)
        elif isinstance(msg, Genesis) and stream_seq != 1:
            raise ReplicationError(f"stream message {stream_seq} is a second genesis")
        self.stream_seq = stream_seq

    def _commands(self, stream_seq: int, msg: Commands) -> None:
        self.term = max(self.term, msg.term)
        rows: list[JournalRow] = []
        records: list[LogRow] = []
        for row in msg.rows:
            if row.seq <= self.seq:  # the local copy had it before the recorded position
                continue
            if row.seq != self.seq + 1:
                raise ReplicationError(
                    f"stream message {stream_seq}: command seq {row.seq} after {self.seq}"
                )
            self._apply_row(stream_seq, row, records)
            rows.append(row)
            if row.seq in self._want:
                self.hashes_at[row.seq] = self.core.state_hash()
        if rows and msg.log_head and msg.log_head != self.log_head:
            raise ReplicationError(
                f"stream message {stream_seq}: the replay's settlement log head is "
                f"{self.log_head[:16]}, the primary's {msg.log_head[:16]}"
            )
        snapshot = None
        if rows and msg.checkpoint:
            self._keep_hash(self.seq, self.core.state_hash())
        if self.local is not None and self.seq - self.snap_seq >= self.snapshot_every:
            snapshot = self._snapshot()
        if self.local is not None and (rows or snapshot is not None):
            self.local.copy(Batch(rows, records, snapshot), stream_seq)

    def _apply_row(self, stream_seq: int, row: JournalRow, records: list[LogRow]) -> None:
        codec = self.codec
        cmd = codec.decode_command(row.cmd)
        try:
            events = self.core.apply(cmd)
        except Exception as exc:  # a bug or a broken invariant: name where
            raise ReplicationError(f"applying command seq {row.seq} failed: {exc!r}") from exc
        if self.on_command is not None:
            self.on_command(row.seq, cmd, events)
        for record in self.core.drain_records():
            if record.seq != self.log_seq + 1:
                raise ReplicationError(f"settlement record seq {record.seq} after {self.log_seq}")
            records.append(LogRow(record.seq, codec.encode_record(record), record.hash))
            self.log_seq, self.log_head = record.seq, record.hash
        self.seq = row.seq
        if self.log_seq != row.log_seq:
            raise ReplicationError(
                f"stream message {stream_seq}: command seq {row.seq} ends the settlement log at "
                f"{self.log_seq} here, at {row.log_seq} on the primary"
            )

    def _keep_hash(self, seq: int, state_hash: str) -> None:
        self._pending[seq] = state_hash
        while len(self._pending) > CHECKPOINTS_PENDING_MAX:
            self._pending.popitem(last=False)

    def _checkpoint(self, stream_seq: int, msg: Checkpoint) -> None:
        mine = self._pending.pop(msg.seq, None)
        if mine is None and msg.seq == self.seq:
            mine = self.core.state_hash()
        if mine is None:
            self.checkpoints_unchecked += 1
            return
        if mine != msg.state_hash:
            raise ReplicationError(
                f"stream message {stream_seq}: state hash at command seq {msg.seq} is "
                f"{mine[:16]} here, {msg.state_hash[:16]} in the primary's snapshot"
            )
        self.checkpoints_checked += 1

    def _snapshot(self) -> Snapshot:
        data = self.core.snapshot()
        info = SnapshotInfo(
            self.seq,
            self.log_seq,
            self.log_head,
            self.core.state_hash(),
            self.clock.now_ns(),
            len(data),
        )
        self.snap_seq = self.seq
        return Snapshot(info, data)
