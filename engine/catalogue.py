"""Reference data from CSV text: projects (data/projects.csv) and registry serial blocks
(data/serials.csv). Pure parsers: the caller reads the files and passes the text.

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
    return list(csv.DictReader(io.StringIO(text)))


def parse_projects(text: str) -> list[Project]:
    """Projects from the text of projects.csv, in file order."""
    out = []
    for row in _rows(text):
        sdgs = tuple(int(x) for x in row["sdgs"].split(";") if x.strip())
        labels = tuple(x.strip() for x in row["labels"].split(";") if x.strip())
        out.append(
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
                sdgs=sdgs,
                labels=labels,
            )
        )
    return out


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
