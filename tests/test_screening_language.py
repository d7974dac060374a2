"""The screening language's text: what each term parses to, where each error points, the
limits, and that formatting and parsing are inverse (screening/README.md is the grammar)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from screening_strategies import bounds, exprs

import screening
from screening.language import (
    SCREEN_DEPTH_MAX,
    SCREEN_LIST_MAX,
    SCREEN_TEXT_MAX,
    And,
    AnyCredit,
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
    format_expr,
    matches,
    parse,
    uses_year,
)

KE = OneOf("country", frozenset({"KE"}))
TECH = OneOf("basis", frozenset({"tech"}))
CCP = HasLabel("CCP")

EXAMPLES: list[tuple[str, Expr]] = [
    ("mitigation = removal", OneOf("mitigation", frozenset({"removal"}))),
    ("basis = nature", OneOf("basis", frozenset({"nature"}))),
    (
        'category = "Energy industries (renewable/non-renewable sources)"',
        OneOf("category", frozenset({"Energy industries (renewable/non-renewable sources)"})),
    ),
    ("methodology = VM0015", OneOf("methodology", frozenset({"VM0015"}))),
    ("project_type = A/R", OneOf("project_type", frozenset({"A/R"}))),
    ("methodology = AMS-III.C.", OneOf("methodology", frozenset({"AMS-III.C."}))),
    ("country = KE", KE),
    ("country != KE", OneOf("country", frozenset({"KE"}), negated=True)),
    ("country in (KE, UG)", OneOf("country", frozenset({"KE", "UG"}))),
    ("country not in (KE,UG)", OneOf("country", frozenset({"KE", "UG"}), negated=True)),
    ("standard in (VCS, GS)", OneOf("standard", frozenset({"VCS", "GS"}))),
    ("registry = VERRA", OneOf("registry", frozenset({"VERRA"}))),
    ("project = VCS1340", OneOf("project", frozenset({"VCS1340"}))),
    ("project in (VCS1340, GS11236)", OneOf("project", frozenset({"VCS1340", "GS11236"}))),
    ("project not in (CDC-1)", OneOf("project", frozenset({"CDC-1"}), negated=True)),
    ('project = "a \\"b\\" \\\\ c"', OneOf("project", frozenset({'a "b" \\ c'}))),
    ("project_type = any", OneOf("project_type", frozenset({"any"}))),
    ("region = africa", InRegion(frozenset({"africa"}))),
    ("region in (africa, latin_america)", InRegion(frozenset({"africa", "latin_america"}))),
    ("region != europe", InRegion(frozenset({"europe"}), negated=True)),
    ("sdgs all (13, 15)", SdgsAll(frozenset({13, 15}))),
    ("sdgs any (3, 5)", SdgsAny(frozenset({3, 5}))),
    ("sdgs at least 2", SdgsAtLeast(2)),
    ("label CCP", CCP),
    ("not label CCP", Not(CCP)),
    ("rating >= A", Rating(">=", "A")),
    ("rating < BBB", Rating("<", "BBB")),
    ("vintage = 2021", Vintage("=", Year(2021))),
    ("vintage != 2021", Vintage("!=", Year(2021))),
    ("vintage > 2021", Vintage(">", Year(2021))),
    ("vintage <= 2021", Vintage("<=", Year(2021))),
    ("vintage in 2019..2023", VintageIn(Year(2019), Year(2023))),
    ("vintage in 2019 .. 2019", VintageIn(Year(2019), Year(2019))),
    ("vintage >= year - 5", Vintage(">=", YearsBack(5))),
    ("vintage >= year-5", Vintage(">=", YearsBack(5))),
    ("vintage = year", Vintage("=", YearsBack(0))),
    ("vintage in year - 5..year", VintageIn(YearsBack(5), YearsBack(0))),
    ("vintage in 2020..year", VintageIn(Year(2020), YearsBack(0))),
    ("any", AnyCredit()),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_each_term_parses_to_its_node(text: str, expected: Expr) -> None:
    assert parse(text) == expected


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    assert parse("not country = KE and basis = tech or label CCP") == Or(
        (And((Not(KE), TECH)), CCP)
    )
    assert parse("label CCP or country = KE and basis = tech") == Or((CCP, And((KE, TECH))))


def test_a_chain_of_one_operator_is_one_node_and_parentheses_group() -> None:
    assert parse("country = KE and basis = tech and label CCP") == And((KE, TECH, CCP))
    assert parse("country = KE and (basis = tech or label CCP)") == And((KE, Or((TECH, CCP))))
    assert parse("((country = KE))") == KE
    assert parse("not not label CCP") == Not(Not(CCP))


def test_whitespace_is_free_between_tokens() -> None:
    assert parse("\tcountry in(KE ,UG)\nand\u00a0basis=tech ") == And(
        (OneOf("country", frozenset({"KE", "UG"})), TECH)
    )


def test_the_formatter_prints_the_canonical_text() -> None:
    assert format_expr(parse("country in (UG, KE, KE)")) == "country in (KE, UG)"
    assert format_expr(parse("country in (KE)")) == "country = KE"
    assert format_expr(parse("project not in (VCS1)")) == "project != VCS1"
    assert (
        format_expr(parse("((country = KE))  and(basis=tech)")) == "country = KE and basis = tech"
    )
    assert format_expr(parse("(project = 1)")) == "project = 1"
    assert format_expr(parse("vintage >= year - 0")) == "vintage >= year"
    assert format_expr(parse('category = "Energy demand"')) == 'category = "Energy demand"'
    assert format_expr(parse("not (label CCP or label CCB)")) == "not (label CCP or label CCB)"
    assert (
        format_expr(parse("(label CCP or label CCB) or any")) == "(label CCP or label CCB) or any"
    )


ERRORS: list[tuple[str, int, str]] = [
    ("", 0, "empty screen: write `any` to match every credit"),
    ("   ", 3, "empty screen"),
    ("country = KE and colour = red", 17, "unknown attribute 'colour'"),
    ("sdgs = 13", 5, "sdgs takes all (...), any (...) or at least N, not '='"),
    ("vintage ~ 2020", 8, "unexpected character '~'"),
    ("label CCP and vintage in (2019, 2020)", 25, "expected a vintage year, found '('"),
    ("country >= KE", 8, "country takes =, !=, in or not in, not '>='"),
    ("country not KE", 12, "country takes =, !=, in or not in, not 'KE'"),
    ("country in KE", 11, "expected '(' to open a list, found 'KE'"),
    ("country in ()", 12, "expected a value for country, found ')'"),
    ("country in (KE UG)", 15, "expected ')' to close the list"),
    ("country in (KE,", 15, "expected a value for country, found the end of the screen"),
    ("country = UK", 10, "'UK' is not an ISO 3166-1 alpha-2 code"),
    ("country = ke", 10, "'ke' is not an ISO 3166-1 alpha-2 code"),
    ("mitigation = removals", 13, "mitigation is one of avoidance, removal, not 'removals'"),
    ("basis in (nature, Tech)", 18, "basis is one of nature, tech, not 'Tech'"),
    ("standard = VSC", 11, "standard is one of ACR, ART, CAR, CDC, GS, ISO, VCS, not 'VSC'"),
    ("registry = verra", 11, "registry is one of"),
    ('category = ""', 11, "empty value: to screen for unknown, use not (...)"),
    ("region = narnia", 9, "unknown region 'narnia'"),
    ('region = "africa"', 9, "unknown region"),
    ("sdgs any (3, 18)", 13, "an SDG number must be 1..17, not 18"),
    ("sdgs all (0)", 10, "an SDG number must be 1..17, not 0"),
    ("sdgs all (x)", 10, "expected an SDG number, found 'x'"),
    ("sdgs at least 0", 14, "a count of SDGs must be 1..17, not 0"),
    ("sdgs at most 3", 8, "expected 'least', found 'most'"),
    ("label", 5, "expected a label name, found the end of the screen"),
    ('label "SD VISTA"', 6, 'expected a label name, found "SD VISTA"'),
    ("rating >= Z", 10, "a rating is one of AAA, AA, A, BBB, BB, B, C, D, not 'Z'"),
    ("rating in (A)", 7, "rating takes =, !=, <, <=, >, >=, not 'in'"),
    ("vintage >= 21", 11, "a vintage year must be 1000..9999, not 21"),
    ("vintage >= 20210", 11, "expected a vintage year, found '20210'"),
    ("vintage >= year - 101", 18, "years back must be 0..100, not 101"),
    ("vintage >= year-101", 16, "years back must be 0..100, not 101"),
    ("vintage >= year + 1", 16, "unexpected character '+'"),
    ("vintage in 2023..2019", 17, "the range ends before it starts"),
    ("vintage in year - 1..year - 5", 21, "the range ends before it starts"),
    ("vintage in 2019...2023", 17, "unexpected character '.'"),
    ("vintage in 2019-2023", 11, "expected a vintage year, found '2019-2023'"),
    ("(country = KE", 13, "expected ')' to close the '(' at 0, found the end of the screen"),
    ("country = KE)", 12, "')' has no matching '('"),
    ("country = KE UG", 13, "expected 'and', 'or' or the end, found 'UG'"),
    ("country = KE AND basis = tech", 13, "(keywords are lower-case: and)"),
    ("NOT label CCP", 0, "unknown attribute 'NOT'"),
    ("country = KE and", 16, "expected a term, found the end of the screen"),
    ("and label CCP", 0, "expected a term, found 'and'"),
    ("not", 3, "expected a term"),
    ("country = KE or or label CCP", 16, "expected a term, found 'or'"),
    ('category = "Energy', 11, "string not closed"),
    ('category = "a\\nb"', 13, 'only \\" and \\\\ may follow \\'),
    ("country = KE ! label CCP", 13, "unexpected character '!'"),
    ("country == KE", 9, "expected a value for country, found '='"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS)
def test_each_error_points_at_the_offending_token(text: str, position: int, message: str) -> None:
    with pytest.raises(ScreenError) as caught:
        parse(text)
    assert caught.value.position == position, str(caught.value)
    assert message in caught.value.message, str(caught.value)


def test_a_screen_error_is_a_value_error_that_says_where() -> None:
    with pytest.raises(ValueError, match=r"^at 17: unknown attribute 'colour'$"):
        parse("country = KE and colour = red")
    error = ScreenError(4, "nope")
    assert (error.position, error.message, str(error)) == (4, "nope", "at 4: nope")


def test_the_package_re_exports_the_api() -> None:
    assert screening.parse is parse and screening.matches is matches
    assert screening.ScreenError is ScreenError and screening.Credit is Credit
    assert screening.format_expr is format_expr and screening.uses_year is uses_year
    assert (screening.SCREEN_TEXT_MAX, screening.SCREEN_DEPTH_MAX, screening.SCREEN_LIST_MAX) == (
        SCREEN_TEXT_MAX,
        SCREEN_DEPTH_MAX,
        SCREEN_LIST_MAX,
    )


# -- limits ---------------------------------------------------------------------------------


def test_a_text_at_the_length_limit_parses_and_one_more_character_is_refused() -> None:
    text = "any" + " " * (SCREEN_TEXT_MAX - 3)
    assert parse(text) == AnyCredit()
    with pytest.raises(ScreenError) as caught:
        parse(text + " ")
    assert caught.value.position == SCREEN_TEXT_MAX
    assert caught.value.message == f"a screen is at most {SCREEN_TEXT_MAX} characters"


def test_parentheses_nest_to_the_depth_limit_and_the_next_is_refused_where_it_opens() -> None:
    at_limit = "(" * SCREEN_DEPTH_MAX + "any" + ")" * SCREEN_DEPTH_MAX
    assert parse(at_limit) == AnyCredit()
    with pytest.raises(ScreenError) as caught:
        parse("(" + at_limit + ")")
    assert caught.value.position == SCREEN_DEPTH_MAX
    assert "nested deeper than 32 levels" in caught.value.message


def test_not_counts_towards_the_depth_limit() -> None:
    assert uses_year(parse("not " * SCREEN_DEPTH_MAX + "vintage = year"))
    with pytest.raises(ScreenError) as caught:
        parse("not (" * (SCREEN_DEPTH_MAX // 2) + "not any" + ")" * (SCREEN_DEPTH_MAX // 2))
    assert caught.value.position == len("not (") * (SCREEN_DEPTH_MAX // 2)


def test_long_chains_of_and_are_not_nesting() -> None:
    chain = " and ".join(["label CCP"] * 200)
    assert parse(chain) == And((CCP,) * 200)


@pytest.mark.parametrize("opening", ["(", "not ", "not (", "( not "])
def test_pathological_nesting_is_a_screen_error_not_a_recursion_error(opening: str) -> None:
    text = (opening * 2000)[:SCREEN_TEXT_MAX]
    with pytest.raises(ScreenError) as caught:
        parse(text)
    assert "nested deeper" in caught.value.message


def test_a_list_holds_at_most_the_list_limit() -> None:
    sdgs = ", ".join(["13"] * SCREEN_LIST_MAX)
    assert parse(f"sdgs any ({sdgs})") == SdgsAny(frozenset({13}))
    text = f"sdgs any ({sdgs}, 14)"
    with pytest.raises(ScreenError) as caught:
        parse(text)
    assert caught.value.position == text.index("14")
    assert caught.value.message == f"a list has at most {SCREEN_LIST_MAX} items"


# -- round trips ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(exprs(free_text=True, bound_pool=bounds))
def test_parsing_the_formatted_text_gives_back_the_tree(expr: Expr) -> None:
    assert parse(format_expr(expr)) == expr


@settings(max_examples=150, deadline=None)
@given(exprs(free_text=True, bound_pool=bounds))
def test_a_tree_survives_json_and_msgpack(expr: Expr) -> None:
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(expr), type=Expr) == expr
        assert hash(codec.decode(codec.encode(expr), type=Expr)) == hash(expr)


# Term spellings that are valid but not canonical: unsorted or one-item lists, duplicates,
# odd spacing, `year - 0`, compact `year-5`, quoted bare words, redundant parentheses.
LOOSE_TERMS = [
    "country in (UG,KE,UG)",
    "region in(africa)",
    "project not in ( VCS1340 )",
    'methodology = "VM0015"',
    'category != "Energy demand"',
    "sdgs any(5,3,5)",
    "sdgs all (13)",
    "sdgs at least 02",
    "vintage>=year-0",
    "vintage in year-5..year - 1",
    "vintage in 2019..2019",
    "vintage  !=2021",
    "rating<=BB",
    "label and",
    "any",
    "( label CCP )",
]


def _loose_screens() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        joined = st.tuples(inner, st.sampled_from([" and ", " or ", "\nand ", " or\t"]), inner)
        return st.one_of(
            inner.map(lambda t: f"not {t}"),
            inner.map(lambda t: f"({t})"),
            joined.map("".join),
        )

    return st.recursive(st.sampled_from(LOOSE_TERMS), extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_loose_screens())
def test_the_canonical_text_of_any_screen_is_a_fixed_point(text: str) -> None:
    expr = parse(text)
    canonical = format_expr(expr)
    assert parse(canonical) == expr
    assert format_expr(parse(canonical)) == canonical


SCREEN_WORDS = [
    *("and", "or", "not", "in", "any", "all", "at", "least", "year", "label", "sdgs", "rating"),
    *("vintage", "region", "country", "basis", "mitigation", "project", "category", "standard"),
    *("tech", "nature", "removal", "KE", "UG", "africa", "CCP", "A", "AAA", "13", "2", "2019"),
    *("2023", "5", "(", ")", ",", "=", "!=", ">=", "<=", ">", "<", "..", "-", '"x y"', '"\\"'),
    *('"', "VCS1340", "year-5"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SCREEN_WORDS), max_size=20).map(" ".join))
def test_any_sequence_of_screen_words_is_a_screen_or_a_screen_error(text: str) -> None:
    try:
        expr = parse(text)
    except ScreenError as error:
        assert 0 <= error.position <= len(text)
        return
    assert parse(format_expr(expr)) == expr


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet='()",.-=!<>\\ \tyearnotandin0123aKE', max_size=60))
def test_any_text_is_a_screen_or_a_screen_error(text: str) -> None:
    try:
        expr = parse(text)
    except ScreenError as error:
        assert 0 <= error.position <= len(text)
        assert str(error) == f"at {error.position}: {error.message}"
        return
    assert parse(format_expr(expr)) == expr
    credit = Credit(project="VCS1", registry="VERRA", standard="VCS", vintage=2020)
    assert matches(expr, credit, 2026) in (True, False)


# -- the README is the grammar's manual: its examples must stay true --------------------------

README = (Path(__file__).resolve().parent.parent / "screening" / "README.md").read_text()


def test_every_example_in_the_readme_term_table_parses_to_its_canonical_text() -> None:
    table = README.split("## Terms, one example each", 1)[1].split("### Unknown values", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    examples = [example for row in rows for example in re.findall(r"`([^`]+)`", row.split("|")[2])]
    assert len(examples) >= 20
    for example in examples:
        assert format_expr(parse(example)) == example


def test_every_error_shown_in_the_readme_is_what_the_parser_says() -> None:
    block = README.split("```\ncountry = KE AND", 1)[1].split("```", 1)[0]
    lines = ("country = KE AND" + block).strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        text, expected = re.split(r"\s{2,}", line, maxsplit=1)
        with pytest.raises(ScreenError) as caught:
            parse(text)
        assert str(caught.value) == expected
