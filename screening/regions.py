"""Named regions for screens: each a set of ISO 3166-1 alpha-2 country codes.

Source: the United Nations Statistics Division's geoscheme, "Standard country or area codes
for statistical use (M49)", https://unstats.un.org/unsd/methodology/m49/ (regions,
sub-regions and intermediate regions as M49 publishes them). Buyers' guides and registries
speak of "Latin America", "sub-Saharan Africa" or "South-eastern Asia" in exactly these
terms, so a screen written against a guide means what the guide means.

Two deliberate departures, both because M49 has no code of its own for the place: Taiwan
(TW), which M49 counts with China, is in `eastern_asia`; Antarctica (AQ), which M49 places in
no region, is a known country for `country = AQ` but in no region here either.

Names are lower-case with underscores (`latin_america`), as a screen writes them. The table
is data: add a grouping here (and a line in screening/README.md) and the language has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def _codes(text: str) -> frozenset[str]:
    """A set of country codes from a space-separated string (how the tables read best)."""
    return frozenset(text.split())


# Sub-regions and intermediate regions, as M49 lists them.
_NORTHERN_AFRICA = _codes("DZ EG LY MA SD TN EH")
_EASTERN_AFRICA = _codes("IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW")
_MIDDLE_AFRICA = _codes("AO CM CF TD CG CD GQ GA ST")
_SOUTHERN_AFRICA = _codes("BW SZ LS NA ZA")
_WESTERN_AFRICA = _codes("BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG")
_CARIBBEAN = _codes(
    "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI"
)
_CENTRAL_AMERICA = _codes("BZ CR SV GT HN MX NI PA")
_SOUTH_AMERICA = _codes("AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE")
_NORTHERN_AMERICA = _codes("BM CA GL PM US")
_CENTRAL_ASIA = _codes("KZ KG TJ TM UZ")
_EASTERN_ASIA = _codes("CN HK MO KP JP MN KR TW")
_SOUTH_EASTERN_ASIA = _codes("BN KH ID LA MY MM PH SG TH TL VN")
_SOUTHERN_ASIA = _codes("AF BD BT IN IR MV NP PK LK")
_WESTERN_ASIA = _codes("AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE")
_EASTERN_EUROPE = _codes("BY BG CZ HU PL MD RO RU SK UA")
_NORTHERN_EUROPE = _codes("AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB")
_SOUTHERN_EUROPE = _codes("AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES")
_WESTERN_EUROPE = _codes("AT BE FR DE LI LU MC NL CH")
_AUSTRALIA_AND_NEW_ZEALAND = _codes("AU CX CC HM NZ NF")
_MELANESIA = _codes("FJ NC PG SB VU")
_MICRONESIA = _codes("GU KI MH FM NR MP PW UM")
_POLYNESIA = _codes("AS CK PF NU PN WS TK TO TV WF")

_SUB_SAHARAN_AFRICA = _EASTERN_AFRICA | _MIDDLE_AFRICA | _SOUTHERN_AFRICA | _WESTERN_AFRICA
_LATIN_AMERICA = _CARIBBEAN | _CENTRAL_AMERICA | _SOUTH_AMERICA
_ASIA = _CENTRAL_ASIA | _EASTERN_ASIA | _SOUTH_EASTERN_ASIA | _SOUTHERN_ASIA | _WESTERN_ASIA

REGIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "africa": _NORTHERN_AFRICA | _SUB_SAHARAN_AFRICA,
        "northern_africa": _NORTHERN_AFRICA,
        "sub_saharan_africa": _SUB_SAHARAN_AFRICA,
        "eastern_africa": _EASTERN_AFRICA,
        "middle_africa": _MIDDLE_AFRICA,
        "southern_africa": _SOUTHERN_AFRICA,
        "western_africa": _WESTERN_AFRICA,
        "americas": _LATIN_AMERICA | _NORTHERN_AMERICA,
        "latin_america": _LATIN_AMERICA,
        "caribbean": _CARIBBEAN,
        "central_america": _CENTRAL_AMERICA,
        "south_america": _SOUTH_AMERICA,
        "northern_america": _NORTHERN_AMERICA,
        "asia": _ASIA,
        "central_asia": _CENTRAL_ASIA,
        "eastern_asia": _EASTERN_ASIA,
        "south_eastern_asia": _SOUTH_EASTERN_ASIA,
        "southern_asia": _SOUTHERN_ASIA,
        "western_asia": _WESTERN_ASIA,
        "europe": _EASTERN_EUROPE | _NORTHERN_EUROPE | _SOUTHERN_EUROPE | _WESTERN_EUROPE,
        "eastern_europe": _EASTERN_EUROPE,
        "northern_europe": _NORTHERN_EUROPE,
        "southern_europe": _SOUTHERN_EUROPE,
        "western_europe": _WESTERN_EUROPE,
        "oceania": _AUSTRALIA_AND_NEW_ZEALAND | _MELANESIA | _MICRONESIA | _POLYNESIA,
        "australia_and_new_zealand": _AUSTRALIA_AND_NEW_ZEALAND,
        "melanesia": _MELANESIA,
        "micronesia": _MICRONESIA,
        "polynesia": _POLYNESIA,
    }
)

# Every ISO 3166-1 alpha-2 code a screen may name: each is in exactly one continent above,
# except Antarctica. A screen naming any other code (`country = UK`) is refused, because it
# would silently match nothing.
COUNTRIES: frozenset[str] = frozenset().union(
    *(REGIONS[name] for name in ("africa", "americas", "asia", "europe", "oceania"))
) | frozenset({"AQ"})

# The regions each country is in, so a region term is judged with one lookup and one set
# operation per credit rather than a scan over the regions it names.
REGIONS_OF_COUNTRY: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        country: frozenset(name for name, codes in REGIONS.items() if country in codes)
        for country in sorted(COUNTRIES)
    }
)
