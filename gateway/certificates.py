"""Order certificates outside the exchange (issue 14): the wire's `order_certificate` as a
file a buyer keeps, and back as the core's `OrderCertificate`, so that anyone holding the
settlement log can check it (`settlement.log.check_order_certificate`; `tonne log verify
--certificate FILE`).

The file is the wire message's JSON, exactly as the server sent it (`tonne buy
--certificate-out FILE` writes it).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from gateway.wire import protocol as p
from settlement.events import CertificateFill, OrderCertificate, Purpose
from settlement.serials import SerialRange

CERTIFICATE_BYTES_MAX = 4 << 20  # a certificate file read back (10,000 fills fit)


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
