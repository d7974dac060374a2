"""Shared harness of the gateway tests: a real server on loopback port 0, real clients.

The core is the settlement `Core`, every account opened and funded with cash and serial
blocks through the server's own operator pipeline. The journal is the real group-commit
journal on a real SQLite store in a temporary folder, wrapped so that tests can see what was
appended and hold a flush shut to prove that acks wait for the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from engine import Mitigation, Series
from gateway.client.client import Client
from gateway.durability.journal import Journal
from gateway.durability.store import SQLiteStore
from gateway.refdata import load_projects
from gateway.server.auth import Authenticator, KeyStore
from gateway.server.clock import Clock
from gateway.server.server import Server
from gateway.server.session import Limits
from settlement.commands import Deposit, DepositCredits, OpenAccount
from settlement.core import Core

SERIES = "VCS-1340-2020"
OTHER = "GS-11236-2021"
CASH = 10**9  # USD cents each account starts with
CREDITS = 100_000  # tonnes of each series each account starts with
TEST_TIMEOUT_S = 20.0


def test_series() -> list[Series]:
    return [
        Series(
            id=SERIES,
            standard="VCS",
            mitigation=Mitigation.AVOIDANCE,
            vintage=2020,
            project="VCS1340",
            tick=1,
            lot=1,
        ),
        Series(
            id=OTHER,
            standard="GS",
            mitigation=Mitigation.AVOIDANCE,
            vintage=2021,
            project="GS11236",
            tick=5,
            lot=1,
        ),
    ]


test_series.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def make_core() -> Any:
    projects = load_projects()
    return Core(test_series(), [projects["VCS1340"], projects["GS11236"]])


async def fund(server: Server, account: int) -> None:
    """Open `account` and give it cash and a serial block of each series (disjoint)."""
    for cmd in (
        OpenAccount(account=account),
        Deposit(account=account, currency="USD", amount=CASH),
        DepositCredits(
            account=account,
            project="VCS1340",
            vintage=2020,
            start=account * 10**6,
            end=account * 10**6 + CREDITS - 1,
            quantity=CREDITS,
        ),
        DepositCredits(
            account=account,
            project="GS11236",
            vintage=2021,
            start=account * 10**6,
            end=account * 10**6 + CREDITS - 1,
            quantity=CREDITS,
        ),
    ):
        events = await server.operator(cmd)
        assert events and type(events[-1]).__name__ != "Rejected", events


class RecordingJournal:
    """The real group-commit `Journal` on a real SQLite store in a temporary folder, which also
    records every command appended; `gate` (an Event) holds every flush until it is set, so a
    test can see that nothing is acknowledged before the commit."""

    def __init__(self, data_dir: Path) -> None:
        self.store = SQLiteStore(data_dir)
        self.real = Journal(self.store, snapshot_fork=False)
        self.commands: list[Any] = []
        self.flushes = 0
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    def start(self) -> None:
        self.real.start()

    def append(self, cmd: Any, records: list[Any]) -> int:
        self.commands.append(cmd)
        return self.real.append(cmd, records)

    async def flush(self) -> None:
        self.flushes += 1
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        await self.real.flush()

    async def close(self) -> None:
        await self.real.close()
        self.store.close()


class Env:
    """A running server and its clients; the clients share the server's clock, so that on a
    `ManualClock` their keepalive heartbeats too go out only as a test advances it."""

    def __init__(self, server: Server, journal: RecordingJournal, keys: dict[int, tuple[str, str]]):
        self.server = server
        self.journal = journal
        self.keys = keys
        self.clients: list[Client] = []

    async def tcp(self, account: int | None = None, **logon: Any) -> Client:
        c = await Client.connect_tcp("127.0.0.1", self.server.tcp_port, clock=self.server.clock)
        self.clients.append(c)
        if account is not None:
            key_id, secret = self.keys[account]
            await c.logon(key_id, secret, **logon)
        return c

    async def ws(self, account: int | None = None, **logon: Any) -> Client:
        url = f"ws://127.0.0.1:{self.server.ws_port}"
        c = await Client.connect_ws(url, clock=self.server.clock)
        self.clients.append(c)
        if account is not None:
            key_id, secret = self.keys[account]
            await c.logon(key_id, secret, **logon)
        return c

    async def connect(self, transport: str, account: int | None = None, **logon: Any) -> Client:
        return await (self.tcp if transport == "tcp" else self.ws)(account, **logon)


@contextlib.asynccontextmanager
async def running_server(
    accounts: int = 3,
    limits: Limits | None = None,
    permissions: Any = None,
    clock: Clock | None = None,
    core: Any = None,
) -> AsyncIterator[Env]:
    store = KeyStore(secrets.token_bytes(32))
    keys = {}
    for account in range(1, accounts + 1):
        kw = {} if permissions is None else {"permissions": permissions}
        keys[account] = store.add(account, **kw)
    with tempfile.TemporaryDirectory(prefix="tonne-gateway-test-") as data_dir:
        journal = RecordingJournal(Path(data_dir))
        journal.start()
        server = Server(
            core if core is not None else make_core(),
            journal,
            Authenticator(store, skew_s=5.0),
            limits=limits,
            clock=clock,
        )
        try:
            for account in keys:
                await fund(server, account)
            journal.commands.clear()
            await server.start("127.0.0.1", 0, 0)
            env = Env(server, journal, keys)
            try:
                yield env
            finally:
                for c in env.clients:
                    await c.close()
                await server.close()
        finally:
            if journal.gate is not None:
                journal.gate.set()
            await journal.close()


def run(body: Callable[[], Awaitable[None]], timeout_s: float = TEST_TIMEOUT_S) -> None:
    """Run one async test body on uvloop, bounded in time."""

    async def bounded() -> None:
        async with asyncio.timeout(timeout_s):
            await body()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(bounded())
