"""Self-contained certificate proofs (issue 16): a retirement certificate together with the
settlement-log records that prove it and the hash chain from those records up to a head, so
that anyone holding only the proof (and, to pin it, a head hash the venue published) can
check the certificate offline. docs/CERTIFICATES.md describes the format byte for byte.

    proof = build_proof(records, "RC-00000001")            # records: the log, in order
    data = encode_proof(proof)                              # the file's bytes (JSON)
    proof = decode_proof(data)                              # ProofError naming the field
    verdict = verify_proof(proof, head="43a0ab...")         # settlement.certificate_verify
    verdict = check_in_log(proof, records)                  # against the whole log too

Everything here is pure: records in, values out, no file, no clock. `build_proof` reads
the log once, in order, keeping only the chain segment it returns (bounded by
`CHAIN_RECORDS_MAX`); the gateway feeds it from a store (gateway/certificates.py).

A proof's `certificate` is one of two kinds, as the core issues them: `order` (a
buy-and-retire order or basket: one `fill_retirement` record per fill, each right after its
`fill` record) and `retirement` (a `retire` command: one `retirement` record).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

import msgspec

from settlement.basket import BASKET_FILLS_MAX
from settlement.events import (
    FillRetired,
    OrderCertificate,
    Retired,
    RetirementCertificate,
    Settled,
)
from settlement.log import LogRecord
from settlement.retirement import TEXT_MAX
from settlement.serials import SerialRange

FORMAT = "tonne-certificate-1"  # the `format` field: which layout the rest follows
CHAIN_RECORDS_MAX = 25_000  # records in a proof's chain: a 10,000-fill basket is 20,000
FILLS_MAX = BASKET_FILLS_MAX  # fills on one order certificate
RANGES_MAX = 65_536  # serial ranges of one fill or retirement
PROOF_BYTES_MAX = 32 << 20  # an encoded proof: a full chain of large records fits
STR_CHARS_MAX = TEXT_MAX  # any text field (beneficiary, claim, ids, series)
BODY_HEX_CHARS_MAX = 2 * PROOF_BYTES_MAX  # one record's body, hex

Count = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
Text = Annotated[str, msgspec.Meta(max_length=STR_CHARS_MAX)]
Hash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
BodyHex = Annotated[str, msgspec.Meta(pattern="^(?:[0-9a-f]{2})*$", max_length=BODY_HEX_CHARS_MAX)]


class ProofError(ValueError):
    """A proof cannot be built or read. `field` is where, as a path into the proof's JSON
    (`chain[3].hash`, `certificate.fills[0].record_seq`, `format`), or the argument that
    made building fail (`cert_id`, `head_seq`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Serials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Inclusive serials of one project and vintage in one registry batch ("" for none)."""

    project: Text
    vintage: Count
    first: Count
    last: Count
    batch: Text = ""

    def range(self) -> SerialRange:
        return SerialRange(self.project, self.vintage, self.first, self.last, self.batch)


SerialsList = Annotated[list[Serials], msgspec.Meta(max_length=RANGES_MAX)]


class Fill(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One fill of an order certificate and the seq and hash of its `fill_retirement`."""

    trade_id: Count
    series: Text
    qty: Count
    serials: SerialsList
    record_seq: Count
    record_hash: Hash


class OrderClaims(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="order", tag_field="kind"
):
    """What a buy-and-retire order's certificate says (settlement.events.OrderCertificate)."""

    cert_id: Text
    account: Count
    order_id: Count
    client_order_id: Text
    qty: Count
    beneficiary: Text
    purpose: Text
    claim: Text
    period_start: Text
    period_end: Text
    ts: Count
    fills: Annotated[list[Fill], msgspec.Meta(max_length=FILLS_MAX)]


class RetirementClaims(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="retirement", tag_field="kind"
):
    """What a `retire` command's certificate says (settlement.events.RetirementCertificate)."""

    cert_id: Text
    account: Count
    project: Text
    vintage: Count
    qty: Count
    serials: SerialsList
    beneficiary: Text
    purpose: Text
    claim: Text
    period_start: Text
    period_end: Text
    ts: Count
    record_seq: Count
    record_hash: Hash


Claims = OrderClaims | RetirementClaims


class ChainRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One settlement-log record as the log holds it, its body as lowercase hex."""

    seq: Count
    ts: Count
    kind: Text
    body: BodyHex
    prev: Hash
    hash: Hash

    def record(self) -> LogRecord:
        return LogRecord(
            self.seq, self.ts, self.kind, bytes.fromhex(self.body), self.prev, self.hash
        )


class Head(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the proof's chain ends: the last record's seq and hash."""

    seq: Count
    hash: Hash


class CertificateProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A certificate, the records that prove it and the chain from them to `head`."""

    format: str
    certificate: Claims
    chain: Annotated[list[ChainRecord], msgspec.Meta(max_length=CHAIN_RECORDS_MAX)]
    head: Head


class _Format(msgspec.Struct):
    format: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CertificateProof)
_format_decoder = msgspec.json.Decoder(_Format)
_PATH = re.compile(r"at `\$\.?([^`]*)`")


def chain_record(record: LogRecord) -> ChainRecord:
    return ChainRecord(
        record.seq, record.ts, record.kind, record.body.hex(), record.prev, record.hash
    )


def serials(ranges: Iterable[SerialRange]) -> list[Serials]:
    return [Serials(r.project, r.vintage, r.first, r.last, r.batch) for r in ranges]


def encode_proof(proof: CertificateProof) -> bytes:
    """The proof as its file holds it: compact JSON and a newline."""
    return _encoder.encode(proof) + b"\n"


def decode_proof(data: bytes, *, bytes_max: int = PROOF_BYTES_MAX) -> CertificateProof:
    """The proof `data` encodes; `ProofError` naming the field when it is not one: too
    large, not JSON, another format, or a field of the wrong type, pattern or length."""
    if len(data) > bytes_max:
        raise ProofError("file", f"{len(data)} bytes, more than the {bytes_max} a proof may be")
    try:
        found = _format_decoder.decode(data).format
    except msgspec.DecodeError as exc:
        raise ProofError(_field(exc, "file"), f"not a certificate proof: {exc}") from None
    if found != FORMAT:
        raise ProofError("format", f"{found[:40]!r} where {FORMAT!r} was expected")
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProofError(_field(exc, "file"), str(exc)) from None


def _field(exc: msgspec.DecodeError, default: str) -> str:
    """The JSON path msgspec names in its message (`$.chain[3].hash` -> `chain[3].hash`)."""
    match = _PATH.search(str(exc))
    return match.group(1) if match and match.group(1) else default


# -- building a proof from the log ------------------------------------------------------------


class _Found:
    """The certificate's records as `build_proof` meets them."""

    def __init__(self) -> None:
        self.retired: Retired | None = None
        self.retired_at: LogRecord | None = None
        self.fills: list[tuple[LogRecord, FillRetired, str]] = []  # record, body, series
        self.last_seq = 0


def build_proof(
    records: Iterable[LogRecord],
    cert_id: str,
    *,
    head_seq: int | None = None,
    chain_records_max: int = CHAIN_RECORDS_MAX,
) -> CertificateProof:
    """The proof of certificate `cert_id`, from `records`: the settlement log in order, all
    of it (so that every record of the certificate is found) or at least from the record
    before the certificate's first through `head_seq`. The chain runs from the first record
    the certificate needs (an order's first `fill`) to `head_seq`, or to the last record
    given when it is None. Raises `ProofError`: no such certificate (`cert_id`), a head
    before the certificate's last record or past the log (`head_seq`), or a chain longer
    than `chain_records_max` (`head_seq`: pass an earlier one)."""
    found = _Found()
    chain: list[LogRecord] = []
    before: LogRecord | None = None
    for record in records:
        collecting = head_seq is None or record.seq <= head_seq
        is_one = _of_certificate(record, cert_id, before, found)
        if is_one and not chain and found.fills and before is not None:
            chain.append(before)  # the first fill's own record: the retirement follows it
        if (chain or found.last_seq) and collecting:
            chain.append(record)
            if len(chain) > chain_records_max:
                raise ProofError(
                    "head_seq",
                    f"the chain from record {chain[0].seq} would be more than "
                    f"{chain_records_max} records; pass a head_seq from {found.last_seq} "
                    f"to {chain[0].seq + chain_records_max - 1}",
                )
        before = record
    return _proof(found, chain, cert_id, head_seq)


def _of_certificate(
    record: LogRecord, cert_id: str, before: LogRecord | None, found: _Found
) -> bool:
    """Whether `record` is one of the certificate's; if so, note it in `found`."""
    if record.kind not in ("fill_retirement", "retirement"):
        return False
    body = record.movement()
    if isinstance(body, FillRetired) and body.cert_id == cert_id:
        fill = before.movement() if before is not None else None
        series = fill.series if isinstance(fill, Settled) else ""
        found.fills.append((record, body, series))
    elif isinstance(body, Retired) and body.cert_id == cert_id and found.retired is None:
        found.retired, found.retired_at = body, record
    else:
        return False
    found.last_seq = record.seq
    return True


def _proof(
    found: _Found, chain: list[LogRecord], cert_id: str, head_seq: int | None
) -> CertificateProof:
    if not found.last_seq:
        raise ProofError("cert_id", f"no certificate {cert_id[:40]!r} in the settlement log")
    if head_seq is not None and head_seq < found.last_seq:
        raise ProofError(
            "head_seq", f"{head_seq} is before the certificate's record {found.last_seq}"
        )
    if head_seq is not None and chain[-1].seq != head_seq:
        raise ProofError("head_seq", f"{head_seq} is past the log's end, {chain[-1].seq}")
    claims = _claims(found)
    last = chain[-1]
    return CertificateProof(
        FORMAT, claims, [chain_record(r) for r in chain], Head(last.seq, last.hash)
    )


def _claims(found: _Found) -> Claims:
    if found.retired is not None and found.retired_at is not None:
        b, at = found.retired, found.retired_at
        return RetirementClaims(
            b.cert_id,
            b.account,
            b.project,
            b.vintage,
            b.qty,
            serials(b.ranges),
            b.beneficiary,
            b.purpose.value,
            b.claim,
            b.period_start,
            b.period_end,
            b.ts,
            at.seq,
            at.hash,
        )
    fills = [
        Fill(b.trade_id, series, b.qty, serials(b.ranges), r.seq, r.hash)
        for r, b, series in found.fills
    ]
    one = found.fills[0][1]
    return OrderClaims(
        one.cert_id,
        one.account,
        one.order_id,
        one.client_order_id,
        sum(f.qty for f in fills),
        one.beneficiary,
        one.purpose.value,
        one.claim,
        one.period_start,
        one.period_end,
        one.ts,
        fills,
    )


def claims_of(cert: OrderCertificate | RetirementCertificate) -> Claims:
    """What a certificate as the core issued it (and a bare certificate file holds) says."""
    if isinstance(cert, RetirementCertificate):
        return RetirementClaims(
            cert.cert_id,
            cert.account,
            cert.project,
            cert.vintage,
            cert.qty,
            serials(cert.ranges),
            cert.beneficiary,
            cert.purpose.value,
            cert.claim,
            cert.period_start,
            cert.period_end,
            cert.ts,
            cert.record_seq,
            cert.record_hash,
        )
    fills = [
        Fill(f.trade_id, f.series, f.qty, serials(f.ranges), f.record_seq, f.record_hash)
        for f in cert.fills
    ]
    return OrderClaims(
        cert.cert_id,
        cert.account,
        cert.order_id,
        cert.client_order_id,
        cert.qty,
        cert.beneficiary,
        cert.purpose.value,
        cert.claim,
        cert.period_start,
        cert.period_end,
        cert.ts,
        fills,
    )


def with_claims(proof: CertificateProof, claims: Claims) -> CertificateProof:
    """`proof` making the claims of another copy of its certificate (a bare file's)."""
    return msgspec.structs.replace(proof, certificate=claims)
