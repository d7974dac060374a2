"""Judging credits: each term's rule (unknown attributes included), the evaluator against a
brute-force set-algebra reference, and buyers'-guide screens over the real catalogue."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from screening_strategies import credits, exprs

from engine.catalogue import parse_projects
from screening.language import (
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
    matches,
    parse,
    uses_year,
)
from screening.regions import COUNTRIES, REGIONS

DATA = Path(__file__).resolve().parent.parent / "data"

KENYA_COOKSTOVE = Credit(
    project="GS10792",
    registry="GOLD_STANDARD",
    standard="GS",
    vintage=2024,
    mitigation="avoidance",
    basis="tech",
    project_type="Energy Efficiency - Domestic",
    country="KE",
    sdgs=frozenset({3, 5, 7, 13}),
    labels=frozenset({"CCP"}),
    rating="BBB",
)
UNKNOWN = Credit(project="VCS9", registry="VERRA", standard="VCS", vintage=2020)


def holds(text: str, credit: Credit = KENYA_COOKSTOVE, year: int = 2026) -> bool:
    return matches(parse(text), credit, year)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("country = KE", True),
        ("country != KE", False),
        ("country in (UG, KE)", True),
        ("country not in (UG, KE)", False),
        ("mitigation = avoidance and basis = tech", True),
        ("standard = GS and registry = GOLD_STANDARD", True),
        ("project in (VCS1340, GS10792)", True),
        ("project not in (VCS1340)", True),
        ('project_type = "Energy Efficiency - Domestic"', True),
        ("region = africa", True),
        ("region in (europe, eastern_africa)", True),
        ("region = western_africa", False),
        ("region != sub_saharan_africa", False),
        ("sdgs all (3, 13)", True),
        ("sdgs all (3, 15)", False),
        ("sdgs any (1, 15)", False),
        ("sdgs any (1, 5)", True),
        ("sdgs at least 4", True),
        ("sdgs at least 5", False),
        ("label CCP", True),
        ("not label CORSIA", True),
        ("rating >= BBB", True),
        ("rating > BBB", False),
        ("rating >= A", False),
        ("rating <= BB", False),
        ("rating = BBB", True),
        ("vintage = 2024 and vintage in 2024..2024", True),
        ("vintage > 2024 or vintage < 2024", False),
        ("vintage >= year - 2", True),
        ("vintage >= year - 1", False),
        ("vintage in year - 5..year - 2", True),
        ("any", True),
        ("not any", False),
    ],
)
def test_each_term_judges_a_kenyan_cookstove_credit(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "country = KE",
        "country != KE",
        "country not in (KE, UG)",
        "mitigation != removal",
        "basis != nature",
        "category != x",
        "region = africa",
        "region != africa",
        "region not in (africa, europe)",
        "rating >= D",
        "rating <= AAA",
        "rating != A",
        "sdgs any (13)",
        "sdgs at least 1",
        "label CCP",
    ],
)
def test_an_unknown_attribute_satisfies_neither_a_term_nor_its_opposite(text: str) -> None:
    assert not holds(text, UNKNOWN)
    assert holds(f"not ({text})", UNKNOWN)


def test_a_rating_off_the_scale_is_judged_as_unrated() -> None:
    off_scale = msgspec_replace(KENYA_COOKSTOVE, rating="A+")
    assert not holds("rating >= D", off_scale) and not holds("rating <= AAA", off_scale)


def test_a_country_in_no_region_is_outside_every_region_but_known() -> None:
    antarctic = msgspec_replace(KENYA_COOKSTOVE, country="AQ")
    assert holds("country = AQ", antarctic)
    assert not holds("region in (africa, americas, asia, europe, oceania)", antarctic)
    assert holds("region != africa", antarctic)


def test_a_rolling_vintage_term_moves_with_the_year() -> None:
    screen = parse("vintage >= year - 2")
    assert [matches(screen, KENYA_COOKSTOVE, y) for y in (2025, 2026, 2027)] == [True, True, False]
    assert uses_year(screen) and uses_year(parse("label CCP or not vintage in 2020..year"))
    assert not uses_year(parse("vintage >= 2021 and (label CCP or not vintage in 2019..2023)"))


def msgspec_replace(credit: Credit, **changes: object) -> Credit:
    import msgspec

    return msgspec.structs.replace(credit, **changes)


# -- the evaluator against a brute-force reference ------------------------------------------

_REF_SCALE = ["D", "C", "B", "BB", "BBB", "A", "AA", "AAA"]  # worst first: index = goodness
_REF_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _ref_year(bound: Bound, year: int) -> int:
    return bound.value if isinstance(bound, Year) else year - bound.years


def reference(expr: Expr, universe: list[Credit], year: int) -> set[int]:
    """The indices of the credits that satisfy `expr`, by set algebra over the universe."""
    everyone = set(range(len(universe)))
    each = list(enumerate(universe))
    match expr:
        case And(operands=operands):
            return set.intersection(*(reference(o, universe, year) for o in operands))
        case Or(operands=operands):
            return set.union(*(reference(o, universe, year) for o in operands))
        case Not(operand=operand):
            return everyone - reference(operand, universe, year)
        case AnyCredit():
            return everyone
        case OneOf(attribute=a, values=values, negated=False):
            return {i for i, c in each if getattr(c, a) != "" and getattr(c, a) in values}
        case OneOf(attribute=a, values=values, negated=True):
            return {i for i, c in each if getattr(c, a) != "" and getattr(c, a) not in values}
        case InRegion(regions=regions, negated=negated):
            inside = {country for name in regions for country in REGIONS[name]}
            return {i for i, c in each if c.country != "" and (c.country in inside) != negated}
        case SdgsAll(sdgs=sdgs):
            return {i for i, c in each if all(n in c.sdgs for n in sdgs)}
        case SdgsAny(sdgs=sdgs):
            return {i for i, c in each if any(n in c.sdgs for n in sdgs)}
        case SdgsAtLeast(count=count):
            return {i for i, c in each if len(set(c.sdgs)) >= count}
        case HasLabel(label=label):
            return {i for i, c in each if label in c.labels}
        case Rating(op=op, grade=grade):
            rated = [(i, _REF_SCALE.index(c.rating)) for i, c in each if c.rating in _REF_SCALE]
            return {i for i, g in rated if _REF_COMPARE[op](g, _REF_SCALE.index(grade))}
        case Vintage(op=op, bound=bound):
            at = _ref_year(bound, year)
            return {i for i, c in each if _REF_COMPARE[op](c.vintage, at)}
        case VintageIn(first=first, last=last):
            lo, hi = _ref_year(first, year), _ref_year(last, year)
            return {i for i, c in each if lo <= c.vintage <= hi}
    raise AssertionError(expr)


@settings(max_examples=300, deadline=None)
@given(exprs(), st.lists(credits, min_size=1, max_size=30), st.integers(2015, 2035))
def test_matches_agrees_with_set_algebra_over_a_universe(
    expr: Expr, universe: list[Credit], year: int
) -> None:
    judged = {i for i, credit in enumerate(universe) if matches(expr, credit, year)}
    assert judged == reference(expr, universe, year)


@settings(max_examples=200, deadline=None)
@given(exprs(), credits, st.integers(2015, 2035), st.integers(2015, 2035))
def test_a_screen_that_does_not_use_the_year_gives_one_verdict_in_every_year(
    expr: Expr, credit: Credit, year: int, other_year: int
) -> None:
    if not uses_year(expr):
        assert matches(expr, credit, year) == matches(expr, credit, other_year)


# -- the real catalogue ----------------------------------------------------------------------


def catalogue_credits() -> list[Credit]:
    """A credit per project of data/projects.csv and each vintage first..last it lists."""
    text = (DATA / "projects.csv").read_text()
    vintages = {
        row["project_id"]: (row["first_vintage"], row["last_vintage"])
        for row in csv.DictReader(io.StringIO(text))
    }
    lines = []
    for p in parse_projects(text):
        first, last = vintages[p.id]
        for vintage in range(int(first or 1), int(last or 0) + 1):
            lines.append(
                Credit(
                    project=p.id,
                    registry=p.registry,
                    standard=p.standard,
                    vintage=vintage,
                    mitigation=p.mitigation.value if p.mitigation else "",
                    basis=p.basis.value if p.basis else "",
                    category=p.category,
                    methodology=p.methodology,
                    project_type=p.project_type,
                    country=p.country,
                    sdgs=frozenset(p.sdgs),
                    labels=frozenset(p.labels),
                )
            )
    return lines


CATALOGUE = catalogue_credits()


def test_the_catalogue_has_a_line_per_project_and_vintage() -> None:
    assert len(CATALOGUE) == 146
    assert len({c.project for c in CATALOGUE}) == 71 - 9 - 8  # Isometric and 8 others: none


def test_every_catalogue_country_is_known_and_in_a_continent() -> None:
    text = (DATA / "projects.csv").read_text()
    countries = {p.country for p in parse_projects(text)}
    assert countries <= COUNTRIES
    continents = ("africa", "americas", "asia", "europe", "oceania")
    assert all(sum(c in REGIONS[name] for name in continents) == 1 for c in countries)


@pytest.mark.parametrize(
    ("screen", "projects"),
    [
        ("mitigation = removal and basis = nature and region = africa", {"VCS2319"}),
        (
            "label CCP and vintage >= year - 1",
            {"ACR1129", "ACR1194", "ACR802", "CAR1480"} | {"CAR1568", "CAR444", "GS10792"},
        ),
        ("standard in (VCS, GS) and sdgs at least 5", {"VCS2925", "VCS4151"}),
        (
            'region = latin_america and category = "Agriculture Forestry and Other Land Use"',
            {"VCS2551", "VCS2887", "VCS3739", "VCS960"},
        ),
        (
            "basis = tech and mitigation = avoidance and region = sub_saharan_africa and label CCP",
            {"GS10792", "GS12285"},
        ),
        ("region = south_eastern_asia and not label CORSIA", {"GS12112", "GS751", "VCS1974"}),
        ("label CORSIA and region = africa", {"VCS4150"}),
        (
            "not mitigation in (avoidance, removal)",
            {"ACR212", "ACR680", "GS4823", "VCS2887", "VCS4268"},
        ),
        ("project in (VCS1340, ART102) and vintage in 2016..2020", {"VCS1340", "ART102"}),
    ],
)
def test_buyers_guide_screens_find_the_expected_projects(screen: str, projects: set[str]) -> None:
    expr = parse(screen)
    assert {c.project for c in CATALOGUE if matches(expr, c, 2026)} == projects
