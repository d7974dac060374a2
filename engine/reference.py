"""Reference data: the projects credits come from and the series an order book trades.

A `Series` is the unit of one order book: credits that are fungible for a buyer because they
share standard, mitigation type and vintage and, for a project-specific series, the project.
A generic series (no project) is a standardized contract: the seller chooses which eligible
credits to deliver. Its eligibility is a rule in the screening language (screening/), kept
by the settlement core with its versions: `standard = VCS and mitigation = removal and
vintage = 2023` for one listed by standard, mitigation and vintage, or any rule for a contract
listed with one (`standard`, `mitigation` and `vintage` then empty). Series carry their own
trading parameters (currency, tick, lot, band, maximum order size) so that a book never has
to look anything up elsewhere.
"""

from __future__ import annotations

from enum import Enum

import msgspec


class Mitigation(str, Enum):
    """Whether a credit avoids emissions or removes CO2 from the atmosphere."""

    AVOIDANCE = "avoidance"
    REMOVAL = "removal"


class Basis(str, Enum):
    """Whether the mitigation is nature-based (forests, soils) or technological."""

    NATURE = "nature"
    TECH = "tech"


# Standards as they appear in series ids, keyed by the registry names of the reference data.
STANDARD_OF_REGISTRY: dict[str, str] = {
    "VERRA": "VCS",
    "GOLD_STANDARD": "GS",
    "ACR": "ACR",
    "CAR": "CAR",
    "ART": "ART",
    "ISOMETRIC": "ISO",
    "CERCARBONO": "CDC",
}


class Project(msgspec.Struct, frozen=True, kw_only=True):
    """A registry project: what a buyer screens on. `id` is registry-scoped (`VCS1340`)."""

    id: str
    registry: str
    name: str
    country: str = ""
    category: str = ""
    project_type: str = ""
    mitigation: Mitigation | None = None
    basis: Basis | None = None
    methodology: str = ""
    sdgs: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    rating: str | None = None

    @property
    def standard(self) -> str:
        return STANDARD_OF_REGISTRY.get(self.registry, self.registry)


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """What one order book trades, with its trading parameters.

    Prices are integer ticks in `currency` minor units per tonne; quantities whole tonnes.
    `ref_price` and `band_bps` define the price band: a limit price must lie within
    `ref_price` +/- `band_bps` basis points (no band when `band_bps` is 0). A market order
    never trades outside the band either.
    """

    id: str
    standard: str = ""  # the three are empty for a contract listed with a rule
    mitigation: Mitigation | None = None
    vintage: int = 0
    project: str | None = None
    currency: str = "USD"
    tick: int = 1
    lot: int = 1
    ref_price: int = 0
    band_bps: int = 0
    max_order_qty: int = 1_000_000

    def __post_init__(self) -> None:
        if self.tick <= 0 or self.lot <= 0 or self.max_order_qty <= 0:
            raise ValueError(f"series {self.id}: tick, lot and max_order_qty must be positive")
        if self.band_bps < 0 or self.ref_price < 0:
            raise ValueError(f"series {self.id}: band and reference price must not be negative")


def series_id(
    standard: str, vintage: int, *, project: str | None = None, mitigation: Mitigation | None = None
) -> str:
    """The readable id of a series: `VCS-1340-2020` (project) or `VCS-REMOVAL-2023` (generic)."""
    if project is not None:
        number = project[len(standard) :] if project.startswith(standard) else project
        return f"{standard}-{number.lstrip('-')}-{vintage}"
    if mitigation is None:
        raise ValueError("a generic series needs a mitigation type")
    return f"{standard}-{mitigation.value.upper()}-{vintage}"
