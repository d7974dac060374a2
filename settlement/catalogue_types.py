"""Values the carbon catalogue (issue 13) gives out: a contract's rule versions and the
answer to a screen. Plain frozen Structs, so the gateway can copy them onto the wire.
"""

from __future__ import annotations

import msgspec

from engine.reference import Series
from screening.language import Credit


class RuleVersion(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One version of a standardized contract's eligibility rule: screening-language text,
    governing the contract from `effective` (integer nanoseconds) on."""

    version: int
    effective: int
    rule: str


class ScreenHit(msgspec.Struct, frozen=True, kw_only=True):
    """One series a screen matched, with what a buyer looks at next: the credits (project
    and vintage lines, with their attributes at the screen's time) it delivers that the
    screen admits, the top of its book, its last trade price and the tonnes offered."""

    series: Series
    credits: tuple[Credit, ...]
    best_bid: int | None
    best_ask: int | None
    last_price: int | None
    offered: int
    rule_version: int  # the contract's current rule version; 0 for a project's series
    rule: str  # the contract's current rule text; "" for a project's series
    halted: bool
