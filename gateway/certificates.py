"""Certificates outside the exchange, as files and as proofs read from a store.

Two kinds of file (docs/CERTIFICATES.md):
- a *proof* (`"format": "tonne-certificate-1"`, issue 16): the certificate, the records
  that prove it and the chain to a head, checkable with nothing else
  (`settlement.certificate_verify`; `tonne certificate export` writes one, `tonne
  certificate verify FILE` checks it);
- a *bare certificate* (issue 14): the wire's `order_certificate` JSON exactly as the
  server sent it (`tonne buy --certificate-out FILE` writes it, as the client has no log),
  checkable only against the settlement log (`tonne log verify --certificate FILE`, or
  `tonne certificate verify FILE --data DIR`).

`find_proof` and `check_proof_in_store` read a store (a stopped server's data folder, or a
running one's: see `find_proof`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from gateway.durability.journal import Codec, SettlementCodec
from gateway.durability.store import Store
from gateway.wire import protocol as p
from settlement.certificate_proof import (
    PROOF_BYTES_MAX,
    CertificateProof,
    Claims,
    ProofError,
    build_proof,
    claims_of,
    decode_proof,
    encode_proof,
)
from settlement.certificate_verify import Verdict, check_in_log
from settlement.events import CertificateFill, OrderCertificate, Purpose, RetirementCertificate
from settlement.log import LogRecord
from settlement.serials import SerialRange

CERTIFICATE_BYTES_MAX = 4 << 20  # a bare certificate file read back (10,000 fills fit)


class CertificateFileError(ValueError):
    """The file is not an order certificate."""


def core_certificate(cert: p.OrderCertificate) -> OrderCertificate:
    """The core's certificate that the wire one writes out."""
    fills = tuple(
        CertificateFill(
            f.trade_id,
            f.series,
            tuple(SerialRange(r.project, r.vintage, r.first, r.last, r.batch) for r in f.serials),
            f.qty,
            f.record_seq,
            f.record_hash,
        )
        for f in cert.fills
    )
    return OrderCertificate(
        cert.cert_id,
        cert.account,
        cert.order_id,
        cert.client_order_id,
        cert.qty,
        cert.beneficiary,
        Purpose(cert.purpose),
        cert.claim,
        cert.period_start,
        cert.period_end,
        fills,
        cert.ts,
    )


def write_certificate(path: Path, cert: p.OrderCertificate) -> None:
    path.write_bytes(msgspec.json.encode(cert) + b"\n")


def read_certificate(path: Path) -> OrderCertificate:
    """The core's certificate in `path`; `CertificateFileError` if it is not one."""
    try:
        with path.open("rb") as f:
            data = f.read(CERTIFICATE_BYTES_MAX + 1)
    except OSError as exc:
        raise CertificateFileError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > CERTIFICATE_BYTES_MAX:
        raise CertificateFileError(f"{path}: more than {CERTIFICATE_BYTES_MAX} bytes")
    try:
        return core_certificate(msgspec.json.decode(data, type=p.OrderCertificate))
    except (msgspec.DecodeError, ValueError) as exc:
        raise CertificateFileError(f"{path}: not an order certificate: {exc}") from None


# -- proofs (issue 16) ------------------------------------------------------------------------


class _Kind(msgspec.Struct):
    """Enough of a file's JSON object to tell a proof from a bare certificate."""

    format: str | None = None
    type: str | None = None


_bare = msgspec.json.Decoder(p.OrderCertificate | p.Certificate)


def read_certificate_file(
    path: Path, *, bytes_max: int = PROOF_BYTES_MAX
) -> CertificateProof | Claims:
    """The proof in `path`, or the claims of the bare certificate in it (which only the log
    can check); `ProofError` naming the field when it is neither, or is too large."""
    try:
        with path.open("rb") as f:
            data = f.read(bytes_max + 1)
    except OSError as exc:
        raise ProofError("file", f"{path}: {exc.strerror or exc}") from None
    if len(data) > bytes_max:
        raise ProofError("file", f"{path}: more than {bytes_max} bytes")
    try:
        kind = msgspec.json.decode(data, type=_Kind)
    except msgspec.DecodeError as exc:
        raise ProofError("file", f"{path}: not a certificate (JSON object): {exc}") from None
    if kind.format is not None or kind.type is None:
        return decode_proof(data, bytes_max=bytes_max)
    try:
        bare = _bare.decode(data)
    except msgspec.DecodeError as exc:
        raise ProofError("file", f"{path}: not a certificate: {exc}") from None
    if isinstance(bare, p.OrderCertificate):
        return claims_of(core_certificate(bare))
    return claims_of(core_retirement_certificate(bare))


def core_retirement_certificate(cert: p.Certificate) -> RetirementCertificate:
    """The core's certificate of a `retire` command that the wire's `certificate` carries."""
    return RetirementCertificate(
        cert.cert_id,
        cert.account,
        cert.project,
        cert.vintage,
        tuple(SerialRange(r.project, r.vintage, r.first, r.last, r.batch) for r in cert.serials),
        cert.qty,
        cert.beneficiary,
        Purpose(cert.purpose),
        cert.claim,
        cert.period_start,
        cert.period_end,
        cert.ts,
        cert.record_seq,
        cert.record_hash,
    )


def write_proof(path: Path, proof: CertificateProof) -> None:
    path.write_bytes(encode_proof(proof))


def log_records(store: Store, codec: Codec | None = None) -> Iterator[LogRecord]:
    """Every settlement-log record the store holds, archived ones too, in order."""
    codec = codec if codec is not None else SettlementCodec()
    for row in store.records(0):
        record: Any = codec.decode_record(row.record)
        yield record


def find_proof(store: Store, cert_id: str, *, head_seq: int | None = None) -> CertificateProof:
    """The proof of certificate `cert_id` from the store's settlement log, its chain up to
    record `head_seq` (None: the last committed record). One consistent read of the whole
    log (about 2 us a record), keeping only the chain (`CHAIN_RECORDS_MAX`).

    What to pass: a stopped server's data folder as `SQLiteStore(data_dir, readonly=True)`.
    A running server: not the `SQLiteStore` it holds (`Running.store`: the journal's writer
    uses it, and a store serves one thread at a time) but one of your own, opened
    `SQLiteStore(data_dir, readonly=True)` on the same folder: WAL lets it read while the
    writer commits, and it sees committed records only, so everything in the proof is
    durable. Call this off the event loop, `await asyncio.to_thread(find_proof, store,
    cert_id)`, as it reads the whole log (SQLiteStore allows the hand-over between threads).

    Raises `ProofError` (`cert_id`: no such certificate; `head_seq`: before the certificate,
    past the log, or too far for one proof), `StoreError` or `CorruptRecord` for a store
    that cannot be read."""
    with store.reading():
        return build_proof(log_records(store), cert_id, head_seq=head_seq)


def check_proof_in_store(store: Store, proof: CertificateProof) -> Verdict:
    """`settlement.certificate_verify.check_in_log` against the store's whole log (the same
    store as `find_proof` takes, and off the loop the same way)."""
    with store.reading():
        return check_in_log(proof, log_records(store))
