"""`tonne order buy|sell SERIES`: place one order on a running server, for operators and for
trying the exchange by hand, and print what became of it: each fill with the exact serials
delivered (as their registry writes them) and, for a standardized contract, the rule version
it traded under; then what is left resting, or why the rest was cancelled.

    tonne order buy|sell SERIES --qty Q --price P [--tif gtc|ioc|fok] [--client-order-id ID]
                --connect HOST:PORT --key FILE [--ws] [--timeout-s S]

P is in the series currency's minor units per tonne. A thin layer over the client library
(`Client.place`, then a heartbeat: the server answers it after every report sent before it,
so every fill of the order's arrival is in by then). Exit status 0 accepted, 1 refused (the
reason is printed), 2 usage or connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from engine.commands import Side, TimeInForce
from gateway.cli.connection import SessionFailed, add_options, logged_on
from gateway.client.client import Client, RequestRejected
from gateway.wire import protocol as p

TIFS = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}


def serials_text(ranges: list[p.SerialRange]) -> str:
    """Every range as its registry writes it (batch-less ones as project/vintage:first-last)."""
    return ", ".join(
        r.registry_serial or f"{r.project}/{r.vintage}:{r.first}-{r.last}" for r in ranges
    )


async def place(client: Client, args: argparse.Namespace) -> list[str]:
    """Place the order; the lines that report what became of it."""
    since = client.received
    ack = await client.place(
        args.series,
        Side(args.side),
        qty=args.qty,
        price=args.price,
        tif=TIFS[args.tif],
        client_order_id=args.client_order_id,
        timeout_s=args.timeout_s,
    )
    await client.heartbeat()
    lines = [f"accepted order {ack.order_id} ({ack.client_order_id}): {args.side} {args.qty} t"]
    left = args.qty
    first = client.received - len(client.history)  # history is bounded: index from its start
    for m in list(client.history)[max(0, since - first) :]:
        if isinstance(m, p.Fill) and m.order_id == ack.order_id:
            left -= m.qty
            rule = f" under rule v{m.rule_version}" if m.rule_version else ""
            serials = serials_text(m.serials)
            lines.append(f"filled {m.qty} t at {m.price}{rule}, fee {m.fee}; serials {serials}")
        elif isinstance(m, p.Cancelled) and m.order_id == ack.order_id:
            lines.append(f"cancelled {m.qty} t ({m.reason.value})")
            left = 0
    if left:
        lines.append(f"resting {left} t")
    return lines


async def run(args: argparse.Namespace) -> int:
    async with logged_on(args) as client:
        try:
            lines = await place(client, args)
        except RequestRejected as exc:
            print(f"refused {exc.reason.value}: {exc.text}")
            return 1
    print("\n".join(lines))
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tonne order", description=__doc__.split("\n\n")[0])
    ap.add_argument("side", choices=["buy", "sell"])
    ap.add_argument("series")
    ap.add_argument("--qty", type=int, required=True, help="tonnes")
    ap.add_argument("--price", type=int, required=True, help="minor units per tonne")
    ap.add_argument("--tif", choices=sorted(TIFS), default="gtc")
    ap.add_argument("--client-order-id", default="")
    add_options(ap, "a key file with the `trade` permission (tonne accounts add --json)")
    args = ap.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except SessionFailed as exc:
        print(f"tonne order: {exc}", file=sys.stderr)
        return 2
