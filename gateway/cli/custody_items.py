"""What `tonne custody` is asked to move, checked before anything is sent (gateway/cli/custody.py).

Each input (a `--cash` pair, a `--serial` with its options, a CSV row) becomes a `Cash`, a
`Credits` or a `Refused` with the reason code the server would give and why. Nothing here
talks to a server; reading the CSV and key files is the only I/O. Amounts are integers of
minor units from the first step: a decimal is split into its digits, never read as a float.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.events import Reason
from gateway.wire.protocol import STR_CHARS_MAX
from settlement import registry
from settlement.limits import AMOUNT_MAX
from settlement.registry import RegistrySerial, SerialFormatError

# ISO 4217 minor-unit exponents of the currencies the exchange carries (settlement/ledger.py
# CURRENCIES): how many decimals a major-unit amount may have.
CURRENCY_DECIMALS = {"USD": 2, "HKD": 2, "CNY": 2}
AMOUNT_CHARS_MAX = 40  # an amount as typed (2^53 - 1 has 16 digits)
CSV_BYTES_MAX = 4 << 20  # a --csv file, at most (data/serials.csv: 77 rows in 16 KiB)
ITEMS_MAX = 10_000  # items one run moves (cash, serials and CSV rows together)
CSV_COLUMNS = (
    "project_id",
    "registry",
    "vintage",
    "serial_string",
    "block_start",
    "block_end",
    "quantity",
    "range_convention",
)

_DECIMAL = re.compile(r"(?P<units>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
_INTEGER = re.compile(r"[0-9]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_YEAR = re.compile(r"[0-9]{4}")
_SERIAL_NUMBER = re.compile(rf"[0-9]{{1,{registry.SERIAL_DIGITS_MAX}}}")


class InputError(Exception):
    """A file that cannot be read, or input past a limit: a usage error, nothing is sent."""


@dataclass(frozen=True)
class Cash:
    currency: str
    amount: int  # minor units
    decimals: int | None  # the currency's, where known

    @property
    def name(self) -> str:
        if self.decimals is None:
            return f"{self.amount} {self.currency} minor units"
        if not self.decimals:
            return f"{self.amount} {self.currency}"
        units, fraction = divmod(self.amount, 10**self.decimals)
        return f"{units}.{fraction:0{self.decimals}d} {self.currency}"

    def describe(self) -> str:
        if self.decimals is None:
            return self.name
        return f"{self.name} ({self.amount} minor units)"


@dataclass(frozen=True)
class Credits:
    serial: RegistrySerial
    project: str
    vintage: int
    ref: str = ""
    where: str = ""  # the CSV line it came from, if any

    @property
    def name(self) -> str:
        return f"{self.where}{self.serial}"

    def describe(self) -> str:
        return f"{self.serial} ({self.project} {self.vintage}, {self.serial.qty} t)"


@dataclass(frozen=True)
class Refused:
    name: str
    reason: Reason
    text: str


@dataclass
class SerialArg:
    """A `--serial` as typed, with the options that followed it."""

    text: str
    project: str | None = None
    vintage: int | None = None
    start: int | None = None
    end: int | None = None


class _Refuse(Exception):
    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


# -- cash ----------------------------------------------------------------------------------


def _minor_units(text: str, currency: str, decimals: int | None) -> int:
    """`text` as an integer of minor units: a decimal of at most `decimals` decimals, or with
    `decimals` None an integer of minor units already. Raises _Refuse."""
    if len(text) > AMOUNT_CHARS_MAX:
        raise _Refuse(Reason.INVALID_AMOUNT, f"longer than {AMOUNT_CHARS_MAX} characters")
    if text.startswith("-"):
        raise _Refuse(
            Reason.INVALID_AMOUNT, "a negative amount (deposit or withdraw says which way)"
        )
    if decimals is None:
        if not _INTEGER.fullmatch(text):
            raise _Refuse(Reason.INVALID_AMOUNT, f"{text!r} is not a whole number of minor units")
        return int(text)
    m = _DECIMAL.fullmatch(text)
    if m is None:
        raise _Refuse(
            Reason.INVALID_AMOUNT,
            f"{text!r} is not a decimal amount (digits, then optionally '.' and at most "
            f"{decimals} decimals: 500000.00)",
        )
    fraction = m["fraction"] or ""
    if len(fraction) > decimals:
        raise _Refuse(
            Reason.INVALID_AMOUNT,
            f"{len(fraction)} decimals, and {currency} has {decimals}: {text} is not a whole "
            "number of minor units",
        )
    scale: int = 10**decimals
    return int(m["units"]) * scale + int(fraction.ljust(decimals, "0") or "0")


def cash_item(currency_text: str, amount_text: str, in_minor_units: bool) -> Cash | Refused:
    currency = currency_text.upper()
    try:
        if not _CURRENCY.fullmatch(currency):
            raise _Refuse(
                Reason.UNKNOWN_CURRENCY, "not a currency code (ISO 4217: three letters, USD)"
            )
        decimals = CURRENCY_DECIMALS.get(currency)
        if decimals is None and not in_minor_units:
            known = ", ".join(f"{c} {n}" for c, n in CURRENCY_DECIMALS.items())
            raise _Refuse(
                Reason.UNKNOWN_CURRENCY,
                f"decimals known for {known}; for {currency} give --minor-units amounts",
            )
        amount = _minor_units(amount_text, currency, None if in_minor_units else decimals)
        if amount == 0:
            raise _Refuse(Reason.INVALID_AMOUNT, "a zero amount")
        if amount > AMOUNT_MAX:
            raise _Refuse(
                Reason.LIMIT_EXCEEDED, f"above {AMOUNT_MAX} minor units, the exchange's limit"
            )
    except _Refuse as r:
        return Refused(f"{amount_text} {currency_text}", r.reason, r.text)
    return Cash(currency, amount, decimals)


# -- credits -------------------------------------------------------------------------------


def _stated(
    s: RegistrySerial, what: str, from_string: str | int | None, given: str | int | None, by: str
) -> str | int:
    """A project or vintage: the string's, which `given` (if any) must agree with, or where
    the string's format has none, `given`."""
    if from_string is not None and given is not None and given != from_string:
        raise _Refuse(
            Reason.INVALID_SERIAL_BLOCK,
            f"the string names {what} {from_string}, but {by} says {given}",
        )
    value = from_string if from_string is not None else given
    if value is None:
        raise _Refuse(
            Reason.INVALID_SERIAL_BLOCK, f"this {s.registry} string names no {what}: give {by}"
        )
    return value


def _credits(
    s: RegistrySerial,
    project: str | None,
    vintage: int | None,
    by: tuple[str, str],
    ref: str,
    where: str = "",
) -> Credits:
    project_id = str(_stated(s, "project", s.project, project, by[0]))
    if len(project_id) > STR_CHARS_MAX:
        raise _Refuse(Reason.UNKNOWN_PROJECT, f"no project id is longer than {STR_CHARS_MAX}")
    year = _stated(s, "vintage", s.vintage, vintage, by[1])
    assert isinstance(year, int)
    return Credits(s, project_id, year, ref, where)


def serial_item(arg: SerialArg, ref: str) -> Credits | Refused:
    """A `--serial`, its registry read off the string."""
    try:
        try:
            s = registry.parse_any(arg.text, arg.start, arg.end)
        except SerialFormatError as exc:
            raise _Refuse(Reason.INVALID_SERIAL_BLOCK, str(exc)) from None
        return _credits(s, arg.project, arg.vintage, ("--project", "--vintage"), ref)
    except _Refuse as r:
        return Refused(arg.text, r.reason, r.text)


def read_csv(path: Path) -> list[tuple[int, dict[str | None, str | list[str] | None]]]:
    """(line, row) of every row of a CSV file of data/serials.csv's shape; InputError if it
    cannot be read, lacks a column, or is past CSV_BYTES_MAX or ITEMS_MAX."""
    try:
        with path.open("rb") as f:
            data = f.read(CSV_BYTES_MAX + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > CSV_BYTES_MAX:
        raise InputError(f"{path}: larger than {CSV_BYTES_MAX} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str | None, str | list[str] | None]]] = []
    try:
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise InputError(
                f"{path}: no column {', '.join(missing)} (its header must name "
                f"{', '.join(CSV_COLUMNS)})"
            )
        for row in reader:
            if len(rows) == ITEMS_MAX:
                raise InputError(f"{path}: more than {ITEMS_MAX} rows")
            rows.append((reader.line_num, dict(row)))
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: {exc}") from None
    if not rows:
        raise InputError(f"{path}: no rows after the header")
    return rows


def _number(
    row: dict[str | None, str | list[str] | None], column: str, pattern: re.Pattern[str]
) -> int | None:
    value = row[column]
    assert isinstance(value, str)
    value = value.strip()
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise _Refuse(Reason.INVALID_SERIAL_BLOCK, f"{column} {value!r} is not a number")
    return int(value)


def csv_item(
    where: str, row: dict[str | None, str | list[str] | None], ref: str
) -> Credits | Refused:
    """One CSV row: read by its registry's rules, every column agreeing with the string."""
    text = row.get("serial_string")
    name = f"{where}: {text}" if isinstance(text, str) else where
    try:
        if None in row or any(v is None for v in row.values()):
            raise _Refuse(Reason.INVALID_SERIAL_BLOCK, "not as many fields as the header")
        assert isinstance(text, str)
        registry_name = str(row["registry"]).strip()
        if registry_name not in registry.REGISTRIES:
            raise _Refuse(
                Reason.UNKNOWN_REGISTRY,
                f"no serial rules for registry {registry_name!r} "
                f"(serials are read for {', '.join(registry.REGISTRIES)})",
            )
        project = str(row["project_id"]).strip()
        vintage = _number(row, "vintage", _YEAR)
        quantity = _number(row, "quantity", _SERIAL_NUMBER)
        if not project or vintage is None or quantity is None:
            raise _Refuse(
                Reason.INVALID_SERIAL_BLOCK, "project_id, vintage and quantity are needed"
            )
        if str(row["range_convention"]).strip() not in ("", "inclusive"):
            raise _Refuse(
                Reason.INVALID_SERIAL_BLOCK,
                f"range_convention {row['range_convention']!r}: registry serial strings are "
                "inclusive, and so must the row be",
            )
        start = _number(row, "block_start", _SERIAL_NUMBER)
        end = _number(row, "block_end", _SERIAL_NUMBER)
        try:
            s = registry.parse(registry_name, text, start, end)
        except SerialFormatError as exc:
            others = [r for r in registry.registries_of(text) if r != registry_name]
            hint = f" (it is written as a {others[0]} serial)" if others else ""
            raise _Refuse(Reason.INVALID_SERIAL_BLOCK, f"{exc}{hint}") from None
        if quantity != s.qty:
            raise _Refuse(
                Reason.INVALID_SERIAL_BLOCK,
                f"quantity {quantity}, but {s.first}..{s.last} is {s.qty} t",
            )
        by = ("the row's project_id", "the row's vintage")
        return _credits(s, project, vintage, by, ref, f"{where}: ")
    except _Refuse as r:
        return Refused(name, r.reason, r.text)


# -- the whole run -------------------------------------------------------------------------


def refuse_overlaps(items: Sequence[Cash | Credits | Refused]) -> list[Cash | Credits | Refused]:
    """`items`, with each block whose serials overlap an earlier item's (within the scope
    where its registry's numbers are unique) refused: the server would refuse it anyway."""
    out = list(items)
    spans = sorted(
        (x.serial.scope, x.serial.first, x.serial.last, i)
        for i, x in enumerate(items)
        if isinstance(x, Credits)
    )
    reach: tuple[str, int, int] | None = None  # (scope, last, item) reaching furthest so far
    for scope, first, last, i in spans:
        if reach is not None and reach[0] == scope and first <= reach[1]:
            earlier, later = sorted((i, reach[2]))
            out[later] = Refused(
                out[later].name,
                Reason.SERIALS_OVERLAP,
                f"its serials overlap those of {items[earlier].name}, in this same run",
            )
        if reach is None or reach[0] != scope or last > reach[1]:
            reach = (scope, last, i)
    return out


def plan(
    cash: Sequence[Sequence[str]],
    in_minor_units: bool,
    serials: Sequence[SerialArg],
    csv_path: str | None,
    ref: str = "",
) -> list[Cash | Credits | Refused]:
    """Every item of a run, in order (cash, serials, CSV rows), each checked; InputError for
    a CSV file that cannot be read or a run past ITEMS_MAX."""
    items: list[Cash | Credits | Refused] = [cash_item(c, a, in_minor_units) for c, a in cash]
    items += [serial_item(arg, ref) for arg in serials]
    if csv_path is not None:
        for line, row in read_csv(Path(csv_path)):
            items.append(csv_item(f"{csv_path} line {line}", row, ref))
    if len(items) > ITEMS_MAX:
        raise InputError(f"{len(items)} items: a run moves at most {ITEMS_MAX}")
    return refuse_overlaps(items)
