"""Group commit: batches of applied commands, released in order once the journal has them.

A *batch* is what one read (or one operator command, cancel-on-disconnect or expiry) applied
to the core: its answers, reports and market data, queued as (target, message) items. The
core is ahead of the disk until the journal flushes, so nothing of a batch may go out before
then. The pipeline keeps one `journal.flush()` in flight at a time: while it commits,
sessions keep applying (their commands join the next flush); when it returns, every batch
applied before it began is handed to `deliver`, oldest first. That is group commit across
sessions and reads, and it keeps market data in sequence order.

If a flush fails, the core is ahead of the durable state: the pipeline calls `on_fail` and
releases nothing more, but wakes everyone who waits for a batch. It knows nothing of
sessions or sockets (`deliver` does), so it is tested with a fake journal
(tests/test_gateway_commit.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger("tonne.gateway")


class Flushes(Protocol):
    async def flush(self) -> None: ...


class Batch:
    __slots__ = ("no", "items", "session", "done")

    def __init__(self, no: int, session: Any) -> None:
        self.no = no
        self.session = session  # whose read this is (None: operator, cancel on disconnect)
        self.done: asyncio.Future[None] | None = None  # set when someone awaits the release
        # (target, message), released in order: target is a Session (that session), an int
        # (every session of that account), a str (subscribers of that series), or None
        # (the message is a callable to run at that point: a subscription change, so that
        # a subscriber gets exactly the updates after its snapshot)
        self.items: list[tuple[Any, Any]] = []


class CommitPipeline:
    """Pending batches and the one commit loop that releases them."""

    def __init__(
        self,
        journal: Flushes,
        deliver: Callable[[list[Batch]], None],
        on_fail: Callable[[BaseException], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        observe: Callable[[int], None] | None = None,
        monotonic_ns: Callable[[], int] | None = None,
    ) -> None:
        self.journal = journal
        # each commit's flush time in ns, on the caller's clock (metrics; None: not timed)
        self.observe = observe if monotonic_ns is not None else None
        self._monotonic_ns = monotonic_ns or (lambda: 0)
        self.deliver = deliver  # called with the batches a flush made durable, oldest first
        self.on_fail = on_fail
        self.spawn = spawn
        self.pending: deque[Batch] = deque()
        self.failed = False
        self._batch_no = 0
        self._committing = False  # the commit loop is running

    def new_batch(self, session: Any = None) -> Batch:
        self._batch_no += 1
        batch = Batch(self._batch_no, session)
        self.pending.append(batch)
        return batch

    def oldest_of(self, session: Any, default: Batch) -> Batch:
        """The oldest pending batch of `session` (`default` if it has none)."""
        return next((b for b in self.pending if b.session is session), default)

    def commit_soon(self) -> None:
        """Make sure the commit loop runs: everything applied so far gets committed and
        released, without the caller waiting for it."""
        if not self._committing and not self.failed:
            self._committing = True
            self.spawn(self._commit_loop())

    async def released(self, batch: Batch) -> None:
        """Return once `batch` is committed and released (or the pipeline has failed)."""
        if self.failed or not self.pending or self.pending[0].no > batch.no:
            return
        if batch.done is None:
            batch.done = asyncio.get_running_loop().create_future()
        self.commit_soon()
        await batch.done

    def fail(self) -> None:
        """Release nothing more; wake whoever waits for a batch."""
        self.failed = True
        for batch in self.pending:
            if batch.done is not None and not batch.done.done():
                batch.done.set_result(None)

    async def _commit_loop(self) -> None:
        try:
            while self.pending and not self.failed:
                upto = self.pending[-1].no
                started = self._monotonic_ns()
                try:
                    await self.journal.flush()
                except Exception as exc:  # the core is ahead of the durable state: stop
                    self.on_fail(exc)
                    return
                if self.observe is not None:
                    self.observe(self._monotonic_ns() - started)
                if not self.failed:
                    try:
                        self._release(upto)
                    except Exception as exc:  # a bug: what was released is out of order now
                        log.exception("releasing committed batches failed")
                        self.on_fail(exc)
                        return
        finally:
            self._committing = False

    def _release(self, upto: int) -> None:
        pending = self.pending
        durable = []
        while pending and pending[0].no <= upto:
            durable.append(pending.popleft())
        try:
            self.deliver(durable)
        finally:  # whoever waits for one wakes, even if delivering failed (a bug)
            for batch in durable:
                if batch.done is not None and not batch.done.done():
                    batch.done.set_result(None)
