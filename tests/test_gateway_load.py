"""`tonne load` runs bounded and its end check holds, on both transports."""

from __future__ import annotations

import pytest

from gateway.load import main


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_load_runs_bounded_and_conserves_cash_and_credits(transport, capsys):
    code = main(
        ["--participants", "3", "--orders", "150", "--seconds", "20", "--transport", transport]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "orders 150 " in out and "OK" in out and "p99" in out
