"""`tonne custody`: cash and registry serial strings in and out of custody through a `fund`
key, against the code `tonne serve` runs (real store in a temporary folder, loopback port 0).
Every item prints what it did or why it was refused; nothing is sent while an item is refused
here; and `tonne load --connect` runs against accounts funded only by `tonne custody`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import custody_items
from gateway.cli import main as cli
from gateway.cli.accounts import add_key
from gateway.cli.load import choose_series
from gateway.cli.serve import serve
from gateway.client.client import Client
from gateway.refdata import DATA_DIR, load_serials
from gateway.wire import protocol as p
from settlement.registry import parse

ROWS = load_serials()
WAIT_S = 60.0  # the longest any server start, stop or query may take here
SERIALS_CSV = DATA_DIR / "serials.csv"


def row(contains: str) -> Any:
    (found,) = [r for r in ROWS if contains in r.serial_string]
    return found


VERRA = row("-VCS-VCU-1507-VER-ET-14-1340-")  # VCS1340 2020, 425 t
GS_VER = row("GS11236-16-2024")
CDM_2017 = row("RW-5-1459975")  # carries no project or vintage: GS4823 2017
ACR = row("ACR-FR-1129-2025-2917-30932")
CAR = row("QR-2025-9680-1 to")
ART = row("ART-GY-102-2021-11-2759599")
FCPF = row("FCPF-CI-130-2023-20-")
CDC_2009 = [r for r in ROWS if r.serial_string == "CDC_1_1_1_321_14_1_2009"][1]  # 2262..4425
CDC_2008 = row("CDC_1_1_1_321_14_1_2008")
CAR_9205, CAR_9659 = row("KS-2025-9205-"), row("KS-2025-9659-")  # CAR1335 2025, both from 1
ACR_680 = row("ACR-CA-680-2022-2677-58730")
ACR_407 = row("ACR-US-407-2025-2899-")


# -- a server on loopback, in a thread of its own ------------------------------------------


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[dict[str, Any]]:
    """`tonne serve`'s code on ports 0 in a thread; yields its ready line, stops it after."""
    ready: queue.Queue[dict[str, Any] | None] = queue.Queue()
    held: dict[str, Any] = {}

    async def body() -> int:
        held["loop"], held["stop"] = asyncio.get_running_loop(), asyncio.Event()
        return await serve(data_dir, tcp_port=0, ws_port=0, ready=ready.put, stop=held["stop"])

    def thread() -> None:
        try:
            held["code"] = asyncio.run(body())
        finally:
            ready.put(None)  # never leave the test waiting for a server that failed

    t = threading.Thread(target=thread, name="tonne-serve", daemon=True)
    t.start()
    info = ready.get(timeout=WAIT_S)
    assert info is not None, "the server did not start"
    try:
        yield info
    finally:
        held["loop"].call_soon_threadsafe(held["stop"].set)
        t.join(timeout=WAIT_S)
        assert not t.is_alive() and held["code"] == 0


@dataclass
class Exchange:
    info: dict[str, Any]
    keys: dict[str, tuple[int, str, str]]

    @property
    def tcp(self) -> str:
        return f"127.0.0.1:{self.info['tcp_port']}"


FUND_ACCOUNTS = ("cash", "registries", "car", "duplicate", "withdraw", "refusals", "ws", "other")


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """One server for the tests that each work in an account of their own, on serial blocks
    no other test here deposits (the constants above)."""
    data = tmp_path_factory.mktemp("custody")
    keys = {name: add_key(data, permissions=frozenset({"fund"})) for name in FUND_ACCOUNTS}
    keys["trade_only"] = add_key(data, permissions=frozenset({"trade"}))
    with serving(data) as info:
        yield Exchange(info, keys)


def key_file(folder: Path, key: tuple[int, str, str], name: str = "key.json") -> str:
    account, key_id, secret = key
    path = folder / name
    path.write_text(json.dumps({"account": account, "key_id": key_id, "secret": secret}) + "\n")
    return str(path)


def custody(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """`tonne custody ARGS`: (exit status, stdout lines, stderr)."""
    code = cli.main(["custody", *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def state(ex: Exchange, name: str) -> tuple[p.Balances, p.Holdings]:
    """The account's balances and holdings, asked over a session of its own."""
    _, key_id, secret = ex.keys[name]

    async def body() -> tuple[p.Balances, p.Holdings]:
        c = await Client.connect_tcp("127.0.0.1", ex.info["tcp_port"])
        try:
            await c.logon(key_id, secret)
            return await c.balances(), await c.holdings()
        finally:
            await c.close()

    return asyncio.run(asyncio.wait_for(body(), WAIT_S))


def cash_of(balances: p.Balances) -> dict[str, int]:
    return {c.currency: c.total for c in balances.cash if c.total}


def credits_of(holdings: p.Holdings) -> dict[tuple[str, int], list[str]]:
    return {
        (h.project, h.vintage): [r.registry_serial for r in h.serials] for h in holdings.holdings
    }


def closed_port() -> str:
    """A loopback port nothing listens on: a run that connected would fail with status 2."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def offline(tmp_path: Path) -> list[str]:
    """--connect and --key for runs that must refuse before they connect."""
    return ["--connect", closed_port(), "--key", key_file(tmp_path, (7, "k-none", "00" * 32))]


# -- cash ----------------------------------------------------------------------------------


def test_cash_in_major_units_is_deposited_and_withdrawn_as_exact_minor_units(
    exchange, tmp_path, capsys
):
    key = key_file(tmp_path, exchange.keys["cash"])
    n = exchange.keys["cash"][0]
    code, lines, _ = custody(
        capsys,
        *("deposit", "--connect", exchange.tcp, "--key", key),
        *("--cash", "USD", "500000.00", "--cash", "usd", "0.1", "--cash", "HKD", "12"),
        *("--cash", "CNY", "0.05"),
    )
    assert code == 0
    assert lines == [
        f"deposited 500000.00 USD (50000000 minor units) to account {n}",
        f"deposited 0.10 USD (10 minor units) to account {n}",
        f"deposited 12.00 HKD (1200 minor units) to account {n}",
        f"deposited 0.05 CNY (5 minor units) to account {n}",
    ]
    assert cash_of(state(exchange, "cash")[0]) == {"USD": 50_000_010, "HKD": 1200, "CNY": 5}

    code, lines, _ = custody(
        capsys,
        *("withdraw", "--connect", exchange.tcp, "--key", key, "--minor-units"),
        *("--cash", "USD", "10", "--cash", "HKD", "200"),
    )
    assert code == 0
    assert lines == [
        f"withdrew 0.10 USD (10 minor units) from account {n}",
        f"withdrew 2.00 HKD (200 minor units) from account {n}",
    ]
    assert cash_of(state(exchange, "cash")[0]) == {"USD": 50_000_000, "HKD": 1000, "CNY": 5}


@pytest.mark.parametrize(
    "currency, amount, minor, reason, why",
    [
        ("USD", "0.001", False, "INVALID_AMOUNT", "3 decimals, and USD has 2"),
        ("USD", "-5", False, "INVALID_AMOUNT", "a negative amount"),
        ("USD", "-0.50", True, "INVALID_AMOUNT", "a negative amount"),
        ("USD", "0.00", False, "INVALID_AMOUNT", "a zero amount"),
        ("USD", "1e5", False, "INVALID_AMOUNT", "not a decimal amount"),
        ("USD", "12.", False, "INVALID_AMOUNT", "not a decimal amount"),
        ("USD", "1,000", False, "INVALID_AMOUNT", "not a decimal amount"),
        ("USD", "\u0663", False, "INVALID_AMOUNT", "not a decimal amount"),  # an Arabic 3
        ("USD", "12.5", True, "INVALID_AMOUNT", "not a whole number of minor units"),
        ("USD", "1" * 41, False, "INVALID_AMOUNT", "longer than 40 characters"),
        ("USD", "90071992547409.92", False, "LIMIT_EXCEEDED", "above 9007199254740991"),
        ("EUR", "5", False, "UNKNOWN_CURRENCY", "give --minor-units"),
        ("US$", "5", False, "UNKNOWN_CURRENCY", "not a currency code"),
    ],
)
def test_an_amount_that_is_not_exact_minor_units_is_refused_and_nothing_is_sent(
    offline, capsys, currency, amount, minor, reason, why
):
    extra = ["--minor-units"] if minor else []
    code, lines, _ = custody(
        capsys, "deposit", *offline, *extra, "--cash", currency, amount, "--cash", "USD", "1"
    )
    assert code == 1  # not 2: it never tried to connect
    assert lines[0].startswith(f"refused {reason}: {amount} {currency}: ") and why in lines[0]
    assert lines[1].startswith("not sent ") and "another item is refused" in lines[1]


def test_the_largest_amount_is_exact_in_major_and_minor_units():
    top = 2**53 - 1
    assert custody_items.cash_item("USD", "90071992547409.91", False) == (
        custody_items.Cash("USD", top, 2)
    )
    assert custody_items.cash_item("HKD", str(top), True) == custody_items.Cash("HKD", top, 2)
    assert custody_items.cash_item("USD", "007.5", False) == custody_items.Cash("USD", 750, 2)


# -- credits by serial string --------------------------------------------------------------


def test_serial_strings_of_every_registry_are_read_off_the_string_and_deposited(
    exchange, tmp_path, capsys
):
    key = key_file(tmp_path, exchange.keys["registries"])
    n = exchange.keys["registries"][0]
    code, lines, _ = custody(
        capsys,
        *("deposit", "--connect", exchange.tcp, "--key", key, "--ref", "transfer 4711"),
        *("--serial", VERRA.serial_string, "--serial", GS_VER.serial_string),
        *("--serial", CDM_2017.serial_string, "--project", "GS4823", "--vintage", "2017"),
        *("--serial", ACR.serial_string, "--serial", CAR.serial_string),
        *("--serial", ART.serial_string, "--serial", FCPF.serial_string),
        *("--serial", CDC_2009.serial_string, "--start", "2262", "--end", "4425"),
        *("--serial", "CDC_1_1_1_321_14_1_2008 1216 to 1283"),
    )
    assert code == 0, lines
    blocks = [VERRA, GS_VER, CDM_2017, ACR, CAR, ART, FCPF, CDC_2009, CDC_2008]
    written = [
        r.serial_string if r.registry != "CERCARBONO" else f"{r.serial_string} {r.start} to {r.end}"
        for r in blocks
    ]
    assert lines == [
        f"deposited {s} ({r.project} {r.vintage}, {r.quantity} t) to account {n}"
        for s, r in zip(written, blocks, strict=True)
    ]
    held = credits_of(state(exchange, "registries")[1])
    assert held == {(r.project, r.vintage): [s] for s, r in zip(written, blocks, strict=True)}


def test_two_car_blocks_of_one_project_and_vintage_that_share_numbers_are_both_deposited(
    exchange, tmp_path, capsys
):
    key = key_file(tmp_path, exchange.keys["car"])
    code, lines, _ = custody(
        capsys,
        *("deposit", "--connect", exchange.tcp, "--key", key),
        *("--serial", CAR_9205.serial_string, "--serial", CAR_9659.serial_string),
    )
    assert code == 0 and [line.split(" (")[0] for line in lines] == [
        f"deposited {CAR_9205.serial_string}",
        f"deposited {CAR_9659.serial_string}",
    ]
    (holding,) = state(exchange, "car")[1].holdings
    assert (holding.project, holding.vintage, holding.available) == ("CAR1335", 2025, 12_275)
    assert [(r.first, r.last) for r in holding.serials] == [(1, 5000), (1, 7275)]


def test_a_block_already_in_custody_is_refused_by_the_server_with_serials_overlap(
    exchange, tmp_path, capsys
):
    key = key_file(tmp_path, exchange.keys["duplicate"])
    deposit = ("deposit", "--connect", exchange.tcp, "--key", key)
    assert custody(capsys, *deposit, "--serial", ACR_680.serial_string)[0] == 0
    code, lines, _ = custody(capsys, *deposit, "--serial", ACR_680.serial_string)
    assert code == 1
    (line,) = lines
    assert line.startswith(f"refused SERIALS_OVERLAP: {ACR_680.serial_string}: ")
    held = credits_of(state(exchange, "duplicate")[1])
    assert held == {("ACR680", 2022): [ACR_680.serial_string]}


def test_a_held_sub_range_is_withdrawn_back_out_in_the_registrys_own_form(
    exchange, tmp_path, capsys
):
    key = key_file(tmp_path, exchange.keys["withdraw"])
    n = exchange.keys["withdraw"][0]
    target = ("--connect", exchange.tcp, "--key", key)
    assert custody(capsys, "deposit", *target, "--serial", ACR_407.serial_string)[0] == 0
    part = "ACR-US-407-2025-2899-1001 to 2000"
    code, lines, _ = custody(capsys, "withdraw", *target, "--serial", part)
    assert (code, lines) == (0, [f"withdrew {part} (ACR407 2025, 1000 t) from account {n}"])
    assert credits_of(state(exchange, "withdraw")[1]) == {
        ("ACR407", 2025): ["ACR-US-407-2025-2899-1 to 1000", "ACR-US-407-2025-2899-2001 to 179663"]
    }
    code, lines, _ = custody(capsys, "withdraw", *target, "--serial", part)
    assert code == 1 and lines[0].startswith(f"refused SERIALS_NOT_HELD: {part}: ")


@pytest.mark.parametrize(
    "action, items, reason",
    [
        ("withdraw", ["--cash", "USD", "5.00"], "INSUFFICIENT_CASH"),
        ("withdraw", ["--serial", FCPF.serial_string.replace("-20-", "-99-")], "SERIALS_NOT_HELD"),
        ("deposit", ["--serial", "ACR-US-9999-2025-1-1 to 10"], "UNKNOWN_PROJECT"),
        (
            "deposit",  # a CDM string said to be of a Verra project: the server reads it by VERRA
            ["--serial", CDM_2017.serial_string, "--project", "VCS1340", "--vintage", "2020"],
            "INVALID_SERIAL_BLOCK",
        ),
        ("deposit", ["--minor-units", "--cash", "EUR", "500"], "UNKNOWN_CURRENCY"),
    ],
)
def test_the_servers_typed_rejection_is_printed_and_changes_nothing(
    exchange, tmp_path, capsys, action, items, reason
):
    key = key_file(tmp_path, exchange.keys["refusals"])
    code, lines, _ = custody(capsys, action, "--connect", exchange.tcp, "--key", key, *items)
    assert code == 1
    (line,) = lines
    assert line.startswith(f"refused {reason}: ")
    balances, holdings = state(exchange, "refusals")
    assert cash_of(balances) == {} and holdings.holdings == []


def test_a_key_without_fund_is_refused_not_permitted(exchange, tmp_path, capsys):
    key = key_file(tmp_path, exchange.keys["trade_only"])
    code, lines, _ = custody(
        capsys,
        *("deposit", "--connect", exchange.tcp, "--key", key),
        *("--cash", "USD", "1", "--serial", GS_VER.serial_string.replace("30307", "1")),
    )
    assert code == 1
    assert len(lines) == 2 and all(
        line.startswith("refused NOT_PERMITTED: ") and "lacks 'fund'" in line for line in lines
    )


def test_custody_works_over_websocket_as_over_tcp(exchange, tmp_path, capsys):
    key = key_file(tmp_path, exchange.keys["ws"])
    gs = row("GS1-1-IN-GS7080-")
    code, lines, _ = custody(
        capsys,
        *("deposit", "--ws", "--connect", f"127.0.0.1:{exchange.info['ws_port']}", "--key", key),
        *("--cash", "HKD", "1.5", "--serial", gs.serial_string),
    )
    assert code == 0 and len(lines) == 2
    balances, holdings = state(exchange, "ws")
    assert cash_of(balances) == {"HKD": 150}
    assert credits_of(holdings) == {("GS7080", 2023): [gs.serial_string]}


# -- the whole catalogue by CSV ------------------------------------------------------------


def test_the_whole_of_data_serials_csv_is_deposited_row_by_row(tmp_path, capsys):
    key = add_key(tmp_path / "data", permissions=frozenset({"fund"}))
    with serving(tmp_path / "data") as info:
        ex = Exchange(info, {"csv": key})
        code, lines, _ = custody(
            capsys,
            *("deposit", "--connect", ex.tcp, "--key", key_file(tmp_path, key)),
            *("--csv", str(SERIALS_CSV)),
        )
        assert code == 0
        assert len(lines) == len(ROWS) == 77
        assert all(line.startswith("deposited ") for line in lines)
        holdings = state(ex, "csv")[1].holdings
    assert sum(h.available for h in holdings) == sum(r.quantity for r in ROWS)
    held = {(r.batch, r.first, r.last) for h in holdings for r in h.serials}
    for r in ROWS:  # every row's serials, under its batch (adjacent rows of a batch merge)
        s = parse(r.registry, r.serial_string, r.start, r.end)
        assert any(b == s.batch and f <= s.first <= s.last <= e for b, f, e in held), r


# -- refused before anything is sent -------------------------------------------------------


@pytest.mark.parametrize(
    "serial, reason, why",
    [
        (["nope"], "INVALID_SERIAL_BLOCK", "in no registry's serial format"),
        ([ACR.serial_string.replace(" to ", "-")], "INVALID_SERIAL_BLOCK", "in no registry's"),
        ([ACR.serial_string.replace("30932", "99999")], "INVALID_SERIAL_BLOCK", "before its"),
        ([CDM_2017.serial_string, "--vintage", "2017"], "INVALID_SERIAL_BLOCK", "give --project"),
        ([CDM_2017.serial_string, "--project", "GS4823"], "INVALID_SERIAL_BLOCK", "give --vintag"),
        ([ACR.serial_string, "--project", "ACR1130"], "INVALID_SERIAL_BLOCK", "but --project"),
        ([ACR.serial_string, "--vintage", "2024"], "INVALID_SERIAL_BLOCK", "but --vintage says"),
        ([CDC_2009.serial_string], "INVALID_SERIAL_BLOCK", "needs its range"),
        ([ACR.serial_string, "--start", "30933"], "INVALID_SERIAL_BLOCK", "stated as 30933"),
        (
            [CDM_2017.serial_string, "--project", "G" * 257, "--vintage", "2017"],
            "UNKNOWN_PROJECT",
            "",
        ),
        ([ACR.serial_string + " " * 200], "INVALID_SERIAL_BLOCK", "longer than 200 bytes"),
    ],
)
def test_a_serial_that_does_not_read_is_refused_and_nothing_is_sent(
    offline, capsys, serial, reason, why
):
    code, lines, _ = custody(capsys, "deposit", *offline, "--cash", "USD", "1", "--serial", *serial)
    assert code == 1
    assert lines[0] == "not sent 1.00 USD: nothing is sent while another item is refused"
    assert lines[1].startswith(f"refused {reason}: {serial[0]}: ") and why in lines[1]


def test_items_of_one_run_that_overlap_are_refused_before_anything_is_sent(offline, capsys):
    part = "19385-941467400-941467500-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1"
    other_project = "19389-941467431-941467431-VCS-VCU-1-VER-BR-14-9999-01012020-31122020-1"
    code, lines, _ = custody(
        capsys,
        *("deposit", *offline, "--serial", VERRA.serial_string, "--serial", part),
        *("--serial", other_project, "--serial", CAR_9205.serial_string),
        *("--serial", CAR_9659.serial_string),  # the same numbers in another batch: fine
    )
    assert code == 1
    assert lines[0].startswith(f"not sent {VERRA.serial_string}: ")
    assert lines[1].startswith(f"refused SERIALS_OVERLAP: {part}: its serials overlap those of")
    # Verra numbers serials across the registry: another project's string overlaps too
    assert lines[2].startswith(f"refused SERIALS_OVERLAP: {other_project}: ")
    assert lines[3].startswith("not sent ") and lines[4].startswith("not sent ")


def write_csv(folder: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> str:
    columns = header or [*custody_items.CSV_COLUMNS, "source"]
    lines = [",".join(columns)] + [",".join(r.get(c, "") for c in columns) for r in rows]
    path = folder / "blocks.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def csv_row(r: Any, **changes: str) -> dict[str, str]:
    fields = {
        "project_id": r.project,
        "registry": r.registry,
        "vintage": str(r.vintage),
        "serial_string": r.serial_string,
        "block_start": str(r.start),
        "block_end": str(r.end),
        "quantity": str(r.quantity),
        "range_convention": r.convention,
        "source": "test",
    }
    return fields | changes


@pytest.mark.parametrize(
    "changes, reason, why",
    [
        ({"quantity": "4211"}, "INVALID_SERIAL_BLOCK", "quantity 4211, but 30932..35143 is 4212 t"),
        ({"project_id": "ACR1130"}, "INVALID_SERIAL_BLOCK", "but the row's project_id says"),
        ({"vintage": "2024"}, "INVALID_SERIAL_BLOCK", "but the row's vintage says 2024"),
        ({"vintage": "25"}, "INVALID_SERIAL_BLOCK", "vintage '25' is not a number"),
        ({"block_end": "35142"}, "INVALID_SERIAL_BLOCK", "stated as 30932..35142"),
        ({"quantity": ""}, "INVALID_SERIAL_BLOCK", "quantity are needed"),
        ({"registry": "ISOMETRIC"}, "UNKNOWN_REGISTRY", "no serial rules for registry"),
        ({"registry": "CAR"}, "INVALID_SERIAL_BLOCK", "(it is written as a ACR serial)"),
        ({"range_convention": "half_open"}, "INVALID_SERIAL_BLOCK", "must the row be"),
        ({"serial_string": "ACR-FR-1129"}, "INVALID_SERIAL_BLOCK", "not a ACR serial"),
    ],
)
def test_a_csv_row_that_disagrees_with_its_string_is_refused_and_nothing_is_sent(
    offline, tmp_path, capsys, changes, reason, why
):
    path = write_csv(tmp_path, [csv_row(CAR), csv_row(ACR, **changes)])
    code, lines, _ = custody(capsys, "deposit", *offline, "--csv", path)
    assert code == 1
    assert lines[0] == (
        f"not sent {path} line 2: {CAR.serial_string}: nothing is sent while another item "
        "is refused"
    )
    assert lines[1].startswith(f"refused {reason}: {path} line 3: ") and why in lines[1], lines


def test_a_cercarbono_row_needs_its_range_and_a_short_row_is_refused(offline, tmp_path, capsys):
    cdc = csv_row(CDC_2009, block_start="")
    short = "ACR1129,ACR,2025"
    path = write_csv(tmp_path, [cdc])
    Path(path).write_text(Path(path).read_text() + short + "\n")
    code, lines, _ = custody(capsys, "deposit", *offline, "--csv", path)
    assert code == 1
    assert lines[0].startswith(f"refused INVALID_SERIAL_BLOCK: {path} line 2: ")
    assert "needs its range" in lines[0]
    assert lines[1] == (
        f"refused INVALID_SERIAL_BLOCK: {path} line 3: not as many fields as the header"
    )


HEADER = ",".join(custody_items.CSV_COLUMNS).encode()


@pytest.mark.parametrize(
    "content, why",
    [
        (None, "No such file"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"project_id,registry,vintage\nACR1129,ACR,2025\n", "no column serial_string"),
        (HEADER + b"\n", "no rows"),
        (HEADER + b"\n" + b"y" * 200_000 + b"\n", "field larger than field limit"),
    ],
)
def test_a_csv_file_that_cannot_be_read_is_a_usage_error(offline, tmp_path, capsys, content, why):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    code, lines, err = custody(capsys, "deposit", *offline, "--csv", str(path))
    assert (code, lines) == (2, [])
    assert err.startswith(f"tonne custody: {path}: ") and why in err


def test_the_csv_limits_refuse_the_whole_file(offline, tmp_path, capsys, monkeypatch):
    path = write_csv(tmp_path, [csv_row(r) for r in ROWS[:4]])
    monkeypatch.setattr(custody_items, "ITEMS_MAX", 3)
    code, _, err = custody(capsys, "deposit", *offline, "--csv", path)
    assert code == 2 and "more than 3 rows" in err
    monkeypatch.setattr(custody_items, "ITEMS_MAX", 4)  # four rows, and one --cash: five items
    code, _, err = custody(capsys, "deposit", *offline, "--csv", path, "--cash", "USD", "1")
    assert code == 2 and "5 items: a run moves at most 4" in err
    monkeypatch.setattr(custody_items, "CSV_BYTES_MAX", 100)
    code, _, err = custody(capsys, "deposit", *offline, "--csv", path)
    assert code == 2 and "larger than 100 bytes" in err


# -- usage, key file, connection -----------------------------------------------------------


@pytest.mark.parametrize(
    "args, why",
    [
        ([], "nothing to move"),
        (["--project", "GS4823", "--serial", "x"], "give it after the --serial it is for"),
        (["--serial", "x", "--start", "1", "--start", "2"], "--start given twice"),
        (["--serial", "x", "--vintage", "20201"], "4 digits at most"),
        (["--serial", "x", "--end", "-5"], "15 digits at most, got '-5'"),
        (["--serial", "x", "--end", "1" * 16], "15 digits at most"),
        (["--cash", "USD"], "expected 2 arguments"),
        (["--cash", "USD", "1", "--timeout-s", "0"], "--timeout-s must be positive"),
        (["--cash", "USD", "1", "--timeout-s", "nan"], "--timeout-s must be positive"),
        (["--cash", "USD", "1", "--ref", "r" * 257], "--ref is at most 256"),
    ],
)
def test_a_usage_error_exits_2_with_the_reason(offline, capsys, args, why):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["custody", "deposit", *offline, *args])
    assert exit_.value.code == 2 and why in capsys.readouterr().err


@pytest.mark.parametrize("connect", ["localhost", "127.0.0.1:", ":7001", "h:0", "h:70000"])
def test_connect_must_be_host_and_port(tmp_path, capsys, connect):
    key = key_file(tmp_path, (1, "k", "s"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["custody", "deposit", "--connect", connect, "--key", key, "--cash", "USD", "1"])
    assert exit_.value.code == 2 and "not HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, why",
    [
        (None, "No such file"),
        ("", "holds 0 lines"),
        ('{"key_id": "a", "secret": "b"}\n{"key_id": "c", "secret": "d"}\n', "holds 2 lines"),
        ("key_id=a", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"key_id": "a"}', "needs string fields key_id and secret"),
        ('{"key_id": "a", "secret": "b", "account": "3"}', "account must be"),
    ],
)
def test_a_key_file_that_is_not_one_key_is_a_usage_error(tmp_path, capsys, text, why):
    path = tmp_path / "key.json"
    if text is not None:
        path.write_text(text)
    code, lines, err = custody(
        capsys, "deposit", "--connect", closed_port(), "--key", str(path), "--cash", "USD", "1"
    )
    assert (code, lines) == (2, []) and err.startswith("tonne custody: key file ") and why in err


def test_a_server_that_cannot_be_reached_exits_2(tmp_path, capsys):
    key = key_file(tmp_path, (1, "k", "s"))
    for transport in ([], ["--ws"]):
        code, lines, err = custody(
            capsys, "deposit", *transport, "--connect", closed_port(), "--key", key,
            "--cash", "USD", "1", "--timeout-s", "5",
        )  # fmt: skip
        assert (code, lines) == (2, []) and "cannot connect to" in err


def test_a_refused_logon_exits_2_and_sends_nothing(exchange, tmp_path, capsys):
    _, key_id, _ = exchange.keys["other"]
    for key, why in [
        ((0, "k-unknown", "00" * 32), "logon refused UNKNOWN_KEY"),
        ((0, key_id, "00" * 32), "logon refused BAD_SIGNATURE"),
    ]:
        path = key_file(tmp_path, key)
        code, lines, err = custody(
            capsys, "deposit", "--connect", exchange.tcp, "--key", path, "--cash", "USD", "1"
        )
        assert (code, lines) == (2, []) and why in err


def test_a_key_file_naming_another_account_than_the_servers_sends_nothing(
    exchange, tmp_path, capsys
):
    account, key_id, secret = exchange.keys["other"]
    path = key_file(tmp_path, (account + 100, key_id, secret))
    code, lines, err = custody(
        capsys, "deposit", "--connect", exchange.tcp, "--key", path, "--cash", "USD", "1"
    )
    assert (code, lines) == (2, [])
    assert f"names account {account + 100}, but the server logs this key on to account" in err
    assert cash_of(state(exchange, "other")[0]) == {}


def read_messages(conn: socket.socket, frames: p.FrameReader, n: int) -> list[Any]:
    got: list[Any] = []
    while len(got) < n:
        for body in frames.feed(conn.recv(1 << 16)):
            got += [m for m in p.decode_client_msgpack(body) if not isinstance(m, p.Heartbeat)]
    return got


@contextlib.contextmanager
def fake_server(after_logon: str) -> Iterator[str]:
    """A loopback peer that accepts the logon and reads one request, then closes the
    connection (`close`) or never answers (`silent`)."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT_S)
            frames = p.FrameReader(1 << 20)
            (logon,) = read_messages(conn, frames, 1)
            ack = p.LogonAck(
                account=7,
                session_id=1,
                heartbeat_s=10.0,
                idle_timeout_s=30.0,
                messages_per_s=100,
                frame_bytes_max=1 << 20,
                open_orders_max=10,
                cancel_on_disconnect=False,
                req_id=logon.req_id,
            )
            conn.sendall(p.encode_frame([ack]))
            read_messages(conn, frames, 1)
            if after_logon == "silent":
                done.wait(WAIT_S)

    t = threading.Thread(target=peer, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        t.join(WAIT_S)
        listener.close()


@pytest.mark.parametrize(
    "after_logon, why", [("close", "connection lost"), ("silent", "no answer within 0.5 s")]
)
def test_an_answer_that_does_not_come_leaves_that_item_unknown_and_the_rest_unsent(
    tmp_path, capsys, after_logon, why
):
    key = key_file(tmp_path, (7, "k", "s"))
    with fake_server(after_logon) as where:
        code, lines, _ = custody(
            capsys,
            *("deposit", "--connect", where, "--key", key, "--timeout-s", "0.5"),
            *("--cash", "USD", "1", "--cash", "USD", "2"),
        )
    assert code == 2
    assert lines[0].startswith("unknown 1.00 USD: ") and why in lines[0]
    assert "look at the account before retrying" in lines[0]
    assert lines[1] == "not sent 2.00 USD: the connection failed before it"


# -- tonne load against accounts funded by hand --------------------------------------------


def test_tonne_load_runs_against_accounts_funded_only_by_tonne_custody(tmp_path, capsys):
    """Accounts from `tonne accounts add`, cash and serials from `tonne custody`, then a short
    `tonne load --connect`: it finds the series its participants are funded for (not the
    first listed), trades it, and its end check holds."""
    data = tmp_path / "data"
    keys = []
    for _ in range(2):
        assert cli.main(["accounts", "add", "--data", str(data), "--permissions", "trade,fund",
                         "--json"]) == 0  # fmt: skip
        keys.append(capsys.readouterr().out.strip())
    keys_file = tmp_path / "keys.jsonl"
    keys_file.write_text("\n".join(keys) + "\n")
    # VCS1340's one real block, split between the two participants as two sub-ranges
    tail = "-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1"
    parts = [f"19385-941467007-941467200{tail}", f"19385-941467201-941467431{tail}"]
    load = ["load", "--keys", str(keys_file), "--participants", "2", "--seconds", "20"]
    with serving(data) as info:
        tcp = f"127.0.0.1:{info['tcp_port']}"
        assert cli.main([*load, "--connect", tcp]) == 2  # not funded yet: says so, runs nothing
        assert "fund them (`tonne custody deposit`)" in capsys.readouterr().err
        for i, (key, part) in enumerate(zip(keys, parts, strict=True)):
            (tmp_path / f"k{i}.json").write_text(key)
            code, lines, _ = custody(
                capsys,
                *("deposit", "--connect", tcp, "--key", str(tmp_path / f"k{i}.json")),
                *("--cash", "USD", "20000.00", "--serial", part),
            )
            assert code == 0 and len(lines) == 2, lines
        code = cli.main([*load, "--connect", tcp, "--orders", "120", "--seed", "3"])
        out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("series VCS-1340-2020\n") and "orders 120 " in out and ": OK" in out
    assert int(re.search(r"fills (\d+)", out)[1]) > 0, out
    assert cli.main(["log", "verify", "--data", str(data)]) == 0
    assert capsys.readouterr().out.startswith("OK ")


def _series(id_: str, project: str | None, vintage: int, currency: str = "USD") -> p.SeriesInfo:
    return p.SeriesInfo(id_, "VCS", "avoidance", vintage, project, currency, 5, 1, 1, 9, 50, False)


def test_a_remote_load_trades_the_first_series_every_participant_is_funded_for():
    listed = [
        _series("GEN-2020", None, 2020),
        _series("VCS-1-2020", "VCS1", 2020),
        _series("VCS-2-2021", "VCS2", 2021, "HKD"),
        _series("VCS-2-2020", "VCS2", 2020),
    ]

    def holdings(*held: tuple[str, int, int]) -> p.Holdings:
        return p.Holdings(account=1, holdings=[p.Holding(pr, v, n, 0, []) for pr, v, n in held])

    def balances(**cash: int) -> p.Balances:
        return p.Balances(account=1, cash=[p.CashBalance(c, n, 0) for c, n in cash.items()])

    both = holdings(("VCS1", 2020, 0), ("VCS2", 2021, 5), ("VCS2", 2020, 5))
    only_one = holdings(("VCS2", 2021, 5))
    chosen = choose_series(listed, "", [both, both], [balances(USD=1), balances(USD=1)])
    assert chosen == listed[3]  # VCS-1 has no credits available; VCS-2-2021 has no HKD
    assert choose_series(listed, "VCS-1-2020", [only_one], [balances()]) == listed[1]
    assert "fund them" in str(choose_series(listed, "", [both, only_one], [balances(USD=1)] * 2))
    assert "no series 'NOPE'" in str(choose_series(listed, "NOPE", [both], [balances()]))
