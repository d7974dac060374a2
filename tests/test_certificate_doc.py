"""docs/CERTIFICATES.md is enough to write a checker: one written here from the document
alone (hashlib, json and a generic msgpack decoder, nothing of tonne's) accepts the
document's example proof and refuses it altered, as tonne's own checker does; and the
example verifies against the head the document gives."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.cli import main as cli
from settlement.certificate_proof import decode_proof
from settlement.certificate_verify import verify_proof

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE = DOCS / "certificate-example.json"
HEAD_SEQ, HEAD = 9, "f2376b4536854e1ec26923bcd9d297ff23b3100fc5c5bd4a9f751e64fd4a846d"
HEX64 = re.compile(r"[0-9a-f]{64}")


def record_hash(r: dict[str, Any]) -> str:
    """SHA-256 of prev | seq | ts | kind | body, as the document says."""
    data = b"|".join(
        [r["prev"].encode(), str(r["seq"]).encode(), str(r["ts"]).encode(), r["kind"].encode()]
    )
    return hashlib.sha256(data + b"|" + bytes.fromhex(r["body"])).hexdigest()


def ranges(serials: list[dict[str, Any]]) -> list[list[Any]]:
    out = []
    for s in serials:
        r = [s["project"], s["vintage"], s["first"], s["last"]]
        out.append([*r, s["batch"]] if s["batch"] else r)
    return out


def check(doc: dict[str, Any], head: str | None = None) -> bool:
    """The document's steps 0 to 4 for an order certificate, written from it alone."""
    if doc.get("format") != "tonne-certificate-1":
        return False
    chain, cert = doc["chain"], doc["certificate"]
    s = chain[0]["seq"]
    for j, r in enumerate(chain):
        if r["seq"] != s + j or not HEX64.fullmatch(r["hash"]) or record_hash(r) != r["hash"]:
            return False
        if j and r["prev"] != chain[j - 1]["hash"]:
            return False
    if doc["head"] != {"seq": chain[-1]["seq"], "hash": chain[-1]["hash"]}:
        return False
    by_seq = {r["seq"]: r for r in chain}
    listed = set()
    for f in cert["fills"]:
        record, before = by_seq.get(f["record_seq"]), by_seq.get(f["record_seq"] - 1)
        if record is None or before is None or record["hash"] != f["record_hash"]:
            return False
        b = msgspec.msgpack.decode(bytes.fromhex(record["body"]))
        fill = msgspec.msgpack.decode(bytes.fromhex(before["body"]))
        said = [cert[k] for k in ("cert_id", "order_id", "client_order_id")]
        said += [f["trade_id"], cert["account"], ranges(f["serials"]), f["qty"]]
        said += [cert[k] for k in ("beneficiary", "purpose", "claim")]
        said += [cert[k] for k in ("period_start", "period_end", "ts")]
        if b != ["fill_retirement", *said] or b[-1] != record["ts"]:
            return False
        if fill[0] not in ("fill", "contract_fill") or fill[1] != f["trade_id"]:
            return False
        if fill[2] != f["series"] or fill[6] != cert["account"] or fill[11] != b[6]:
            return False
        listed.add(f["record_seq"])
    if sum(f["qty"] for f in cert["fills"]) != cert["qty"] or len(listed) != len(cert["fills"]):
        return False
    others = [r for r in chain if r["kind"] == "fill_retirement" and r["seq"] not in listed]
    if any(msgspec.msgpack.decode(bytes.fromhex(r["body"]))[1] == cert["cert_id"] for r in others):
        return False
    if head is not None:
        at = [r["seq"] for r in chain if r["hash"] == head]
        return bool(at) and at[0] >= max(listed)
    return True


def test_a_checker_written_from_the_document_accepts_its_example():
    doc = json.loads(EXAMPLE.read_text())
    assert check(doc) and check(doc, head=HEAD)
    assert doc["head"] == {"seq": HEAD_SEQ, "hash": HEAD}
    assert verify_proof(decode_proof(EXAMPLE.read_bytes()), head=HEAD, head_seq=HEAD_SEQ).ok
    assert HEAD in (DOCS / "CERTIFICATES.md").read_text()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["certificate"].update(beneficiary="Someone Else"),
        lambda d: d["certificate"].update(qty=21),
        lambda d: d["certificate"]["fills"][1]["serials"][0].update(last=21),
        lambda d: d["chain"][1].update(body=d["chain"][1]["body"].replace("4e6f", "4e70")),
        lambda d: d["chain"][2].update(prev="0" * 64),
        lambda d: d["chain"].pop(),
        lambda d: d.update(format="tonne-certificate-2"),
    ],
    ids=["beneficiary", "qty", "serials", "body", "link", "truncated", "format"],
)
def test_both_checkers_refuse_the_example_altered(change):
    doc = json.loads(EXAMPLE.read_text())
    change(doc)
    assert not check(doc)
    data = json.dumps(doc).encode()
    try:
        proof = decode_proof(data)
    except ValueError:
        return
    assert not verify_proof(proof).ok


def test_the_example_verifies_from_the_command_line_as_the_document_shows(capsys):
    code = cli.main(["certificate", "verify", str(EXAMPLE), "--head", HEAD])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines == [
        "OK certificate RC-00000001: 20 t retired for 'Nordic Climate Desk', records 7, 9; "
        "chain 6..9 to head f2376b4536854e1e; reaches the published head at record 9"
    ]
    assert lines[0] in (DOCS / "CERTIFICATES.md").read_text()
