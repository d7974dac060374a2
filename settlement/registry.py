"""Each registry's serial numbers: how its strings are written, and what makes a serial unique.

A carbon credit is one serial number inside a block that a registry issued. What makes that
number unique differs by registry, and getting it wrong either refuses genuine credits or
lets one tonne be held twice:

- **Verra** numbers serials across its whole registry, so `941467007` is one credit whatever
  else the string says.
- **CAR, ACR, ART (and the FCPF programmes listed in ART), Gold Standard VERs and
  Cercarbono** number serials within an issuance batch: two genuine blocks of one project and
  vintage can both start at 1 (`CAR-…-2025-9205-1 to 5000`, `CAR-…-2025-9659-1 to 7275`).
- **CDM units** (Gold Standard's CER rows) carry Kyoto serial identifiers, whose block numbers
  are unique within the originating Party's registry (`RW-5-1459975-…` is Rwanda's).

A parsed serial has two names for where it lives. Its `batch` is the string with the range
taken out (`ACR-FR-1129-2025-2917-*`): everything a sub-range must keep to be printed back in
the registry's own form, so ranges of different batches never merge. Its `scope` is the space
in which the registry's numbers are unique (the batch itself, or `VERRA`, or `CDM:RW`): the
ledger checks overlaps within a scope. The table `RULES` is the one place these rules live;
each says where it comes from. Nothing here guesses: a string no rule of its registry matches,
or a registry with no rule, is refused with `SerialFormatError` and a reason.

Formats (all ranges inclusive, as data/README.md found in every sampled row), each as
`example` -> batch, scope:

- VERRA: `19385-941467007-941467431-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1`
  -> `19385-*-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1`, scope `VERRA`
- GOLD_STANDARD VER: `GS1-1-UG-GS11236-16-2024-30307-1-19149`
  -> `GS1-1-UG-GS11236-16-2024-30307-*`, scope the batch
- GOLD_STANDARD CDM CER: `RW-5-1459975-2-2-0-7014 - RW-5-1460107-2-2-0-7014`
  -> `RW-5-*-2-2-0-7014`, scope `CDM:RW`
- ACR: `ACR-FR-1129-2025-2917-30932 to 35143` -> `ACR-FR-1129-2025-2917-*`, the batch
- CAR: `CAR-1-MX-1568-42-1130-QR-2025-9680-1 to 15803` -> `CAR-1-MX-…-9680-*`, the batch
- ART: `ART-GY-102-2021-11-2759599 to 2760598`, `FCPF-CI-130-2023-20-1 to 46404`
  -> `ART-GY-102-2021-11-*`, the batch
- CERCARBONO: batch id `CDC_1_1_1_321_14_1_2009` with the range in columns of its own
  -> the batch id, the batch

Cercarbono's export gives the batch id and the range in separate columns; tonne prints such
a range as `CDC_1_1_1_321_14_1_2009 2262 to 4425`, which this module also parses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

SERIAL_TEXT_BYTES_MAX = 200  # the longest serial string accepted (real ones are under 100)
SERIAL_DIGITS_MAX = 15  # serial numbers stay below 10**15 (< 2**53: exact in JSON clients)
PLACEHOLDER = "*"  # where the range sits in a batch


class SerialFormatError(ValueError):
    """A serial string, registry or range that no rule accepts; the message says why."""


class RegistrySerial(msgspec.Struct, frozen=True):
    """One parsed registry serial block, inclusive at both ends.

    `project` and `vintage` are what the string itself says (None where its format carries
    no such field), in data/projects.csv's form (`ACR1129`, `VCS1340`)."""

    registry: str
    batch: str
    scope: str
    first: int
    last: int
    project: str | None = None
    vintage: int | None = None

    @property
    def qty(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return format_serial(self.registry, self.batch, self.first, self.last)


@dataclass(frozen=True)
class Rule:
    """How one registry (or one format of it) writes serials, and where the rule comes from.

    `pattern` matches a whole serial string, with groups `first` and `last` and, where the
    format has them, `project` and `vintage`; `write` prints a range of a batch; `scope`
    names the space in which a batch's numbers are unique."""

    registry: str
    name: str
    pattern: re.Pattern[str]
    write: Callable[[str, int, int], str]
    scope: Callable[[str], str]
    project_prefix: str | None  # the string's project number + this = the project id
    source: str

    def batch(self, m: re.Match[str]) -> str:
        """The matched string with its range taken out."""
        s = m.string
        if self.registry == "CERCARBONO":  # the batch id, then ` first to last`
            return s[: m.start("first") - 1]
        if self.name == "CDM CER":  # two whole identifiers: keep the first, range cut out
            return s[: m.start("first")] + PLACEHOLDER + s[m.end("first") : m.start("sep")]
        return s[: m.start("first")] + PLACEHOLDER + s[m.end("last") :]


def _n(digits: int) -> str:
    """A number of 1 to `digits` digits in canonical form: no leading zero."""
    return f"(?:0|[1-9][0-9]{{0,{digits - 1}}})"


def _num(name: str) -> str:
    return f"(?P<{name}>{_n(SERIAL_DIGITS_MAX)})"


def _dash(batch: str, first: int, last: int) -> str:
    return batch.replace(PLACEHOLDER, f"{first}-{last}", 1)


def _to(batch: str, first: int, last: int) -> str:
    return batch.replace(PLACEHOLDER, f"{first} to {last}", 1)


def _cdm(batch: str, first: int, last: int) -> str:
    # both ends are whole Kyoto identifiers: `RW-5-1459975-2-2-0-7014 - RW-5-1460107-2-2-0-7014`
    return f"{batch.replace(PLACEHOLDER, str(first))} - {batch.replace(PLACEHOLDER, str(last))}"


def _after(batch: str, first: int, last: int) -> str:
    return f"{batch} {first} to {last}"


def _batch_scope(batch: str) -> str:
    return batch


def _verra_scope(_batch: str) -> str:
    return "VERRA"


def _cdm_scope(batch: str) -> str:
    return "CDM:" + batch.split("-", 1)[0]


# Every pattern is ASCII: `\d` is 0-9 only, so another script's digits never make a serial
# (`ACR-FR-١١٢٩-…` would otherwise read as a project that looks like ACR1129 and is not); and
# every number of variable length is in canonical form, without leading zeros, so that one
# batch has one spelling (`…-2025-09205-*` would otherwise be a second identity of `9205`).
_YEAR = "(?P<vintage>[0-9]{4})"
_VERRA = re.compile(
    f"{_n(12)}-{_num('first')}-{_num('last')}-VCS-VCU-{_n(6)}-VER-[A-Z]{{2}}-{_n(3)}-"
    f"(?P<project>{_n(6)})-[0-9]{{4}}{_YEAR}-[0-9]{{8}}-[01]",
    re.ASCII,
)
_GS_VER = re.compile(
    f"GS[0-9]-[0-9]-[A-Z]{{2}}-GS(?P<project>{_n(6)})-{_n(3)}-{_YEAR}-{_n(9)}-"
    f"{_num('first')}-{_num('last')}",
    re.ASCII,
)
_CDM = re.compile(
    f"(?P<party>[A-Z]{{2}})-(?P<unit>{_n(2)})-{_num('first')}-"
    f"(?P<tail>{_n(2)}-{_n(2)}-{_n(2)}-{_n(6)})(?P<sep> - )"
    f"(?P=party)-(?P=unit)-{_num('last')}-(?P=tail)",
    re.ASCII,
)
_ACR = re.compile(
    f"ACR-[A-Z]{{2}}-(?P<project>{_n(6)})-{_YEAR}-{_n(9)}-{_num('first')} to {_num('last')}",
    re.ASCII,
)
_CAR = re.compile(
    f"CAR-[A-Z0-9]{{1,4}}-[A-Z]{{2}}-(?P<project>{_n(6)})-{_n(6)}-{_n(6)}-[A-Z]{{2}}-"
    f"{_YEAR}-{_n(9)}-{_num('first')} to {_num('last')}",
    re.ASCII,
)
_ART = re.compile(
    f"(?:ART|FCPF)-[A-Z]{{2}}-(?P<project>{_n(6)})-{_YEAR}-{_n(9)}-"
    f"{_num('first')} to {_num('last')}",
    re.ASCII,
)
_CDC_ID = f"CDC_(?P<project>{_n(6)})(?:_[A-Z0-9]{{1,6}}){{1,12}}_{_YEAR}"
_CDC = re.compile(f"{_CDC_ID} {_num('first')} to {_num('last')}", re.ASCII)
_CDC_BATCH = re.compile(_CDC_ID, re.ASCII)

_SAMPLE = "data/README.md: every sampled row of carbonplan/offsets-db-data's exports"

RULES: tuple[Rule, ...] = (
    Rule(
        "VERRA",
        "VCU",
        _VERRA,
        _dash,
        _verra_scope,
        "VCS",
        f"Verra issues VCU serial numbers once across its registry; {_SAMPLE}",
    ),
    Rule(
        "GOLD_STANDARD",
        "VER",
        _GS_VER,
        _dash,
        _batch_scope,
        "GS",
        f"GS numbers each issuance from 1 (`GS1-1-CR-GS2913-22-2025-30184-3-3`); {_SAMPLE}",
    ),
    Rule(
        "GOLD_STANDARD",
        "CDM CER",
        _CDM,
        _cdm,
        _cdm_scope,
        None,
        "Kyoto unit identifiers (party, unit type, serial, periods, LULUCF, project): "
        "serial numbers are unique within the originating Party's registry",
    ),
    Rule(
        "ACR",
        "ACR",
        _ACR,
        _to,
        _batch_scope,
        "ACR",
        f"ACR numbers within an issuance batch (`ACR-US-407-2024-2368-1`); {_SAMPLE}",
    ),
    Rule(
        "CAR",
        "CAR",
        _CAR,
        _to,
        _batch_scope,
        "CAR",
        f"CAR numbers within an issuance batch (`…-2025-9205-1`, `…-2025-9659-1`); {_SAMPLE}",
    ),
    Rule(
        "ART",
        "ART/FCPF",
        _ART,
        _to,
        _batch_scope,
        "ART",
        f"ART numbers within an issuance batch (`FCPF-CI-130-2023-20-1`, `…-21-1`); {_SAMPLE}",
    ),
    Rule(
        "CERCARBONO",
        "EcoRegistry",
        _CDC,
        _after,
        _batch_scope,
        "CDC-",
        f"EcoRegistry gives a batch id, with the range in separate from/to columns; {_SAMPLE}",
    ),
)

REGISTRIES: tuple[str, ...] = tuple(dict.fromkeys(r.registry for r in RULES))


def rules_of(registry: str) -> tuple[Rule, ...]:
    rules = tuple(r for r in RULES if r.registry == registry)
    if not rules:
        raise SerialFormatError(
            f"unknown registry {registry!r}: serials are read for {', '.join(REGISTRIES)}"
        )
    return rules


def parse(
    registry: str, text: str, start: int | None = None, end: int | None = None
) -> RegistrySerial:
    """The identity and inclusive range a registry serial string names.

    `start`/`end`, when given, are the range as stated beside the string (the export's
    columns) and must agree with it. A Cercarbono batch id carries no range, so for it they
    are required."""
    if len(text.encode()) > SERIAL_TEXT_BYTES_MAX:
        raise SerialFormatError(f"serial string longer than {SERIAL_TEXT_BYTES_MAX} bytes")
    rules = rules_of(registry)
    if registry == "CERCARBONO" and _CDC_BATCH.fullmatch(text):
        if start is None or end is None:
            raise SerialFormatError(f"Cercarbono batch {text!r} needs its range (start and end)")
        text = _after(text, start, end)
    for rule in rules:
        m = rule.pattern.fullmatch(text)
        if m is not None:
            return _parsed(rule, m, start, end)
    names = " or ".join(r.name for r in rules)
    raise SerialFormatError(f"{text!r} is not a {registry} serial ({names} format)")


def registries_of(text: str) -> tuple[str, ...]:
    """The registries in whose serial format `text` is written (a Cercarbono batch id alone
    counts as Cercarbono's). The formats do not overlap, so a real string has one at most."""
    found = [
        r.registry
        for r in RULES
        if r.pattern.fullmatch(text) or (r.registry == "CERCARBONO" and _CDC_BATCH.fullmatch(text))
    ]
    return tuple(dict.fromkeys(found))


def parse_any(text: str, start: int | None = None, end: int | None = None) -> RegistrySerial:
    """A serial string read by the one registry whose format it is written in, for a caller
    that holds the string but not its registry (an operator typing what a registry sent).
    A string in no registry's format, or in more than one, is refused rather than guessed;
    `start`/`end` are as for `parse`."""
    if len(text.encode()) > SERIAL_TEXT_BYTES_MAX:
        raise SerialFormatError(f"serial string longer than {SERIAL_TEXT_BYTES_MAX} bytes")
    found = registries_of(text)
    if not found:
        raise SerialFormatError(
            f"{text!r} is in no registry's serial format (read: {', '.join(REGISTRIES)})"
        )
    if len(found) > 1:
        raise SerialFormatError(f"{text!r} reads as a serial of {' and '.join(found)}")
    return parse(found[0], text, start, end)


def _parsed(rule: Rule, m: re.Match[str], start: int | None, end: int | None) -> RegistrySerial:
    first, last = int(m["first"]), int(m["last"])
    if last < first:
        raise SerialFormatError(f"{m.string!r}: range ends at {last}, before its start {first}")
    if (start is not None and start != first) or (end is not None and end != last):
        raise SerialFormatError(
            f"{m.string!r} names {first}..{last}, but the block is stated as {start}..{end}"
        )
    batch = rule.batch(m)
    groups = m.groupdict()
    project = None if rule.project_prefix is None else rule.project_prefix + groups["project"]
    vintage = int(groups["vintage"]) if groups.get("vintage") else None
    return RegistrySerial(rule.registry, batch, rule.scope(batch), first, last, project, vintage)


@functools.lru_cache(maxsize=4096)  # every fill report prints its serials: read each batch once
def rule_of_batch(registry: str, batch: str) -> Rule:
    """The rule a batch was parsed by (a batch that none of its registry's rules wrote is
    refused, so a range is never printed in a form its registry does not use)."""
    for rule in rules_of(registry):
        m = rule.pattern.fullmatch(rule.write(batch, 1, 1))
        if m is not None and rule.batch(m) == batch:
            return rule
    raise SerialFormatError(f"{batch!r} is not a {registry} batch")


def format_serial(registry: str, batch: str, first: int, last: int) -> str:
    """A range of a batch written as its registry writes it (the inverse of `parse`)."""
    if not 0 <= first <= last < 10**SERIAL_DIGITS_MAX:
        raise SerialFormatError(f"no serial range {first}..{last}")
    return rule_of_batch(registry, batch).write(batch, first, last)


def scope_of(registry: str, batch: str) -> str:
    """The space in which `batch`'s serial numbers are unique (where overlaps are checked)."""
    return rule_of_batch(registry, batch).scope(batch)


@functools.lru_cache(maxsize=4096)
def registry_of_batch(batch: str) -> str:
    """The one registry whose rules wrote `batch`. The formats do not overlap (each starts
    differently: digits, `GS`, a Party code, `ACR-`, `CAR-`, `ART-`/`FCPF-`, `CDC_`), so a
    batch names its registry; a batch that two registries' rules accept, or none, is refused
    rather than guessed (the test over every rule and every real row keeps this true)."""
    found = []
    for registry in REGISTRIES:
        try:
            rule_of_batch(registry, batch)
        except SerialFormatError:
            continue
        found.append(registry)
    if len(found) != 1:
        why = "no registry's" if not found else f"more than one registry's ({', '.join(found)})"
        raise SerialFormatError(f"{batch!r} is {why} batch")
    return found[0]


def identify(batch: str, first: int, last: int) -> RegistrySerial:
    """What the range `first..last` of `batch` is: its registry, scope, project and vintage,
    as the registry's own string says (the range printed, then parsed back)."""
    registry = registry_of_batch(batch)
    parsed = parse(registry, format_serial(registry, batch, first, last))
    if parsed.batch != batch:
        raise SerialFormatError(f"{batch!r} does not print back as itself")
    return parsed


def format_batch_range(batch: str, first: int, last: int) -> str:
    """`first..last` of `batch` in its registry's own form (the registry read off the batch)."""
    return format_serial(registry_of_batch(batch), batch, first, last)
