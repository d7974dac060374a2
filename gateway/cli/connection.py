"""A logged-on client session for the command line's client commands (`tonne screen`,
`tonne operator`): the options they share with `tonne custody` (`--connect HOST:PORT --key
FILE [--ws] [--timeout-s S]`) and one place that turns a connection or logon that fails into
one line on stderr and exit status 2.

The key file, the HOST:PORT reading and the connection are `tonne custody`'s own
(gateway/cli/custody.py), so every client command reads a key file and a target alike.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from websockets.exceptions import WebSocketException

from gateway.cli.custody import TIMEOUT_S, connect, read_key, target
from gateway.cli.custody_items import InputError
from gateway.client.client import Client, ClientError, LogonFailed


class SessionFailed(Exception):
    """The command could not talk to the server: the message says why (exit status 2)."""


def add_options(ap: argparse.ArgumentParser, key_help: str, required: bool = True) -> None:
    """The connection options every client command takes."""
    ap.add_argument("--connect", required=required, metavar="HOST:PORT", help="a running server")
    ap.add_argument("--key", required=required, metavar="FILE", help=key_help)
    ap.add_argument("--ws", action="store_true", help="--connect is the WebSocket port")
    ap.add_argument(
        "--timeout-s",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help=f"for the connection, the logon and each answer (default {TIMEOUT_S:g})",
    )


@contextlib.asynccontextmanager
async def logged_on(args: argparse.Namespace) -> AsyncIterator[Client]:
    """A client logged on with `args.key` to `args.connect`; `SessionFailed` if it cannot be.
    A key file that names an account must be logged on to that account."""
    if not args.timeout_s > 0:
        raise SessionFailed("--timeout-s must be positive")
    try:
        host, port = target(args.connect)
        key = read_key(Path(args.key))
    except (ValueError, InputError) as exc:
        raise SessionFailed(str(exc)) from None
    where = f"{'ws' if args.ws else 'tcp'} {host}:{port}"
    try:
        client = await connect(host, port, args.ws, args.timeout_s)
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise SessionFailed(f"cannot connect to {where}: {exc or 'timed out'}") from None
    try:
        try:
            ack = await client.logon(key.key_id, key.secret, timeout_s=args.timeout_s)
        except LogonFailed as exc:
            raise SessionFailed(f"logon refused {exc.reason.value}: {exc.text}") from None
        except (ClientError, TimeoutError) as exc:
            raise SessionFailed(f"logon to {where} failed: {exc or 'timed out'}") from None
        if key.account and ack.account != key.account:
            raise SessionFailed(
                f"the key file names account {key.account}, but the server logs this key on "
                f"to account {ack.account}: nothing sent"
            )
        yield client
    finally:
        await client.close()


__all__ = ["SessionFailed", "add_options", "logged_on"]
