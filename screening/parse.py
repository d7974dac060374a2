"""Screen text to syntax tree: the tokenizer and a recursive-descent parser.

Every failure is a `ScreenError` at the offending token, never another exception: the text
comes from buyers, contracts and the command line, so the parser is the one place that
checks it. The grammar is in screening/README.md; each `_Parser` method names the rule it
reads. Nesting is bounded (SCREEN_DEPTH_MAX), so recursion here and in the evaluator stays
shallow whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple, TypeVar, cast

from engine.reference import STANDARD_OF_REGISTRY, Basis, Mitigation
from screening.expr import (
    RATING_SCALE,
    SCREEN_DEPTH_MAX,
    SCREEN_LIST_MAX,
    SCREEN_TEXT_MAX,
    And,
    AnyCredit,
    Bound,
    Comparison,
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
    StringAttribute,
    Vintage,
    VintageIn,
    Year,
    YearsBack,
)
from screening.regions import COUNTRIES, REGIONS

T = TypeVar("T")

# A bare word: letters, digits and `_`, then also `. - + /`; `..` ends it (`2019..2023`).
BARE_WORD = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_+/\-]|\.(?!\.))*")
_SPACE = re.compile(r"\s+")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SYMBOL = re.compile(r"\.\.|!=|>=|<=|[()=<>,\-]")
_DIGITS = re.compile(r"[0-9]{1,4}")
_COMPACT_YEARS_BACK = re.compile(r"year-([0-9]{1,4})")

COMPARISONS: tuple[Comparison, ...] = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "in", "any", "all", "at", "least", "year"})
YEARS_BACK_MAX = 100
VINTAGE_FIRST, VINTAGE_LAST = 1000, 9999
SDG_FIRST, SDG_LAST = 1, 17


class Token(NamedTuple):
    """One token: `kind` is "word", "string", "symbol" or "end"; `text` is the decoded value."""

    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an "end" token at len(text)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if space := _SPACE.match(text, pos):
            pos = space.end()
        elif word := BARE_WORD.match(text, pos):
            tokens.append(Token("word", word.group(), pos))
            pos = word.end()
        elif text[pos] == '"':
            token, pos = _string_token(text, pos)
            tokens.append(token)
        elif symbol := _SYMBOL.match(text, pos):
            tokens.append(Token("symbol", symbol.group(), pos))
            pos = symbol.end()
        else:
            raise ScreenError(pos, f"unexpected character {text[pos]!r}")
    tokens.append(Token("end", "", len(text)))
    return tokens


def _string_token(text: str, pos: int) -> tuple[Token, int]:
    """The double-quoted string at `pos`, its `\\"` and `\\\\` escapes decoded, and its end."""
    found = _STRING.match(text, pos)
    if found is None:
        raise ScreenError(pos, "string not closed: a '\"' is missing")
    body = found.group(1)
    for escape in _ESCAPE.finditer(body):
        if escape.group(1) not in '"\\':
            raise ScreenError(pos + 1 + escape.start(), 'only \\" and \\\\ may follow \\')
    return Token("string", _ESCAPE.sub(r"\1", body), pos), found.end()


def _describe(token: Token) -> str:
    """How an error names a token it did not expect."""
    if token.kind == "end":
        return "the end of the screen"
    if token.kind == "string":
        return f'"{token.text}"'
    return repr(token.text)


# -- values an attribute accepts ------------------------------------------------------------

_ENUMERATED: dict[str, frozenset[str]] = {
    "mitigation": frozenset(m.value for m in Mitigation),
    "basis": frozenset(b.value for b in Basis),
    "standard": frozenset(STANDARD_OF_REGISTRY.values()),
    "registry": frozenset(STANDARD_OF_REGISTRY),
}
STRING_ATTRIBUTES: tuple[StringAttribute, ...] = (
    "mitigation",
    "basis",
    "category",
    "methodology",
    "project_type",
    "country",
    "standard",
    "registry",
    "project",
)
ATTRIBUTES = (*STRING_ATTRIBUTES, "region", "sdgs", "label", "rating", "vintage")


def _check_value(attribute: str, token: Token) -> str:
    """The value of `token` for a string attribute, or a ScreenError saying what is allowed."""
    if token.kind not in ("word", "string"):
        raise ScreenError(token.pos, f"expected a value for {attribute}, found {_describe(token)}")
    value = token.text
    if not value:
        raise ScreenError(token.pos, "empty value: to screen for unknown, use not (...)")
    allowed = _ENUMERATED.get(attribute)
    if allowed is not None and value not in allowed:
        choices = ", ".join(sorted(allowed))
        raise ScreenError(token.pos, f"{attribute} is one of {choices}, not {_describe(token)}")
    if attribute == "country" and value not in COUNTRIES:
        raise ScreenError(token.pos, f"{_describe(token)} is not an ISO 3166-1 alpha-2 code")
    return value


def _check_region(token: Token) -> str:
    if token.kind != "word" or token.text not in REGIONS:
        raise ScreenError(token.pos, f"unknown region {_describe(token)}")
    return token.text


def _number(token: Token, first: int, last: int, what: str) -> int:
    """The integer `token` spells, within first..last, or a ScreenError naming `what`."""
    if token.kind != "word" or not _DIGITS.fullmatch(token.text):
        raise ScreenError(token.pos, f"expected {what}, found {_describe(token)}")
    number = int(token.text)
    if not first <= number <= last:
        raise ScreenError(token.pos, f"{what} must be {first}..{last}, not {number}")
    return number


def _check_sdg(token: Token) -> int:
    return _number(token, SDG_FIRST, SDG_LAST, "an SDG number")


def _check_grade(token: Token) -> str:
    if token.kind != "word" or token.text not in RATING_SCALE:
        raise ScreenError(
            token.pos, f"a rating is one of {', '.join(RATING_SCALE)}, not {_describe(token)}"
        )
    return token.text


# -- the parser -----------------------------------------------------------------------------


def parse(text: str) -> Expr:
    """The expression `text` says, or a ScreenError at the offending token."""
    if len(text) > SCREEN_TEXT_MAX:
        raise ScreenError(SCREEN_TEXT_MAX, f"a screen is at most {SCREEN_TEXT_MAX} characters")
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        raise ScreenError(parser.peek().pos, "empty screen: write `any` to match every credit")
    expr = parser.or_expr()
    token = parser.peek()
    if token.kind != "end":
        raise ScreenError(token.pos, _trailing_message(token))
    return expr


def _trailing_message(token: Token) -> str:
    """Why a token after a complete screen is wrong, with a hint for the usual slips."""
    if token.text == ")":
        return "')' has no matching '('"
    hint = ""
    if token.kind == "word" and token.text.lower() in ("and", "or", "not"):
        hint = f" (keywords are lower-case: {token.text.lower()})"
    return f"expected 'and', 'or' or the end, found {_describe(token)}{hint}"


class _Parser:
    """Recursive descent over a token list; `depth` counts the open `(` and `not`."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, kind: str, text: str) -> bool:
        token = self.tokens[self.index]
        return token.kind == kind and token.text == text

    def expect(self, symbol: str, context: str) -> Token:
        token = self.take()
        if token.kind != "symbol" or token.text != symbol:
            raise ScreenError(token.pos, f"expected '{symbol}' {context}, found {_describe(token)}")
        return token

    def enter(self, token: Token) -> None:
        """One more nesting level, opened by `token`; refused past SCREEN_DEPTH_MAX."""
        self.depth += 1
        if self.depth > SCREEN_DEPTH_MAX:
            raise ScreenError(
                token.pos, f"nested deeper than {SCREEN_DEPTH_MAX} levels of '(' and 'not'"
            )

    # or_expr = and_expr { "or" and_expr }
    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at("word", "or"):
            self.take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    # and_expr = not_expr { "and" not_expr }
    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.at("word", "and"):
            self.take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    # not_expr = "not" not_expr | "(" or_expr ")" | term
    def not_expr(self) -> Expr:
        token = self.peek()
        if token.kind == "word" and token.text == "not":
            self.enter(self.take())
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand)
        if token.kind == "symbol" and token.text == "(":
            self.enter(self.take())
            expr = self.or_expr()
            closing = self.peek()
            if not (closing.kind == "symbol" and closing.text == ")"):
                raise ScreenError(
                    closing.pos,
                    f"expected ')' to close the '(' at {token.pos}, found {_describe(closing)}",
                )
            self.take()
            self.depth -= 1
            return expr
        return self.term()

    def term(self) -> Expr:
        token = self.take()
        if token.kind == "word" and token.text == "any":
            return AnyCredit()
        if token.kind != "word" or token.text not in ATTRIBUTES:
            if token.kind == "word" and token.text not in KEYWORDS:
                raise ScreenError(token.pos, f"unknown attribute {_describe(token)}")
            raise ScreenError(token.pos, f"expected a term, found {_describe(token)}")
        if token.text == "region":
            return self.region_term()
        if token.text == "sdgs":
            return self.sdgs_term()
        if token.text == "label":
            return HasLabel(self.label())
        if token.text == "rating":
            op = self.comparison("rating")
            return Rating(op, _check_grade(self.take()))
        if token.text == "vintage":
            return self.vintage_term()
        return self.string_term(cast(StringAttribute, token.text))

    # membership = ( "=" | "!=" ) value | [ "not" ] "in" list
    def membership(self, attribute: str, item: Callable[[Token], T]) -> tuple[frozenset[T], bool]:
        """The values and negation of `attribute = v`, `!= v`, `in (...)`, `not in (...)`."""
        token = self.take()
        if token.kind == "symbol" and token.text in ("=", "!="):
            return frozenset({item(self.take())}), token.text == "!="
        if token.kind == "word" and token.text == "in":
            return self.list_of(item), False
        if token.kind == "word" and token.text == "not":
            following = self.take()
            if following.kind == "word" and following.text == "in":
                return self.list_of(item), True
            token = following
        raise ScreenError(
            token.pos, f"{attribute} takes =, !=, in or not in, not {_describe(token)}"
        )

    def string_term(self, attribute: StringAttribute) -> Expr:
        values, negated = self.membership(attribute, lambda t: _check_value(attribute, t))
        return OneOf(attribute, values, negated)

    def region_term(self) -> Expr:
        regions, negated = self.membership("region", _check_region)
        return InRegion(regions, negated)

    # list = "(" item { "," item } ")"
    def list_of(self, item: Callable[[Token], T]) -> frozenset[T]:
        self.expect("(", "to open a list")
        items = [item(self.take())]
        while self.at("symbol", ","):
            self.take()
            token = self.take()
            if len(items) == SCREEN_LIST_MAX:
                raise ScreenError(token.pos, f"a list has at most {SCREEN_LIST_MAX} items")
            items.append(item(token))
        self.expect(")", "to close the list (items are separated by ',')")
        return frozenset(items)

    # sdgs_term = "sdgs" ( "all" list | "any" list | "at" "least" number )
    def sdgs_term(self) -> Expr:
        token = self.take()
        if token.kind == "word" and token.text == "all":
            return SdgsAll(self.list_of(_check_sdg))
        if token.kind == "word" and token.text == "any":
            return SdgsAny(self.list_of(_check_sdg))
        if token.kind == "word" and token.text == "at":
            least = self.take()
            if not (least.kind == "word" and least.text == "least"):
                raise ScreenError(least.pos, f"expected 'least', found {_describe(least)}")
            return SdgsAtLeast(_number(self.take(), SDG_FIRST, SDG_LAST, "a count of SDGs"))
        raise ScreenError(
            token.pos, f"sdgs takes all (...), any (...) or at least N, not {_describe(token)}"
        )

    def label(self) -> str:
        token = self.take()
        if token.kind != "word":
            raise ScreenError(token.pos, f"expected a label name, found {_describe(token)}")
        return token.text

    def comparison(self, attribute: str) -> Comparison:
        token = self.take()
        for op in COMPARISONS:
            if token.kind == "symbol" and token.text == op:
                return op
        raise ScreenError(
            token.pos, f"{attribute} takes {', '.join(COMPARISONS)}, not {_describe(token)}"
        )

    # vintage_term = "vintage" ( comparison bound | "in" bound ".." bound )
    def vintage_term(self) -> Expr:
        if not self.at("word", "in"):
            op = self.comparison("vintage (or in)")
            return Vintage(op, self.bound())
        self.take()
        first = self.bound()
        self.expect("..", "between the years of a range")
        last_token = self.peek()
        last = self.bound()
        if _always_empty(first, last):
            raise ScreenError(last_token.pos, "the range ends before it starts")
        return VintageIn(first, last)

    # bound = year_number | "year" [ "-" number ]
    def bound(self) -> Bound:
        token = self.take()
        if token.kind == "word" and (compact := _COMPACT_YEARS_BACK.fullmatch(token.text)):
            digits = Token("word", compact.group(1), token.pos + len("year-"))
            return YearsBack(_number(digits, 0, YEARS_BACK_MAX, "years back"))
        if not (token.kind == "word" and token.text == "year"):
            return Year(_number(token, VINTAGE_FIRST, VINTAGE_LAST, "a vintage year"))
        if not self.at("symbol", "-"):
            return YearsBack(0)
        self.take()
        return YearsBack(_number(self.take(), 0, YEARS_BACK_MAX, "years back"))


def _always_empty(first: Bound, last: Bound) -> bool:
    """Whether `first..last` holds no vintage whatever the year (so it is a mistake)."""
    if isinstance(first, Year) and isinstance(last, Year):
        return first.value > last.value
    if isinstance(first, YearsBack) and isinstance(last, YearsBack):
        return first.years < last.years
    return False
