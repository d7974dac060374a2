"""`tonne certificate`: anyone checks a retirement certificate offline; operators export one.

    tonne certificate verify FILE_OR_ID [--data DIR] [--head HASH [--head-seq N]]
    tonne certificate export ID [--data DIR] [--head-seq N] -o FILE
    tonne certificate head [--data DIR]

`verify FILE` checks a proof file (docs/CERTIFICATES.md) with nothing else: its chain and
that its records say what its certificate says; `--head HASH` also requires the chain to
reach that published head (a record hash the venue published, at or after the
certificate's records); `--data DIR` also checks it against that folder's whole settlement
log. A bare certificate (`tonne buy --certificate-out`, which carries no records) is
checked against the log, so it needs `--data`. `verify ID` (`RC-00000001`) finds the
certificate in the log of `--data` and checks it there.

`export ID` writes the proof of certificate ID, its chain up to record `--head-seq` (the
log's last record unless given; the chain may hold at most 25,000 records). `head` prints
the log's last committed record, `SEQ HASH`: what a venue publishes for `--head`.

Exit status: 0 valid (one line: what is proved, and against what), 1 not valid (the field
that is wrong and why) or not found, 2 usage, or a folder or file that cannot be read, 3
consistent but not pinned: a proof checked with neither `--head` nor `--data` proves only
that it agrees with itself (a forger can rehash a whole invented chain), so it is not
called valid; pin it to a published head or to the log.
Reading a folder while its server runs is safe (read-only, committed records only).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TextIO

from gateway.certificates import (
    check_proof_in_store,
    find_proof,
    read_certificate_file,
    write_proof,
)
from gateway.durability.store import CorruptRecord, SQLiteStore, StoreError, default_data_dir
from settlement.certificate_proof import CertificateProof, Claims, ProofError, with_claims
from settlement.certificate_verify import Verdict, printable, verify_proof

CERT_ID = re.compile(r"RC-[0-9]{1,20}")
UNPINNED = 3  # the exit status of a proof that is consistent but pinned to nothing
HASH = re.compile(r"[0-9a-fA-F]{64}")


class Unreadable(Exception):
    """A folder or file that cannot be read at all (exit 2, not a verdict)."""


def _store(data: str) -> SQLiteStore:
    try:
        return SQLiteStore(data, readonly=True)
    except StoreError as exc:
        raise Unreadable(str(exc)) from None


def verify(
    target: str, out: TextIO, *, data: str | None, head: str | None, head_seq: int | None
) -> int:
    """Check a file or a certificate id; print the verdict; exit status."""
    path = Path(target)
    if not path.is_file() and CERT_ID.fullmatch(target):
        store = _store(data or default_data_dir())
        try:
            proof = find_proof(store, target)
            verdict = check_proof_in_store(store, proof)
        except ProofError as exc:
            out.write(f"FAIL certificate {target}: {exc}\n")
            return 1
        finally:
            store.close()
        return _report(verdict, out, head, head_seq, proof)
    try:
        got = read_certificate_file(path)
    except ProofError as exc:
        if exc.field == "file" and not path.exists():
            raise Unreadable(f"{target}: no such file, and not a certificate id") from None
        out.write(printable(f"FAIL {target}: {exc}") + "\n")
        return 1
    if not isinstance(got, CertificateProof):
        if data is None:
            raise Unreadable(
                f"{target} is a bare certificate (tonne buy --certificate-out): it carries no "
                "records, so pass --data DIR to check it against the settlement log, or ask "
                "for a proof (tonne certificate export)"
            )
        return _bare(got, data, out, head, head_seq)
    if data is None:
        return _report(verify_proof(got, head=head, head_seq=head_seq), out)
    store = _store(data)
    try:
        return _report(check_proof_in_store(store, got), out, head, head_seq, got)
    finally:
        store.close()


def _bare(claims: Claims, data: str, out: TextIO, head: str | None, head_seq: int | None) -> int:
    """A bare certificate: the log's proof of its id, making the file's claims."""
    store = _store(data)
    try:
        proof = with_claims(find_proof(store, claims.cert_id), claims)
        verdict = check_proof_in_store(store, proof)
    except ProofError as exc:
        out.write(printable(f"FAIL certificate {claims.cert_id[:40]}: {exc}") + "\n")
        return 1
    finally:
        store.close()
    return _report(verdict, out, head, head_seq, proof)


def _report(
    verdict: Verdict,
    out: TextIO,
    head: str | None = None,
    head_seq: int | None = None,
    proof: CertificateProof | None = None,
) -> int:
    """Print the verdict (pinned to `head` too when one is given) and return the status."""
    if verdict.ok and head is not None and proof is not None:
        pinned = verify_proof(proof, head=head, head_seq=head_seq)
        if not pinned.ok:
            verdict = pinned
    out.write(verdict.summary() + "\n")
    if verdict.ok and not verdict.pinned:
        out.write(
            "NOT PINNED: the proof agrees with itself only; verify it with --head HASH (the "
            "head the venue published: tonne certificate head) or --data DIR\n"
        )
        return UNPINNED
    return 0 if verdict.ok else 1


def export(cert_id: str, out_path: str, out: TextIO, *, data: str, head_seq: int | None) -> int:
    store = _store(data)
    try:
        proof = find_proof(store, cert_id, head_seq=head_seq)
    except ProofError as exc:
        out.write(f"FAIL certificate {cert_id[:40]}: {exc}\n")
        return 1
    finally:
        store.close()
    verdict = verify_proof(proof)
    assert verdict.ok, verdict  # built from an intact log: a failure is a bug here
    try:
        write_proof(Path(out_path), proof)
    except OSError as exc:
        raise Unreadable(f"{out_path}: {exc.strerror or exc}") from None
    out.write(f"{verdict.summary()}\nproof saved to {out_path} (tonne certificate verify)\n")
    return 0


def print_head(out: TextIO, *, data: str) -> int:
    store = _store(data)
    try:
        at = store.head()
    finally:
        store.close()
    if not at.log_seq:
        out.write("FAIL the settlement log is empty\n")
        return 1
    out.write(f"{at.log_seq} {at.log_head}\n")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tonne certificate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="what", required=True)
    p_verify = sub.add_parser("verify", help="check a certificate file or id")
    p_verify.add_argument("target", metavar="FILE_OR_ID")
    p_verify.add_argument("--data", help="also check against this data folder's log")
    p_verify.add_argument("--head", metavar="HASH", help="a published head the chain must reach")
    p_verify.add_argument("--head-seq", type=int, metavar="N", help="the published head's seq")
    p_export = sub.add_parser("export", help="write a certificate's self-contained proof")
    p_export.add_argument("cert_id", metavar="ID")
    p_export.add_argument("-o", "--out", required=True, metavar="FILE")
    p_export.add_argument("--data", default=default_data_dir(), help="the data folder")
    p_export.add_argument("--head-seq", type=int, metavar="N", help="end the chain here")
    p_head = sub.add_parser("head", help="the log's last record (seq and hash), to publish")
    p_head.add_argument("--data", default=default_data_dir(), help="the data folder")
    return ap


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if getattr(args, "head", None) is not None and not HASH.fullmatch(args.head):
        ap.error("--head is a record hash: 64 hex digits")
    if args.what == "verify" and args.head_seq is not None and args.head is None:
        ap.error("--head-seq goes with --head")
    if getattr(args, "head_seq", None) is not None and not 0 < args.head_seq < 1 << 63:
        ap.error("--head-seq is a record seq, from 1")
    try:
        if args.what == "head":
            return print_head(sys.stdout, data=args.data)
        if args.what == "export":
            return export(
                args.cert_id, args.out, sys.stdout, data=args.data, head_seq=args.head_seq
            )
        head = args.head.lower() if args.head else None
        return verify(args.target, sys.stdout, data=args.data, head=head, head_seq=args.head_seq)
    except CorruptRecord as exc:  # the log itself is broken: nothing it says proves anything
        print(f"FAIL settlement log: {exc} (tonne log verify)")
        return 1
    except (Unreadable, StoreError) as exc:
        print(f"tonne certificate: {exc}", file=sys.stderr)
        return 2
