"""`tonne screen EXPR`: which series deliver the credits a screen admits, and at what price.

    tonne screen EXPR --connect HOST:PORT --key FILE [--ws] [--timeout-s S]
    tonne screen EXPR --data DIR

EXPR is the screening language (screening/README.md), e.g.
`mitigation = removal and country in (BR, KE) and label CCP`. Against a running server it is
the protocol's `screen` query (any key that can log on), judged at the server's wall time;
against a data folder (a stopped server's, or a running one's: it is opened read-only) the
state is rebuilt as `tonne recover --check` rebuilds it and screened here, now. Both print
the same table, one line per series:

    series           projects   country  mitigation/basis  labels      vintage  bid    ask ...

with the best bid and ask, the last trade price (in the series' currency), and the tonnes
offered. Exit status: 0 (also when nothing matches), 2 for a screen that does not parse (the
message says where: `at N: ...`), a usage error, or a server or folder that cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from engine.events import Reason
from gateway.cli.connection import SessionFailed, add_options, logged_on
from gateway.cli.custody_items import CURRENCY_DECIMALS
from gateway.client.client import ClientError, RequestRejected
from gateway.wire import protocol as p
from screening.language import SCREEN_TEXT_MAX

SHOWN_MAX = 3  # projects or countries named on one line; more are counted


class BadScreen(Exception):
    """The screen does not parse: `at N: why`."""


def price_text(minor: int | None, currency: str) -> str:
    """A price in major units where the currency's decimals are known, `-` for none."""
    if minor is None:
        return "-"
    decimals = CURRENCY_DECIMALS.get(currency)
    if not decimals:
        return str(minor)
    units, cents = divmod(minor, 10**decimals)
    return f"{units}.{cents:0{decimals}d}"


def few(values: Iterable[str]) -> str:
    """Distinct values in order, at most `SHOWN_MAX` named: `VCS1340,GS11236 +2`."""
    distinct = list(dict.fromkeys(v for v in values if v))
    shown = ",".join(distinct[:SHOWN_MAX]) or "-"
    return shown + (f" +{len(distinct) - SHOWN_MAX}" if len(distinct) > SHOWN_MAX else "")


def vintages(credits: Sequence[p.CreditInfo]) -> str:
    years = sorted({c.vintage for c in credits})
    if not years:
        return "-"
    return str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}"


COLUMNS = (
    "series",
    "projects",
    "country",
    "mitigation/basis",
    "labels",
    "vintage",
    "bid",
    "ask",
    "last",
    "offered",
)


def row(hit: p.ScreenHitInfo) -> list[str]:
    credits = hit.credits
    kinds = few(f"{c.mitigation or '?'}/{c.basis or '?'}" for c in credits)
    labels = few(sorted({label for c in credits for label in c.labels}))
    series = hit.series + (" (halted)" if hit.halted else "")
    return [
        series,
        few(c.project for c in credits),
        few(c.country for c in credits),
        kinds,
        labels,
        vintages(credits),
        price_text(hit.best_bid, hit.currency),
        price_text(hit.best_ask, hit.currency),
        price_text(hit.last_price, hit.currency),
        str(hit.offered),
    ]


def table(hits: Sequence[p.ScreenHitInfo]) -> str:
    """The readable table of a screen's hits (the same for both ways of screening)."""
    if not hits:
        return "no series matches"
    lines = [list(COLUMNS), *(row(h) for h in hits)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    ]
    out.append(f"{len(hits)} series")
    return "\n".join(out)


# -- the two ways to screen -----------------------------------------------------------------


async def screen_server(args: argparse.Namespace) -> list[p.ScreenHitInfo]:
    """The protocol's `screen` query; `BadScreen` with the server's `at N: ...`."""
    async with logged_on(args) as client:
        try:
            result = await client.screen(args.expr, timeout_s=args.timeout_s)
        except RequestRejected as exc:
            if exc.reason is Reason.INVALID_SCREEN:
                raise BadScreen(exc.text) from None
            raise SessionFailed(f"refused {exc.reason.value}: {exc.text}") from None
        except (ClientError, TimeoutError) as exc:
            raise SessionFailed(str(exc) or f"no answer within {args.timeout_s} s") from None
        return result.hits


def screen_folder(folder: str, expr_text: str, ts: int) -> list[p.ScreenHitInfo]:
    """The state of a data folder rebuilt as a start rebuilds it (`tonne recover --check`),
    screened at `ts`; `BadScreen`, or `SessionFailed` for a folder that does not rebuild."""
    from gateway.durability.recovery import RecoveryError, recover
    from gateway.durability.store import SQLiteStore, StoreError
    from gateway.server.queries import screen_hit
    from screening.language import ScreenError, parse

    try:
        expr = parse(expr_text)
    except ScreenError as exc:
        raise BadScreen(str(exc)) from None
    try:
        store = SQLiteStore(folder, readonly=True)
    except StoreError as exc:
        raise SessionFailed(str(exc)) from None
    try:
        core: Any = recover(store).core
    except RecoveryError as exc:
        raise SessionFailed(f"{folder} does not rebuild: {exc}") from None
    finally:
        store.close()
    return [screen_hit(h) for h in core.screen(expr, ts)]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne screen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("expr", metavar="EXPR", help="a screen, in the screening language")
    ap.add_argument("--data", metavar="DIR", help="screen a data folder instead of a server")
    add_options(ap, "any key's JSON, as `tonne accounts add --json` prints it", required=False)
    return ap


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.data and args.connect:
        ap.error("give --connect (a server) or --data (a folder), not both")
    if not args.data and not (args.connect and args.key):
        ap.error("give --connect HOST:PORT --key FILE, or --data DIR")
    if len(args.expr) > SCREEN_TEXT_MAX:  # the wire would refuse the whole frame
        ap.error(f"a screen is at most {SCREEN_TEXT_MAX} characters")
    try:
        if args.data:
            hits = screen_folder(args.data, args.expr, time.time_ns())
        else:
            hits = asyncio.run(screen_server(args))
    except BadScreen as exc:
        print(f"tonne screen: {exc}", file=sys.stderr)
        return 2
    except SessionFailed as exc:
        print(f"tonne screen: {exc}", file=sys.stderr)
        return 2
    print(table(hits))
    return 0


__all__ = ["main", "table"]
