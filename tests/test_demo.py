"""The demo is what a new user sees first: it must run the real exchange end to end, trade,
retire, verify its own settlement log, and be reproducible from its seed."""

import re

from gateway import demo
from gateway.refdata import load_projects, load_serials


def test_reference_data_is_the_real_catalogue():
    projects = load_projects()
    assert len(projects) == 71
    assert projects["VCS1340"].country == "ET"
    assert "CCB" in projects["VCS1340"].labels
    serials = load_serials()
    assert all(row.end - row.start + 1 == row.quantity for row in serials)


def test_a_registry_block_splits_into_contiguous_shares_of_the_same_serials():
    row = next(r for r in load_serials() if r.project_id == "VCS1340")
    shares = demo.split_block(row, 5)
    assert shares[0][0] == row.start and shares[-1][1] == row.end
    assert all(a[1] + 1 == b[0] for a, b in zip(shares, shares[1:], strict=False))
    assert sum(last - first + 1 for first, last in shares) == row.quantity


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


def test_same_seed_trades_the_same_market(capsys, tmp_path):
    demo.main(["--steps", "80", "--seed", "5", "--data", str(tmp_path / "a")])
    first = trades(capsys.readouterr().out)
    demo.main(["--steps", "80", "--seed", "5", "--data", str(tmp_path / "b")])
    assert trades(capsys.readouterr().out) == first
    assert first
