"""The tabular model and its writers, without a ledger: tables that fit a width without splitting an id or
a number, CSV and XLSX that a spreadsheet cannot turn into formulas, typed XLSX cells read back with
openpyxl. Every expected value is written out by hand."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from rich.console import Console

from ledger.sheets import (
    Column,
    Kind,
    Lang,
    Sheet,
    UnknownColumns,
    choose,
    csv_bytes,
    fit,
    infer_columns,
    neutralised,
    rich_table,
    sheet_name,
    xlsx_bytes,
)

HOSTILE = '=HYPERLINK("http://x","y")'

RANKING = (
    Column("rank", Kind.int, "名次"),
    Column("cadre_id", Kind.text, "干部编号"),
    Column("name", Kind.text, "姓名", wrap=True),
    Column("unit_id", Kind.text, "单位"),
    Column("total", Kind.points, "积分"),
    Column("merit", Kind.points, "实绩加分", essential=False),
    Column("deductions", Kind.points, "问责扣分", essential=False),
    Column("previous_rank", Kind.int, "上期名次", essential=False),
    Column("movement", Kind.text, "名次变化"),
)


def ranking(rows: int = 12) -> Sheet:
    names = ["欧阳建国", "王敏", HOSTILE, "司马相如长卿", "李洋"]
    movements = ["+1", "-2", "=", "new", "+10"]
    return Sheet(
        "rankings",
        "all as of 2024-06-30, known at 17, by total",
        RANKING,
        [
            [
                n + 1,
                f"C00{17 + n}",
                names[n % len(names)],
                "U1",
                Decimal("123.50") - n,
                Decimal("12.25"),
                Decimal("-3.00"),
                n + 2,
                movements[n % len(movements)],
            ]
            for n in range(rows)
        ],
        "全部 排名：截至 2024-06-30",
    )


def essential(sheet: Sheet) -> Sheet:
    return sheet.only(choose(sheet.columns, None, essential_only=True))


def rendered(sheet: Sheet, width: int, lang: Lang = Lang.en) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(rich_table(sheet, lang, width), soft_wrap=False)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 100, 150])
@pytest.mark.parametrize("wide", [False, True])
def test_a_table_fits_its_width_and_never_splits_an_id_or_a_number(width: int, wide: bool) -> None:
    lines = rendered(ranking() if wide else essential(ranking()), width)
    assert all(len(line) <= width for line in lines), max(len(line) for line in lines)
    text = "\n".join(lines)
    for n in range(12):
        assert f"C00{17 + n}" in text  # each id whole on one line
        assert f"{Decimal('123.50') - n}" in text
    assert "欧阳建国" in text and "司马相如长卿" in text  # short Chinese names are not folded


def test_every_column_at_100_hides_what_cannot_fit_and_says_so() -> None:
    """All nine columns need 87 + 9 × 3 + 1 = 115 cells; the wrapping name and the breakable headers give
    10, so the rightmost non-essential column, previous_rank, is hidden."""
    lines = rendered(ranking(), 100)
    assert "deductions" in "\n".join(lines[1:5]) and "previous_" not in "\n".join(lines[1:5])
    assert lines[-1].startswith("hidden to fit 100 columns: previous_rank")


def test_at_100_columns_every_essential_column_is_shown() -> None:
    header = "\n".join(rendered(essential(ranking()), 100)[1:4])
    for name in ("rank", "cadre_id", "name", "unit_id", "total", "movement"):
        assert name in header
    assert "merit" not in header, "not essential, not asked for"


def test_numbers_are_right_aligned_and_text_left_aligned() -> None:
    sheet = Sheet(
        "s",
        "t",
        (Column("id"), Column("points", Kind.points)),
        [["C1", Decimal("5.00")], ["C22", Decimal("123.50")]],
    )
    lines = rendered(sheet, 80)
    assert "│ C1  │   5.00 │" in lines
    assert "│ C22 │ 123.50 │" in lines


def test_columns_that_cannot_fit_are_hidden_from_the_right_the_non_essential_first() -> None:
    columns = (
        Column("a" * 20),
        Column("b" * 20, essential=False),
        Column("c" * 20),
        Column("d" * 20),
    )
    sheet = Sheet("s", "t", columns, [["x", "y", "z", "w"]])
    # Four columns need 4 × 20 + 4 × 3 + 1 = 93 cells; three need 70.
    fitted = fit(sheet, Lang.en, 80)
    assert fitted.shown == (0, 2, 3) and fitted.hidden == (1,)
    fitted = fit(sheet, Lang.en, 60)  # two need 47
    assert fitted.shown == (0, 2) and fitted.hidden == (1, 3)
    lines = rendered(sheet, 60)
    assert any("hidden to fit 60 columns: " in line for line in lines)
    assert "bbbbbbbbbbbbbbbbbbbb, dddddddddddddddddddd" in " ".join(lines)


def test_a_wrapping_column_gives_way_first_and_keeps_its_words() -> None:
    sheet = Sheet(
        "s",
        "t",
        (Column("cadre_id"), Column("detail", wrap=True)),
        [["C0017", "2.75 counted years in 四级主任科员 since 2024-02-06, 2.00 required"]],
    )
    fitted = fit(sheet, Lang.en, 40)
    # 40 - 2 × 3 - 1 = 33 cells for both: the id's header breaks first ("cadre_" / "id", 6 cells), then
    # the detail wraps in the other 27.
    assert fitted.widths == (6, 27)
    text = "\n".join(rendered(sheet, 40))
    assert "2024-02-06," in text and "C0017" in text


def test_a_long_header_of_a_number_column_breaks_at_its_underscore() -> None:
    sheet = Sheet("s", "t", (Column("running_total", Kind.points),), [[Decimal("5.00")]])
    fitted = fit(sheet, Lang.en, 12)  # room for 12 - 3 - 1 = 8 cells: "running_" and "total"
    assert fitted.widths == (8,)
    assert [line.strip("┃│ ") for line in rendered(sheet, 12)[2:4]] == ["running_", "total"]


def test_chinese_headers_and_titles_with_lang_zh() -> None:
    lines = rendered(essential(ranking()), 100, Lang.zh)
    assert lines[0].startswith("全部 排名：截至 2024-06-30")
    assert "名次" in lines[2] and "干部编号" in lines[2] and "名次变化" in lines[2]


def test_a_cell_that_looks_like_markup_is_printed_as_it_is() -> None:
    sheet = Sheet("s", "t", (Column("name"),), [["[bold]王[/bold]"]])
    assert any("[bold]王[/bold]" in line for line in rendered(sheet, 80))


# Choosing columns


def test_choose_takes_the_named_columns_in_their_order() -> None:
    assert choose(RANKING, ["movement", "cadre_id"], essential_only=True) == [8, 1]
    assert choose(RANKING, None, essential_only=True) == [0, 1, 2, 3, 4, 8]
    assert choose(RANKING, None, essential_only=False) == list(range(9))


def test_choose_names_the_valid_columns_when_one_is_unknown() -> None:
    with pytest.raises(UnknownColumns) as raised:
        choose(RANKING, ["rank", "nme"], essential_only=True)
    assert raised.value.unknown == ("nme",)
    assert "rank, cadre_id, name, unit_id, total, merit, deductions, previous_rank, movement" in str(
        raised.value
    )


def test_bare_names_get_their_kinds_from_the_values() -> None:
    columns = infer_columns(
        ["event_id", "position", "points", "replayed", "on", "at"],
        [["0190…", 3, Decimal("-3.00"), False, date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)]],
    )
    assert [column.kind for column in columns] == [
        Kind.text,
        Kind.int,
        Kind.points,
        Kind.text,
        Kind.date,
        Kind.instant,
    ]


# CSV


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("new", "new"),
        ("王敏", "王敏"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_leading_text_is_prefixed_with_a_quote(text: str, expected: str) -> None:
    assert neutralised(text) == expected


def test_csv_neutralises_text_and_keeps_numbers_numbers() -> None:
    lines = csv_bytes(ranking(3), Lang.en, excel=False).decode("utf-8").split("\n")
    assert lines[0] == "rank,cadre_id,name,unit_id,total,merit,deductions,previous_rank,movement"
    assert lines[1] == "1,C0017,欧阳建国,U1,123.50,12.25,-3.00,2,'+1"
    assert lines[2] == "2,C0018,王敏,U1,122.50,12.25,-3.00,3,'-2"
    assert lines[3] == """3,C0019,"'=HYPERLINK(""http://x"",""y"")",U1,121.50,12.25,-3.00,4,'="""
    assert lines[4] == ""


def test_excel_csv_has_a_byte_order_mark_and_crlf() -> None:
    data = csv_bytes(ranking(2), Lang.zh, excel=True)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 3 and data.count(b"\n") == 3
    assert (
        data.decode("utf-8-sig").split("\r\n")[0]
        == "名次,干部编号,姓名,单位,积分,实绩加分,问责扣分,上期名次,名次变化"
    )


def test_csv_writes_days_iso_instants_rfc3339_utc_and_none_empty() -> None:
    sheet = Sheet(
        "s",
        "t",
        (Column("on", Kind.date), Column("at", Kind.instant), Column("rank", Kind.int)),
        [[date(2024, 1, 2), datetime(2024, 1, 2, 8, 30, tzinfo=timezone(timedelta(hours=8))), None]],
    )
    assert csv_bytes(sheet, Lang.en, excel=False) == b"on,at,rank\n2024-01-02,2024-01-02T00:30:00Z,\n"


# XLSX


def read_back(data: bytes):  # type: ignore[no-untyped-def]
    return load_workbook(io.BytesIO(data))


def test_xlsx_has_a_title_row_a_frozen_header_and_typed_cells() -> None:
    workbook = read_back(xlsx_bytes([ranking(3)], Lang.en))
    sheet = workbook["rankings"]
    assert sheet["A1"].value == "all as of 2024-06-30, known at 17, by total"
    assert workbook.properties.title == "all as of 2024-06-30, known at 17, by total"
    assert [cell.value for cell in sheet[2]] == [
        "rank",
        "cadre_id",
        "name",
        "unit_id",
        "total",
        "merit",
        "deductions",
        "previous_rank",
        "movement",
    ]
    assert sheet.freeze_panes == "A3"
    assert sheet.auto_filter.ref == "A2:I5"
    rank, cadre, _, _, total, _, deductions, _, movement = sheet[3]
    assert (rank.value, rank.data_type) == (1, "n")
    assert (cadre.value, cadre.data_type) == ("C0017", "s")
    assert (total.value, total.data_type, total.number_format) == (123.5, "n", "0.00")
    assert (deductions.value, deductions.number_format) == (-3, "0.00")
    assert (movement.value, movement.data_type) == ("+1", "s")
    assert [sheet.cell(row=r, column=9).value for r in (4, 5)] == ["-2", "="]
    assert sheet.column_dimensions["B"].width >= len("cadre_id")


def test_xlsx_text_is_never_a_formula() -> None:
    data = xlsx_bytes([ranking(3)], Lang.en)
    cell = read_back(data)["rankings"]["C5"]
    assert (cell.value, cell.data_type, cell.quotePrefix) == (HOSTILE, "s", True)
    movement = read_back(data)["rankings"]["I5"]
    assert (movement.value, movement.data_type, movement.quotePrefix) == ("=", "s", True)
    xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in xml and b"<f " not in xml


def test_xlsx_days_are_dates_and_instants_text() -> None:
    sheet = Sheet(
        "s",
        "t",
        (Column("on", Kind.date), Column("at", Kind.instant)),
        [[date(2024, 1, 2), datetime(2024, 1, 2, 0, 30, tzinfo=UTC)]],
    )
    on, at = read_back(xlsx_bytes([sheet], Lang.en))["s"][3]
    assert (on.value, on.data_type, on.number_format) == (datetime(2024, 1, 2), "d", "yyyy-mm-dd")
    assert (at.value, at.data_type) == ("2024-01-02T00:30:00Z", "s")


def test_xlsx_headers_and_title_in_chinese() -> None:
    sheet = read_back(xlsx_bytes([ranking(1)], Lang.zh))["rankings"]
    assert sheet["A1"].value == "全部 排名：截至 2024-06-30"
    assert [cell.value for cell in sheet[2]][:3] == ["名次", "干部编号", "姓名"]


def test_sheet_names_are_what_excel_accepts() -> None:
    assert sheet_name("history C1/2024:[x]") == "history C1_2024__x_"
    assert sheet_name("rankings of unit:U002 as of 2024-06-30") == "rankings of unit_U002 as of 202"
    assert len(sheet_name("x" * 40)) == 31
    two = read_back(xlsx_bytes([Sheet("x" * 40, "a", (), []), Sheet("x" * 40, "b", (), [])], Lang.en))
    assert two.sheetnames == ["x" * 31, "x" * 29 + " 2"]


def test_xlsx_replaces_characters_xml_cannot_carry() -> None:
    sheet = Sheet("s", "t", (Column("name"),), [["a\x07b"]])
    assert read_back(xlsx_bytes([sheet], Lang.en))["s"]["A3"].value == "a\ufffdb"
