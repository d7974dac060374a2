"""The one parser of data/projects.csv and data/serials.csv (engine/catalogue.py): what it
reads from the real files, what it does with stray whitespace, and that the gateway's loader
hands the files to it rather than parsing them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.catalogue import RegistryBlock, parse_projects, parse_serials
from engine.reference import Basis, Mitigation, Project
from gateway import refdata

DATA = Path(__file__).resolve().parent.parent / "data"
PROJECTS_CSV = (DATA / "projects.csv").read_text(encoding="utf-8")
SERIALS_CSV = (DATA / "serials.csv").read_text(encoding="utf-8")

PROJECTS_HEADER = (
    "project_id,registry,name,country,category,project_type,mitigation,basis,methodology,"
    "sdgs,labels,first_vintage,last_vintage,source\n"
)
SERIALS_HEADER = (
    "project_id,registry,vintage,serial_string,block_start,block_end,quantity,"
    "range_convention,source\n"
)
VCS1340_SERIAL = "19385-941467007-941467431-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1"


def _texts(value: Project | RegistryBlock) -> list[str]:
    """Every string a parsed value holds, the members of its tuples included."""
    out: list[str] = []
    for field in value.__struct_fields__:
        v = getattr(value, field)
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, tuple):
            out.extend(x for x in v if isinstance(x, str))
    return out


def test_the_real_files_give_71_projects_and_77_blocks_with_no_whitespace_in_any_value():
    projects = parse_projects(PROJECTS_CSV)
    blocks = parse_serials(SERIALS_CSV)
    assert len(projects) == 71 and len({p.id for p in projects}) == 71
    assert len(blocks) == 77
    for value in [*projects, *blocks]:
        assert all(s == s.strip() for s in _texts(value)), value
        if isinstance(value, Project):
            assert all(value.labels), value
    assert all(b.end - b.start + 1 == b.quantity for b in blocks)


def test_the_first_real_project_and_block_read_as_the_registry_published_them():
    (vcs1340,) = [p for p in parse_projects(PROJECTS_CSV) if p.id == "VCS1340"]
    assert vcs1340 == Project(
        id="VCS1340",
        registry="VERRA",
        name="Bale Mountains Eco-region REDD+ project",
        country="ET",
        category="Agriculture Forestry and Other Land Use",
        mitigation=Mitigation.AVOIDANCE,
        basis=Basis.NATURE,
        methodology="VM0015",
        labels=("CCB",),
    )
    assert parse_serials(SERIALS_CSV)[0] == RegistryBlock(
        project="VCS1340",
        registry="VERRA",
        vintage=2020,
        serial_string=VCS1340_SERIAL,
        start=941467007,
        end=941467431,
        quantity=425,
        convention="inclusive",
    )


def test_stray_whitespace_around_cells_and_list_parts_is_not_part_of_any_value():
    clean = (
        "GS1,GOLD_STANDARD,Cookstoves,KE,,Cookstoves,avoidance,tech,GS-TPDDTEC,"
        "3;13,CCP;CORSIA,,,x\n"
    )
    stray = (
        " GS1 , GOLD_STANDARD,Cookstoves ,KE,  ,Cookstoves, avoidance,tech ,GS-TPDDTEC,"
        '" 3; 13 ;", CCP ; CORSIA;  ,,, x\n'
    )
    (expected,) = parse_projects(PROJECTS_HEADER + clean)
    assert expected.sdgs == (3, 13) and expected.labels == ("CCP", "CORSIA")
    assert parse_projects(PROJECTS_HEADER + stray) == [expected]
    padded_header = " " + PROJECTS_HEADER.replace(",", " , ")
    assert parse_projects(padded_header + stray) == [expected]


def test_stray_whitespace_in_a_serial_row_is_not_part_of_its_values():
    clean = f"VCS1340,VERRA,2020,{VCS1340_SERIAL},941467007,941467431,425,inclusive,x\n"
    stray = f" VCS1340,VERRA , 2020,{VCS1340_SERIAL} , 941467007,941467431 ,425, inclusive ,x\n"
    assert parse_serials(SERIALS_HEADER + stray) == parse_serials(SERIALS_HEADER + clean)
    assert parse_serials(SERIALS_HEADER + clean) == parse_serials(SERIALS_CSV)[:1]


def test_blank_lines_are_skipped_and_a_row_of_the_wrong_width_is_refused_naming_its_line():
    row = f"VCS1340,VERRA,2020,{VCS1340_SERIAL},941467007,941467431,425,inclusive,x\n"
    assert len(parse_serials(SERIALS_HEADER + "\n" + row + "   \n" + row)) == 2
    with pytest.raises(ValueError, match="line 3: 8 cells, the header has 9"):
        parse_serials(SERIALS_HEADER + row + row.replace(",x\n", "\n"))


def test_the_gateway_loads_the_files_through_the_one_parser():
    assert refdata.load_projects() == {p.id: p for p in parse_projects(PROJECTS_CSV)}
    assert refdata.load_serials() == parse_serials(SERIALS_CSV)
    assert refdata.DATA_DIR == DATA


def test_the_gateway_loader_reads_a_folder_with_stray_whitespace_like_the_clean_one(tmp_path):
    (tmp_path / "projects.csv").write_text(
        PROJECTS_CSV.replace("VCS1340,VERRA,", "VCS1340 , VERRA,", 1), encoding="utf-8"
    )
    (tmp_path / "serials.csv").write_text(
        SERIALS_CSV.replace(",inclusive,", ", inclusive ,"), encoding="utf-8"
    )
    assert refdata.load_projects(tmp_path) == refdata.load_projects()
    assert refdata.load_serials(tmp_path) == refdata.load_serials()
