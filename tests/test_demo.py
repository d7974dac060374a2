"""The demo is what a new user sees first: it must run, trade, and be reproducible."""

from gateway import demo
from gateway.refdata import load_projects, load_serials


def test_reference_data_is_the_real_catalogue():
    projects = load_projects()
    assert len(projects) == 71
    assert projects["VCS1340"].country == "ET"
    assert "CCB" in projects["VCS1340"].labels
    serials = load_serials()
    assert all(row.end - row.start + 1 == row.quantity for row in serials)


def test_demo_prints_trades_and_closing_books(capsys):
    assert demo.main(["--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "trade #1 " in out
    assert "Closing books" in out


def test_same_seed_prints_the_same_market(capsys):
    demo.main(["--steps", "150", "--seed", "5"])
    first = capsys.readouterr().out
    demo.main(["--steps", "150", "--seed", "5"])
    assert capsys.readouterr().out == first
