"""`ledger units …`: units rated by enterprises (市场主体评部门) — rankings, escalations, one unit."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli_common import Database
from ledger.cli_reading import (
    AsOf,
    Format,
    FormatOption,
    KnownAt,
    PeriodOption,
    as_of_date,
    known_at_value,
    movement_text,
    print_rows,
    projections_of,
)

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
    fmt: FormatOption = Format.table,
) -> None:
    """A period's ranking of units: score, ratings, dissatisfied votes, rank with ties, movement."""
    with projections_of(database) as projections:
        view = projections.unit_rankings(period, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    panel = f"panel of {view.panel.size} ({view.panel.method})" if view.panel else "no panel"
    print_rows(
        fmt,
        view,
        f"units of {view.period} as of {view.as_of}, known at {view.position} — {panel}, "
        f"{view.aggregation}, bottom {view.bottom_count}",
        [
            "rank",
            "unit_id",
            "name",
            "score",
            "ratings",
            "dissatisfied",
            "previous_rank",
            "movement",
            "bottom",
        ],
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
    )


@units_app.command("escalations")
def escalations(
    period: PeriodOption,
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Units in the bottom for consecutive periods: ladder step, action, the leader named, what was posted."""
    with projections_of(database) as projections:
        view = projections.unit_escalations(
            period, as_of=as_of_date(as_of), known_at=known_at_value(known_at)
        )
    print_rows(
        fmt,
        view,
        f"unit escalations at {view.period} as of {view.as_of}, known at {view.position}",
        ["unit_id", "name", "rank", "score", "streak", "step", "label", "leader", "consequence", "posted"],
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
    )


@units_app.command("show")
def show(
    unit_id: Annotated[str, typer.Argument(help="The unit's id")],
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A unit: its details and its standing in every period it was rated in (`--format json` adds ratings)."""
    with projections_of(database) as projections:
        view = projections.unit(unit_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    print_rows(
        fmt,
        view,
        f"{view.unit_id} {view.name or ''} ({view.kind or 'unit'}) as of {view.as_of}, "
        f"known at {view.position}",
        ["period", "rank", "of", "score", "ratings", "dissatisfied", "bottom", "streak", "step", "action"],
        [
            [
                p.period,
                p.rank,
                p.of,
                p.score,
                p.ratings,
                p.dissatisfied,
                "yes" if p.in_bottom else "",
                p.streak or "",
                p.step,
                p.action,
            ]
            for p in view.periods
        ],
    )
