"""Altered `tonne serve`s, the test doubles of tests/test_gateway_load.py.

    python -m tests.test_gateway_load_double --data DIR [the options of tonne serve]

is `tonne serve` with `Server._deliver` (the one place durable reports go out to sessions)
wrapped so that the first `fill` addressed to an account after `SKIP_FILLS` fills is
swallowed: its trade is settled and journaled, the order was acknowledged, but that side
never hears of it. `tonne load` must catch it.

    python -m tests.test_gateway_load_double --drop-connections --data DIR [...]

is `tonne serve` that drops every logged-on connection once, when its `DROP_AFTER_READS`-th
read with an order, amend or cancel comes in, unanswered (as a network would): `tonne
load`'s participants must reconnect and its end check must still pass. With
`--drop-connections-always` every connection is dropped at its `DROP_ALWAYS_AFTER_READS`-th
such read, reconnected or not, so participants use up their reconnects and are lost for
good: the run must still report, and fail. The production server has no switch for any of
this. No tests here.
"""

from __future__ import annotations

import sys
from typing import Any

from gateway.cli import serve
from gateway.server.server import Server
from gateway.server.session import Session
from gateway.wire import protocol as p

SKIP_FILLS = 20  # let the market trade a little first
DROP_AFTER_READS = 30  # reads of a logged-on connection before it is dropped, once an account
DROP_ALWAYS_AFTER_READS = 3  # with --drop-connections-always: every connection, every time


class DropsOneFill(Server):
    fills_seen = 0
    dropped = False

    def _deliver(self, batches: list[Any]) -> None:
        for batch in batches:
            if self.dropped:
                break
            for i, (target, msg) in enumerate(batch.items):
                if type(msg) is p.Fill and type(target) is int:
                    self.fills_seen += 1
                    if self.fills_seen > SKIP_FILLS:
                        del batch.items[i]  # WRONG on purpose
                        self.dropped = True
                        break
        super()._deliver(batches)


class DropsConnections(Server):
    reads: dict[Session, int] = {}
    dropped: set[int] = set()  # accounts whose connection was dropped once
    always = False

    async def handle_read(self, s: Session, items: list[Any]) -> None:
        trading = any(type(m) in (p.NewOrder, p.Amend, p.Cancel) for m in items)
        if trading and s.account and (self.always or s.account not in self.dropped):
            self.reads[s] = self.reads.get(s, 0) + 1
            if self.reads[s] >= (DROP_ALWAYS_AFTER_READS if self.always else DROP_AFTER_READS):
                self.dropped.add(s.account)
                s.abort("dropped by the test double")  # the read goes unanswered
                return
        await super().handle_read(s, items)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--drop-connections-always"]:
        DropsConnections.always = True
        serve.Server = DropsConnections  # type: ignore[misc]
        argv = argv[1:]
    elif argv[:1] == ["--drop-connections"]:
        serve.Server = DropsConnections  # type: ignore[misc]
        argv = argv[1:]
    else:
        serve.Server = DropsOneFill  # type: ignore[misc]
    sys.exit(serve.main(argv))
