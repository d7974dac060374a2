"""A data folder written before the amount limits existed (issue 10): acknowledged deposits
whose totals pass 2^64 (or 2^53). `tonne log verify`, `tonne recover --check` and
`tonne serve` must each report it, naming the record and the command, and exit 1: never a
traceback. The folders are written by the real journal and store, with a core whose custody
limits are lifted (as the code before the limits behaved)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cli import main as cli
from gateway.cli.serve import serve
from gateway.durability.journal import Journal
from gateway.durability.recovery import save_genesis
from gateway.durability.store import SQLiteStore
from settlement.commands import Deposit, OpenAccount, Withdraw
from settlement.core import Core

TIMEOUT_S = 10.0


def _old_core() -> Core:
    core = Core()
    core.ledger.cash_total_max = core.ledger.credits_total_max = 1 << 80  # no limit at all
    return core


def _write(folder, commands, *, snapshot_after: int = 0, core: Core | None = None) -> None:
    """Journal `commands` through `core` (by default a limit-less one); with
    `snapshot_after`, a snapshot is taken after that many commands."""
    core = core if core is not None else _old_core()

    async def main() -> None:
        store = SQLiteStore(folder)
        save_genesis(store)
        journal = Journal(store, core=core, snapshot_every=10**9, snapshot_fork=False)
        for i, cmd in enumerate(commands, 1):
            core.apply(cmd)
            journal.append(cmd, core.drain_records())
            if i == snapshot_after:
                await asyncio.wait_for(journal.flush(), TIMEOUT_S)
                assert journal.snapshot_now()
            await asyncio.wait_for(journal.flush(), TIMEOUT_S)
        await journal.close()
        store.close()

    asyncio.run(main())


def _five_times_2_to_the_62(ts: int = 1) -> list:
    opened = [OpenAccount(account=a, ts=ts) for a in range(1, 6)]
    return opened + [
        Deposit(account=a, currency="USD", amount=2**62, ref=f"d{a}", ts=ts + 1)
        for a in range(1, 6)
    ]


def _tools(folder, capsys) -> dict[str, tuple[int, str]]:
    """Each tool's exit status and what it printed (stdout and stderr)."""
    out = {}
    for name, argv in {
        "log verify": ["log", "verify", "--data", str(folder)],
        "recover --check": ["recover", "--check", str(folder)],
        "recover --check --full": ["recover", "--check", str(folder), "--full"],
    }.items():
        code = cli.main(argv)
        captured = capsys.readouterr()
        out[name] = (code, captured.out + captured.err)

    async def serving() -> int:
        return await asyncio.wait_for(
            serve(folder, tcp_port=0, ws_port=0, ready=lambda info: None), TIMEOUT_S
        )

    code = asyncio.run(serving())
    captured = capsys.readouterr()
    out["serve"] = (code, captured.out + captured.err)
    return out


@pytest.fixture(scope="module")
def beyond_2_to_the_64(tmp_path_factory):
    """Five accounts at 2^62 USD each: every balance in range, the sum past 2^64."""
    folder = tmp_path_factory.mktemp("over64")
    _write(folder, _five_times_2_to_the_62())
    return folder


def test_each_tool_refuses_a_folder_whose_cash_total_passes_2_to_the_64(beyond_2_to_the_64, capsys):
    results = _tools(beyond_2_to_the_64, capsys)
    for tool, (code, text) in results.items():
        assert code == 1, (tool, text)
        assert "Traceback" not in text and "OverflowError" not in text, (tool, text)
    assert "BAD at record 1" in results["log verify"][1]
    assert "USD in custody" in results["log verify"][1]
    for tool in ("recover --check", "recover --check --full", "serve"):
        text = results[tool][1]
        assert "settlement log record seq 1" in text, (tool, text)
        assert "journal record seq 6 is over a limit" in text, (tool, text)  # the 1st deposit
        assert "cash_total_max" in text, (tool, text)


def test_a_snapshot_holding_totals_past_the_limits_is_set_aside_and_the_command_named(
    tmp_path, capsys
):
    """Three accounts at 2^62 (a sum the old code could hash, so it wrote a snapshot),
    then a withdrawal: the snapshot does not restore, and the replay from genesis names the
    first deposit the limits refuse."""
    commands = _five_times_2_to_the_62()[:3] + [
        Deposit(account=a, currency="USD", amount=2**62, ref=f"d{a}", ts=2) for a in (1, 2, 3)
    ]
    commands.append(Withdraw(account=1, currency="USD", amount=5, ref="w", ts=3))
    _write(tmp_path, commands, snapshot_after=6)
    with SQLiteStore(tmp_path, readonly=True) as store:
        assert [s.seq for s in store.snapshots()] == [6]
    results = _tools(tmp_path, capsys)
    for tool, (code, text) in results.items():
        assert code == 1, (tool, text)
        assert "Traceback" not in text, (tool, text)
    text = results["recover --check"][1]
    assert "journal record seq 4 is over a limit" in text, text
    assert "BAD at record 1" in results["log verify"][1]


def test_a_folder_within_the_limits_still_opens(tmp_path, capsys):
    """The same tools on a folder whose totals are within the limits (five deposits of
    2^50: 5 x 2^50 < 2^53 - 1), with a snapshot: all pass."""
    commands = _five_times_2_to_the_62()[:5] + [
        Deposit(account=a, currency="USD", amount=2**50, ref=f"d{a}", ts=2) for a in range(1, 6)
    ]
    _write(tmp_path, commands, snapshot_after=7, core=Core())
    for argv in (
        ["log", "verify", "--data", str(tmp_path)],
        ["recover", "--check", str(tmp_path)],
        ["recover", "--check", str(tmp_path), "--full"],
    ):
        assert cli.main(argv) == 0, capsys.readouterr()
