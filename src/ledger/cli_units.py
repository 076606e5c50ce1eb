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
    column,
    known_at_value,
    movement_text,
    output_of,
    print_rows,
    projections_of,
)
from ledger.sheets import Kind, Lang

__all__ = ["units_app"]

units_app = typer.Typer(
    help="Units rated by enterprises (市场主体评部门): rankings, escalations, one unit.", no_args_is_help=True
)

UNIT_RANKING_COLUMNS = (
    column("rank", Kind.int),
    column("unit_id", zh="单位编号"),
    column("name", zh="单位名称", wrap=True),
    column("score", Kind.points),
    column("ratings", Kind.int),
    column("dissatisfied", Kind.int),
    column("previous_rank", Kind.int, essential=False),
    column("movement"),  # text: `+1`, `-2`, `=`, `new`
    column("bottom"),
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
    panel = f"panel of {view.panel.size} ({view.panel.method})" if view.panel else "no panel"
    panel_zh = f"评议企业 {view.panel.size} 家（{view.panel.method}）" if view.panel else "未抽签"
    print_rows(
        how,
        view,
        f"units of {view.period} as of {view.as_of}, known at {view.position} — {panel}, "
        f"{view.aggregation}, bottom {view.bottom_count}",
        UNIT_RANKING_COLUMNS,
        [
            [
                e.rank,
                e.unit_id,
                e.name,
                e.score,
                e.ratings,
                e.dissatisfied,
                e.previous_rank,
                movement_text(e.movement) if e.rank is not None else "",
                "yes" if e.in_bottom else "",
            ]
            for e in view.entries
        ],
        title_zh=f"{view.period} 市场主体评部门排名：截至 {view.as_of}，以日志序号 {view.position} 时所知 — "
        f"{panel_zh}，{view.aggregation}，末位 {view.bottom_count} 名",
        name=f"units {view.period}",
    )


UNIT_ESCALATION_COLUMNS = (
    column("unit_id", zh="单位编号"),
    column("name", zh="单位名称", wrap=True),
    column("rank", Kind.int),
    column("score", Kind.points, essential=False),
    column("streak", Kind.int),
    column("step", Kind.int),
    column("label", wrap=True),
    column("leader", wrap=True),
    column("consequence", essential=False),
    column("posted"),
)


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
    print_rows(
        how,
        view,
        f"unit escalations at {view.period} as of {view.as_of}, known at {view.position}",
        UNIT_ESCALATION_COLUMNS,
        [
            [
                e.unit_id,
                e.name,
                e.rank,
                e.score,
                e.streak,
                e.step,
                e.label,
                f"{e.leader.cadre_id} {e.leader.name}" if e.leader else "",
                e.consequence,
                "" if e.consequence_posted is None else "yes" if e.consequence_posted else "no",
            ]
            for e in view.escalations
        ],
        title_zh=f"{view.period} 单位连续末位处理：截至 {view.as_of}，以日志序号 {view.position} 时所知",
        name=f"unit escalations {view.period}",
    )


UNIT_PERIOD_COLUMNS = (
    column("period"),
    column("rank", Kind.int),
    column("of", Kind.int),
    column("score", Kind.points),
    column("ratings", Kind.int),
    column("dissatisfied", Kind.int),
    column("bottom"),
    column("streak", Kind.int),
    column("step", Kind.int),
    column("action"),
)


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
    print_rows(
        how,
        view,
        f"{view.unit_id} {view.name or ''} ({view.kind or 'unit'}) as of {view.as_of}, "
        f"known at {view.position}",
        UNIT_PERIOD_COLUMNS,
        [
            [
                p.period,
                p.rank,
                p.of,
                p.score,
                p.ratings,
                p.dissatisfied,
                "yes" if p.in_bottom else "",
                p.streak or None,  # no streak is an empty cell, not a 0
                p.step,
                p.action,
            ]
            for p in view.periods
        ],
        title_zh=f"{view.unit_id} {view.name or ''}（{view.kind or '单位'}）：截至 {view.as_of}，"
        f"以日志序号 {view.position} 时所知",
        name=f"unit {view.unit_id}",
    )
