"""Trading fees: basis points of the notional, integer arithmetic, rounded down.

`fee(notional, bps) = notional * bps // 10_000`: the payer never pays a fraction of a minor
unit; the exchange absorbs it. Because rounding down is sub-additive
(`fee(a) + fee(b) <= fee(a + b)`), a buy hold of `notional + fee(notional, max bps)` always
covers any split of that notional into fills at the limit price or better.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000


def fee(notional: int, bps: int) -> int:
    """The fee on `notional` minor units at `bps` basis points, rounded down."""
    return notional * bps // BPS


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker fees in basis points, each charged to both sides of a fill by role:
    the buyer pays its fee on top of the notional, the seller's is taken from its proceeds."""

    maker_bps: int = 0
    taker_bps: int = 0

    def __post_init__(self) -> None:
        for bps in (self.maker_bps, self.taker_bps):
            if not 0 <= bps <= BPS:
                raise ValueError(f"fee {bps} bps must lie in 0..{BPS}")

    @property
    def max_bps(self) -> int:
        return max(self.maker_bps, self.taker_bps)

    def buy_hold(self, notional: int) -> int:
        """Cash a buy order of `notional` must hold: the notional plus the largest fee."""
        return notional + notional * self.max_bps // BPS
