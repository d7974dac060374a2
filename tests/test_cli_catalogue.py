"""`tonne screen` and `tonne operator` against the code `tonne serve` runs (real store in a
temporary folder, loopback port 0, the demo's catalogue of a fresh folder): a screen reads
alike over the protocol and over the stopped folder, a bad screen says where, and the
operator's requests need an `operator` key and change what the next screen sees."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli
from gateway.cli.accounts import add_key
from gateway.cli.operator import when_ns, when_text
from gateway.cli.screen import table
from tests.test_gateway_custody import VERRA, key_file, serving

BAD_SCREEN = "mitigation = avoidance and ("  # stops reading at 28, the end
LABELLED = "label CCB or label CCP or label CORSIA"


def tonne(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """`tonne ARGS`: (exit status, stdout lines, stderr)."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def series_of(lines: list[str]) -> list[str]:
    """The series column of `tonne screen`'s table (header and count line left out)."""
    assert lines[0].startswith("series") and lines[-1].endswith(" series"), lines
    return [line.split()[0] for line in lines[1:-1]]


def connection(info: dict[str, Any], key: str) -> list[str]:
    return ["--connect", f"127.0.0.1:{info['tcp_port']}", "--key", key]


def test_a_screen_reads_alike_over_the_protocol_and_over_the_stopped_folder(tmp_path, capsys):
    data = tmp_path / "data"
    key = key_file(tmp_path, add_key(data, permissions=frozenset({"trade"})))
    with serving(data) as info:
        code, served, err = tonne(capsys, "screen", LABELLED, *connection(info, key))
        assert code == 0, err
        code, lines, err = tonne(capsys, "screen", BAD_SCREEN, *connection(info, key))
        assert code == 2 and "at 28: " in err and not lines
    code, stored, err = tonne(capsys, "screen", LABELLED, "--data", str(data))
    assert code == 0, err
    assert series_of(served) == series_of(stored)
    assert {"VCS-1340-2020", "CAR-1568-2025", "VCS-2925-2024"} <= set(series_of(stored))
    assert "GS-12065-2024" not in series_of(stored)  # no labels
    code, lines, err = tonne(capsys, "screen", BAD_SCREEN, "--data", str(data))
    assert code == 2 and "tonne screen: at 28: " in err and not lines


def test_screen_needs_a_server_or_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        tonne(capsys, "screen", "any")
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        tonne(capsys, "screen", "any", "--data", str(tmp_path), "--connect", "127.0.0.1:1")
    assert exit_.value.code == 2


def test_the_table_says_when_nothing_matches():
    assert table([]) == "no series matches"


# -- the operator's requests on one server ----------------------------------------------------


class Venue:
    def __init__(self, info: dict[str, Any], keys: dict[str, str], accounts: dict[str, int]):
        self.info, self.keys, self.accounts = info, keys, accounts

    def args(self, who: str) -> list[str]:
        return connection(self.info, self.keys[who])


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    data = tmp_path_factory.mktemp("catalogue")
    folder = tmp_path_factory.mktemp("keys")
    made = {
        "operator": add_key(data, permissions=frozenset({"operator"})),
        "trader": add_key(data, permissions=frozenset({"trade", "retire"})),
        "fund": add_key(data, permissions=frozenset({"fund"})),
    }
    keys = {name: key_file(folder, key, f"{name}.json") for name, key in made.items()}
    with serving(data) as info:
        yield Venue(info, keys, {name: key[0] for name, key in made.items()})


@pytest.mark.parametrize(
    "request_args",
    [
        ["label", "remove", "VCS1340", "CCB"],
        ["suspend", "VCS1340"],
        ["reinstate", "VCS1340"],
        ["reversal", "--account", "3", "--serial", VERRA.serial_string],
        ["contract", "list", "NOPE-1", "--rule", "any"],
        ["contract", "version", "NOPE-1", "--rule", "any"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_an_operator_request_with_another_key_is_refused(venue, capsys, request_args):
    for who in ("trader", "fund"):
        code, lines, err = tonne(capsys, "operator", *request_args, *venue.args(who))
        assert code == 1 and lines[0].startswith("refused NOT_PERMITTED: "), (lines, err)


def test_a_withdrawn_label_leaves_the_screen(venue, capsys):
    screen = ["screen", "label CCB", *venue.args("trader")]
    code, lines, _ = tonne(capsys, *screen)
    assert code == 0 and "VCS-1340-2020" in series_of(lines)
    code, lines, err = tonne(
        capsys, "operator", "label", "remove", "VCS1340", "CCB", *venue.args("operator")
    )
    assert code == 0, err
    assert lines == [
        "label CCB withdrawn from VCS1340 (every vintage), effective at once: 0 orders cancelled"
    ]
    code, lines, _ = tonne(capsys, *screen)
    assert code == 0 and "VCS-1340-2020" not in "\n".join(lines)
    code, lines, err = tonne(
        capsys,
        "operator",
        "label",
        "add",
        "VCS1340",
        "CCB",
        "--vintage",
        "2020",
        *venue.args("operator"),
    )
    assert code == 0 and "granted on VCS1340 (vintage 2020)" in lines[0], err
    code, lines, _ = tonne(capsys, *screen)
    assert "VCS-1340-2020" in series_of(lines)


def test_a_suspended_project_shows_halted_until_reinstated(venue, capsys):
    screen = ["screen", "standard = GS", *venue.args("trader")]
    code, lines, err = tonne(capsys, "operator", "suspend", "GS12065", *venue.args("operator"))
    assert code == 0 and lines[0].startswith("suspended GS12065: its books halted"), err
    code, lines, _ = tonne(capsys, *screen)
    assert "GS-12065-2024 (halted)" in "\n".join(lines)
    code, lines, _ = tonne(capsys, "operator", "suspend", "GS12065", *venue.args("operator"))
    assert code == 1 and lines[0].startswith("refused PROJECT_SUSPENDED: ")
    code, lines, err = tonne(capsys, "operator", "reinstate", "GS12065", *venue.args("operator"))
    assert code == 0 and lines[0].startswith("reinstated GS12065"), err
    code, lines, _ = tonne(capsys, *screen)
    assert "(halted)" not in "\n".join(lines)


def test_a_contract_is_listed_versioned_and_shown(venue, capsys):
    op = venue.args("operator")
    code, lines, err = tonne(
        capsys,
        "operator",
        "contract",
        "list",
        "CCP-NATURE",
        "--rule",
        "label CCP",
        "--tick",
        "5",
        *op,
    )
    assert code == 0, err
    assert lines == [
        "listed CCP-NATURE rule version 1, effective " + lines[0].split("effective ")[1]
    ]
    assert lines[0].endswith(": label CCP")
    code, lines, err = tonne(
        capsys,
        "operator",
        "contract",
        "version",
        "CCP-NATURE",
        "--rule",
        "label CCP and basis = nature",
        "--effective",
        "2100-01-01",
        *op,
    )
    assert code == 0, err
    assert lines == [
        "CCP-NATURE rule version 2, effective 2100-01-01T00:00:00+00:00: "
        "label CCP and basis = nature"
    ]
    code, lines, err = tonne(capsys, "operator", "contract", "show", "CCP-NATURE", *op)
    assert code == 0, err
    assert lines[0] == "CCP-NATURE: 2 rule versions"
    assert (
        lines[2] == "  version 2  effective 2100-01-01T00:00:00+00:00  label CCP and basis = nature"
    )
    code, lines, _ = tonne(capsys, "operator", "contract", "show", "VCS-1340-2020", *op)
    assert code == 1 and lines[0].startswith("refused NOT_A_CONTRACT: ")
    code, lines, _ = tonne(
        capsys,
        "operator",
        "contract",
        "version",
        "CCP-NATURE",
        "--rule",
        "label (",
        "--effective",
        "2100-01-02",
        *op,
    )
    assert code == 1 and lines[0].startswith("refused INVALID_SCREEN: ") and "at 6: " in lines[0]


def test_a_reversal_takes_the_registry_serials_out_of_the_account(venue, capsys, tmp_path):
    fund = venue.keys["fund"]
    code, lines, err = tonne(
        capsys, "custody", "deposit", "--serial", VERRA.serial_string, *connection(venue.info, fund)
    )
    assert code == 0, (lines, err)
    account = str(venue.accounts["fund"])
    reversal = ["operator", "reversal", "--account", account, "--serial", VERRA.serial_string]
    code, lines, err = tonne(capsys, *reversal, *venue.args("operator"))
    assert code == 0, err
    assert lines == [
        f"cancelled {VERRA.serial_string} (VCS1340 2020, {VERRA.quantity} t) "
        f"from account {account}: 0 orders cancelled"
    ]
    code, lines, _ = tonne(capsys, *reversal, *venue.args("operator"))
    assert code == 1 and lines[0].startswith("refused ")
    code, lines, _ = tonne(
        capsys,
        "operator",
        "reversal",
        "--account",
        account,
        "--serial",
        "not a serial",
        *venue.args("operator"),
    )
    assert code == 1 and lines[0].startswith("refused INVALID_SERIAL_BLOCK: not a serial")


def test_operator_commands_fail_clearly_without_a_server(tmp_path, capsys):
    key = key_file(tmp_path, (1, "k1", "s" * 64))
    code, lines, err = tonne(
        capsys, "operator", "suspend", "VCS1340", "--connect", "127.0.0.1:1", "--key", key
    )
    assert code == 2 and not lines and err.startswith("tonne operator: cannot connect to ")
    missing = str(Path(tmp_path) / "none.json")
    code, _, err = tonne(
        capsys, "operator", "suspend", "X", "--connect", "127.0.0.1:1", "--key", missing
    )
    assert code == 2 and "key file" in err


def test_effective_times_are_iso_8601_or_nanoseconds_exactly():
    assert when_ns("0") == 0
    assert when_ns("1700000000000000001") == 1_700_000_000_000_000_001
    assert when_ns("2026-07-01") == 1_782_864_000 * 10**9
    assert when_ns("2026-07-01T02:00:00+02:00") == when_ns("2026-07-01")
    assert when_ns("2026-07-01T00:00:00.000001") == 1_782_864_000 * 10**9 + 1_000
    assert when_text(when_ns("2026-07-01")) == "2026-07-01T00:00:00+00:00"
    assert when_text(0) == "at once"
    for bad in ("yesterday", "1969-12-31", "2026-13-01"):
        with pytest.raises(argparse.ArgumentTypeError):  # a usage error
            when_ns(bad)
    assert datetime.datetime.fromisoformat(when_text(10**18)).year == 2001
