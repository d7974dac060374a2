"""The journal on a NATS JetStream stream (issue 18): real nats-server, real `tonne serve`.

- A primary acknowledges only what the stream has: a replay of the stream from genesis holds
  every acknowledged order, fill and retirement, and reaches the state the primary's own
  folder recovers to; a fresh node (empty folder) and the old node (its own folder) both
  start from the stream at that same state hash.
- The fence: a writer whose expected last sequence is stale is refused, commits nothing and
  is told it was deposed; a retried publish with the same id is stored once.
- A follower refuses a stream that disagrees with its replay (a gap, another log head,
  another state hash at a checkpoint).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.accounts import add_key
from gateway.cli.status import collect, render
from gateway.durability.journal import SettlementCodec
from gateway.durability.store import Batch, JournalRow
from gateway.replication.follower import Follower
from gateway.replication.stream import (
    Checkpoint,
    Commands,
    Genesis,
    NotCreated,
    Promotion,
    ReplicationError,
    decode_message,
    open_link,
)
from gateway.replication.verify import replay_stream
from gateway.replication.writer import StreamWriter, publish
from gateway.server.clock import SystemClock
from tests.crash_harness import Tally, check_recovery
from tests.nats_harness import NodeProcess, kill_leftover_nodes, nats_cluster
from tests.test_durability_crash_serve import (
    PERMISSIONS,
    Answers,
    Participant,
    Replayed,
    check_acknowledged,
)

WAIT_S = 20.0


async def trade(part: Participant, info: dict[str, Any], answers_n: int, *, fund: bool) -> None:
    """Connect, fund (first time), trade until `answers_n` answers, disconnect."""
    await part.connect(info)
    if fund:
        await part.fund()
    answers = Answers(answers_n)
    work = asyncio.create_task(part.work(answers))
    try:
        await asyncio.wait_for(answers.reached.wait(), WAIT_S)
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        await part.close()


@pytest.fixture(autouse=True)
def no_node_outlives_its_test() -> Any:
    yield
    kill_leftover_nodes()


def test_the_stream_holds_every_acknowledgement_and_any_node_replays_it(tmp_path: Path) -> None:
    asyncio.run(_stream_holds_everything(tmp_path))


async def _stream_holds_everything(tmp: Path) -> None:
    with nats_cluster(tmp, size=1) as nats:
        a = NodeProcess(tmp / "a", nats.url, "J1", ["--snapshot-every", "40"])
        key = add_key(tmp / "a", permissions=PERMISSIONS)
        assert (await a.start())["role"] == "primary-elect"
        info = await a.primary()
        part = Participant(0, key, random.Random(18))
        part.ws = False
        await trade(part, info, 150, fund=True)
        st = await primary_reported(nats.url, "J1")
        assert st["lease"]["node"] == info["node"]
        assert st["last_seq"] >= st["nodes"][0]["stream_seq"] > 1
        assert "lease: " + info["node"] in render(st)
        assert await a.stop() == 0, a.stderr()
        st = await collect([nats.url], "J1", SystemClock(), verify=True)
        assert st["lease"] is None and st["verify"]["checkpoints_checked"] >= 2  # released

        link = await open_link([nats.url], "J1", node="test", create=False)
        try:
            replay = await replay_stream(link, SystemClock())
            await snapshot_restores(link, replay.snapshots)
        finally:
            await link.close()
        assert replay.checkpoints_checked >= 2  # the primary's snapshots, hash by hash
        replayed = Replayed()
        scratch = check_recovery(tmp / "a", SettlementCodec(), None, replayed)
        assert (scratch.seq, scratch.state_hash) == (replay.seq, replay.state_hash)
        check_acknowledged(part, replayed, Tally())

        fresh = NodeProcess(tmp / "b", nats.url, "J1")
        await fresh.start()
        got = await fresh.primary()
        assert (got["seq"], got["state_hash"]) == (replay.seq, replay.state_hash)
        assert await fresh.stop() == 0, fresh.stderr()

        again = NodeProcess(tmp / "a", nats.url, "J1")
        await again.start()
        got = await again.primary()
        assert (got["seq"], got["state_hash"]) == (replay.seq, replay.state_hash)
        assert await again.stop() == 0, again.stderr()


async def snapshot_restores(link: Any, snapshots: list[tuple[int, str, str]]) -> None:
    """The newest snapshot in the object store restores to the hash its Checkpoint says."""
    from settlement.core import Core

    seq, state_hash, name = [s for s in snapshots if s[2]][-1]
    got = await link.snapshots.get(name)
    assert Core.restore(got.data).state_hash() == state_hash, f"snapshot at seq {seq}"


async def primary_reported(url: str, stream: str) -> dict[str, Any]:
    """`tonne status` once the primary has reported itself as such (within a few reports)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            st = await collect([url], stream, SystemClock(), verify=False)
            if [n["role"] for n in st["nodes"]] == ["primary"]:
                return st
            await asyncio.sleep(0.2)


def test_a_second_primary_is_refused_while_the_first_holds_the_lease(tmp_path: Path) -> None:
    async def scenario() -> None:
        with nats_cluster(tmp_path, size=1) as nats:
            a = NodeProcess(tmp_path / "a", nats.url, "J2", ["--lease-ttl-s", "30"])
            await a.start()
            await a.primary()
            b = NodeProcess(tmp_path / "b", nats.url, "J2")
            with pytest.raises(RuntimeError, match="start with --standby"):
                await b.start()
            assert await a.stop() == 0

    asyncio.run(scenario())


class FakeCopy:
    """Stands in for the local copy: what the writer handed it."""

    def __init__(self) -> None:
        self.copied: list[tuple[Batch, int]] = []

    def copy(self, batch: Batch, stream_seq: int) -> None:
        self.copied.append((batch, stream_seq))


def test_a_deposed_writer_is_refused_and_commits_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        with nats_cluster(tmp_path, size=1) as nats:
            link = await open_link([nats.url], "J3", node="test")
            clock = SystemClock()
            commits: list[tuple[int, int]] = []
            failures: list[str] = []
            deposed: list[str] = []
            writer = StreamWriter(
                lambda seq, n: commits.append((seq, n)),
                failures.append,
                link=link,
                local=FakeCopy(),  # type: ignore[arg-type]
                term=1,
                stream_seq=0,
                log_head="",
                clock=clock,
                on_deposed=deposed.append,
                batch_max=16,
            )
            writer.start()
            writer.send(Batch([JournalRow(1, 0, b"one", 0)], []))
            async with asyncio.timeout(WAIT_S):
                while not commits:
                    await asyncio.sleep(0.01)
            assert commits == [(1, 1)]
            # a new primary's promotion, fenced at the stream's end
            seq = await publish(
                link,
                Promotion(term=2, node="new", seq=1),
                expected_last=1,
                msg_id="2-promotion",
                clock=clock,
            )
            assert seq == 2
            again = await publish(
                link,
                Promotion(term=2, node="new", seq=1),
                expected_last=1,
                msg_id="2-promotion",
                clock=clock,
            )
            assert again == 2  # retried with its id: stored once
            writer.send(Batch([JournalRow(2, 0, b"two", 0)], []))
            await asyncio.wait_for(writer.close(), WAIT_S)
            assert commits == [(1, 1)]  # nothing after the refusal
            assert deposed and "another primary" in deposed[0]
            assert failures == deposed
            assert await link.last_seq() == 2
            await link.close()

    asyncio.run(scenario())


def _follower() -> tuple[Follower, Any]:
    from settlement.commands import OpenAccount, encode_command
    from settlement.core import Core

    core = Core()
    core.drain_records()
    follower = Follower(
        core, None, seq=0, log_seq=0, log_head="", stream_seq=1, clock=SystemClock()
    )
    probe = Core()
    probe.drain_records()
    rows = []
    for i in (1, 2):
        cmd = OpenAccount(account=i, ts=i)
        probe.apply(cmd)
        log_seq = probe.drain_records()
        rows.append(JournalRow(i, i, encode_command(cmd), log_seq[-1].seq if log_seq else 0))
    return follower, (rows, probe)


def test_a_follower_refuses_a_gap_in_the_commands() -> None:
    follower, (rows, _) = _follower()
    with pytest.raises(ReplicationError, match="command seq 2 after 0"):
        follower.apply(2, Commands(term=1, rows=[rows[1]], log_head=""))


def test_a_follower_refuses_another_state_hash_at_a_checkpoint() -> None:
    follower, (rows, probe) = _follower()
    follower.apply(2, Commands(term=1, rows=rows, log_head="", checkpoint=True))
    assert follower.seq == 2
    wrong = Checkpoint(
        seq=2, log_seq=follower.log_seq, log_head="", state_hash="0" * 64, snapshot=""
    )
    with pytest.raises(ReplicationError, match="state hash at command seq 2"):
        follower.apply(3, wrong)
    follower.apply(
        3, Checkpoint(seq=2, log_seq=0, log_head="", state_hash=probe.state_hash(), snapshot="")
    )
    assert follower.checkpoints_checked == 1


def test_a_follower_refuses_a_gap_in_the_stream() -> None:
    follower, (rows, _) = _follower()
    with pytest.raises(ReplicationError, match="stream message 3 after 1"):
        follower.apply(3, Commands(term=1, rows=rows, log_head=""))
    assert follower.seq == 0  # nothing applied


def test_a_follower_refuses_another_settlement_log_head() -> None:
    from settlement.commands import Deposit, encode_command

    follower, (rows, probe) = _follower()
    follower.apply(2, Commands(term=1, rows=rows, log_head=""))
    cmd = Deposit(account=1, currency="USD", amount=100, ts=3)
    probe.apply(cmd)
    recs = probe.drain_records()
    row = JournalRow(3, 3, encode_command(cmd), recs[-1].seq)
    with pytest.raises(ReplicationError, match="settlement log head"):
        follower.apply(3, Commands(term=1, rows=[row], log_head="f" * 64))


def test_the_client_connects_to_the_first_endpoint_that_accepts() -> None:
    from gateway.client.client import Client, ConnectionLost
    from tests.nats_harness import free_port

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        dead = ("127.0.0.1", free_port())  # nothing listens: refused, as a standby refuses
        client = await Client.connect_any([dead, ("127.0.0.1", port)], deadline_s=5)
        assert client.endpoint == ("127.0.0.1", port)
        await client.close()
        with pytest.raises(ConnectionLost, match="no endpoint accepted"):
            await Client.connect_any([dead], deadline_s=0.3, retry_s=0.05)
        with pytest.raises(ValueError):
            await Client.connect_any([])
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


class SlowStore:
    """A store whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        import threading

        self.gate = threading.Event()
        self.batches = 0

    def write(self, batch: Batch) -> None:
        self.gate.wait(WAIT_S)
        self.batches += 1

    def prune_snapshots(self, keep: int) -> int:
        return 0

    def put_reference(self, kind: str, items: Any) -> None:
        return None


def test_a_follower_waits_for_its_disk_and_a_primary_stops_past_the_backlog_limit() -> None:
    from gateway.replication import local as lc

    async def scenario() -> None:
        failures: list[str] = []
        store = SlowStore()
        copy = lc.LocalCopy(store, failures.append)  # type: ignore[arg-type]
        copy.start()
        for i in range(lc.BACKLOG_HIGH):
            copy.copy(Batch([JournalRow(i + 1, 0, b"c", 0)], []), i + 1)
        assert copy.backlog == lc.BACKLOG_HIGH
        waiting = asyncio.ensure_future(copy.drained())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the disk holds it back
        store.gate.set()
        await asyncio.wait_for(waiting, WAIT_S)
        assert copy.backlog < lc.BACKLOG_HIGH // 2 and not failures
        store.gate.clear()
        await asyncio.sleep(0.05)  # the writer is now parked on the gate again
        for i in range(lc.BACKLOG_MAX + 1):
            copy.copy(Batch([JournalRow(i + 1, 0, b"c", 0)], []), i + 1)
        assert failures and "behind (limit 4096)" in failures[0]
        store.gate.set()
        await asyncio.wait_for(copy.close(), WAIT_S)

    asyncio.run(scenario())


def test_a_standby_started_first_waits_for_the_genesis_and_follows(tmp_path: Path) -> None:
    async def scenario() -> None:
        with nats_cluster(tmp_path, size=1) as nats:
            standby = NodeProcess(tmp_path / "s", nats.url, "J4", ["--standby"])
            await standby.launch()  # no stream: it waits for its primary to make it
            await stderr_says(standby, "waiting for its primary")
            with pytest.raises(NotCreated):  # a standby makes nothing (it would make it R1)
                await open_link([nats.url], "J4", node="test", create=False)
            primary = NodeProcess(tmp_path / "p", nats.url, "J4", ["--lease-ttl-s", "3"])
            await primary.start()
            info = await primary.primary()
            link = await open_link([nats.url], "J4", node="test", create=False)
            assert (link.lease_ttl_s, link.replicas) == (3.0, 1)  # what a standby's lease is
            await link.close()
            assert (await standby.line())["role"] == "standby"
            assert await primary.stop() == 0  # the lease is released: the standby takes over
            got = await standby.primary()
            assert got["seq"] == info["seq"] and got["state_hash"] == info["state_hash"]
            assert got["term"] > info["term"]
            assert await standby.stop() == 0

    asyncio.run(scenario())


async def stderr_says(node: NodeProcess, text: str) -> None:
    """Wait (bounded) until the node's stderr holds `text`: a log line has nothing to await."""
    for _ in range(round(WAIT_S / 0.05)):
        if text in node.stderr():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the node never said {text!r}:\n{node.stderr()[-2000:]}")


def test_a_primary_refuses_a_stream_made_with_other_replicas_or_lease_ttl(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with nats_cluster(tmp_path, size=1) as nats:
            first = NodeProcess(tmp_path / "p", nats.url, "J6", ["--lease-ttl-s", "3"])
            await first.start()
            await first.primary()
            assert await first.stop() == 0
            for args, why in [
                (["--replicas", "3"], "has 1 replica"),
                (["--lease-ttl-s", "5"], "TTL of 3 s, not the 5 s"),
                (["--standby", "--lease-ttl-s", "5"], "TTL of 3 s, not the 5 s"),
            ]:
                other = NodeProcess(tmp_path / "p", nats.url, "J6", args)
                with pytest.raises(RuntimeError, match=why):
                    await other.start()
                assert other.proc is not None and other.proc.returncode == 1
            again = NodeProcess(tmp_path / "p", nats.url, "J6", ["--replicas", "1"])
            await again.start()
            assert (await again.primary())["role"] == "primary"
            assert await again.stop() == 0

    asyncio.run(scenario())


def test_a_primary_whose_genesis_publish_failed_publishes_it_when_restarted(
    tmp_path: Path,
) -> None:
    """The folder kept the reference data, the stream got nothing (the publish failed): the
    restarted primary's first message must still be the genesis, or no standby can start."""

    async def scenario() -> None:
        from gateway.cli.serve import GENESIS_FEES, genesis_listing
        from gateway.durability.recovery import save_genesis
        from gateway.durability.store import SQLiteStore

        with nats_cluster(tmp_path, size=1) as nats:
            link = await open_link([nats.url], "J7", node="test", lease_ttl_s=3.0)
            (tmp_path / "p").mkdir()
            store = SQLiteStore(tmp_path / "p")
            series, projects = genesis_listing()
            save_genesis(store, series=series, projects=projects, config=dict(GENESIS_FEES))
            store.close()
            primary = NodeProcess(tmp_path / "p", nats.url, "J7")
            await primary.start()
            info = await primary.primary()
            first = await link.js.get_msg("J7", 1)
            assert isinstance(decode_message(first.data, 1), Genesis)
            standby = NodeProcess(tmp_path / "s", nats.url, "J7", ["--standby"])
            assert (await standby.start())["role"] == "standby"
            assert await primary.stop() == 0
            got = await standby.primary()
            assert got["state_hash"] == info["state_hash"]
            assert await standby.stop() == 0
            await link.close()

    asyncio.run(scenario())


def test_a_writer_whose_stream_cannot_keep_up_fails_at_its_queue_limit() -> None:
    from gateway.replication import writer as w

    async def scenario() -> None:
        failures: list[str] = []
        writer = w.StreamWriter(
            lambda seq, n: None,
            failures.append,
            link=None,  # type: ignore[arg-type]  # never reached: not started
            local=FakeCopy(),  # type: ignore[arg-type]
            term=1,
            stream_seq=0,
            log_head="",
            clock=SystemClock(),
            on_deposed=failures.append,
            batch_max=16,
        )
        for i in range(w.QUEUED_BATCHES_MAX + 1):
            writer.send(Batch([JournalRow(i + 1, 0, b"c", 0)], []))
        assert failures == [f"{w.QUEUED_BATCHES_MAX} batches wait for the stream (limit 1024)"]

    asyncio.run(scenario())


def test_a_folder_that_is_not_a_copy_of_the_stream_is_refused(tmp_path: Path) -> None:
    """A folder kept from an earlier stream of the same name (deleted and made again) does
    not start against the new one, however its own chains check out."""

    async def scenario() -> None:
        with nats_cluster(tmp_path, size=1) as nats:
            key = add_key(tmp_path / "old", permissions=PERMISSIONS)
            old = NodeProcess(tmp_path / "old", nats.url, "J5")
            await old.start()
            part = Participant(0, key, random.Random(5))
            part.ws = False
            await trade(part, await old.primary(), 20, fund=True)
            assert await old.stop() == 0
            link = await open_link([nats.url], "J5", node="test", create=False)
            await link.js.delete_stream("J5")
            await link.close()
            new = NodeProcess(tmp_path / "new", nats.url, "J5")  # other accounts, other history
            add_key(tmp_path / "new")
            add_key(tmp_path / "new")
            await new.start()
            await new.primary()
            again = NodeProcess(tmp_path / "old", nats.url, "J5", ["--standby"])
            with pytest.raises(RuntimeError, match="is not a copy of stream J5|the stream ends"):
                await again.start()
            assert await new.stop() == 0

    asyncio.run(scenario())


class FlakyLeaseKV:
    """Stands in for the lease bucket: one key, revisions, and a NATS that fails on cue."""

    def __init__(self, clock: SystemClock) -> None:
        self.clock = clock
        self.value: bytes | None = None
        self.revision = 0
        self.down_until_ns = 0  # every request fails (times out) before this
        self.lose_replies = 0  # the next this many updates are stored, their replies lost
        self.lose_create_reply = False  # the next create is stored, its reply lost

    def _store(self, value: bytes) -> int:
        self.value, self.revision = value, self.revision + 1
        return self.revision

    async def create(self, key: str, value: bytes) -> int:
        from nats.js.errors import KeyWrongLastSequenceError

        if self.value is not None:
            raise KeyWrongLastSequenceError(description="wrong last sequence")
        rev = self._store(value)
        if self.lose_create_reply:
            self.lose_create_reply = False
            raise TimeoutError
        return rev

    async def update(self, key: str, value: bytes, last: int) -> int:
        from nats.js.errors import KeyWrongLastSequenceError

        if self.clock.monotonic_ns() < self.down_until_ns:
            raise TimeoutError
        if last != self.revision:
            raise KeyWrongLastSequenceError(description="wrong last sequence")
        rev = self._store(value)
        if self.lose_replies:
            self.lose_replies -= 1
            raise TimeoutError
        return rev

    async def get(self, key: str) -> Any:
        from types import SimpleNamespace

        if self.clock.monotonic_ns() < self.down_until_ns:
            raise TimeoutError
        return SimpleNamespace(value=self.value, revision=self.revision)


async def held_lease(ttl_s: float) -> tuple[Any, FlakyLeaseKV, list[str]]:
    from types import SimpleNamespace

    from gateway.replication.lease import Lease

    clock = SystemClock()
    kv = FlakyLeaseKV(clock)
    lease = Lease(SimpleNamespace(lease_kv=kv), "n1", ttl_s, clock)  # type: ignore[arg-type]
    assert await lease.try_take()
    lost: list[str] = []
    lease.keep(lost.append)
    return lease, kv, lost


def test_a_renewal_stored_whose_reply_was_lost_keeps_the_lease() -> None:
    async def scenario() -> None:
        lease, kv, lost = await held_lease(0.4)
        kv.lose_replies = 1  # the next renewal is stored, its reply times out
        for _ in range(200):  # bounded: until two more renewals were stored
            if kv.revision >= 4:
                break
            await asyncio.sleep(0.01)
        assert not lost and lease.revision == kv.revision >= 4
        assert lease.term == 1
        await lease.release()

    asyncio.run(scenario())


def test_a_take_stored_whose_reply_was_lost_is_this_nodes_lease() -> None:
    from types import SimpleNamespace

    from gateway.replication.lease import Lease

    async def scenario() -> None:
        clock = SystemClock()
        kv = FlakyLeaseKV(clock)
        kv.lose_create_reply = True
        lease = Lease(SimpleNamespace(lease_kv=kv), "n1", 1.0, clock)  # type: ignore[arg-type]
        assert await lease.try_take()
        assert lease.term == lease.revision == kv.revision == 1
        other = Lease(SimpleNamespace(lease_kv=kv), "n2", 1.0, clock)  # type: ignore[arg-type]
        assert not await other.try_take()  # held, and not by a value n2 sent

    asyncio.run(scenario())


def test_lease_renewals_retry_quickly_through_an_outage_shorter_than_the_ttl() -> None:
    """An outage that ends 0.8 TTL after the last renewal: retried only every TTL/4, the
    renewal would come after the deadline; retried every POLL_S, it is in time."""

    async def scenario() -> None:
        from gateway.server.clock import NS_PER_S

        ttl_s = 2.0
        lease, kv, lost = await held_lease(ttl_s)
        kv.down_until_ns = lease._renewed_sent_ns + round(0.8 * ttl_s * NS_PER_S)
        taken_rev = kv.revision
        for _ in range(round(ttl_s * 2 / 0.02)):
            if lost or kv.revision > taken_rev:
                break
            await asyncio.sleep(0.02)
        assert not lost and lease.revision == kv.revision > taken_rev
        await lease.release()

    asyncio.run(scenario())


def test_a_lease_not_renewed_is_lost_at_its_deadline_not_a_renewal_later() -> None:
    async def scenario() -> None:
        ttl_s = 2.0
        lease, kv, lost = await held_lease(ttl_s)
        sent_ns = lease._renewed_sent_ns
        kv.down_until_ns = sent_ns + round(60 * ttl_s * 1e9)
        for _ in range(round(ttl_s * 2 / 0.01)):
            if lost:
                break
            await asyncio.sleep(0.01)
        late_s = (lease.clock.monotonic_ns() - sent_ns) / 1e9 - ttl_s
        assert lost and "not renewed" in lost[0]
        assert 0 <= late_s < ttl_s / 8  # the old loop noticed up to TTL/4 late
        await lease.release()

    asyncio.run(scenario())


def test_nothing_is_published_past_the_lease_deadline() -> None:
    """Even when the renewal timer is late (a busy event loop), the writer sends nothing
    once a TTL has passed since the last renewal stored was sent."""
    from types import SimpleNamespace

    from gateway.replication.writer import LeaseExpired

    async def scenario() -> None:
        sent: list[bytes] = []

        async def js_publish(subject: str, payload: bytes, **kw: Any) -> Any:
            sent.append(payload)
            return SimpleNamespace(seq=len(sent), duplicate=False)

        link: Any = SimpleNamespace(
            js=SimpleNamespace(publish=js_publish), subject="X.journal", stream="X"
        )
        clock = SystemClock()
        msg = Promotion(term=1, node="n", seq=0)
        later = clock.monotonic_ns() + 10**9
        assert (
            await publish(
                link, msg, expected_last=0, msg_id="a", clock=clock, lease_deadline_ns=lambda: later
            )
            == 1
        )
        with pytest.raises(LeaseExpired):
            await publish(
                link,
                msg,
                expected_last=1,
                msg_id="b",
                clock=clock,
                lease_deadline_ns=lambda: later - 2 * 10**9,  # a second ago
            )
        assert len(sent) == 1

    asyncio.run(scenario())


def test_a_publish_deadline_past_half_the_deduplication_window_is_refused(
    tmp_path: Path,
) -> None:
    from gateway.replication.writer import PUBLISH_DEADLINE_MAX_S

    async def scenario() -> None:
        node = NodeProcess(
            tmp_path / "n",
            "nats://127.0.0.1:1",  # never reached: the arguments are refused first
            "J8",
            ["--publish-deadline-s", str(PUBLISH_DEADLINE_MAX_S)],
        )
        await node.launch()
        assert await node.wait() == 2
        assert "--publish-deadline-s must be under 60" in node.stderr()

    asyncio.run(scenario())
