"""Builders for the tests: a `Core` over the reference catalogue, the deposit of a registry
block, the project-specific series of a project. (Test support, not part of the product:
it lived in settlement/ before, and moved out so that the production package holds none.)

Pass the CSV *text* of data/projects.csv and data/serials.csv (the caller reads the files).
"""

from __future__ import annotations

from engine.catalogue import RegistryBlock, parse_projects, parse_serials
from engine.reference import STANDARD_OF_REGISTRY, Mitigation, Project, Series, series_id
from settlement import registry
from settlement.commands import DepositCredits, OpenAccount
from settlement.core import AnyEvent, Core
from settlement.serials import RangeConvention


def project_series(project: Project, vintage: int, **params: object) -> Series:
    """The project-specific series of one project and vintage."""
    standard = STANDARD_OF_REGISTRY.get(project.registry, project.registry)
    return Series(
        id=series_id(standard, vintage, project=project.id),
        standard=standard,
        mitigation=project.mitigation or Mitigation.AVOIDANCE,
        vintage=vintage,
        project=project.id,
        **params,  # type: ignore[arg-type]
    )


def deposit_block(
    account: int, block: RegistryBlock, ts: int = 0, ref: str = "", *, batch: bool = False
) -> DepositCredits:
    """The deposit of a whole registry block; with `batch`, under the registry batch its
    serial string names (settlement/registry.py), else batch-less (project and vintage)."""
    return DepositCredits(
        account=account,
        project=block.project,
        vintage=block.vintage,
        start=block.start,
        end=block.end,
        quantity=block.quantity,
        convention=RangeConvention(block.convention),
        ref=ref or block.serial_string,
        ts=ts,
        batch=batch_of(block) if batch else "",
    )


def batch_of(block: RegistryBlock) -> str:
    """The registry batch a block's serial string names."""
    return registry.parse(block.registry, block.serial_string, block.start, block.end).batch


def catalogue_core(
    projects_csv: str,
    serials_csv: str,
    accounts: tuple[int, ...] = (1, 2, 3),
    **config: int,
) -> tuple[Core, list[RegistryBlock]]:
    """A core listing every catalogue project and a series per project and vintage that has
    serial blocks (USD, tick 1), with `accounts` opened; returns the blocks too."""
    projects = parse_projects(projects_csv)
    blocks = parse_serials(serials_csv)
    by_id = {p.id: p for p in projects}
    series = {}
    for b in blocks:
        s = project_series(by_id[b.project], b.vintage)
        series[s.id] = s
    core = Core(series.values(), projects, **config)  # type: ignore[arg-type]
    for a in accounts:
        events: list[AnyEvent] = core.apply(OpenAccount(account=a))
        assert events, "account opened"
    return core, blocks
