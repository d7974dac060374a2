"""A node of a replicated exchange: `tonne serve --journal nats://... --stream NAME [--standby]`.

    open the stream and buckets (a primary makes them, with its --replicas and lease TTL; a
    standby waits for them) ─▶ primary: take the lease now (or refuse: someone holds it)
    local folder: genesis from stream message 1 (an empty stream: the primary publishes it)
    recover the folder (chains checked, snapshot + replay) ─▶ follow the stream from the
    position the folder recorded ─▶ standby: until the lease is free, then take it
    catch up to the stream's end ─▶ publish Promotion (fenced; refused: read on, retry)
    serve: Journal(writer=StreamWriter), Server, renew the lease, report the position

A standby does not listen for clients: a client finds the primary by trying its endpoints
(gateway/wire/PROTOCOL.md, "Failover"). A primary that loses its lease or is refused by the
stream's fence exits at once with EXIT_LEASE_LOST or EXIT_DEPOSED, sending nothing more (a
kill -9 of its own making: whatever it had not acknowledged may or may not be on the stream,
and the next primary serves exactly what is).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gateway.durability.journal import Journal
from gateway.durability.recovery import (
    REF_CONFIG,
    REF_PROJECTS,
    REF_SERIES,
    recover,
    save_genesis,
)
from gateway.durability.store import SQLiteStore
from gateway.replication.follower import Follower
from gateway.replication.lease import OP_TIMEOUT_S, POLL_S, RENEWALS_PER_TTL, Lease
from gateway.replication.local import BACKLOG_HIGH, LocalCopy, record_stream, stream_position
from gateway.replication.stream import (
    Commands,
    Genesis,
    Link,
    NodeStatus,
    NotCreated,
    Promotion,
    ReplicationError,
    decode_message,
    open_link,
)
from gateway.replication.writer import (
    PUBLISH_DEADLINE_S,
    Deposed,
    LeaseExpired,
    publish,
    stream_writer_factory,
)
from gateway.server.clock import NS_PER_S, Clock

log = logging.getLogger("tonne.replication")

EXIT_DEPOSED = 3  # the stream refused a publish: another primary
EXIT_LEASE_LOST = 4
EXIT_UNEXPECTED = 5  # an error nothing here expected (a bug, or NATS failing in a new way)
# The lease TTL is the failover time, and must outlast a JetStream leader election (a few
# seconds in nats-server 2.9: up to 4.5 s in tests/test_replication_failover.py) plus a client
# reconnect, or the loss of one NATS server costs the primary its lease.
LEASE_TTL_S = 10.0
STREAM_WAIT_S = 0.5  # a standby started before its primary looks for the stream this often
NEXT_MESSAGE_S = 2.0  # catching up, a consumer silent this long is made again...
CATCH_UP_RESTARTS_MAX = 10  # ...at most this many times before the node gives up
STALL_CHECK_S = 2.0  # a following standby checks this often that it is not stuck
STALL_CHECK_NS = round(STALL_CHECK_S * NS_PER_S)
FOLLOW_HEARTBEAT_S = 1.0  # the ordered consumer's idle heartbeat
PROMOTION_MARGIN_S = 1.0  # promotion is tried this much past the old primary's last publish
TAKEOVER_LAG_MAX = 10_000  # a standby further behind than this does not take the lease
STATUS_EVERY_S = 1.0  # how often a node reports its position in NAME-nodes
# Messages buffered for the follower: past either bound nats-py drops messages (a gap, which
# the follower sees and the feed restarts at); the bytes bound is the one that binds.
FOLLOW_PENDING_MAX = 512 * 1024
FOLLOW_PENDING_BYTES_MAX = 256 << 20
POSITION_LOOKBACK = 16  # stream messages looked at, back from a folder's position, for its check
NODE_KEY_MAX = 128  # characters of a node's key in NAME-nodes


@dataclass(frozen=True)
class ReplicationSettings:
    servers: list[str]
    stream: str
    standby: bool = False
    node: str = ""  # default: host name and TCP port
    # Copies of the stream and buckets (default 1) and the lease's TTL (default LEASE_TTL_S)
    # when a primary creates them; when given, an existing stream must have them (refused).
    replicas: int | None = None
    lease_ttl_s: float | None = None
    publish_deadline_s: float = PUBLISH_DEADLINE_S


class Feed:
    """The stream's messages after a follower's position, through an ordered consumer that
    can be made again (`restart`) from wherever the follower is: nats-py remakes a consumer
    whose heartbeats stop only every two heartbeats and gives up after one failed try, so a
    node whose NATS server died would otherwise wait long, or for ever."""

    def __init__(self, link: Link, follower: Follower) -> None:
        self.link = link
        self.follower = follower
        self.sub: Any = None

    async def open(self) -> None:
        from nats.js import api

        self.sub = await self.link.js.subscribe(
            self.link.subject,
            ordered_consumer=True,
            idle_heartbeat=FOLLOW_HEARTBEAT_S,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.follower.stream_seq + 1,
            ),
            pending_msgs_limit=FOLLOW_PENDING_MAX,
            pending_bytes_limit=FOLLOW_PENDING_BYTES_MAX,
        )

    async def next(self, timeout_s: float) -> Any:
        """The next message, or None after `timeout_s` (or with no consumer just now)."""
        import nats.errors

        if self.sub is None:
            await asyncio.sleep(timeout_s)
            return None
        try:
            return await self.sub.next_msg(timeout=timeout_s)
        except nats.errors.TimeoutError:
            return None

    async def restart(self) -> None:
        await self.close()
        await self.open()

    async def close(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


def node_key(name: str) -> str:
    """A node's key in NAME-nodes: its name with what a KV key may not hold as `_`."""
    return re.sub(r"[^-_=.a-zA-Z0-9]", "_", name)[:NODE_KEY_MAX] or "node"


def exit_now(code: int, why: str) -> None:
    """Stop this process at once: no acknowledgement, no commit, no snapshot may follow."""
    print(f"tonne serve: {why}; exiting at once, acknowledging nothing more", file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)


class Node:
    """One node's state across its roles (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        settings: ReplicationSettings,
        clock: Clock,
        *,
        snapshot_every: int,
        exit: Callable[[int, str], None] = exit_now,
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.exit = exit
        self.name = settings.node or socket.gethostname()
        self.role = "catching-up"
        self.link: Link | None = None
        self.store: SQLiteStore | None = None
        self.local: LocalCopy | None = None
        self.follower: Follower | None = None
        self.lease: Lease | None = None
        self.failure = asyncio.Event()
        self.failed = ""
        self.endpoint = ""
        self.writer: Any = None  # the StreamWriter, once serving
        self._status_task: asyncio.Task[None] | None = None

    def fail(self, why: str) -> None:
        if not self.failed:
            self.failed = why
            self.failure.set()

    async def open(self) -> None:
        """Connect, take the lease (a primary), make the folder ready, recover it."""
        s = self.settings
        self.link = await self._open_link()
        self.lease = Lease(self.link, self.name, self.link.lease_ttl_s, self.clock)
        if not s.standby and not await self._take():
            held = await self.lease.holder()
            who = held[0].node if held else "another node"
            raise ReplicationError(
                f"the lease of stream {s.stream} is held by {who}: start with --standby"
            )
        self.store = SQLiteStore(self.data_dir)
        name, _ = stream_position(self.store)
        if name and name != s.stream:
            raise ReplicationError(f"{self.data_dir} copies stream {name}, not {s.stream}")
        if not name and self.store.head().seq:
            raise ReplicationError(
                f"{self.data_dir} holds a one-process exchange's journal; a replicated node "
                "starts from an empty folder (or one that copies this stream)"
            )
        await self._genesis()
        record_stream(self.store, s.stream)
        got = recover(self.store, clock=self.clock)
        position = stream_position(self.store)[1]
        await self._check_position(position)
        self.local = LocalCopy(self.store, self.fail)
        self.local.start()
        self.follower = Follower(
            got.core,
            self.local,
            seq=got.seq,
            log_seq=got.log_seq,
            log_head=got.log_head,
            stream_seq=position,
            clock=self.clock,
            snapshot_every=self.snapshot_every,
        )
        self._status_task = asyncio.get_running_loop().create_task(self._report())

    async def _open_link(self) -> Link:
        """A primary creates the stream and buckets if missing; a standby never does (it has
        not been told how many copies the exchange wants) and waits for its primary."""
        s = self.settings
        opening = functools.partial(
            open_link, s.servers, s.stream, node=self.name, replicas=s.replicas,
            lease_ttl_s=s.lease_ttl_s,
        )  # fmt: skip
        if not s.standby:
            ttl_s = LEASE_TTL_S if s.lease_ttl_s is None else s.lease_ttl_s
            return await opening(create=True, create_lease_ttl_s=ttl_s)
        waited = False
        while True:
            try:
                return await opening(create=False)
            except NotCreated as exc:
                if not waited:
                    log.warning("%s: waiting for its primary to make it", exc)
                    waited = True
            await asyncio.sleep(STREAM_WAIT_S)

    async def _check_position(self, position: int) -> None:
        """The folder must be a prefix of the stream: the last command of the stream message
        at the recorded position (or the nearest before it that has commands) is the
        folder's command at that seq, byte for byte. A folder from another stream of the same
        name, or one the stream does not reach, is refused."""
        assert self.link is not None and self.store is not None
        if position == 0:
            return
        last = await self.link.last_seq()
        if position > last:
            raise ReplicationError(
                f"{self.data_dir} copied stream message {position}, but the stream ends at {last}"
            )
        for seq in range(position, max(1, position - POSITION_LOOKBACK) - 1, -1):
            raw = await self.link.js.get_msg(self.settings.stream, seq)
            msg = decode_message(raw.data or b"", seq)
            if not isinstance(msg, Commands) or not msg.rows:
                continue
            theirs = msg.rows[-1]
            mine = next(iter(self.store.commands(theirs.seq - 1)), None)
            if mine is None or (mine.seq, mine.ts, mine.cmd, mine.log_seq) != (
                theirs.seq,
                theirs.ts,
                theirs.cmd,
                theirs.log_seq,
            ):
                raise ReplicationError(
                    f"{self.data_dir} is not a copy of stream {self.settings.stream}: its "
                    f"command seq {theirs.seq} differs from stream message {seq}'s"
                )
            return

    async def _genesis(self) -> None:
        """The folder's reference data from stream message 1; on an empty stream, the
        primary publishes it (fenced at 0), a standby waits for it."""
        from nats.js.errors import NotFoundError

        assert self.link is not None and self.store is not None and self.lease is not None
        waited = False
        while True:
            try:
                raw = await self.link.js.get_msg(self.settings.stream, 1)
            except NotFoundError:
                raw = None
            if raw is not None:
                if not self.store.reference(REF_SERIES):
                    msg = decode_message(raw.data or b"", 1)
                    if not isinstance(msg, Genesis):
                        raise ReplicationError("stream message 1 is not the genesis")
                    self.store.put_reference(REF_SERIES, msg.series)
                    self.store.put_reference(REF_PROJECTS, msg.projects)
                    self.store.put_reference(REF_CONFIG, msg.config)
                return
            if not self.settings.standby:
                await self._publish_genesis()
                return
            if not waited:
                log.warning("stream %s is empty: waiting for its primary", self.settings.stream)
                waited = True
            await asyncio.sleep(POLL_S)

    async def _publish_genesis(self) -> None:
        """The folder's reference data (made first if it has none) as stream message 1. A
        folder may hold it already, stored by a primary whose publish then failed: the stream
        is still empty, so that is what goes on it, or its Promotion would be message 1."""
        from gateway.cli.serve import GENESIS_FEES, genesis_listing

        assert self.link is not None and self.store is not None and self.lease is not None
        store = self.store
        if store.head().seq or stream_position(store)[1]:
            return  # a folder with commands on an empty stream: _check_position refuses it
        if not store.reference(REF_SERIES):
            series, projects = genesis_listing()
            save_genesis(store, series=series, projects=projects, config=dict(GENESIS_FEES))
        genesis = Genesis(
            store.reference(REF_SERIES), store.reference(REF_PROJECTS), store.reference(REF_CONFIG)
        )
        await publish(
            self.link,
            genesis,
            expected_last=0,
            msg_id=f"{self.lease.term}-genesis",
            clock=self.clock,
        )

    # -- following -------------------------------------------------------------------------

    async def _apply(self, msg: Any) -> bool:
        """Apply one delivered message; False (nothing applied) if it is not the next one
        (messages were dropped on the way): the caller restarts the feed."""
        assert self.follower is not None and self.local is not None
        stream_seq = msg.metadata.sequence.stream
        if stream_seq > self.follower.stream_seq + 1:
            log.warning(
                "stream message %d delivered after %d: resubscribing",
                stream_seq,
                self.follower.stream_seq,
            )
            return False
        self.follower.apply(stream_seq, decode_message(msg.data, stream_seq))
        if self.local.backlog >= BACKLOG_HIGH:
            await self.local.drained()
        if self.failed:
            raise ReplicationError(self.failed)
        return True

    async def follow(self, stop: asyncio.Event) -> bool:
        """A standby's loop: apply what arrives; when the lease is free (and this node is
        not far behind), take it. True once this node holds the lease, False if stopped.
        Every STALL_CHECK_S without a message it asks where the stream ends, and makes its
        consumer again if the stream is ahead and nothing came (its NATS server was lost)."""
        import nats.errors

        assert self.lease is not None and self.link is not None and self.follower is not None
        self.role = "standby" if self.settings.standby else "catching-up"
        if not self.settings.standby:
            return True
        feed = Feed(self.link, self.follower)
        await feed.open()
        checked_ns, checked_at = self.clock.monotonic_ns(), self.follower.stream_seq
        try:
            while not stop.is_set() and not self.failed:
                msg = await feed.next(POLL_S)
                if msg is not None:
                    if not await self._apply(msg):
                        with contextlib.suppress(nats.errors.Error, TimeoutError):
                            await feed.restart()
                    continue
                try:
                    if await self._take_when_free():
                        return True
                    if self.clock.monotonic_ns() - checked_ns >= STALL_CHECK_NS:
                        stalled = self.follower.stream_seq == checked_at
                        if stalled and await self.link.last_seq() > checked_at:
                            log.warning(
                                "standby: no message for %.0f s: resubscribing", STALL_CHECK_S
                            )
                            await feed.restart()
                        checked_ns, checked_at = self.clock.monotonic_ns(), self.follower.stream_seq
                except (nats.errors.Error, TimeoutError) as exc:  # NATS away: keep following
                    log.warning("standby: the stream or lease cannot be read now: %r", exc)
            return False
        finally:
            await feed.close()

    async def _take_when_free(self) -> bool:
        """Take the lease if nobody holds it and this node is not far behind the stream."""
        assert self.lease is not None and self.link is not None and self.follower is not None
        held = await self.lease.holder()
        if held is not None and held[0].node != self.name:
            return False  # held by this node: a take stored unanswered, try_take adopts it
        lag = await self.link.last_seq() - self.follower.stream_seq
        return lag <= TAKEOVER_LAG_MAX and await self._take()

    async def _take(self) -> bool:
        """Take the lease and renew it from now on: recovery and catching up may outlast
        its TTL, and a lease that lapsed meanwhile would let a standby promote too (the fence
        keeps the history single, but both would then stop)."""
        assert self.lease is not None
        if not await self.lease.try_take():
            return False
        self.lease.keep(lambda why: self.exit(EXIT_LEASE_LOST, f"{why} ({self.where()})"))
        return True

    async def catch_up_and_promote(self) -> int:
        """Holding the lease: apply the stream to its end, then publish `Promotion` there
        (fenced). The stream sequence this primary starts publishing after. A refusal (the
        old primary published meanwhile) or NATS failing (a server lost, its elections) is
        retried, the lease renewed meanwhile, until `promotion_limit_s`."""
        import nats.errors

        assert self.lease is not None and self.link is not None and self.follower is not None
        self.role = "catching-up"
        limit_s = self.promotion_limit_s()
        deadline = self.clock.monotonic_ns() + round(limit_s * NS_PER_S)
        feed = Feed(self.link, self.follower)
        attempts, why = 0, ""
        try:
            while True:
                attempts += 1
                try:
                    return await self._promote_once(feed)
                except LeaseExpired:
                    raise
                except Deposed:  # the old primary published meanwhile: read on
                    why = "refused by the fence (the old primary published meanwhile)"
                except (nats.errors.Error, TimeoutError) as exc:
                    why = f"NATS: {exc!r}"
                    log.warning("taking over: %s; retrying", why)
                    await feed.close()
                    await asyncio.sleep(POLL_S)
                if self.clock.monotonic_ns() >= deadline:
                    raise ReplicationError(
                        f"no fenced promotion in {limit_s:g} s ({attempts} attempts): {why}"
                    )
        finally:
            await feed.close()

    def promotion_limit_s(self) -> float:
        """How long a new primary tries to promote: past the old primary's last publish (it
        stops at its renewal deadline, at most TTL/4 after the key's expiry, and a publish
        takes an op timeout) and past a NATS server's elections (the publish deadline)."""
        assert self.lease is not None
        old_primary_s = self.lease.ttl_s / RENEWALS_PER_TTL + OP_TIMEOUT_S + PROMOTION_MARGIN_S
        return max(old_primary_s, self.settings.publish_deadline_s)

    async def _promote_once(self, feed: Feed) -> int:
        """Catch up to the stream's end and publish the Promotion fenced there."""
        assert self.lease is not None and self.link is not None and self.follower is not None
        if feed.sub is None:
            await feed.open()
        last = await self.link.last_seq()
        await self._catch_up(feed, last)
        f = self.follower
        return await publish(
            self.link,
            Promotion(term=self.lease.term, node=self.name, seq=f.seq),
            expected_last=f.stream_seq,
            msg_id=f"{self.lease.term}-promotion",
            clock=self.clock,
            lease_deadline_ns=self.lease.deadline_ns,
        )

    async def _catch_up(self, feed: Feed, last: int) -> None:
        """Apply the stream through message `last`; a consumer that delivers nothing for
        NEXT_MESSAGE_S is made again, at most CATCH_UP_RESTARTS_MAX times."""
        import nats.errors

        assert self.follower is not None
        restarts = 0
        while self.follower.stream_seq < last:
            msg = await feed.next(NEXT_MESSAGE_S)
            if msg is not None and await self._apply(msg):
                continue
            restarts += 1
            if restarts > CATCH_UP_RESTARTS_MAX:
                raise ReplicationError(
                    f"the stream delivered nothing after message {self.follower.stream_seq} "
                    f"(it ends at {last}) in {restarts} tries of {NEXT_MESSAGE_S} s"
                )
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await feed.restart()

    # -- serving ---------------------------------------------------------------------------

    def journal(self, stream_seq: int, journaling: Any) -> Journal:
        """The primary's journal: group commit to the stream, then the local copy."""
        f, lease = self.follower, self.lease
        assert f is not None and lease is not None and self.link is not None
        assert self.store is not None and self.local is not None
        factory = stream_writer_factory(
            link=self.link,
            local=self.local,
            term=lease.term,
            stream_seq=stream_seq,
            log_head=f.log_head,
            clock=self.clock,
            on_deposed=lambda why: self.exit(EXIT_DEPOSED, f"deposed: {why} ({self.where()})"),
            batch_max=journaling.batch_max,
            publish_deadline_s=self.settings.publish_deadline_s,
            lease_deadline_ns=lease.deadline_ns,
        )
        self._factory = factory
        f.stream_seq = stream_seq
        return Journal(
            self.store,
            seq=f.seq,
            log_seq=f.log_seq,
            log_head=f.log_head,
            core=f.core,
            batch_max=journaling.batch_max,
            window_s=journaling.window_s,
            snapshot_every=journaling.snapshot_every,
            clock=self.clock,
            writer=factory,
        )

    def serving(self, endpoint: str) -> None:
        """Now the primary: the lease (renewed since it was taken; its loss stops the
        process at once) names where it serves."""
        assert self.lease is not None
        self.role = "primary"
        self.endpoint = endpoint
        self.writer = self._factory.made  # type: ignore[attr-defined]
        self.lease.endpoint = endpoint

    def where(self) -> str:
        """Where this node stands, for its last words."""
        return f"journal seq {self.journal_seq()}, stream message {self.position()}"

    def position(self) -> int:
        """The last stream message this node applied, or published as the primary."""
        if self.writer is not None:
            return int(self.writer.stream_seq)
        return self.follower.stream_seq if self.follower is not None else 0

    def journal_seq(self) -> int:
        """The last journal command this node has applied (or the stream has from it)."""
        seq = self.follower.seq if self.follower is not None else 0
        return max(seq, int(self.writer.last_seq)) if self.writer is not None else seq

    async def _report(self) -> None:
        """Every STATUS_EVERY_S, this node's position in NAME-nodes (for `tonne status`)."""
        assert self.link is not None
        while True:
            status = NodeStatus(
                node=self.name,
                role=self.role,
                stream_seq=self.position(),
                seq=self.journal_seq(),
                term=self.lease.term if self.lease and self.role == "primary" else 0,
                ts=self.clock.now_ns(),
                endpoint=self.endpoint,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.link.nodes_kv.put(node_key(self.name), msgspec.msgpack.encode(status)),
                    POLL_S * 5,
                )
            await asyncio.sleep(STATUS_EVERY_S)

    async def close(self, *, release: bool) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._status_task
        if release and self.lease is not None:
            await self.lease.release()
        if self.local is not None:
            await self.local.close()
        if self.link is not None:
            await self.link.close()
        if self.store is not None:
            self.store.close()
