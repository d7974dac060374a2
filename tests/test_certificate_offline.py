"""Offline certificate verification (issue 16): a proof built from a real core's settlement
log verifies with nothing else, and every kind of tampering fails with the field named.

The log: a buy-and-retire basket of two fills (RC-00000001), a `retire` command's
certificate (RC-00000002), and a second basket retired for someone else (RC-00000003), so
that records follow the first certificate's and other certificates' records can be swapped
in.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.commands import RetireFor
from settlement.certificate_proof import (
    CHAIN_RECORDS_MAX,
    FORMAT,
    PROOF_BYTES_MAX,
    CertificateProof,
    ChainRecord,
    Head,
    OrderClaims,
    ProofError,
    RetirementClaims,
    build_proof,
    chain_record,
    claims_of,
    decode_proof,
    encode_proof,
)
from settlement.certificate_verify import Verdict, check_in_log, verify_proof
from settlement.commands import Retire
from settlement.events import OrderCertificate, RetirementCertificate
from settlement.log import LogRecord, record_hash
from tests.test_settlement_basket import BUYER, _setup, basket

ORDER, RETIREMENT, OTHER = "RC-00000001", "RC-00000002", "RC-00000003"


class Venue(msgspec.Struct, frozen=True):
    records: tuple[LogRecord, ...]
    order: OrderCertificate
    retirement: RetirementCertificate
    other: OrderCertificate


@cache
def venue() -> Venue:
    run = _setup(
        ("ACR-802-2022", 1, 10, 100), ("CAR-1568-2025", 3, 10, 101), ("VCS-960-2019", 3, 10, 102)
    )
    order = run.apply(basket(15, 101, retire=RetireFor(beneficiary="Acme Ltd", claim="FY26")))
    retirement = run.apply(
        Retire(account=BUYER, beneficiary="Kowloon", series="VCS-960-2019", qty=4)
    )
    other = run.apply(basket(5, 102, coid="b2", retire=RetireFor(beneficiary="Other plc")))
    certs = (order[-1], retirement[-1], other[-1])
    assert [c.cert_id for c in certs] == [ORDER, RETIREMENT, OTHER]
    return Venue(tuple(run.records), *certs)  # type: ignore[arg-type]


def proof_of(cert_id: str = ORDER, **kw: Any) -> CertificateProof:
    return build_proof(venue().records, cert_id, **kw)


def doc_of(proof: CertificateProof) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_proof(proof))
    return doc


def verdict(doc: dict[str, Any], **kw: Any) -> Verdict:
    return verify_proof(decode_proof(json.dumps(doc).encode()), **kw)


def index_of(doc: dict[str, Any], seq: int) -> int:
    return next(j for j, r in enumerate(doc["chain"]) if r["seq"] == seq)


def fails(doc: dict[str, Any], field: str, **kw: Any) -> Verdict:
    got = verdict(doc, **kw)
    assert not got.ok and got.field == field, got
    cert_id = doc["certificate"]["cert_id"]
    assert got.summary().startswith(f"FAIL certificate {cert_id}: {field}: "), got.summary()
    return got


def rehash(doc: dict[str, Any], start: int) -> None:
    """Recompute every hash from chain[start] on, as a forger would, and the head."""
    chain = doc["chain"]
    for j in range(start, len(chain)):
        r = chain[j]
        if j:
            r["prev"] = chain[j - 1]["hash"]
        r["hash"] = record_hash(r["seq"], r["ts"], r["kind"], bytes.fromhex(r["body"]), r["prev"])
    doc["head"] = {"seq": chain[-1]["seq"], "hash": chain[-1]["hash"]}


# -- a good certificate ---------------------------------------------------------------------


def test_an_order_certificates_proof_verifies_with_nothing_else():
    v, proof = venue(), proof_of()
    assert proof.format == FORMAT == "tonne-certificate-1"
    assert proof.certificate == claims_of(v.order), "the proof says what the core issued"
    seqs = [f.record_seq for f in v.order.fills]
    assert proof.chain[0].seq == seqs[0] - 1, "from the first fill's own record"
    assert proof.head == Head(v.records[-1].seq, v.records[-1].hash), "to the log's head"
    got = verify_proof(decode_proof(encode_proof(proof)))
    assert got.ok and got.records == tuple(seqs) and got.qty == 15 and got.pinned == ""
    assert got.summary() == (
        f"OK certificate {ORDER}: 15 t retired for 'Acme Ltd', records "
        f"{seqs[0]}, {seqs[1]}; chain {seqs[0] - 1}..{proof.head.seq} to head "
        f"{proof.head.hash[:16]}; not pinned to a published head"
    )


def test_a_retirement_certificates_proof_verifies_too():
    v = venue()
    proof = proof_of(RETIREMENT)
    assert isinstance(proof.certificate, RetirementClaims)
    assert proof.certificate == claims_of(v.retirement)
    assert proof.chain[0].seq == v.retirement.record_seq
    got = verify_proof(proof)
    assert got.ok and got.records == (v.retirement.record_seq,) and got.qty == 4


def test_a_proof_verifies_against_a_published_head_in_its_chain_at_or_after_the_certificate():
    proof = proof_of()
    last = proof.certificate.fills[-1].record_seq  # type: ignore[union-attr]
    for record in proof.chain:
        got = verify_proof(proof, head=record.hash)
        if record.seq >= last:
            assert got.ok and got.pinned == f"record {record.seq}", got
            assert "reaches the published head at record" in got.summary()
        else:  # a head before the certificate's last record does not cover it
            assert not got.ok and got.field == "head.hash", got
    assert verify_proof(proof, head=proof.head.hash, head_seq=proof.head.seq).ok


def test_a_proof_may_end_at_any_head_from_the_certificates_last_record():
    v = venue()
    last = v.order.fills[-1].record_seq
    short = proof_of(head_seq=last)
    assert short.head.seq == last and len(short.chain) == 4
    assert verify_proof(short).ok
    assert verify_proof(short, head=v.records[last - 1].hash).ok


def test_a_longer_chain_from_genesis_verifies_and_its_first_record_follows_zeros():
    v, proof = venue(), proof_of()
    full = msgspec.structs.replace(proof, chain=[chain_record(r) for r in v.records])
    assert verify_proof(full).ok
    doc = doc_of(full)
    doc["chain"][0]["prev"] = "1" * 64
    fails(doc, "chain[0].prev")


def test_a_proof_checks_against_the_whole_log():
    v, proof = venue(), proof_of()
    got = check_in_log(proof, v.records)
    assert got.ok and got.pinned == "the log" and "matches the settlement log" in got.summary()
    assert check_in_log(proof_of(RETIREMENT), v.records).ok


# -- each kind of tampering -------------------------------------------------------------------


def test_a_changed_beneficiary_fails_naming_it():
    doc = doc_of(proof_of())
    doc["certificate"]["beneficiary"] = "Someone Else"
    got = fails(doc, "certificate.beneficiary")
    assert "'Someone Else', but record" in got.reason and "'Acme Ltd'" in got.reason


def test_a_hostile_certificate_id_cannot_rewrite_the_verdict_on_a_terminal():
    doc = doc_of(proof_of())
    doc["certificate"]["cert_id"] = "\rOK certificate RC-00000001\x1b[8m"
    got = verdict(doc)
    assert not got.ok and got.field == "certificate.cert_id"
    line = got.summary()
    assert line.isprintable() and line.startswith("FAIL certificate \\x0dOK"), line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cert_id", "RC-00000009"),
        ("account", 7),
        ("order_id", 99),
        ("client_order_id", "other"),
        ("purpose", "corsia"),
        ("claim", "FY27"),
        ("period_start", "2026-01-01"),
        ("period_end", "2026-12-31"),
        ("ts", 1),
    ],
)
def test_each_changed_field_of_an_order_certificate_is_named(name, value):
    doc = doc_of(proof_of())
    doc["certificate"][name] = value
    fails(doc, f"certificate.{name}")


def test_a_changed_quantity_fails_naming_it():
    doc = doc_of(proof_of())
    doc["certificate"]["qty"] = 16
    assert "16, but its fills add up to 15" in fails(doc, "certificate.qty").reason
    doc = doc_of(proof_of())
    doc["certificate"]["fills"][0]["qty"] += 1
    fails(doc, "certificate.fills[0].qty")


def test_a_changed_serial_range_fails_naming_it():
    for key, delta in (("first", 1), ("last", -1), ("last", 1)):
        doc = doc_of(proof_of())
        doc["certificate"]["fills"][1]["serials"][0][key] += delta
        fails(doc, "certificate.fills[1].serials")
    doc = doc_of(proof_of())
    doc["certificate"]["fills"][0]["serials"][0]["batch"] = ""
    fails(doc, "certificate.fills[0].serials")


def test_a_changed_book_or_trade_fails_naming_it():
    doc = doc_of(proof_of())
    doc["certificate"]["fills"][0]["series"] = "VCS-960-2019"
    fails(doc, "certificate.fills[0].series")
    doc = doc_of(proof_of())
    doc["certificate"]["fills"][0]["trade_id"] = 77
    fails(doc, "certificate.fills[0].trade_id")


def test_an_altered_record_body_fails_naming_it():
    doc = doc_of(proof_of())
    j = index_of(doc, doc["certificate"]["fills"][0]["record_seq"])
    body = doc["chain"][j]["body"]
    doc["chain"][j]["body"] = body.replace("41636d65", "41636d66")  # "Acme" -> "Acmf"
    assert doc["chain"][j]["body"] != body
    got = fails(doc, f"chain[{j}].body")
    assert "no longer hashes" in got.reason


def test_an_altered_record_kind_or_time_fails_naming_it():
    doc = doc_of(proof_of())
    doc["chain"][2]["kind"] = "retirement"
    fails(doc, "chain[2].kind")
    doc = doc_of(proof_of())
    doc["chain"][2]["ts"] += 1
    fails(doc, "chain[2].ts")


def test_an_altered_record_hash_fails_naming_it():
    doc = doc_of(proof_of())
    doc["chain"][1]["hash"] = "0" * 64
    fails(doc, "chain[1].hash")
    doc = doc_of(proof_of())
    doc["chain"][-1]["hash"] = "0" * 64  # the last: the head vouches for the real one
    fails(doc, f"chain[{len(doc['chain']) - 1}].hash")


def test_a_broken_chain_link_fails_naming_it():
    doc = doc_of(proof_of())
    doc["chain"][2]["prev"] = "ab" * 32
    assert "is not chain[1].hash" in fails(doc, "chain[2].prev").reason


def test_a_rehashed_forgery_fails_at_the_next_link_then_at_the_certificate_then_the_head():
    v = venue()
    doc = doc_of(proof_of())
    j = index_of(doc, doc["certificate"]["fills"][0]["record_seq"])
    r = doc["chain"][j]
    r["body"] = r["body"].replace("41636d65", "41636d66")
    r["hash"] = record_hash(r["seq"], r["ts"], r["kind"], bytes.fromhex(r["body"]), r["prev"])
    fails(doc, f"chain[{j + 1}].prev")
    second = doc["chain"][j + 2]  # the other fill's retirement, forged the same way
    second["body"] = second["body"].replace("41636d65", "41636d66")
    rehash(doc, j)
    fails(doc, "certificate.fills[0].record_hash")
    doc["certificate"]["fills"][0]["record_hash"] = doc["chain"][j]["hash"]
    doc["certificate"]["fills"][1]["record_hash"] = doc["chain"][j + 2]["hash"]
    fails(doc, "certificate.beneficiary")  # the forged record says "Acmf Ltd"
    doc["certificate"]["beneficiary"] = "Acmf Ltd"
    # A chain rehashed to its end is consistent in itself: only a head published before
    # (or the log) tells it apart. This is why a proof is checked against a published head.
    assert verdict(doc).ok
    fails(doc, "head.hash", head=v.records[-1].hash)
    forged = decode_proof(json.dumps(doc).encode())
    got = check_in_log(forged, v.records)
    assert not got.ok and got.field == f"chain[{j}].body", got


def test_a_head_that_does_not_match_fails_naming_it():
    v, proof = venue(), proof_of()
    doc = doc_of(proof)
    fails(doc, "head.hash", head="12" * 32)
    fails(doc, "head.seq", head=proof.head.hash, head_seq=proof.head.seq + 1)
    fails(doc, "head.hash", head=v.records[0].hash)  # long before the certificate
    doc["head"]["hash"] = "34" * 32
    fails(doc, "head.hash")
    doc = doc_of(proof)
    doc["head"]["seq"] += 1
    fails(doc, "head.seq")


def test_a_truncated_chain_fails_naming_what_is_missing():
    doc = doc_of(proof_of())
    doc["chain"].pop()
    fails(doc, "head.seq")
    doc = doc_of(proof_of())  # cut before the second fill's retirement, the head moved back
    j = index_of(doc, doc["certificate"]["fills"][1]["record_seq"])
    del doc["chain"][j:]
    doc["head"] = {"seq": doc["chain"][-1]["seq"], "hash": doc["chain"][-1]["hash"]}
    assert "not in the chain" in fails(doc, "certificate.fills[1].record_seq").reason
    doc = doc_of(proof_of())  # without the first fill's own record
    del doc["chain"][0]
    fails(doc, "certificate.fills[0].record_seq")
    doc = doc_of(proof_of())
    doc["chain"] = []
    fails(doc, "chain")


def test_a_swapped_record_fails_naming_it():
    doc = doc_of(proof_of())
    doc["chain"][1], doc["chain"][2] = doc["chain"][2], doc["chain"][1]
    fails(doc, "chain[1].seq")
    doc = doc_of(proof_of())  # another certificate's genuine retirement record put in
    j = index_of(doc, doc["certificate"]["fills"][0]["record_seq"])
    theirs = doc_of(proof_of(OTHER))["chain"][1]
    doc["chain"][j] = {**theirs, "seq": doc["chain"][j]["seq"]}
    fails(doc, f"chain[{j}].prev")
    doc = doc_of(proof_of())  # a fill pointing at the other fill's record
    doc["certificate"]["fills"][0]["record_seq"] = doc["certificate"]["fills"][1]["record_seq"]
    fails(doc, "certificate.fills[0].record_hash")
    doc["certificate"]["fills"][0] = doc["certificate"]["fills"][1]
    fails(doc, "certificate.fills[1].record_seq")  # listed twice


def test_a_fill_left_off_or_none_listed_fails_naming_the_fills():
    doc = doc_of(proof_of())
    dropped = doc["certificate"]["fills"].pop()
    doc["certificate"]["qty"] -= dropped["qty"]
    assert "is not listed" in fails(doc, "certificate.fills").reason
    doc["certificate"]["fills"] = []
    fails(doc, "certificate.fills")


def test_a_fill_whose_own_record_is_not_its_fill_fails_naming_the_record():
    doc = doc_of(proof_of())  # a fill retirement listed whose record before is not a fill
    j = index_of(doc, doc["certificate"]["fills"][1]["record_seq"])
    assert doc["chain"][j - 1]["kind"] in ("fill", "contract_fill")
    proof = decode_proof(json.dumps(doc).encode())
    other = msgspec.structs.replace(proof, chain=proof.chain[j - 2 :])
    other_claims = msgspec.structs.replace(
        proof.certificate,
        fills=[
            msgspec.structs.replace(
                proof.certificate.fills[1],  # type: ignore[union-attr]
                record_seq=proof.chain[j - 1].seq,
                record_hash=proof.chain[j - 1].hash,
            )
        ],
    )
    got = verify_proof(msgspec.structs.replace(other, certificate=other_claims))
    assert not got.ok and got.field == "certificate.fills[0].record_seq", got
    assert "is a 'fill'" in got.reason or "is a 'contract_fill'" in got.reason


def test_a_changed_retirement_certificate_fails_naming_the_field():
    v = venue()
    for name, value in (
        ("beneficiary", "Other"),
        ("project", "ACR802"),
        ("vintage", 2020),
        ("qty", 5),
        ("record_hash", "ab" * 32),
        ("record_seq", v.retirement.record_seq - 1),
    ):
        doc = doc_of(proof_of(RETIREMENT))
        doc["certificate"][name] = value
        got = verdict(doc)
        assert not got.ok and got.field in (f"certificate.{name}", "certificate.record_seq"), (
            name,
            got,
        )
    doc = doc_of(proof_of(RETIREMENT))
    doc["certificate"]["serials"][0]["last"] -= 1
    assert verdict(doc).field == "certificate.serials"


# -- reading a file: malformed, oversized, another format --------------------------------------


def decode_fails(data: bytes, field: str, **kw: Any) -> ProofError:
    with pytest.raises(ProofError) as caught:
        decode_proof(data, **kw)
    assert caught.value.field == field, caught.value
    assert str(caught.value).startswith(f"{field}: ")
    return caught.value


def test_malformed_json_is_refused_naming_the_file():
    decode_fails(b"{not json", "file")
    decode_fails(encode_proof(proof_of())[:-30], "file")
    decode_fails(b"[1, 2]", "file")


def test_an_oversized_file_is_refused_before_it_is_parsed():
    decode_fails(b" " * (PROOF_BYTES_MAX + 1), "file")
    data = encode_proof(proof_of())
    assert "more than the 100 a proof may be" in str(decode_fails(data, "file", bytes_max=100))


def test_another_format_version_is_refused_naming_the_format():
    doc = doc_of(proof_of())
    for value in ("tonne-certificate-2", "", "TONNE-CERTIFICATE-1"):
        doc["format"] = value
        decode_fails(json.dumps(doc).encode(), "format")
    del doc["format"]
    decode_fails(json.dumps(doc).encode(), "format")
    proof = msgspec.structs.replace(proof_of(), format="tonne-certificate-0")
    got = verify_proof(proof)
    assert not got.ok and got.field == "format"


def test_a_field_of_the_wrong_shape_is_refused_naming_it():
    cases = [
        (("chain", 0, "hash"), "AB" * 32),  # hashes are lowercase hex
        (("chain", 1, "body"), "9G"),
        (("chain", 1, "body"), "9"),
        (("certificate", "fills", 0, "record_seq"), -1),
        (("certificate", "qty"), 1.5),  # integers only
        (("head", "seq"), "7"),
        (("certificate", "kind"), "forged"),
    ]
    for path, value in cases:
        doc = doc_of(proof_of())
        at: Any = doc
        for key in path[:-1]:
            at = at[key]
        at[path[-1]] = value
        field = ".".join(str(k) for k in path).replace(".0", "[0]").replace(".1", "[1]")
        decode_fails(json.dumps(doc).encode(), field.replace(".[", "["))


def test_an_unknown_field_is_refused_rather_than_left_unchecked():
    doc = doc_of(proof_of())
    doc["certificate"]["verified_by"] = "the venue"
    decode_fails(json.dumps(doc).encode(), "certificate")
    doc = doc_of(proof_of())
    doc["note"] = "trust me"
    decode_fails(json.dumps(doc).encode(), "file")


def test_a_chain_longer_than_its_limit_is_refused():
    proof = proof_of()
    many = [proof.chain[0]] * (CHAIN_RECORDS_MAX + 1)
    with pytest.raises(ProofError) as caught:
        decode_proof(encode_proof(msgspec.structs.replace(proof, chain=many)))
    assert caught.value.field == "chain"
    got = verify_proof(msgspec.structs.replace(proof, chain=many))
    assert not got.ok and got.field == "chain"


def test_a_body_that_is_not_lowercase_hex_fails_when_a_proof_is_built_in_code():
    proof = proof_of()
    bad = msgspec.structs.replace(proof.chain[1], body="ZZ")
    got = verify_proof(
        msgspec.structs.replace(proof, chain=[proof.chain[0], bad, *proof.chain[2:]])
    )
    assert not got.ok and got.field == "chain[1].body"


# -- building a proof --------------------------------------------------------------------------


def test_building_a_proof_refuses_what_it_cannot_prove():
    v = venue()
    last = v.order.fills[-1].record_seq
    cases = [
        ({"cert_id": "RC-00000099"}, "cert_id"),
        ({"head_seq": last - 1}, "head_seq"),  # before the certificate's last record
        ({"head_seq": v.records[-1].seq + 1}, "head_seq"),  # past the log
        ({"chain_records_max": 3}, "head_seq"),  # longer than allowed: pass an earlier head
    ]
    for kw, field in cases:
        cert_id = kw.pop("cert_id", ORDER)
        with pytest.raises(ProofError) as caught:
            build_proof(v.records, cert_id, **kw)
        assert caught.value.field == field, (kw, caught.value)
    assert "pass a head_seq from" in str(
        pytest.raises(ProofError, build_proof, v.records, ORDER, chain_records_max=3).value
    )
    assert len(build_proof(v.records, ORDER, head_seq=last, chain_records_max=4).chain) == 4


# -- against the whole log ---------------------------------------------------------------------


def test_the_whole_log_catches_what_a_proof_alone_cannot():
    v, proof = venue(), proof_of()
    records = list(v.records)
    # a fill left off with the chain started after it: the proof alone cannot see it
    first, second = proof.certificate.fills  # type: ignore[union-attr]
    j = second.record_seq - 1 - proof.chain[0].seq
    dropped = msgspec.structs.replace(
        proof,
        certificate=msgspec.structs.replace(proof.certificate, fills=[second], qty=second.qty),
        chain=proof.chain[j:],
    )
    assert verify_proof(dropped).ok
    got = check_in_log(dropped, records)
    assert not got.ok and got.field == "certificate.fills" and "is not listed" in got.reason
    # the log ends before the proof's head
    got = check_in_log(proof, records[:-1])
    assert not got.ok and got.field == "head.seq"
    # a log that is itself broken proves nothing
    broken = [*records[:3], msgspec.structs.replace(records[3], ts=records[3].ts + 1), *records[4:]]
    got = check_in_log(proof, broken)
    assert not got.ok and got.field == "log" and "breaks at record 4" in got.reason
    got = check_in_log(proof, records[:2] + records[3:])
    assert not got.ok and got.field == "log" and "record 3 is missing" in got.reason
    # a proof that is not valid on its own fails as it would offline
    assert check_in_log(msgspec.structs.replace(proof, format="x"), records).field == "format"


# -- any one byte changed ------------------------------------------------------------------------


@cache
def _encoded() -> bytes:
    return encode_proof(proof_of(head_seq=venue().order.fills[-1].record_seq))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_changing_any_one_byte_of_a_proof_never_verifies_unless_it_means_the_same(data):
    original = _encoded()
    at = data.draw(st.integers(0, len(original) - 1), label="at")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[at]), label="byte")
    changed = original[:at] + bytes([byte]) + original[at + 1 :]
    try:
        proof = decode_proof(changed)
    except ProofError:
        return
    # whitespace, or an escape that decodes to the same text, means the same proof
    assert not verify_proof(proof).ok or proof == decode_proof(original), (at, byte)


def test_a_core_certificate_and_its_proof_say_the_same():
    v = venue()
    assert isinstance(claims_of(v.order), OrderClaims)
    assert isinstance(claims_of(v.retirement), RetirementClaims)
    assert (
        ChainRecord(**msgspec.structs.asdict(chain_record(v.records[0]))).record() == (v.records[0])
    )


def test_flipping_any_one_bit_of_a_proof_never_verifies_unless_it_means_the_same():
    """Every bit of a whole proof file, exhaustively (hypothesis above tries any byte)."""
    original = _encoded()
    same = decode_proof(original)
    for at in range(len(original)):
        for bit in range(8):
            changed = bytearray(original)
            changed[at] ^= 1 << bit
            try:
                proof = decode_proof(bytes(changed))
            except ProofError:
                continue
            assert not verify_proof(proof).ok or proof == same, (at, bit)


# -- records that are intact but say something else (a forger rehashed them) ----------------


def forged_at(doc: dict[str, Any], j: int, **change: Any) -> dict[str, Any]:
    """`doc` with chain[j] changed and everything after it rehashed, the certificate's
    record hashes following, as a forger who controls the whole file would make it."""
    doc["chain"][j].update(change)
    rehash(doc, j)
    by_seq = {r["seq"]: r["hash"] for r in doc["chain"]}
    for f in doc["certificate"]["fills"]:
        f["record_hash"] = by_seq.get(f["record_seq"], f["record_hash"])
    return doc


def test_a_rehashed_record_whose_body_disagrees_with_its_kind_or_time_is_named():
    doc = doc_of(proof_of())
    j = index_of(doc, doc["certificate"]["fills"][0]["record_seq"])
    fails(forged_at(doc, j, kind="retirement"), f"chain[{j}].kind")
    doc = doc_of(proof_of())
    fails(forged_at(doc, j, ts=doc["chain"][j]["ts"] + 1), f"chain[{j}].ts")
    doc = doc_of(proof_of())
    fails(forged_at(doc, j, body="c0"), f"chain[{j}].body")  # msgpack nil: no body at all
    doc = doc_of(proof_of())
    fails(forged_at(doc, j - 1, body="c0"), f"chain[{j - 1}].body")  # the fill's own record


def test_an_altered_body_that_no_longer_decodes_is_named():
    doc = doc_of(proof_of())
    doc["chain"][1]["body"] = "c1"  # never used by msgpack: the hash is still vouched for
    fails(doc, "chain[1].body")


def test_a_chain_that_starts_before_record_one_is_refused():
    doc = doc_of(proof_of())
    doc["chain"][0]["seq"] = 0
    fails(doc, "chain[0].seq")


def test_a_trade_listed_twice_is_named():
    doc = doc_of(proof_of())
    doc["certificate"]["fills"][1]["trade_id"] = doc["certificate"]["fills"][0]["trade_id"]
    fails(doc, "certificate.fills[1].trade_id")


def test_a_retirement_certificate_naming_another_kind_of_record_is_refused():
    v = venue()
    proof = proof_of(RETIREMENT)
    assert len(proof.chain) > 1, "records follow the retirement"
    other = proof.chain[1]
    claims = msgspec.structs.replace(
        proof.certificate, record_seq=other.seq, record_hash=other.hash
    )
    got = verify_proof(msgspec.structs.replace(proof, certificate=claims))
    assert not got.ok and got.field == "certificate.record_seq" and "is a 'fill'" in got.reason
    assert v.retirement.record_seq == proof.chain[0].seq


def synthetic_log(before: Any) -> list[LogRecord]:
    """A log whose fill retirement does not follow a fill (the core never writes one; a
    forger can): `before` then the retirement."""
    from settlement.events import FillRetired, Purpose
    from settlement.log import SettlementLog
    from settlement.serials import SerialRange

    log = SettlementLog()
    log.append(before)
    ranges = (SerialRange("ACR802", 2022, 1, 5),)
    log.append(FillRetired(ORDER, 1, "c", 9, 2, ranges, 5, "Acme", Purpose.OTHER, "", "", "", 5))
    return log.drain()


def test_a_fill_retirement_after_anything_but_its_fill_is_refused():
    from settlement.events import CashDeposited

    records = synthetic_log(CashDeposited(2, "USD", 100, "", 4))
    got = verify_proof(build_proof(records, ORDER))
    assert not got.ok and got.field == "chain[0]" and "is not the fill of trade 9" in got.reason


def test_a_record_of_no_certificate_in_the_chain_need_not_decode():
    """The checker reads only the certificate's records and their fills; others it only
    hashes (a retirement record that does not decode is nobody's certificate)."""
    proof = proof_of(head_seq=venue().order.fills[-1].record_seq)
    last = proof.chain[-1]
    body = b"\xc1"
    h = record_hash(last.seq + 1, last.ts, "fill_retirement", body, last.hash)
    extra = ChainRecord(last.seq + 1, last.ts, "fill_retirement", body.hex(), last.hash, h)
    longer = msgspec.structs.replace(proof, chain=[*proof.chain, extra], head=Head(extra.seq, h))
    assert verify_proof(longer).ok


def test_a_second_retirement_record_of_one_certificate_is_named():
    """The core never reuses a number; a forged log that does fails on the second record."""
    from settlement.events import Purpose, Retired
    from settlement.log import SettlementLog
    from settlement.serials import SerialRange

    log = SettlementLog()
    for first in (1, 11):
        ranges = (SerialRange("VCS960", 2019, first, first + 9),)
        log.append(
            Retired(RETIREMENT, 2, "VCS960", 2019, ranges, 10, "K", Purpose.OTHER, "", "", "", 7)
        )
    records = log.drain()
    got = verify_proof(build_proof(records, RETIREMENT))
    assert not got.ok and got.field == "certificate.record_seq" and "is not listed" in got.reason
    got = check_in_log(build_proof(records, RETIREMENT, head_seq=1), records)
    assert not got.ok and got.field == "certificate.record_seq", got
