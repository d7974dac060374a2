"""`tonne operator`: the venue's catalogue requests to a running server, with an `operator` key.

    tonne operator label add|remove PROJECT LABEL [--vintage YEAR] [--effective WHEN]
    tonne operator suspend PROJECT
    tonne operator reinstate PROJECT
    tonne operator reversal --account N --serial STRING [--project P --vintage YEAR
                            --start N --end N]
    tonne operator contract list SERIES_ID --rule EXPR [--currency CUR] [--tick N] [--lot N]
                            [--ref-price N] [--band-bps N] [--max-order-qty N]
    tonne operator contract version SERIES_ID --rule EXPR [--effective WHEN]
    tonne operator contract show SERIES_ID

each with `--connect HOST:PORT --key FILE [--ws] [--timeout-s S]` and, for the requests that
change something, `--ref TEXT` (the registry's notice, recorded with the settlement-log
record). The key needs the `operator` permission:

    tonne accounts add --permissions operator --json > operator.json

Registry events: a label granted (`add`) or withdrawn (`remove`) on a project, or on one
vintage of it; a project suspended (its books halt, its resting orders are cancelled, its
credits frozen) or reinstated; a reversal (the registry cancelled exact serials from an
account's buffer pool: `--serial` is the registry's own serial string, read as `tonne
custody` reads it, settlement/registry.py). Standardized contracts: `list` opens the book of a
contract whose deliverable credits are those its rule (the screening language,
screening/README.md) admits; `version` gives it its next rule version from `--effective` on;
`show` prints every version.

WHEN is an ISO 8601 time (`2026-07-01`, `2026-07-01T12:00:00+02:00`; without an offset it
is UTC) or integer nanoseconds since the Unix epoch; left out, the change is at once.

Each request prints one line, what was done or `refused REASON: why` (a reason code of
gateway/wire/PROTOCOL.md). Exit status: 0 done, 1 refused, 2 a usage error, a key file that
cannot be read, a connection or logon that failed, or an answer that did not come.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.cli.connection import SessionFailed, add_options, logged_on
from gateway.cli.custody_items import Credits, Refused, SerialArg, serial_item
from gateway.client.client import Client, ClientError, RequestRejected
from gateway.wire import protocol as p
from screening.language import SCREEN_TEXT_MAX

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
NS_PER_US = 1_000
_NANOSECONDS = re.compile(r"[0-9]{1,19}")

Line = str  # what one request printed on success
Request = Callable[[Client, argparse.Namespace], Awaitable[Line]]


def when_ns(text: str) -> int:
    """`--effective`: integer nanoseconds since the epoch, or an ISO 8601 time (UTC when it
    names no offset), as exact integer nanoseconds."""
    if _NANOSECONDS.fullmatch(text):
        ns = int(text)
    else:
        try:
            at = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither an ISO 8601 time nor nanoseconds since the epoch"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.UTC)
        ns = (at - EPOCH) // datetime.timedelta(microseconds=1) * NS_PER_US
    if not 0 <= ns <= p.INT_ABS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the times the wire carries")
    return ns


def when_text(ns: int) -> str:
    """A time as the operator reads it (UTC, to the microsecond), `at once` for 0."""
    if ns == 0:
        return "at once"
    return (EPOCH + datetime.timedelta(microseconds=ns // NS_PER_US)).isoformat()


def count_text(n: int) -> str:
    return f"{n} order{'' if n == 1 else 's'} cancelled"


def _text(limit: int, what: str) -> Callable[[str], str]:
    """An argument type for a string the wire bounds (a longer one would be refused as a
    whole frame, unanswered)."""

    def convert(text: str) -> str:
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"{what} is at most {limit} characters")
        return text

    return convert


def _integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if abs(value) > p.INT_ABS_MAX:
        raise argparse.ArgumentTypeError(f"{text} is outside the integers the wire carries")
    return value


Str = _text(p.STR_CHARS_MAX, "a name")
Rule = _text(SCREEN_TEXT_MAX, "a rule")


# -- the requests ---------------------------------------------------------------------------


async def label(c: Client, a: argparse.Namespace) -> Line:
    present = a.action == "add"
    done = await c.change_label(
        a.project, a.label, present, a.vintage, a.effective, a.ref, a.timeout_s
    )
    which = f"vintage {a.vintage}" if a.vintage else "every vintage"
    verb = "granted on" if present else "withdrawn from"
    return (
        f"label {a.label} {verb} {a.project} ({which}), effective {when_text(a.effective)}: "
        f"{count_text(done.count)}"
    )


async def suspend(c: Client, a: argparse.Namespace) -> Line:
    done = await c.suspend_project(a.project, a.ref, a.timeout_s)
    return f"suspended {a.project}: its books halted, {count_text(done.count)}"


async def reinstate(c: Client, a: argparse.Namespace) -> Line:
    done = await c.reinstate_project(a.project, a.ref, a.timeout_s)
    return f"reinstated {a.project}: its books resumed, {count_text(done.count)}"


async def reversal(c: Client, a: argparse.Namespace) -> Line:
    item: Credits = a.item
    s = item.serial
    done = await c.cancel_credits(
        a.account,
        item.project,
        item.vintage,
        s.first,
        s.last,
        s.qty,
        serial=str(s),
        ref=a.ref,
        timeout_s=a.timeout_s,
    )
    return f"cancelled {item.describe()} from account {a.account}: {count_text(done.count)}"


def rule_line(added: p.RuleVersionAdded) -> Line:
    return (
        f"{added.series} rule version {added.version}, effective "
        f"{when_text(added.effective)}: {added.rule}"
    )


async def contract_list(c: Client, a: argparse.Namespace) -> Line:
    params = {
        "currency": a.currency,
        "tick": a.tick,
        "lot": a.lot,
        "ref_price": a.ref_price,
        "band_bps": a.band_bps,
        "max_order_qty": a.max_order_qty,
        "ref": a.ref,
    }
    added = await c.list_contract(a.series, a.rule, timeout_s=a.timeout_s, **params)
    return "listed " + rule_line(added)


async def contract_version(c: Client, a: argparse.Namespace) -> Line:
    added = await c.add_rule_version(a.series, a.rule, a.effective, a.ref, a.timeout_s)
    return rule_line(added)


async def contract_show(c: Client, a: argparse.Namespace) -> Line:
    rules = await c.contract_rules(a.series, a.timeout_s)
    lines = [f"{rules.series}: {len(rules.versions)} rule versions"]
    lines += [
        f"  version {v.version}  effective {when_text(v.effective)}  {v.rule}"
        for v in rules.versions
    ]
    return "\n".join(lines)


async def run(request: Request, args: argparse.Namespace) -> int:
    """Log on, send the one request, print what became of it; the exit status."""
    async with logged_on(args) as client:
        try:
            line = await request(client, args)
        except RequestRejected as exc:
            print(f"refused {exc.reason.value}: {exc.text}")
            return 1
        except (ClientError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {args.timeout_s} s"
            raise SessionFailed(f"{why} (look at the catalogue before retrying)") from None
    print(line)
    return 0


# -- the command line -----------------------------------------------------------------------


def _leaf(sub: Any, name: str, request: Request, help_text: str, writes: bool = True) -> Any:
    leaf = sub.add_parser(name, help=help_text)
    leaf.set_defaults(request=request)
    add_options(leaf, "an `operator` key's JSON, as `tonne accounts add --json` prints it")
    if writes:
        leaf.add_argument("--ref", type=Str, default="", metavar="TEXT", help="the notice's id")
    return leaf


def _contract_parsers(sub: Any) -> None:
    contract = sub.add_parser("contract", help="standardized contracts and their rules")
    csub = contract.add_subparsers(dest="contract_action", required=True)
    listing = _leaf(csub, "list", contract_list, "open a contract's book, rule version 1")
    version = _leaf(csub, "version", contract_version, "a contract's next rule version")
    show = _leaf(csub, "show", contract_show, "every rule version of a contract", writes=False)
    for leaf in (listing, version, show):
        leaf.add_argument("series", type=Str, metavar="SERIES_ID")
    for leaf in (listing, version):
        leaf.add_argument("--rule", type=Rule, required=True, metavar="EXPR")
    version.add_argument("--effective", type=when_ns, default=0, metavar="WHEN")
    listing.add_argument("--currency", type=Str, default="USD", metavar="CUR")
    for option, default in (("--tick", 1), ("--lot", 1), ("--max-order-qty", 1_000_000)):
        listing.add_argument(option, type=_integer, default=default, metavar="N")
    for option in ("--ref-price", "--band-bps"):
        listing.add_argument(option, type=_integer, default=0, metavar="N")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="what", required=True)
    lab = _leaf(sub, "label", label, "a registry granted or withdrew a label")
    lab.add_argument("action", choices=["add", "remove"])
    lab.add_argument("project", type=Str, metavar="PROJECT")
    lab.add_argument("label", type=Str, metavar="LABEL")
    lab.add_argument("--vintage", type=_integer, default=0, metavar="YEAR")
    lab.add_argument("--effective", type=when_ns, default=0, metavar="WHEN")
    for name, request, doc in (
        ("suspend", suspend, "the registry suspended a project: its books halt"),
        ("reinstate", reinstate, "the registry reinstated a project: its books resume"),
    ):
        _leaf(sub, name, request, doc).add_argument("project", type=Str, metavar="PROJECT")
    rev = _leaf(sub, "reversal", reversal, "the registry cancelled serials (buffer pool)")
    rev.add_argument("--account", type=_integer, required=True, metavar="N")
    rev.add_argument("--serial", required=True, metavar="STRING", help="the registry's string")
    rev.add_argument("--project", type=Str, metavar="P", help="if its string names none")
    rev.add_argument("--vintage", type=_integer, metavar="YEAR", help="if its string names none")
    rev.add_argument("--start", type=_integer, metavar="N", help="a Cercarbono batch's first")
    rev.add_argument("--end", type=_integer, metavar="N", help="a Cercarbono batch's last")
    _contract_parsers(sub)
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.what == "reversal":  # read here, as `tonne custody` reads it: nothing sent if not
        arg = SerialArg(args.serial, args.project, args.vintage, args.start, args.end)
        item = serial_item(arg, args.ref)
        if isinstance(item, Refused):
            print(f"refused {item.reason.value}: {item.name}: {item.text}")
            return 1
        args.item = item
    try:
        return asyncio.run(run(args.request, args))
    except SessionFailed as exc:
        print(f"tonne operator: {exc}", file=sys.stderr)
        return 2


__all__ = ["main", "when_ns", "when_text"]
