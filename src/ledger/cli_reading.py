"""What the CLI's reads share: output formats, `--as-of` and `--known-at`, the read models of a command."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger.cli_audit import opened as _opened
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, fail, print_json, print_table

__all__ = [
    "AsOf",
    "Format",
    "FormatOption",
    "KnownAt",
    "PeriodOption",
    "as_of_date",
    "known_at_value",
    "movement_text",
    "print_rows",
    "projections_of",
]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, json or csv")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Valid date YYYY-MM-DD (default today)")]
KnownAt = Annotated[
    str | None,
    typer.Option("--known-at", help="As known at: an RFC 3339 instant or a log position (default now)"),
]


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
    fmt: Format, document: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """One document three ways: JSON as is, CSV of the rows, a table for people."""
    if fmt is Format.json:
        print_json(document)
        return
    if fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if value is None else str(value) for value in row] for row in rows])
        sys.stdout.write(buffer.getvalue())
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if value is None else str(value) for value in row])
    print_table(table)


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
