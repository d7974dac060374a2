"""Failover with real processes (issue 18): a 3-node NATS cluster on loopback, a primary and a
standby (`tonne serve --journal nats://... --standby`), clients trading, SIGKILLs.

- Kill cycles: participants (tests/test_durability_crash_serve.py) trade through the primary
  and keep every message their clients receive; after a seeded number of answers the primary
  gets SIGKILL, the standby takes over, the old primary comes back as the standby of the new
  one (from its own folder). After the last cycle the stream is replayed from genesis
  (`replay_stream`): every acknowledged order, fill, cancel, certificate and deposit is in it
  as it was reported; the state hash of each old primary's last snapshot and of its whole
  folder (recovered while it was dead) and the hash each new primary reported when it took
  over agree with the replay at the same sequence; every snapshot's hash agreed with the
  standby's; the final primary's folder passes `tonne log verify` and recovers to the
  replay's state.
- NATS nodes: with one of three killed, answers go on (and a standby keeps following);
  with a second one unreachable too, nothing more is acknowledged; every answer the
  primary gave is on the stream once that second server is back.
- Split brain: the primary's NATS connection is cut (a proxy that the test closes) while
  the standby takes over; the old primary acknowledges nothing sent after the cut and exits
  (its lease lost), and the new primary does not hold what it was sent.

`TONNE_FAILOVER_CYCLES` sets the number of kill cycles (default 3; 20 for the long run),
`TONNE_FAILOVER_SEED` the seed. Failover times are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.accounts import add_key
from gateway.client.client import Client, ClientError, RequestRejected
from gateway.durability.journal import SettlementCodec
from gateway.durability.recovery import recover
from gateway.durability.store import SQLiteStore
from gateway.replication.node import EXIT_DEPOSED, EXIT_LEASE_LOST
from gateway.replication.stream import open_link, parse_servers
from gateway.replication.verify import StreamReplay, replay_stream
from gateway.server.auth import ACCOUNTS_FILE, MASTER_KEY_FILE
from gateway.server.clock import SystemClock
from gateway.wire import protocol as p
from tests.crash_harness import Tally, check_recovery
from tests.nats_harness import (
    NatsCluster,
    NodeProcess,
    free_port,
    kill_leftover_nodes,
    nats_cluster,
)
from tests.test_durability_crash_serve import (
    PERMISSIONS,
    Answers,
    Participant,
    Replayed,
    check_acknowledged,
)

CYCLES = int(os.environ.get("TONNE_FAILOVER_CYCLES", "3"))
SEED = int(os.environ.get("TONNE_FAILOVER_SEED", "18"))
PARTICIPANTS = 3
KILL_AFTER_ANSWERS = (40, 160)
LEASE_TTL_S = 1.5
FAILOVER_S_MAX = LEASE_TTL_S + 6.0  # the documented bound, with room for a loaded CI box
WAIT_S = 20.0
NO_QUORUM_S = 3.0  # how long the test watches a primary without a quorum acknowledge nothing
RECOVER_S = 40.0  # a cluster whose paused server resumed has a leader and a quorum again
NODE_ARGS = ["--replicas", "3", "--lease-ttl-s", str(LEASE_TTL_S), "--snapshot-every", "60"]


def share_keys(src: Path, dst: Path) -> None:
    """A standby needs the primary's keys to serve the same clients once it takes over."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in (ACCOUNTS_FILE, MASTER_KEY_FILE):
        shutil.copy2(src / name, dst / name)


def participants(folder: Path, rng: random.Random) -> list[Participant]:
    parts = []
    for i in range(PARTICIPANTS):
        key = add_key(folder, permissions=PERMISSIONS)
        part = Participant(i, key, random.Random(rng.random()))
        part.ws = False
        parts.append(part)
    return parts


async def stream_replay(url: str, stream: str, **kw: Any) -> StreamReplay:
    link = await open_link(parse_servers(url), stream, node="audit", create=False)
    try:
        return await replay_stream(link, SystemClock(), **kw)
    finally:
        await link.close()


def folder_state(folder: Path) -> list[tuple[int, str]]:
    """A dead node's folder: its newest snapshot's (seq, state hash), and where recovery of
    the whole folder ends."""
    with SQLiteStore(folder) as store:
        snaps = store.snapshots()
        got = recover(store)
    newest = [(snaps[0].seq, snaps[0].state_hash)] if snaps else []
    return [*newest, (got.seq, got.state_hash)]


class Clients:
    """Every client a participant used, kept for the final check of what they were told."""

    def __init__(self, parts: list[Participant]) -> None:
        self.parts = parts
        self.used: list[tuple[Participant, Client]] = []

    async def trade_until(self, info: dict[str, Any], answers: Answers, fund: bool) -> Any:
        for part in self.parts:
            self.used.append((part, await part.connect(info)))
            if fund:
                await part.fund()
        return asyncio.gather(*(part.work(answers) for part in self.parts))

    async def close(self) -> None:
        for _, client in self.used:
            await client.close()

    def check(self, replayed: Replayed, tally: Tally) -> None:
        for part, client in self.used:
            part.client = client
            check_acknowledged(part, replayed, tally)


@pytest.fixture(autouse=True)
def no_node_outlives_its_test() -> Any:
    yield
    kill_leftover_nodes()


def test_the_standby_takes_over_after_each_kill_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    asyncio.run(_kill_cycles(tmp_path))


async def _kill_cycles(tmp: Path) -> None:
    rng = random.Random(SEED)
    with nats_cluster(tmp, 3) as nats:
        await nats.wait_jetstream()
        folders = [tmp / "node0", tmp / "node1"]
        ports = {folder: free_port() for folder in folders}  # fixed: the clients' endpoints
        endpoints = [("127.0.0.1", port) for port in ports.values()]
        clients = Clients(participants(folders[0], rng))
        share_keys(folders[0], folders[1])

        def node(folder: Path, *more: str) -> NodeProcess:
            args = [*NODE_ARGS, "--tcp-port", str(ports[folder]), *more]
            return NodeProcess(folder, nats.url, "FO", args)

        primary = node(folders[0])
        await primary.start()
        info = await primary.primary()
        standby = node(folders[1], "--standby")
        assert (await standby.start())["role"] == "standby"
        takeovers: list[tuple[int, str]] = []  # what each new primary reported
        dead: list[tuple[int, str]] = []  # each old primary's folder, recovered while dead
        failover_s: list[float] = []
        for cycle in range(CYCLES):
            answers = Answers(rng.randint(*KILL_AFTER_ANSWERS))
            work = await clients.trade_until(info, answers, fund=cycle == 0)
            await asyncio.wait_for(answers.reached.wait(), WAIT_S)
            killed_at = time.monotonic()
            await primary.kill()
            await asyncio.wait_for(work, WAIT_S)  # every client saw its connection go
            info = await standby.primary(FAILOVER_S_MAX)
            failover_s.append(time.monotonic() - killed_at)
            await reconnect_finds_the_primary(endpoints, clients.parts[0], info)
            takeovers.append((info["seq"], info["state_hash"]))
            dead += folder_state(primary.data_dir)
            old = node(primary.data_dir, "--standby")
            assert (await old.start())["role"] == "standby"
            primary, standby = standby, old
        assert await standby.stop() == 0, standby.stderr()  # first: it would take over
        assert await primary.stop() == 0, primary.stderr()
        await clients.close()

        replayed = Replayed()
        wanted = {seq for seq, _ in takeovers + dead}
        replay = await stream_replay(nats.url, "FO", hashes_at=wanted, on_command=replayed)
        for seq, state_hash in takeovers + dead:
            if seq:
                assert replay.hashes_at[seq] == state_hash, f"state at seq {seq} differs"
        assert replay.terms == CYCLES + 1
        assert replay.checkpoints_checked >= 1
        tally = Tally()
        clients.check(replayed, tally)
        assert tally.orders and tally.fills, tally
        scratch = check_recovery(primary.data_dir, SettlementCodec(), None)
        assert (scratch.seq, scratch.state_hash) == (replay.seq, replay.state_hash)
        print(
            f"\n{CYCLES} failovers: p50 {statistics.median(failover_s):.2f} s, max "
            f"{max(failover_s):.2f} s (lease TTL {LEASE_TTL_S} s); {tally.orders} orders, "
            f"{tally.fills} fills, {tally.retirements} retirements acknowledged and present; "
            f"stream {replay.messages} messages, journal seq {replay.seq}"
        )
        assert max(failover_s) < FAILOVER_S_MAX


async def reconnect_finds_the_primary(
    endpoints: list[tuple[str, int]], part: Participant, info: dict[str, Any]
) -> None:
    """The client library, given every node's endpoint, reaches the new primary, and an
    order acknowledged before the failover, sent again with its client_order_id, is found
    there (PROTOCOL.md, "Failover")."""
    assert part.client is not None
    acked = [m for m in part.client.history if type(m) is p.OrderAck]
    client = await Client.connect_any(endpoints, deadline_s=WAIT_S)
    try:
        await client.logon(part.key_id, part.secret)
        assert isinstance(await client.heartbeat(), p.ServerHeartbeat)
        assert client.endpoint == ("127.0.0.1", info["tcp_port"])
        if acked:
            m = acked[-1]
            with pytest.raises(RequestRejected) as refused:
                await client.place(
                    m.series, m.side, qty=m.qty, price=m.price, client_order_id=m.client_order_id
                )
            assert refused.value.reason == "DUPLICATE_CLIENT_ORDER_ID"
    finally:
        await client.close()


def test_trading_survives_one_nats_node_and_acknowledges_nothing_without_a_quorum(
    tmp_path: Path,
) -> None:
    asyncio.run(_nats_nodes(tmp_path))


async def _nats_nodes(tmp: Path) -> None:
    rng = random.Random(SEED + 1)
    with nats_cluster(tmp, 3) as nats:
        await nats.wait_jetstream()
        clients = Clients(participants(tmp / "p", rng))
        # the default lease TTL and publish deadline: both must outlast the elections after a
        # NATS server's loss (up to 4.5 s measured here)
        args = ["--replicas", "3"]
        primary = NodeProcess(tmp / "p", nats.url, "NN", args)
        await primary.start()
        info = await primary.primary()
        standby = NodeProcess(tmp / "s", nats.url, "NN", [*args, "--standby"])
        await standby.start()
        answers = Answers(30)
        work = await clients.trade_until(info, answers, fund=True)
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
        # one node down: the stream keeps a quorum (2 of 3), trading goes on
        nats.servers[rng.randrange(3)].kill()
        answers.target, answers.reached = answers.n + 60, asyncio.Event()
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
        # and the standby's follower came through it: with trading paused, it reaches the
        # stream's end (on two shared cores it may trail a busy primary)
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        await standby_caught_up(nats, "NN")
        await standby.kill()  # not part of what follows
        work = asyncio.gather(*(part.work(answers) for part in clients.parts))
        answers.target, answers.reached = answers.n + 10, asyncio.Event()
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
        # two down: no quorum, no PubAck, no acknowledgement. The second is paused, not
        # killed: nats-server 2.9 does not fsync, so a SIGKILL can cost a server the last
        # milliseconds of its log, and with another server down already a restart could
        # then elect it over the one server that has everything (two of three crashing is
        # beyond what JetStream without sync_interval: always keeps; README)
        paused = next(s for s in nats.servers if s.proc is not None)
        paused.pause()
        await asyncio.sleep(0.5)  # replies already on their way may still arrive
        before = answers.n
        await asyncio.sleep(NO_QUORUM_S)  # nothing may happen meanwhile: there is no event
        assert answers.n == before, "acknowledged without a quorum"
        paused.resume()  # a quorum again; the primary goes on or, its lease lapsed, stopped
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        await clients.close()
        if primary.proc is not None and primary.proc.returncode is None:
            await primary.stop()
        replayed = Replayed()
        replay = await _replay_when_ready(nats, "NN", replayed)
        tally = Tally()
        last_words = primary.stderr().strip().splitlines()[-1]
        try:
            clients.check(replayed, tally)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; replay {replay}; the primary: {last_words}") from exc
        assert tally.orders, tally
        assert replay.seq >= 1


async def standby_caught_up(nats: NatsCluster, stream: str) -> None:
    """Until `tonne status` shows the standby at the stream's last message (bounded)."""
    from gateway.cli.status import collect

    servers = [s.url for s in nats.servers if s.proc is not None]
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                st = await collect(servers, stream, SystemClock(), verify=False)
            except Exception:  # an election still going on: ask again
                await asyncio.sleep(0.2)
                continue
            standbys = [n for n in st["nodes"] if n["role"] == "standby" and not n["stale"]]
            if standbys and standbys[0]["stream_seq"] == st["last_seq"]:
                return
            await asyncio.sleep(0.2)


async def _replay_when_ready(nats: NatsCluster, stream: str, replayed: Replayed) -> StreamReplay:
    """The stream's replay once it has a leader again and every replica is current
    (bounded)."""
    from gateway.cli.status import collect

    deadline = time.monotonic() + RECOVER_S
    while True:
        try:
            st = await collect([s.url for s in nats.servers], stream, SystemClock(), False)
            # a leader and a current follower: a quorum that has every committed message (a
            # replica that is not current, just restarted, may answer with a shorter view)
            if not st.get("leader") or not any(p["current"] for p in st["peers"]):
                raise RuntimeError("the stream is still recovering")
            probe = Replayed()
            replay = await stream_replay(nats.url, stream, on_command=probe)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
            continue
        replayed.__dict__.update(probe.__dict__)
        return replay


class Proxy:
    """A TCP proxy to one NATS server, which the test can cut: every connection closed and
    no new one accepted (the primary's network to NATS, and only it, is gone)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        self.writers.clear()


def test_a_primary_cut_off_from_nats_acknowledges_nothing_more_and_stops(tmp_path: Path) -> None:
    asyncio.run(_split_brain(tmp_path))


async def _split_brain(tmp: Path) -> None:
    from engine.commands import Side

    rng = random.Random(SEED + 2)
    with nats_cluster(tmp, 1) as nats:
        proxy = Proxy(nats.servers[0].port)
        await proxy.start()
        folders = [tmp / "a", tmp / "b"]
        clients = Clients(participants(folders[0], rng))
        share_keys(folders[0], folders[1])
        args = ["--lease-ttl-s", str(LEASE_TTL_S)]
        old = NodeProcess(folders[0], f"nats://127.0.0.1:{proxy.port}", "SB", args)
        await old.start()
        info = await old.primary()
        new = NodeProcess(folders[1], nats.url, "SB", [*args, "--standby"])
        await new.start()
        answers = Answers(40)
        work = await clients.trade_until(info, answers, fund=True)
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
        work.cancel()  # the participants stop; one more order goes in below
        await asyncio.gather(work, return_exceptions=True)
        late = clients.used[0][1]
        s = clients.parts[0].series[0]
        await proxy.cut()
        order = asyncio.ensure_future(
            late.place(
                s.id,
                Side.BUY,
                qty=s.lot,
                price=s.band_low,
                client_order_id="late-1",
                timeout_s=WAIT_S,
            )
        )
        new_info = await new.primary(FAILOVER_S_MAX)
        code = await old.wait(WAIT_S)
        assert code in (EXIT_LEASE_LOST, EXIT_DEPOSED), (code, old.stderr()[-2000:])
        assert "exiting at once, acknowledging nothing more" in old.stderr()
        try:
            await order
            raise AssertionError("the cut-off primary acknowledged an order")
        except ClientError:
            pass
        assert await new.stop() == 0, new.stderr()
        await clients.close()
        replayed = Replayed()
        replay = await stream_replay(nats.url, "SB", on_command=replayed)
        assert all(ev.client_order_id != "late-1" for ev in replayed.accepted.values())
        tally = Tally()
        clients.check(replayed, tally)
        assert tally.orders, tally
        assert replay.terms == 2 and new_info["term"] > info["term"]


def test_a_primary_refused_by_the_fence_exits_without_acknowledging(tmp_path: Path) -> None:
    asyncio.run(_fenced(tmp_path))


async def _fenced(tmp: Path) -> None:
    """Another writer publishes a Promotion at the stream's end (as a new primary would) while
    the primary still holds its lease: the primary's next publish is refused, the order in it
    is never acknowledged, and the primary exits at once with EXIT_DEPOSED."""
    from engine.commands import Side
    from gateway.replication.stream import Promotion
    from gateway.replication.writer import publish

    rng = random.Random(SEED + 3)
    with nats_cluster(tmp, 1) as nats:
        clients = Clients(participants(tmp / "p", rng))
        primary = NodeProcess(tmp / "p", nats.url, "FN", ["--lease-ttl-s", "30"])
        await primary.start()
        info = await primary.primary()
        answers = Answers(30)
        work = await clients.trade_until(info, answers, fund=True)
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
        work.cancel()  # quiet: nothing is published while the impostor reads the end
        await asyncio.gather(work, return_exceptions=True)
        link = await open_link(parse_servers(nats.url), "FN", node="impostor", create=False)
        try:
            end = await link.last_seq()
            impostor = Promotion(term=10**6, node="impostor", seq=0)
            await publish(link, impostor, expected_last=end, msg_id="x", clock=SystemClock())
        finally:
            await link.close()
        client = clients.used[0][1]
        s = clients.parts[0].series[0]
        with pytest.raises(ClientError):
            await client.place(s.id, Side.BUY, qty=s.lot, price=s.band_low, timeout_s=WAIT_S)
        assert await primary.wait(WAIT_S) == EXIT_DEPOSED
        assert "deposed: stream FN refused message" in primary.stderr()
        await clients.close()
        replay = await stream_replay(nats.url, "FN")
        assert replay.messages == end + 1  # nothing after the impostor's promotion


class TakeoverStream:
    """Stands in for the stream during a takeover: an old primary's publishes refuse the
    first `refusals` promotions, and the stream's end cannot be read `timeouts` times."""

    def __init__(self, refusals: int, timeouts: int) -> None:
        from types import SimpleNamespace

        self.refusals, self.timeouts = refusals, timeouts
        self.subject, self.stream = "X.journal", "X"
        self.js = SimpleNamespace(publish=self.publish, subscribe=self.subscribe)

    async def subscribe(self, *args: Any, **kw: Any) -> Any:
        from types import SimpleNamespace

        async def unsubscribe() -> None:
            return None

        return SimpleNamespace(unsubscribe=unsubscribe)

    async def last_seq(self) -> int:
        import nats.errors

        if self.timeouts:
            self.timeouts -= 1
            raise nats.errors.TimeoutError
        return 5  # the standby's position: nothing to catch up

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> Any:
        from types import SimpleNamespace

        from nats.js.errors import APIError

        if self.refusals:
            self.refusals -= 1
            raise APIError(code=400, err_code=10071, description="wrong last sequence")
        return SimpleNamespace(seq=6, duplicate=False)


def taking_over(stream: TakeoverStream, publish_deadline_s: float) -> Any:
    from types import SimpleNamespace

    from gateway.replication.node import Node, ReplicationSettings

    settings = ReplicationSettings(["nats://x:1"], "X", publish_deadline_s=publish_deadline_s)
    node = Node(Path("unused"), settings, SystemClock(), snapshot_every=0)
    node.link = stream  # type: ignore[assignment]
    node.follower = SimpleNamespace(stream_seq=5, seq=3)  # type: ignore[assignment]
    node.lease = SimpleNamespace(term=7, ttl_s=0.4, deadline_ns=lambda: 2**62)  # type: ignore[assignment]
    return node


def test_a_takeover_outlasts_many_refusals_and_nats_timeouts() -> None:
    """An old primary still publishing refuses promotion after promotion, and NATS times
    out meanwhile: the new primary reads on and retries until its time limit, not a count."""

    async def scenario() -> None:
        node = taking_over(TakeoverStream(refusals=50, timeouts=3), publish_deadline_s=5.0)
        assert await asyncio.wait_for(node.catch_up_and_promote(), 10.0) == 6

    asyncio.run(scenario())


def test_a_takeover_still_refused_at_its_time_limit_gives_up() -> None:
    from gateway.replication.stream import ReplicationError

    async def scenario() -> None:
        node = taking_over(TakeoverStream(refusals=10**9, timeouts=0), publish_deadline_s=0.5)
        limit_s = node.promotion_limit_s()
        assert limit_s >= 0.4 / 4 + 0.5  # past the old primary's last publish
        started = time.monotonic()
        with pytest.raises(ReplicationError, match="no fenced promotion"):
            await asyncio.wait_for(node.catch_up_and_promote(), limit_s + 5.0)
        assert time.monotonic() - started >= limit_s

    asyncio.run(scenario())
