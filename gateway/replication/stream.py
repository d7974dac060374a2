"""What goes on the stream, and how a node reaches it: messages, connection, stream and buckets.

One stream per exchange (shard), subject `NAME.journal`, every message one of:

    Genesis     stream seq 1: the reference data the genesis core is built from
    Commands    one group-commit batch: journal rows (seq, ts, encoded command, log_seq) and
                the settlement log's head hash after them; `checkpoint` when the primary takes
                a snapshot exactly at its last command (a standby then keeps its state hash)
    Checkpoint  a snapshot's state hash at command `seq` (and its object's name): a standby
                compares it with its own state hash there
    Promotion   a new primary's first message (term = its lease revision): it fences the old
                primary, whose next publish then expects an older last sequence

Every publish carries `Nats-Expected-Last-Sequence` (the fence) and a `Nats-Msg-Id` of its
term and position (a publish retried after a lost PubAck is de-duplicated, not doubled).
Buckets: `NAME-lease` (KV, TTL = the lease), `NAME-nodes` (KV: each node's position, for
`tonne status`), `NAME-snapshots` (object store).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from gateway.durability.store import JournalRow

WRONG_LAST_SEQUENCE = 10071  # JetStream's err_code: the Nats-Expected-Last-Sequence was not it
MESSAGE_BYTES_MAX = 900_000  # a stream message, at most (the server's default max is 1 MiB)
DUPLICATE_WINDOW_S = 120.0  # how long the stream remembers a message id (de-duplication)
CONNECT_TIMEOUT_S = 2.0
RECONNECT_WAIT_S = 0.2  # between reconnect attempts to the next server of the list
PING_INTERVAL_S = 1.0  # a dead connection is noticed after PINGS_OUTSTANDING_MAX of these
PINGS_OUTSTANDING_MAX = 2
NODES_TTL_S = 60.0  # a node that stopped reporting its position vanishes from status after this
LEASE_KEY = "primary"
LEASE_TTL_CREATE_S = 2.0  # the lease bucket's TTL when open_link makes it and is not told one
URLS_MAX = 16  # servers in one --journal list


class ReplicationError(Exception):
    """The stream and this node disagree (a gap, a diverging replay, a foreign folder): the
    node must stop rather than serve a ledger the stream does not hold."""


class Genesis(msgspec.Struct, frozen=True, tag="genesis"):
    series: list[tuple[str, bytes]]
    projects: list[tuple[str, bytes]]
    config: list[tuple[str, bytes]]


class Commands(msgspec.Struct, frozen=True, tag="commands"):
    term: int
    rows: list[JournalRow]
    log_head: str  # the settlement log's last record hash after the last row ("" if none yet)
    checkpoint: bool = False


class Checkpoint(msgspec.Struct, frozen=True, tag="checkpoint"):
    seq: int
    log_seq: int
    log_head: str
    state_hash: str
    snapshot: str  # the object's name in NAME-snapshots ("" if it was not uploaded)


class Promotion(msgspec.Struct, frozen=True, tag="promotion"):
    term: int
    node: str
    seq: int  # the last journal command the new primary starts from


StreamMessage = Genesis | Commands | Checkpoint | Promotion

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StreamMessage)


def encode_message(msg: StreamMessage) -> bytes:
    return _encoder.encode(msg)


def decode_message(data: bytes, stream_seq: int) -> StreamMessage:
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplicationError(f"stream message {stream_seq} does not decode: {exc}") from exc


class NodeStatus(msgspec.Struct, frozen=True):
    """What each node reports in NAME-nodes, for `tonne status`."""

    node: str
    role: str  # "primary", "standby", "catching-up"
    stream_seq: int  # last stream message applied (standby) or published (primary)
    seq: int  # last journal command
    term: int
    ts: int  # wall time of the report, ns
    endpoint: str = ""  # host:tcp_port when serving


class LeaseValue(msgspec.Struct, frozen=True):
    node: str
    endpoint: str
    ts: int  # wall time the holder took or renewed it, ns


def parse_servers(url: str) -> list[str]:
    """`nats://h:p[,h:p...]` (or each with its own scheme) as a server list; ValueError if
    it is not one."""
    parts = [p.strip() for p in url.split(",") if p.strip()]
    if not parts or len(parts) > URLS_MAX:
        raise ValueError(f"--journal needs 1 to {URLS_MAX} servers, got {url!r}")
    servers = []
    for part in parts:
        full = part if "://" in part else f"nats://{part}"
        split = urlsplit(full)
        if split.scheme not in ("nats", "tls") or not split.hostname or not split.port:
            raise ValueError(f"not a nats://HOST:PORT server: {part!r}")
        servers.append(f"{split.scheme}://{split.hostname}:{split.port}")
    return servers


def stream_names(stream: str) -> dict[str, str]:
    """The subject and bucket names of stream `stream`; ValueError if it is not a name."""
    if not stream or not all(c.isalnum() or c in "-_" for c in stream) or len(stream) > 64:
        raise ValueError(f"a stream name is 1-64 letters, digits, - or _: {stream!r}")
    return {
        "subject": f"{stream}.journal",
        "lease": f"{stream}-lease",
        "nodes": f"{stream}-nodes",
        "snapshots": f"{stream}-snapshots",
    }


async def connect(servers: Sequence[str], name: str) -> Any:
    """A NATS connection that reconnects to any server of the list, for ever (each loss is
    noticed within PING_INTERVAL_S * PINGS_OUTSTANDING_MAX)."""
    import nats

    async def quiet(exc: Exception) -> None:  # reconnects are expected during failover
        return None

    return await nats.connect(
        servers=list(servers),
        name=name,
        connect_timeout=CONNECT_TIMEOUT_S,
        reconnect_time_wait=RECONNECT_WAIT_S,
        max_reconnect_attempts=-1,
        ping_interval=PING_INTERVAL_S,
        max_outstanding_pings=PINGS_OUTSTANDING_MAX,
        allow_reconnect=True,
        error_cb=quiet,
    )


class Link:
    """One node's handles on the stream and its buckets, and what they were made with: the
    stream's copies (`replicas`) and the lease bucket's TTL (`lease_ttl_s`), which is the
    lease whatever a node's command line says."""

    def __init__(
        self,
        nc: Any,
        js: Any,
        stream: str,
        lease: Any,
        nodes: Any,
        snaps: Any,
        *,
        replicas: int,
        lease_ttl_s: float,
    ):
        self.nc = nc
        self.replicas = replicas
        self.lease_ttl_s = lease_ttl_s
        self.js = js
        self.stream = stream
        self.subject = stream_names(stream)["subject"]
        self.lease_kv = lease
        self.nodes_kv = nodes
        self.snapshots = snaps

    async def last_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        last: int = info.state.last_seq
        return last

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()


class NotCreated(Exception):
    """The stream or one of its buckets does not exist yet (a standby waits for its primary)."""


async def open_link(
    servers: Sequence[str],
    stream: str,
    *,
    node: str,
    replicas: int | None = None,
    lease_ttl_s: float | None = None,
    create: bool = True,
    create_lease_ttl_s: float = LEASE_TTL_CREATE_S,
) -> Link:
    """Connect and make sure the stream and buckets exist (`create`, with `replicas` copies
    each, default 1, and a lease of `lease_ttl_s`, default LEASE_TTL_CREATE_S); without
    `create`, NotCreated if one is missing. Existing ones are used as they are, but a
    `replicas` or `lease_ttl_s` given that differs from theirs is a ReplicationError: a node
    asked for three copies must not serve on one."""
    nc = await connect(servers, node)
    try:
        js = nc.jetstream(timeout=CONNECT_TIMEOUT_S * 2)
        ttl_s = create_lease_ttl_s if lease_ttl_s is None else lease_ttl_s
        handles = await _open_handles(js, stream, replicas, lease_ttl_s, ttl_s if create else 0)
    except BaseException:
        await nc.close()
        raise
    return Link(nc, js, stream, *handles[:3], replicas=handles[3], lease_ttl_s=handles[4])


async def _open_handles(
    js: Any, stream: str, replicas: int | None, lease_ttl_s: float | None, create_ttl_s: float
) -> tuple[Any, Any, Any, int, float]:
    """The lease, nodes and snapshot buckets, the stream's copies and the lease's TTL;
    missing ones are made when `create_ttl_s` (their lease TTL) is not 0."""
    from nats.js import api
    from nats.js.errors import BucketNotFoundError, NotFoundError

    names = stream_names(stream)
    create = create_ttl_s > 0
    copies = replicas or 1
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        if not create:
            raise NotCreated(f"stream {stream} does not exist yet") from None
        info = await js.add_stream(
            api.StreamConfig(
                name=stream,
                subjects=[names["subject"]],
                storage=api.StorageType.FILE,
                num_replicas=copies,
                duplicate_window=DUPLICATE_WINDOW_S,
                max_msg_size=MESSAGE_BYTES_MAX + 4096,
                discard=api.DiscardPolicy.NEW,  # never drop a journal message
            )
        )
    has = int(info.config.num_replicas or 1)
    if replicas is not None and has != replicas:
        raise ReplicationError(
            f"stream {stream} has {has} replica(s), not the {replicas} asked for: start "
            f"with --replicas {has}, or make the stream again"
        )

    async def bucket(name: str, ttl: float) -> Any:
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            if not create:
                raise NotCreated(f"bucket {name} does not exist yet") from None
            return await js.create_key_value(bucket=name, history=1, ttl=ttl, replicas=copies)

    lease = await bucket(names["lease"], create_ttl_s)
    ttl_s = float((await lease.status()).ttl or 0)
    if ttl_s <= 0:
        raise ReplicationError(f"bucket {names['lease']} has no TTL: it is not a lease")
    if lease_ttl_s is not None and abs(ttl_s - lease_ttl_s) > 1e-3:
        raise ReplicationError(
            f"the lease of stream {stream} has a TTL of {ttl_s:g} s, not the {lease_ttl_s:g} s "
            f"asked for: start with --lease-ttl-s {ttl_s:g} (or without it)"
        )
    nodes = await bucket(names["nodes"], NODES_TTL_S)
    try:
        snaps = await js.object_store(names["snapshots"])
    except (BucketNotFoundError, NotFoundError):
        if not create:
            raise NotCreated(f"object store {names['snapshots']} does not exist yet") from None
        snaps = await js.create_object_store(names["snapshots"], replicas=copies)
    return lease, nodes, snaps, has, ttl_s
