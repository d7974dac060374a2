"""The two series the engine's example tests trade, shared by their files."""

from engine import Mitigation, Series

# A: tick 1, lot 1, no band. B: tick 5, lot 10, band +/-10% around 100 (90..110), max 500 t.
SERIES = [
    Series(id="A", standard="VCS", mitigation=Mitigation.AVOIDANCE, vintage=2020),
    Series(
        id="B",
        standard="GS",
        mitigation=Mitigation.REMOVAL,
        vintage=2023,
        tick=5,
        lot=10,
        ref_price=100,
        band_bps=1_000,
        max_order_qty=500,
    ),
]
