"""`tonne load` runs bounded and its end check holds, on both transports."""

from __future__ import annotations

import pytest

from gateway.cli.load import main


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_load_runs_bounded_and_conserves_cash_and_credits(transport, capsys):
    code = main(
        [
            "--participants",
            "3",
            "--orders",
            "150",
            "--seconds",
            "20",
            "--transport",
            transport,
            "--baskets",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "orders 150 " in out and "OK" in out and "p99" in out


def test_load_with_several_requests_in_flight_per_participant(capsys):
    code = main(
        [
            "--participants",
            "2",
            "--in-flight",
            "8",
            "--orders",
            "400",
            "--seconds",
            "20",
            "--baskets",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 participants x 8 in flight" in out and "orders 400 " in out and "OK" in out


def test_load_includes_basket_buyers_and_buy_and_retire_buyers(capsys):
    import re

    code = main(
        [
            "--participants",
            "3",
            "--orders",
            "300",
            "--seconds",
            "20",
            "--baskets",
            "0.3",
            "--seed",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    baskets, retired = map(int, re.search(r"baskets (\d+) \((\d+) t retired\)", out).groups())
    assert baskets > 0 and retired > 0, out
    assert f"({retired} retired)" in out and "core invariants hold: OK" in out


def test_load_refuses_a_non_positive_in_flight(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--in-flight", "0"])
    assert "--in-flight" in capsys.readouterr().err
