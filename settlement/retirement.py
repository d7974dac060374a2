"""Retirement: credits leave circulation for a named beneficiary, for good.

A retirement takes credits of one account that its open sell orders do not need (holds are
quantities, so the account keeps at least what it holds), either a quantity of a series
(lowest serials first, project by project in the order the caller gives) or exact serial
ranges. It is checked completely before anything changes, then produces one `Retired`
record and one `RetirementCertificate` per (project, vintage). Retired serials stay in the
ledger's `known` and `retired` range lists, so they can never be deposited, delivered,
withdrawn or retired again.
"""

from __future__ import annotations

import re

from engine.events import Reason
from settlement import serials
from settlement.events import Purpose, Retired, RetirementCertificate
from settlement.ledger import Ledger, Reject
from settlement.limits import SERIAL_MAX
from settlement.serials import Key, Range, SerialRange

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TEXT_MAX = 1000  # characters of beneficiary or claim text


def check_details(
    beneficiary: str, claim: str, period_start: str, period_end: str
) -> Reject | None:
    """None if the details may go on a certificate. The reporting period is both dates
    (`YYYY-MM-DD`, end not before start) or neither ("" and "": no period is stated, the
    certificate and its record carry empty strings); one date without the other is refused,
    since a certificate must not claim a period that is open at one end."""
    if not beneficiary.strip():
        return Reject(Reason.INVALID_RETIREMENT, "a retirement needs a named beneficiary")
    if len(beneficiary) > TEXT_MAX or len(claim) > TEXT_MAX:
        return Reject(
            Reason.INVALID_RETIREMENT, f"beneficiary and claim are at most {TEXT_MAX} characters"
        )
    if not period_start and not period_end:
        return None  # no reporting period: the certificate states none
    if not period_start or not period_end:
        return Reject(
            Reason.INVALID_RETIREMENT,
            "a reporting period needs both period_start and period_end, or neither",
        )
    for d in (period_start, period_end):
        if not _DATE.fullmatch(d):
            return Reject(
                Reason.INVALID_RETIREMENT, f"reporting period date {d!r} is not YYYY-MM-DD"
            )
    if period_end < period_start:
        return Reject(Reason.INVALID_RETIREMENT, "reporting period ends before it starts")
    return None


def plan_by_quantity(
    ledger: Ledger, account: int, keys: list[Key], qty: int, series: str
) -> Reject | dict[Key, list[Range]]:
    """The lowest available serials adding up to `qty`, per key, without changing anything."""
    acct = ledger.accounts[account]
    if qty <= 0:
        return Reject(Reason.INVALID_QUANTITY, f"quantity {qty} must be positive")
    available = sum(acct.credit_qty.get(k, 0) for k in keys)
    if qty > available:
        return Reject(
            Reason.INSUFFICIENT_CREDITS, f"retire {qty} t of {series}: {available} t available"
        )
    plan: dict[Key, list[Range]] = {}
    left = qty
    for key in keys:
        quota = min(acct.credit_qty.get(key, 0), left)  # what holds leave of this key
        left -= quota
        for a, b in acct.credits.get(key, []):
            if not quota:
                break
            n = min(b - a + 1, quota)
            plan.setdefault(key, []).append((a, a + n - 1))
            quota -= n
        if not left:
            return plan
    raise AssertionError("credit_qty disagrees with the ranges")


def plan_by_ranges(
    ledger: Ledger, account: int, ranges: tuple[SerialRange, ...]
) -> Reject | dict[Key, list[Range]]:
    """Exact ranges, each wholly available to the account, none given twice."""
    acct = ledger.accounts[account]
    plan: dict[Key, list[Range]] = {}
    for r in ranges:
        if r.last < r.first:
            return Reject(Reason.INVALID_SERIAL_BLOCK, f"range {r} ends before it starts")
        if r.first < 0 or r.last > SERIAL_MAX:
            return Reject(Reason.INVALID_SERIAL_BLOCK, f"range {r} is outside 0..{SERIAL_MAX}")
        key = r.key
        banded = ledger.banded(r)
        if banded is None:
            return Reject(Reason.SERIALS_NOT_HELD, f"{r}: no serials of that batch")
        first, last = banded
        chosen = plan.setdefault(key, [])
        rejected = ledger.check_available(acct, key, first, last, serials.total(chosen))
        if rejected is not None:
            return rejected
        if serials.overlaps(chosen, first, last):
            return Reject(Reason.INVALID_SERIAL_BLOCK, f"range {r} is given twice")
        serials.add(chosen, first, last)
    return plan


def apply_retirement(
    ledger: Ledger,
    account: int,
    plan: dict[Key, list[Range]],
    beneficiary: str,
    purpose: Purpose,
    claim: str,
    period_start: str,
    period_end: str,
    ts: int,
) -> list[RetirementCertificate]:
    """Retire a checked plan: per key, the record, the ranges moved to `retired` by the
    ledger (`Ledger.retire`), and the certificate."""
    certificates = []
    for key in sorted(plan):
        project, vintage = key
        ranges = plan[key]
        qty = serials.total(ranges)
        cert_id = f"RC-{ledger.next_cert:08d}"
        body = Retired(
            cert_id,
            account,
            project,
            vintage,
            tuple(ledger.serial_range(key, a, b) for a, b in ranges),
            qty,
            beneficiary,
            purpose,
            claim,
            period_start,
            period_end,
            ts,
        )
        record = ledger.retire(account, key, ranges, body)
        certificates.append(
            RetirementCertificate(
                cert_id,
                account,
                project,
                vintage,
                body.ranges,
                qty,
                beneficiary,
                purpose,
                claim,
                period_start,
                period_end,
                ts,
                record.seq,
                record.hash,
            )
        )
    return certificates
