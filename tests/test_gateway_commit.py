"""The group-commit pipeline on a fake journal (gateway/server/commit.py): nothing is
delivered before the flush that made it durable, batches go out in the order they were
applied, what arrives during a flush waits for the next one, and a failed flush delivers
nothing more and wakes every waiter."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.server.commit import Batch, CommitPipeline


class FakeJournal:
    """A journal whose flushes end when the test says (`finish`), or fail."""

    def __init__(self) -> None:
        self.flushes = 0
        self.gates: list[asyncio.Future[None]] = []

    async def flush(self) -> None:
        self.flushes += 1
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate

    def finish(self, error: BaseException | None = None) -> None:
        gate = self.gates.pop(0)
        if error is None:
            gate.set_result(None)
        else:
            gate.set_exception(error)


class Harness:
    def __init__(self) -> None:
        self.journal = FakeJournal()
        self.delivered: list[list[int]] = []
        self.failures: list[BaseException] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pipeline = CommitPipeline(self.journal, self.deliver, self.failures.append, self.spawn)

    def deliver(self, batches: list[Batch]) -> None:
        self.delivered.append([b.no for b in batches])

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_batches_go_out_only_after_their_flush_and_in_order():
    async def body() -> None:
        h = Harness()
        first, second = h.pipeline.new_batch("a"), h.pipeline.new_batch("b")
        h.pipeline.commit_soon()
        await turns()
        assert h.journal.flushes == 1 and h.delivered == []  # not durable yet
        third = h.pipeline.new_batch("a")  # applied while the flush is in flight
        h.pipeline.commit_soon()  # the loop is running: no second loop
        h.journal.finish()
        await turns()
        assert h.delivered == [[first.no, second.no]]  # the third waits for the next flush
        assert h.journal.flushes == 2
        h.journal.finish()
        await turns()
        assert h.delivered == [[1, 2], [third.no]]
        assert not h.pipeline.pending and not h.tasks

    asyncio.run(body())


def test_a_waiter_wakes_when_its_batch_is_delivered():
    async def body() -> None:
        h = Harness()
        batch = h.pipeline.new_batch()
        waiter = asyncio.ensure_future(h.pipeline.released(batch))
        await turns()
        assert not waiter.done()
        h.journal.finish()
        await asyncio.wait_for(waiter, 1)
        assert h.delivered == [[batch.no]]
        await h.pipeline.released(batch)  # already released: returns at once

    asyncio.run(body())


def test_the_oldest_pending_batch_of_a_session():
    h = Harness()
    a1, _b1, a2 = h.pipeline.new_batch("a"), h.pipeline.new_batch("b"), h.pipeline.new_batch("a")
    assert h.pipeline.oldest_of("a", a2) is a1
    assert h.pipeline.oldest_of("c", a2) is a2


def test_a_failed_flush_delivers_nothing_more_and_wakes_every_waiter():
    async def body() -> None:
        h = Harness()
        h.pipeline.on_fail = lambda exc: (h.failures.append(exc), h.pipeline.fail())
        batch = h.pipeline.new_batch()
        waiter = asyncio.ensure_future(h.pipeline.released(batch))
        await turns()
        h.journal.finish(OSError("disk full"))
        await asyncio.wait_for(waiter, 1)
        assert [str(e) for e in h.failures] == ["disk full"] and h.delivered == []
        h.pipeline.new_batch()
        h.pipeline.commit_soon()  # failed: no loop starts again
        await turns()
        assert h.journal.flushes == 1

    asyncio.run(body())


def test_a_delivery_that_raises_is_a_failure_and_still_wakes_its_waiter():
    async def body() -> None:
        h = Harness()

        def broken(batches: list[Batch]) -> None:
            raise RuntimeError("a bug in delivery")

        h.pipeline.deliver = broken
        batch = h.pipeline.new_batch()
        waiter = asyncio.ensure_future(h.pipeline.released(batch))
        await turns()
        h.journal.finish()
        await asyncio.wait_for(waiter, 1)
        assert [str(e) for e in h.failures] == ["a bug in delivery"]

    asyncio.run(body())
