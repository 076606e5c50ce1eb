"""`ledger post`: events from a file into the log, in atomic batches; `--dry-run` to check a file first;
`ledger template`: an empty sheet of one event type to fill in (`ledger.intake`)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from ledger.access import PRINCIPAL_PATTERN
from ledger.cli_audit import opened as _opened
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, Database, err, fail, principal, progress_bar
from ledger.cli_reading import Format, FormatOption, column, print_rows
from ledger.domain.errors import Conflict, InvalidInput
from ledger.domain.events import POSTABLE_EVENT_TYPES
from ledger.intake import SPREADSHEET_SUFFIXES, Intake, RowError, read_file, template_csv, write_xlsx_template
from ledger.ledger import BATCH_SIZE_MAX, DryRun
from ledger.sheets import Kind
from ledger.wire import decode_jsonl

__all__ = ["post", "template"]


def post(
    file: Annotated[
        Path,
        typer.Argument(help="JSONL (one event per line; '-' for stdin), .csv or .xlsx (one event per row)"),
    ],
    database: Database = None,
    posted_by: Annotated[str | None, typer.Option(help="Principal recorded as posted_by")] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the whole file and list every error (row, column, rule); record nothing",
        ),
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Post events from a JSONL, CSV or XLSX file in atomic batches of 1,000; replays are marked
    `replayed`. A spreadsheet's columns are the event's fields (`ledger template TYPE`)."""
    if posted_by is not None and not re.fullmatch(PRINCIPAL_PATTERN, posted_by):
        fail(
            EXIT_INVALID,
            f"--posted-by: {posted_by!r} is not a principal name (1–64 of A–Z a–z 0–9 . _ : @ -)",
        )
    spreadsheet = str(file) != "-" and file.suffix.lower() in SPREADSHEET_SUFFIXES
    if file.suffix.lower() in (".xls", ".xlsm", ".ods"):
        fail(
            EXIT_INVALID,
            f"{file}: save it from Excel as .xlsx (Excel 工作簿) or as CSV UTF-8, then post that",
        )
    try:
        stream: IO[bytes] = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    except OSError as error:
        fail(EXIT_INVALID, f"cannot read {file}: {error.strerror}")
    intake: Intake | None = None
    with stream:
        try:
            if spreadsheet or dry_run:
                # Every row (line) on its own, every error kept: one run lists them all.
                intake = read_file(file, stream)
                events = intake.events
            else:
                # A line that is not UTF-8 is named with the offset of its first bad byte (`NotUtf8`).
                events = decode_jsonl(stream)
        except InvalidInput as error:
            fail(EXIT_INVALID, f"{file}: {error.describe()}")
        except OSError as error:  # a read error after opening (a directory, a device that failed)
            fail(EXIT_INVALID, f"cannot read {file}: {error.strerror}")
    if dry_run:
        assert intake is not None
        _dry_run(file, intake, database, posted_by or principal(), fmt)
        return
    if intake is not None and intake.errors:
        _print_errors(fmt, intake.errors, {"valid": False, "errors": intake.errors})
        fail(EXIT_INVALID, f"{file}: {_errors_in_words(intake.errors)}; nothing was recorded")
    if not events:
        fail(EXIT_INVALID, f"{file}: no events")
    results = []
    position = 0
    with _opened(database) as ledger, progress_bar() as progress:
        task = progress.add_task("posting", total=len(events))
        for start in range(0, len(events), BATCH_SIZE_MAX):
            chunk = events[start : start + BATCH_SIZE_MAX]
            index = start
            try:
                result = ledger.post(chunk, posted_by=posted_by or principal())
            except InvalidInput as error:
                index = start + (error.item or 0)
                fail(
                    EXIT_INVALID,
                    f"{file} {_where(intake, index)}: "
                    f"{InvalidInput(error.message, field=error.field, rule=error.rule).describe()}"
                    + _recorded_before(intake, start),
                )
            except Conflict as error:
                index = start + (error.item or 0)
                fail(
                    EXIT_FAILED,
                    f"{file} {_where(intake, index)}: conflict: source {error.system}/{error.key} "
                    "was recorded with other content [exists_with_different_content]"
                    + _recorded_before(intake, start),
                )
            results.extend(result.results)
            position = result.position
            progress.advance(task, len(chunk))
    document = {"position": position, "results": results}
    replayed = sum(1 for item in results if item.replayed)
    print_rows(
        fmt,
        document,
        f"posted {len(results) - replayed}, replayed {replayed}, log at {position}",
        ["event_id", "position", "points", "replayed"],
        [[item.event_id, item.position, item.points, item.replayed] for item in results],
    )


def _where(intake: Intake | None, index: int) -> str:
    return f"line {index + 1}" if intake is None else intake.where(index)


def _recorded_before(intake: Intake | None, start: int) -> str:
    """What earlier batches recorded, when a later one is refused."""
    if not start:
        return ""
    if intake is None:
        return f" (lines 1–{start} were recorded)"
    return f" (the {start} events through {intake.where(start - 1)} were recorded)"


def _errors_in_words(errors: list[RowError]) -> str:
    rows = len({(error.sheet, error.row) for error in errors})
    return f"{len(errors)} error{'s' * (len(errors) != 1)} in {rows} row{'s' * (rows != 1)}"


def _print_errors(fmt: Format, errors: list[RowError], document: Any) -> None:
    sheets = any(error.sheet for error in errors)
    ordered = sorted(errors, key=lambda error: (error.sheet or "", error.row))
    # The message says what to change: it wraps rather than being the column hidden to fit.
    columns = [
        column("sheet"),
        column("row", Kind.int),
        column("column"),
        column("cell"),
        column("rule"),
        column("message", wrap=True),
    ]
    rows = [[e.sheet, e.row, e.column, e.cell, e.rule, e.message] for e in ordered]
    if not sheets:
        columns, rows = columns[1:], [row[1:] for row in rows]
    print_rows(fmt, document, f"{_errors_in_words(errors)}; nothing was recorded", columns, rows)


def _dry_run(file: Path, intake: Intake, database: str | None, posted_by: str, fmt: Format) -> None:
    """Decide every decoded event against the log (recording nothing) and list every error of the file:
    the rows that did not decode, then the refusals of the ones that did."""
    errors = list(intake.errors)
    result: DryRun | None = None
    if intake.events:
        # A dry run must not create a ledger: it reads an existing one.
        with _opened(database, create=False) as ledger:
            try:
                result = ledger.check(intake.events, posted_by=posted_by)
            except InvalidInput as error:
                fail(EXIT_INVALID, f"{file}: {error.describe()}")
        for item in result.items:
            if item.outcome in ("invalid", "conflict"):
                assert item.rule is not None and item.message is not None
                message = item.message
                if item.outcome == "conflict" and item.replay_of is not None:
                    message += f" (first at {intake.where(item.replay_of)})"
                errors.append(intake.error_at(item.item, item.field, item.rule, message))
    elif not errors:
        fail(EXIT_INVALID, f"{file}: no events")
    if errors:
        document = {
            "valid": False,
            "position": result.position if result else None,
            "errors": sorted(errors, key=lambda error: (error.sheet or "", error.row)),
        }
        _print_errors(fmt, errors, document)
        fail(EXIT_INVALID, f"{file}: {_errors_in_words(errors)}; nothing was recorded (dry run)")
    assert result is not None
    outcomes = Counter(item.outcome for item in result.items)
    points = sum((item.points or Decimal(0) for item in result.items if item.outcome == "new"), Decimal(0))
    items = [
        {
            "sheet": intake.sheet_of(item.item),
            "row": intake.row_of(item.item),
            "where": intake.where(item.item),
            "type": item.type,
            "cadre_id": getattr(intake.events[item.item], "cadre_id", None),
            "outcome": item.outcome,
            "points": item.points,
        }
        for item in result.items
    ]
    print_rows(
        fmt,
        {"valid": True, "position": result.position, "items": items},
        f"dry run: would record {outcomes['new']} (points {points:.2f}), replay {outcomes['replay']}; "
        f"nothing was recorded (log at {result.position})",
        ["where", "type", "cadre_id", "outcome", "points"],
        [[i["where"], i["type"], i["cadre_id"], i["outcome"], i["points"]] for i in items],
    )


class TemplateFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


def template(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="The event type, e.g. merit.awarded")],
    fmt: Annotated[TemplateFormat, typer.Option("--format", "-f", help="xlsx or csv")] = TemplateFormat.xlsx,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The file to write (default: standard output)"),
    ] = None,
) -> None:
    """Write an empty spreadsheet for one event type to fill in and `ledger post`: the header (the
    event's fields) and one example row to replace."""
    if event_type not in POSTABLE_EVENT_TYPES:
        fail(
            EXIT_INVALID,
            f"{event_type!r} is not an event type that is posted; one of: "
            + ", ".join(sorted(POSTABLE_EVENT_TYPES)),
        )
    if output is None and fmt is TemplateFormat.xlsx and sys.stdout.isatty():
        fail(EXIT_INVALID, "an .xlsx is not for the terminal: give -o FILE.xlsx (or --format csv)")
    try:
        if output is None:
            target = sys.stdout.buffer
            _write_template(event_type, fmt, target)
            target.flush()
        else:
            with output.open("wb") as target:
                _write_template(event_type, fmt, target)
    except OSError as error:
        fail(EXIT_INVALID, f"cannot write {output}: {error.strerror}")
    if output is not None:
        err.print(f"wrote the {fmt.value} template of {event_type} to {output}; replace the example row")


def _write_template(event_type: str, fmt: TemplateFormat, target: IO[bytes]) -> None:
    if fmt is TemplateFormat.csv:
        target.write(template_csv(event_type))
    else:
        write_xlsx_template(event_type, target)
