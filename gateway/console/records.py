"""The settlement log as the console shows it: one record as JSON, filters, and pages.

Everything here is synchronous and reads a store of its own (a read-only `SQLiteStore`, as
`tonne log tail -f` does), so the console runs it in one worker thread and the event loop
never waits on SQLite (gateway/console/app.py). A page never loads the whole log:

- newest first: `before=SEQ` (default: the head) reads backwards in windows of
  `WINDOW_RECORDS`, keeping the records that pass the filter, until `limit` of them are
  found or `SCAN_RECORDS_MAX` records were read; the answer's `next_before` says where to go
  on (None: the start of the log was reached);
- oldest first: `after=SEQ` reads forwards the same way (the live view asks for what came
  after the last record it shows).

A filter is a conjunction: `kind` (one or more record kinds), `account` (any account the
record names: buyer, seller, the account moved), `series`, and `serial` (a registry serial
string or part of one, as the record's line shows it, or a serial number inside one of its
ranges).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from settlement.events import (
    CreditsCancelled,
    CreditsDeposited,
    CreditsWithdrawn,
    FillRetired,
    LabelChanged,
    ProjectReinstated,
    ProjectSuspended,
    Retired,
    RuleVersionAdded,
    Settled,
)
from settlement.log import LogRecord, decode_record, format_record

WINDOW_RECORDS = 512  # records read per store round trip
SCAN_RECORDS_MAX = 20_000  # records read for one page, at most
PAGE_MAX = 500  # records in one answer, at most
KINDS = frozenset(
    {
        "cash_deposit", "cash_withdrawal", "credit_deposit", "credit_withdrawal", "fill",
        "contract_fill", "retirement", "fill_retirement", "label", "suspension",
        "reinstatement", "reversal", "contract_rule",
    }
)  # fmt: skip
REGISTRY_KINDS = frozenset({"label", "suspension", "reinstatement", "reversal", "contract_rule"})
SERIAL_FILTER_MAX = 200  # characters


@dataclass(frozen=True)
class LogFilter:
    kinds: frozenset[str] = frozenset()
    account: int | None = None
    series: str = ""
    serial: str = ""

    def passes(self, view: RecordView) -> bool:
        if self.kinds and view.kind not in self.kinds:
            return False
        if self.account is not None and self.account not in view.accounts:
            return False
        if self.series and self.series != view.series:
            return False
        return not self.serial or view.names_serial(self.serial)


@dataclass
class RecordView:
    """One record, decoded once, with what the filters look at."""

    record: LogRecord
    body: Any
    line: str
    accounts: tuple[int, ...]
    series: str
    ranges: tuple[Any, ...]
    cert_id: str = ""

    @property
    def kind(self) -> str:
        return self.record.kind

    def names_serial(self, text: str) -> bool:
        if text in self.line:
            return True
        if text.isdigit():
            n = int(text)
            return any(r.first <= n <= r.last for r in self.ranges)
        return False

    def json(self) -> dict[str, Any]:
        r = self.record
        return {
            "seq": r.seq,
            "ts": r.ts,
            "kind": r.kind,
            "hash": r.hash,
            "prev": r.prev,
            "line": self.line,
            "accounts": list(self.accounts),
            "series": self.series,
            "serials": [str(x) for x in self.ranges],
            "cert_id": self.cert_id,
            "body": fields_of(self.body),
        }


def fields_of(body: Any) -> dict[str, Any]:
    """A record body as {field: value} (its structs are arrays on the wire and in the log;
    a person and a script want names), serial ranges as registry strings."""
    out: dict[str, Any] = {}
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if name in ("range", "ranges"):
            value = str(value) if name == "range" else [str(r) for r in value]
        out[name] = msgspec.to_builtins(value)
    return out


def view(record: LogRecord) -> RecordView:
    b = record.movement()
    accounts: tuple[int, ...] = ()
    series, cert = "", ""
    ranges: tuple[Any, ...] = ()
    if isinstance(b, Settled):
        accounts, series, ranges = (b.buyer, b.seller), b.series, b.ranges
    elif isinstance(b, Retired | FillRetired):
        accounts, ranges, cert = (b.account,), b.ranges, b.cert_id
    elif isinstance(b, CreditsDeposited | CreditsWithdrawn | CreditsCancelled):
        accounts, ranges = (b.account,), (b.range,)
    elif isinstance(b, RuleVersionAdded):
        series = b.series
    elif not isinstance(b, LabelChanged | ProjectSuspended | ProjectReinstated):
        accounts = (b.account,)  # cash
    return RecordView(record, b, format_record(record), accounts, series, tuple(ranges), cert)


@dataclass
class Page:
    records: list[dict[str, Any]] = field(default_factory=list)
    next_before: int | None = None  # newest first: read on from here (None: the start)
    last_seq: int = 0  # oldest first: the last record read (the next `after`)
    scanned: int = 0
    head: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "next_before": self.next_before,
            "last_seq": self.last_seq,
            "scanned": self.scanned,
            "head": self.head,
        }


def decoded(rows: Iterable[Any]) -> Iterator[RecordView]:
    for row in rows:
        yield view(decode_record(row.record))


def newest_first(
    store: Any, flt: LogFilter, limit: int, before: int | None, scan_max: int = SCAN_RECORDS_MAX
) -> Page:
    """Up to `limit` records that pass `flt`, newest first, from below `before` (None: the
    head of the log)."""
    head = store.head().log_seq
    top = head if before is None else min(before - 1, head)
    page = Page(head=head)
    while top >= 1 and page.scanned < scan_max and len(page.records) < limit:
        low = max(1, top - WINDOW_RECORDS + 1)
        window = list(decoded(store.records(low - 1, top)))
        page.scanned += len(window)
        kept = [v for v in reversed(window) if flt.passes(v)]
        room = limit - len(page.records)
        if len(kept) > room:  # stop right after the last record kept
            kept = kept[:room]
            page.records += [v.json() for v in kept]
            page.next_before = kept[-1].record.seq
            return page
        page.records += [v.json() for v in kept]
        top = low - 1
    page.next_before = top + 1 if top >= 1 else None
    return page


def oldest_first(
    store: Any, flt: LogFilter, limit: int, after: int, scan_max: int = SCAN_RECORDS_MAX
) -> Page:
    """Up to `limit` records that pass `flt` after record `after`, oldest first."""
    head = store.head().log_seq
    page = Page(head=head, last_seq=after)
    at = after
    while at < head and page.scanned < scan_max and len(page.records) < limit:
        through = min(head, at + WINDOW_RECORDS)
        for v in decoded(store.records(at, through)):
            page.scanned += 1
            page.last_seq = v.record.seq
            if flt.passes(v):
                page.records.append(v.json())
                if len(page.records) >= limit:
                    return page
        at = through
    return page


def records_in(store: Any, cert_id: str, first: int, last: int) -> list[LogRecord]:
    """The records of certificate `cert_id` from seq `first` to `last` (one read: an
    order's records are its fills' pairs, all of one command)."""
    out = []
    for row in store.records(first - 1, last):
        record = decode_record(row.record)
        is_one = record.kind in ("retirement", "fill_retirement")
        if is_one and getattr(record.movement(), "cert_id", "") == cert_id:
            out.append(record)
    return out


__all__ = [
    "KINDS",
    "LogFilter",
    "Page",
    "RecordView",
    "newest_first",
    "oldest_first",
    "records_in",
    "view",
]
