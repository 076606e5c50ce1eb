"""B1 — library ingest: `Ledger.post` of the city's events in batches of 1,000 into a SQLite file, chain on.

What is measured: events per second of `Ledger.post(batch)` over the 100,000 events that follow the city's
3,900 initial registrations (every event the demo posts in the first months, in its order, cut into
batches of exactly 1,000; reversals and accruals left out, see `workload.IngestWorkload`). Each repetition
starts from a copy of a ledger that holds the policy and the registrations, opens it, folds it into the
writer's knowledge (`load_all`, not timed) and times the posts: the policy decides each event's points, the
source keys are checked, the events, their chain rows and source keys are written in one transaction per
batch, committed (SQLite WAL, `synchronous` at its default FULL: one fsync per commit).

Baselines, in the same run, on the same disk:
- eventsourcing used as its documentation shows: a plain `Application` with an `Aggregate` subclass (one
  aggregate per cadre, `@event` methods, the default JSON transcoder), the core SQLite module in a separate
  temporary file; one `repository.get` + command + `save` per event, so one transaction per event. It runs
  on the first 10,000 of the same events (at a few thousand events per second, 100,000 would take minutes);
- raw SQLite `executemany` of the very rows B1 wrote (the events, chain and Merkle tree rows, read back from
  B1's file) into a copy of the same registered ledger: same schema and indexes, same pragmas, one
  transaction per 1,000 events. That is the floor of what the ledger's writes cost in SQLite itself.

Warm-up: one short run (10 batches) of each before the timed repetitions; three repetitions; medians.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Final

import msgspec
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks.workload import (
    IngestWorkload,
    Result,
    batches_of,
    clock,
    ingest_workload,
    log,
    median,
    peak_rss_mb,
    percentile,
    registered_ledger,
    scratch_dir,
    url_of,
    working_copy,
)

EVENTS: Final = 100_000
BATCH: Final = 1_000
REPETITIONS: Final = 3
WARM_UP_BATCHES: Final = 10
EVENTSOURCING_EVENTS: Final = 10_000
WARM_UP_EVENTSOURCING_EVENTS: Final = 1_000
TARGET_EVENTS_PER_SECOND: Final = 50_000


def _ledger_run(template: Path, path: Path, batches: list[list[Any]]) -> tuple[float, list[float]]:
    """Post `batches` into a fresh copy of `template`; (seconds, per-batch seconds)."""
    from ledger import Ledger

    working_copy(template, path)
    with Ledger.open(url_of(path), clock=clock) as ledger:
        ledger.load_all()
        latencies = []
        started = time.perf_counter()
        for batch in batches:
            before = time.perf_counter()
            ledger.post(batch, posted_by="bench")
            latencies.append(time.perf_counter() - before)
        seconds = time.perf_counter() - started
    return seconds, latencies


# The eventsourcing baseline: the library as its documentation shows it.


class CadreAccount(Aggregate):
    """One cadre's account, the way eventsourcing's docs write an aggregate: registered once, then one
    `Recorded` event per score event, its payload the event as a client would send it."""

    @staticmethod
    def create_id(cadre_id: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"/cadres/{cadre_id}")

    @event("Registered")
    def __init__(self, cadre_id: str, details: dict[str, Any]) -> None:
        self.cadre_id = cadre_id
        self.details = details
        self.entries: list[dict[str, Any]] = []

    @event("Recorded")
    def record(self, payload: dict[str, Any]) -> None:
        self.entries.append(payload)


class PointsApplication(Application[uuid.UUID]):
    """The docs' application service: get the aggregate, call a command, save — one save per event."""

    def register(self, cadre_id: str, details: dict[str, Any]) -> None:
        self.save(CadreAccount(cadre_id, details))

    def record(self, cadre_id: str, payload: dict[str, Any]) -> None:
        account: CadreAccount = self.repository.get(CadreAccount.create_id(cadre_id))
        account.record(payload)
        self.save(account)


def _eventsourcing_application(path: Path) -> PointsApplication:
    return PointsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


def _payload(event: Any) -> dict[str, Any]:
    # The default transcoder has no `date`: events travel as the JSON-able dicts a client would send.
    payload: dict[str, Any] = msgspec.to_builtins(event)
    return payload


def _eventsourcing_run(path: Path, workload: IngestWorkload, events: list[Any]) -> float:
    """Register the cadres (not timed), then record `events` one save each; seconds for the events."""
    from ledger.domain.events import CadreRegistered

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    application = _eventsourcing_application(path)
    try:
        for registration in workload.registrations:
            application.register(registration.cadre_id, _payload(registration))
        payloads = [(event.cadre_id, _payload(event), isinstance(event, CadreRegistered)) for event in events]
        started = time.perf_counter()
        for cadre_id, payload, registers in payloads:
            if registers:
                application.register(cadre_id, payload)
            else:
                application.record(cadre_id, payload)
        return time.perf_counter() - started
    finally:
        application.factory.close()


# The raw SQLite baseline: the same rows, executemany.


def _rows_written(
    path: Path, after: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    connection = sqlite3.connect(path)
    try:
        events = connection.execute(
            "SELECT originator_id, originator_version, topic, state, rowid FROM stored_events "
            "WHERE rowid > ? ORDER BY rowid",
            (after,),
        ).fetchall()
        chain = connection.execute(
            "SELECT * FROM ledger_chain WHERE position > ? ORDER BY position", (after,)
        ).fetchall()
        tree = connection.execute(
            "SELECT * FROM ledger_merkle WHERE position > ? ORDER BY position", (after,)
        ).fetchall()
    finally:
        connection.close()
    return events, chain, tree


def _raw_run(template: Path, path: Path, rows: tuple[list[Any], list[Any], list[Any]]) -> float:
    """executemany the rows into a copy of the registered ledger (its unique source index included),
    one transaction per BATCH events."""
    events, chain, tree = rows
    working_copy(template, path)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            first, last = events[start][4], events[min(start + BATCH, len(events)) - 1][4]
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO stored_events (originator_id, originator_version, topic, state, rowid) "
                "VALUES (?, ?, ?, ?, ?)",
                events[start : start + BATCH],
            )
            connection.executemany(
                "INSERT INTO ledger_chain VALUES (?, ?, ?, ?)",
                [row for row in chain[start : start + BATCH] if first <= row[0] <= last],
            )
            connection.executemany(
                "INSERT INTO ledger_merkle VALUES (?, ?)",
                [row for row in tree[start : start + BATCH] if first <= row[0] <= last],
            )
            connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


def _commit_seconds(path: Path, commits: int = 50) -> float:
    """The median time of committing one tiny row (WAL, synchronous FULL): about one fsync."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE probe (value INTEGER)")
        times = []
        for value in range(commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO probe VALUES (?)", (value,))
            connection.execute("COMMIT")
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    return median(times)


def _synchronous(path: Path) -> int:
    from ledger import Ledger

    with Ledger.open(url_of(path), clock=clock) as ledger:
        recorder: Any = ledger._application.recorder
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA synchronous")
            value: int = cursor.fetchone()[0]
    return value


def run() -> Result:
    log("B1: building the ingest workload (the city's first months)")
    workload = ingest_workload(EVENTS)
    batches = batches_of(workload.events, BATCH)
    with scratch_dir("b1") as scratch:
        template = registered_ledger(workload.registrations, scratch / "registered.db")
        head_before = len(workload.registrations) + 1  # the policy, then the registrations
        work = scratch / "ledger.db"
        synchronous = _synchronous(working_copy(template, work))
        commit_seconds = _commit_seconds(scratch / "probe.db")

        log("B1: warm-up, then Ledger.post")
        _ledger_run(template, work, batches[:WARM_UP_BATCHES])
        runs = []
        latencies: list[float] = []
        for repetition in range(REPETITIONS):
            seconds, batch_seconds = _ledger_run(template, work, batches)
            runs.append(len(workload.events) / seconds)
            latencies.extend(batch_seconds)
            log(f"B1: repetition {repetition + 1}: {runs[-1]:,.0f} events/s")

        rss = peak_rss_mb()  # the ledger's runs, before the baselines
        log("B1 baseline: raw SQLite executemany of the same rows")
        rows = _rows_written(work, head_before)
        raw_path = scratch / "raw.db"
        _raw_run(template, raw_path, (rows[0][: WARM_UP_BATCHES * BATCH], [], []))
        raw = [len(rows[0]) / _raw_run(template, raw_path, rows) for _ in range(REPETITIONS)]

        log(f"B1 baseline: eventsourcing, one save per event, {EVENTSOURCING_EVENTS:,} events")
        es_path = scratch / "eventsourcing.db"
        _eventsourcing_run(es_path, workload, workload.events[:WARM_UP_EVENTSOURCING_EVENTS])
        subset = workload.events[:EVENTSOURCING_EVENTS]
        es = [len(subset) / _eventsourcing_run(es_path, workload, subset) for _ in range(REPETITIONS)]

    measured = median(runs)
    types: dict[str, int] = {}
    for item in workload.events:
        types[item.type] = types.get(item.type, 0) + 1
    return Result(
        id="B1",
        what="library ingest, batches of 1,000, SQLite file, chain on",
        target=f"≥ {TARGET_EVENTS_PER_SECOND:,} events/s",
        measured=measured,
        unit="events/s",
        met=measured >= TARGET_EVENTS_PER_SECOND,
        baselines=[
            ("eventsourcing as documented, one save per event", median(es)),
            ("raw SQLite executemany of the same rows", median(raw)),
        ],
        peak_rss_mb=rss,
        details={
            "events": len(workload.events),
            "batches": len(batches),
            "event_types": dict(sorted(types.items())),
            "repetitions_events_per_second": [round(value) for value in runs],
            "batch_seconds_p50": median(latencies),
            "batch_seconds_p99": percentile(latencies, 99),
            "eventsourcing_events": len(subset),
            "eventsourcing_repetitions": [round(value) for value in es],
            "raw_sqlite_repetitions": [round(value) for value in raw],
            "sqlite_synchronous": synchronous,
            "commit_of_one_row_ms": commit_seconds * 1000,
        },
    )
