"""The screening language's public face: what the rest of tonne codes against.

    parse(text) -> Expr                  a ScreenError at the offending token, or the tree
    format_expr(expr) -> str             the canonical text; parse(format_expr(e)) == e
    matches(expr, credit, year) -> bool  judge one Credit (a project and vintage)
    uses_year(expr) -> bool              whether the verdict can change with the year

The grammar, with an example of each term and the limits, is screening/README.md. The
pieces live beside this module, split along their seams: the values (screening/expr.py),
text to tree (parse.py), tree to text (formatting.py), tree and credit to verdict
(evaluate.py), and the region table (regions.py).
"""

from __future__ import annotations

from screening.evaluate import matches, uses_year
from screening.expr import (
    RATING_SCALE,
    SCREEN_DEPTH_MAX,
    SCREEN_LIST_MAX,
    SCREEN_TEXT_MAX,
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
    ScreenError,
    SdgsAll,
    SdgsAny,
    SdgsAtLeast,
    Vintage,
    VintageIn,
    Year,
    YearsBack,
)
from screening.formatting import format_expr
from screening.parse import parse

__all__ = [
    "RATING_SCALE",
    "SCREEN_DEPTH_MAX",
    "SCREEN_LIST_MAX",
    "SCREEN_TEXT_MAX",
    "And",
    "AnyCredit",
    "Bound",
    "Credit",
    "Expr",
    "HasLabel",
    "InRegion",
    "Not",
    "OneOf",
    "Or",
    "Rating",
    "ScreenError",
    "SdgsAll",
    "SdgsAny",
    "SdgsAtLeast",
    "Vintage",
    "VintageIn",
    "Year",
    "YearsBack",
    "format_expr",
    "matches",
    "parse",
    "uses_year",
]
