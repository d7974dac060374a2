"""The console's log pages (gateway/console/records.py) stay bounded on a long log: at 10^5
records a page reads a few windows, never the whole log, and paging visits every record
exactly once; filters that match rarely stop at the scan bound and say where to go on."""

from __future__ import annotations

import msgspec

from gateway.console import records as rec
from gateway.durability.store import Head, LogRow
from settlement.events import CashDeposited
from settlement.log import SettlementLog, encode_record

N = 100_000


class CountingStore:
    """The two reads the pages make, over records in memory, counting what is read."""

    def __init__(self, rows: list[LogRow], head_hash: str) -> None:
        self.rows = rows
        self.head_hash = head_hash
        self.read = 0

    def head(self) -> Head:
        return Head(seq=0, log_seq=len(self.rows), log_head=self.head_hash)

    def records(self, after_seq: int = 0, through: int | None = None):
        last = len(self.rows) if through is None else min(through, len(self.rows))
        for row in self.rows[after_seq:last]:
            self.read += 1
            yield row


def long_log() -> CountingStore:
    log = SettlementLog()
    rows = []
    for i in range(1, N + 1):
        body = CashDeposited(account=1 + i % 50, currency="USD", amount=i, ref="", ts=i)
        r = log.append(body)
        rows.append(LogRow(r.seq, encode_record(r), r.hash))
    return CountingStore(rows, log.head_hash)


STORE = long_log()


def test_a_page_of_the_newest_reads_one_window_not_the_log():
    STORE.read = 0
    page = rec.newest_first(STORE, rec.LogFilter(), 50, None)
    assert [r["seq"] for r in page.records] == list(range(N, N - 50, -1))
    assert page.next_before == N - 49
    assert STORE.read <= rec.WINDOW_RECORDS


def test_paging_from_deep_in_the_log_reads_only_around_it():
    STORE.read = 0
    page = rec.newest_first(STORE, rec.LogFilter(), 20, 1_000)
    assert [r["seq"] for r in page.records] == list(range(999, 979, -1))
    assert STORE.read <= rec.WINDOW_RECORDS


def test_a_rare_filter_stops_at_the_scan_bound_and_says_where_to_go_on():
    STORE.read = 0
    flt = rec.LogFilter(account=10_000)  # no record names it
    page = rec.newest_first(STORE, flt, 50, None)
    assert page.records == [] and page.scanned == STORE.read
    assert rec.SCAN_RECORDS_MAX <= STORE.read < rec.SCAN_RECORDS_MAX + rec.WINDOW_RECORDS
    assert page.next_before == N - STORE.read + 1  # the next page goes on below


def test_an_account_filter_pages_through_every_match_once():
    flt = rec.LogFilter(account=7)
    want = [i for i in range(N, 0, -1) if 1 + i % 50 == 7][:600]
    got: list[int] = []
    before = None
    while len(got) < 600:
        page = rec.newest_first(STORE, flt, 100, before)
        got += [r["seq"] for r in page.records]
        before = page.next_before
    assert got[:600] == want


def test_the_live_view_reads_forward_from_where_it_is():
    STORE.read = 0
    page = rec.oldest_first(STORE, rec.LogFilter(), 10, N - 5)
    assert [r["seq"] for r in page.records] == list(range(N - 4, N + 1))
    assert page.last_seq == N and STORE.read == 5


def test_a_record_as_json_names_its_fields():
    page = rec.newest_first(STORE, rec.LogFilter(), 1, None)
    r = page.records[0]
    assert r["kind"] == "cash_deposit" and r["body"]["amount"] == N
    assert r["accounts"] == [1 + N % 50] and msgspec.json.encode(r)
