"""Each registry's serial strings: parsed into identity and range, printed back, refused when
they do not parse (settlement/registry.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.refdata import load_serials
from settlement import registry
from settlement.registry import SerialFormatError, format_serial, parse

ROWS = load_serials()


@pytest.mark.parametrize("row", ROWS, ids=[r.serial_string for r in ROWS])
def test_every_real_serial_string_parses_into_the_rows_range_and_project(row):
    s = parse(row.registry, row.serial_string, row.start, row.end)
    assert (s.first, s.last, s.qty) == (row.start, row.end, row.quantity)
    if s.project is not None:  # the CDM rows carry the CDM project number, not the GS id
        assert s.project == row.project
    if s.vintage is not None:
        assert s.vintage == row.vintage
    assert s.scope == registry.scope_of(s.registry, s.batch)


@pytest.mark.parametrize("row", ROWS, ids=[r.serial_string for r in ROWS])
def test_every_real_block_prints_back_as_its_registry_wrote_it(row):
    s = parse(row.registry, row.serial_string, row.start, row.end)
    text = format_serial(s.registry, s.batch, s.first, s.last)
    if row.registry != "CERCARBONO":  # its export gives the range in columns of their own
        assert text == row.serial_string
    assert parse(row.registry, text) == s


def test_a_delivered_sub_range_prints_in_the_registrys_own_form():
    s = parse("ACR", "ACR-FR-1129-2025-2917-30932 to 35143")
    assert format_serial("ACR", s.batch, 30932, 30950) == "ACR-FR-1129-2025-2917-30932 to 30950"
    cdm = parse("GOLD_STANDARD", "RW-5-1459975-2-2-0-7014 - RW-5-1460107-2-2-0-7014")
    assert format_serial("GOLD_STANDARD", cdm.batch, 1460000, 1460001) == (
        "RW-5-1460000-2-2-0-7014 - RW-5-1460001-2-2-0-7014"
    )
    vcu = parse("VERRA", ROWS[0].serial_string)
    assert format_serial("VERRA", vcu.batch, 941467010, 941467011).startswith(
        "19385-941467010-941467011-VCS-VCU-1507-VER-ET-14-1340-"
    )


@pytest.mark.parametrize(
    "registry_, a, b",
    [
        (
            "CAR",
            "CAR-1-US-1335-31-983-KS-2025-9205-1 to 5000",
            "CAR-1-US-1335-31-983-KS-2025-9659-1 to 7275",
        ),
        (
            "CAR",
            "CAR-ROC-US-1098-125-102-CA-2024-8533-1 to 101728",
            "CAR-ROC-US-1098-125-102-CA-2024-8534-1 to 24230",
        ),
        ("ART", "FCPF-CI-130-2023-20-1 to 46404", "FCPF-CI-130-2023-21-1 to 63392"),
    ],
)
def test_batches_of_one_project_and_vintage_that_share_numbers_are_separate_scopes(registry_, a, b):
    sa, sb = parse(registry_, a), parse(registry_, b)
    assert (sa.project, sa.vintage) == (sb.project, sb.vintage)
    assert sa.first == sb.first == 1
    assert sa.scope != sb.scope


def test_verra_serials_share_one_scope_across_projects():
    verra = [parse(r.registry, r.serial_string) for r in ROWS if r.registry == "VERRA"]
    assert {s.scope for s in verra} == {"VERRA"}
    assert len({s.project for s in verra}) > 10


def test_cdm_units_are_scoped_to_their_originating_party():
    s = parse("GOLD_STANDARD", "RW-5-1463953-2-2-0-7014 - RW-5-1467609-2-2-0-7014")
    assert s.scope == "CDM:RW"


def test_a_cercarbono_batch_needs_its_range_and_parses_with_it():
    with pytest.raises(SerialFormatError, match="needs its range"):
        parse("CERCARBONO", "CDC_1_1_1_321_14_1_2009")
    s = parse("CERCARBONO", "CDC_1_1_1_321_14_1_2009", 2262, 4425)
    assert (s.project, s.vintage, s.qty) == ("CDC-1", 2009, 2164)


@pytest.mark.parametrize(
    "registry_, text, start, end, why",
    [
        ("NOPE", "ACR-FR-1129-2025-2917-1 to 2", None, None, "unknown registry"),
        ("ACR", "ACR-FR-1129-2025-2917-1 to", None, None, "not a ACR serial"),
        ("ACR", "CAR-1-US-1335-31-983-KS-2025-9205-1 to 5000", None, None, "not a ACR serial"),
        ("ACR", "ACR-FR-1129-2025-2917-9 to 2", None, None, "before its start"),
        ("ACR", "ACR-FR-1129-2025-2917-1 to 20", 1, 21, "stated as 1..21"),
        ("ACR", "ACR-FR-1129-2025-2917-1 to 1234567890123456", None, None, "not a ACR serial"),
        ("ACR", "ACR-FR-1129-2025-2917-1 to 2" + " " * 300, None, None, "longer than"),
        (
            "VERRA",
            "19385-941467007-941467431-VCS-VCU-1507-VER-ET-14-1340-0101202",
            None,
            None,
            "not a VERRA serial",
        ),
        ("GOLD_STANDARD", "RW-5-1-2-2-0-7014 - KE-5-9-2-2-0-7014", None, None, "not a GOLD"),
        # digits of another script are not serials (a look-alike identity otherwise)
        ("ACR", "ACR-FR-\u0661\u0661\u0662\u0669-2025-2917-3 to 5", None, None, "not a ACR"),
        ("ACR", "ACR-FR-1129-2025-2917-\u0663 to 5", None, None, "not a ACR serial"),
        # one spelling per number: a leading zero would make a second identity of a batch
        ("CAR", "CAR-1-US-1335-31-983-KS-2025-09205-1 to 5000", None, None, "not a CAR serial"),
        ("ACR", "ACR-FR-01129-2025-2917-1 to 5", None, None, "not a ACR serial"),
        ("ACR", "ACR-FR-1129-2025-2917-01 to 5", None, None, "not a ACR serial"),
    ],
)
def test_a_string_no_rule_accepts_is_refused_with_the_reason(registry_, text, start, end, why):
    with pytest.raises(SerialFormatError, match=why):
        parse(registry_, text, start, end)


def test_a_batch_no_rule_wrote_cannot_be_printed():
    with pytest.raises(SerialFormatError, match="not a CAR batch"):
        format_serial("CAR", "ACR-FR-1129-2025-2917-*", 1, 2)
    with pytest.raises(SerialFormatError, match="no serial range"):
        format_serial("ACR", "ACR-FR-1129-2025-2917-*", 5, 4)


@given(st.sampled_from(ROWS), st.data())
def test_any_sub_range_of_a_real_block_round_trips(row, data):
    s = parse(row.registry, row.serial_string, row.start, row.end)
    first = data.draw(st.integers(s.first, s.last))
    last = data.draw(st.integers(first, s.last))
    back = parse(s.registry, format_serial(s.registry, s.batch, first, last))
    assert (back.batch, back.scope, back.first, back.last) == (s.batch, s.scope, first, last)
    assert (back.project, back.vintage) == (s.project, s.vintage)


def test_every_rule_names_where_it_comes_from():
    assert all(rule.source for rule in registry.RULES)
    assert set(registry.REGISTRIES) >= {r.registry for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.serial_string)
def test_every_real_serial_string_names_its_own_registry(row):
    assert registry.registries_of(row.serial_string) == (row.registry,)
    s = registry.parse_any(row.serial_string, row.start, row.end)
    assert s == parse(row.registry, row.serial_string, row.start, row.end)


@pytest.mark.parametrize(
    "text, start, end, why",
    [
        ("ACR-FR-1129-2025-2917-1 to", None, None, "no registry's serial format"),
        ("941467007 to 941467431", None, None, "no registry's serial format"),
        ("CDC_1_1_1_321_14_1_2009", None, None, "needs its range"),
        ("ACR-FR-1129-2025-2917-9 to 2", None, None, "before its start"),
        ("ACR-FR-1129-2025-2917-1 to 2" + " " * 300, None, None, "longer than"),
    ],
)
def test_a_string_read_without_its_registry_is_refused_with_the_reason(text, start, end, why):
    with pytest.raises(SerialFormatError, match=why):
        registry.parse_any(text, start, end)
