"""The standardized contracts a new exchange lists: generic series whose eligibility is a
rule in the screening language (screening/README.md), version 1 from the day they list.

They are tonne's own products, not registry facts, modelled on what real venues list; each
names its real-world analogue (see the README's catalogue section). The rules are judged on
the shipped catalogue (data/projects.csv): the comment under each says which projects with
serial blocks qualified when it was written (rolling windows judged in 2026).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.reference import Series


@dataclass(frozen=True)
class Contract:
    series: Series
    rule: str
    title: str
    analogue: str


def _series(sid: str, ref_price: int) -> Series:
    return Series(id=sid, currency="USD", tick=5, lot=1, ref_price=ref_price, max_order_qty=5_000)


CONTRACTS = (
    Contract(
        _series("TONNE-NBR", 1_800),
        "mitigation = removal and basis = nature and label CCP and vintage >= year - 5",
        "nature-based removals, CCP-labelled, vintage within the last five years",
        "Xpansiv CBL's N-GEO (nature-based) narrowed to removals, with the ICVCM CCP label "
        "that CBL's C-GEO screens for",
        # ACR802 (US, 2022) and CAR1568 (MX, 2025)
    ),
    Contract(
        _series("TONNE-CORSIA", 900),
        "label CORSIA and vintage >= 2021",
        "CORSIA-eligible units of vintage 2021 or later (the first phase)",
        "Xpansiv CBL's GEO, the CORSIA-eligible global emissions offset",
        # VCS1380 (TR, 2021), VCS2925 (KH, 2024), VCS4150 (RW, 2024), ART102 (GY, 2021)
    ),
    Contract(
        _series("TONNE-TECH", 600),
        "mitigation = avoidance and basis = tech and label CCP and vintage >= year - 5",
        "technology-based avoidance, CCP-labelled, vintage within the last five years",
        "CBL's C-GEO (CCP-approved methodologies), narrowed to technology-based avoidance",
        # VCS3866, GS10792, GS12285, ACR1129, ACR1194, CAR1480, CAR444
    ),
)
