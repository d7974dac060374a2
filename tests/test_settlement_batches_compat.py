"""A data folder written before registry batches opens, verifies and serves (issue 11).

The fixture (tests/fixtures/folder-before-batches, see its README) was written by the
previous version: serials keyed by project and vintage, canonical state `tonne-core-2`.
Its journal replays as it is, every serial in it stays batch-less (band 0), and its
snapshot's recorded hash is accepted in the format it was written in. Nothing is migrated
or rewritten.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from gateway.cli import main as cli
from gateway.durability.store import SQLiteStore
from settlement.build import compiled
from settlement.log import decode_record

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "folder-before-batches"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(FIXTURE / "tonne.db", folder / "tonne.db")
    return folder


def test_the_old_folder_verifies_as_it_was_written(tmp_path, capsys):
    folder = _folder(tmp_path)
    assert cli.main(["log", "verify", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK 67 records") and "journal 290 commands, 67 records linked" in out
    with SQLiteStore(folder, readonly=True) as store:
        bodies = [decode_record(r.record).movement() for r in store.records(0)]
    ranges = [r for b in bodies for r in getattr(b, "ranges", ())]
    assert ranges and all(r.batch == "" and len(r) == 4 for r in ranges)


def test_the_old_folder_recovers_from_its_snapshot_and_by_a_full_replay(tmp_path, capsys):
    folder = _folder(tmp_path)
    assert cli.main(["recover", "--check", str(folder), "--full"]) == 0
    out = capsys.readouterr().out
    if compiled():  # its snapshot is a pickle: set aside, saying why, and the journal replayed
        assert "snapshot used   none" in out, out
        assert "the compiled build does not read pickles" in out, out
    else:
        assert "snapshot used   seq 290" in out, out
    assert "(matches a snapshot at this seq)" in out
    assert "full replay     290 commands, state hash matches" in out
    assert "invariants      hold" in out


def test_the_old_folder_serves_and_takes_a_block_under_its_batch(tmp_path, capsys):
    """The old blocks stay batch-less, and keep their numbers: the same numbers under a
    registry batch of the same project and vintage are refused (a batch-less serial 7 may be
    any batch's serial 7). A real block the folder does not hold enters under its batch,
    over the wire as a registry serial string; the folder then verifies, old records and
    new together."""
    from gateway.cli.accounts import add_key
    from gateway.cli.serve import running
    from gateway.client.client import Client
    from gateway.wire import protocol as p

    folder = _folder(tmp_path)
    account, key_id, secret = add_key(folder, 2, frozenset({"trade", "fund"}))

    def deposit(client: Client, project: str, qty: int, serial: str) -> p.DepositCredits:
        return p.DepositCredits(
            project=project, vintage=2025, quantity=qty, serial=serial, req_id=client.next_req_id()
        )

    async def body() -> None:
        async with running(folder, tcp_port=0, ws_port=0) as ex:
            client = await Client.connect_tcp("127.0.0.1", ex.info["tcp_port"])
            await client.logon(key_id, secret)
            before = await client.holdings()
            (old,) = [h for h in before.holdings if h.project == "CAR1568"]
            assert old.serials and all(r.batch == "" == r.registry_serial for r in old.serials)
            first = old.serials[0].first
            same = f"CAR-1-MX-1568-42-1130-QR-2025-9680-{first} to {first + 9}"
            clash = await client.request(deposit(client, "CAR1568", 10, same))
            assert isinstance(clash, p.Reject) and clash.reason.value == "SERIALS_OVERLAP"
            new = "CAR-1-US-1335-31-983-KS-2025-9205-1 to 5000"
            done = await client.request(deposit(client, "CAR1335", 5000, new))
            assert isinstance(done, p.Done), done
            after = await client.holdings()
            (car,) = [h for h in after.holdings if h.project == "CAR1335"]
            assert [r.registry_serial for r in car.serials] == [new]
            await client.close()

    asyncio.run(body())
    assert cli.main(["log", "verify", "--data", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("OK 68 records")
    assert cli.main(["recover", "--check", str(folder), "--full"]) == 0
