"""Checking a certificate proof (settlement/certificate_proof.py) offline: the steps of
docs/CERTIFICATES.md, "Verifying", in that order, stopping at the first that fails.

    verify_proof(proof)                     the chain is intact and proves the certificate
    verify_proof(proof, head=HASH)          ... and reaches a head the venue published
    check_in_log(proof, records)            ... and is what the whole log (from genesis) says

Each returns a `Verdict`; a failing one names the field of the proof that is wrong, as a
path into its JSON (`certificate.beneficiary`, `certificate.fills[0].record_hash`,
`chain[3].prev`, `head.hash`), and why. Pure: no file, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from settlement.certificate_proof import (
    CHAIN_RECORDS_MAX,
    FORMAT,
    CertificateProof,
    ChainRecord,
    Claims,
    OrderClaims,
    RetirementClaims,
    chain_record,
)
from settlement.events import FillRetired, Movement, Retired, Settled
from settlement.log import GENESIS, LogRecord, record_hash


def printable(text: str) -> str:
    """`text` with every character a terminal could act on written as an escape."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What a check found. `field` and `reason` say what failed (both "" when `ok`);
    `records` are the seqs of the certificate's own records; `pinned` what the chain was
    checked against beyond itself ("" for nothing, "record N" for a published head,
    "the log" for the whole settlement log)."""

    ok: bool
    cert_id: str
    field: str = ""
    reason: str = ""
    qty: int = 0
    beneficiary: str = ""
    records: tuple[int, ...] = ()
    chain_first: int = 0
    head_seq: int = 0
    head_hash: str = ""
    pinned: str = ""

    def summary(self) -> str:
        """One line: OK with what is proved, or FAIL with the field and the reason. What
        came from the proof file is shown printable (a hostile file's control characters
        could otherwise rewrite the line on a terminal)."""
        return printable(self._summary())

    def _summary(self) -> str:
        if not self.ok:
            return f"FAIL certificate {self.cert_id}: {self.field}: {self.reason}"
        seqs = ", ".join(map(str, self.records))
        against = {"": "not pinned to a published head", "the log": "matches the settlement log"}
        return (
            f"OK certificate {self.cert_id}: {self.qty} t retired for {self.beneficiary!r}, "
            f"records {seqs}; chain {self.chain_first}..{self.head_seq} to head "
            f"{self.head_hash[:16]}; "
            + against.get(self.pinned, f"reaches the published head at {self.pinned}")
        )


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field, self.reason = field, reason


def verify_proof(
    proof: CertificateProof, *, head: str | None = None, head_seq: int | None = None
) -> Verdict:
    """Whether `proof` proves its certificate: the format, the chain (consecutive, linked,
    each record hashing to its hash, ending at the proof's head), the certificate's
    records in it saying exactly what the certificate says and, with `head` (a record hash
    the venue published, and optionally its `head_seq`), that head in the chain at or after
    the certificate's last record."""
    cert_id = proof.certificate.cert_id[:40]
    try:
        if proof.format != FORMAT:
            raise _Bad("format", f"{proof.format[:40]!r} where {FORMAT!r} was expected")
        records = _check_chain(proof)
        seqs = _check_claims(proof, records)
        pinned = _check_pin(records, seqs[-1], head, head_seq)
    except _Bad as bad:
        return Verdict(ok=False, cert_id=cert_id, field=bad.field, reason=bad.reason)
    return _good(proof, seqs, pinned)


def _good(proof: CertificateProof, seqs: list[int], pinned: str) -> Verdict:
    return Verdict(
        ok=True,
        cert_id=proof.certificate.cert_id,
        qty=proof.certificate.qty,
        beneficiary=proof.certificate.beneficiary,
        records=tuple(seqs),
        chain_first=proof.chain[0].seq,
        head_seq=proof.head.seq,
        head_hash=proof.head.hash,
        pinned=pinned,
    )


# -- the chain ------------------------------------------------------------------------------


def _check_chain(proof: CertificateProof) -> list[LogRecord]:
    """The chain's records, each checked; `_Bad` at the first that fails."""
    chain = proof.chain
    if not chain or len(chain) > CHAIN_RECORDS_MAX:
        raise _Bad("chain", f"{len(chain)} records: a proof holds 1 to {CHAIN_RECORDS_MAX}")
    first = chain[0].seq
    if first < 1:
        raise _Bad("chain[0].seq", "settlement-log records are numbered from 1")
    if first == 1 and chain[0].prev != GENESIS:
        raise _Bad("chain[0].prev", "the first record of the log follows 64 zeros")
    records = []
    for j, c in enumerate(chain):
        if c.seq != first + j:
            raise _Bad(f"chain[{j}].seq", f"{c.seq} where {first + j} was expected")
        if j and c.prev != chain[j - 1].hash:
            raise _Bad(f"chain[{j}].prev", f"is not chain[{j - 1}].hash, the record before")
        body = _hex(c.body, j)
        if record_hash(c.seq, c.ts, c.kind, body, c.prev) != c.hash:
            vouched = chain[j + 1].prev if j + 1 < len(chain) else proof.head.hash
            if vouched != c.hash:
                raise _Bad(f"chain[{j}].hash", "does not match the record's contents")
            raise _Bad(_altered(c, body, j), "altered: the record no longer hashes to its hash")
        records.append(LogRecord(c.seq, c.ts, c.kind, body, c.prev, c.hash))
    last = chain[-1]
    if proof.head.seq != last.seq:
        raise _Bad("head.seq", f"{proof.head.seq}, but the chain ends at record {last.seq}")
    if proof.head.hash != last.hash:
        raise _Bad("head.hash", f"is not the hash of the chain's last record {last.seq}")
    return records


def _hex(text: str, j: int) -> bytes:
    try:
        body = bytes.fromhex(text)
    except ValueError:
        body = b""
    if body.hex() != text:
        raise _Bad(f"chain[{j}].body", "is not lowercase hex")
    return body


def _altered(c: ChainRecord, body: bytes, j: int) -> str:
    """Which part of a record whose hash the next record (or the head) vouches for was
    altered: its ts or kind when they no longer agree with its body, else the body."""
    try:
        movement = LogRecord(c.seq, c.ts, c.kind, body, c.prev, c.hash).movement()
    except (msgspec.DecodeError, ValueError):
        return f"chain[{j}].body"
    if _kind(movement) != c.kind:
        return f"chain[{j}].kind"
    if movement.ts != c.ts:
        return f"chain[{j}].ts"
    return f"chain[{j}].body"


def _kind(body: Movement) -> str:
    """The record kind of a body: its tag."""
    tag: str = body.__struct_config__.tag  # type: ignore[assignment]
    return tag


def _movement(record: LogRecord, j: int) -> Movement:
    """The body of an intact record, which must agree with its kind and ts."""
    try:
        body = record.movement()
    except (msgspec.DecodeError, ValueError) as exc:
        raise _Bad(f"chain[{j}].body", f"not a settlement-log body: {exc}") from None
    if _kind(body) != record.kind:
        raise _Bad(f"chain[{j}].kind", f"{record.kind!r}, but the body is a {_kind(body)!r}")
    if body.ts != record.ts:
        raise _Bad(f"chain[{j}].ts", f"{record.ts}, but the body says {body.ts}")
    return body


# -- the certificate against its records ----------------------------------------------------


def _check_claims(proof: CertificateProof, records: list[LogRecord]) -> list[int]:
    """The seqs of the certificate's records, each checked against what it claims."""
    claims = proof.certificate
    if isinstance(claims, RetirementClaims):
        seqs = [_check_retirement(claims, records)]
    else:
        seqs = _check_order(claims, records)
    _check_complete(claims, set(seqs), records)
    return sorted(seqs)


def _same(pairs: Iterable[tuple[str, object, object]], seq: int) -> None:
    for field, claimed, recorded in pairs:
        if claimed != recorded:
            raise _Bad(field, f"{_short(claimed)}, but record {seq} says {_short(recorded)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _at(records: list[LogRecord], seq: int, field: str, before: bool = False) -> int:
    """The index of record `seq` in the chain (and of the one before it, with `before`)."""
    j = seq - records[0].seq
    if not (1 if before else 0) <= j < len(records):
        need = f"record {seq} and the one before it are" if before else f"record {seq} is"
        raise _Bad(field, f"{need} not in the chain ({records[0].seq} to {records[-1].seq})")
    return j


def _check_retirement(c: RetirementClaims, records: list[LogRecord]) -> int:
    j = _at(records, c.record_seq, "certificate.record_seq")
    record = records[j]
    if record.hash != c.record_hash:
        raise _Bad("certificate.record_hash", f"is not record {record.seq}'s hash")
    b = _movement(record, j)
    if not isinstance(b, Retired):
        raise _Bad("certificate.record_seq", f"record {record.seq} is a {record.kind!r}")
    ranges = tuple(s.range() for s in c.serials)
    _same(
        [
            ("certificate.cert_id", c.cert_id, b.cert_id),
            ("certificate.account", c.account, b.account),
            ("certificate.project", c.project, b.project),
            ("certificate.vintage", c.vintage, b.vintage),
            ("certificate.serials", ranges, b.ranges),
            ("certificate.qty", c.qty, b.qty),
            *_who(c, b),
        ],
        record.seq,
    )
    return record.seq


def _who(
    c: OrderClaims | RetirementClaims, b: FillRetired | Retired
) -> list[tuple[str, object, object]]:
    return [
        ("certificate.beneficiary", c.beneficiary, b.beneficiary),
        ("certificate.purpose", c.purpose, b.purpose.value),
        ("certificate.claim", c.claim, b.claim),
        ("certificate.period_start", c.period_start, b.period_start),
        ("certificate.period_end", c.period_end, b.period_end),
        ("certificate.ts", c.ts, b.ts),
    ]


def _check_order(c: OrderClaims, records: list[LogRecord]) -> list[int]:
    if not c.fills:
        raise _Bad("certificate.fills", "lists no fill")
    seqs: set[int] = set()
    trades: set[int] = set()
    for i, f in enumerate(c.fills):
        at = f"certificate.fills[{i}]"
        if f.record_seq in seqs:
            raise _Bad(f"{at}.record_seq", f"record {f.record_seq} is listed twice")
        if f.trade_id in trades:
            raise _Bad(f"{at}.trade_id", f"trade {f.trade_id} is listed twice")
        seqs.add(f.record_seq)
        trades.add(f.trade_id)
        _check_fill(c, i, records)
    total = sum(f.qty for f in c.fills)
    if c.qty != total:
        raise _Bad("certificate.qty", f"{c.qty}, but its fills add up to {total}")
    return list(seqs)


def _check_fill(c: OrderClaims, i: int, records: list[LogRecord]) -> None:
    """Fill `i` is its `fill_retirement` record, right after its own fill's record."""
    f, at = c.fills[i], f"certificate.fills[{i}]"
    j = _at(records, f.record_seq, f"{at}.record_seq", before=True)
    record = records[j]
    if record.hash != f.record_hash:
        raise _Bad(f"{at}.record_hash", f"is not record {record.seq}'s hash")
    b = _movement(record, j)
    if not isinstance(b, FillRetired):
        raise _Bad(f"{at}.record_seq", f"record {record.seq} is a {record.kind!r}")
    ranges = tuple(s.range() for s in f.serials)
    _same(
        [
            ("certificate.cert_id", c.cert_id, b.cert_id),
            ("certificate.order_id", c.order_id, b.order_id),
            ("certificate.client_order_id", c.client_order_id, b.client_order_id),
            ("certificate.account", c.account, b.account),
            (f"{at}.trade_id", f.trade_id, b.trade_id),
            (f"{at}.serials", ranges, b.ranges),
            (f"{at}.qty", f.qty, b.qty),
            *_who(c, b),
        ],
        record.seq,
    )
    fill = _movement(records[j - 1], j - 1)
    if not isinstance(fill, Settled) or fill.trade_id != b.trade_id:
        raise _Bad(
            f"chain[{j - 1}]", f"is not the fill of trade {b.trade_id} (record {record.seq})"
        )
    _same(
        [
            (f"{at}.series", f.series, fill.series),
            ("certificate.account", c.account, fill.buyer),
            (f"{at}.serials", ranges, fill.ranges),
        ],
        records[j - 1].seq,
    )


def _cert_of(record: LogRecord) -> str:
    """The certificate a retirement record belongs to ("" for any other record)."""
    if record.kind not in ("fill_retirement", "retirement"):
        return ""
    try:
        body = record.movement()
    except (msgspec.DecodeError, ValueError):
        return ""
    return body.cert_id if isinstance(body, FillRetired | Retired) else ""


def _check_complete(claims: Claims, listed: set[int], records: Iterable[LogRecord]) -> None:
    """No retirement record of this certificate is left off it."""
    cert_id = claims.cert_id
    field = "certificate.fills" if isinstance(claims, OrderClaims) else "certificate.record_seq"
    for record in records:
        if record.seq not in listed and _cert_of(record) == cert_id:
            raise _Bad(
                field,
                f"record {record.seq} retires credits under {cert_id[:40]} and is not listed",
            )


def _check_pin(
    records: list[LogRecord], last_cert_seq: int, head: str | None, head_seq: int | None
) -> str:
    """Where the published `head` is in the chain ("" when none is given)."""
    if head is None:
        return ""
    at = next((r for r in records if r.hash == head), None)
    if at is None:
        raise _Bad(
            "head.hash",
            f"the published head {head[:16]} is not in the chain "
            f"({records[0].seq} to {records[-1].seq}, ending at {records[-1].hash[:16]})",
        )
    if head_seq is not None and at.seq != head_seq:
        raise _Bad("head.seq", f"the published head is record {head_seq}, here it is {at.seq}")
    if at.seq < last_cert_seq:
        raise _Bad(
            "head.hash",
            f"the published head is record {at.seq}, before the certificate's {last_cert_seq}",
        )
    return f"record {at.seq}"


# -- against the whole log ------------------------------------------------------------------


def check_in_log(proof: CertificateProof, records: Iterable[LogRecord]) -> Verdict:
    """`verify_proof`, then the whole settlement log from genesis (`records`, in order):
    it chains, its records from the proof's first to its head are the proof's, and no
    retirement record of the certificate lies outside what the certificate lists."""
    verdict = verify_proof(proof)
    if not verdict.ok:
        return verdict
    try:
        _walk(proof, set(verdict.records), records)
    except _Bad as bad:
        return Verdict(ok=False, cert_id=verdict.cert_id, field=bad.field, reason=bad.reason)
    return _good(proof, list(verdict.records), "the log")


def _walk(proof: CertificateProof, listed: set[int], records: Iterable[LogRecord]) -> None:
    first, last = proof.chain[0].seq, proof.head.seq
    seq = 0
    for record in _chained(records):
        seq = record.seq
        if first <= seq <= last:
            _same_record(proof.chain[seq - first], record, seq - first)
        _check_complete(proof.certificate, listed, (record,))
    if seq < last:
        raise _Bad("head.seq", f"{last}, but the settlement log ends at record {seq}")


def _chained(records: Iterable[LogRecord]) -> Iterator[LogRecord]:
    prev, expect = GENESIS, 1
    for r in records:
        if r.seq != expect:
            raise _Bad("log", f"record {expect} is missing from the settlement log")
        if r.prev != prev or record_hash(r.seq, r.ts, r.kind, r.body, r.prev) != r.hash:
            raise _Bad("log", f"the settlement log breaks at record {r.seq} (tonne log verify)")
        yield r
        prev, expect = r.hash, expect + 1


def _same_record(c: ChainRecord, record: LogRecord, j: int) -> None:
    logged = chain_record(record)
    for name in ("ts", "kind", "body", "prev", "hash"):
        if getattr(c, name) != getattr(logged, name):
            raise _Bad(f"chain[{j}].{name}", f"differs from the log's record {record.seq}")
