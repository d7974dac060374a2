"""Reference data shipped with tonne: real projects and registry serial blocks from `data/`.

The CSV files and their source note (data/README.md) are copied from public registry exports;
nothing in them is invented. This module is the I/O side: it reads the files and hands their
text to the one parser, `engine.catalogue`, so every reader of the catalogue gets the same
values (whitespace included: see that module).
"""

from __future__ import annotations

from pathlib import Path

from engine.catalogue import RegistryBlock, parse_projects, parse_serials
from engine.reference import Project

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def load_projects(data_dir: Path = DATA_DIR) -> dict[str, Project]:
    """The projects of `data_dir`/projects.csv by id."""
    text = (data_dir / "projects.csv").read_text(encoding="utf-8")
    return {project.id: project for project in parse_projects(text)}


def load_serials(data_dir: Path = DATA_DIR) -> list[RegistryBlock]:
    """The serial blocks of `data_dir`/serials.csv, in file order."""
    return parse_serials((data_dir / "serials.csv").read_text(encoding="utf-8"))
