"""`ledger post`: events from a file into the log, in atomic batches."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.access import PRINCIPAL_PATTERN
from ledger.cli_audit import opened as _opened
from ledger.cli_common import EXIT_FAILED, EXIT_INVALID, Database, fail, principal, progress_bar
from ledger.cli_reading import Format, FormatOption, print_rows
from ledger.domain.errors import Conflict, InvalidInput
from ledger.ledger import BATCH_SIZE_MAX
from ledger.wire import decode_jsonl

__all__ = ["post"]


def post(
    file: Annotated[Path, typer.Argument(help="JSONL file, one event per line ('-' for stdin)")],
    database: Database = None,
    posted_by: Annotated[str | None, typer.Option(help="Principal recorded as posted_by")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Post events from a JSONL file in atomic batches of 1,000; replays are marked `replayed`."""
    if posted_by is not None and not re.fullmatch(PRINCIPAL_PATTERN, posted_by):
        fail(
            EXIT_INVALID,
            f"--posted-by: {posted_by!r} is not a principal name (1–64 of A–Z a–z 0–9 . _ : @ -)",
        )
    try:
        stream = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    except OSError as error:
        fail(EXIT_INVALID, f"cannot read {file}: {error.strerror}")
    with stream:
        try:
            # A line that is not UTF-8 is named with the offset of its first bad byte (`NotUtf8`).
            events = decode_jsonl(stream)
        except InvalidInput as error:
            fail(EXIT_INVALID, f"{file}: {error.describe()}")
        except OSError as error:  # a read error after opening (a directory, a device that failed)
            fail(EXIT_INVALID, f"cannot read {file}: {error.strerror}")
    if not events:
        fail(EXIT_INVALID, f"{file}: no events")
    results = []
    position = 0
    with _opened(database) as ledger, progress_bar("posting", len(events)) as progress:
        task = progress.add_task("posting", total=len(events))
        for start in range(0, len(events), BATCH_SIZE_MAX):
            chunk = events[start : start + BATCH_SIZE_MAX]
            try:
                result = ledger.post(chunk, posted_by=posted_by or principal())
            except InvalidInput as error:
                where = f"line {start + (error.item or 0) + 1}"
                fail(
                    EXIT_INVALID,
                    f"{file} {where}: "
                    f"{InvalidInput(error.message, field=error.field, rule=error.rule).describe()}"
                    + (f" (lines 1–{start} were recorded)" if start else ""),
                )
            except Conflict as error:
                where = f"line {start + (error.item or 0) + 1}"
                fail(
                    EXIT_FAILED,
                    f"{file} {where}: conflict: source {error.system}/{error.key} "
                    "was recorded with other content [exists_with_different_content]"
                    + (f" (lines 1–{start} were recorded)" if start else ""),
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
