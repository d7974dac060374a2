"""The gateway's clock: wall time and a monotonic reading in nanoseconds, and timers.

Time is a parameter (STYLE.md): the gateway reads the time and arms its timers only through
a `Clock` it is given, and this module is the one below the command line that reads the
real clocks. `tonne serve` passes `SystemClock` (the real time, timers on the running asyncio
loop); a test or the simulation passes `ManualClock`, whose time moves only when told and
whose timers then run at once, in order, with no sleep and no real time passing.

Two readings, two kinds of timer:

- `now_ns()` is wall time (nanoseconds since the Unix epoch): what commands are stamped
  with, what a logon's `ts` is checked against, what GTD expiry is judged by
  (`call_at_ns`, a timer at a wall time);
- `monotonic_ns()` never goes back: what durations are measured with (idle, heartbeat and
  logon timeouts, token buckets, commit windows, snapshot intervals, pauses), and what
  `call_later(delay_s)` counts from.

`ManualClock` keeps both on one timeline (its monotonic reading is its wall time less where
it started), so one `advance` moves every kind of deadline together.
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

    def monotonic_ns(self) -> int:
        """A reading for durations, in nanoseconds: it never goes back; its zero means
        nothing."""
        ...

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        """Run `callback` once, on the loop, no earlier than this clock's wall time `when_ns`
        as nearly as the clock can tell (a caller must still check the time when it runs)."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once, on the loop, `delay_s` seconds of the monotonic reading from
        now (a caller must still check the time when it runs)."""
        ...


class SystemClock:
    """The real clocks; timers are `loop.call_later` on the running loop. The readings are
    the `time` functions themselves (no wrapper on the hot path)."""

    def __init__(self) -> None:
        self.now_ns: Callable[[], int] = time.time_ns
        self.monotonic_ns: Callable[[], int] = time.monotonic_ns

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        delay_s = max(0.0, (when_ns - time.time_ns()) / NS_PER_S)
        return asyncio.get_running_loop().call_later(delay_s, callback)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), callback)


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
    which moves time without running any timer (a timer that has not fired yet). The
    monotonic reading is `now` less the start, so both kinds of timer share one queue."""

    def __init__(self, start_ns: int | None = None) -> None:
        self.now = time.time_ns() if start_ns is None else start_ns
        self.start_ns = self.now
        self._timers: list[tuple[int, int, _ManualTimer]] = []
        self._armed = itertools.count()

    def now_ns(self) -> int:
        return self.now

    def monotonic_ns(self) -> int:
        return self.now - self.start_ns

    def call_at_ns(self, when_ns: int, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(when_ns, callback)
        heapq.heappush(self._timers, (when_ns, next(self._armed), timer))
        return timer

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        return self.call_at_ns(self.now + max(0, round(delay_s * NS_PER_S)), callback)

    def pending(self, callback: Callable[[], None] | None = None) -> list[int]:
        """When each timer still armed is due (only those of `callback`, if given), earliest
        first, as wall times."""
        return sorted(
            when
            for when, _, t in self._timers
            if not t.cancelled and (callback is None or t.callback == callback)
        )

    def next_due(self) -> int | None:
        """When the earliest timer still armed is due (a wall time), or None."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

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
