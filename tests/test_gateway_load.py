"""`tonne load` runs bounded and its end check holds, on both transports."""

from __future__ import annotations

import pytest
from test_gateway_harness import HAS_LEDGER

from gateway.load import main

pytestmark = pytest.mark.skipif(not HAS_LEDGER, reason="settlement core not in this checkout")


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_load_runs_bounded_and_conserves_cash_and_credits(transport, capsys):
    code = main(
        ["--participants", "3", "--orders", "150", "--seconds", "20", "--transport", transport]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "orders 150 " in out and "OK" in out and "p99" in out
