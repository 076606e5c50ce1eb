"""What both shell faces share (`ledger.cli` and `ledger.cli_access`): exit codes, consoles, the database
option, and the ways a document is printed."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated, Any, Final, NoReturn

import msgspec
import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_OK",
    "Database",
    "err",
    "fail",
    "out",
    "principal",
    "print_json",
    "print_table",
    "progress_bar",
    "table_width",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # verification failed, or an idempotency conflict
EXIT_INVALID: Final = 2  # invalid input or usage
TABLE_WIDTH_OFF_TERMINAL: Final = 160

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        envvar="LEDGER_DATABASE_URL",
        help="Database URL: sqlite:///ledger.db (default) or postgresql://…",
    ),
]


def fail(code: int, message: str) -> NoReturn:
    """Print an error (its `[rule]` kept: rich would read it as markup) and exit with `code`."""
    sys.stdout.flush()  # what was printed before the error comes before it, also when both are captured
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def print_json(document: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    sys.stdout.flush()


def table_width() -> int:
    """The width a table may take: the terminal's; off a terminal `COLUMNS` if set, else 160 (rich would
    assume 80 for a pipe or a file, and a table for people deserves more)."""
    if out.is_terminal:
        return out.width
    columns = os.environ.get("COLUMNS", "")
    return (
        int(columns)
        if columns.isascii() and columns.isdigit() and int(columns) > 0
        else TABLE_WIDTH_OFF_TERMINAL
    )


def print_table(table: RenderableType) -> None:
    """Print a table at `table_width()`, its title and caption wrapped to it (`soft_wrap` would let them run
    past the edge)."""
    console = out if out.is_terminal else Console(width=table_width())
    console.print(table, soft_wrap=False)


class RateColumn(TextColumn):
    """Items per second, so a long command shows how fast it goes as well as how far."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


def progress_bar() -> Progress:
    """A bar on stderr with the count, its total, the rate and the time (each task added to it names itself
    and its total); off a terminal it stays silent."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    )


def principal() -> str:
    """The principal a CLI post records as `posted_by` when none is given: `cli:<login>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _flags_without_a_type() -> None:
    """typer 0.29 with click 8.5 prints `<bool>` beside every plain flag (`--if-empty <bool>`), as if it
    took a value; a flag takes none, so its type column stays empty, as click's own help shows it."""
    import typer.core

    shown = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type()
