"""The demo is what a new user sees first: it must run the real exchange end to end, trade,
retire, verify its own settlement log, and be reproducible from its seed."""

import re

import pytest

from gateway.cli import demo
from gateway.refdata import load_projects, load_serials


def test_reference_data_is_the_real_catalogue():
    projects = load_projects()
    assert len(projects) == 71
    assert projects["VCS1340"].country == "ET"
    assert "CCB" in projects["VCS1340"].labels
    serials = load_serials()
    assert all(row.end - row.start + 1 == row.quantity for row in serials)


def test_a_registry_block_splits_into_contiguous_shares_of_the_same_serials():
    row = next(r for r in load_serials() if r.project == "VCS1340")
    shares = demo.split_block(row, 5)
    assert shares[0][0] == row.start and shares[-1][1] == row.end
    assert all(a[1] + 1 == b[0] for a, b in zip(shares, shares[1:], strict=False))
    assert sum(last - first + 1 for first, last in shares) == row.quantity


def test_the_demo_takes_custody_of_every_real_block_under_its_batch():
    projects = load_projects()
    listed = demo.list_series(projects)
    serials = load_serials()
    deposits = [d for d in demo.funding(listed, serials, [1, 2, 3, 4, 5]) if hasattr(d, "batch")]
    assert {d.ref for d in deposits} == {row.serial_string for row in serials}
    assert len(serials) == 77
    assert all(d.batch for d in deposits)
    assert sum(d.quantity for d in deposits) == sum(row.quantity for row in serials)
    # the CAR pair that shares numbers within one project and vintage is taken in whole
    car = [d for d in deposits if (d.project, d.vintage) == ("CAR1335", 2025)]
    assert {d.batch for d in car} == {
        "CAR-1-US-1335-31-983-KS-2025-9205-*",
        "CAR-1-US-1335-31-983-KS-2025-9659-*",
    }


def trades(out: str) -> list[str]:
    """The tape without its clock column."""
    return [line[14:] for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3}  #", line)]


def test_demo_trades_over_the_network_retires_and_verifies_its_log(capsys, tmp_path):
    assert demo.main(["--steps", "120", "--data", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert len(trades(out)) > 10
    assert "certificate RC-00000001" in out
    assert "Closing books" in out
    assert re.search(r"^\s+OK \d+ records", out, re.M), out[-2000:]
    assert "all 77 real registry serial blocks" in out
    # trades, the certificate and the log tail print registry serial strings
    verra = r"\d+-\d+-\d+-VCS-VCU-\d+-VER-[A-Z]{2}-\d+-\d+-\d{8}-\d{8}-\d+"
    registry = (
        rf"({verra}|GS1-1-[A-Z]{{2}}-GS\d+-\d+-\d{{4}}-\d+-\d+-\d+|CAR-[-A-Z0-9]+ to \d+"
        rf"|ACR-[A-Z]{{2}}-\d+-\d{{4}}-\d+-\d+ to \d+)"
    )
    assert all(re.search(registry, line) for line in trades(out)), trades(out)
    (cert,) = [line for line in out.splitlines() if "certificate RC-00000001" in line]
    assert re.search(verra, cert), cert
    tail = out[out.index("`tonne log tail -n 6`") :]
    assert len(re.findall(rf"serials={registry}", tail)) >= 5, tail
    # the catalogue (issue 13): screens the buyers' guide way, and a contract trades
    assert re.search(r"'mitigation = removal and basis = nature': \d+ series", out), out
    assert "INVALID_SCREEN, at 15:" in out
    (contract,) = [line for line in out.splitlines() if "under rule v1; serials" in line]
    assert re.search(r"ACR-US-802-2022-\d+-\d+ to \d+|CAR-1-MX-1568-[-0-9]+ to \d+", contract)
    assert re.search(r"contract_fill=[1-9]", out)  # the contract trade (and the basket)
    # a screened basket bought to retire, with one certificate (issue 14)
    assert re.search(r"certificate RC-\d+: \d+ t retired for 'Kowloon Steel Ltd', \d+ fills", out)
    assert re.search(r"fill_retirement=\d+", out)


def test_same_seed_trades_the_same_market(capsys, tmp_path):
    demo.main(["--steps", "80", "--seed", "5", "--data", str(tmp_path / "a")])
    first = trades(capsys.readouterr().out)
    demo.main(["--steps", "80", "--seed", "5", "--data", str(tmp_path / "b")])
    assert trades(capsys.readouterr().out) == first
    assert first


@pytest.mark.parametrize(
    ("live", "named"),
    [
        (["--seconds", "3"], "--seconds is"),
        (["--plain"], "--plain is"),
        (["--http-port", "0"], "--http-port is"),
        (["--plain", "--seconds", "3"], "--seconds and --plain are"),
    ],
)
def test_steps_with_a_live_demo_option_is_refused_not_ignored(capsys, tmp_path, live, named):
    with pytest.raises(SystemExit) as refused:
        demo.main(["--steps", "5", *live, "--data", str(tmp_path / "a")])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert f"--steps runs the short scripted demo; {named} for the live demo" in err, err
    assert not (tmp_path / "a").exists()  # refused before anything ran
