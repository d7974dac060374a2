"""Serial blocks: validation on entry, and sorted range lists (allocate, add, remove).

Inside the ledger every range is *inclusive* `(first, last)`: `last - first + 1` credits.
A registry may number its blocks half-open (`[start, end)`); the convention is stated with
every block that enters or leaves, checked against the explicit quantity, and converted here
once. Nothing downstream ever guesses a convention.

A *range list* is a Python list of disjoint inclusive `(first, last)` tuples sorted by
`first`, with adjacent ranges merged, so a buyer who receives many consecutive fills holds
one range, not many. All functions here are pure helpers over such lists.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from enum import Enum

from settlement.limits import SERIAL_MAX
from settlement.serial_range import SerialRange as SerialRange  # apart: see there
from settlement.serial_range import decode_hook as decode_hook

Range = tuple[int, int]  # inclusive (first, last)
Key = tuple[str, int]  # (project id, vintage)


class RangeConvention(str, Enum):
    """How a registry writes a block's end: the last serial (inclusive) or one past it."""

    INCLUSIVE = "inclusive"
    HALF_OPEN = "half_open"


# -- batches inside one key -------------------------------------------------------------------
#
# Credits of one (project, vintage) trade as one fungible quantity (a sell order holds a count
# of a key), but registries number serials within an issuance batch, so two batches of one key
# can share numbers. Inside the ledger each key's serial numbers are therefore laid out in
# bands, one per batch: band 0 is the batch-less numbering (every block deposited without a
# batch, as every block was before batches existed), band k the key's k-th registry batch in
# order of first deposit. Serial n of band k is `k << BAND_SHIFT | n`. A band holds 0..SERIAL_MAX
# (2^53 - 1) and bands are 2^54 apart, so ranges of two batches are never adjacent and never
# merge; every range-list helper below works on these numbers unchanged, and "the lowest
# serials" (what a fill delivers) means the earliest batch first. Only the ledger sees band
# numbers: every event, record, message and the canonical state carry (batch, serial).

BAND_SHIFT = 54
BAND_MASK = (1 << BAND_SHIFT) - 1
# above every ledger number (band 4096 starts at 2^66), so that `(first, _AFTER)` sorts after
# every range that starts at `first` in the searches below
_AFTER = 1 << 127


def banded(band: int, n: int) -> int:
    return band << BAND_SHIFT | n


def normalize(start: int, end: int, quantity: int, convention: RangeConvention) -> Range | str:
    """The inclusive range of a registry block, or why the block is malformed."""
    if start < 0:
        return f"serial start {start} is negative"
    last = end if convention is RangeConvention.INCLUSIVE else end - 1
    if last < start:
        return f"block end {end} is before its start {start} ({convention.value})"
    if last > SERIAL_MAX:
        return f"serial {last} is above the highest serial {SERIAL_MAX}"
    if quantity != last - start + 1:
        return (
            f"quantity {quantity} does not match {start}..{end} {convention.value} "
            f"({last - start + 1} serials)"
        )
    return (start, last)


def total(ranges: list[Range]) -> int:
    return sum(b - a + 1 for a, b in ranges)


def overlaps(ranges: list[Range], first: int, last: int) -> bool:
    """Whether any serial of `first..last` is in the range list."""
    i = bisect_right(ranges, (first, _AFTER)) - 1  # the last range starting at or before
    if i >= 0 and ranges[i][1] >= first:
        return True
    return i + 1 < len(ranges) and ranges[i + 1][0] <= last


def covers(ranges: list[Range], first: int, last: int) -> bool:
    """Whether every serial of `first..last` is in the (merged) range list."""
    i = bisect_right(ranges, (first, _AFTER)) - 1
    return i >= 0 and ranges[i][0] <= first and ranges[i][1] >= last


def add(ranges: list[Range], first: int, last: int) -> None:
    """Insert a range that overlaps nothing in the list, merging with adjacent neighbours."""
    i = bisect_left(ranges, (first, last))
    merge_prev = i > 0 and ranges[i - 1][1] + 1 == first
    merge_next = i < len(ranges) and ranges[i][0] == last + 1
    if merge_prev and merge_next:
        ranges[i - 1] = (ranges[i - 1][0], ranges[i][1])
        del ranges[i]
    elif merge_prev:
        ranges[i - 1] = (ranges[i - 1][0], last)
    elif merge_next:
        ranges[i] = (first, ranges[i][1])
    else:
        ranges.insert(i, (first, last))


def add_ascending(ranges: list[Range], pieces: list[Range]) -> None:
    """`add` each of `pieces` (ascending, disjoint, overlapping nothing in the list); each
    search starts where the last one ended."""
    i = 0
    for a, b in pieces:
        i = bisect_left(ranges, (a,), i)  # (a,) sorts just before (a, b)
        if i and ranges[i - 1][1] + 1 == a:
            if i < len(ranges) and ranges[i][0] == b + 1:
                ranges[i - 1 : i + 1] = ((ranges[i - 1][0], ranges[i][1]),)
            else:
                ranges[i - 1] = (ranges[i - 1][0], b)
        elif i < len(ranges) and ranges[i][0] == b + 1:
            ranges[i] = (a, ranges[i][1])
        else:
            ranges.insert(i, (a, b))
            i += 1


def remove(ranges: list[Range], first: int, last: int) -> None:
    """Take `first..last` out of the list; the caller has checked `covers`."""
    i = bisect_right(ranges, (first, _AFTER)) - 1
    a, b = ranges[i]
    assert a <= first and last <= b, "remove() needs a covered range"
    pieces = []
    if a < first:
        pieces.append((a, first - 1))
    if last < b:
        pieces.append((last + 1, b))
    ranges[i : i + 1] = pieces


def take_front(ranges: list[Range], qty: int) -> list[Range]:
    """Remove and return the lowest `qty` serials (oldest first); the caller checked the total."""
    out: list[Range] = []
    while qty:
        a, b = ranges[0]
        n = b - a + 1
        if n <= qty:
            out.append((a, b))
            del ranges[0]
            qty -= n
        else:
            out.append((a, a + qty - 1))
            ranges[0] = (a + qty, b)
            qty = 0
    return out
