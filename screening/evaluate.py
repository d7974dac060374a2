"""Judging a credit against a parsed screen.

`matches` runs for every project and vintage whenever eligibility is recomputed, so it does
no parsing and builds nothing per call: the lists in the tree are already frozensets, a
region term is one dictionary lookup and one set test, and `and` / `or` stop at the first
operand that decides them.

Unknown attributes (an empty string) satisfy neither `=` nor `!=` (nor `in`, `not in`,
a region or a rating comparison): a buyer who excludes a country has not thereby said
they accept a credit whose country nobody recorded. Only `not (...)` is true for them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from screening.expr import (
    RATING_SCALE,
    And,
    AnyCredit,
    Bound,
    Credit,
    Expr,
    HasLabel,
    InRegion,
    Not,
    OneOf,
    Or,
    Rating,
    SdgsAll,
    SdgsAny,
    SdgsAtLeast,
    Vintage,
    VintageIn,
    Year,
)
from screening.regions import REGIONS_OF_COUNTRY

# Better is greater: AAA has the highest score.
_SCORE: dict[str, int] = {grade: len(RATING_SCALE) - i for i, grade in enumerate(RATING_SCALE)}
_NO_REGIONS: frozenset[str] = frozenset()


def matches(expr: Expr, credit: Credit, year: int) -> bool:
    """Whether `credit` satisfies `expr`; `year` is what a rolling `year - N` counts back from."""
    # One table lookup per node rather than a chain of isinstance tests.
    return _JUDGES[type(expr)](expr, credit, year)


def _and(expr: And, credit: Credit, year: int) -> bool:
    # Loops rather than all()/any(): no generator per call on the hot path.
    for operand in expr.operands:  # noqa: SIM110
        if not _JUDGES[type(operand)](operand, credit, year):
            return False
    return True


def _or(expr: Or, credit: Credit, year: int) -> bool:
    for operand in expr.operands:  # noqa: SIM110
        if _JUDGES[type(operand)](operand, credit, year):
            return True
    return False


def _not(expr: Not, credit: Credit, year: int) -> bool:
    return not _JUDGES[type(expr.operand)](expr.operand, credit, year)


def _one_of(expr: OneOf, credit: Credit, year: int) -> bool:
    value: str = getattr(credit, expr.attribute)
    return bool(value) and (value in expr.values) is not expr.negated


def _in_region(expr: InRegion, credit: Credit, year: int) -> bool:
    if not credit.country:
        return False
    within = REGIONS_OF_COUNTRY.get(credit.country, _NO_REGIONS)
    return expr.regions.isdisjoint(within) is expr.negated


def _vintage(expr: Vintage, credit: Credit, year: int) -> bool:
    bound = expr.bound
    at = bound.value if isinstance(bound, Year) else year - bound.years
    return _COMPARE[expr.op](credit.vintage, at)


def _vintage_in(expr: VintageIn, credit: Credit, year: int) -> bool:
    return _resolve(expr.first, year) <= credit.vintage <= _resolve(expr.last, year)


def _resolve(bound: Bound, year: int) -> int:
    return bound.value if isinstance(bound, Year) else year - bound.years


def _rating(expr: Rating, credit: Credit, year: int) -> bool:
    score = _SCORE.get(credit.rating)
    return score is not None and _COMPARE[expr.op](score, _SCORE[expr.grade])


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Keyed by node type; each judge takes its own node type (Any here, as a table cannot say so).
_JUDGES: dict[type, Callable[[Any, Credit, int], bool]] = {
    And: _and,
    Or: _or,
    Not: _not,
    OneOf: _one_of,
    InRegion: _in_region,
    Vintage: _vintage,
    VintageIn: _vintage_in,
    Rating: _rating,
    HasLabel: lambda expr, credit, year: expr.label in credit.labels,
    SdgsAll: lambda expr, credit, year: expr.sdgs <= credit.sdgs,
    SdgsAny: lambda expr, credit, year: not expr.sdgs.isdisjoint(credit.sdgs),
    SdgsAtLeast: lambda expr, credit, year: len(credit.sdgs) >= expr.count,
    AnyCredit: lambda expr, credit, year: True,
}


def uses_year(expr: Expr) -> bool:
    """Whether the truth of `expr` can change with the year (it has a rolling vintage term).

    A screen without one needs judging once per credit, not again every new year.
    """
    match expr:
        case And(operands=operands) | Or(operands=operands):
            return any(uses_year(operand) for operand in operands)
        case Not(operand=operand):
            return uses_year(operand)
        case Vintage(bound=bound):
            return not isinstance(bound, Year)
        case VintageIn(first=first, last=last):
            return not (isinstance(first, Year) and isinstance(last, Year))
    return False
