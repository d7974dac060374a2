"""Markers for the two builds of the core (README, "The compiled core")."""

import pytest

from settlement.build import compiled

# Tests that build a pickle of the pure-Python layout, as versions before the
# layout-independent snapshots wrote them: the compiled build refuses every pickle (and
# tests/test_settlement_snapshot.py checks that it does, and that recovery then replays).
pickles_of_the_pure_layout = pytest.mark.skipif(
    compiled(), reason="pickles of the pure build's layout: the compiled build reads none"
)

# Tests that inject a fault by substituting a module's function: compiled modules call one
# another's functions directly, not through the module's namespace, so the substitute is
# never called. The pure build runs them, on the same source.
substitutes_module_functions = pytest.mark.skipif(
    compiled(), reason="compiled modules call each other's functions directly"
)
