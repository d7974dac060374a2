"""`tonne log`: operators follow and audit the settlement log in a data folder.

    tonne log tail [-f] [-n N] [--after SEQ] [--data DIR]   one line per record; -f follows
    tonne log verify [--data DIR] [--certificate FILE ...]   chain + ledger replay +
                                              invariants, state hash; and order certificates

`tail -f` polls the store (a read-only connection, so it never gets in the writer's way)
every `--poll-s` seconds until interrupted. `verify` runs `settlement.log.verify` over every
stored record, then rebuilds the state the way a restart would (both chains checked from
genesis, snapshot + journal replay, each record checked against the log) to print its state
hash, then checks the journal against the log through the archived segments too
(`chaincheck.check_links`: every record belongs to a journaled command, the counts agree);
it exits 1 naming the first bad record on any break. Each `--certificate FILE` (an order
certificate as `tonne buy --certificate-out` saved it, or a proof `tonne certificate
export` wrote) is then checked against the stored records
(`settlement.log.check_order_certificate`, `settlement.certificate_verify.check_in_log`):
proved, or exit 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from gateway.durability.chaincheck import ChainError, check_chains, check_links
from gateway.durability.journal import Codec, SettlementCodec
from gateway.durability.recovery import RecoveryError, recover
from gateway.durability.store import CorruptRecord, SQLiteStore, StoreError, default_data_dir

POLL_S = 0.5
POLL_S_MIN = 0.01


def _decoded(store: SQLiteStore, codec: Codec, after_seq: int) -> Iterator[Any]:
    for row in store.records(after_seq):
        yield codec.decode_record(row.record)


def tail(
    store: SQLiteStore,
    out: TextIO,
    *,
    last: int = 0,
    after_seq: int = 0,
    follow: bool = False,
    poll_s: float = POLL_S,
    stop: Callable[[], bool] = lambda: False,
    codec: Codec | None = None,
) -> int:
    """Print the log after record `after_seq` (only the last `last` records when > 0), then
    with `follow` keep printing new records until `stop()` says so; returns the seq of the
    last record printed."""
    from settlement.log import format_record

    codec = codec if codec is not None else SettlementCodec()
    seq = max(0, after_seq)
    if last > 0:
        seq = max(seq, store.head().log_seq - last)
    lines: deque[str] = deque()
    for record in _decoded(store, codec, seq):
        out.write(format_record(record) + "\n")
        seq = record.seq
    out.flush()
    while follow and not stop():
        printed = False
        for record in _decoded(store, codec, seq):
            lines.append(format_record(record))
            seq = record.seq
            printed = True
        if printed:
            out.write("\n".join(lines) + "\n")
            out.flush()
            lines.clear()
        elif not stop():
            time.sleep(poll_s)  # polling the store is the design here: no event to await
    return seq


def verify(store: SQLiteStore, out: TextIO, *, codec: Codec | None = None) -> int:
    """Audit the stored log and the state rebuilt from the store; exit status."""
    from settlement.log import verify as verify_log

    codec = codec if codec is not None else SettlementCodec()
    with store.reading():  # one consistent view, though a server may be writing
        return _verify(store, out, codec, verify_log)


def _verify(store: SQLiteStore, out: TextIO, codec: Codec, verify_log: Any) -> int:
    try:  # both chains first, so that a break is named the same way as a start names it
        check_chains(store, codec, full=True)  # every archived record re-hashed too
    except (ChainError, CorruptRecord) as exc:
        out.write(f"FAIL: {exc}\n")
        return 1
    try:
        verdict = verify_log(_decoded(store, codec, 0))
    except CorruptRecord as exc:
        out.write(f"FAIL: {exc}\n")
        return 1
    if not verdict.ok:
        out.write(f"FAIL: {verdict.summary()}\n")
        return 1
    try:
        rec = recover(store, codec=codec)
    except RecoveryError as exc:
        out.write(f"FAIL: {verdict.summary()}; but the state does not rebuild: {exc}\n")
        return 1
    try:
        commands, linked = check_links(store, codec)
    except (ChainError, CorruptRecord) as exc:
        out.write(f"FAIL: {verdict.summary()}; but the journal and the log disagree: {exc}\n")
        return 1
    out.write(
        f"{verdict.summary()}; journal {commands} commands, {linked} records linked; "
        f"state hash {rec.state_hash}\n"
    )
    return 0


def check_certificates(store: SQLiteStore, paths: list[str], out: TextIO) -> int:
    """Check each order certificate file against the stored records; exit status."""
    from pathlib import Path

    from gateway.certificates import CertificateFileError, read_certificate
    from settlement.log import check_order_certificate

    status = 0
    for path in paths:
        try:
            cert = read_certificate(Path(path))
        except CertificateFileError as exc:
            proved = _check_proof(store, Path(path), out)
            if proved is None:
                out.write(f"FAIL: {exc}\n")
            status = status if proved else 1
            continue
        seqs = sorted(f.record_seq for f in cert.fills)
        if check_order_certificate(cert, _decoded(store, SettlementCodec(), 0)):
            out.write(
                f"certificate {cert.cert_id}: {cert.qty} t for {cert.beneficiary!r} proved by "
                f"records {', '.join(map(str, seqs))}\n"
            )
        else:
            out.write(f"FAIL: certificate {cert.cert_id} ({path}) is not what the log says\n")
            status = 1
    return status


def _check_proof(store: SQLiteStore, path: Any, out: TextIO) -> bool | None:
    """A proof file (`tonne certificate export`) checked against the stored log: whether it
    is proved; None when the file is not a proof either."""
    from gateway.certificates import check_proof_in_store, read_certificate_file
    from settlement.certificate_proof import CertificateProof, ProofError

    try:
        proof = read_certificate_file(path)
    except ProofError:
        return None
    if not isinstance(proof, CertificateProof):
        return None
    verdict = check_proof_in_store(store, proof)
    out.write(verdict.summary() + "\n")
    return verdict.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tonne log", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_tail = sub.add_parser("tail", help="print the settlement log, one line per record")
    p_tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p_tail.add_argument("-n", "--lines", type=int, default=0, help="only the last N records")
    p_tail.add_argument("--after", type=int, default=0, help="only records after seq N")
    p_tail.add_argument("--poll-s", type=float, default=POLL_S, help="follow: poll interval")
    p_verify = sub.add_parser("verify", help="audit the settlement log and print the state hash")
    p_verify.add_argument(
        "--certificate",
        action="append",
        default=[],
        metavar="FILE",
        help="also check this certificate (tonne buy --certificate-out, or a proof from "
        "tonne certificate export) against the log",
    )
    for p in (p_tail, p_verify):
        p.add_argument("--data", default=default_data_dir(), help="the data folder")
    args = parser.parse_args(argv)
    try:
        store = SQLiteStore(args.data, readonly=True)
    except StoreError as exc:
        print(f"tonne log: {exc}", file=sys.stderr)
        return 2
    try:
        if args.what == "verify":
            status = verify(store, sys.stdout)
            return status or check_certificates(store, args.certificate, sys.stdout)
        try:
            tail(
                store,
                sys.stdout,
                last=max(0, args.lines),
                after_seq=args.after,
                follow=args.follow,
                poll_s=max(POLL_S_MIN, args.poll_s),
            )
        except KeyboardInterrupt:
            pass
        except CorruptRecord as exc:
            print(f"tonne log: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        store.close()
