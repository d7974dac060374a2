"""`tonne accounts`: provision accounts and API keys in a data folder.

    tonne accounts add  [--data DIR] [--account N] [--permissions trade,retire[,fund][,operator]]
                        [--json]
    tonne accounts import FILE [--data DIR]
    tonne accounts list [--data DIR]
    tonne accounts revoke KEY_ID [--data DIR]

`add` prints the new key's id and secret once; only the sealed secret is stored
(`accounts.json`, sealed with `master.key`, see gateway/server/auth.py). The server opens
each provisioned account in the core when it starts. `fund` lets a key deposit and withdraw
cash and registry blocks of credits for its own account (test and demo markets; on a real
exchange that is an operator's job, which `tonne custody deposit|withdraw` does). `operator`
lets a key act for the venue on the carbon catalogue: list standardized contracts and
version their rules, and record the registry's events (labels, suspensions, reversals) with
`tonne operator`.

`list` shows every key's id, account, permissions and whether it is revoked, never a secret.
`revoke` refuses the key's logons from then on (UNKNOWN_KEY) and erases its sealed secret;
the account and its other keys stay. A running server looks at the key file every second
(`tonne serve --keys-check-s`): it then ends the sessions logged on with the revoked key
(`goodbye` KEY_REVOKED), and lets keys added meanwhile log on (opening new accounts).

`import` provisions keys from a config file: JSON lines (or one JSON array) of
`{"account": 7, "key_id": "...", "secret": "...", "permissions": ["trade", "retire"]}`,
for deployments whose keys are issued elsewhere. The secrets are sealed on the way in;
delete the file afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from gateway.durability.store import default_data_dir
from gateway.server.auth import PERMISSIONS, KeyStore, KeyStoreError, UnknownKeyId
from gateway.server.clock import SystemClock

LOCK_FILE = "accounts.lock"


@contextlib.contextmanager
def key_file_lock(data_dir: Path, *, create: bool = True) -> Iterator[None]:
    """Hold the folder's key-file lock: `add`, `import` and `revoke` each read, change and
    rewrite `accounts.json`, so two at once would lose one's change (a revocation, say).
    `create=False`: a folder that does not exist is an error (FileNotFoundError), not made."""
    if create:
        data_dir.mkdir(parents=True, exist_ok=True)
    elif not data_dir.is_dir():
        raise FileNotFoundError(f"no data folder {data_dir}")
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_key(
    data_dir: Path, account: int = 0, permissions: frozenset[str] = frozenset({"trade", "retire"})
) -> tuple[int, str, str]:
    """Provision a key (for a new account when `account` is 0): (account, key_id, secret)."""
    with key_file_lock(data_dir):
        store = KeyStore.load(data_dir, create=True)
        if not account:
            account = max(store.accounts(), default=0) + 1
        key_id, secret = store.add(account, permissions)
        store.save(data_dir)
    return account, key_id, secret


def import_keys(data_dir: Path, text: str) -> int:
    """Provision every key of a config file's text (see the module docstring); how many."""
    stripped = text.strip()
    rows = (
        json.loads(stripped)
        if stripped.startswith("[")
        else [json.loads(line) for line in stripped.splitlines() if line.strip()]
    )
    with key_file_lock(data_dir):
        store = KeyStore.load(data_dir, create=True)
        for row in rows:
            perms = frozenset(row.get("permissions", ["trade", "retire"]))
            store.put(int(row["account"]), str(row["key_id"]), str(row["secret"]), perms)
        store.save(data_dir)
    return len(rows)


def revoke_key(data_dir: Path, key_id: str) -> tuple[int, bool]:
    """Revoke a key: (its account, whether it was revoked now rather than already).
    Raises `UnknownKeyId` when the folder has no such key."""
    with key_file_lock(data_dir, create=False):
        store = KeyStore.load(data_dir)
        revoked = store.revoke(key_id, SystemClock().now_ns())
        if revoked:
            store.save(data_dir)
    account = next(k.account for k in store.describe() if k.key_id == key_id)
    return account, revoked


def list_lines(data_dir: Path) -> list[str]:
    """`tonne accounts list`: a header and one line per key, never a secret."""
    lines = [f"{'key_id':<24} {'account':>7}  {'permissions':<18} status"]
    for k in KeyStore.load(data_dir).describe():
        status = "active" if k.revoked_at is None else f"revoked {k.revoked_at}"
        lines.append(f"{k.key_id:<24} {k.account:>7}  {','.join(k.permissions):<18} {status}")
    return lines


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
    imp = sub.add_parser("import", help="provision keys from a JSON config file")
    imp.add_argument("file")
    imp.add_argument("--data", default=default_data_dir())
    lst = sub.add_parser(
        "list", help="every key: id, account, permissions, revoked or not (never secrets)"
    )
    lst.add_argument("--data", default=default_data_dir())
    rev = sub.add_parser("revoke", help="refuse a key's logons and end its sessions, from now on")
    rev.add_argument("key_id")
    rev.add_argument("--data", default=default_data_dir())
    args = parser.parse_args(argv)
    data_dir = Path(args.data)
    if args.action == "add":
        perms = frozenset(p.strip() for p in args.permissions.split(",") if p.strip())
        try:
            account, key_id, secret = add_key(data_dir, args.account, perms)
        except ValueError as exc:
            print(f"tonne accounts: {exc}", file=sys.stderr)
            return 2
        except KeyStoreError as exc:
            print(f"tonne accounts: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"account": account, "key_id": key_id, "secret": secret}))
        else:
            print(
                f"account {account}\nkey_id  {key_id}\nsecret  {secret}\n"
                "(the secret is shown only this once)"
            )
        return 0
    if args.action == "import":
        try:
            n = import_keys(data_dir, Path(args.file).read_text())
        except KeyStoreError as exc:
            print(f"tonne accounts: {exc}", file=sys.stderr)
            return 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"tonne accounts: {args.file}: {exc!r}", file=sys.stderr)
            return 2
        print(f"{n} keys provisioned in {data_dir}")
        return 0
    if args.action == "revoke":
        try:
            account, revoked = revoke_key(data_dir, args.key_id)
        except UnknownKeyId as exc:
            print(f"tonne accounts: {exc.args[0]} in {data_dir}", file=sys.stderr)
            return 1
        except (OSError, KeyStoreError) as exc:
            print(f"tonne accounts: {exc}", file=sys.stderr)
            return 1
        if revoked:
            print(
                f"revoked key {args.key_id} of account {account}; a running server ends its "
                "sessions at its next look at the key file (every --keys-check-s)"
            )
        else:
            print(f"key {args.key_id} of account {account} was already revoked")
        return 0
    try:
        lines = list_lines(data_dir)
    except (OSError, KeyStoreError) as exc:
        print(f"tonne accounts: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
