"""API keys and signed logon.

An account has one or more API keys: a public `key_id` and a secret shown once when the key
is made (`tonne accounts add`). A logon proves possession of the secret without sending it::

    signature = hex(HMAC-SHA256(key=secret.encode(), msg=f"{key_id}\\n{ts}\\n{nonce}".encode()))

`ts` is the client's clock in integer nanoseconds; the server rejects a logon whose `ts` is
more than `skew_s` away from its own clock (STALE_TIMESTAMP) and any nonce already used with
the key inside that window (REUSED_NONCE), so a captured logon cannot be replayed. A revoked
key is refused like an unknown one (UNKNOWN_KEY, text "API key revoked").

At rest, secrets are encrypted (the server needs them to check an HMAC, so a one-way hash is
not an option). `accounts.json` (version 2) holds each secret sealed with AES-256-GCM
(`cryptography`): the AES key is derived with HKDF-SHA256 from a 32-byte master key kept in a
separate file (`master.key`, mode 0600) or the TONNE_MASTER_KEY environment variable (hex);
each secret gets a fresh random 96-bit nonce, and the key's id, account and permissions are
the associated data, so a sealed secret copied to another key, or a key whose account or
permissions were edited in the file, does not open. `secret_sealed` is
hex(nonce || ciphertext || tag). Revoking a key erases its sealed secret and records when;
the key id stays, so it cannot be issued again. A version 1 file (the earlier HMAC-keystream
sealing) is refused, not read: its keys must be provisioned again.

Errors::

    StoreError (gateway/durability/store.py: something is wrong with the data folder)
     └── KeyStoreError            the key file or the master key cannot be used
          ├── KeyFileFormatError  accounts.json of another version, or not a key file
          └── SealedSecretError   a sealed secret does not open: edited, moved to another key,
                                  or another master key
    UnknownKeyId (LookupError)    revoking a key id the store does not have

Secrets are never logged; `KeyRecord`'s repr leaves them out.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import secrets
from collections import OrderedDict
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.events import Reason
from gateway.durability.store import StoreError

ACCOUNTS_FILE = "accounts.json"
KEY_FILE_VERSION = 2
MASTER_KEY_FILE = "master.key"
MASTER_KEY_ENV = "TONNE_MASTER_KEY"
MASTER_KEY_BYTES = 32
PERMISSIONS = frozenset({"trade", "fund", "retire", "operator"})


class KeyStoreError(StoreError):
    """The key file or the master key cannot be used; the message names which."""


class KeyFileFormatError(KeyStoreError):
    """`accounts.json` is of a version this tonne does not read, or not a key file at all."""


class SealedSecretError(KeyStoreError):
    """A sealed secret does not open: its bytes or its key's fields were edited, it was moved
    to another key id, or the master key is not the one it was sealed with."""


class UnknownKeyId(LookupError):
    """A key id the store does not have."""


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

    def secret_is(self, secret: str) -> bool:
        """Whether `secret` is this key's (constant time): the console's HTTP Basic logon,
        where the secret itself is sent (gateway/console/app.py)."""
        return hmac.compare_digest(self._secret, secret.encode())

    def same_as(self, other: KeyRecord) -> bool:
        """Whether `other` grants exactly what this does (account, permissions, secret)."""
        return (
            self.account == other.account
            and self.permissions == other.permissions
            and hmac.compare_digest(self._secret, other._secret)
        )

    def __repr__(self) -> str:
        return f"KeyRecord({self.key_id!r}, account={self.account}, secret=<hidden>)"


# -- sealing secrets at rest -----------------------------------------------------------------

_NONCE_BYTES = 12  # 96 bits, the size AES-GCM is specified for
_HKDF_INFO = b"tonne accounts.json v2 AES-256-GCM"


def _aead(master: bytes) -> AESGCM:
    # A derived key, so the master key is never used directly by two algorithms (version 1
    # used it as an HMAC key).
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(master))


def associated_data(key_id: str, account: int, permissions: list[str]) -> bytes:
    """What a sealed secret is bound to: its key's id, account and permissions."""
    fields = {"key_id": key_id, "account": account, "permissions": sorted(permissions)}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> str:
    """hex(nonce || ciphertext || tag), with a fresh random nonce."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return (nonce + aead.encrypt(nonce, plaintext, aad)).hex()


def unseal(aead: AESGCM, sealed_hex: str, aad: bytes) -> bytes:
    """The plaintext, or `SealedSecretError` when the seal does not open with `aad`."""
    try:
        raw = bytes.fromhex(sealed_hex)
    except ValueError:
        raise SealedSecretError("sealed secret is not hex") from None
    try:
        return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealedSecretError(
            "sealed secret does not open: edited, moved to another key, or another master key"
        ) from None


def _master_key_from_hex(text: str, where: str) -> bytes:
    try:
        master = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyStoreError(f"{where}: master key is not hex") from None
    if len(master) != MASTER_KEY_BYTES:
        raise KeyStoreError(f"{where}: master key must be {MASTER_KEY_BYTES} bytes")
    return master


def load_master_key(data_dir: Path, create: bool = False) -> bytes:
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return _master_key_from_hex(env, f"${MASTER_KEY_ENV}")
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no master key at {path} (or ${MASTER_KEY_ENV})")
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(MASTER_KEY_BYTES) + "\n")
    return _master_key_from_hex(path.read_text(), str(path))


class StoredKey(msgspec.Struct, frozen=True):
    """One key as `accounts.json` holds it. A revoked key has no secret, only when."""

    key_id: str
    account: int
    permissions: list[str]
    secret_sealed: str | None
    revoked_at: str | None = None  # UTC, ISO 8601


class KeyInfo(msgspec.Struct, frozen=True):
    """What may be shown about a key: everything but its secret."""

    key_id: str
    account: int
    permissions: list[str]
    revoked_at: str | None


def _utc(now_ns: int) -> str:
    when = datetime.datetime.fromtimestamp(now_ns // 1_000_000_000, datetime.UTC)
    return when.isoformat(timespec="seconds")


class KeyStore:
    """The API keys of all accounts: in memory for the server, `accounts.json` at rest.

    The server loads it when it starts and again whenever the file changes (`KeyFile`,
    `Server.replace_keys`); `revoke` on this object takes effect at once."""

    def __init__(self, master: bytes, keys: list[StoredKey] | None = None) -> None:
        self._aead = _aead(master)
        self._stored: dict[str, StoredKey] = {k.key_id: k for k in keys or ()}
        self._records: dict[str, KeyRecord] = {}
        for k in self._stored.values():
            if k.revoked_at is not None:
                continue
            if k.secret_sealed is None:
                raise SealedSecretError(f"key {k.key_id}: neither a sealed secret nor revoked")
            aad = associated_data(k.key_id, k.account, k.permissions)
            try:
                secret = unseal(self._aead, k.secret_sealed, aad).decode()
            except SealedSecretError as exc:
                raise SealedSecretError(f"key {k.key_id}: {exc}") from None
            self._records[k.key_id] = KeyRecord(
                k.key_id, k.account, secret, frozenset(k.permissions)
            )

    @classmethod
    def load(cls, data_dir: Path, create: bool = False) -> KeyStore:
        """The keys of a data folder; the master key is made when `create` and missing.
        Raises `KeyStoreError` (naming the file) when the file cannot be used."""
        path = data_dir / ACCOUNTS_FILE
        # A new master key only for a folder with no keys yet: keys sealed with a master key
        # that is missing now (say, it came from $TONNE_MASTER_KEY) must not gain a second one.
        try:
            master = load_master_key(data_dir, create=create and not path.exists())
        except FileNotFoundError as exc:
            if path.exists():
                raise KeyStoreError(f"{path} has sealed keys but {exc}") from None
            raise KeyStoreError(str(exc)) from None
        if not path.exists():
            return cls(master)
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise KeyFileFormatError(f"{path}: not a key file: {exc}") from None
        version = raw.get("version") if isinstance(raw, dict) else None
        if version == 1:
            raise KeyFileFormatError(
                f"{path}: key file version 1 (secrets sealed with the retired HMAC keystream) "
                f"is not read any more; this tonne reads version {KEY_FILE_VERSION}. Move the "
                "file aside and provision the keys again (`tonne accounts add`, or "
                "`tonne accounts import` from the file they were issued in)"
            )
        if version != KEY_FILE_VERSION:
            raise KeyFileFormatError(
                f"{path}: key file version {version!r} is not {KEY_FILE_VERSION}, the one "
                "this tonne reads"
            )
        try:
            keys = msgspec.convert(raw["keys"], list[StoredKey])
        except (KeyError, msgspec.ValidationError) as exc:
            raise KeyFileFormatError(f"{path}: not a key file: {exc!r}") from None
        try:
            return cls(master, keys)
        except SealedSecretError as exc:
            raise SealedSecretError(f"{path}: {exc}") from None

    def save(self, data_dir: Path) -> None:
        """Write `accounts.json` atomically and durably (a revocation must not be lost)."""
        path = data_dir / ACCOUNTS_FILE
        tmp = path.with_suffix(".tmp")
        body = {
            "version": KEY_FILE_VERSION,
            "keys": msgspec.to_builtins(list(self._stored.values())),
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

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
        if self.is_revoked(key_id):
            raise ValueError(f"key {key_id} was revoked; a revoked key id is never reused")
        perms = sorted(permissions)
        sealed = seal(self._aead, secret.encode(), associated_data(key_id, account, perms))
        self._stored[key_id] = StoredKey(key_id, account, perms, sealed)
        self._records[key_id] = KeyRecord(key_id, account, secret, permissions)

    def revoke(self, key_id: str, now_ns: int) -> bool:
        """Revoke a key at wall time `now_ns` (the caller's clock): its logons are refused and
        its sealed secret is erased. False when it was revoked already; `UnknownKeyId` when
        there is no such key."""
        stored = self._stored.get(key_id)
        if stored is None:
            raise UnknownKeyId(f"no API key {key_id!r}")
        if stored.revoked_at is not None:
            return False
        self._stored[key_id] = msgspec.structs.replace(
            stored, secret_sealed=None, revoked_at=_utc(now_ns)
        )
        del self._records[key_id]
        return True

    def get(self, key_id: str) -> KeyRecord | None:
        """The key that may log on, or None (unknown or revoked)."""
        return self._records.get(key_id)

    def is_revoked(self, key_id: str) -> bool:
        stored = self._stored.get(key_id)
        return stored is not None and stored.revoked_at is not None

    def describe(self) -> list[KeyInfo]:
        """Every key, revoked ones too, by account then key id; never a secret."""
        return [
            KeyInfo(k.key_id, k.account, list(k.permissions), k.revoked_at)
            for k in sorted(self._stored.values(), key=lambda k: (k.account, k.key_id))
        ]

    def accounts(self) -> dict[int, list[str]]:
        """Account -> its key ids, revoked ones too (the account itself stays open)."""
        out: dict[int, list[str]] = {}
        for k in self._stored.values():
            out.setdefault(k.account, []).append(k.key_id)
        return out


class KeyFile:
    """A data folder's key file, watched: `changed()` says whether its content differs from
    what the last `load()` looked at (a digest of the bytes: exact, and the file is small),
    `load()` reads it. A running server uses it to see keys added, changed and revoked without
    a restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / ACCOUNTS_FILE
        self._seen = self._digest()

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return None

    def changed(self) -> bool:
        return self._digest() != self._seen

    def load(self, create: bool = False) -> KeyStore:
        """The keys as they are now (`KeyStoreError` when the file cannot be used; `create`:
        as `KeyStore.load`, for the first load). A reload finds the file missing only when
        it is being moved or restored: that is an error too (the keys in use stay), never
        "no keys". Each content is tried once: a bad file is reported once, not every look."""
        seen = self._digest()
        self._seen = seen
        if seen is None and not create:
            raise KeyStoreError(f"{self.path} is missing")
        try:
            return KeyStore.load(self.data_dir, create=create)
        except OSError as exc:  # vanished or unreadable between the look and the read
            raise KeyStoreError(f"{self.path}: {exc}") from None


class Authenticator:
    """Checks logons: known key, valid signature, fresh timestamp, unused nonce."""

    def __init__(self, keys: KeyStore, skew_s: float = 30.0, nonces_per_key_max: int = 100_000):
        self.keys = keys
        self.skew_ns = int(skew_s * 1e9)
        self.nonces_per_key_max = nonces_per_key_max
        self._nonces: dict[str, OrderedDict[str, int]] = {}  # key_id -> nonce -> ts seen

    def replace_keys(self, keys: KeyStore) -> set[str]:
        """Check logons against `keys` from now on; the key ids that were usable and are not
        any more, or not as they were (revoked, gone from the file, or re-issued with another
        secret, account or permissions), whose sessions must end. The nonces seen stay: a
        key that comes back cannot have a captured logon replayed."""
        old = self.keys
        ended = set()
        for info in old.describe():
            before = old.get(info.key_id)
            after = keys.get(info.key_id)
            if before is not None and (after is None or not before.same_as(after)):
                ended.add(info.key_id)
        self.keys = keys
        return ended

    def check(
        self, key_id: str, ts: int, nonce: str, signature: str, now_ns: int
    ) -> tuple[KeyRecord | None, Reason | None, str]:
        """(key, None, "") on success, else (None, reason, text). Only success records the
        nonce, so a failed logon cannot burn someone's nonces."""
        record = self.keys.get(key_id)
        if record is None:
            if self.keys.is_revoked(key_id):
                return None, Reason.UNKNOWN_KEY, "API key revoked"
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
