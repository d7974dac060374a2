"""The leadership lease: one key in a KV bucket whose TTL is the lease.

- take: `create` (succeeds only while nobody holds the key); its revision is the new term.
- renew: every `ttl_s / RENEWALS_PER_TTL`, `update` with the last revision, so that a renewal
  by anyone but the holder of that revision is refused.
- lost: a renewal refused (another revision) or no renewal stored for `ttl_s` since the last
  one that was *sent*: the bucket expires the key no earlier than `ttl_s` after the server
  stored it, so the holder gives up before anyone else can take it. `on_lost` is called once,
  at that deadline (`deadline_ns`), and the writer sends nothing past it even if the
  timer is late. After a failed renewal the next is tried every POLL_S until then.
- a request stored by the server whose reply was lost (a timeout): the next `update` (or
  `create`) is refused, and the key then holds a value this node sent: it is still this
  node's, at the key's revision (`_adopt`), not another node's.

The lease says who should publish; the stream's expected-sequence fence makes sure that a
primary that missed losing it (paused, partitioned, a skewed clock) still cannot: its next
publish is refused and it stops (writer.py). Failover time: the key expires at most `ttl_s`
after the primary's last renewal, a standby notices within POLL_S, catches up, publishes its
`Promotion` and listens: about ttl_s + POLL_S + catch-up + start (README, High availability).

Time: the renewal deadline is measured on `clock.monotonic_ns`; the waits are the loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec

from gateway.replication.stream import LEASE_KEY, LeaseValue, Link
from gateway.server.clock import NS_PER_S, Clock

log = logging.getLogger("tonne.replication")

RENEWALS_PER_TTL = 4  # renewal attempts per TTL
POLL_S = 0.1  # how often a standby looks at the lease
OP_TIMEOUT_S = 0.5  # one KV request
SENT_MAX = 256  # values sent and not known stored, remembered to recognise one stored unanswered


class Lease:
    """This node's view of the lease (see the module docstring)."""

    def __init__(self, link: Link, node: str, ttl_s: float, clock: Clock) -> None:
        if ttl_s <= 0:
            raise ValueError("the lease TTL must be positive")
        self.link = link
        self.node = node
        self.ttl_s = ttl_s
        self.clock = clock
        self.revision = 0  # of the last take or renewal
        self.term = 0  # the revision it was taken with: this primary's term
        self.endpoint = ""
        self._renewed_sent_ns = 0
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[bytes, int] = {}  # value -> monotonic ns it was sent (see _adopt)
        self.lost = ""

    def _value(self) -> bytes:
        return msgspec.msgpack.encode(LeaseValue(self.node, self.endpoint, self.clock.now_ns()))

    async def holder(self) -> tuple[LeaseValue, int] | None:
        """Who holds the lease and its revision; None if nobody does."""
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await asyncio.wait_for(self.link.lease_kv.get(LEASE_KEY), OP_TIMEOUT_S)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return msgspec.msgpack.decode(entry.value, type=LeaseValue), int(entry.revision)

    async def try_take(self) -> bool:
        """Take the lease if nobody holds it; True when this node now does (a new term).
        A `create` refused or unanswered may still have been stored (its reply lost): the
        key holding a value this node sent is this node's, at the key's revision."""
        import nats.errors
        from nats.js.errors import APIError

        value, sent = self._remember()
        try:
            rev = await asyncio.wait_for(self.link.lease_kv.create(LEASE_KEY, value), OP_TIMEOUT_S)
        except (TimeoutError, APIError, nats.errors.Error):
            adopted = await self._adopt()
            if adopted is None:
                return False
            rev, sent = adopted
        self.revision, self.term, self._renewed_sent_ns = int(rev), int(rev), sent
        self._sent.clear()
        return True

    def _remember(self) -> tuple[bytes, int]:
        """A value to send, remembered with its send time until one is known stored."""
        value, sent = self._value(), self.clock.monotonic_ns()
        while len(self._sent) >= SENT_MAX:
            del self._sent[next(iter(self._sent))]
        self._sent[value] = sent
        return value, sent

    async def _adopt(self) -> tuple[int, int] | None:
        """(revision, send time) when the key holds a value this node sent after its last
        known revision, a request the server stored although its reply was lost; else None."""
        import nats.errors
        from nats.js.errors import APIError

        try:
            entry = await asyncio.wait_for(self.link.lease_kv.get(LEASE_KEY), OP_TIMEOUT_S)
        except (TimeoutError, APIError, nats.errors.Error):
            return None
        sent = self._sent.get(entry.value or b"")
        if sent is None or int(entry.revision) <= self.revision:
            return None
        log.warning("lease: a request stored, its reply lost (revision %d)", entry.revision)
        return int(entry.revision), sent

    def deadline_ns(self) -> int:
        """When this node must stop publishing (monotonic): a TTL after the last renewal
        stored was sent, before the bucket can expire the key."""
        return self._renewed_sent_ns + round(self.ttl_s * NS_PER_S)

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew in the background until lost (then `on_lost(why)`, once) or `release`;
        each renewal carries the current `endpoint`."""
        self._task = asyncio.get_running_loop().create_task(self._renew(on_lost))

    async def _renew(self, on_lost: Callable[[str], None]) -> None:
        """Every ttl/4 a renewal; after a failed one, another every POLL_S (each given at
        most the time left), until the deadline: a TTL after the last stored one was sent."""
        every_s = self.ttl_s / RENEWALS_PER_TTL
        ttl_ns = round(self.ttl_s * NS_PER_S)
        wait_s = every_s
        while True:
            left_ns = self._renewed_sent_ns + ttl_ns - self.clock.monotonic_ns()
            await asyncio.sleep(max(0.0, min(wait_s, left_ns / NS_PER_S)))
            left_ns = self._renewed_sent_ns + ttl_ns - self.clock.monotonic_ns()
            if left_ns <= 0:
                self._lose(on_lost, f"not renewed for {self.ttl_s} s (NATS unreachable?)")
                return
            outcome = await self._renew_once(min(OP_TIMEOUT_S, every_s, left_ns / NS_PER_S))
            if outcome == "refused":
                self._lose(on_lost, "another node holds it now")
                return
            wait_s = every_s if outcome == "renewed" else POLL_S

    async def _renew_once(self, timeout_s: float) -> str:
        """One renewal: "renewed", "failed" (try again soon) or "refused" (not ours)."""
        import nats.errors
        from nats.js.errors import APIError, KeyWrongLastSequenceError

        value, sent = self._remember()
        try:
            rev = await asyncio.wait_for(
                self.link.lease_kv.update(LEASE_KEY, value, last=self.revision), timeout_s
            )
        except KeyWrongLastSequenceError:
            adopted = await self._adopt()
            if adopted is None:
                return "refused"
            rev, sent = adopted
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            log.warning("lease renewal failed, retrying: %r", exc)
            return "failed"
        self.revision, self._renewed_sent_ns = int(rev), sent
        self._sent.clear()
        return "renewed"

    def _lose(self, on_lost: Callable[[str], None], why: str) -> None:
        self.lost = f"lease lost (term {self.term}): {why}"
        on_lost(self.lost)

    async def release(self) -> None:
        """Stop renewing and delete the key if it is still ours (a clean stop: a standby may
        take over at once instead of after the TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.revision and not self.lost:
            try:
                await asyncio.wait_for(
                    self.link.lease_kv.delete(LEASE_KEY, last=self.revision), OP_TIMEOUT_S
                )
            except Exception as exc:
                log.warning("lease not released (it expires by itself): %r", exc)
