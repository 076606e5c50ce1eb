"""Spreadsheet intake without a ledger: the layout per type, cells by kind, templates, every error kept."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook

from ledger.domain.errors import InvalidInput
from ledger.domain.events import POSTABLE_EVENT_TYPES, CadreRegistered, MeritAwarded, type_of
from ledger.intake import (
    columns_of,
    read_csv,
    read_jsonl,
    read_xlsx,
    template,
    template_csv,
    write_xlsx_template,
)


def xlsx(rows: list[list[Any]], title: str = "Sheet") -> io.BytesIO:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    return buffer


def test_the_columns_are_the_client_fields_with_the_source_flattened() -> None:
    names = [column.name for column in columns_of("merit.awarded")]
    assert names == [
        "cadre_id",
        "effective_on",
        "award",
        "level",
        "deed",
        "document",
        "note",
        "source_system",
        "source_key",
        "points",
        "override_reason",
    ]
    evaluation = [column.name for column in columns_of("evaluation.recorded")]
    assert {"scores.self", "scores.section", "scores.leadership"} <= set(evaluation)
    assert "weighted_score" not in evaluation  # set by the ledger


def test_a_type_that_is_not_posted_has_no_layout() -> None:
    with pytest.raises(InvalidInput) as caught:
        columns_of("key.created")
    assert caught.value.rule == "event_type_not_postable"


@pytest.mark.parametrize("event_type", sorted(POSTABLE_EVENT_TYPES))
def test_every_template_reads_back_as_one_event_of_its_type(event_type: str) -> None:
    from_csv = read_csv(template_csv(event_type))
    buffer = io.BytesIO()
    write_xlsx_template(event_type, buffer)
    buffer.seek(0)
    from_xlsx = read_xlsx(buffer)
    for intake in (from_csv, from_xlsx):
        assert intake.errors == []
        assert [type_of(event) for event in intake.events] == [event_type]
    assert from_csv.events == from_xlsx.events


def test_xlsx_cells_are_read_by_the_kind_of_their_field() -> None:
    header, _ = template("cadre.registered")
    names = [column.name for column in header]
    values = {
        "type": "cadre.registered",
        "cadre_id": 1001,  # a personnel number typed as a number
        "unit_id": "U01",
        "effective_on": datetime(2024, 3, 1),  # Excel's date cells are datetimes at midnight
        "name": "李四",
        "grade": "一级科员",
        "leadership": True,
        "principal": "否",
        "service_started_on": "2012-07-01",
        "grade_since": date(2021, 1, 1),
        "document": None,
        "note": "  ",  # blank: absent
        "source_system": "hr",
        "source_key": "r-1",
    }
    intake = read_xlsx(xlsx([names, [values[name] for name in names]]))
    assert intake.errors == []
    (event,) = intake.events
    assert isinstance(event, CadreRegistered)
    assert (event.cadre_id, event.effective_on, event.principal, event.service_started_on, event.note) == (
        "1001",
        date(2024, 3, 1),
        False,
        date(2012, 7, 1),
        None,
    )


def test_override_points_are_read_from_numbers_and_text() -> None:
    header = ["type", "cadre_id", "effective_on", "award", "level", "source_system", "source_key"]
    header += ["points", "override_reason"]
    row = ["merit.awarded", "C1", date(2024, 3, 1), "citation", "county", "hr", "k1", 1.5, "复核调整"]
    intake = read_xlsx(xlsx([header, row, [*row[:6], "k2", "2.25", "复核调整"]]))
    assert intake.errors == []
    assert [event.points for event in intake.events] == [Decimal("1.5"), Decimal("2.25")]


def test_one_neutralising_quote_is_taken_off_only_before_a_formula_character() -> None:
    data = (
        b"type,cadre_id,effective_on,award,level,deed,note,source_system,source_key\n"
        b"merit.awarded,C1,2024-03-01,citation,county,'=HYPERLINK(1),'t Hooft,hr,k1\n"
    )
    (event,) = read_csv(data).events
    assert isinstance(event, MeritAwarded)
    assert (event.deed, event.note) == ("=HYPERLINK(1)", "'t Hooft")


def test_every_error_of_a_csv_is_kept_with_its_row_column_and_cell() -> None:
    data = (
        b"type,cadre_id,effective_on,award,level,source_system,source_key,colour,colour\n"
        b"merit.awarded,C1,2024-03-01,citation,county,hr,k1,,\n"
        b"merit.awarded,C1 ,2024-13-01,citation,,hr,k2,,\n"
        b",C1,2024-03-01,citation,county,hr,k3,,\n"
    )
    intake = read_csv(data)
    assert len(intake.events) == 1
    found = [(error.row, error.column, error.cell, error.rule) for error in intake.errors]
    assert found == [
        (1, "colour", "H1", "column_unknown"),
        (1, "colour", "I1", "column_unknown"),
        (3, "effective_on", "C3", "field_invalid"),
        (3, "level", "E3", "field_invalid"),
        (4, "type", "A4", "field_invalid"),
    ]


def test_a_name_with_a_trailing_space_is_refused_naming_its_cell() -> None:
    data = "type,cadre_id,effective_on,award,level,source_system,source_key\n"
    data += "merit.awarded,C1 ,2024-03-01,citation,county,hr,k1\n"
    (error,) = read_csv(data.encode()).errors
    assert (error.row, error.column, error.cell, error.rule) == (2, "cadre_id", "B2", "field_invalid")


def test_a_sheet_named_after_its_type_needs_no_type_column() -> None:
    header = ["cadre_id", "effective_on", "award", "level", "source_system", "source_key"]
    intake = read_xlsx(
        xlsx([header, ["C1", date(2024, 3, 1), "citation", "county", "hr", "k1"]], "merit.awarded")
    )
    assert intake.errors == [] and [type_of(event) for event in intake.events] == ["merit.awarded"]
    assert intake.where(0) == "sheet merit.awarded row 2"


def test_a_csv_that_is_not_utf8_is_refused_with_advice() -> None:
    data = b"type,name\n" + "李四".encode("gbk")
    with pytest.raises(InvalidInput) as caught:
        read_csv(data)
    assert caught.value.rule == "text_must_be_utf8" and "CSV UTF-8" in caught.value.message


def test_a_file_that_is_not_a_workbook_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        read_xlsx(io.BytesIO(b"type,cadre_id\n"))
    assert caught.value.rule == "spreadsheet_unreadable"


def test_every_bad_line_of_jsonl_is_kept_by_its_line_number() -> None:
    good = (
        b'{"type":"merit.awarded","cadre_id":"C1","effective_on":"2024-03-01",'
        b'"source":{"system":"hr","key":"k1"},"award":"citation","level":"county"}'
    )
    intake = read_jsonl([good + b"\n", b"\n", b"{not json\n", good.replace(b"county", b"planet") + b"\n"])
    assert len(intake.events) == 1
    assert [(error.row, error.rule) for error in intake.errors] == [
        (3, "json_malformed"),
        (4, "field_invalid"),
    ]


def test_a_quote_inside_the_text_is_kept() -> None:
    # Only a quote that opens the cell is our exports' neutralising prefix.
    data = (
        b"type,cadre_id,effective_on,award,level,deed,note,source_system,source_key\n"
        b"merit.awarded,C1,2024-03-01,citation,county,Rock'-n'-roll night,O'=1,hr,k1\n"
    )
    (event,) = read_csv(data).events
    assert isinstance(event, MeritAwarded)
    assert (event.deed, event.note) == ("Rock'-n'-roll night", "O'=1")


def test_a_hidden_sheet_with_rows_is_refused_and_an_empty_one_ignored() -> None:
    header = ["type", "cadre_id", "effective_on", "award", "level", "source_system", "source_key"]
    workbook = Workbook()
    shown = workbook.active
    assert shown is not None
    shown.title = "merits"
    for row in [header, ["merit.awarded", "C1", date(2024, 3, 1), "citation", "county", "hr", "k1"]]:
        shown.append(row)
    old = workbook.create_sheet("old")
    for row in [header, ["merit.awarded", "C2", date(2024, 3, 1), "citation", "county", "hr", "k2"]]:
        old.append(row)
    old.sheet_state = "hidden"
    workbook.create_sheet("notes").sheet_state = "veryHidden"
    stream = io.BytesIO()
    workbook.save(stream)
    stream.seek(0)
    intake = read_xlsx(stream)
    assert [(error.sheet, error.rule) for error in intake.errors] == [("old", "sheet_hidden")]
    assert [getattr(event, "cadre_id", None) for event in intake.events] == ["C1"]


def test_cells_padded_after_the_last_value_are_not_read() -> None:
    # openpyxl pads every row to the sheet's widest: a stray value far right must not be found in the
    # rows that end earlier, only where it is.
    header = ["type", "cadre_id", "effective_on", "award", "level", "source_system", "source_key"]
    row = ["merit.awarded", "C1", date(2024, 3, 1), "citation", "county", "hr", "k1"]
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    sheet.append(row)
    sheet.append([*row[:-1], "k2"])
    sheet.cell(row=3, column=200, value="stray")
    stream = io.BytesIO()
    workbook.save(stream)
    stream.seek(0)
    intake = read_xlsx(stream)
    assert [(error.row, error.cell, error.rule) for error in intake.errors] == [(3, "GR3", "column_unknown")]
    assert len(intake.events) == 1


def test_headers_are_read_whatever_their_case_and_a_column_twice_in_two_cases_is_one_duplicated() -> None:
    data = (
        b"Type,Cadre_ID,EFFECTIVE_ON,Award,Level,Source_System,Source_Key,cadre_id\n"
        b"merit.awarded,C1,2024-03-01,citation,county,hr,k1,C1\n"
    )
    intake = read_csv(data)
    assert [(error.cell, error.rule) for error in intake.errors] == [("H1", "column_duplicated")]
    (event,) = intake.events
    assert isinstance(event, MeritAwarded) and event.cadre_id == "C1"


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_is_read(separator: str) -> None:
    rows = [
        ["type", "cadre_id", "effective_on", "award", "level", "deed", "source_system", "source_key"],
        ["merit.awarded", "C1", "2024-03-01", "citation", "county", "救灾, 抢险", "hr", "k1"],
    ]
    data = "\n".join(separator.join(row) for row in rows).encode()
    intake = read_csv(data)
    assert intake.errors == []
    (event,) = intake.events
    assert isinstance(event, MeritAwarded) and event.deed == "救灾, 抢险"
