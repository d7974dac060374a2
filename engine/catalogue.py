"""Reference data from CSV text: projects (data/projects.csv) and registry serial blocks
(data/serials.csv). The one parser of both files, and pure: the caller reads the files and
passes the text (gateway/refdata.py does, for the files shipped in data/).

Whitespace is never part of a value: every cell, the header's included, is stripped at both
ends, and so is every part of a `;`-separated list (sdgs, labels), where empty parts are
dropped. A registry export with a stray space (`VCS1340 `, `CCB; CORSIA`) therefore gives the
same values as a clean one. A row with more or fewer cells than the header is refused with a
`ValueError` naming its line; lines of nothing but whitespace are skipped.

A registry block keeps the registry's numbering convention as stated in the data, never a
guess; `settlement` validates start, end and quantity against it when the block is deposited.
"""

from __future__ import annotations

import csv
import io

import msgspec

from engine.reference import Basis, Mitigation, Project


class RegistryBlock(msgspec.Struct, frozen=True, kw_only=True):
    """One row of serials.csv: a block of serials as the registry published it."""

    project: str
    registry: str
    vintage: int
    serial_string: str
    start: int
    end: int
    quantity: int
    convention: str  # "inclusive" or "half_open"


def _rows(text: str) -> list[dict[str, str]]:
    """The rows of a CSV text as header -> cell, every cell stripped."""
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise ValueError(
                f"line {reader.line_num}: {len(cells)} cells, the header has {len(header)}"
            )
        rows.append({name: cell.strip() for name, cell in zip(header, cells, strict=True)})
    return rows


def _parts(cell: str) -> list[str]:
    """The parts of a `;`-separated cell, stripped, empty ones dropped."""
    return [part for part in (p.strip() for p in cell.split(";")) if part]


def parse_projects(text: str) -> list[Project]:
    """Projects from the text of projects.csv, in file order."""
    return [
        Project(
            id=row["project_id"],
            registry=row["registry"],
            name=row["name"],
            country=row["country"],
            category=row["category"],
            project_type=row["project_type"],
            mitigation=Mitigation(row["mitigation"]) if row["mitigation"] else None,
            basis=Basis(row["basis"]) if row["basis"] else None,
            methodology=row["methodology"],
            sdgs=tuple(int(x) for x in _parts(row["sdgs"])),
            labels=tuple(_parts(row["labels"])),
        )
        for row in _rows(text)
    ]


def parse_serials(text: str) -> list[RegistryBlock]:
    """Serial blocks from the text of serials.csv, in file order."""
    return [
        RegistryBlock(
            project=row["project_id"],
            registry=row["registry"],
            vintage=int(row["vintage"]),
            serial_string=row["serial_string"],
            start=int(row["block_start"]),
            end=int(row["block_end"]),
            quantity=int(row["quantity"]),
            convention=row["range_convention"],
        )
        for row in _rows(text)
    ]
