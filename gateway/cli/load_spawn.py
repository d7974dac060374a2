"""`tonne load --spawn`: `tonne serve` as a separate process on a fresh folder, funded.

`Spawned` starts `python -m gateway.cli.main serve --data DIR --tcp-port 0 --ws-port 0`
(or another command that prints the same ready line: a test's altered server) in a process
group of its own, reads its JSON ready line, and stops it with SIGTERM (SIGKILL to the group
if it has not exited within `STOP_TIMEOUT_S`), so that nothing outlives the load.
`provision` makes each participant's keys before the server starts: a `trade`/`retire` key
to trade with and a `fund` key of the same account, which `fund` uses, as `tonne custody
deposit` does, to deposit cash in every currency and a registry-style serial block of every
project series through the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cli.accounts import add_key
from gateway.client.client import Client, RequestRejected
from gateway.wire import protocol as p

SERVE = ("gateway.cli.main", "serve")
START_TIMEOUT_S = 60.0  # genesis, recovery and listening on a new folder
STOP_TIMEOUT_S = 30.0  # the closing commit and snapshot
STDERR_TAIL_BYTES = 2000
CASH_EACH = 10**10  # minor units of each currency per participant
CREDITS_EACH = 1_000_000  # tonnes of each project series per participant
SERIAL_BASE = 10**13  # synthetic serials start here: above every real block's numbers
# the server's per-session rate limit, raised: the load measures the venue, not the limit
SERVE_ARGS = ("--messages-per-s", "10000000", "--burst-messages", "10000000")
ROOT = Path(__file__).resolve().parents[2]  # so that a child finds this checkout's modules


@dataclass(frozen=True)
class Key:
    account: int
    key_id: str
    secret: str


class Spawned:
    """A server process on `data_dir`; `start()` returns its ready line."""

    def __init__(self, data_dir: Path, command: Sequence[str] = SERVE, args: Sequence[str] = ()):
        self.data_dir = data_dir
        self.command = list(command)
        self.args = [*SERVE_ARGS, *args]
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self.returncode: int | None = None

    @property
    def stderr_path(self) -> Path:
        return self.data_dir / "serve.stderr"

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(errors="replace")[-STDERR_TAIL_BYTES:]
        return ""

    async def start(self) -> dict[str, Any]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with self.stderr_path.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *self.command,
                "--data",
                str(self.data_dir),
                "--tcp-port",
                "0",
                "--ws-port",
                "0",
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
                start_new_session=True,  # its own process group: signals reach all of it
            )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line:
            await self.stop()
            raise RuntimeError(
                f"`{' '.join(self.command)}` did not start (exit {self.returncode}): "
                f"{self.stderr_tail()}"
            )
        self.info = json.loads(line)
        return self.info

    async def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL to the whole group; the exit status."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):  # a writer child left behind
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout is not None:
            with contextlib.suppress(Exception):
                await proc.stdout.read()
        self.returncode = proc.returncode
        self.proc = None
        return self.returncode


def provision(data_dir: Path, n: int) -> list[tuple[Key, Key]]:
    """`n` accounts, each with a trading key and a `fund` key: [(trade, fund)]."""
    keys = []
    for _ in range(n):
        account, key_id, secret = add_key(data_dir, permissions=frozenset({"trade", "retire"}))
        _, fund_id, fund_secret = add_key(data_dir, account, frozenset({"fund"}))
        keys.append((Key(account, key_id, secret), Key(account, fund_id, fund_secret)))
    return keys


def batches() -> dict[tuple[str, int], tuple[str, str]]:
    """(project, vintage) -> (registry, a real issuance batch of it), from data/serials.csv."""
    from gateway.refdata import load_serials
    from settlement import registry

    out: dict[tuple[str, int], tuple[str, str]] = {}
    for row in load_serials():
        with contextlib.suppress(registry.SerialFormatError):
            batch = registry.parse(row.registry, row.serial_string, row.start, row.end).batch
            if batch:
                out.setdefault((row.project, row.vintage), (row.registry, batch))
    return out


def deposits(
    traded: list[p.SeriesInfo], index: int, participants: int, req_id: Any
) -> list[p.Deposit | p.DepositCredits]:
    """What participant `index` of `participants` is given: `CASH_EACH` of every currency
    traded, and `CREDITS_EACH` serials of every series in a registry-style block of a real
    batch of its project and vintage (numbered from `SERIAL_BASE`, disjoint for every
    participant and series, so none overlaps, even in Verra's one registry-wide numbering)."""
    from settlement import registry

    known = batches()
    msgs: list[p.Deposit | p.DepositCredits] = [
        p.Deposit(currency=cur, amount=CASH_EACH, req_id=req_id())
        for cur in sorted({s.currency for s in traded})
    ]
    for k, s in enumerate(traded):
        assert s.project is not None
        first = SERIAL_BASE + (k * participants + index) * CREDITS_EACH
        last = first + CREDITS_EACH - 1
        found = known.get((s.project, s.vintage))
        if found is None:  # no registry batch known: a block under project and vintage only
            msgs.append(
                p.DepositCredits(
                    project=s.project,
                    vintage=s.vintage,
                    quantity=CREDITS_EACH,
                    start=first,
                    end=last,
                    ref="tonne load",
                    req_id=req_id(),
                )
            )
            continue
        reg, batch = found
        msgs.append(
            p.DepositCredits(
                project=s.project,
                vintage=s.vintage,
                quantity=CREDITS_EACH,
                serial=registry.format_serial(reg, batch, first, last),
                ref="tonne load",
                req_id=req_id(),
            )
        )
    return msgs


async def fund(
    connect: Any, fund_keys: list[Key], traded: list[p.SeriesInfo], timeout_s: float = 10.0
) -> None:
    """Deposit through each `fund` key (`connect()` opens a client); raises on a refusal."""

    async def one(index: int, key: Key) -> None:
        client: Client = await connect()
        try:
            await client.logon(key.key_id, key.secret)
            for msg in deposits(traded, index, len(fund_keys), client.next_req_id):
                answer = await client.request(msg, timeout_s)
                if isinstance(answer, p.Reject):
                    raise RequestRejected(answer)
        finally:
            await client.close()

    await asyncio.gather(*[one(i, k) for i, k in enumerate(fund_keys)])


__all__ = ["CASH_EACH", "CREDITS_EACH", "Key", "Spawned", "deposits", "fund", "provision"]
