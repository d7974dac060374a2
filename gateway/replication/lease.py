"""The leadership lease: one key in a KV bucket whose TTL is the lease.

- take: `create` (succeeds only while nobody holds the key); its revision is the new term.
- renew: every `ttl_s / RENEWALS_PER_TTL`, `update` with the last revision, so that a renewal
  by anyone but the holder of that revision is refused.
- lost: a renewal refused (another revision) or no renewal stored for `ttl_s` since the last
  one that was *sent*: the bucket expires the key no earlier than `ttl_s` after the server
  stored it, so the holder gives up before anyone else can take it. `on_lost` is called once.

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
        """Take the lease if nobody holds it; True when this node now does (a new term)."""
        import nats.errors
        from nats.js.errors import APIError

        sent = self.clock.monotonic_ns()
        try:
            rev = await asyncio.wait_for(
                self.link.lease_kv.create(LEASE_KEY, self._value()), OP_TIMEOUT_S
            )
        except (TimeoutError, APIError, nats.errors.Error):
            return False
        self.revision, self.term, self._renewed_sent_ns = int(rev), int(rev), sent
        return True

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew in the background until lost (then `on_lost(why)`, once) or `release`;
        each renewal carries the current `endpoint`."""
        self._task = asyncio.get_running_loop().create_task(self._renew(on_lost))

    async def _renew(self, on_lost: Callable[[str], None]) -> None:
        import nats.errors
        from nats.js.errors import APIError, KeyWrongLastSequenceError

        every_s = self.ttl_s / RENEWALS_PER_TTL
        ttl_ns = round(self.ttl_s * NS_PER_S)
        while True:
            await asyncio.sleep(every_s)
            sent = self.clock.monotonic_ns()
            if sent - self._renewed_sent_ns >= ttl_ns:
                self._lose(on_lost, f"not renewed for {self.ttl_s} s (NATS unreachable?)")
                return
            try:
                rev = await asyncio.wait_for(
                    self.link.lease_kv.update(LEASE_KEY, self._value(), last=self.revision),
                    min(OP_TIMEOUT_S, every_s),
                )
            except KeyWrongLastSequenceError:
                self._lose(on_lost, "another node holds it now")
                return
            except (TimeoutError, APIError, nats.errors.Error) as exc:
                log.warning("lease renewal failed, retrying: %r", exc)
                continue
            self.revision, self._renewed_sent_ns = int(rev), sent

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
