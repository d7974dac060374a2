"""The deterministic simulation (tests/simulation.py): the real server, sessions, journal
and core under a seeded scheduler, a fake network, a stepped disk and injected crashes.

CI runs `SEEDS_CI` seeds; `TONNE_SIM_SEEDS=N` runs N (or `python -m tests.simulation
--seeds N`). A failing seed is named in the failure and replays exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from simulation import Simulation, SimulationFailed, SteppedWriter, run_seed

SEEDS_CI = 300
ROOT = Path(__file__).parent.parent


def test_every_seed_keeps_every_acknowledged_command_and_the_invariants():
    seeds = int(os.environ.get("TONNE_SIM_SEEDS", SEEDS_CI))
    for seed in range(seeds):
        run_seed(seed)  # raises SimulationFailed naming the seed


def test_the_same_seed_replays_the_same_run_and_another_seed_does_not():
    assert run_seed(7) == run_seed(7)
    assert run_seed(7) != run_seed(8)


def test_a_seed_replays_in_another_process_with_another_hash_seed():
    """Nothing in a run depends on the process: not addresses, not string hashing."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.simulation", "--first", "7", "--seeds", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"seed 7: {run_seed(7)}" in out


class AcksBeforeCommit(SteppedWriter):
    """A disk that says "committed" as soon as it is handed a batch, and writes it later:
    the acknowledgement is no longer a promise."""

    def send(self, batch):
        super().send(batch)
        if batch.commands and not self.dead:
            loop = asyncio.get_running_loop()
            loop.call_soon(self.on_commit, batch.commands[-1].seq, len(batch.commands))

    def commit(self):
        on_commit, self.on_commit = self.on_commit, lambda last, n: None
        try:
            super().commit()
        finally:
            self.on_commit = on_commit


class LyingDisk(Simulation):
    writer_class = AcksBeforeCommit


def test_the_simulation_catches_acknowledgements_sent_before_the_commit():
    with pytest.raises(SimulationFailed, match="lost in a crash|recovered seq"):
        for seed in range(50):
            run_seed(seed, simulation=LyingDisk)
