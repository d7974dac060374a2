"""`tonne buy`: a screened basket from the command line on the code `tonne serve` runs (a new
exchange: the shipped contracts and the demo's project series), across a project's book and
a contract's, reporting each fill with its registry serials, the summary and, buying to
retire, the certificate (issue 14)."""

from __future__ import annotations

import pytest

from gateway.cli import main as cli
from gateway.cli.accounts import add_key
from gateway.cli.buy import average_minor
from tests.test_gateway_custody import key_file, serving

CAR_BLOCK = "CAR-1-MX-1568-42-1130-QR-2025-9680-1 to 15803"  # CAR1568 2025: removal, CCP
BATCH = "CAR-1-MX-1568-42-1130-QR-2025-9680-"
REMOVALS = "mitigation = removal and label CCP"  # CAR-1568-2025 and TONNE-NBR
FUND = frozenset({"trade", "fund"})


def tonne(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_the_average_price_rounds_half_up_in_integers():
    assert [average_minor(n, 2) for n in (10, 11, 13)] == [5, 6, 7]
    assert average_minor(36500, 20) == 1825


def test_a_basket_bought_to_retire_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "data"
    seller = key_file(tmp_path, add_key(data, permissions=FUND), "seller.json")
    buyer = key_file(tmp_path, add_key(data, permissions=FUND), "buyer.json")
    watcher = key_file(tmp_path, add_key(data, permissions=frozenset({"fund"})), "watcher.json")
    with serving(data) as info:
        at = ["--connect", f"127.0.0.1:{info['tcp_port']}"]
        code, _, err = tonne(
            capsys, "custody", "deposit", *at, "--key", seller, "--serial", CAR_BLOCK
        )
        assert code == 0, err
        code, _, err = tonne(
            capsys, "custody", "deposit", *at, "--key", buyer, "--cash", "USD", "1000.00"
        )
        assert code == 0, err
        for series, price in (("CAR-1568-2025", "1850"), ("TONNE-NBR", "1800")):
            code, _, err = tonne(
                capsys,
                "order",
                "sell",
                series,
                "--qty",
                "10",
                "--price",
                price,
                *at,
                "--key",
                seller,
            )
            assert code == 0, err
        basket = ["buy", "--screen", REMOVALS, "--qty", "25", "--limit", "1900", *at]
        code, lines, err = tonne(
            capsys,
            *basket,
            "--retire-for",
            "Nordic Climate Desk",
            "--claim",
            "FY2026 net-zero claim",
            "--period",
            "2026-01-01",
            "2026-12-31",
            "--certificate-out",
            str(tmp_path / "cert.json"),
            "--key",
            buyer,
        )
        assert code == 0, err
        assert lines.pop() == (
            f"certificate saved to {tmp_path / 'cert.json'} "
            "(tonne certificate verify FILE --data DIR; tonne certificate export for a proof)"
        )
        assert (
            lines[0].startswith("accepted basket ") and "up to 25 t at most 19.00 USD/t" in lines[0]
        )
        assert lines[1] == (
            f"filled 10 t of TONNE-NBR at 18.00, fee 0.27; serials {BATCH}1 to 10"
        ), lines
        assert lines[2] == (
            f"filled 10 t of CAR-1568-2025 at 18.50, fee 0.27; serials {BATCH}11 to 20"
        ), lines
        assert lines[3] == "cancelled 5 t (ioc)", lines
        assert lines[4] == (
            "done: filled 20 t of 25, average 18.25 USD/t, notional 365.00 USD, projects CAR1568"
        ), lines
        assert lines[5].startswith("certificate ") and lines[5].endswith(
            "20 t retired for 'Nordic Climate Desk' "
            "(voluntary 2026-01-01 to 2026-12-31, claim 'FY2026 net-zero claim')"
        ), lines
        assert (
            lines[6].startswith("  trade ")
            and f"TONNE-NBR 10 t: {BATCH}1 to 10 (record" in lines[6]
        )
        assert f"CAR-1568-2025 10 t: {BATCH}11 to 20 (record" in lines[7], lines
        assert len(lines) == 8, lines

        # refusals: each says why, exit status 1
        code, lines, err = tonne(capsys, *basket, "--fok", "--key", buyer)
        assert code == 1 and lines[0].startswith("refused CANNOT_FILL"), (lines, err)
        code, lines, err = tonne(
            capsys,
            "buy",
            "--screen",
            "label (",
            "--qty",
            "1",
            "--limit",
            "1900",
            *at,
            "--key",
            buyer,
        )
        assert code == 1 and lines[0].startswith("refused INVALID_SCREEN: screen at "), lines
        code, lines, err = tonne(capsys, *basket, "--retire-for", "", "--key", buyer)
        assert code == 1 and lines[0].startswith("refused INVALID_RETIREMENT"), lines
        code, lines, err = tonne(capsys, *basket, "--key", watcher)
        assert code == 1 and lines[0].startswith("refused NOT_PERMITTED"), lines
    # anyone with the log proves the certificate; an edited one fails
    cert = tmp_path / "cert.json"
    code, lines, err = tonne(
        capsys, "log", "verify", "--data", str(data), "--certificate", str(cert)
    )
    assert code == 0, (lines, err)
    assert lines[0].startswith("OK ") and lines[1].endswith(
        "20 t for 'Nordic Climate Desk' proved by records 7, 9"
    ), lines
    forged = tmp_path / "forged.json"
    forged.write_text(cert.read_text().replace("Nordic Climate Desk", "Someone Else"))
    code, lines, err = tonne(
        capsys, "log", "verify", "--data", str(data), "--certificate", str(forged)
    )
    assert code == 1 and lines[-1].startswith("FAIL: certificate RC-00000001"), lines
    (tmp_path / "junk.json").write_text("{}")
    code, lines, err = tonne(
        capsys, "log", "verify", "--data", str(data), "--certificate", str(tmp_path / "junk.json")
    )
    assert code == 1 and "not an order certificate" in lines[-1], lines


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--purpose", "corsia"], "go with --retire-for"),
        (["--period", "2026-01-01", "2026-12-31"], "go with --retire-for"),
        (["--retire-for", "x" * 257], "--retire-for is at most 256 characters"),
        (["--limit", str(2**62)], "--limit must be a whole number from 0 to 2^62 - 1"),
        (["--qty", "-1"], "--qty must be a whole number"),
        (["--currency", "X" * 257], "--currency is at most 256 characters"),
    ],
    ids=[
        "purpose-alone",
        "period-alone",
        "long-beneficiary",
        "huge-limit",
        "negative-qty",
        "long-currency",
    ],
)
def test_a_basket_the_wire_would_not_carry_is_a_usage_error(tmp_path, capsys, extra, why):
    key = key_file(tmp_path, add_key(tmp_path / "data", permissions=FUND))
    args = ["buy", "--screen", "any", "--qty", "1", "--limit", "1", "--connect", "127.0.0.1:1"]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--key", key, *extra])
    assert exit_.value.code == 2 and why in capsys.readouterr().err


def test_a_basket_without_a_server_is_a_connection_error(tmp_path, capsys):
    key = key_file(tmp_path, add_key(tmp_path / "data", permissions=FUND))
    code, lines, err = tonne(
        capsys,
        "buy",
        "--screen",
        "any",
        "--qty",
        "1",
        "--limit",
        "1",
        "--connect",
        "127.0.0.1:1",
        "--key",
        key,
        "--timeout-s",
        "2",
    )
    assert code == 2 and "tonne buy: cannot connect" in err and not lines
