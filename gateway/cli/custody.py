"""`tonne custody`: cash and registry serial blocks in and out of custody on a running server.

    tonne custody deposit|withdraw --connect HOST:PORT --key FILE [--ws] [--timeout-s S]
        [--cash CUR AMOUNT]... [--minor-units]
        [--serial STRING [--project P] [--vintage YEAR] [--start N --end N]]...
        [--csv FILE] [--ref TEXT]

An operator funds a participant after a registry transfer into the venue's custody account
(and sends credits back out after a withdrawal request) through an API key with the `fund`
permission, which moves cash and credits of *its own account* only:

    tonne accounts add --account 3 --permissions fund --json > fund-3.json

`--key` is a file holding one JSON object as that prints (`{"account", "key_id", "secret"}`);
when it names an account, the server must log the key on to that account, or nothing is sent.
`--connect` is the server's TCP port, or with `--ws` its WebSocket port.

What moves, in this order (any mix; `--cash` and `--serial` may repeat):

- `--cash CUR AMOUNT`: AMOUNT is a decimal in the currency's major units (`500000.00`),
  converted exactly (never through a float) to the integer minor units the exchange keeps.
  It may have at most as many decimals as the currency has (gateway/cli/custody_items.py
  `CURRENCY_DECIMALS`: USD, HKD and CNY have 2), so `0.1` USD is 10 cents, `12` is 1200
  and `0.001` is refused. With `--minor-units` every AMOUNT is an integer of minor units
  instead (`50000000`), for any currency the server carries. CUR is an ISO 4217 code (case
  does not matter). Zero, a negative amount or one above 2^53 - 1 minor units (the
  exchange's amount limit) is refused.
- `--serial STRING`: a registry's own serial string, as its registry writes it
  (`ACR-FR-1129-2025-2917-30932 to 35143`). The registry is read off the string: each
  registry's format is tried and exactly one must match (settlement/registry.py). Project and
  vintage are the string's where its format carries them (`--project`/`--vintage`, if given
  too, must agree); Gold Standard's CDM CER strings (`RW-5-1459975-2-2-0-7014 -
  RW-5-1460107-2-2-0-7014`) carry neither, so they need `--project GS4823 --vintage 2017`. A
  Cercarbono batch id (`CDC_1_1_1_321_14_1_2009`) carries no range: give `--start` and `--end`
  (inclusive), or write `CDC_1_1_1_321_14_1_2009 2262 to 4425`. The quantity is the range's.
  `--project`, `--vintage`, `--start` and `--end` belong to the `--serial` before them.
- `--csv FILE`: every row of a file shaped like data/serials.csv (columns project_id,
  registry, vintage, serial_string, block_start, block_end, quantity, range_convention; others,
  such as source, are ignored). Each row's string is read by its `registry`'s rules; project,
  vintage, block_start..block_end and quantity must all agree with it (block_start and
  block_end may be empty except for Cercarbono), and range_convention must be `inclusive`
  (or empty). The file is at most `CSV_BYTES_MAX` (4 MiB); a run moves at most `ITEMS_MAX`
  (10 000) items.
- `--ref TEXT`: a reference recorded with each credit move in the settlement log (the
  registry transfer's id). The wire's cash messages carry no reference.

A credit withdrawal sends exactly those serials back out to the registry; a sub-range of a
held block is written as its registry writes it (`ACR-FR-1129-2025-2917-30932 to 31000`).

Every item is checked here first. If any is refused here (a string no registry's format
reads, a registry with no serial rules, a row that disagrees with its string, an amount with
too many decimals, two items of the run that overlap), *nothing* is sent. Otherwise the items
go one request at a time, each waiting for its answer (at most `--timeout-s`). Each item
prints one line:

    deposited 500000.00 USD (50000000 minor units) to account 3
    deposited ACR-FR-1129-2025-2917-30932 to 35143 (ACR1129 2025, 4212 t) to account 3
    refused SERIALS_OVERLAP: ACR-FR-1129-2025-2917-30932 to 35143: <why>
    not sent ACR-FR-1129-2025-2917-4751 to 23327: <why>
    unknown ACR-FR-1129-2025-2917-4751 to 23327: <why> (look at the account before retrying)

A refusal names the reason code of gateway/wire/PROTOCOL.md, whether the server gave it or the
check here did (a CSV row is named by its line). Exit status: 0 if every item was done, 1 if
any was refused, 2 for a usage error, a key or CSV file that cannot be read, a connection or
logon that failed, or an answer that did not come (the `unknown` item may or may not have
been applied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException

from gateway.cli.custody_items import (
    CSV_BYTES_MAX,
    CURRENCY_DECIMALS,
    ITEMS_MAX,
    Cash,
    Credits,
    InputError,
    Refused,
    SerialArg,
    plan,
)
from gateway.client.client import Client, ClientError, LogonFailed
from gateway.wire import protocol as p
from settlement import registry

TIMEOUT_S = 10.0  # connecting, logging on, and each answer
KEY_FILE_BYTES_MAX = 64 << 10


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: str
    account: int  # 0: the file names none


def read_key(path: Path) -> Key:
    """The one key in a file as `tonne accounts add --json` prints it; InputError if not."""
    try:
        with path.open("rb") as f:
            data = f.read(KEY_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise InputError(f"key file {path}: {exc.strerror or exc}") from None
    if len(data) > KEY_FILE_BYTES_MAX:
        raise InputError(f"key file {path}: larger than {KEY_FILE_BYTES_MAX} bytes")
    lines = [line for line in data.splitlines() if line.strip()]
    if len(lines) != 1:
        raise InputError(f"key file {path}: holds {len(lines)} lines, not one key")
    try:
        obj = json.loads(lines[0])
    except ValueError:
        raise InputError(f"key file {path}: not a JSON object") from None
    if not isinstance(obj, dict):
        raise InputError(f"key file {path}: not a JSON object")
    key_id, secret, account = obj.get("key_id"), obj.get("secret"), obj.get("account", 0)
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise InputError(f"key file {path}: needs string fields key_id and secret")
    if type(account) is not int or account < 0:
        raise InputError(f"key file {path}: account must be an account number")
    return Key(key_id, secret, account)


def target(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) as (host, port); ValueError if it is not one."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--connect {text!r}: not HOST:PORT")
    return host, int(port)


# -- talking to the server ------------------------------------------------------------------


def request_of(item: Cash | Credits, action: str, req_id: int) -> Any:
    """The wire message that moves `item` in (`deposit`) or out (`withdraw`)."""
    if isinstance(item, Cash):
        cash = p.Deposit if action == "deposit" else p.Withdraw
        return cash(currency=item.currency, amount=item.amount, req_id=req_id)
    credits = p.DepositCredits if action == "deposit" else p.WithdrawCredits
    return credits(
        project=item.project,
        vintage=item.vintage,
        quantity=item.serial.qty,
        serial=str(item.serial),
        ref=item.ref,
        req_id=req_id,
    )


def done_line(item: Cash | Credits, action: str, account: int) -> str:
    verb, to = ("deposited", "to") if action == "deposit" else ("withdrew", "from")
    return f"{verb} {item.describe()} {to} account {account}"


async def connect(host: str, port: int, ws: bool, timeout_s: float) -> Client:
    async with asyncio.timeout(timeout_s):
        if ws:
            return await Client.connect_ws(f"ws://{host}:{port}/")
        return await Client.connect_tcp(host, port)


async def send_items(
    client: Client, items: Sequence[Cash | Credits], action: str, account: int, timeout_s: float
) -> int:
    """Send each item, one at a time, and print what became of it; the exit status."""
    refused = False
    for i, item in enumerate(items):
        try:
            answer = await client.request(request_of(item, action, client.next_req_id()), timeout_s)
        except (ClientError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {timeout_s} s"
            print(f"unknown {item.name}: {why} (look at the account before retrying)")
            for rest in items[i + 1 :]:
                print(f"not sent {rest.name}: the connection failed before it")
            return 2
        if isinstance(answer, p.Done):
            print(done_line(item, action, account), flush=True)
        elif isinstance(answer, p.Reject):
            refused = True
            print(f"refused {answer.reason.value}: {item.name}: {answer.text}", flush=True)
        else:  # a server that answers a deposit with something else is not one we know
            print(f"unknown {item.name}: the server answered {type(answer).__name__}")
            return 2
    return 1 if refused else 0


async def run(
    items: Sequence[Cash | Credits],
    action: str,
    key: Key,
    host: str,
    port: int,
    *,
    ws: bool = False,
    timeout_s: float = TIMEOUT_S,
) -> int:
    """Log on with `key` and move every item; the exit status."""
    where = f"{'ws' if ws else 'tcp'} {host}:{port}"
    try:
        client = await connect(host, port, ws, timeout_s)
    except (OSError, TimeoutError, WebSocketException) as exc:
        print(f"tonne custody: cannot connect to {where}: {exc or 'timed out'}", file=sys.stderr)
        return 2
    try:
        try:
            ack = await client.logon(key.key_id, key.secret, timeout_s=timeout_s)
        except LogonFailed as exc:
            print(f"tonne custody: logon refused {exc.reason.value}: {exc.text}", file=sys.stderr)
            return 2
        except (ClientError, TimeoutError) as exc:
            print(f"tonne custody: logon to {where} failed: {exc or 'timed out'}", file=sys.stderr)
            return 2
        if key.account and ack.account != key.account:
            print(
                f"tonne custody: the key file names account {key.account}, but the server "
                f"logs this key on to account {ack.account}: nothing sent",
                file=sys.stderr,
            )
            return 2
        return await send_items(client, items, action, ack.account, timeout_s)
    finally:
        await client.close()


# -- the command line -----------------------------------------------------------------------


class _SerialAction(argparse.Action):
    """`--serial STRING`: a new serial item, which the options after it describe."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, _: Any = None
    ) -> None:
        serials: list[SerialArg] = getattr(ns, "serials", None) or []
        serials.append(SerialArg(str(values)))
        ns.serials = serials


class _OfSerialAction(argparse.Action):
    """`--project`, `--vintage`, `--start`, `--end`: of the `--serial` given before them."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None
    ) -> None:
        serials: list[SerialArg] = getattr(ns, "serials", None) or []
        if not serials:
            parser.error(f"{opt} belongs to a --serial: give it after the --serial it is for")
        if getattr(serials[-1], self.dest) is not None:
            parser.error(f"{opt} given twice for --serial {serials[-1].text!r}")
        setattr(serials[-1], self.dest, values)


def _digits(max_digits: int, what: str) -> Any:
    def convert(text: str) -> int:
        if not re.fullmatch(rf"[0-9]{{1,{max_digits}}}", text):
            raise argparse.ArgumentTypeError(f"{what}: {max_digits} digits at most, got {text!r}")
        return int(text)

    return convert


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne custody",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("action", choices=["deposit", "withdraw"])
    ap.add_argument("--connect", required=True, metavar="HOST:PORT", help="a running server")
    ap.add_argument("--key", required=True, metavar="FILE", help="a `fund` key's JSON")
    ap.add_argument("--ws", action="store_true", help="--connect is the WebSocket port")
    ap.add_argument(
        "--timeout-s",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help=f"for the connection, the logon and each answer (default {TIMEOUT_S:g})",
    )
    decimals = ", ".join(f"{c} {n}" for c, n in CURRENCY_DECIMALS.items())
    ap.add_argument(
        "--cash",
        nargs=2,
        action="append",
        default=[],
        metavar=("CUR", "AMOUNT"),
        help=f"cash, AMOUNT in major units (decimals: {decimals})",
    )
    ap.add_argument("--minor-units", action="store_true", help="--cash amounts in minor units")
    ap.add_argument(
        "--serial",
        action=_SerialAction,
        metavar="STRING",
        dest="serials",
        help="a registry's serial string (repeatable); the four options below follow it",
    )
    ap.add_argument(
        "--project",
        action=_OfSerialAction,
        default=argparse.SUPPRESS,
        metavar="P",
        help="its project id (GS4823), if its string names none",
    )
    ap.add_argument(
        "--vintage",
        action=_OfSerialAction,
        type=_digits(4, "--vintage"),
        default=argparse.SUPPRESS,
        metavar="YEAR",
        help="its vintage, if its string names none",
    )
    serial_digits = _digits(registry.SERIAL_DIGITS_MAX, "a serial number")
    for end, which in (("--start", "first"), ("--end", "last")):
        ap.add_argument(
            end,
            action=_OfSerialAction,
            type=serial_digits,
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"its {which} serial (inclusive), for a Cercarbono batch id",
        )
    ap.add_argument(
        "--csv",
        metavar="FILE",
        help=f"rows of data/serials.csv's shape (at most {ITEMS_MAX} rows, {CSV_BYTES_MAX} bytes)",
    )
    ap.add_argument(
        "--ref", default="", metavar="TEXT", help="a reference recorded with each credit move"
    )
    return ap


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    serials: list[SerialArg] = getattr(args, "serials", None) or []
    if not args.cash and not serials and not args.csv:
        ap.error("nothing to move: give --cash, --serial or --csv")
    if len(args.ref) > p.STR_CHARS_MAX:
        ap.error(f"--ref is at most {p.STR_CHARS_MAX} characters")
    if not args.timeout_s > 0:
        ap.error("--timeout-s must be positive")
    try:
        host, port = target(args.connect)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        key = read_key(Path(args.key))
        planned = plan(args.cash, args.minor_units, serials, args.csv, args.ref)
    except InputError as exc:
        print(f"tonne custody: {exc}", file=sys.stderr)
        return 2
    if any(isinstance(x, Refused) for x in planned):
        for x in planned:
            if isinstance(x, Refused):
                print(f"refused {x.reason.value}: {x.name}: {x.text}")
            else:
                print(f"not sent {x.name}: nothing is sent while another item is refused")
        return 1
    items = [x for x in planned if not isinstance(x, Refused)]
    return asyncio.run(
        run(items, args.action, key, host, port, ws=args.ws, timeout_s=args.timeout_s)
    )


__all__ = ["Key", "main", "read_key", "run", "target"]
