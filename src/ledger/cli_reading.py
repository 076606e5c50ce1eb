"""What the CLI's reads share: output formats, `--as-of` and `--known-at`, the read models of a command.

Which columns and rows a view shows is `ledger.projections.tables`, shared with the API's downloads;
`column`, `HEADERS_ZH` and `movement_text` are re-exported from there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from ledger.cli_audit import opened as _opened
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, err, fail, print_json, print_table, table_width
from ledger.projections.tables import HEADERS_ZH, ViewSheets, column, movement_text
from ledger.sheets import Column, Lang, Sheet, UnknownColumns, choose, infer_columns, rich_table

__all__ = [
    "HEADERS_ZH",
    "AsOf",
    "ColumnsOption",
    "ExcelOption",
    "Format",
    "FormatOption",
    "KnownAt",
    "LangOption",
    "Output",
    "OutputOption",
    "PeriodOption",
    "ReadFormat",
    "ReadFormatOption",
    "WideOption",
    "as_of_date",
    "column",
    "known_at_value",
    "movement_text",
    "output_of",
    "print_rows",
    "print_view",
    "projections_of",
]


class Format(StrEnum):
    """What `ledger post` prints: it has no file to write a workbook to."""

    table = "table"
    json = "json"
    csv = "csv"


class ReadFormat(StrEnum):
    """What a read prints, or writes to `-o FILE`; `xlsx` only to a file."""

    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, json or csv")]
ReadFormatOption = Annotated[
    ReadFormat, typer.Option("--format", "-f", help="table, json, csv or xlsx (xlsx needs -o FILE)")
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Comma-separated columns to show, in that order (table, csv, xlsx); a wrong name lists them",
    ),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column in a table (by default a table shows the essential ones)")
]
ExcelOption = Annotated[
    bool, typer.Option("--excel", help="CSV for Excel: UTF-8 with a byte order mark and CRLF line endings")
]
LangOption = Annotated[
    Lang, typer.Option("--lang", help="Headers and titles in en or zh (中文); values stay as recorded")
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write csv, json or xlsx to FILE instead of the terminal"),
]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Valid date YYYY-MM-DD (default today)")]
KnownAt = Annotated[
    str | None,
    typer.Option("--known-at", help="As known at: an RFC 3339 instant or a log position (default now)"),
]


@dataclass(frozen=True)
class Output:
    """How a read is printed or written: the format, the columns (`None`: the default set), all columns,
    CSV for Excel, the headers' language, and the file (`None`: standard output)."""

    fmt: ReadFormat = ReadFormat.table
    columns: tuple[str, ...] | None = None
    wide: bool = False
    excel: bool = False
    lang: Lang = Lang.en
    file: Path | None = None


def output_of(
    fmt: ReadFormat,
    *,
    columns: str | None = None,
    wide: bool = False,
    excel: bool = False,
    lang: Lang = Lang.en,
    file: Path | None = None,
) -> Output:
    """The options of a read, checked before it reads anything (a wrong combination exits 2)."""
    if fmt is ReadFormat.xlsx and file is None:
        fail(EXIT_INVALID, "--format xlsx writes a binary workbook, not text: name the file with -o FILE")
    if file is not None and fmt is ReadFormat.table:
        fail(EXIT_INVALID, "-o writes csv, json or xlsx: add --format csv, json or xlsx")
    if excel and fmt is not ReadFormat.csv:
        fail(EXIT_INVALID, "--excel shapes CSV for Excel (BOM, CRLF): use it with --format csv")
    names = None
    if columns is not None:
        if wide:
            fail(EXIT_INVALID, "--columns and --wide: choose one")
        names = tuple(name.strip() for name in columns.split(",") if name.strip())
        if not names:
            fail(EXIT_INVALID, "--columns: name at least one column")
    return Output(fmt, names, wide, excel, lang, file)


def as_of_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(EXIT_INVALID, f"--as-of: {text!r} is not a date YYYY-MM-DD")


def known_at_value(text: str | None) -> int | datetime | None:
    if text is None:
        return None
    if text.isascii() and text.isdigit():  # `²` and `５` are digits to str.isdigit, not to int()
        return int(text)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(EXIT_INVALID, f"--known-at: {text!r} is neither a position nor an RFC 3339 instant")
    if instant.tzinfo is None:
        fail(EXIT_INVALID, f"--known-at: {text!r} needs a time zone, e.g. 2025-01-01T00:00:00Z")
    return instant


def print_rows(
    how: Format | ReadFormat | Output,
    document: Any,
    title: str,
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[Any]],
    *,
    title_zh: str = "",
    name: str = "",
    before: Sequence[Sheet] = (),
) -> None:
    """`print_view` of one sheet of `rows`. `columns` are `Column`s, or bare names whose kinds are read
    off the values. `before` are further sheets shown whole: tables above this one, worksheets after it."""
    sheet = Sheet(name or "sheet", title, _columns_of(columns, rows), rows, title_zh)
    print_view(how, document, ViewSheets(sheet, tuple(before)))


def print_view(how: Format | ReadFormat | Output, document: Any, view: ViewSheets) -> None:
    """One document, several ways: JSON as is (whatever the other options), CSV of the main sheet, an XLSX
    workbook of all its sheets, tables for people that fit the terminal (`ledger.projections.tables`
    says which sheets a view is)."""
    output = how if isinstance(how, Output) else Output(ReadFormat(how.value))
    try:
        chosen = choose(
            view.sheet.columns,
            output.columns,
            essential_only=output.fmt is ReadFormat.table and not output.wide,
        )
    except UnknownColumns as error:
        fail(EXIT_INVALID, f"--columns: {error}")
    if output.fmt is ReadFormat.json:
        if output.file is None:
            print_json(document)
        else:  # the bytes print_json writes
            _write(output.file, msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n", "JSON")
        return
    view = view.only(chosen)
    rows = f"{len(view.sheet.rows)} rows"
    if output.fmt is ReadFormat.csv:
        data = view.csv(output.lang, excel=output.excel)
        if output.file is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            _write(output.file, data, rows)
        return
    if output.fmt is ReadFormat.xlsx:
        assert output.file is not None, "output_of refuses xlsx without a file"
        _write(output.file, view.xlsx(output.lang), rows)
        return
    width = table_width()
    for shown in [*view.before, view.sheet]:
        print_table(rich_table(shown, output.lang, width))


def _columns_of(columns: Sequence[Column | str], rows: Sequence[Sequence[Any]]) -> tuple[Column, ...]:
    named = [spec for spec in columns if isinstance(spec, str)]
    if not named:
        return tuple(spec for spec in columns if isinstance(spec, Column))
    inferred = infer_columns([spec if isinstance(spec, str) else spec.name for spec in columns], rows)
    return tuple(
        spec if isinstance(spec, Column) else column(spec, guess.kind)
        for spec, guess in zip(columns, inferred, strict=True)
    )


def _write(file: Path, data: bytes, what: str) -> None:
    try:
        file.write_bytes(data)
    except OSError as error:
        fail(EXIT_INVALID, f"cannot write {file}: {error.strerror}")
    err.print(f"wrote {what} to {file}", highlight=False, markup=False)


PeriodOption = Annotated[str, typer.Option("--period", "-p", help="2025, 2025Q3, 2025-07 or 2025-W27")]


@contextmanager
def projections_of(database: str | None) -> Iterator[Any]:
    """The read models, caught up with the log (errors turned into exit codes by `_opened`)."""
    from ledger.projections.errors import NotCaughtUp
    from ledger.projections.service import Projections

    with _opened(database, create=False) as ledger:
        projections = Projections.open(ledger)
        try:
            yield projections
        except NotCaughtUp as error:
            fail(EXIT_FAILED, str(error))
        finally:
            projections.close()
