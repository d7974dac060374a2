"""The crash test in CI: a real feed process on loopback, real SIGKILLs, the real core.

`TONNE_CRASH_CYCLES` sets the number of kill cycles (default 5); the long run is
`python -m tests.crash_harness --cycles 50`.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.crash_harness import run_cycles

CYCLES = int(os.environ.get("TONNE_CRASH_CYCLES", "5"))


def test_sigkill_loses_nothing_acknowledged_and_half_applies_nothing(tmp_path):
    tally = asyncio.run(
        run_cycles(tmp_path, CYCLES, seed=11, feed_args=["--snapshot-every", "300"])
    )
    assert tally.cycles == CYCLES
    assert tally.acked > 0 and tally.fills > 0 and tally.retirements > 0
    assert tally.registry_events > 0 and tally.venue_cancels > 0  # issue 13's commands too
    assert tally.baskets > 0  # and issue 14's screened baskets, some buy-and-retire
    assert tally.snapshot_recoveries > 0, "some restart must have used a snapshot"


def test_the_crash_test_catches_a_server_that_acknowledges_before_the_commit(tmp_path):
    with pytest.raises(AssertionError, match="acknowledged commands lost"):
        asyncio.run(
            run_cycles(
                tmp_path,
                CYCLES,
                seed=12,
                feed_args=["--window-ms", "50"],
                feed_command=["tests.feed_acks_early"],  # answers before its commit
            )
        )
