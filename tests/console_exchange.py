"""An exchange with its operator console, for the console's tests (no tests here).

`console_exchange(tmp)` runs `running()` as `tonne serve --http-port 0` does, with an
operator key, a key without the operator permission, and two funded trading accounts;
`Market` trades between them (a resting sell, a crossing buy, a bad price, a
buy-and-retire order) so that the log, the books and the certificates have something real.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.commands import Side, TimeInForce
from gateway.cli.accounts import add_key
from gateway.cli.load import tradable
from gateway.cli.load_participants import start_price
from gateway.cli.load_spawn import Key, fund, provision
from gateway.cli.serve import HttpSettings, running
from gateway.client.client import Client, RequestRejected
from gateway.wire import protocol as p

TOKEN = "console-test-token-0123456789"


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class Exchange:
    ex: Any  # gateway.cli.serve.Running
    base: str  # http://127.0.0.1:PORT
    operator: Key
    not_operator: Key
    traders: list[Key]
    series: p.SeriesInfo
    data_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return basic(self.operator.key_id, self.operator.secret)

    async def client(self, key: Key) -> Client:
        c = await Client.connect_tcp("127.0.0.1", self.ex.info["tcp_port"])
        await c.logon(key.key_id, key.secret)
        return c


@contextlib.asynccontextmanager
async def console_exchange(data_dir: Path) -> AsyncIterator[Exchange]:
    keys = provision(data_dir, 2)
    account, op_id, op_secret = add_key(data_dir, permissions=frozenset({"operator"}))
    _, no_id, no_secret = add_key(data_dir, permissions=frozenset({"trade"}))
    http = HttpSettings(port=0, token=TOKEN)
    async with running(data_dir, tcp_port=0, ws_port=0, http=http, keys_check_s=0.05) as ex:
        tcp = ex.info["tcp_port"]

        async def opener() -> Client:
            return await Client.connect_tcp("127.0.0.1", tcp)

        c = await opener()
        await c.logon(keys[0][0].key_id, keys[0][0].secret)
        traded = tradable((await c.series()).series)
        await c.close()
        await fund(opener, [f for _, f in keys], traded)
        yield Exchange(
            ex,
            f"http://127.0.0.1:{ex.info['http_port']}",
            Key(account, op_id, op_secret),
            Key(0, no_id, no_secret),
            [t for t, _ in keys],
            traded[0],
            data_dir,
        )


@contextlib.asynccontextmanager
async def seller_and_buyer(x: Exchange) -> AsyncIterator[tuple[Client, Client]]:
    """The two traders, logged on; both closed at the end."""
    seller, buyer = await x.client(x.traders[0]), await x.client(x.traders[1])
    try:
        yield seller, buyer
    finally:
        await seller.close()
        await buyer.close()


async def trade(x: Exchange, qty: int = 2) -> dict[str, int]:
    """A resting sell, a crossing buy (one trade), one order at a price off the tick (one
    INVALID_PRICE reject): what was sent, by kind."""
    s = x.series
    async with seller_and_buyer(x) as (seller, buyer):
        price = start_price(s)
        await seller.place(s.id, Side.SELL, qty=qty * s.lot, price=price)
        await buyer.place(s.id, Side.BUY, qty=qty * s.lot, price=price, tif=TimeInForce.IOC)
        bad = price + 1 if s.tick > 1 else 0
        with contextlib.suppress(RequestRejected):
            await buyer.place(s.id, Side.BUY, qty=s.lot, price=bad)
        await buyer.heartbeat()
        await seller.heartbeat()
    return {"new_order": 3, "trades": 1, "rejects": 1}


async def buy_to_retire(x: Exchange) -> str:
    """A resting sell and a buy-and-retire IOC order against it: the certificate's id."""
    s = x.series
    async with seller_and_buyer(x) as (seller, buyer):
        price = start_price(s)
        await seller.place(s.id, Side.SELL, qty=s.lot, price=price)
        retire = p.RetireFor(beneficiary="Console Test Airline, flights 2026")
        await buyer.place(
            s.id, Side.BUY, qty=s.lot, price=price, tif=TimeInForce.IOC, retire_for=retire
        )
        for _ in range(100):
            for m in buyer.history:
                if isinstance(m, p.OrderCertificate):
                    return m.cert_id
            await buyer.heartbeat()
        raise AssertionError("no certificate came")
