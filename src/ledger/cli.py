"""The shell face: `ledger COMMAND`. Tables for people, `--format json|csv` for machines.

Exit codes (SPEC §10): 0 success; 1 verification failed or idempotency conflict; 2 invalid input or usage.
The database comes from `--database` or `LEDGER_DATABASE_URL` (default `sqlite:///ledger.db`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli_access import keys_app, serve
from ledger.cli_audit import checkpoint, proof_app, signing_app, verify
from ledger.cli_audit import opened as _opened
from ledger.cli_common import (
    EXIT_INVALID,
    Database,
    err,
    fail,
    out,
    principal,
    print_json,
    progress_bar,
)
from ledger.cli_posting import post
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
from ledger.cli_units import units_app

__all__ = ["app", "main"]


app = typer.Typer(
    name="ledger",
    help="cadre-ledger: an event-sourced points ledger for cadre management.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Show or publish the rulebook (policy).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(proof_app, name="proof")
keys_app.add_typer(signing_app, name="signing")
app.add_typer(units_app, name="units")
app.command()(verify)
app.command()(checkpoint)
app.command()(serve)
app.command()(post)


@app.command()
def init(database: Database = None) -> None:
    """Create the ledger (if needed) and publish the packaged illustrative policy."""
    with _opened(database) as ledger:
        out.print(f"ledger {ledger.ledger_id} at position {ledger.head()}", highlight=False)


@app.command()
def history(
    cadre_id: Annotated[str, typer.Argument(help="The cadre's personnel number")],
    database: Database = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A cadre's entries with running totals, as of a date, as known at a moment."""
    with _opened(database, create=False) as ledger:
        page = ledger.history(cadre_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    print_rows(
        fmt,
        page,
        f"{page.cadre_id}: total {page.total} as of {page.as_of}, known at position {page.position}",
        [
            "effective_on",
            "position",
            "event",
            "type",
            "points",
            "counted",
            "running_total",
            "posted_by",
            "source",
            "link",
            "adjustment",
        ],
        [
            [
                entry.effective_on,
                entry.position,
                str(entry.event_id)[:8],
                entry.type,
                entry.points,
                entry.counted_points,
                entry.running_total,
                entry.posted_by,
                f"{entry.source.system}/{entry.source.key}",
                _link(entry.reverses, entry.reversed_by),
                entry.adjustment or "",
            ]
            for entry in page.entries
        ],
    )


def _link(reverses: object, reversed_by: object) -> str:
    """A reversal link in a few characters: the short id of the other event."""
    if reverses is not None:
        return f"reverses {str(reverses)[:8]}"
    if reversed_by is not None:
        return f"reversed by {str(reversed_by)[:8]}"
    return ""


@app.command("export")
def export_(
    file: Annotated[Path, typer.Argument(help="JSONL file to write ('-' for stdout)")],
    database: Database = None,
) -> None:
    """Export the log as JSONL with positions, recording times and hashes."""
    with _opened(database, create=False) as ledger:
        total = ledger.head()
        with progress_bar("exporting", total) as progress:
            task = progress.add_task("exporting", total=total)
            if str(file) == "-":
                written = ledger.export(sys.stdout.buffer, progress=lambda n: progress.advance(task, n))
            else:
                with file.open("wb") as stream:
                    written = ledger.export(stream, progress=lambda n: progress.advance(task, n))
    err.print(f"exported {written} events")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSONL export")],
    database: Database = None,
) -> None:
    """Import an export into an empty ledger, re-verifying every hash of its chain."""
    with (
        _opened(database, publish_illustrative=False) as ledger,
        file.open("rb") as stream,
        progress_bar("importing", None) as progress,
    ):
        task = progress.add_task("importing", total=None)
        imported = ledger.import_(stream, progress=lambda n: progress.advance(task, n))
        head = ledger.head()
    err.print(f"imported {imported} events; log at position {head}")


@app.command()
def accrue(
    period: Annotated[str, typer.Option(help="Period: 2025, 2025Q3, 2025-07 or 2025-W27")],
    database: Database = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Post base points for tenure for every active cadre (idempotent per cadre and period)."""
    with _opened(database) as ledger, progress_bar("accruing", None) as progress:
        task = progress.add_task(f"accruing {period}", total=None)
        result = ledger.accrue(period, posted_by=principal(), progress=lambda n: progress.advance(task, n))
    new = [item for item in result.results if not item.replayed]
    if fmt is Format.json:
        print_json(result)
    else:
        out.print(
            f"{period}: {len(new)} accruals posted, {len(result.results) - len(new)} "
            f"replayed; log at {result.position}",
            highlight=False,
        )


@policy_app.command("show")
def policy_show(
    version: Annotated[str | None, typer.Argument(help="Version (default: in force today)")] = None,
    database: Database = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Print a published rulebook (TOML), or list them all with --format json."""
    with _opened(database, create=False) as ledger:
        policies = ledger.policies()
        today = ledger.today()
    if fmt is not Format.table:
        print_rows(
            fmt,
            [
                {
                    "version": p.version,
                    "effective_from": p.effective_from,
                    "published_on": p.effective_on,
                    "posted_by": p.posted_by,
                }
                for p in policies
            ],
            "policies",
            ["version", "effective_from", "published_on"],
            [[p.version, p.effective_from, p.effective_on] for p in policies],
        )
        return
    chosen = (
        [p for p in policies if p.version == version]
        if version
        else sorted((p for p in policies if p.effective_from <= today), key=lambda p: p.effective_from)[-1:]
    )
    if not chosen:
        fail(EXIT_INVALID, f"no policy {version or 'in force today'}")
    sys.stdout.write(chosen[0].body)


@policy_app.command("publish")
def policy_publish(
    file: Annotated[Path, typer.Argument(help="A TOML rulebook")],
    database: Database = None,
) -> None:
    """Validate a TOML rulebook and publish it into the log (`policy.published`)."""
    try:
        body = file.read_text(encoding="utf-8")
    except OSError as error:
        fail(EXIT_INVALID, f"cannot read {file}: {error.strerror}")
    except UnicodeDecodeError as error:
        fail(
            EXIT_INVALID,
            f"{file} is not UTF-8: invalid byte 0x{error.object[error.start]:02x} at offset {error.start}",
        )
    with _opened(database) as ledger:
        result = ledger.publish_policy(body, posted_by=principal())
    item = result.results[0]
    state = "already published" if item.replayed else "published"
    out.print(f"{state} at position {item.position}", highlight=False)


@app.command()
def demo(
    database: Database = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic city")] = 7,
    scale: Annotated[str, typer.Option(help="small (~200 cadres) or city (3,900 cadres)")] = "small",
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the ledger holds cadres already")
    ] = False,
) -> None:
    """Seed a deterministic synthetic city: units, cadres and three years of events."""
    from ledger.demo import run_demo

    if scale not in ("small", "city"):
        fail(EXIT_INVALID, f"--scale: {scale!r} is not small or city")
    with _opened(database) as ledger:
        if if_empty and ledger.head() > len(ledger.policies()):
            out.print(f"the ledger holds {ledger.head()} events; not seeding", highlight=False)
            return
        started = time.perf_counter()
        with progress_bar("demo", None) as progress:
            task = progress.add_task(f"seeding the {scale} city", total=None)
            advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
            summary = run_demo(ledger, seed=seed, scale=scale, today=ledger.today(), progress=advance)
        ledger.analyze()
        seconds = time.perf_counter() - started
        out.print(
            f"seeded {summary.events_posted} events for {summary.cadres} cadres in "
            f"{summary.units} units in {seconds:.1f} s; log at {ledger.head()}",
            highlight=False,
        )


# The read models (ledger.projections).

Scope = Annotated[
    str,
    typer.Option(
        "--scope", "-s", help="all, unit:<id>, grade:<title>, cohort:principal, cohort:left_leadership"
    ),
]
EachScope = Annotated[
    str,
    typer.Option(
        "--scope",
        "-s",
        help="unit:* (every unit), all, unit:<id>, grade:<title>, cohort:principal, cohort:left_leadership",
    ),
]


@app.command()
def rankings(
    database: Database = None,
    scope: Scope = "all",
    period: Annotated[
        str | None,
        typer.Option(
            "--period", "-p", help="Read as of the period's last day and compare with the period before"
        ),
    ] = None,
    as_of: AsOf = None,
    basis: Annotated[
        str,
        typer.Option(
            "--basis",
            "-b",
            help="total (cumulative) or period (the points of the period; with --as-of, of its quarter)",
        ),
    ] = "total",
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Rank a scope: competition ranks, the policy's tie-breakers, the previous period's rank and movement."""
    with projections_of(database) as projections:
        view = projections.rankings(
            scope, period=period, as_of=as_of_date(as_of), basis=basis, known_at=known_at_value(known_at)
        )
    gained = f"points since {view.since}" if view.since else "total"
    print_rows(
        fmt,
        view,
        f"{view.scope} as of {view.as_of} (previous {view.previous_as_of}), known at {view.position}, "
        f"by {gained}",
        [
            "rank",
            "cadre_id",
            "name",
            "unit_id",
            "grade",
            "total",
            "tenure",
            "merit",
            "deductions",
            "appraisal",
            "evaluation",
            "recall",
            "previous_rank",
            "movement",
        ],
        [
            [
                e.rank,
                e.cadre_id,
                e.name,
                e.unit_id,
                e.grade,
                e.total,
                e.components.tenure,
                e.components.merit,
                e.components.deductions,
                e.components.appraisal,
                e.components.evaluation,
                e.components.recall,
                e.previous_rank,
                movement_text(e.movement),
            ]
            for e in view.entries
        ],
    )


@app.command()
def eligibility(
    cadre_id: Annotated[
        str | None, typer.Argument(help="A cadre; without one, the shortlist of the scope")
    ] = None,
    database: Database = None,
    scope: Scope = "all",
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Whether a cadre may be promoted, with every check; or the promotion shortlist of a scope."""
    with projections_of(database) as projections:
        if cadre_id is None:
            shortlist = projections.shortlist(
                scope, as_of=as_of_date(as_of), known_at=known_at_value(known_at)
            )
            print_rows(
                fmt,
                shortlist,
                f"shortlist of {shortlist.scope} as of {shortlist.as_of}, known at position "
                f"{shortlist.position}: {len(shortlist.entries)} eligible",
                ["rank", "cadre_id", "name", "unit_id", "grade", "total"],
                [[e.rank, e.cadre_id, e.name, e.unit_id, e.grade, e.total] for e in shortlist.entries],
            )
            return
        view = projections.eligibility(
            cadre_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at), scope=scope
        )
    verdict = "eligible" if view.eligible else "not eligible"
    print_rows(
        fmt,
        view,
        f"{view.cadre_id}: {verdict} as of {view.as_of}, known at position {view.position}",
        ["check", "passed", "detail"],
        [[check.check, "yes" if check.passed else "NO", check.detail] for check in view.checks],
    )


@app.command()
def recalls(
    period: PeriodOption,
    database: Database = None,
    scope: EachScope = "unit:*",
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The 回炉 list of a period: the bottom of each pool with enough cadres, and the recalls still open."""
    with projections_of(database) as projections:
        view = projections.recalls(period, scope, known_at=known_at_value(known_at))
    if fmt is Format.table and view.open_recalls:
        print_rows(
            fmt,
            view,
            f"open recalls as of {view.as_of}",
            ["cadre_id", "ordered_on", "period", "reason"],
            [[r.cadre_id, r.ordered_on, r.period, r.reason] for r in view.open_recalls],
        )
    print_rows(
        fmt,
        view,
        f"recall candidates for {view.period} ({view.scope}, basis {view.basis}), "
        f"known at position {view.position}",
        ["cadre_id", "name", "unit_id", "rank", "pool_size", "total"],
        [[c.cadre_id, c.name, c.unit_id, c.rank, c.pool_size, c.total] for c in view.candidates],
    )


@app.command()
def boards(
    period: PeriodOption,
    database: Database = None,
    scope: Scope = "all",
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """红黑榜 of a period: the red board (top, no vetoed cadres) and the black board (bottom)."""
    with projections_of(database) as projections:
        view = projections.boards(period, scope, known_at=known_at_value(known_at))
    rows = [["red", e.rank, e.cadre_id, e.name, e.unit_id, e.total] for e in view.red] + [
        ["black", e.rank, e.cadre_id, e.name, e.unit_id, e.total] for e in view.black
    ]
    print_rows(
        fmt,
        view,
        f"boards of {view.period} ({view.scope}, basis {view.basis}), known at position {view.position}",
        ["board", "rank", "cadre_id", "name", "unit_id", "total"],
        rows,
    )


@app.command()
def escalations(
    period: PeriodOption,
    database: Database = None,
    scope: EachScope = "unit:*",
    known_at: KnownAt = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Cadres in the bottom for consecutive periods, with the ladder step and its action."""
    with projections_of(database) as projections:
        view = projections.escalations(period, scope, known_at=known_at_value(known_at))
    print_rows(
        fmt,
        view,
        f"escalations at {view.period} ({view.scope}, basis {view.basis}), known at position {view.position}",
        ["cadre_id", "name", "unit_id", "streak", "step", "action", "label"],
        [[e.cadre_id, e.name, e.unit_id, e.streak, e.step, e.action, e.label] for e in view.escalations],
    )


@app.command()
def rebuild(
    database: Database = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="Recompute the stored Merkle tree (ledger_merkle) from the log instead, after `verify` "
            "reported it changed",
        ),
    ] = False,
) -> None:
    """Rebuild every read model from the log into a new version while the old one serves, then switch."""
    from ledger.projections.service import Projections
    from ledger.projections.store import FactStore

    if tree:
        with _opened(database, create=False) as ledger:
            started = time.perf_counter()
            written = ledger.rebuild_tree()
        out.print(
            f"recomputed the Merkle tree from the log: {written} rows "
            f"in {time.perf_counter() - started:.1f} s",
            highlight=False,
        )
        return
    with _opened(database, create=False) as ledger:
        projections = Projections(ledger, FactStore(ledger.url))
        try:
            total = ledger.head()
            started = time.perf_counter()
            with progress_bar("rebuilding", total) as progress:
                task = progress.add_task("rebuilding", total=total)
                position = projections.rebuild(progress=lambda n: progress.advance(task, n))
            seconds = time.perf_counter() - started
        finally:
            projections.close()
    rate = position / seconds if seconds else 0.0
    out.print(
        f"rebuilt version {projections.version} through position {position} in {seconds:.1f} s "
        f"({rate:,.0f} events/s)",
        highlight=False,
    )


def main() -> None:
    """Console script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        raise SystemExit(130) from None
