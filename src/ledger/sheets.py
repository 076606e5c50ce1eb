"""Tables of rows, written three ways for people: a rich table that fits the terminal, CSV and XLSX.

A `Sheet` is a title, typed columns and rows of plain values. The column's `kind` decides how a value is
written: `int` and `points` are numbers (right-aligned in a table; numbers in a spreadsheet, points with
two decimals), `date` a day (a date cell in XLSX), `instant` an RFC 3339 UTC text, `text` everything else.
Text is the only kind a spreadsheet could mistake for a formula, so it is the only kind neutralised
(OWASP's CSV-injection rule): a points column's `-3.00` stays a number, a name `=HYPERLINK(…)` does not
become a link.

A table never splits an id or a number across lines: only columns marked `wrap` (names, details, labels)
wrap, and only at their words where they can. When the chosen columns cannot fit the width at all, the
rightmost are hidden — the non-essential first — and the caption says which.

This module knows nothing of the ledger: the CLI builds the sheets, and chooses the columns.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell, MergedCell
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "Column",
    "Kind",
    "Lang",
    "Sheet",
    "UnknownColumns",
    "choose",
    "csv_bytes",
    "fit",
    "infer_columns",
    "neutralised",
    "rich_table",
    "sheet_name",
    "xlsx_bytes",
]

# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection"): `=`, `+`, `-`, `@`, and
# tab and carriage return, which some import dialogs strip before looking at the next character.
FORMULA_LEADING: Final = frozenset("=+-@\t\r")
BOM: Final = "\ufeff"
SHEET_NAME_LENGTH_MAX: Final = 31  # Excel refuses longer sheet names
SHEET_NAME_FORBIDDEN: Final = re.compile(r"[\[\]:*?/\\]")
# A wrapping column keeps at least this many cells (four Chinese characters) unless its text is narrower:
# below it a Chinese name falls apart one character per line.
WRAP_WIDTH_MIN: Final = 8
# A wrapping column needs its longest word, but no more than this: a longer word (a URL) folds.
WORD_WIDTH_MAX: Final = 24
# Rich's default box with padding (0, 1): each column costs its padding and a rule, plus the left edge.
TABLE_COLUMN_OVERHEAD: Final = 3
TABLE_EDGE_OVERHEAD: Final = 1
XLSX_WIDTH_MIN: Final = 6
XLSX_WIDTH_MAX: Final = 60
XLSX_POINTS_FORMAT: Final = "0.00"
XLSX_DATE_FORMAT: Final = "yyyy-mm-dd"
# Characters XML 1.0 cannot carry, so XLSX cannot (openpyxl's ILLEGAL_CHARACTERS_RE).
XLSX_ILLEGAL: Final = re.compile(r"[\000-\010\013\014\016-\037]")


class Kind(StrEnum):
    text = "text"
    int = "int"
    points = "points"
    date = "date"
    instant = "instant"


NUMERIC_KINDS: Final = frozenset({Kind.int, Kind.points})


class Lang(StrEnum):
    en = "en"
    zh = "zh"


@dataclass(frozen=True)
class Column:
    """A column: its `name` (the English header, the CSV header and what `--columns` takes), how its
    values are written, its Chinese header, whether a table shows it by default, and whether its text may
    wrap (free text only; ids and numbers never do)."""

    name: str
    kind: Kind = Kind.text
    zh: str = ""
    essential: bool = True
    wrap: bool = False

    def header(self, lang: Lang) -> str:
        return self.zh if lang is Lang.zh and self.zh else self.name


@dataclass(frozen=True)
class Sheet:
    """A titled table of rows; `name` names the XLSX worksheet (see `sheet_name`)."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Sequence[object]]
    title_zh: str = ""

    def title_in(self, lang: Lang) -> str:
        return self.title_zh if lang is Lang.zh and self.title_zh else self.title

    def only(self, indices: Sequence[int]) -> Sheet:
        """The sheet with the columns at `indices`, in that order."""
        return replace(
            self,
            columns=tuple(self.columns[i] for i in indices),
            rows=[[row[i] for i in indices] for row in self.rows],
        )


class UnknownColumns(ValueError):
    """Raised when `--columns` names a column the sheet does not have."""

    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        self.valid = tuple(valid)
        super().__init__(f"unknown column {', '.join(unknown)}; the columns are {', '.join(valid)}")


def choose(columns: Sequence[Column], names: Sequence[str] | None, *, essential_only: bool) -> list[int]:
    """The indices of the columns to show: those named (in the order named), else the essential ones or
    all. Raises `UnknownColumns` naming the valid names."""
    if names is None:
        return [i for i, column in enumerate(columns) if column.essential or not essential_only]
    index = {column.name: i for i, column in enumerate(columns)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise UnknownColumns(unknown, [column.name for column in columns])
    return list(dict.fromkeys(index[name] for name in names))


def infer_columns(names: Sequence[str], rows: Sequence[Sequence[object]]) -> tuple[Column, ...]:
    """Columns for bare names, their kinds read off the first row's values (a points column stays a number,
    so a deduction's `-3.00` is not neutralised as text)."""
    first = rows[0] if rows else [None] * len(names)
    return tuple(Column(name, _kind_of(value)) for name, value in zip(names, first, strict=True))


def _kind_of(value: object) -> Kind:
    if isinstance(value, bool):  # bool is an int to Python, not to a reader
        return Kind.text
    if isinstance(value, int):
        return Kind.int
    if isinstance(value, Decimal):
        return Kind.points
    if isinstance(value, datetime):
        return Kind.instant
    if isinstance(value, date):
        return Kind.date
    return Kind.text


def neutralised(text: str) -> str:
    """`text`, with a leading `'` if a spreadsheet would read it as a formula (OWASP's rule)."""
    return f"'{text}" if text[:1] in FORMULA_LEADING else text


def _plain(value: object, kind: Kind) -> str:
    """The value as text: None is empty, an instant is RFC 3339 in UTC, a day is ISO 8601."""
    if value is None:
        return ""
    if kind is Kind.instant and isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# CSV


def csv_bytes(sheet: Sheet, lang: Lang, *, excel: bool) -> bytes:
    """The sheet as CSV: a header, then the rows; text cells neutralised. `excel`: with a byte order mark
    and CRLF, the form Excel opens as UTF-8 (without the mark, Chinese Excel assumes GBK)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if excel else "\n")
    writer.writerow([column.header(lang) for column in sheet.columns])
    for row in sheet.rows:
        writer.writerow(
            [_csv_cell(value, column.kind) for value, column in zip(row, sheet.columns, strict=True)]
        )
    return ((BOM if excel else "") + buffer.getvalue()).encode("utf-8")


def _csv_cell(value: object, kind: Kind) -> str:
    text = _plain(value, kind)
    # A number is written as the number it is; only text could carry a formula.
    return text if kind in NUMERIC_KINDS and not isinstance(value, str) else neutralised(text)


# Tables


@dataclass(frozen=True)
class Fit:
    """The width of each shown column, and the columns hidden because the table could not fit."""

    shown: tuple[int, ...]
    widths: tuple[int, ...]
    hidden: tuple[int, ...]


def fit(sheet: Sheet, lang: Lang, width: int) -> Fit:
    """Column widths for a table at most `width` cells wide.

    Each column starts at its natural width (its widest cell or header). Too wide, the headers break at `_`
    first (a second header line costs one line, a wrapped cell one per row), then the wrapping columns give
    way, widest first, down to their longest word; still too wide, columns are hidden from the right, the
    non-essential first. An id, a number or a date is never narrower than its widest value."""
    count = len(sheet.columns)
    headers = [column.header(lang) for column in sheet.columns]
    cells = [[_plain(row[i], sheet.columns[i].kind) for row in sheet.rows] for i in range(count)]
    widest = [max((cell_len(text) for text in cells[i]), default=0) for i in range(count)]
    header_minimum = [
        max((cell_len(part) for part in _header_parts(header)), default=0) for header in headers
    ]
    natural = [max(cell_len(headers[i]), widest[i]) for i in range(count)]
    unwrapped = [max(header_minimum[i], widest[i]) for i in range(count)]
    minimum = [
        max(header_minimum[i], _wrap_minimum(cells[i], widest[i])) if sheet.columns[i].wrap else unwrapped[i]
        for i in range(count)
    ]
    shown = list(range(count))
    hidden: list[int] = []
    while True:
        widths = _squeeze(
            [natural[i] for i in shown],
            [[unwrapped[i] for i in shown], [minimum[i] for i in shown]],
            width - _overhead(len(shown)),
        )
        if widths is not None or len(shown) == 1:
            break
        optional = [i for i in shown if not sheet.columns[i].essential]
        dropped = optional[-1] if optional else shown[-1]
        shown.remove(dropped)
        hidden.insert(0, dropped)
    if widths is None:  # one column wider than the terminal: let the terminal cut it
        widths = [minimum[shown[0]]]
    return Fit(tuple(shown), tuple(widths), tuple(sorted(hidden)))


def _overhead(columns: int) -> int:
    return TABLE_COLUMN_OVERHEAD * columns + TABLE_EDGE_OVERHEAD


def _wrap_minimum(cells: Sequence[str], widest: int) -> int:
    longest_word = max((cell_len(word) for text in cells for word in text.split()), default=0)
    return min(widest, max(WRAP_WIDTH_MIN, min(longest_word, WORD_WIDTH_MAX)))


def _header_parts(header: str) -> list[str]:
    """Where a header may break: after each `_` of an English name; a Chinese header every two
    characters (one character a line is unreadable)."""
    if header.isascii():
        return re.findall(r"[^_]*_|[^_]+$", header) or [header]
    return [header[i : i + 2] for i in range(0, len(header), 2)]


def _squeeze(natural: list[int], stages: list[list[int]], room: int) -> list[int] | None:
    """Narrow the columns stage by stage, each stage down to its minimum widths, the widest column that can
    give first (wrapping the widest text costs the fewest lines), until the total fits `room`; None when
    even the last stage's minimum does not fit."""
    if sum(stages[-1]) > room:
        return None
    widths = list(natural)
    for minimum in stages:
        excess = sum(widths) - room
        while excess > 0:
            shrinkable = [i for i in range(len(widths)) if widths[i] > minimum[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths


def rich_table(sheet: Sheet, lang: Lang, width: int) -> Group:
    """The title, then a table at most `width` cells wide: numbers right-aligned, ids and numbers on one
    line. The title stands above the table rather than in it, so that it wraps at the terminal's width,
    not at a narrow table's."""
    fitted = fit(sheet, lang, width)
    table = Table()
    for i, column_width in zip(fitted.shown, fitted.widths, strict=True):
        column = sheet.columns[i]
        header = column.header(lang)
        table.add_column(
            Text(_wrapped_header(header, column_width)),
            justify="right" if column.kind in NUMERIC_KINDS else "left",
            width=column_width,
            no_wrap=not column.wrap,
            overflow="fold",
        )
    for row in sheet.rows:
        # Text, not str: a name with `[brackets]` is a name, not rich markup.
        table.add_row(*[Text(_plain(row[i], sheet.columns[i].kind)) for i in fitted.shown])
    if fitted.hidden:
        names = ", ".join(sheet.columns[i].name for i in fitted.hidden)
        table.caption = Text(
            f"为适应 {width} 列宽度隐藏：{names}（用 --columns 选择列，或加宽终端）"
            if lang is Lang.zh
            else f"hidden to fit {width} columns: {names} (choose with --columns, or widen the terminal)"
        )
        table.caption_justify = "left"
    return Group(Text(sheet.title_in(lang)), table)


def _wrapped_header(header: str, width: int) -> str:
    """The header broken where `_header_parts` allows, so a narrow number column keeps its full name."""
    if cell_len(header) <= width:
        return header
    lines: list[str] = []
    for part in _header_parts(header):
        if lines and cell_len(lines[-1] + part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


# XLSX


def sheet_name(text: str) -> str:
    """A worksheet name Excel accepts: at most 31 characters, none of `[]:*?/\\`."""
    return SHEET_NAME_FORBIDDEN.sub("_", text)[:SHEET_NAME_LENGTH_MAX] or "sheet"


def xlsx_bytes(sheets: Sequence[Sheet], lang: Lang) -> bytes:
    """A workbook with one worksheet per sheet: the title in row 1, the header in row 2 (frozen with the
    title, filterable), typed cells below."""
    from openpyxl import Workbook

    workbook = Workbook()
    for empty in list(workbook.worksheets):  # a new workbook opens with one empty sheet
        workbook.remove(empty)
    used: set[str] = set()
    for sheet in sheets:
        name = sheet_name(sheet.name)
        for number in range(2, len(sheets) + 2):  # two sheets may shorten to one name
            if name.lower() not in used:
                break
            suffix = f" {number}"
            name = sheet_name(sheet.name)[: SHEET_NAME_LENGTH_MAX - len(suffix)] + suffix
        used.add(name.lower())
        _write_sheet(workbook.create_sheet(name), sheet, lang)
    workbook.properties.title = sheets[0].title_in(lang) if sheets else None
    workbook.properties.creator = "cadre-ledger"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_sheet(worksheet: Worksheet, sheet: Sheet, lang: Lang) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    _text_cell(worksheet, 1, 1, sheet.title_in(lang)).font = bold
    widths = [cell_len(column.header(lang)) for column in sheet.columns]
    for number, column in enumerate(sheet.columns, start=1):
        _text_cell(worksheet, 2, number, column.header(lang)).font = bold
    for row_number, row in enumerate(sheet.rows, start=3):
        for number, (value, column) in enumerate(zip(row, sheet.columns, strict=True), start=1):
            _typed_cell(worksheet, row_number, number, value, column.kind)
            widths[number - 1] = max(widths[number - 1], cell_len(_plain(value, column.kind)))
    for number, width in enumerate(widths, start=1):
        worksheet.column_dimensions[get_column_letter(number)].width = min(
            XLSX_WIDTH_MAX, max(XLSX_WIDTH_MIN, width + 2)
        )
    # Rows 1–2 (title and header) stay in view while the rows scroll.
    worksheet.freeze_panes = "A3"
    if sheet.columns:
        last = get_column_letter(len(sheet.columns))
        worksheet.auto_filter.ref = f"A2:{last}{len(sheet.rows) + 2}"
    worksheet.print_title_rows = "1:2"


def _typed_cell(worksheet: Worksheet, row: int, column: int, value: object, kind: Kind) -> None:
    if value is None or value == "":
        return
    if kind is Kind.int and isinstance(value, int) and not isinstance(value, bool):
        worksheet.cell(row=row, column=column, value=value)
    elif kind is Kind.points and isinstance(value, Decimal | int) and not isinstance(value, bool):
        worksheet.cell(row=row, column=column, value=value).number_format = XLSX_POINTS_FORMAT
    elif kind is Kind.date and isinstance(value, date) and not isinstance(value, datetime):
        worksheet.cell(row=row, column=column, value=value).number_format = XLSX_DATE_FORMAT
    else:
        # Instants stay RFC 3339 text: a spreadsheet's date-times have no time zone.
        _text_cell(worksheet, row, column, _plain(value, kind))


def _text_cell(worksheet: Worksheet, row: int, column: int, text: str) -> Cell | MergedCell:
    """A string cell, never a formula: openpyxl reads any string starting with `=` as one, so the type is
    set after the value, and the cell is formatted as text. A formula-leading text also gets Excel's quote
    prefix — what Excel itself records when a person types `'=` — so it stays text when edited; the value
    itself is kept exact."""
    cell = worksheet.cell(row=row, column=column)
    cell.value = XLSX_ILLEGAL.sub("\ufffd", text)
    cell.data_type = "s"
    cell.number_format = "@"  # Excel's text format: an id typed over as `0017` stays `0017`
    if text[:1] in FORMULA_LEADING:
        cell.quotePrefix = True
    return cell
