"""Hypothesis strategies for the screening language: random trees of every node kind, and
random credits drawn from small pools so that random screens often match some of them."""

from __future__ import annotations

from hypothesis import strategies as st

from engine.reference import STANDARD_OF_REGISTRY
from screening.expr import RATING_SCALE, StringAttribute
from screening.language import (
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
    SdgsAll,
    SdgsAny,
    SdgsAtLeast,
    Vintage,
    VintageIn,
    Year,
    YearsBack,
)
from screening.parse import BARE_WORD, KEYWORDS
from screening.regions import REGIONS

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")

# The values a credit may carry and a screen may ask for; "" (unknown) only on credits.
POOLS: dict[StringAttribute, tuple[str, ...]] = {
    "mitigation": ("avoidance", "removal"),
    "basis": ("nature", "tech"),
    "category": ("Energy demand", "Agriculture Forestry and Other Land Use", 'a "q" \\ b'),
    "methodology": ("VM0015", "ACM0002", "AR-ACM0003", "AMS-III.C."),
    "project_type": ("A/R", "PV", "Forest Carbon", "and"),
    "country": ("KE", "UG", "BR", "US", "GB", "CO", "IN", "AQ", "FR"),
    "standard": tuple(sorted(set(STANDARD_OF_REGISTRY.values()))),
    "registry": tuple(sorted(STANDARD_OF_REGISTRY)),
    "project": ("VCS1340", "GS11236", "CDC-1", "prj_1K3VWSDS61S0QKV7"),
}
LABELS = ("CCB", "CORSIA", "CCP", "ARTICLE6")
CREDIT_RATINGS = (*RATING_SCALE, "", "", "Z")
# Attributes whose values are free text: the round trip tries any string there.
FREE_TEXT: tuple[StringAttribute, ...] = ("category", "methodology", "project_type", "project")

sdg_sets = st.frozensets(st.integers(1, 17), min_size=1, max_size=5)
bounds = st.one_of(
    st.builds(Year, st.integers(1000, 9999)),
    st.builds(YearsBack, st.integers(0, 100)),
)
near_bounds = st.one_of(
    st.builds(Year, st.integers(2008, 2032)),
    st.builds(YearsBack, st.integers(0, 12)),
)


def _valid_range(first: Year | YearsBack, last: Year | YearsBack) -> bool:
    if isinstance(first, Year) and isinstance(last, Year):
        return first.value <= last.value
    if isinstance(first, YearsBack) and isinstance(last, YearsBack):
        return first.years >= last.years
    return True


@st.composite
def _one_of(draw: st.DrawFn, free_text: bool) -> OneOf:
    attribute = draw(st.sampled_from(sorted(POOLS)))
    values = st.sampled_from(POOLS[attribute])
    if free_text and attribute in FREE_TEXT:
        values = st.one_of(values, st.sampled_from(sorted(KEYWORDS)), st.text(min_size=1))
    return OneOf(
        attribute, draw(st.frozensets(values, min_size=1, max_size=4)), draw(st.booleans())
    )


def terms(
    free_text: bool = False, bound_pool: st.SearchStrategy = near_bounds
) -> st.SearchStrategy:
    """Every kind of leaf node, with values the parser accepts."""
    labels = st.from_regex(BARE_WORD, fullmatch=True) if free_text else st.sampled_from(LABELS)
    region_sets = st.frozensets(st.sampled_from(sorted(REGIONS)), min_size=1, max_size=3)
    return st.one_of(
        st.just(AnyCredit()),
        _one_of(free_text),
        st.builds(InRegion, region_sets, st.booleans()),
        st.builds(SdgsAll, sdg_sets),
        st.builds(SdgsAny, sdg_sets),
        st.builds(SdgsAtLeast, st.integers(1, 17)),
        st.builds(HasLabel, labels),
        st.builds(Rating, st.sampled_from(COMPARISONS), st.sampled_from(RATING_SCALE)),
        st.builds(Vintage, st.sampled_from(COMPARISONS), bound_pool),
        st.tuples(bound_pool, bound_pool)
        .filter(lambda pair: _valid_range(*pair))
        .map(lambda pair: VintageIn(*pair)),
    )


def exprs(
    free_text: bool = False, bound_pool: st.SearchStrategy = near_bounds
) -> st.SearchStrategy:
    """Random trees of bounded depth over every node kind."""

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        operands = st.lists(children, min_size=2, max_size=4).map(tuple)
        return st.one_of(
            st.builds(Not, children), st.builds(And, operands), st.builds(Or, operands)
        )

    return st.recursive(terms(free_text, bound_pool), extend, max_leaves=12)


credits = st.builds(
    Credit,
    project=st.sampled_from(POOLS["project"]),
    registry=st.sampled_from(POOLS["registry"]),
    standard=st.sampled_from(POOLS["standard"]),
    vintage=st.integers(2008, 2032),
    mitigation=st.sampled_from(("", *POOLS["mitigation"])),
    basis=st.sampled_from(("", *POOLS["basis"])),
    category=st.sampled_from(("", *POOLS["category"])),
    methodology=st.sampled_from(("", *POOLS["methodology"])),
    project_type=st.sampled_from(("", *POOLS["project_type"])),
    country=st.sampled_from(("", "XK", *POOLS["country"])),
    sdgs=st.frozensets(st.integers(1, 17), max_size=7),
    labels=st.frozensets(st.sampled_from(LABELS)),
    rating=st.sampled_from(CREDIT_RATINGS),
)
