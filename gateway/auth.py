"""API keys and signed logon.

An account has one or more API keys: a public `key_id` and a secret shown once when the key
is made (`tonne accounts add`). A logon proves possession of the secret without sending it::

    signature = hex(HMAC-SHA256(key=secret.encode(), msg=f"{key_id}\\n{ts}\\n{nonce}".encode()))

`ts` is the client's clock in integer nanoseconds; the server rejects a logon whose `ts` is
more than `skew_s` away from its own clock (STALE_TIMESTAMP) and any nonce already used with
the key inside that window (REUSED_NONCE), so a captured logon cannot be replayed.

At rest, secrets are encrypted (the server needs them to check an HMAC, so a one-way hash is
not an option): `accounts.json` holds each secret sealed with a 32-byte master key kept in a
separate file (`master.key`, mode 0600) or the TONNE_MASTER_KEY environment variable. The
cipher is HMAC-SHA256 in counter mode as a keystream, with an encrypt-then-MAC tag (stdlib
only). Secrets are never logged; `KeyRecord`'s repr leaves them out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import OrderedDict
from pathlib import Path

import msgspec

from engine.events import Reason

ACCOUNTS_FILE = "accounts.json"
MASTER_KEY_FILE = "master.key"
MASTER_KEY_ENV = "TONNE_MASTER_KEY"
PERMISSIONS = frozenset({"trade", "fund", "retire"})


def logon_payload(key_id: str, ts: int, nonce: str) -> bytes:
    """The exact bytes a logon signs."""
    return f"{key_id}\n{ts}\n{nonce}".encode()


def sign_logon(secret: str, key_id: str, ts: int, nonce: str) -> str:
    return hmac.new(secret.encode(), logon_payload(key_id, ts, nonce), hashlib.sha256).hexdigest()


class KeyRecord:
    """One API key as the server holds it in memory."""

    __slots__ = ("key_id", "account", "permissions", "_secret")

    def __init__(self, key_id: str, account: int, secret: str, permissions: frozenset[str]):
        self.key_id = key_id
        self.account = account
        self.permissions = permissions
        self._secret = secret.encode()

    def verify(self, ts: int, nonce: str, signature: str) -> bool:
        expected = hmac.new(self._secret, logon_payload(self.key_id, ts, nonce), hashlib.sha256)
        return hmac.compare_digest(expected.hexdigest(), signature)

    def __repr__(self) -> str:
        return f"KeyRecord({self.key_id!r}, account={self.account}, secret=<hidden>)"


# -- sealing secrets at rest -----------------------------------------------------------------

_NONCE_BYTES = 16
_TAG_BYTES = 16


def _keystream(master: bytes, nonce: bytes, size: int) -> bytes:
    blocks = []
    for counter in range((size + 31) // 32):
        blocks.append(
            hmac.new(master, b"enc" + nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        )
    return b"".join(blocks)[:size]


def seal(master: bytes, plaintext: bytes) -> str:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ct = bytes(
        a ^ b for a, b in zip(plaintext, _keystream(master, nonce, len(plaintext)), strict=True)
    )
    tag = hmac.new(master, b"mac" + nonce + ct, hashlib.sha256).digest()[:_TAG_BYTES]
    return (nonce + ct + tag).hex()


def unseal(master: bytes, sealed_hex: str) -> bytes:
    raw = bytes.fromhex(sealed_hex)
    nonce, ct, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = hmac.new(master, b"mac" + nonce + ct, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        raise ValueError("sealed secret fails its tag: wrong master key or edited file")
    return bytes(a ^ b for a, b in zip(ct, _keystream(master, nonce, len(ct)), strict=True))


def load_master_key(data_dir: Path, create: bool = False) -> bytes:
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return bytes.fromhex(env)
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no master key at {path} (or ${MASTER_KEY_ENV})")
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())


class StoredKey(msgspec.Struct, frozen=True):
    key_id: str
    account: int
    permissions: list[str]
    secret_sealed: str


class KeyStore:
    """The API keys of all accounts: in memory for the server, `accounts.json` at rest."""

    def __init__(self, master: bytes, keys: list[StoredKey] | None = None) -> None:
        self._master = master
        self._stored: dict[str, StoredKey] = {k.key_id: k for k in keys or ()}
        self._records: dict[str, KeyRecord] = {}
        for k in self._stored.values():
            secret = unseal(master, k.secret_sealed).decode()
            self._records[k.key_id] = KeyRecord(
                k.key_id, k.account, secret, frozenset(k.permissions)
            )

    @classmethod
    def load(cls, data_dir: Path, create: bool = False) -> KeyStore:
        master = load_master_key(data_dir, create=create)
        path = data_dir / ACCOUNTS_FILE
        if not path.exists():
            return cls(master)
        raw = json.loads(path.read_text())
        return cls(master, msgspec.convert(raw["keys"], list[StoredKey]))

    def save(self, data_dir: Path) -> None:
        path = data_dir / ACCOUNTS_FILE
        tmp = path.with_suffix(".tmp")
        body = {"version": 1, "keys": msgspec.to_builtins(list(self._stored.values()))}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def add(
        self, account: int, permissions: frozenset[str] = frozenset({"trade", "retire"})
    ) -> tuple[str, str]:
        """Make a new key for `account`; returns (key_id, secret). The secret is shown once."""
        key_id = "k" + secrets.token_hex(8)
        secret = secrets.token_hex(32)
        self.put(account, key_id, secret, permissions)
        return key_id, secret

    def put(self, account: int, key_id: str, secret: str, permissions: frozenset[str]) -> None:
        """Store a key made elsewhere (a provisioning file); the secret is sealed here."""
        unknown = permissions - PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permissions {sorted(unknown)}")
        if not key_id or len(key_id) > 64 or not secret:
            raise ValueError("a key needs a key_id of 1 to 64 characters and a secret")
        self._stored[key_id] = StoredKey(
            key_id, account, sorted(permissions), seal(self._master, secret.encode())
        )
        self._records[key_id] = KeyRecord(key_id, account, secret, permissions)

    def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    def accounts(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for k in self._stored.values():
            out.setdefault(k.account, []).append(k.key_id)
        return out


class Authenticator:
    """Checks logons: known key, valid signature, fresh timestamp, unused nonce."""

    def __init__(self, keys: KeyStore, skew_s: float = 30.0, nonces_per_key_max: int = 100_000):
        self.keys = keys
        self.skew_ns = int(skew_s * 1e9)
        self.nonces_per_key_max = nonces_per_key_max
        self._nonces: dict[str, OrderedDict[str, int]] = {}  # key_id -> nonce -> ts seen

    def check(
        self, key_id: str, ts: int, nonce: str, signature: str, now_ns: int
    ) -> tuple[KeyRecord | None, Reason | None, str]:
        """(key, None, "") on success, else (None, reason, text). Only success records the
        nonce, so a failed logon cannot burn someone's nonces."""
        record = self.keys.get(key_id)
        if record is None:
            return None, Reason.UNKNOWN_KEY, "no such API key"
        if not nonce or len(nonce) > 64:
            return None, Reason.BAD_SIGNATURE, "nonce must be 1 to 64 characters"
        if not record.verify(ts, nonce, signature):
            return None, Reason.BAD_SIGNATURE, "signature does not match"
        if abs(now_ns - ts) > self.skew_ns:
            return None, Reason.STALE_TIMESTAMP, f"ts is more than {self.skew_ns // 10**9} s off"
        seen = self._nonces.setdefault(key_id, OrderedDict())
        horizon = now_ns - 2 * self.skew_ns  # older nonces are stale anyway
        while seen and (
            next(iter(seen.values())) < horizon or len(seen) >= self.nonces_per_key_max
        ):
            seen.popitem(last=False)
        if nonce in seen:
            return None, Reason.REUSED_NONCE, "nonce already used with this key"
        seen[nonce] = now_ns
        return record, None, ""
