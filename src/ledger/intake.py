"""Spreadsheet intake: the rows of a CSV file or an XLSX workbook as the events `ledger.wire` decodes.

A clerk fills a sheet in Excel; each row is one event. The columns are the event's client fields, derived
from the structs of `ledger.domain.events` (never listed by hand): the fields the ledger sets
(`SERVER_FIELDS`) are not columns, `source` is flattened into `source_system` and `source_key`, and a
nested struct's fields are dotted (`scores.self`, `rater.id`; a map, `scores.<dimension>`). A cell is
converted by the kind of its field — dates from date cells or `YYYY-MM-DD` text, TRUE/FALSE, whole
numbers, points and scores from numbers or text, lists from text separated by commas — and the row is
then decoded as the JSON of the event by `ledger.wire.decode_event_json`, so a row is held to exactly
the rules of a JSONL line or an HTTP item. An empty cell is an absent optional field.

Every row is decoded on its own and every error is kept (`Intake.errors`), located as the clerk sees it:
the row number in the sheet, the header row being row 1 (the line number of a JSONL file), the column's
header and its cell (`D7`). One run lists them all.

`template` and `write_xlsx_template` write an empty sheet of one type: the header and one example row.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

import msgspec
from msgspec import inspect

from ledger.domain.errors import InvalidInput
from ledger.domain.events import EVENT_TYPES, POSTABLE_EVENT_TYPES, SERVER_FIELDS, EventBase
from ledger.wire import NotUtf8, check_utf8, decode_event_json

__all__ = [
    "COLUMNS_MAX",
    "ROWS_MAX",
    "SPREADSHEET_SUFFIXES",
    "Column",
    "Intake",
    "RowError",
    "columns_of",
    "read_csv",
    "read_file",
    "read_jsonl",
    "read_xlsx",
    "template",
    "template_csv",
    "write_xlsx_template",
]

# Limits: a city's yearly appraisals fit many times over; more is a file meant for `ledger import`.
ROWS_MAX: Final = 100_000
COLUMNS_MAX: Final = 100
SPREADSHEET_SUFFIXES: Final = (".csv", ".xlsx")
TYPE_COLUMN: Final = "type"
HEADER_ROW: Final = 1
# Overrides are rare and need a reason: accepted as columns everywhere, left out of the templates.
OVERRIDE_COLUMNS: Final = ("points", "override_reason")
# What our own CSV and XLSX exports put in front of text that a spreadsheet would read as a formula
# (OWASP's rule): `'` before `= + - @`, a tab or a carriage return. Only that prefix is taken off again.
_NEUTRALISED: Final = re.compile(r"^'(?=[=+\-@\t\r])")
# A workbook is read by the values Excel last computed: a formula no spreadsheet program has calculated
# (a file written by a script), or a merged cell's other parts, read as empty.
FORMULA_HINT: Final = (
    " (if the cell shows a value, it is a formula never calculated or part of a merged cell: open and save "
    "the file in Excel, or paste the values)"
)
_DATE_TEXT: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE_NUMBER: Final = re.compile(r"[+-]?\d{1,9}")
_LIST_SEPARATORS: Final = re.compile(r"[,;，；、\s]+")
_TRUE: Final = frozenset({"true", "yes", "1", "是"})
_FALSE: Final = frozenset({"false", "no", "0", "否"})
_INDEX: Final = re.compile(r"\[\d+\]")


class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One refusal in a file: where (`sheet`, `row`, the `column`'s header and its `cell` such as `D7`,
    when the column is in the file), the rule it breaks and what to change."""

    row: int
    column: str | None
    cell: str | None
    rule: str
    message: str
    sheet: str | None = None


@dataclass(frozen=True)
class Column:
    """One column of an event type's layout: its header, where it goes in the event's JSON, how a cell
    is read, whether the event needs it, and the values it may take (for a choice)."""

    name: str
    path: tuple[str, ...]
    kind: str  # text, date, bool, whole, decimal, choice, list, map
    required: bool
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """The column in words, for a template's header note."""
        words = {
            "text": "text",
            "date": "a date (a date cell or YYYY-MM-DD)",
            "bool": "TRUE or FALSE",
            "whole": "a whole number",
            "decimal": "a number with at most two places",
            "decimal_text": "a score from 0 to 100 with at most two places",
            "choice": "one of: " + ", ".join(self.choices),
            "list": "values separated by commas",
            "map": "a number per key (one column per key: name.key)",
        }[self.kind]
        return f"{'required' if self.required else 'optional'}: {words}"


def _unwrap(kind: inspect.Type) -> tuple[inspect.Type, bool]:
    """A field's type without `None` and `UNSET`, and whether they were allowed."""
    if isinstance(kind, inspect.UnionType):
        inner = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        if len(inner) == 1:
            return inner[0], True
    return kind, False


def _kind_of(kind: inspect.Type) -> tuple[str, tuple[str, ...]]:
    if isinstance(kind, inspect.DateType):
        return "date", ()
    if isinstance(kind, inspect.BoolType):
        return "bool", ()
    if isinstance(kind, inspect.IntType):
        return "whole", ()
    if isinstance(kind, inspect.DecimalType):
        return "decimal", ()
    if isinstance(kind, inspect.LiteralType):
        return "choice", tuple(str(value) for value in kind.values)
    if isinstance(kind, (inspect.VarTupleType, inspect.ListType)):
        return "list", ()
    if isinstance(kind, inspect.DictType):
        return "map", ()
    return "text", ()


def _columns(event_type: str) -> tuple[Column, ...]:
    cls = EVENT_TYPES[event_type]
    info = inspect.type_info(cls)
    assert isinstance(info, inspect.StructType)
    server = set(SERVER_FIELDS[event_type])
    columns: list[Column] = []
    for struct_field in info.fields:
        if struct_field.name in server:
            continue
        kind, _optional = _unwrap(struct_field.type)
        required = struct_field.required
        if isinstance(kind, inspect.StructType):
            for inner in kind.fields:
                inner_kind, _ = _unwrap(inner.type)
                name = (
                    f"source_{inner.name}"
                    if struct_field.name == "source"
                    else f"{struct_field.name}.{inner.name}"
                )
                word, choices = _kind_of(inner_kind)
                columns.append(
                    Column(name, (struct_field.name, inner.name), word, required and inner.required, choices)
                )
            continue
        word, choices = _kind_of(kind)
        columns.append(Column(struct_field.name, (struct_field.name,), word, required, choices))
    return tuple(columns)


def _ordered(columns: Sequence[Column]) -> tuple[Column, ...]:
    """A clerk's order: who and when first, the payload, the evidence, the source, and overrides last."""
    first = ("cadre_id", "unit_id", "effective_on")
    late = ("document", "note", "source_system", "source_key", *OVERRIDE_COLUMNS)

    def rank(column: Column) -> tuple[int, int]:
        if column.name in first:
            return 0, first.index(column.name)
        if column.name in late:
            return 2, late.index(column.name)
        return 1, 0

    return tuple(sorted(columns, key=rank))


LAYOUTS: Final[dict[str, tuple[Column, ...]]] = {
    event_type: _ordered(_columns(event_type)) for event_type in sorted(POSTABLE_EVENT_TYPES)
}
# Every header a sheet may hold, with the types it belongs to: the same name has the same kind everywhere.
_KNOWN: Final[dict[str, Column]] = {column.name: column for layout in LAYOUTS.values() for column in layout}
_MAPS: Final = {column.name for column in _KNOWN.values() if column.kind == "map"}


def columns_of(event_type: str) -> tuple[Column, ...]:
    """The columns of a postable event type, in template order (InvalidInput for another type)."""
    layout = LAYOUTS.get(event_type)
    if layout is None:
        raise InvalidInput(
            f"{event_type!r} is not a type that is posted; one of: {', '.join(sorted(POSTABLE_EVENT_TYPES))}",
            field="type",
            rule="event_type_not_postable",
        )
    return layout


def _column_of_header(header: str) -> Column | None:
    # Field names are lower case: `Cadre_ID` typed by a clerk is `cadre_id` (a map's keys, after the dot,
    # keep their case).
    prefix, dot, rest = header.partition(".")
    header = prefix.lower() + dot + (rest if prefix.lower() in _MAPS else rest.lower())
    if header == TYPE_COLUMN:
        return Column(TYPE_COLUMN, (TYPE_COLUMN,), "text", True)
    known = _KNOWN.get(header)
    if known is not None:
        return known
    # The dotted spelling of the source, as in JSON, is the same column.
    if header in ("source.system", "source.key"):
        return _KNOWN["source_" + header.split(".")[1]]
    prefix, dot, key = header.partition(".")
    if dot and key and prefix in _MAPS:
        return Column(header, (prefix, key), "decimal_text", False)
    return None


def column_letter(index: int) -> str:
    """The spreadsheet letter of the column at `index` (from 0): A … Z, AA …"""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


@dataclass
class _Sheet:
    """One sheet's header: the column index of each header, and the type its title names (if any)."""

    name: str | None
    columns: dict[str, int]
    default_type: str | None
    # Columns whose header is refused (unknown, or a second of the same name): reported once, at the
    # header, and their cells not read.
    refused: set[int] = field(default_factory=set)


@dataclass
class Intake:
    """The events read from a file, where each came from, and every error found while reading it."""

    events: list[EventBase] = field(default_factory=list)
    rows: list[tuple[_Sheet | None, int]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0
    jsonl: bool = False

    def where(self, index: int) -> str:
        """Where event `index` came from, in the clerk's words: `row 7`, `sheet X row 7`, `line 7`."""
        sheet, row = self.rows[index]
        if self.jsonl:
            return f"line {row}"
        return f"sheet {sheet.name} row {row}" if sheet is not None and sheet.name else f"row {row}"

    def row_of(self, index: int) -> int:
        """The row (or JSONL line) number event `index` came from."""
        return self.rows[index][1]

    def sheet_of(self, index: int) -> str | None:
        """The name of the sheet event `index` came from (None for CSV and JSONL)."""
        sheet = self.rows[index][0]
        return sheet.name if sheet is not None else None

    def error_at(self, index: int, field_path: str | None, rule: str, message: str) -> RowError:
        """A refusal of event `index` (from deciding it), located at its row and the field's column."""
        sheet, row = self.rows[index]
        return _located(sheet, row, field_path, rule, message, jsonl=self.jsonl)


def _header_of(field_path: str | None) -> str | None:
    """The column a field path of an event is read from (`source.key` → `source_key`)."""
    if not field_path:
        return None
    path = _INDEX.sub("", field_path)
    if path == "source":
        return "source_key"
    if path.startswith("source."):
        return "source_" + path.split(".", 1)[1]
    return path


def _located(
    sheet: _Sheet | None, row: int, field_path: str | None, rule: str, message: str, *, jsonl: bool = False
) -> RowError:
    if jsonl:
        return RowError(row=row, column=field_path, cell=None, rule=rule, message=message)
    header = _header_of(field_path)
    cell = None
    if sheet is not None and header is not None:
        index = sheet.columns.get(header)
        if index is None and header.startswith("source_"):
            index = sheet.columns.get(header.replace("_", ".", 1))
        if index is not None:
            cell = f"{column_letter(index)}{row}"
    return RowError(
        row=row, column=header, cell=cell, rule=rule, message=message, sheet=sheet.name if sheet else None
    )


class _CellRefused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # A personnel number typed as a number (1001) is the text 1001, not 1001.0.
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        raise _CellRefused("a date or time cell where text is expected: format the cell as text")
    return str(value)


def _cell_value(column: Column, value: Any) -> Any:
    """The JSON value of a cell for `column` (InvalidInput-free: `_CellRefused` says what is wrong)."""
    if isinstance(value, str):
        value = _NEUTRALISED.sub("", value, count=1)
    kind = column.kind
    if kind == "date":
        if isinstance(value, datetime):
            if value.time() != time(0, 0):
                raise _CellRefused(f"a date without a time of day, not {value.isoformat(sep=' ')}")
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                raise _CellRefused(f"{value!r} is not a date of the calendar") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise _CellRefused(
                f"the number {value} is not a date: format the cell as a date, or write YYYY-MM-DD"
            )
        raise _CellRefused(f"expected a date cell or YYYY-MM-DD, not {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _CellRefused(f"expected TRUE or FALSE, not {value!r}")
    if kind == "whole":
        if isinstance(value, bool):
            raise _CellRefused(f"expected a whole number, not {value}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
            return int(value.strip())
        raise _CellRefused(f"expected a whole number, not {value!r}")
    if kind in ("decimal", "decimal_text"):
        if isinstance(value, bool):
            raise _CellRefused(f"expected a number, not {value}")
        return _text(value)
    if kind == "choice":
        text = _text(value)
        if text not in column.choices:
            raise _CellRefused(f"expected one of {', '.join(column.choices)}, not {text!r}")
        return text
    if kind == "list":
        return [part for part in _LIST_SEPARATORS.split(_text(value)) if part]
    return _text(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_header(
    cells: Sequence[Any], sheet_name: str | None, errors: list[RowError], *, title_type: str | None
) -> _Sheet:
    sheet = _Sheet(sheet_name, {}, title_type)
    if sum(1 for value in cells if not _empty(value)) > COLUMNS_MAX:
        raise InvalidInput(
            f"{_sheet_words(sheet_name)}a sheet has at most {COLUMNS_MAX} columns",
            rule="columns_too_many",
        )
    for index, value in enumerate(cells):
        if _empty(value):
            continue
        header = _text(value).strip()
        cell = f"{column_letter(index)}{HEADER_ROW}"
        column = _column_of_header(header)
        if column is None:
            sheet.refused.add(index)
            errors.append(
                RowError(
                    row=HEADER_ROW,
                    column=header,
                    cell=cell,
                    rule="column_unknown",
                    message=f"{header!r} is not a column of any event type: see `ledger template TYPE` "
                    "for the columns of a type",
                    sheet=sheet_name,
                )
            )
        elif column.name in sheet.columns:  # `cadre_id` and `Cadre_ID` are one column
            sheet.refused.add(index)
            errors.append(
                RowError(
                    row=HEADER_ROW,
                    column=header,
                    cell=cell,
                    rule="column_duplicated",
                    message=f"the column {header!r} appears twice (also column "
                    f"{column_letter(sheet.columns[column.name])}): keep one",
                    sheet=sheet_name,
                )
            )
        else:
            sheet.columns[column.name] = index
    return sheet


def _row_event(sheet: _Sheet, row: int, cells: Sequence[Any], errors: list[RowError]) -> EventBase | None:
    """The event of one data row, or None with its errors appended (every cell's, then the decoder's)."""
    document: dict[str, Any] = {}
    found = len(errors)
    unread: set[str] = set()  # the columns whose cell was refused
    for header, index in sheet.columns.items():
        value = cells[index] if index < len(cells) else None
        if _empty(value):
            continue
        column = _column_of_header(header)
        assert column is not None  # the header was checked
        try:
            converted = _cell_value(column, value)
        except _CellRefused as refused:
            errors.append(_located(sheet, row, header, "field_invalid", refused.message))
            unread.add(column.name)
            continue
        target = document
        for part in column.path[:-1]:
            target = target.setdefault(part, {})
        target[column.path[-1]] = converted
    read = set(sheet.columns.values()) | sheet.refused
    for index in range(len(cells)):
        if index not in read and not _empty(cells[index]):
            letter = column_letter(index)
            errors.append(
                RowError(
                    row=row,
                    column=None,
                    cell=f"{letter}{row}",
                    rule="column_unknown",
                    message=f"a value in column {letter}, which has no header: give it one or clear the cell",
                    sheet=sheet.name,
                )
            )
    if TYPE_COLUMN not in document and TYPE_COLUMN not in unread:
        if sheet.default_type is None:
            errors.append(
                _located(
                    sheet,
                    row,
                    TYPE_COLUMN,
                    "field_invalid",
                    "the row names no event type: fill the `type` column (or name the sheet after the type)",
                )
            )
            return None
        document[TYPE_COLUMN] = sheet.default_type
    # Every missing column of the row at once (the decoder would name the first only).
    for column in LAYOUTS.get(str(document.get(TYPE_COLUMN)), ()):
        if column.required and column.name not in unread and not _holds(document, column.path):
            errors.append(
                _located(
                    sheet,
                    row,
                    column.name,
                    "field_invalid",
                    f"a {document[TYPE_COLUMN]} needs `{column.name}`: fill it"
                    + (FORMULA_HINT if sheet.name is not None else ""),
                )
            )
    if len(errors) > found:
        return None
    try:
        return decode_event_json(msgspec.json.encode(document))
    except InvalidInput as error:
        errors.append(_located(sheet, row, error.field, error.rule, error.message))
        return None


def _holds(document: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = document
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _read_rows(
    intake: Intake, sheet_name: str | None, rows: Iterable[tuple[int, Sequence[Any]]], title_type: str | None
) -> None:
    sheet: _Sheet | None = None
    for number, cells in rows:
        if sheet is None:
            if all(_empty(value) for value in cells):
                continue
            if number != HEADER_ROW:
                raise InvalidInput(
                    f"{_sheet_words(sheet_name)}the header (the column names) is row 1, "
                    f"but row 1 is empty and row {number} is not",
                    rule="header_row_missing",
                )
            sheet = _read_header(cells, sheet_name, intake.errors, title_type=title_type)
            continue
        if all(_empty(value) for value in cells):
            continue
        intake.rows_read += 1
        if intake.rows_read > ROWS_MAX:
            raise InvalidInput(
                f"a file holds at most {ROWS_MAX} rows: split it", rule="rows_too_many", field=None
            )
        event = _row_event(sheet, number, cells, intake.errors)
        if event is not None:
            intake.events.append(event)
            intake.rows.append((sheet, number))


def _trimmed(cells: Sequence[Any]) -> Sequence[Any]:
    """A row without its empty cells at the end: openpyxl pads every row to the sheet's widest, so one
    stray cell in column XFD would make every row 16,384 cells long."""
    end = len(cells)
    while end and _empty(cells[end - 1]):
        end -= 1
    return cells[:end] if end < len(cells) else cells


def _sheet_words(sheet_name: str | None) -> str:
    return f"sheet {sheet_name}: " if sheet_name else ""


def read_csv(data: bytes) -> Intake:
    """The events of a CSV file: UTF-8 (with or without the byte order mark Excel writes), comma-separated,
    the header in the first row."""
    try:
        check_utf8(data, where="the file")
    except NotUtf8 as error:
        raise InvalidInput(
            f"{error.message}: save it as “CSV UTF-8 (逗号分隔)”, or as .xlsx", rule=error.rule
        ) from None
    text = data.decode("utf-8-sig")
    intake = Intake()
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except csv.Error as error:
        raise InvalidInput(f"the CSV cannot be read: {error}", rule="spreadsheet_unreadable") from None
    _read_rows(intake, None, enumerate(records, start=1), None)
    return intake


def _delimiter(text: str) -> str:
    """The CSV's separator: a comma, unless the header row holds none and semicolons or tabs instead (what
    Excel writes where the decimal mark is a comma, and what "Unicode text" writes)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    if "," in header:
        return ","
    for candidate in (";", "\t"):
        if candidate in header:
            return candidate
    return ","


def read_xlsx(source: Path | IO[bytes]) -> Intake:
    """The events of every sheet of an XLSX workbook, in workbook order; a sheet named after an event type
    gives that type to rows that leave `type` empty. Formulas count by the value Excel last computed."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as error:
        raise InvalidInput(
            f"not an .xlsx workbook ({error}): save it from Excel as “Excel 工作簿 (*.xlsx)”",
            rule="spreadsheet_unreadable",
        ) from None
    intake = Intake()
    try:
        for worksheet in workbook.worksheets:
            title = worksheet.title
            rows = enumerate(map(_trimmed, worksheet.iter_rows(values_only=True)), start=1)
            if worksheet.sheet_state != "visible":
                # What the clerk cannot see is not posted: a hidden sheet with anything in it is refused.
                if any(not all(_empty(value) for value in cells) for _, cells in rows):
                    intake.errors.append(
                        RowError(
                            row=HEADER_ROW,
                            column=None,
                            cell=None,
                            rule="sheet_hidden",
                            message=f"sheet {title} is hidden: unhide it to post its rows, or delete it",
                            sheet=title,
                        )
                    )
                continue
            title_type = title if title in POSTABLE_EVENT_TYPES else None
            _read_rows(intake, title, rows, title_type)
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise InvalidInput(f"the workbook cannot be read: {error}", rule="spreadsheet_unreadable") from None
    finally:
        workbook.close()
    return intake


def read_jsonl(lines: Iterable[bytes]) -> Intake:
    """The events of a JSONL stream, each line decoded on its own and every error kept, named by line."""
    intake = Intake(jsonl=True)
    for number, line in enumerate(lines, start=1):
        try:
            check_utf8(line, where=f"line {number}", of=" of the line")
            if not line.strip():
                continue
            intake.rows_read += 1
            event = decode_event_json(line.strip())
        except InvalidInput as error:
            intake.errors.append(
                RowError(row=number, column=error.field, cell=None, rule=error.rule, message=error.message)
            )
            continue
        intake.events.append(event)
        intake.rows.append((None, number))
    return intake


def read_file(path: Path, stream: IO[bytes]) -> Intake:
    """The events of `stream`, read as its name says: `.csv`, `.xlsx`, anything else JSONL."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(stream.read())
    if suffix == ".xlsx":
        return read_xlsx(io.BytesIO(stream.read()))
    return read_jsonl(stream)


# Templates.

_EXAMPLES: Final[dict[str, Any]] = {
    "cadre_id": "C0001",
    "unit_id": "U01",
    "effective_on": date(2024, 3, 1),
    "source_system": "hr",
    "document": "仙组发〔2024〕17号",
    "name": "李四",
    "grade": "一级科员",
    "leadership": True,
    "principal": False,
    "service_started_on": date(2012, 7, 1),
    "grade_since": date(2021, 1, 1),
    "reason": "因工作需要",
    "period": "2024",
    "award": "merit_third_class",
    "level": "municipal",
    "deed": "2023年防汛抢险",
    "kind": "criticism",
    "year": 2023,
    "result": "excellent",
    "scores.self": 90,
    "scores.section": 88,
    "scores.leadership": 85,
    "outcome": "passed",
    "reference": "仙纪立〔2024〕5号",
    "target_event_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "rater_kind": "enterprise",
    "raters": "E001, E002, E003",
    "method": "sha256-shuffle",
    "seed": "2024-draw-1",
    "rater.kind": "enterprise",
    "rater.id": "E001",
    "score": 88,
    "verdict": "satisfied",
    "parent": "U00",
}
# Dates that make each example a sensible event of its type (a tenure accrual is dated in its period; an
# appraisal of a year is recorded after it).
_EXAMPLE_DATES: Final[dict[str, date]] = {
    "tenure.accrued": date(2024, 12, 31),
    "appraisal.recorded": date(2024, 1, 15),
}
_UNIT_KIND_EXAMPLE: Final = "department"


def _example(event_type: str, column: Column) -> Any:
    if column.name == TYPE_COLUMN:
        return event_type
    if column.name == "effective_on":
        return _EXAMPLE_DATES.get(event_type, _EXAMPLES["effective_on"])
    if column.name == "source_key":
        return f"{event_type.replace('.', '-')}-0001"
    if column.name == "name" and event_type == "unit.registered":
        return "仙游县委组织部"
    if column.name == "kind" and event_type == "unit.registered":
        return _UNIT_KIND_EXAMPLE
    if column.name == "reason" and event_type == "cadre.departed":
        return "retired"
    if column.name in _EXAMPLES:
        value = _EXAMPLES[column.name]
        if column.kind == "choice" and value not in column.choices:
            return column.choices[0]
        return value
    if column.kind == "choice":
        return column.choices[0]
    if column.kind == "decimal_text":  # a unit's score by dimension: equal, so that their mean is `score`
        return _EXAMPLES["score"]
    return None


def _map_columns(event_type: str) -> list[Column]:
    """The keys of a map column, as columns of their own: the dimensions of the packaged rulebook."""
    if event_type != "unit.rated":
        return []
    from ledger.policy.load import illustrative_policy_text, load_policy

    dimensions = load_policy(illustrative_policy_text()).units.dimensions
    return [Column(f"scores.{name}", ("scores", name), "decimal_text", False) for name in dimensions]


def template(event_type: str) -> tuple[list[Column], list[Any]]:
    """The template of `event_type`: its columns (the `type` column first, overrides left out) and one
    example row of typed values (dates as dates, flags as booleans, numbers as numbers)."""
    layout = columns_of(event_type)
    columns = [Column(TYPE_COLUMN, (TYPE_COLUMN,), "choice", True, (event_type,))]
    for column in layout:
        if column.name in OVERRIDE_COLUMNS:
            continue
        if column.kind == "map":
            columns.extend(_map_columns(event_type))
            continue
        columns.append(column)
    example = [_example(event_type, column) for column in columns]
    return columns, example


def template_csv(event_type: str) -> bytes:
    """A CSV template for Excel: UTF-8 with a byte order mark (else Chinese Excel reads it as GBK), CRLF."""
    columns, example = template(event_type)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    writer.writerow(["" if value is None else _csv_text(value) for value in example])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def _csv_text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_xlsx_template(event_type: str, stream: IO[bytes]) -> None:
    """An XLSX template: one sheet named after the type, a frozen bold header whose cells carry a note on
    the column, drop-down lists for choices, text columns formatted as text (so that `001` stays `001`),
    and the example row as typed cells."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    columns, example = template(event_type)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = event_type
    sheet.freeze_panes = "A2"
    last_row = ROWS_MAX + 1
    for index, (column, value) in enumerate(zip(columns, example, strict=True)):
        letter = column_letter(index)
        header = sheet.cell(row=HEADER_ROW, column=index + 1, value=column.name)
        header.font = Font(bold=True)
        header.comment = Comment(column.describe(), "cadre-ledger")
        sheet.column_dimensions[letter].width = max(12, min(40, len(column.name) + 4))
        cell = sheet.cell(row=2, column=index + 1, value=value)
        if column.kind == "date":
            cell.number_format = "yyyy-mm-dd"
            sheet.column_dimensions[letter].number_format = "yyyy-mm-dd"
        elif column.kind in ("text", "choice", "list"):
            cell.number_format = "@"
            sheet.column_dimensions[letter].number_format = "@"
        choices = ("TRUE", "FALSE") if column.kind == "bool" else column.choices
        listed = ",".join(choices)
        # Excel caps a list typed into a validation at 255 characters.
        if choices and len(listed) <= 255:
            validation = DataValidation(type="list", formula1=f'"{listed}"', allow_blank=not column.required)
            validation.error = column.describe()
            validation.add(f"{letter}2:{letter}{last_row}")
            sheet.add_data_validation(validation)
    workbook.save(stream)
