"""The shell face: `ledger COMMAND`. Tables for people, `--format json|csv` for machines.

Exit codes (SPEC §10): 0 success; 1 verification failed or idempotency conflict; 2 invalid input or usage.
The database comes from `--database` or `LEDGER_DATABASE_URL` (default `sqlite:///ledger.db`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, cast

import msgspec
import typer

from ledger.cli_access import keys_app, serve
from ledger.cli_audit import checkpoint, proof_app, signing_app, verify
from ledger.cli_audit import opened as _opened
from ledger.cli_common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    Database,
    err,
    fail,
    out,
    principal,
    print_json,
    progress_bar,
)
from ledger.cli_posting import post, template
from ledger.cli_reading import (
    AsOf,
    ColumnsOption,
    ExcelOption,
    Format,
    FormatOption,
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
    print_rows,
    print_view,
    projections_of,
)
from ledger.cli_units import units_app
from ledger.domain.errors import Conflict
from ledger.projections import tables
from ledger.sheets import Lang

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


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        out.print(f"cadre-ledger {version('cadre-ledger')}", highlight=False)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """cadre-ledger: an event-sourced points ledger for cadre management."""


app.add_typer(keys_app, name="keys")
app.add_typer(proof_app, name="proof")
keys_app.add_typer(signing_app, name="signing")
app.add_typer(units_app, name="units")
app.command()(verify)
app.command()(checkpoint)
app.command()(serve)
app.command()(post)
app.command()(template)


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
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """A cadre's entries with running totals, as of a date, as known at a moment."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with _opened(database, create=False) as ledger:
        page = ledger.history(cadre_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at))
    print_view(how, page, tables.history_sheets(page))


@app.command("export")
def export_(
    file: Annotated[Path, typer.Argument(help="JSONL file to write ('-' for stdout)")],
    database: Database = None,
) -> None:
    """Export the log as JSONL with positions, recording times and hashes."""
    with _opened(database, create=False) as ledger:
        total = ledger.head()
        with progress_bar() as progress:
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
    total = _export_size(file)
    with (
        _opened(database, publish_illustrative=False) as ledger,
        file.open("rb") as stream,
        progress_bar() as progress,
    ):
        task = progress.add_task("importing", total=total)
        imported = ledger.import_(stream, progress=lambda n: progress.advance(task, n))
        head = ledger.head()
    err.print(f"imported {imported} events; log at position {head}")


def _export_size(file: Path) -> int | None:
    """The number of events an export holds, from its header line (the bar's total); None when the header
    cannot be read — the import itself then says what is wrong with the file."""
    try:
        with file.open("rb") as stream:
            header = msgspec.json.decode(stream.readline())
    except (OSError, msgspec.DecodeError):
        return None
    position = header.get("position") if isinstance(header, dict) else None
    return position if isinstance(position, int) and position >= 0 else None


@app.command()
def accrue(
    period: Annotated[str, typer.Option(help="Period: 2025, 2025Q3, 2025-07 or 2025-W27")],
    database: Database = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Post base points for tenure for every active cadre (idempotent per cadre and period)."""
    with _opened(database) as ledger, progress_bar() as progress:
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
    today: Annotated[
        str | None,
        typer.Option(
            "--today",
            help="The city's last day, YYYY-MM-DD (default today): the same day, seed and scale make the "
            "same city",
        ),
    ] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the ledger holds cadres already")
    ] = False,
) -> None:
    """Seed a deterministic synthetic city: units, cadres and three years of events."""
    from ledger.demo import Scale, generate_city, run_demo

    if scale not in ("small", "city"):
        fail(EXIT_INVALID, f"--scale: {scale!r} is not small or city")
    last_day = None
    if today is not None:
        try:
            last_day = date.fromisoformat(today)
        except ValueError:
            fail(EXIT_INVALID, f"--today: {today!r} is not a date YYYY-MM-DD")
    with _opened(database) as ledger:
        if last_day is not None and last_day > ledger.today():
            # Its last events would be dated after today, which the ledger refuses to record.
            fail(EXIT_INVALID, f"--today: {last_day} is after today ({ledger.today()})")
        if if_empty and ledger.head() > len(ledger.policies()):
            out.print(f"the ledger holds {ledger.head()} events; not seeding", highlight=False)
            return
        day = last_day or ledger.today()
        started = time.perf_counter()
        # The bar counts batches (a month's registrations, awards, accruals…): their number is known
        # beforehand, the number of accruals only once they are posted.
        try:
            batches = sum(1 for _ in generate_city(seed=seed, scale=cast(Scale, scale), today=day))
        except ValueError as error:  # a day before the demo's calendar begins
            fail(EXIT_INVALID, f"--today: {error}")
        with progress_bar() as progress:
            task = progress.add_task(f"seeding the {scale} demo (batches)", total=batches)
            advance: Callable[[int], None] = lambda _n: progress.advance(task, 1)  # noqa: E731
            try:
                summary = run_demo(ledger, seed=seed, scale=scale, today=day, progress=advance)
            except Conflict as error:
                fail(
                    EXIT_FAILED,
                    f"{error}: this ledger holds another demo city (another --today, seed or scale); "
                    "seed a fresh database, or pass --if-empty to leave it as it is",
                )
        ledger.analyze()
        # Fold the city into the read models and write their index file now, so that the first read
        # answers at once instead of building them (and saying so).
        from ledger.projections.service import Projections

        projections = Projections.open(ledger)
        try:
            projections.save_index()
        finally:
            projections.close()
        seconds = time.perf_counter() - started
        out.print(
            f"seeded {summary.events_posted - summary.replayed} events"
            + (f" ({summary.replayed} were recorded already)" if summary.replayed else "")
            + f" for {summary.cadres} cadres in "
            f"{summary.units} units up to {day} in {seconds:.1f} s; log at {ledger.head()}",
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
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """Rank a scope: competition ranks, the policy's tie-breakers, the previous period's rank and movement."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.rankings(
            scope, period=period, as_of=as_of_date(as_of), basis=basis, known_at=known_at_value(known_at)
        )
    print_view(how, view, tables.rankings_sheets(view, period=period))


@app.command()
def eligibility(
    cadre_id: Annotated[
        str | None, typer.Argument(help="A cadre; without one, the shortlist of the scope")
    ] = None,
    database: Database = None,
    scope: Scope = "all",
    as_of: AsOf = None,
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """Whether a cadre may be promoted, with every check; or the promotion shortlist of a scope."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        if cadre_id is None:
            shortlist = projections.shortlist(
                scope, as_of=as_of_date(as_of), known_at=known_at_value(known_at)
            )
            print_view(how, shortlist, tables.shortlist_sheets(shortlist))
            return
        view = projections.eligibility(
            cadre_id, as_of=as_of_date(as_of), known_at=known_at_value(known_at), scope=scope
        )
    print_view(how, view, tables.eligibility_sheets(view))


@app.command()
def recalls(
    period: PeriodOption,
    database: Database = None,
    scope: EachScope = "unit:*",
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """The 回炉 list of a period: the bottom of each pool with enough cadres, and the recalls still open."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.recalls(period, scope, known_at=known_at_value(known_at))
    # The open recalls are a table above the candidates and a second worksheet; CSV has room for one.
    print_view(how, view, tables.recalls_sheets(view))


@app.command()
def boards(
    period: PeriodOption,
    database: Database = None,
    scope: Scope = "all",
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """红黑榜 of a period: the red board (top, no vetoed cadres) and the black board (bottom)."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.boards(period, scope, known_at=known_at_value(known_at))
    print_view(how, view, tables.boards_sheets(view))


@app.command()
def escalations(
    period: PeriodOption,
    database: Database = None,
    scope: EachScope = "unit:*",
    known_at: KnownAt = None,
    fmt: ReadFormatOption = ReadFormat.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
    excel: ExcelOption = False,
    lang: LangOption = Lang.en,
    output: OutputOption = None,
) -> None:
    """Cadres in the bottom for consecutive periods, with the ladder step and its action."""
    how = output_of(fmt, columns=columns, wide=wide, excel=excel, lang=lang, file=output)
    with projections_of(database) as projections:
        view = projections.escalations(period, scope, known_at=known_at_value(known_at))
    print_view(how, view, tables.escalations_sheets(view))


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
            with progress_bar() as progress:
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
    except BrokenPipeError:
        # `ledger history … | head`: the reader left; say nothing more (stdout is gone).
        sys.stderr.close()
        raise SystemExit(141) from None
    except OSError as error:
        if error.filename is not None:
            raise
        # Writing to standard output failed (a full disk behind `> file`): one line, not a traceback.
        err.print(f"[bold red]error:[/] cannot write the output: {error.strerror}", highlight=False)
        raise SystemExit(EXIT_FAILED) from None
