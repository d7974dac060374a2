"""`tonne buy --screen EXPR`: one screened basket buy on a running server, optionally
buy-and-retire, for operators and for trying the exchange by hand. It sweeps every book the
screen admits, cheapest first, and prints what it bought: each fill with its book, price and
the exact serials delivered (as their registry writes them), the summary (tonnes filled,
average price, projects) and, buying to retire, the one certificate with every fill's
serials and the settlement-log record that proves it.

    tonne buy --screen EXPR --qty Q --limit P [--fok] [--currency C]
              [--project-max N] [--projects-min K]
              [--retire-for TEXT [--purpose voluntary|corsia|article6|other]
                                 [--claim TEXT] [--period START END]]
              [--client-order-id ID] --connect HOST:PORT --key FILE [--ws] [--timeout-s S]

P is the limit per tonne in the currency's minor units (USD cents), as `tonne order`'s
price. A thin layer over the client library (`Client.basket_buy`). Exit status 0 done (also
when the basket filled less than Q: the rest is cancelled, it never rests), 1 refused (the
reason is printed), 2 usage or connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.certificates import write_certificate
from gateway.cli.connection import SessionFailed, add_options, logged_on
from gateway.cli.order import serials_text
from gateway.cli.screen import price_text
from gateway.client.client import Basket, Client, ClientError, RequestRejected
from gateway.wire import protocol as p
from screening.language import SCREEN_TEXT_MAX
from settlement.events import Purpose

PURPOSES = [x.value for x in Purpose]


def average_minor(notional: int, filled: int) -> int:
    """The average price per tonne in minor units, rounded half up (integers only)."""
    return (2 * notional + filled) // (2 * filled)


def fill_lines(basket: Basket, currency: str) -> list[str]:
    lines = []
    for f in basket.fills:
        price = price_text(f.price, currency)
        serials = serials_text(f.serials)
        fee = price_text(f.fee, currency)
        lines.append(f"filled {f.qty} t of {f.series} at {price}, fee {fee}; serials {serials}")
    return lines


def summary_line(basket: Basket, qty: int, currency: str) -> str:
    done = basket.done
    if not done.filled:
        return f"done: filled 0 t of {qty}"
    average = price_text(average_minor(done.notional, done.filled), currency)
    total = price_text(done.notional, currency)
    projects = ", ".join(done.projects)
    return (
        f"done: filled {done.filled} t of {qty}, average {average} {currency}/t, "
        f"notional {total} {currency}, projects {projects}"
    )


def certificate_lines(cert: p.OrderCertificate) -> list[str]:
    period = f" {cert.period_start} to {cert.period_end}" if cert.period_start else ""
    claim = f", claim {cert.claim!r}" if cert.claim else ""
    lines = [
        f"certificate {cert.cert_id}: {cert.qty} t retired for {cert.beneficiary!r} "
        f"({cert.purpose}{period}{claim})"
    ]
    for f in cert.fills:
        lines.append(
            f"  trade {f.trade_id} {f.series} {f.qty} t: {serials_text(f.serials)} "
            f"(record {f.record_seq} {f.record_hash})"
        )
    return lines


def report(basket: Basket, args: argparse.Namespace) -> list[str]:
    """The lines that say what the basket bought."""
    ack = basket.ack
    lines = [
        f"accepted basket {ack.order_id} ({ack.client_order_id}): up to {args.qty} t at most "
        f"{price_text(args.limit, args.currency)} {args.currency}/t"
    ]
    lines += fill_lines(basket, args.currency)
    if basket.cancelled is not None:
        lines.append(f"cancelled {basket.cancelled.qty} t ({basket.cancelled.reason.value})")
    lines.append(summary_line(basket, args.qty, args.currency))
    if basket.certificate is not None:
        lines += certificate_lines(basket.certificate)
    return lines


def retire_for(args: argparse.Namespace) -> p.RetireFor | None:
    if args.retire_for is None:
        return None
    start, end = args.period or ("", "")
    return p.RetireFor(
        beneficiary=args.retire_for,
        purpose=args.purpose,
        claim=args.claim,
        period_start=start,
        period_end=end,
    )


async def buy(client: Client, args: argparse.Namespace) -> Basket:
    return await client.basket_buy(
        args.screen,
        args.qty,
        args.limit,
        currency=args.currency,
        fok=args.fok,
        project_max=args.project_max,
        projects_min=args.projects_min,
        retire_for=retire_for(args),
        client_order_id=args.client_order_id,
        timeout_s=args.timeout_s,
    )


async def run(args: argparse.Namespace) -> int:
    async with logged_on(args) as client:
        try:
            basket = await buy(client, args)
        except RequestRejected as exc:
            print(f"refused {exc.reason.value}: {exc.text}")
            return 1
        except (ClientError, TimeoutError) as exc:
            raise SessionFailed(str(exc) or f"no answer within {args.timeout_s} s") from None
    print("\n".join(report(basket, args)))
    if args.certificate_out and basket.certificate is not None:
        write_certificate(Path(args.certificate_out), basket.certificate)
        print(
            f"certificate saved to {args.certificate_out} "
            "(tonne certificate verify FILE --data DIR; tonne certificate export for a proof)"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne buy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--screen", required=True, metavar="EXPR", help="screening language")
    ap.add_argument("--qty", type=int, required=True, help="tonnes, at most")
    ap.add_argument("--limit", type=int, required=True, metavar="P", help="minor units/t")
    ap.add_argument("--fok", action="store_true", help="all or nothing (default: IOC)")
    ap.add_argument("--currency", default="USD")
    ap.add_argument("--project-max", type=int, default=0, metavar="N", help="t per project")
    ap.add_argument("--projects-min", type=int, default=0, metavar="K", help="projects")
    ap.add_argument("--retire-for", metavar="TEXT", help="buy and retire, for this beneficiary")
    ap.add_argument("--purpose", choices=PURPOSES, help="of the retirement (voluntary)")
    ap.add_argument("--claim", help="claim text of the retirement")
    ap.add_argument("--period", nargs=2, metavar=("START", "END"), help="YYYY-MM-DD YYYY-MM-DD")
    ap.add_argument("--client-order-id", default="")
    ap.add_argument(
        "--certificate-out",
        metavar="FILE",
        help="save the certificate (JSON, no records: `tonne certificate verify FILE --data "
        "DIR` checks it against the log; `tonne certificate export` writes a proof)",
    )
    add_options(ap, "a key file with the `trade` permission (tonne accounts add --json)")
    return ap


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors the wire would refuse as a whole frame, or that mean nothing."""
    retirement = (args.purpose, args.claim, args.period)
    if args.retire_for is None and any(x is not None for x in retirement):
        ap.error("--purpose, --claim and --period go with --retire-for")
    if args.certificate_out and args.retire_for is None:
        ap.error("--certificate-out goes with --retire-for")
    for name in ("qty", "limit", "project_max", "projects_min"):
        if not 0 <= getattr(args, name) < p.INT_ABS_MAX:
            ap.error(f"--{name.replace('_', '-')} must be a whole number from 0 to 2^62 - 1")
    if len(args.currency) > p.STR_CHARS_MAX:
        ap.error(f"--currency is at most {p.STR_CHARS_MAX} characters")
    if len(args.screen) > SCREEN_TEXT_MAX:
        ap.error(f"a screen is at most {SCREEN_TEXT_MAX} characters")
    for name in ("retire_for", "claim", "client_order_id"):
        if len(getattr(args, name) or "") > p.STR_CHARS_MAX:
            ap.error(f"--{name.replace('_', '-')} is at most {p.STR_CHARS_MAX} characters")
    args.purpose = args.purpose or Purpose.VOLUNTARY.value
    args.claim = args.claim or ""


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    check(ap, args)
    try:
        return asyncio.run(run(args))
    except SessionFailed as exc:
        print(f"tonne buy: {exc}", file=sys.stderr)
        return 2


__all__ = ["main", "report"]
