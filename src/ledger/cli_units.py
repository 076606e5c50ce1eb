"""`ledger units …`: units rated by enterprises (市场主体评部门) — rankings, escalations, one unit."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli_common import Database
from ledger.cli_reading import (
    AsOf,
    ColumnsOption,
    ExcelOption,
    KnownAt,
    LangOption,
    OutputOption,
    PeriodOption,
    ReadFormat,
    ReadFormatOption,
    WideOption,
    as_of_date,
    known_at_value,
    output_of,
    print_view,
    projections_of,
)
from ledger.projections import tables
from ledger.sheets import Lang

__all__ = ["units_app"]

units_app = typer.Typer(
    help="Units rated by enterprises (市场主体评部门): rankings, escalations, one unit.", no_args_is_help=True
)


@units_app.command("rankings")
def rankings(
    period: PeriodOption,
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """A period's ranking of units: score, ratings, dissatisfied votes, rank with ties, movement."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.unit_rankings(period, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    print_view(how, view, tables.unit_rankings_sheets(view))


@units_app.command("escalations")
def escalations(
    period: PeriodOption,
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """Units in the bottom for consecutive periods: ladder step, action, the leader named, what was posted."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.unit_escalations(
            period, as_of=as_of_date(as_of), known_at=known_at_value(known_at)
        )
    print_view(how, view, tables.unit_escalations_sheets(view))


@units_app.command("show")
def show(
    unit_id: Annotated[str, typer.Argument(help="The unit's id")],
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """A unit: its details and its standing in every period it was rated in (`--format json` adds ratings)."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.unit(unit_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    print_view(how, view, tables.unit_sheets(view))
