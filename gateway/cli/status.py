"""`tonne status`: a replicated exchange's roles, lease, stream and the lag of each node.

    tonne status --journal nats://HOST:PORT[,...] --stream NAME [--json] [--verify]

Reads, changes nothing: the stream's state and its replicas (JetStream's own view: the
leader, and per replica whether it is current and how far behind), the lease (who holds it,
its term, how long ago it was renewed), and what each node last reported in NAME-nodes
(role, stream position, lag behind the stream's last message, journal seq, age of the
report). `--verify` also replays the whole stream from its genesis through a fresh core
(gateway/replication/verify.py: every gap, log head and snapshot hash checked, the
invariants at the end): `tonne log verify` over the stream. Exit 0, or 1 when the stream
cannot be reached or does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import msgspec

from gateway.replication.stream import (
    NodeStatus,
    ReplicationError,
    open_link,
    parse_servers,
    stream_names,
)
from gateway.server.clock import NS_PER_S, Clock, SystemClock

STATUS_TIMEOUT_S = 10.0  # the whole report, at most
NODES_MAX = 64  # nodes listed
STALE_S = 3.0  # a node's report older than this is shown as stale (it reports every second)


async def collect(servers: list[str], stream: str, clock: Clock, verify: bool) -> dict[str, Any]:
    from nats.js.errors import NoKeysError

    from gateway.replication.lease import Lease
    from gateway.replication.verify import replay_stream

    link = await open_link(servers, stream, node="tonne-status", create=False)
    try:
        info = await link.js.stream_info(stream)
        now = clock.now_ns()
        last = info.state.last_seq
        out: dict[str, Any] = {
            "stream": stream,
            "messages": info.state.messages,
            "last_seq": last,
            "bytes": info.state.bytes,
            "replicas": info.config.num_replicas,
        }
        if info.cluster is not None:
            out["leader"] = info.cluster.leader
            out["peers"] = [
                {"name": r.name, "current": r.current, "offline": bool(r.offline), "lag": r.lag}
                for r in info.cluster.replicas or []
            ]
        held = await Lease(link, "tonne-status", 1.0, clock).holder()
        out["lease"] = (
            None
            if held is None
            else {
                "node": held[0].node,
                "endpoint": held[0].endpoint,
                "revision": held[1],
                "renewed_s_ago": round((now - held[0].ts) / NS_PER_S, 3),
            }
        )
        try:
            names = (await link.nodes_kv.keys())[:NODES_MAX]
        except NoKeysError:
            names = []
        nodes = []
        for name in sorted(names):
            entry = await link.nodes_kv.get(name)
            st = msgspec.msgpack.decode(entry.value, type=NodeStatus)
            nodes.append(
                {
                    "node": st.node,
                    "role": st.role,
                    "stream_seq": st.stream_seq,
                    "lag": max(0, last - st.stream_seq),
                    "seq": st.seq,
                    "term": st.term,
                    "endpoint": st.endpoint,
                    "reported_s_ago": round((now - st.ts) / NS_PER_S, 3),
                    "stale": (now - st.ts) / NS_PER_S > STALE_S,
                }
            )
        out["nodes"] = nodes
        if verify:
            replay = await replay_stream(link, clock)
            out["verify"] = {
                "ok": True,
                "messages": replay.messages,
                "seq": replay.seq,
                "state_hash": replay.state_hash,
                "checkpoints_checked": replay.checkpoints_checked,
                "terms": replay.terms,
            }
        return out
    finally:
        await link.close()


def render(st: dict[str, Any]) -> str:
    lines = [
        f"stream {st['stream']}: last seq {st['last_seq']}, {st['messages']} messages, "
        f"{st['bytes']} bytes, {st['replicas']} replicas"
    ]
    if "leader" in st:
        peers = ", ".join(
            f"{p['name']} {'offline' if p['offline'] else 'current' if p['current'] else 'behind'}"
            f" lag {p['lag'] or 0}"
            for p in st["peers"]
        )
        lines.append(f"  JetStream leader {st['leader']}; followers: {peers or '-'}")
    lease = st["lease"]
    if lease is None:
        lines.append("lease: free (no primary: a standby takes it within its poll)")
    else:
        lines.append(
            f"lease: {lease['node']} at {lease['endpoint'] or '-'}, revision {lease['revision']}, "
            f"renewed {lease['renewed_s_ago']:.1f} s ago"
        )
    lines.append(
        f"{'node':<28} {'role':<12} {'stream seq':>10} {'lag':>6} {'journal seq':>11}  reported"
    )
    for n in st["nodes"]:
        role = n["role"] + ("?" if n["stale"] else "")
        lines.append(
            f"{n['node']:<28} {role:<12} {n['stream_seq']:>10} {n['lag']:>6} {n['seq']:>11}"
            f"  {n['reported_s_ago']:.1f} s ago {n['endpoint']}"
        )
    if any(n["stale"] for n in st["nodes"]):
        lines.append(f"?: no report for over {STALE_S:.0f} s (stopped, killed or cut off)")
    if "verify" in st:
        v = st["verify"]
        lines.append(
            f"verified: {v['messages']} messages replayed from genesis to journal seq {v['seq']}, "
            f"state hash {v['state_hash'][:16]}, {v['checkpoints_checked']} snapshot hashes "
            f"checked, {v['terms']} primaries"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne status",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--journal", required=True, metavar="nats://HOST:PORT[,...]")
    parser.add_argument("--stream", required=True, metavar="NAME")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--verify", action="store_true", help="replay the stream and check it")
    args = parser.parse_args(argv)
    try:
        servers = parse_servers(args.journal)
        stream_names(args.stream)
    except ValueError as exc:
        parser.error(str(exc))
    clock = SystemClock()  # the real time, read here at the command line

    async def run() -> dict[str, Any]:
        timeout = None if args.verify else STATUS_TIMEOUT_S
        return await asyncio.wait_for(collect(servers, args.stream, clock, args.verify), timeout)

    try:
        st = asyncio.run(run())
    except ReplicationError as exc:
        print(f"tonne status: the stream does not verify: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # unreachable NATS, no such stream: say so, not a traceback
        print(f"tonne status: cannot read stream {args.stream}: {exc!r}", file=sys.stderr)
        return 1
    print(json.dumps(st) if args.json else render(st))
    return 0
