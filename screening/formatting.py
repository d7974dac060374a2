"""Syntax tree to canonical screen text: the one spelling of each expression.

Canonical so that two screens that parse to the same tree print the same, and a contract or
an order can keep the text: lists are sorted, a one-item list prints as `=` / `!=`, values
are bare words where the grammar allows and quoted otherwise, and parentheses appear only
where the tree needs them. The last point also keeps `parse(format_expr(e))` within the
nesting limit whenever `e` came from `parse`: every parenthesis printed stands for one the
original text had.
"""

from __future__ import annotations

from collections.abc import Iterable

from screening.expr import (
    And,
    AnyCredit,
    Bound,
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
from screening.parse import BARE_WORD


def format_expr(expr: Expr) -> str:
    """The canonical text of `expr`; `parse(format_expr(e)) == e`."""
    if isinstance(expr, Or):
        return " or ".join(_operand(o, needs_parens=(Or,)) for o in expr.operands)
    if isinstance(expr, And):
        return " and ".join(_operand(o, needs_parens=(And, Or)) for o in expr.operands)
    if isinstance(expr, Not):
        return "not " + _operand(expr.operand, needs_parens=(And, Or))
    return _term(expr)


def _operand(expr: Expr, needs_parens: tuple[type, ...]) -> str:
    text = format_expr(expr)
    return f"({text})" if isinstance(expr, needs_parens) else text


def _term(expr: Expr) -> str:
    """The text of one term (any node but Not, And, Or)."""
    match expr:
        case AnyCredit():
            return "any"
        case OneOf(attribute=attribute, values=values, negated=negated):
            return _membership(attribute, sorted(_value(v) for v in values), negated)
        case InRegion(regions=regions, negated=negated):
            return _membership("region", sorted(regions), negated)
        case SdgsAll(sdgs=sdgs):
            return f"sdgs all {_list(str(n) for n in sorted(sdgs))}"
        case SdgsAny(sdgs=sdgs):
            return f"sdgs any {_list(str(n) for n in sorted(sdgs))}"
        case SdgsAtLeast(count=count):
            return f"sdgs at least {count}"
        case HasLabel(label=label):
            return f"label {label}"
        case Rating(op=op, grade=grade):
            return f"rating {op} {grade}"
        case Vintage(op=op, bound=bound):
            return f"vintage {op} {_bound(bound)}"
        case VintageIn(first=first, last=last):
            return f"vintage in {_bound(first)}..{_bound(last)}"
    raise AssertionError(f"not a screen expression: {expr!r}")


def _membership(attribute: str, items: list[str], negated: bool) -> str:
    if len(items) == 1:
        return f"{attribute} {'!=' if negated else '='} {items[0]}"
    return f"{attribute} {'not in' if negated else 'in'} {_list(items)}"


def _list(items: Iterable[str]) -> str:
    return "(" + ", ".join(items) + ")"


def _value(value: str) -> str:
    """A value as a bare word if it is one, else double-quoted with `\\` and `"` escaped."""
    if BARE_WORD.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bound(bound: Bound) -> str:
    if isinstance(bound, Year):
        return str(bound.value)
    return "year" if bound.years == 0 else f"year - {bound.years}"
