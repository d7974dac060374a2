"""A certificate looked up in the console: its records, checked against the hash chain.

For each record the certificate names (its `retirement`, or every `fill_retirement` of an
order certificate), the console shows the record, its hash as stored and as recomputed from
its fields, and whether every record from the first named one to the log's head links
(bounded: `CHAIN_CHECK_MAX` records, else it says how far it checked). Then it builds the
certificate's self-contained proof (settlement/certificate_proof.py, docs/CERTIFICATES.md)
from the same records, up to the head or as far as one proof reaches, and verifies it
pinned to that record's stored hash (settlement/certificate_verify.py): the verdict a
registry or an auditor gets offline from `tonne certificate verify` on the exported proof.
"""

from __future__ import annotations

from typing import Any

from gateway.console.records import view
from settlement.certificate_proof import (
    CHAIN_RECORDS_MAX,
    CertificateProof,
    ProofError,
    build_proof,
)
from settlement.certificate_verify import verify_proof
from settlement.log import GENESIS, LogRecord, decode_record, record_hash

CHAIN_CHECK_MAX = 200_000  # records linked from the certificate's first record toward the head


def certificate_check(store: Any, cert_id: str, records: list[LogRecord]) -> dict[str, Any]:
    problems: list[str] = []
    shown = []
    for r in records:
        recomputed = record_hash(r.seq, r.ts, r.kind, r.body, r.prev)
        if recomputed != r.hash:
            problems.append(f"record {r.seq}: hash {r.hash[:16]}… recomputes to {recomputed[:16]}…")
        shown.append({**view(r).json(), "recomputed_hash": recomputed})
    head = store.head()
    linked_through = 0
    if records:
        first = records[0].seq
        prev = GENESIS
        if first > 1:
            before = list(store.records(first - 2, first - 1))
            prev = before[0].hash if before else ""
        last = min(head.log_seq, first - 1 + CHAIN_CHECK_MAX)
        for row in store.records(first - 1, last):
            rec = decode_record(row.record)
            if rec.prev != prev:
                problems.append(
                    f"chain: record {rec.seq}'s prev is not record {rec.seq - 1}'s hash"
                )
                break
            if record_hash(rec.seq, rec.ts, rec.kind, rec.body, rec.prev) != rec.hash:
                problems.append(f"chain: record {rec.seq}'s hash does not recompute")
                break
            prev = rec.hash
            linked_through = rec.seq
        if not problems and linked_through == head.log_seq and prev != head.log_head:
            problems.append("chain: the last record's hash is not the log's head")
    else:
        problems.append(f"no record names {cert_id}")
    proof_verdict: dict[str, Any] | None = None
    if records:
        try:
            proof = proof_of(store, cert_id, records, head.log_seq)
        except ProofError as exc:
            problems.append(f"proof: {exc}")
        else:
            pin = proof.chain[-1].hash
            verdict = verify_proof(proof, head=pin, head_seq=proof.chain[-1].seq)
            proof_verdict = {"ok": verdict.ok, "summary": verdict.summary()}
            if not verdict.ok:
                problems.append(f"proof: {verdict.field}: {verdict.reason}")
    return {
        "id": cert_id,
        "found": bool(records),
        "verified": not problems,
        "proof": proof_verdict,
        "problems": problems,
        "records": shown,
        "linked_through": linked_through,
        "head": {"seq": head.log_seq, "hash": head.log_head},
    }


def proof_of(store: Any, cert_id: str, records: list[LogRecord], head_seq: int) -> CertificateProof:
    """The certificate's proof from the records around it: from the record before its first
    (an order's first fill is the record before its first `fill_retirement`) to the log's
    head, or as far as one proof's chain reaches."""
    first = records[0].seq
    start = max(0, first - 3)
    through = min(head_seq, start + CHAIN_RECORDS_MAX)
    rows = store.records(start, through)
    return build_proof((decode_record(r.record) for r in rows), cert_id, head_seq=through)


__all__ = ["certificate_check", "proof_of"]
