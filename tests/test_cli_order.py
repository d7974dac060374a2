"""`tonne order`: one order from the command line on the code `tonne serve` runs, reporting
each fill with the exact registry serials delivered and, in a standardized contract, the rule
version it traded under (issue 13: a contract listed and traded from the command line)."""

from __future__ import annotations

import pytest

from gateway.cli import main as cli
from gateway.cli.accounts import add_key
from tests.test_gateway_custody import key_file, serving

CORSIA_BLOCK = "19390-941471173-941821172-VCS-VCU-1289-VER-KH-3-2925-01012024-30062024-1"
FUND = frozenset({"trade", "fund"})


def tonne(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_a_contract_trades_from_the_command_line_with_its_serials(tmp_path, capsys):
    data = tmp_path / "data"
    seller = key_file(tmp_path, add_key(data, permissions=FUND), "seller.json")
    buyer = key_file(tmp_path, add_key(data, permissions=FUND), "buyer.json")
    with serving(data) as info:
        at = ["--connect", f"127.0.0.1:{info['tcp_port']}"]
        code, _, err = tonne(
            capsys, "custody", "deposit", *at, "--key", seller, "--serial", CORSIA_BLOCK
        )
        assert code == 0, err
        code, _, err = tonne(
            capsys, "custody", "deposit", *at, "--key", buyer, "--cash", "USD", "1000.00"
        )
        assert code == 0, err
        code, lines, err = tonne(
            capsys,
            "order",
            "sell",
            "TONNE-CORSIA",
            "--qty",
            "20",
            "--price",
            "900",
            *at,
            "--key",
            seller,
        )
        assert code == 0, err
        assert lines[0].startswith("accepted order") and lines[-1] == "resting 20 t", lines
        code, lines, err = tonne(
            capsys,
            "order",
            "buy",
            "TONNE-CORSIA",
            "--qty",
            "25",
            "--price",
            "900",
            "--tif",
            "ioc",
            *at,
            "--key",
            buyer,
        )
        assert code == 0, err
        assert lines[1] == (
            "filled 20 t at 900 under rule v1, fee 27; serials "
            "19390-941471173-941471192-VCS-VCU-1289-VER-KH-3-2925-01012024-30062024-1"
        ), lines
        assert lines[2] == "cancelled 5 t (ioc)", lines
        code, lines, err = tonne(
            capsys,
            "order",
            "sell",
            "TONNE-CORSIA",
            "--qty",
            "21",  # it holds the 20 it bought
            "--price",
            "900",
            *at,
            "--key",
            buyer,
        )
        assert code == 1 and lines[0].startswith("refused INSUFFICIENT_CREDITS"), (lines, err)
        code, lines, err = tonne(
            capsys, "order", "sell", "NOPE", "--qty", "1", "--price", "9", *at, "--key", buyer
        )
        assert code == 1 and lines[0].startswith("refused UNKNOWN_SERIES"), (lines, err)


def test_an_order_without_a_server_is_a_usage_or_connection_error(tmp_path, capsys):
    key = key_file(tmp_path, add_key(tmp_path / "data", permissions=FUND))
    code, lines, err = tonne(
        capsys,
        "order",
        "buy",
        "X",
        "--qty",
        "1",
        "--price",
        "1",
        "--connect",
        "127.0.0.1:1",
        "--key",
        key,
        "--timeout-s",
        "2",
    )
    assert code == 2 and "tonne order: cannot connect" in err and not lines
