"""`tonne accounts`: provision accounts and API keys in a data folder.

    tonne accounts add  [--data DIR] [--account N] [--permissions trade,retire[,fund]] [--json]
    tonne accounts list [--data DIR]

`add` prints the new key's id and secret once; only the sealed secret is stored
(`accounts.json`, sealed with `master.key`, see gateway/auth.py). The server opens each
provisioned account in the core when it starts. `fund` lets a key deposit and withdraw cash
for its own account (test and demo markets; on a real exchange that is an operator's job).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.auth import PERMISSIONS, KeyStore
from gateway.store import default_data_dir


def add_key(
    data_dir: Path, account: int = 0, permissions: frozenset[str] = frozenset({"trade", "retire"})
) -> tuple[int, str, str]:
    """Provision a key (for a new account when `account` is 0): (account, key_id, secret)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = KeyStore.load(data_dir, create=True)
    if not account:
        account = max(store.accounts(), default=0) + 1
    key_id, secret = store.add(account, permissions)
    store.save(data_dir)
    return account, key_id, secret


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne accounts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="make an API key (and the account, if new)")
    add.add_argument("--data", default=default_data_dir())
    add.add_argument("--account", type=int, default=0, help="existing account; 0 = new")
    add.add_argument(
        "--permissions", default="trade,retire", help=f"comma-separated, of {sorted(PERMISSIONS)}"
    )
    add.add_argument("--json", action="store_true", help="print one JSON object")
    lst = sub.add_parser("list", help="accounts and their key ids (never secrets)")
    lst.add_argument("--data", default=default_data_dir())
    args = parser.parse_args(argv)
    data_dir = Path(args.data)
    if args.action == "add":
        perms = frozenset(p.strip() for p in args.permissions.split(",") if p.strip())
        try:
            account, key_id, secret = add_key(data_dir, args.account, perms)
        except ValueError as exc:
            print(f"tonne accounts: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"account": account, "key_id": key_id, "secret": secret}))
        else:
            print(
                f"account {account}\nkey_id  {key_id}\nsecret  {secret}\n"
                "(the secret is shown only this once)"
            )
        return 0
    try:
        store = KeyStore.load(data_dir)
    except FileNotFoundError as exc:
        print(f"tonne accounts: {exc}", file=sys.stderr)
        return 1
    for account, keys in sorted(store.accounts().items()):
        print(f"{account}\t{' '.join(keys)}")
    return 0
