"""`tonne certificate verify | export | head` from a real run (issue 16): a basket bought to
retire on `tonne serve`'s code, its proof exported while the server runs, then checked
offline, against a published head and against the data folder; every refusal exits 1 with
the field named, or 2 for what cannot be read at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.certificates import find_proof, read_certificate_file
from gateway.cli import main as cli
from gateway.cli.accounts import add_key
from gateway.durability.store import SQLiteStore
from settlement.certificate_proof import CertificateProof, OrderClaims, ProofError
from tests.test_cli_buy import CAR_BLOCK, FUND, REMOVALS
from tests.test_gateway_custody import key_file, serving

CERT = "RC-00000001"


def tonne(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def run(*args: str) -> int:
    code: int = cli.main(list(args))
    return code


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data folder after a basket bought to retire (20 t over two fills), the bare
    certificate `tonne buy` saved, and a proof exported while the server still ran."""
    tmp = tmp_path_factory.mktemp("cert")
    data = tmp / "data"
    seller = key_file(tmp, add_key(data, permissions=FUND), "seller.json")
    buyer = key_file(tmp, add_key(data, permissions=FUND), "buyer.json")
    with serving(data) as info:
        at = ["--connect", f"127.0.0.1:{info['tcp_port']}"]
        assert run("custody", "deposit", *at, "--key", seller, "--serial", CAR_BLOCK) == 0
        assert run("custody", "deposit", *at, "--key", buyer, "--cash", "USD", "1000.00") == 0
        for series, price in (("CAR-1568-2025", "1850"), ("TONNE-NBR", "1800")):
            sell = ["order", "sell", series, "--qty", "10", "--price", price]
            assert run(*sell, *at, "--key", seller) == 0
        buy = ["buy", "--screen", REMOVALS, "--qty", "20", "--limit", "1900", *at]
        bare = str(tmp / "bare.json")
        retire = ["--retire-for", "Nordic Climate Desk", "--certificate-out", bare]
        assert run(*buy, *retire, "--key", buyer) == 0
        live = str(tmp / "live.json")
        exported_live = run("certificate", "export", CERT, "--data", str(data), "-o", live)
    return {"tmp": tmp, "data": str(data), "bare": bare, "live": live, "live_code": exported_live}


def exported(folder: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    path = folder["tmp"] / f"proof{len(extra)}.json"
    code, lines, err = tonne(
        capsys, "certificate", "export", CERT, "--data", folder["data"], "-o", str(path), *extra
    )
    assert code == 0, (lines, err)
    assert lines[-1] == f"proof saved to {path} (tonne certificate verify)"
    return path


def test_a_proof_exported_from_a_real_run_verifies_offline(folder, capsys):
    assert folder["live_code"] == 0, "exported while the server ran"
    live = read_certificate_file(Path(folder["live"]))
    assert isinstance(live, CertificateProof) and isinstance(live.certificate, OrderClaims)
    path = exported(folder, capsys)
    code, lines, err = tonne(capsys, "certificate", "verify", str(path))
    # consistent, but pinned to nothing: not called valid (a rehashed forgery is consistent)
    assert code == 3 and len(lines) == 2, (lines, err)
    assert lines[0].startswith(
        f"OK certificate {CERT}: 20 t retired for 'Nordic Climate Desk', records "
    ), lines
    assert lines[0].endswith("not pinned to a published head"), lines
    assert lines[1].startswith("NOT PINNED: ") and "--head HASH" in lines[1], lines


def test_a_proof_verifies_against_the_head_the_venue_published(folder, capsys):
    code, lines, _ = tonne(capsys, "certificate", "head", "--data", folder["data"])
    assert code == 0 and len(lines) == 1
    seq, hash_hex = lines[0].split()
    path = exported(folder, capsys)
    code, lines, _ = tonne(
        capsys, "certificate", "verify", str(path), "--head", hash_hex.upper(), "--head-seq", seq
    )
    assert code == 0 and lines[0].endswith(f"reaches the published head at record {seq}"), lines
    code, lines, _ = tonne(capsys, "certificate", "verify", str(path), "--head", "ab" * 32)
    assert code == 1 and lines[0].startswith(f"FAIL certificate {CERT}: head.hash: "), lines


def test_a_proof_a_bare_certificate_and_an_id_verify_against_the_data_folder(folder, capsys):
    path = exported(folder, capsys)
    for target in (str(path), folder["bare"], CERT):
        code, lines, err = tonne(capsys, "certificate", "verify", target, "--data", folder["data"])
        assert code == 0, (target, lines, err)
        assert lines[0].startswith(f"OK certificate {CERT}: 20 t retired for "), lines
        assert lines[0].endswith("matches the settlement log"), lines


def test_a_proof_ending_at_the_certificates_own_record_is_the_smallest(folder, capsys):
    store = SQLiteStore(folder["data"], readonly=True)
    try:
        proof = find_proof(store, CERT)
    finally:
        store.close()
    last = proof.certificate.fills[-1].record_seq  # type: ignore[union-attr]
    path = exported(folder, capsys, "--head-seq", str(last))
    small = read_certificate_file(path)
    assert isinstance(small, CertificateProof) and small.head.seq == last
    assert len(small.chain) == 4, "two fills: each its fill record and its retirement"
    code, lines, _ = tonne(
        capsys,
        "certificate",
        "export",
        CERT,
        "--data",
        folder["data"],
        "-o",
        str(path),
        "--head-seq",
        str(last - 1),
    )
    assert code == 1 and "head_seq: " in lines[0], lines


def test_an_altered_file_fails_naming_the_field(folder, capsys):
    proof = json.loads(exported(folder, capsys).read_text())
    cases = {
        "certificate.beneficiary": lambda d: d["certificate"].update(beneficiary="Someone Else"),
        "certificate.fills[0].serials": lambda d: d["certificate"]["fills"][0]["serials"][0].update(
            last=d["certificate"]["fills"][0]["serials"][0]["last"] + 1
        ),
        "chain[1].prev": lambda d: d["chain"][1].update(prev="0" * 64),
        "format": lambda d: d.update(format="tonne-certificate-2"),
    }
    for field, change in cases.items():
        doc = json.loads(json.dumps(proof))
        change(doc)
        path = folder["tmp"] / "altered.json"
        path.write_text(json.dumps(doc))
        code, lines, err = tonne(capsys, "certificate", "verify", str(path))
        assert code == 1 and len(lines) == 1, (field, lines, err)
        assert f": {field}: " in lines[0], (field, lines)
    path = folder["tmp"] / "junk.json"
    path.write_text("{not json")
    code, lines, _ = tonne(capsys, "certificate", "verify", str(path))
    assert code == 1 and lines[0].startswith(f"FAIL {path}: file: "), lines


def test_an_altered_bare_certificate_fails_against_the_log_naming_the_field(folder, capsys):
    forged = folder["tmp"] / "forged.json"
    forged.write_text(Path(folder["bare"]).read_text().replace("Nordic Climate", "Nordic Climax"))
    code, lines, _ = tonne(capsys, "certificate", "verify", str(forged), "--data", folder["data"])
    assert code == 1 and lines[0].startswith(f"FAIL certificate {CERT}: certificate.beneficiary: ")
    code, lines, err = tonne(capsys, "certificate", "verify", folder["bare"])
    assert code == 2 and "bare certificate" in err and "--data" in err, (lines, err)
    forged.write_text(Path(folder["bare"]).read_text().replace(CERT, "RC-00000099"))
    code, lines, _ = tonne(capsys, "certificate", "verify", str(forged), "--data", folder["data"])
    assert code == 1 and lines[0].startswith("FAIL certificate RC-00000099: cert_id: no "), lines


def test_what_cannot_be_found_or_read_is_refused(folder, capsys, tmp_path):
    code, lines, _ = tonne(capsys, "certificate", "verify", "RC-00000099", "--data", folder["data"])
    assert code == 1 and lines[0] == (
        "FAIL certificate RC-00000099: cert_id: no certificate 'RC-00000099' in the settlement log"
    )
    code, lines, err = tonne(capsys, "certificate", "verify", str(tmp_path / "none.json"))
    assert code == 2 and "no such file, and not a certificate id" in err
    empty = str(tmp_path / "empty")
    code, lines, err = tonne(capsys, "certificate", "verify", CERT, "--data", empty)
    assert code == 2 and "no store at" in err
    for args in (["export", CERT, "-o", str(tmp_path / "x.json")], ["head"]):
        code, lines, err = tonne(capsys, "certificate", *args, "--data", empty)
        assert code == 2 and "no store at" in err, args
    code, lines, err = tonne(
        capsys, "certificate", "export", CERT, "--data", folder["data"], "-o", str(tmp_path)
    )
    assert code == 2 and "tonne certificate: " in err  # a folder where the file should go


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["verify", "f.json", "--head", "abc"], "--head is a record hash"),
        (["verify", "f.json", "--head-seq", "3"], "--head-seq goes with --head"),
        (["export", CERT, "-o", "f.json", "--head-seq", "0"], "--head-seq is a record seq"),
        (["export", CERT], "-o/--out"),
    ],
)
def test_a_command_that_means_nothing_is_a_usage_error(capsys, args, why):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["certificate", *args])
    assert exit_.value.code == 2 and why in capsys.readouterr().err


def test_a_file_too_large_for_a_proof_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 101)
    with pytest.raises(ProofError) as caught:
        read_certificate_file(path, bytes_max=100)
    assert caught.value.field == "file" and "more than 100 bytes" in str(caught.value)


def test_a_proof_checked_against_the_folder_and_a_published_head_at_once(folder, capsys):
    path = exported(folder, capsys)
    head = json.loads(path.read_text())["head"]["hash"]
    for pin, code_, end in ((head, 0, "matches the settlement log"), ("cd" * 32, 1, "")):
        code, lines, _ = tonne(
            capsys, "certificate", "verify", str(path), "--data", folder["data"], "--head", pin
        )
        assert code == code_ and lines[0].endswith(end), lines
    assert lines[0].startswith(f"FAIL certificate {CERT}: head.hash: "), lines


def test_a_broken_log_proves_nothing(folder, capsys, tmp_path):
    """A record whose bytes no longer match its checksum: the folder's log is broken."""
    import shutil
    import sqlite3

    from gateway.durability.store import db_path

    data = tmp_path / "data"
    shutil.copytree(folder["data"], data)
    with sqlite3.connect(db_path(data)) as db:
        db.execute("UPDATE log SET record = record || x'00' WHERE seq = 7")
    code, lines, _ = tonne(capsys, "certificate", "verify", CERT, "--data", str(data))
    assert code == 1 and lines[0].startswith("FAIL settlement log: "), lines
    assert "seq 7" in lines[0]


def test_an_empty_folder_has_no_head_to_publish(tmp_path, capsys):
    SQLiteStore(tmp_path / "data").close()  # a store with its schema and no record
    code, lines, _ = tonne(capsys, "certificate", "head", "--data", str(tmp_path / "data"))
    assert code == 1 and lines == ["FAIL the settlement log is empty"]
    code, lines, _ = tonne(capsys, "certificate", "verify", CERT, "--data", str(tmp_path / "data"))
    assert code == 1 and "cert_id: no certificate" in lines[0], lines


def test_a_bare_retirement_certificate_reads_as_what_it_claims(tmp_path):
    """The wire's `certificate` (a `retire` command's) read from a file: its claims, which
    the log's proof then checks, naming a changed field."""
    import msgspec

    from gateway.wire import protocol as p
    from settlement.certificate_proof import RetirementClaims, claims_of, with_claims
    from settlement.certificate_verify import verify_proof
    from tests.test_certificate_offline import RETIREMENT, proof_of, venue

    cert = venue().retirement
    wire = p.Certificate(
        cert_id=cert.cert_id,
        account=cert.account,
        project=cert.project,
        vintage=cert.vintage,
        qty=cert.qty,
        serials=[p.serial_range(r) for r in cert.ranges],
        beneficiary=cert.beneficiary,
        purpose=cert.purpose.value,
        claim=cert.claim,
        period_start=cert.period_start,
        period_end=cert.period_end,
        ts=cert.ts,
        record_seq=cert.record_seq,
        record_hash=cert.record_hash,
    )
    path = tmp_path / "retired.json"
    path.write_bytes(msgspec.json.encode(wire))
    claims = read_certificate_file(path)
    assert isinstance(claims, RetirementClaims) and claims == claims_of(cert)
    assert verify_proof(with_claims(proof_of(RETIREMENT), claims)).ok
    forged = msgspec.structs.replace(claims, qty=claims.qty + 1)
    got = verify_proof(with_claims(proof_of(RETIREMENT), forged))
    assert not got.ok and got.field == "certificate.qty"
    path.write_text('{"type": "certificate", "cert_id": 7}')
    with pytest.raises(ProofError) as caught:
        read_certificate_file(path)
    assert caught.value.field == "file" and "not a certificate" in str(caught.value)


def test_tonne_log_verify_checks_a_proof_file_too(folder, capsys):
    path = exported(folder, capsys)
    code, lines, err = tonne(
        capsys, "log", "verify", "--data", folder["data"], "--certificate", str(path)
    )
    assert code == 0, (lines, err)
    assert lines[-1].startswith(f"OK certificate {CERT}: 20 t retired for ") and lines[-1].endswith(
        "matches the settlement log"
    ), lines
    forged = folder["tmp"] / "forged-proof.json"
    forged.write_text(path.read_text().replace("Nordic Climate Desk", "Someone Else"))
    code, lines, _ = tonne(
        capsys, "log", "verify", "--data", folder["data"], "--certificate", str(forged)
    )
    assert code == 1 and lines[-1].startswith(f"FAIL certificate {CERT}: certificate.beneficiary")
