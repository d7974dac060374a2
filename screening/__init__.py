"""The screening language: how a buyer, a contract and a basket say which credits they want.

Pure: parse text into an expression, format it back, and judge one credit (a project and
vintage, with its attributes at one moment) against it. No I/O, no clock: a rolling vintage
window is judged against the year the caller passes.
"""

from screening.language import (
    SCREEN_DEPTH_MAX,
    SCREEN_LIST_MAX,
    SCREEN_TEXT_MAX,
    Credit,
    Expr,
    ScreenError,
    format_expr,
    matches,
    parse,
    uses_year,
)

__all__ = [
    "SCREEN_DEPTH_MAX",
    "SCREEN_LIST_MAX",
    "SCREEN_TEXT_MAX",
    "Credit",
    "Expr",
    "ScreenError",
    "format_expr",
    "matches",
    "parse",
    "uses_year",
]
