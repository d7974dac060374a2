"""The values of the screening language: the credit a screen judges, the syntax tree, the error.

Every node is a frozen msgspec Struct with a tag, so an expression is hashable, compares with
`==`, and encodes as JSON or msgpack (`Expr` is the tagged union to decode into). Use an
encoder with `order="deterministic"` when the bytes must be stable, because the lists of a
node are frozensets; the canonical *text* (`format_expr`) is stable by construction and is
what a contract or an order should keep.

The parser only builds trees that keep these invariants, and the formatter and evaluator
rely on them: `And` and `Or` have at least two operands; every frozenset of values is
non-empty and holds values the parser accepts for its attribute; vintage bounds are years
1000..9999 or 0..100 years back; a vintage range is not empty for every year.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

SCREEN_TEXT_MAX = 4096  # characters; a screen is typed or pasted by a person
SCREEN_DEPTH_MAX = 32  # nested `(` and `not`; keeps parsing and judging far from Python's stack
SCREEN_LIST_MAX = 256  # items in one `( ... )` list

# Best first. The letter scale the rating agencies publish; tonne itself rates nothing.
RATING_SCALE: tuple[str, ...] = ("AAA", "AA", "A", "BBB", "BB", "B", "C", "D")

StringAttribute: TypeAlias = Literal[
    "mitigation",
    "basis",
    "category",
    "methodology",
    "project_type",
    "country",
    "standard",
    "registry",
    "project",
]
Comparison: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]


class Credit(msgspec.Struct, frozen=True, kw_only=True):
    """What a screen is judged against: one project and vintage, with its attributes at one moment.

    An empty string (or empty set) means unknown: see screening/README.md for how each term
    treats it.
    """

    project: str  # "VCS1340"
    registry: str  # "VERRA", "GOLD_STANDARD", "ACR", "CAR", "ART", "ISOMETRIC", "CERCARBONO"
    standard: str  # "VCS", "GS", ... (engine.reference.STANDARD_OF_REGISTRY)
    vintage: int
    mitigation: str = ""  # "avoidance" | "removal" | "" (unknown)
    basis: str = ""  # "nature" | "tech" | ""
    category: str = ""
    methodology: str = ""
    project_type: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    sdgs: frozenset[int] = frozenset()
    labels: frozenset[str] = frozenset()  # e.g. {"CCB", "CORSIA", "CCP", "ARTICLE6"}
    rating: str = ""  # "" = unrated


class ScreenError(ValueError):
    """A screen that cannot be parsed: `position` is the 0-based offset of the offending token."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(position, message)
        self.position = position
        self.message = message

    def __str__(self) -> str:
        return f"at {self.position}: {self.message}"


# -- vintage bounds -------------------------------------------------------------------------


class Year(msgspec.Struct, frozen=True, tag="year"):
    """A fixed vintage year: `2021`."""

    value: int


class YearsBack(msgspec.Struct, frozen=True, tag="years_back"):
    """A rolling vintage year: `year - years`, judged against the year passed to `matches`."""

    years: int


Bound: TypeAlias = Year | YearsBack


# -- terms ----------------------------------------------------------------------------------


class AnyCredit(msgspec.Struct, frozen=True, tag="any"):
    """`any`: every credit. A screen that asks for nothing must say so rather than be empty."""


class OneOf(msgspec.Struct, frozen=True, tag="one_of"):
    """`country = KE`, `country in (KE, UG)`, and their negations `!=` and `not in`.

    A credit whose attribute is unknown ("") satisfies neither form.
    """

    attribute: StringAttribute
    values: frozenset[str]
    negated: bool = False


class InRegion(msgspec.Struct, frozen=True, tag="region"):
    """`region = africa`, `region in (...)`, `!=`, `not in`: the credit's country, by region."""

    regions: frozenset[str]
    negated: bool = False


class SdgsAll(msgspec.Struct, frozen=True, tag="sdgs_all"):
    """`sdgs all (13, 15)`: the credit lists every one of these SDGs."""

    sdgs: frozenset[int]


class SdgsAny(msgspec.Struct, frozen=True, tag="sdgs_any"):
    """`sdgs any (3, 5)`: the credit lists at least one of these SDGs."""

    sdgs: frozenset[int]


class SdgsAtLeast(msgspec.Struct, frozen=True, tag="sdgs_at_least"):
    """`sdgs at least 2`: the credit lists at least `count` distinct SDGs."""

    count: int


class HasLabel(msgspec.Struct, frozen=True, tag="label"):
    """`label CCP`: the credit carries the label (absence is `not label CCP`)."""

    label: str


class Rating(msgspec.Struct, frozen=True, tag="rating"):
    """`rating >= A`: compares on RATING_SCALE, better is greater; unrated never satisfies it."""

    op: Comparison
    grade: str


class Vintage(msgspec.Struct, frozen=True, tag="vintage"):
    """`vintage >= 2021`, `vintage >= year - 5`: compares the vintage with one bound."""

    op: Comparison
    bound: Bound


class VintageIn(msgspec.Struct, frozen=True, tag="vintage_in"):
    """`vintage in 2019..2023`: the vintage lies between the bounds, both included."""

    first: Bound
    last: Bound


# -- combinations ---------------------------------------------------------------------------


class Not(msgspec.Struct, frozen=True, tag="not"):
    """`not x`: the only form that is true for a credit whose attribute is unknown."""

    operand: Expr


class And(msgspec.Struct, frozen=True, tag="and"):
    """`a and b and ...`: a chain at one level is one node, so long chains stay shallow."""

    operands: tuple[Expr, ...]


class Or(msgspec.Struct, frozen=True, tag="or"):
    """`a or b or ...`: as `And`."""

    operands: tuple[Expr, ...]


Term: TypeAlias = (
    AnyCredit
    | OneOf
    | InRegion
    | SdgsAll
    | SdgsAny
    | SdgsAtLeast
    | HasLabel
    | Rating
    | Vintage
    | VintageIn
)
Expr: TypeAlias = Not | And | Or | Term
