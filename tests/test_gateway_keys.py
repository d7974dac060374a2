"""API keys at rest (AES-GCM sealing, the key file's version) and key revocation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_gateway_harness import run, running_server

from engine.events import Reason
from gateway.cli.accounts import add_key
from gateway.cli.accounts import main as accounts_main
from gateway.client.client import Client, LogonFailed
from gateway.durability.store import StoreError
from gateway.server.auth import (
    MASTER_KEY_ENV,
    Authenticator,
    KeyFileFormatError,
    KeyStore,
    KeyStoreError,
    SealedSecretError,
    UnknownKeyId,
    sign_logon,
)

NOW = 1_700_000_000 * 10**9
SECRET = "5ecret-5ecret-5ecret"


@pytest.fixture(autouse=True)
def _master_key_from_the_folder(monkeypatch):
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


def logon(auth: Authenticator, key_id: str, secret: str, nonce: str) -> tuple[Reason | None, str]:
    _, reason, text = auth.check(key_id, NOW, nonce, sign_logon(secret, key_id, NOW, nonce), NOW)
    return reason, text


def key_file(data_dir) -> dict:
    return json.loads((data_dir / "accounts.json").read_text())


def write_key_file(data_dir, body: dict) -> None:
    (data_dir / "accounts.json").write_text(json.dumps(body))


def provision(data_dir, *rows: tuple[int, str, str, list[str]]) -> None:
    store = KeyStore.load(data_dir, create=True)
    for account, key_id, secret, perms in rows:
        store.put(account, key_id, secret, frozenset(perms))
    store.save(data_dir)


# -- sealing -------------------------------------------------------------------------------


def test_a_sealed_secret_contains_neither_the_secret_nor_its_bytes(tmp_path):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]))
    text = (tmp_path / "accounts.json").read_text()
    sealed = key_file(tmp_path)["keys"][0]["secret_sealed"]
    assert SECRET not in text and SECRET.encode().hex() not in text
    assert SECRET.encode() not in bytes.fromhex(sealed)
    assert len(bytes.fromhex(sealed)) == 12 + len(SECRET) + 16  # nonce, ciphertext, tag


def test_the_same_secret_sealed_twice_gives_two_different_seals(tmp_path):
    provision(tmp_path, (1, "a", SECRET, ["trade"]))
    first = key_file(tmp_path)["keys"][0]["secret_sealed"]
    provision(tmp_path, (1, "a", SECRET, ["trade"]))
    second = key_file(tmp_path)["keys"][0]["secret_sealed"]
    assert first[:24] != second[:24]  # a fresh 96-bit nonce each time
    assert first != second


def test_the_key_file_is_version_2_and_the_master_key_is_private(tmp_path):
    add_key(tmp_path)
    assert key_file(tmp_path)["version"] == 2
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "accounts.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_tampered_sealed_secret_refuses_to_open_naming_the_file_and_key(tmp_path, where):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]))
    body = key_file(tmp_path)
    raw = bytearray(bytes.fromhex(body["keys"][0]["secret_sealed"]))
    raw[{"nonce": 0, "ciphertext": 12, "tag": -1}[where]] ^= 0x01
    body["keys"][0]["secret_sealed"] = raw.hex()
    write_key_file(tmp_path, body)
    with pytest.raises(SealedSecretError, match="desk-1") as caught:
        KeyStore.load(tmp_path)
    assert str(tmp_path / "accounts.json") in str(caught.value)


def test_a_sealed_secret_moved_to_another_key_id_refuses_to_open(tmp_path):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]), (1, "desk-2", "other", ["trade"]))
    body = key_file(tmp_path)
    one, two = body["keys"]
    one["secret_sealed"], two["secret_sealed"] = two["secret_sealed"], one["secret_sealed"]
    write_key_file(tmp_path, body)
    with pytest.raises(SealedSecretError, match="desk-1"):
        KeyStore.load(tmp_path)


def test_a_key_whose_permissions_or_account_were_edited_refuses_to_open(tmp_path):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]))
    original = key_file(tmp_path)
    for field, value in [("permissions", ["fund", "trade"]), ("account", 2)]:
        body = json.loads(json.dumps(original))
        body["keys"][0][field] = value
        write_key_file(tmp_path, body)
        with pytest.raises(SealedSecretError):
            KeyStore.load(tmp_path)
    write_key_file(tmp_path, original)
    assert KeyStore.load(tmp_path).get("desk-1") is not None


def test_another_master_key_refuses_to_open_the_secrets(tmp_path, monkeypatch):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]))
    monkeypatch.setenv(MASTER_KEY_ENV, "ab" * 32)
    with pytest.raises(SealedSecretError, match="another master key"):
        KeyStore.load(tmp_path)
    monkeypatch.delenv(MASTER_KEY_ENV)
    assert KeyStore.load(tmp_path).get("desk-1") is not None


def test_a_master_key_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(MASTER_KEY_ENV, "ab" * 16)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        KeyStore.load(tmp_path)


# -- the key file's version ----------------------------------------------------------------

VERSION_1 = {
    "version": 1,
    "keys": [
        {
            "key_id": "k0123456789abcdef",
            "account": 1,
            "permissions": ["retire", "trade"],
            "secret_sealed": "00" * 16 + "11" * 64 + "22" * 16,
        }
    ],
}


def test_a_version_1_key_file_is_refused_with_an_error_naming_the_file(tmp_path):
    add_key(tmp_path)  # a master key, as the old folder has
    write_key_file(tmp_path, VERSION_1)
    path = tmp_path / "accounts.json"
    with pytest.raises(KeyFileFormatError, match="version 1") as caught:
        KeyStore.load(tmp_path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, StoreError)  # `tonne serve` refuses to start on it


def test_the_accounts_command_refuses_a_version_1_file_and_leaves_it_as_it_was(tmp_path, capsys):
    add_key(tmp_path)
    write_key_file(tmp_path, VERSION_1)
    before = (tmp_path / "accounts.json").read_bytes()
    for argv in (["add"], ["list"], ["revoke", "k0123456789abcdef"]):
        assert accounts_main([*argv, "--data", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert str(tmp_path / "accounts.json") in err and "version 1" in err
    assert (tmp_path / "accounts.json").read_bytes() == before


@pytest.mark.parametrize("body", [{"keys": []}, {"version": 3, "keys": []}, [1, 2]])
def test_a_key_file_of_no_or_an_unknown_version_is_refused(tmp_path, body):
    add_key(tmp_path)
    write_key_file(tmp_path, body)
    with pytest.raises(KeyFileFormatError, match="accounts.json"):
        KeyStore.load(tmp_path)


# -- revocation ----------------------------------------------------------------------------


def test_a_revoked_key_cannot_log_on_and_the_accounts_other_key_still_can():
    keys = KeyStore(b"m" * 32)
    key_id, secret = keys.add(7)
    spare_id, spare = keys.add(7)
    auth = Authenticator(keys, skew_s=5)
    assert logon(auth, key_id, secret, "a") == (None, "")
    assert keys.revoke(key_id, NOW) is True
    assert logon(auth, key_id, secret, "b") == (Reason.UNKNOWN_KEY, "API key revoked")
    assert logon(auth, spare_id, spare, "b") == (None, "")
    assert keys.revoke(key_id, NOW) is False  # already revoked: nothing changes
    assert keys.accounts() == {7: [key_id, spare_id]}


def test_revoking_an_unknown_key_id_is_an_error():
    with pytest.raises(UnknownKeyId, match="nope"):
        KeyStore(b"m" * 32).revoke("nope", NOW)


def test_a_revocation_is_kept_in_the_key_file_and_erases_the_sealed_secret(tmp_path, capsys):
    account, key_id, secret = add_key(tmp_path)
    _, spare_id, spare = add_key(tmp_path, account=account)
    assert accounts_main(["revoke", key_id, "--data", str(tmp_path)]) == 0
    assert f"revoked key {key_id} of account {account}" in capsys.readouterr().out
    stored = {k["key_id"]: k for k in key_file(tmp_path)["keys"]}
    assert stored[key_id]["secret_sealed"] is None and stored[key_id]["revoked_at"]
    keys = KeyStore.load(tmp_path)
    assert keys.get(key_id) is None and keys.is_revoked(key_id)
    auth = Authenticator(keys)
    assert logon(auth, key_id, secret, "a")[0] is Reason.UNKNOWN_KEY
    assert logon(auth, spare_id, spare, "a") == (None, "")
    assert add_key(tmp_path)[0] == account + 1  # the account keeps its number
    assert accounts_main(["revoke", key_id, "--data", str(tmp_path)]) == 0
    assert "already revoked" in capsys.readouterr().out


def test_a_revoked_key_cannot_be_brought_back_by_editing_the_file(tmp_path):
    _, key_id, _ = add_key(tmp_path)
    assert accounts_main(["revoke", key_id, "--data", str(tmp_path)]) == 0
    body = key_file(tmp_path)
    body["keys"][0]["revoked_at"] = None
    write_key_file(tmp_path, body)
    with pytest.raises(SealedSecretError, match=key_id):
        KeyStore.load(tmp_path)


def test_a_revoked_key_id_is_never_issued_again(tmp_path, capsys):
    provision(tmp_path, (1, "desk-1", SECRET, ["trade"]))
    assert accounts_main(["revoke", "desk-1", "--data", str(tmp_path)]) == 0
    config = tmp_path / "keys.jsonl"
    config.write_text('{"account": 1, "key_id": "desk-1", "secret": "new"}\n')
    assert accounts_main(["import", str(config), "--data", str(tmp_path)]) == 2
    assert "revoked" in capsys.readouterr().err
    assert KeyStore.load(tmp_path).get("desk-1") is None


def test_revoking_an_unknown_key_id_from_the_command_line_fails_and_changes_nothing(
    tmp_path, capsys
):
    add_key(tmp_path)
    before = (tmp_path / "accounts.json").read_bytes()
    assert accounts_main(["revoke", "k-no-such-key", "--data", str(tmp_path)]) != 0
    captured = capsys.readouterr()
    assert "k-no-such-key" in captured.err and captured.out == ""
    assert (tmp_path / "accounts.json").read_bytes() == before
    assert accounts_main(["revoke", "k-no-such-key", "--data", str(tmp_path / "empty")]) != 0


def test_list_shows_every_key_with_account_permissions_and_status_and_never_a_secret(
    tmp_path, capsys
):
    assert accounts_main(["add", "--data", str(tmp_path), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    argv = ["add", "--data", str(tmp_path), "--permissions", "trade,fund", "--json"]
    assert accounts_main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert accounts_main(["revoke", first["key_id"], "--data", str(tmp_path)]) == 0
    revoke_out = capsys.readouterr()
    assert accounts_main(["list", "--data", str(tmp_path)]) == 0
    listed = capsys.readouterr()
    rows = {line.split()[0]: line.split()[1:] for line in listed.out.splitlines()[1:]}
    assert rows[first["key_id"]][:3] == ["1", "retire,trade", "revoked"]
    assert rows[second["key_id"]] == ["2", "fund,trade", "active"]
    printed = revoke_out.out + revoke_out.err + listed.out + listed.err
    sealed = [k["secret_sealed"] for k in key_file(tmp_path)["keys"] if k["secret_sealed"]]
    for secret in [first["secret"], second["secret"], *sealed]:
        assert secret not in printed


# -- a running server ----------------------------------------------------------------------


def test_a_server_refuses_a_key_revoked_in_its_key_store_from_the_next_logon():
    async def body():
        async with running_server(accounts=2) as env:
            key_id, secret = env.keys[1]
            first = await env.tcp(1)
            env.server.auth.keys.revoke(key_id, NOW)
            c = await env.tcp()
            with pytest.raises(LogonFailed) as caught:
                await c.logon(key_id, secret)
            assert caught.value.reason is Reason.UNKNOWN_KEY
            assert (await first.balances()) is not None  # a session already on stays on

    run(body)


def test_tonne_serve_refuses_a_key_revoked_while_it_runs_and_after_a_restart(tmp_path):
    from gateway.cli.serve import serve

    _, key_id, secret = add_key(tmp_path)

    async def serving():
        stop = asyncio.Event()
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(
            serve(
                tmp_path,
                tcp_port=0,
                ws_port=0,
                ready=ready.set_result,
                stop=stop,
                keys_check_s=0.05,
            )
        )
        done, _ = await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, task.result()
        return stop, task, ready.result()["tcp_port"]

    async def logs_on(port: int) -> bool:
        c = await Client.connect_tcp("127.0.0.1", port)
        try:
            await c.logon(key_id, secret)
            return True
        except LogonFailed as exc:
            assert exc.reason is Reason.UNKNOWN_KEY
            return False
        finally:
            await c.close()

    async def body():
        stop, task, port = await serving()
        assert await logs_on(port)
        assert accounts_main(["revoke", key_id, "--data", str(tmp_path)]) == 0
        async with asyncio.timeout(10):  # at its next look at the key file
            while await logs_on(port):
                await asyncio.sleep(0.02)
        stop.set()
        assert await task == 0
        stop, task, port = await serving()
        assert not await logs_on(port)
        stop.set()
        assert await task == 0

    run(body, 40)


def test_keys_whose_master_key_is_missing_are_refused_and_no_second_master_key_is_made(
    tmp_path,
):
    add_key(tmp_path)
    (tmp_path / "master.key").unlink()  # e.g. it lived in $TONNE_MASTER_KEY, now unset
    with pytest.raises(KeyStoreError, match="master key"):
        KeyStore.load(tmp_path, create=True)
    assert not (tmp_path / "master.key").exists()


def test_changes_to_the_key_file_wait_for_each_other():
    """`add`, `import` and `revoke` hold the folder's lock while they read, change and write
    accounts.json; a revocation made while another change holds it is not lost."""
    import fcntl
    import os
    import tempfile
    import threading
    from pathlib import Path

    from gateway.cli.accounts import LOCK_FILE, key_file_lock, revoke_key

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, key_id, _ = add_key(folder)
        done = threading.Event()
        with key_file_lock(folder):
            worker = threading.Thread(target=lambda: (revoke_key(folder, key_id), done.set()))
            worker.start()
            assert not done.wait(0.2)  # it waits for the lock held here
        worker.join(10)
        assert done.is_set()
        assert KeyStore.load(folder).describe()[0].revoked_at is not None
        fd = os.open(folder / LOCK_FILE, os.O_RDWR)
        try:  # and nothing holds the lock afterwards
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_key_that_comes_back_after_a_reload_still_refuses_a_replayed_logon(tmp_path):
    """The nonces seen are kept across key reloads: a file restored from a backup that
    lacked the key, then the key again, must not let a captured logon be replayed."""
    _, key_id, secret = add_key(tmp_path)
    with_key = KeyStore.load(tmp_path)
    auth = Authenticator(with_key, skew_s=30)
    now = time.time_ns()
    signature = sign_logon(secret, key_id, now, "n-1")
    key, reason, _ = auth.check(key_id, now, "n-1", signature, now)
    assert key is not None and reason is None
    without = KeyStore(bytes(32))  # a file without the key (any master key opens no key)
    assert auth.replace_keys(without) == {key_id}  # gone: its sessions end
    assert auth.replace_keys(KeyStore.load(tmp_path)) == set()  # back
    key, reason, _ = auth.check(key_id, now, "n-1", signature, now + 1)
    assert key is None and reason is Reason.REUSED_NONCE


def test_a_reload_ends_the_sessions_of_a_key_reissued_with_other_rights(tmp_path):
    from gateway.cli.accounts import import_keys

    _, key_id, secret = add_key(tmp_path)
    auth = Authenticator(KeyStore.load(tmp_path), skew_s=30)
    assert auth.replace_keys(KeyStore.load(tmp_path)) == set()  # the same: nothing ends
    same_id_new_secret = json.dumps(
        {"account": 1, "key_id": key_id, "secret": "ab" * 32, "permissions": ["trade"]}
    )
    import_keys(tmp_path, same_id_new_secret)
    assert auth.replace_keys(KeyStore.load(tmp_path)) == {key_id}
