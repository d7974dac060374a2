"""Reference data shipped with tonne: real projects and registry serial blocks from `data/`.

The CSV files and their source note (data/README.md) are copied from public registry exports;
nothing in them is invented. This module is the I/O side (it reads files); everything it
returns is plain values the pure core accepts.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from engine.reference import Basis, Mitigation, Project

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class SerialRow:
    """One row of data/serials.csv: a registry serial block, exactly as the registry gave it."""

    __slots__ = (
        "project_id",
        "registry",
        "vintage",
        "serial_string",
        "start",
        "end",
        "quantity",
        "convention",
    )

    def __init__(self, row: dict[str, str]) -> None:
        self.project_id = row["project_id"]
        self.registry = row["registry"]
        self.vintage = int(row["vintage"])
        self.serial_string = row["serial_string"]
        self.start = int(row["block_start"])
        self.end = int(row["block_end"])
        self.quantity = int(row["quantity"])
        self.convention = row["range_convention"]


def _split(text: str) -> list[str]:
    return [part for part in text.split(";") if part]


def parse_projects(text: str) -> dict[str, Project]:
    """Projects by id from the text of projects.csv."""
    projects: dict[str, Project] = {}
    for row in csv.DictReader(io.StringIO(text)):
        projects[row["project_id"]] = Project(
            id=row["project_id"],
            registry=row["registry"],
            name=row["name"],
            country=row["country"],
            category=row["category"],
            project_type=row["project_type"],
            mitigation=Mitigation(row["mitigation"]) if row["mitigation"] else None,
            basis=Basis(row["basis"]) if row["basis"] else None,
            methodology=row["methodology"],
            sdgs=tuple(int(s) for s in _split(row["sdgs"])),
            labels=tuple(_split(row["labels"])),
        )
    return projects


def parse_serials(text: str) -> list[SerialRow]:
    return [SerialRow(row) for row in csv.DictReader(io.StringIO(text))]


def load_projects(data_dir: Path = DATA_DIR) -> dict[str, Project]:
    return parse_projects((data_dir / "projects.csv").read_text(encoding="utf-8"))


def load_serials(data_dir: Path = DATA_DIR) -> list[SerialRow]:
    return parse_serials((data_dir / "serials.csv").read_text(encoding="utf-8"))
