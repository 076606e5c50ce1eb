"""What the CLI's reads share: output formats, `--as-of` and `--known-at`, the read models of a command."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import typer

from ledger.cli_audit import opened as _opened
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, err, fail, print_json, print_table, table_width
from ledger.sheets import (
    Column,
    Kind,
    Lang,
    Sheet,
    UnknownColumns,
    choose,
    csv_bytes,
    infer_columns,
    rich_table,
    xlsx_bytes,
)

__all__ = [
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

# The Chinese headers of the reads' columns, in the terms of docs/glossary.md. A column whose name means
# something else in one command (a unit's `name`) gives its own.
HEADERS_ZH: Final[dict[str, str]] = {
    "action": "措施",
    "adjustment": "计分调整",
    "appraisal": "年度考核",
    "board": "红黑榜",
    "bottom": "末位",
    "cadre_id": "干部编号",
    "check": "检查项",
    "consequence": "拟处理",
    "counted": "计入分值",
    "deductions": "问责扣分",
    "detail": "说明",
    "dissatisfied": "不满意数",
    "effective_from": "施行日期",
    "effective_on": "生效日期",
    "evaluation": "测评",
    "event": "事件",
    "event_id": "事件编号",
    "grade": "职级",
    "label": "措施名称",
    "leader": "主职",
    "link": "撤销关联",
    "merit": "实绩加分",
    "movement": "名次变化",
    "name": "姓名",
    "of": "参评单位数",
    "ordered_on": "回炉决定日期",
    "passed": "是否通过",
    "period": "考核周期",
    "points": "分值",
    "pool_size": "参评人数",
    "position": "日志序号",
    "posted": "已记录",
    "posted_by": "记录人",
    "previous_rank": "上期名次",
    "published_on": "发布日期",
    "rank": "名次",
    "ratings": "评分数",
    "reason": "原因",
    "recall": "回炉",
    "replayed": "重复提交",
    "running_total": "累计积分",
    "score": "得分",
    "source": "来源系统/幂等键",
    "step": "梯次",
    "streak": "连续期数",
    "tenure": "基础分",
    "total": "积分",
    "type": "事件类型",
    "unit_id": "单位",
    "version": "版本",
}


def column(
    name: str, kind: Kind = Kind.text, *, zh: str | None = None, essential: bool = True, wrap: bool = False
) -> Column:
    """A column of a read, its Chinese header from `HEADERS_ZH` unless given."""
    return Column(name, kind, HEADERS_ZH.get(name, "") if zh is None else zh, essential, wrap)


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
    """One document, several ways: JSON as is (whatever the other options), CSV of the rows, an XLSX
    workbook, a table for people that fits the terminal.

    `columns` are `Column`s, or bare names whose kinds are read off the values. `before` are further
    sheets shown whole: tables above this one, worksheets after it (CSV has room for one)."""
    output = how if isinstance(how, Output) else Output(ReadFormat(how.value))
    specs = _columns_of(columns, rows)
    sheet = Sheet(name or "sheet", title, specs, rows, title_zh)
    try:
        chosen = choose(
            specs, output.columns, essential_only=output.fmt is ReadFormat.table and not output.wide
        )
    except UnknownColumns as error:
        fail(EXIT_INVALID, f"--columns: {error}")
    if output.fmt is ReadFormat.json:
        if output.file is None:
            print_json(document)
        else:  # the bytes print_json writes
            _write(output.file, msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n", "JSON")
        return
    sheet = sheet.only(chosen)
    if output.fmt is ReadFormat.csv:
        data = csv_bytes(sheet, output.lang, excel=output.excel)
        if output.file is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            _write(output.file, data, f"{len(sheet.rows)} rows")
        return
    if output.fmt is ReadFormat.xlsx:
        assert output.file is not None, "output_of refuses xlsx without a file"
        _write(output.file, xlsx_bytes([sheet, *before], output.lang), f"{len(sheet.rows)} rows")
        return
    width = table_width()
    for shown in [*before, sheet]:
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


def movement_text(movement: int | None) -> str:
    if movement is None:
        return "new"
    return f"+{movement}" if movement > 0 else str(movement) if movement < 0 else "="
