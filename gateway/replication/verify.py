"""The audit of a replicated journal: replay the whole stream from its genesis.

`replay_stream` reads every message of the stream in order (an ordered consumer, each message
within NEXT_MESSAGE_S), applies it through a fresh core exactly as a standby does
(follower.py: no gap, each row's settlement-log position, the log head of each message, every
snapshot's state hash at its `Checkpoint`), and checks the rebuilt core's invariants at the
end. It is `tonne log verify` over the stream (`tonne status --verify`): it needs no node's
folder, only the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from gateway.durability.recovery import REF_CONFIG, REF_PROJECTS, REF_SERIES, genesis_core
from gateway.replication.follower import Follower
from gateway.replication.stream import Checkpoint, Genesis, Link, ReplicationError, decode_message
from gateway.server.clock import Clock

NEXT_MESSAGE_S = 10.0


class StreamReplay(msgspec.Struct):
    messages: int
    seq: int  # last journal command
    log_seq: int
    state_hash: str
    checkpoints_checked: int
    checkpoints_unchecked: int
    hashes_at: dict[int, str]  # state hash after each command asked for
    terms: int  # distinct primaries (terms) that published
    snapshots: list[tuple[int, str, str]]  # every Checkpoint: (seq, state hash, object name)


class _Reference:
    """Genesis reference data, in the shape `genesis_core` reads from a store."""

    def __init__(self, genesis: Genesis) -> None:
        self.items = {REF_SERIES: genesis.series, REF_PROJECTS: genesis.projects}
        self.items[REF_CONFIG] = genesis.config

    def reference(self, kind: str) -> list[tuple[str, bytes]]:
        return list(self.items.get(kind, []))


async def replay_stream(
    link: Link,
    clock: Clock,
    *,
    hashes_at: Iterable[int] = (),
    on_command: Callable[[int, Any, list[Any]], None] | None = None,
) -> StreamReplay:
    """Replay the stream from message 1 to its last message now (see the module docstring);
    `ReplicationError` at the first disagreement."""
    from nats.js import api

    last = await link.last_seq()
    if last < 1:
        raise ReplicationError(f"stream {link.stream} is empty")
    sub = await link.js.subscribe(
        link.subject,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
    )
    follower: Follower | None = None
    terms: set[int] = set()
    snapshots: list[tuple[int, str, str]] = []
    try:
        for expected in range(1, last + 1):
            msg = await asyncio.wait_for(sub.next_msg(timeout=NEXT_MESSAGE_S), NEXT_MESSAGE_S * 2)
            stream_seq = msg.metadata.sequence.stream
            if stream_seq != expected:
                raise ReplicationError(f"stream message {expected} missing (got {stream_seq})")
            decoded = decode_message(msg.data, stream_seq)
            if follower is None:
                if not isinstance(decoded, Genesis):
                    raise ReplicationError("stream message 1 is not the genesis")
                core = genesis_core(_Reference(decoded))  # type: ignore[arg-type]
                core.drain_records()
                follower = Follower(
                    core,
                    None,
                    seq=0,
                    log_seq=0,
                    log_head="",
                    stream_seq=1,
                    clock=clock,
                    on_command=on_command,
                )
                follower.want_hash_at(set(hashes_at))
                continue
            term = getattr(decoded, "term", 0)
            if term:
                terms.add(term)
            if isinstance(decoded, Checkpoint):
                snapshots.append((decoded.seq, decoded.state_hash, decoded.snapshot))
            follower.apply(stream_seq, decoded)
    finally:
        await sub.unsubscribe()
    assert follower is not None
    follower.core.check_invariants()
    return StreamReplay(
        messages=last,
        seq=follower.seq,
        log_seq=follower.log_seq,
        state_hash=follower.core.state_hash(),
        checkpoints_checked=follower.checkpoints_checked,
        checkpoints_unchecked=follower.checkpoints_unchecked,
        hashes_at=dict(follower.hashes_at),
        terms=len(terms),
        snapshots=snapshots,
    )
