"""The garbage-collector policy of a serving process (`tonne serve`, load clients, benches).

Why: with CPython's default thresholds (700, 10, 10) the cyclic collector took 23% of the
server's time in the gateway benchmark (300 000 durable orders: 1.18 s of 5.1 s). A young
collection walks every tracked object made since the last one, and the ledger's and books'
long-lived lists keep promoting objects into the older generations, so the passes grow with
the exchange. The hot path makes no reference cycles (protocol messages, engine events and
resting orders are untracked msgspec structs; cycles come only from rare exceptions), so
those passes find next to nothing. With the thresholds below the same run spent 0.17 s in
the collector and served 16% more orders per second.

What it does, once the process has started (recovered its state, opened its accounts):
collect once, `gc.freeze()` everything that exists (it is long-lived by construction and
never scanned again), and collect the young generation every `YOUNG` allocations net of
deallocations instead of 700. Cyclic garbage that dies young goes at the next young pass;
what lived long enough to be promoted first (a closed session's objects, say) waits for a
middle or full pass, which now comes every 5 million or 500 million allocations.

Only for processes that serve: it is never called on import, so a test run or a library user
keeps the interpreter's defaults; `serving()` applies it for a while and restores them (a
benchmark run inside a test process).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG = 100_000  # allocations (net) between young collections (CPython default: 700)
MIDDLE = 50  # young collections between middle ones (default 10)
OLD = 100  # middle collections between full ones (default 10)


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)


@contextlib.contextmanager
def serving() -> Iterator[None]:
    """The serving policy for the duration, then the previous thresholds; what it froze is
    unfrozen (unless something was frozen before: a freeze cannot be partly undone), and the
    garbage made meanwhile is collected at once, so that nothing it left (an unclosed
    transport in a cycle, say) is found later, by someone else."""
    old = gc.get_threshold()
    was_frozen = gc.get_freeze_count() > 0
    tune_for_serving()
    try:
        yield
    finally:
        if not was_frozen:
            gc.unfreeze()
        gc.set_threshold(*old)
        gc.collect()
