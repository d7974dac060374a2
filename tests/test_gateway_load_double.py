"""A `tonne serve` that drops one acknowledged fill: the test double `tonne load` must catch.

    python -m tests.test_gateway_load_double --data DIR [the options of tonne serve]

is `tonne serve` with `Server._deliver` (the one place durable reports go out to sessions)
wrapped so that the first `fill` addressed to an account after `SKIP_FILLS` fills is
swallowed: its trade is settled and journaled, the order was acknowledged, but that side
never hears of it. tests/test_gateway_load.py runs `tonne load` against it; the production
server has no switch for this. No tests here.
"""

from __future__ import annotations

import sys
from typing import Any

from gateway.cli import serve
from gateway.server.server import Server
from gateway.wire import protocol as p

SKIP_FILLS = 20  # let the market trade a little first


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


if __name__ == "__main__":
    serve.Server = DropsOneFill  # type: ignore[misc]
    sys.exit(serve.main(sys.argv[1:]))
