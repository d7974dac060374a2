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

from screening.expr import (
    RATING_SCALE,
    And,
    AnyCredit,
    Bound,
    Comparison,
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
    match expr:
        case And(operands=operands):
            # Loops rather than all()/any(): no generator per call on the hot path.
            for operand in operands:  # noqa: SIM110
                if not matches(operand, credit, year):
                    return False
            return True
        case Or(operands=operands):
            for operand in operands:  # noqa: SIM110
                if matches(operand, credit, year):
                    return True
            return False
        case Not(operand=operand):
            return not matches(operand, credit, year)
        case OneOf(attribute=attribute, values=values, negated=negated):
            value: str = getattr(credit, attribute)
            return bool(value) and (value in values) is not negated
        case Vintage(op=op, bound=bound):
            return _compare(op, credit.vintage, _resolve(bound, year))
        case VintageIn(first=first, last=last):
            return _resolve(first, year) <= credit.vintage <= _resolve(last, year)
        case InRegion(regions=regions, negated=negated):
            if not credit.country:
                return False
            within = REGIONS_OF_COUNTRY.get(credit.country, _NO_REGIONS)
            return regions.isdisjoint(within) is negated
        case HasLabel(label=label):
            return label in credit.labels
        case SdgsAll(sdgs=sdgs):
            return sdgs <= credit.sdgs
        case SdgsAny(sdgs=sdgs):
            return not sdgs.isdisjoint(credit.sdgs)
        case SdgsAtLeast(count=count):
            return len(credit.sdgs) >= count
        case Rating(op=op, grade=grade):
            score = _SCORE.get(credit.rating)
            return score is not None and _compare(op, score, _SCORE[grade])
        case AnyCredit():
            return True
    raise AssertionError(f"not a screen expression: {expr!r}")


def _resolve(bound: Bound, year: int) -> int:
    return bound.value if isinstance(bound, Year) else year - bound.years


def _compare(op: Comparison, left: int, right: int) -> bool:
    if op == ">=":
        return left >= right
    if op == "<=":
        return left <= right
    if op == "=":
        return left == right
    if op == ">":
        return left > right
    if op == "<":
        return left < right
    return left != right


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
