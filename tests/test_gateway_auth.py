"""API keys at rest and the logon check, without a network."""

from __future__ import annotations

import json

import pytest

from engine.events import Reason
from gateway.cli.accounts import add_key
from gateway.cli.accounts import main as accounts_main
from gateway.server.auth import Authenticator, KeyStore, SealedSecretError, sign_logon

NOW = 1_700_000_000 * 10**9


def test_a_provisioned_secret_is_stored_sealed_and_verifies_after_reload(tmp_path):
    account, key_id, secret = add_key(tmp_path)
    assert account == 1
    text = (tmp_path / "accounts.json").read_text()
    assert secret not in text and key_id in text
    assert (tmp_path / "master.key").stat().st_mode & 0o077 == 0
    keys = KeyStore.load(tmp_path)
    record = keys.get(key_id)
    assert record is not None and record.account == 1
    assert record.verify(NOW, "n", sign_logon(secret, key_id, NOW, "n"))
    assert secret not in repr(record)
    assert add_key(tmp_path)[0] == 2


def test_an_edited_sealed_secret_is_refused_at_load(tmp_path):
    add_key(tmp_path)
    path = tmp_path / "accounts.json"
    body = json.loads(path.read_text())
    sealed = body["keys"][0]["secret_sealed"]
    body["keys"][0]["secret_sealed"] = (
        sealed[:40] + ("0" if sealed[40] != "0" else "1") + sealed[41:]
    )
    path.write_text(json.dumps(body))
    with pytest.raises(SealedSecretError, match="does not open") as caught:
        KeyStore.load(tmp_path)
    assert str(path) in str(caught.value)


def test_logon_checks_key_signature_time_and_nonce_in_that_order(tmp_path):
    keys = KeyStore(b"m" * 32)
    key_id, secret = keys.add(7)
    auth = Authenticator(keys, skew_s=5)

    def check(ts, nonce, secret=secret, key=key_id):
        return auth.check(key, ts, nonce, sign_logon(secret, key, ts, nonce), NOW)[1]

    assert check(NOW, "a", key="other") is Reason.UNKNOWN_KEY
    assert check(NOW, "a", secret="x") is Reason.BAD_SIGNATURE
    assert check(NOW - 6 * 10**9, "a") is Reason.STALE_TIMESTAMP
    assert check(NOW + 6 * 10**9, "a") is Reason.STALE_TIMESTAMP
    assert check(NOW, "a") is None
    assert check(NOW, "a") is Reason.REUSED_NONCE
    assert check(NOW - 10**9, "b") is None
    assert check(NOW, "") is Reason.BAD_SIGNATURE


def test_the_accounts_command_prints_the_secret_once_and_lists_key_ids(tmp_path, capsys):
    assert accounts_main(["add", "--data", str(tmp_path), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert accounts_main(["list", "--data", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert made["key_id"] in listed and made["secret"] not in listed
    assert accounts_main(["add", "--data", str(tmp_path), "--permissions", "root"]) == 2


def test_keys_from_a_config_file_are_sealed_and_verify(tmp_path):
    config = tmp_path / "keys.jsonl"
    config.write_text(
        '{"account": 5, "key_id": "desk-5", "secret": "s3cr3t", "permissions": ["trade"]}\n'
        '{"account": 6, "key_id": "desk-6", "secret": "other"}\n'
    )
    data = tmp_path / "data"
    assert accounts_main(["import", str(config), "--data", str(data)]) == 0
    assert "s3cr3t" not in (data / "accounts.json").read_text()
    keys = KeyStore.load(data)
    record = keys.get("desk-5")
    assert record is not None and record.account == 5 and record.permissions == {"trade"}
    assert record.verify(NOW, "n", sign_logon("s3cr3t", "desk-5", NOW, "n"))
    assert keys.get("desk-6").permissions == {"trade", "retire"}
    config.write_text('{"account": 1, "key_id": "x", "secret": "y", "permissions": ["root"]}')
    assert accounts_main(["import", str(config), "--data", str(data)]) == 2
