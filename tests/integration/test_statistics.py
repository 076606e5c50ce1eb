"""Bulk loads leave the planner's statistics fresh (issue 11, item 4): after an import, a demo seeding and a
rebuild of the read models, PostgreSQL has analyzed the tables the reads use — before, nothing ran ANALYZE
and a cadre's history scanned the whole chain table until autovacuum came by.

Checked through `pg_stat_user_tables.last_analyze`, which only an explicit ANALYZE sets (autovacuum sets
`last_autoanalyze`); on SQLite the same calls run `PRAGMA optimize` and must simply succeed.
"""

from __future__ import annotations

import io
from datetime import date

from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app
from ledger.domain.events import MeritAwarded, Source
from ledger.projections.service import Projections
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql


def analyzed(url: str) -> set[str]:
    rows = raw_sql(
        url,
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
        "AND last_analyze IS NOT NULL",
    )
    return {row[0] for row in rows}


def small_log(ledger: Ledger) -> None:
    ledger.post(
        [registration("C1")]
        + [
            MeritAwarded(
                cadre_id="C1",
                effective_on=date(2024, 6, 1),
                source=Source(system="hr", key=f"m{n}"),
                award="citation",
                level="unit",
            )
            for n in range(5)
        ]
    )


def test_an_import_analyzes_the_log_tables(postgres_url: str, sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, clock=fixed_clock) as source:
        small_log(source)
        export = io.BytesIO()
        source.export(export)
        source.analyze()  # SQLite: PRAGMA optimize, no error
    with Ledger.open(postgres_url, clock=fixed_clock, publish_illustrative=False) as target:
        assert not {"ledger_events", "ledger_chain"} & analyzed(postgres_url)
        target.import_(io.BytesIO(export.getvalue()))
        assert {"ledger_events", "ledger_chain"} <= analyzed(postgres_url)


def test_a_rebuild_analyzes_the_log_and_its_facts(postgres_url: str) -> None:
    with Ledger.open(postgres_url, clock=fixed_clock) as ledger:
        small_log(ledger)
        projections = Projections.open(ledger)
        try:
            projections.rebuild()
            version = projections.version
        finally:
            projections.close()
        assert {"ledger_events", "ledger_chain", f"projection_facts_v{version}"} <= analyzed(postgres_url)


def test_seeding_the_demo_analyzes_the_log(postgres_url: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--scale", "small", "--database", postgres_url])
    assert result.exit_code == 0, result.output
    assert {"ledger_events", "ledger_chain"} <= analyzed(postgres_url)
