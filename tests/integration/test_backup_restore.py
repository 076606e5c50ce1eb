"""Backup and restore: a ledger exported from one store and imported into the other is the same ledger.

Goal: SPEC §8 and §10 — `export` / `import` move a ledger between SQLite and PostgreSQL with nothing lost or
changed: the same `ledger_id`, head and head hash; the chain verifies; a checkpoint of the original holds
against the copy (so an auditor's checkpoints survive a restore); the copy exports byte for byte the same
file; and the read models built from the copy answer exactly as those of the original. Method: build a log
with every kind of event (registrations, transfers, grade changes, awards, deductions, reversals, tenure
accruals, appraisals, evaluations, recalls, investigations, a veto, a departure), export it, import it into
a fresh schema or file of the other store, and compare. The demo city (about 21,000 events) makes the same
round trip SQLite → PostgreSQL → SQLite.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ledger import Ledger
from ledger.demo import run_demo
from ledger.domain.events import (
    AppraisalRecorded,
    CadreDeparted,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreRegistered,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    RecallCompleted,
    RecallOrdered,
    Scores,
    Source,
    VetoApplied,
)
from ledger.projections.service import Projections
from tests.conftest import TODAY, fixed_clock
from tests.integration.crash_writer import CADRES, batch_for, setup_events

pytestmark = pytest.mark.slow

SEED = 3
SMALL_LOG_EVENTS_MAX = 1_000  # one import batch: see test_an_export_of_more_than_one_import_batch_imports
DEMO_SEED = 7
ACCRUED_PERIODS = ("2024Q1", "2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3")
PERIODS = ("2024Q4", "2025Q1", "2025Q3", "2025")
AS_OF_DAYS = (date(2024, 9, 30), date(2025, 3, 31), TODAY)
HISTORIES = 5
RESULTS = ("excellent", "competent", "basically_competent", "incompetent")


def _source(name: str) -> Source:
    return Source(system="backup", key=name)


def build_small_log(ledger: Ledger) -> None:
    """A log under one import batch with every kind of event."""
    ledger.post(setup_events(), posted_by="setup")
    awarded: list[tuple[MeritAwarded, Any]] = []
    number = 0
    while ledger.head() < 500:
        batch = batch_for(SEED, number, system="backup")
        number += 1
        if len(batch) > 40:
            continue
        result = ledger.post(batch, posted_by="backup")
        awarded += [
            (event, item)
            for event, item in zip(batch, result.results, strict=True)
            if isinstance(event, MeritAwarded) and event.cadre_id in CADRES[:6]
        ]
    ledger.post(
        [
            EntryReversed(
                cadre_id=event.cadre_id,
                effective_on=TODAY,
                source=_source(f"reversal-{index}"),
                target_event_id=item.event_id,
                reason="appeal upheld (复核)",
            )
            for index, (event, item) in enumerate(awarded[:5])
        ],
        posted_by="backup",
    )
    events: list[EventBase] = []
    for index, cadre_id in enumerate(CADRES):
        events.append(
            AppraisalRecorded(
                cadre_id=cadre_id,
                effective_on=date(2025, 1, 10),
                source=_source(f"appraisal-{cadre_id}"),
                year=2024,
                result=RESULTS[index % len(RESULTS)],  # type: ignore[arg-type]
            )
        )
        events.append(
            EvaluationRecorded(
                cadre_id=cadre_id,
                effective_on=date(2025, 4, 5),
                source=_source(f"evaluation-{cadre_id}"),
                period="2025Q1",
                scores=Scores(
                    self=Decimal(90 - index), section=Decimal(80 + index), leadership=Decimal("75.5")
                ),
            )
        )
    events += [
        RecallOrdered(
            cadre_id="C3",
            effective_on=date(2025, 4, 2),
            source=_source("recall"),
            period="2025Q1",
            reason="bottom",
        ),
        RecallCompleted(
            cadre_id="C3", effective_on=date(2025, 5, 20), source=_source("recalled"), outcome="passed"
        ),
        InvestigationOpened(
            cadre_id="C4", effective_on=date(2025, 3, 1), source=_source("open"), reference="JW-1"
        ),
        InvestigationClosed(
            cadre_id="C4", effective_on=date(2025, 4, 1), source=_source("close"), reference="JW-1"
        ),
        VetoApplied(
            cadre_id="C5", effective_on=date(2025, 6, 1), source=_source("veto"), year=2025, reason="一票否决"
        ),
        CadreGradeChanged(
            cadre_id="C6", effective_on=date(2025, 1, 15), source=_source("grade"), grade="四级主任科员"
        ),
        CadreLeftLeadership(cadre_id="C7", effective_on=date(2025, 2, 1), source=_source("left")),
    ]
    ledger.post(events, posted_by="backup")
    for period in ACCRUED_PERIODS:
        ledger.accrue(period, posted_by="backup")
    ledger.post(
        [CadreDeparted(cadre_id="C8", effective_on=TODAY, source=_source("departed"), reason="retired")],
        posted_by="backup",
    )


def build_demo_city(ledger: Ledger) -> None:
    run_demo(ledger, seed=DEMO_SEED, scale="small", today=TODAY)


def exported(ledger: Ledger) -> bytes:
    stream = io.BytesIO()
    ledger.export(stream)
    return stream.getvalue()


def restored(export: bytes, url: str) -> Ledger:
    copy = Ledger.open(url, clock=fixed_clock, publish_illustrative=False)
    copy.import_(io.BytesIO(export))
    return copy


def read_models(ledger: Ledger) -> dict[str, Any]:
    """Rankings of several scopes at several dates, shortlists, boards, recalls and escalations."""
    projections = Projections.open(ledger)
    try:
        units = sorted(projections.index.unit_ids)[:3]
        scopes = ["all", *(f"unit:{unit}" for unit in units), "grade:一级科员", "cohort:principal"]
        scopes.append("cohort:left_leadership")
        views: dict[str, Any] = {}
        for as_of in AS_OF_DAYS:
            for scope in scopes:
                views[f"rankings {scope} {as_of}"] = projections.rankings(scope, as_of=as_of)
            views[f"shortlist {as_of}"] = projections.shortlist("all", as_of=as_of)
        for period in PERIODS:
            views[f"rankings {period}"] = projections.rankings("all", period=period)
            views[f"boards {period}"] = projections.boards(period)
            views[f"recalls {period}"] = projections.recalls(period)
            views[f"escalations {period}"] = projections.escalations(period)
        return {name: msgspec.to_builtins(view) for name, view in views.items()}
    finally:
        projections.close()


def assert_same_ledger(original: Ledger, copy: Ledger, export: bytes) -> None:
    assert copy.ledger_id == original.ledger_id
    assert copy.head() == original.head()
    report = copy.verify()
    assert report.ok, report
    assert report.verified_through == original.head()
    assert report.head_hash == original.verify().head_hash
    held = copy.verify(against=original.checkpoint())
    assert held.ok, f"a checkpoint of the original does not hold against the copy: {held}"
    assert exported(copy) == export, "the copy exports the same file"
    registered = [
        entry.event.cadre_id
        for entry in original.events(after=0, limit=HISTORIES * 10)
        if isinstance(entry.event, CadreRegistered)
    ]
    for cadre_id in registered[:HISTORIES]:
        assert copy.history(cadre_id) == original.history(cadre_id)
    kept, restored_views = read_models(original), read_models(copy)
    assert kept.keys() == restored_views.keys()
    for name, view in kept.items():
        assert restored_views[name] == view, f"{name} differs after the restore"


@pytest.fixture(params=["sqlite to postgres", "postgres to sqlite"])
def two_stores(request: pytest.FixtureRequest, sqlite_url: str, postgres_url: str) -> tuple[str, str]:
    """(original, copy): URLs of an empty SQLite file and an empty PostgreSQL schema, in either order."""
    if request.param == "sqlite to postgres":
        return sqlite_url, postgres_url
    return postgres_url, sqlite_url


def test_a_small_log_exported_and_imported_into_the_other_store_is_the_same_ledger(
    two_stores: tuple[str, str],
) -> None:
    original_url, copy_url = two_stores
    with Ledger.open(original_url, clock=fixed_clock) as original:
        build_small_log(original)
        assert original.head() <= SMALL_LOG_EVENTS_MAX
        export = exported(original)
        with restored(export, copy_url) as copy:
            assert_same_ledger(original, copy, export)


def test_an_export_of_more_than_one_import_batch_imports(tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'original.db'}", clock=fixed_clock) as original:
        original.post(setup_events()[:1])
        original.post(
            [
                MeritAwarded(
                    cadre_id=CADRES[0],
                    effective_on=date(2025, 1, 1),
                    source=_source(f"m{number}"),
                    award="citation",
                    level="unit",
                )
                for number in range(SMALL_LOG_EVENTS_MAX)
            ]
        )
        export = exported(original)
        with restored(export, f"sqlite:///{tmp_path / 'copy.db'}") as copy:
            assert copy.head() == original.head()
            assert copy.verify().ok


def test_a_demo_city_goes_from_sqlite_to_postgresql_and_back_unchanged(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    with Ledger.open(sqlite_url, clock=fixed_clock) as original:
        build_demo_city(original)
        export = exported(original)
        with restored(export, postgres_url) as on_postgres:
            assert_same_ledger(original, on_postgres, export)
            with restored(exported(on_postgres), back_url) as back:
                assert_same_ledger(original, back, export)
