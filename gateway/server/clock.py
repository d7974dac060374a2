"""The gateway's clock: wall time in nanoseconds, and timers at a wall time.

Time is a parameter (STYLE.md): the server reads the time and arms its timers only through a
`Clock` it is given. `tonne serve` passes `SystemClock` (the real time, timers on the
running asyncio loop); a test passes `ManualClock`, whose time moves only when the test says
and whose timers then run at once, in order, with no sleep and no real time passing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

NS_PER_S = 1_000_000_000


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ns(self) -> int:
        """Wall time, integer nanoseconds since the Unix epoch."""
        ...

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        """Run `callback` once, on the loop, no earlier than this clock's `when_ns` as nearly
        as the clock can tell (a caller must still check the time when it runs)."""
        ...


class SystemClock:
    """The real wall clock; a timer is a `loop.call_later` for the time left until then."""

    def now_ns(self) -> int:
        return time.time_ns()

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        delay_s = max(0.0, (when_ns - time.time_ns()) / NS_PER_S)
        return asyncio.get_running_loop().call_later(delay_s, callback)


class _ManualTimer:
    __slots__ = ("when_ns", "callback", "cancelled")

    def __init__(self, when_ns: int, callback: Callable[[], None]) -> None:
        self.when_ns = when_ns
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told. `advance(ns)` moves it and runs every timer due by
    then, earliest first (ties in the order they were armed); `now` may also be set directly,
    which moves time without running any timer (a timer that has not fired yet)."""

    def __init__(self, start_ns: int | None = None) -> None:
        self.now = time.time_ns() if start_ns is None else start_ns
        self._timers: list[tuple[int, int, _ManualTimer]] = []
        self._armed = itertools.count()

    def now_ns(self) -> int:
        return self.now

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(when_ns, callback)
        heapq.heappush(self._timers, (when_ns, next(self._armed), timer))
        return timer

    def pending(self) -> list[int]:
        """When each timer still armed is due, earliest first."""
        return sorted(when for when, _, t in self._timers if not t.cancelled)

    def advance(self, ns: int) -> int:
        """Move time on by `ns` and run the timers due; how many ran."""
        self.now += ns
        return self.run_due()

    def run_due(self, timers_max: int = 10_000) -> int:
        """Run the timers due by `now` (including those they arm, if due); how many ran.
        More than `timers_max` in one call is a timer that re-arms itself forever: a bug."""
        ran = 0
        timers = self._timers
        while timers and timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            ran += 1
            assert ran <= timers_max, f"more than {timers_max} timers due at one time"
            timer.callback()
        return ran
