"""Markers for the two builds of the core (README, "The compiled core")."""

import pytest

from settlement.build import compiled

# Tests that build a pickle of the pure-Python layout, as versions before the
# layout-independent snapshots wrote them: the compiled build refuses every pickle (and
# tests/test_settlement_snapshot.py checks that it does, and that recovery then replays).
pickles_of_the_pure_layout = pytest.mark.skipif(
    compiled(), reason="the compiled build refuses pickled snapshots"
)
