"""B9 — PostgreSQL at par: ingest against raw psycopg of the same rows, import, rebuild and history.

What is measured, on the server named by `LEDGER_BENCH_POSTGRES_URL` or `LEDGER_TEST_POSTGRES_URL` (skipped,
with the reason, when neither answers):

- ingest: `Ledger.post` of B1's workload (the 100,000 events that follow the city's registrations, batches of
  exactly 1,000) into a new schema holding the policy and the registrations, after `load_all` (not timed).
  Baselines in the same run: the very rows the ledger wrote (events and chain rows, read back) written by
  raw psycopg into a scratch table pair of the same shape (`LIKE … INCLUDING ALL`: the same columns and
  indexes, the unique source index included), one transaction per 1,000 events, (a) by `executemany` and
  (b) by `COPY` (binary and text formats; the faster is the baseline); and the same posts into a SQLite
  file (B1's run). Target: ≥ 25,000 events/s and ≥ 0.5× the raw COPY. Alternated: ledger, SQLite,
  executemany, COPY, three times; medians.
- import: `Ledger.import_` of the first 100,000 events of the city's export (a header for that prefix) into
  a new schema, end to end (the whole file verified first, then appended in batches of 1,000).
- rebuild: `Projections.rebuild()` of the city (about a million events) on PostgreSQL, beside the same on a
  copy of the SQLite city in the same run (B5's figure), alternated, three times each; target ≥ 100,000
  events/s. The PostgreSQL city is the cached SQLite city exported and imported (`ledger export` /
  `ledger import`) into the schema `bench_city_<format digest>`, kept between runs: it is reused when its
  head position and hash are the SQLite city's, else imported again (that import's time is reported).
- history: `Ledger.history` of B4's sample (cadres with 225 to 275 events), 20 warm-up reads, then 300;
  p50 and p99, beside the same reads on the SQLite copy; target p50 ≤ 10 ms.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.b1_ingest import BATCH, EVENTS
from benchmarks.b4_history import WARM_UP_READS, _sample
from benchmarks.workload import (
    Result,
    batches_of,
    city,
    clock,
    ingest_workload,
    log,
    median,
    peak_rss_mb,
    percentile,
    postgres_base,
    postgres_schema,
    registered_ledger,
    scratch_dir,
    url_of,
    working_copy,
)

REPETITIONS: Final = 3
WARM_UP_BATCHES: Final = 10
IMPORT_EVENTS: Final = 100_000
TARGET_INGEST: Final = 25_000
TARGET_INGEST_RATIO: Final = 0.5
TARGET_REBUILD: Final = 100_000
TARGET_HISTORY_P50_MS: Final = 10.0
EVENT_COLUMNS: Final = "originator_id, originator_version, topic, state, notification_id"
CHAIN_COLUMNS: Final = "position, event_id, recorded_at, hash"
EVENT_TYPES: Final = ["text", "int8", "text", "bytea", "int8"]
CHAIN_TYPES: Final = ["int8", "text", "text", "bytea"]

Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


@contextlib.contextmanager
def _executemany_appends() -> Iterator[None]:
    """The PostgreSQL append as it was before COPY (the base recorder's `executemany`), for a baseline in
    the same run: everything else of the ledger as it is now."""
    from ledger.store.postgres import LedgerPostgresRecorder
    from ledger.store.recorders import LedgerRecorder

    copying = LedgerPostgresRecorder.__dict__["_insert_rows"]
    LedgerPostgresRecorder._insert_rows = LedgerRecorder._insert_rows  # type: ignore[method-assign]
    try:
        yield
    finally:
        LedgerPostgresRecorder._insert_rows = copying  # type: ignore[method-assign]


# Ingest.


def _registered(url: str, registrations: list[Any]) -> None:
    from ledger import Ledger

    with Ledger.open(url, clock=clock) as ledger:
        for start in range(0, len(registrations), BATCH):
            ledger.post(registrations[start : start + BATCH], posted_by="bench")


def _ledger_run(base: str, registrations: list[Any], batches: list[list[Any]], keep: list[Rows]) -> float:
    """Post `batches` into a new registered schema; events/s. Appends the rows written to `keep`."""
    from ledger import Ledger

    with postgres_schema(base, "bench_b9") as url:
        _registered(url, registrations)
        with Ledger.open(url, clock=clock) as ledger:
            ledger.load_all()
            after = ledger.head()
            started = time.perf_counter()
            for batch in batches:
                ledger.post(batch, posted_by="bench")
            seconds = time.perf_counter() - started
        if not keep:
            keep.append(_rows_written(base, _schema_of(url), after))
    return sum(len(batch) for batch in batches) / seconds


def _rows_written(base: str, schema: str, after: int) -> Rows:
    import psycopg

    with psycopg.connect(base) as connection:
        events = connection.execute(
            f'SELECT {EVENT_COLUMNS} FROM "{schema}".ledger_events WHERE notification_id > %s '
            "ORDER BY notification_id",
            (after,),
        ).fetchall()
        chain = connection.execute(
            f'SELECT {CHAIN_COLUMNS} FROM "{schema}".ledger_chain WHERE position > %s ORDER BY position',
            (after,),
        ).fetchall()
    return [tuple(row) for row in events], [tuple(row) for row in chain]


def _raw_run(base: str, template: str, rows: Rows, how: str) -> float:
    """Write `rows` into a scratch pair of tables shaped like `template`'s, one transaction per BATCH
    events, by `executemany`, binary `COPY` or text `COPY`; events/s."""
    import psycopg

    events, chain = rows
    with postgres_schema(base, "bench_b9_raw") as url, psycopg.connect(base) as connection:
        schema = _schema_of(url)
        connection.execute(f'CREATE SCHEMA "{schema}"')
        for table in ("ledger_events", "ledger_chain"):
            connection.execute(f'CREATE TABLE "{schema}".{table} (LIKE "{template}".{table} INCLUDING ALL)')
        connection.commit()
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            event_rows, chain_rows = events[start : start + BATCH], chain[start : start + BATCH]
            with connection.transaction(), connection.cursor() as cursor:
                if how == "executemany":
                    cursor.executemany(
                        f'INSERT INTO "{schema}".ledger_events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s)',
                        event_rows,
                    )
                    cursor.executemany(
                        f'INSERT INTO "{schema}".ledger_chain ({CHAIN_COLUMNS}) VALUES (%s, %s, %s, %s)',
                        chain_rows,
                    )
                    continue
                for table, columns, types, table_rows in (
                    ("ledger_events", EVENT_COLUMNS, EVENT_TYPES, event_rows),
                    ("ledger_chain", CHAIN_COLUMNS, CHAIN_TYPES, chain_rows),
                ):
                    binary = how == "copy binary"
                    statement = f'COPY "{schema}".{table} ({columns}) FROM STDIN'
                    with cursor.copy(statement + (" (FORMAT BINARY)" if binary else "")) as copy:
                        if binary:
                            copy.set_types(types)
                        for row in table_rows:
                            copy.write_row(row)
        seconds = time.perf_counter() - started
    return len(events) / seconds


def _ingest(base: str) -> Result:
    from benchmarks.b1_ingest import _ledger_run as sqlite_run

    log("B9: building the ingest workload (B1's)")
    workload = ingest_workload(EVENTS)
    batches = batches_of(workload.events, BATCH)
    kept: list[Rows] = []
    log("B9: warm-up")
    _ledger_run(base, workload.registrations, batches[:WARM_UP_BATCHES], [])
    with postgres_schema(base, "bench_b9_template") as template_url, scratch_dir("b9-ingest") as scratch:
        _registered(template_url, workload.registrations)
        template = _schema_of(template_url)
        sqlite_template = registered_ledger(workload.registrations, scratch / "registered.db")
        ledger: list[float] = []
        before: list[float] = []
        sqlite: list[float] = []
        raw: dict[str, list[float]] = {"executemany": [], "copy binary": [], "copy text": []}
        for repetition in range(REPETITIONS):
            ledger.append(_ledger_run(base, workload.registrations, batches, kept))
            with _executemany_appends():
                before.append(_ledger_run(base, workload.registrations, batches, []))
            seconds, _latencies = sqlite_run(sqlite_template, scratch / "ledger.db", batches)
            sqlite.append(len(workload.events) / seconds)
            for how, rates in raw.items():
                rates.append(_raw_run(base, template, kept[0], how))
            log(
                f"B9: repetition {repetition + 1}: ledger {ledger[-1]:,.0f} events/s (executemany "
                f"{before[-1]:,.0f}, SQLite {sqlite[-1]:,.0f}); raw "
                + ", ".join(f"{how} {rates[-1]:,.0f}" for how, rates in raw.items())
            )
    measured = median(ledger)
    copy_how = max(("copy binary", "copy text"), key=lambda how: median(raw[how]))
    copy = median(raw[copy_how])
    return Result(
        id="B9",
        what="library ingest on PostgreSQL, batches of 1,000",
        target=f"≥ {TARGET_INGEST:,} events/s and ≥ {TARGET_INGEST_RATIO}× raw COPY",
        measured=measured,
        unit="events/s",
        met=measured >= TARGET_INGEST and measured >= TARGET_INGEST_RATIO * copy,
        baselines=[
            (f"raw psycopg {copy_how} of the same rows", copy),
            ("raw psycopg executemany of the same rows", median(raw["executemany"])),
            ("the same posts into a SQLite file (B1)", median(sqlite)),
            ("the ledger appending by executemany (before this change)", median(before)),
        ],
        peak_rss_mb=peak_rss_mb(),
        details={
            "events": len(workload.events),
            "repetitions_events_per_second": [round(rate) for rate in ledger],
            "sqlite_repetitions": [round(rate) for rate in sqlite],
            "executemany_ledger_repetitions": [round(rate) for rate in before],
            "raw_repetitions": {how: [round(rate) for rate in rates] for how, rates in raw.items()},
            "ratio_to_raw_copy": measured / copy,
        },
    )


# The city on PostgreSQL, and the import.


def _export(source: Path, scratch: Path) -> Path:
    """The city's export (JSONL), written from a copy of the cached file."""
    from ledger import Ledger

    path = scratch / "city.jsonl"
    copy = working_copy(source, scratch / "export.db")
    with Ledger.open(url_of(copy), clock=clock, create=False) as ledger, path.open("wb") as stream:
        ledger.export(stream)
    copy.unlink()
    return path


def _prefix_export(export: Path, events: int, target: Path) -> Path:
    """The first `events` events of an export, under a header naming that prefix's head."""
    with export.open("rb") as source:
        header = msgspec.json.decode(source.readline())
        lines = [source.readline() for _ in range(events)]
    header["position"] = events
    header["head_hash"] = msgspec.json.decode(lines[-1])["hash"]
    target.write_bytes(msgspec.json.encode(header) + b"\n" + b"".join(lines))
    return target


def _import(url: str, export: Path) -> float:
    """Import `export` into the (empty) ledger at `url`; seconds, end to end."""
    from ledger import Ledger

    started = time.perf_counter()
    with (
        Ledger.open(url, clock=clock, publish_illustrative=False) as ledger,
        export.open("rb") as stream,
    ):
        ledger.import_(stream)
    return time.perf_counter() - started


def _sqlite_head(path: Path) -> tuple[int, bytes]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
        position, hash_ = row.fetchone()
    finally:
        connection.close()
    return int(position), bytes(hash_)


def _postgres_head(base: str, schema: str) -> tuple[int, bytes] | None:
    import psycopg

    with psycopg.connect(base) as connection:
        try:
            row = connection.execute(
                f'SELECT position, hash FROM "{schema}".ledger_chain ORDER BY position DESC LIMIT 1'
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return None if row is None else (int(row[0]), bytes(row[1]))


def _city_on_postgres(base: str, source: Path, about: dict[str, Any], scratch: Path) -> tuple[str, Any]:
    """The URL of the city's schema (imported unless the cached one holds the same log) and the seconds
    its import took in this run (None if reused)."""
    import psycopg

    schema = f"bench_city_{about['format_digest']}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    if _postgres_head(base, schema) == _sqlite_head(source):
        log(f"B9: reusing the city imported into schema {schema}")
        return url, None
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    log(f"B9: exporting the city and importing it into schema {schema}")
    seconds = _import(url, _export(source, scratch))
    return url, seconds


def _imports(base: str, prefix: Path, scratch: Path, city_import: float | None, city_events: int) -> Result:
    """Import `prefix` into a new schema (by COPY, and as before by executemany) and into a SQLite file,
    alternated, REPETITIONS times; events/s end to end."""
    rates: dict[str, list[float]] = {"copy": [], "executemany": [], "sqlite": []}
    for repetition in range(REPETITIONS):
        with postgres_schema(base, "bench_b9_import") as url:
            rates["copy"].append(IMPORT_EVENTS / _import(url, prefix))
        with postgres_schema(base, "bench_b9_import") as url, _executemany_appends():
            rates["executemany"].append(IMPORT_EVENTS / _import(url, prefix))
        path = scratch / "import.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        rates["sqlite"].append(IMPORT_EVENTS / _import(url_of(path), prefix))
        log(
            f"B9: import {repetition + 1}: "
            + ", ".join(f"{how} {values[-1]:,.0f} events/s" for how, values in rates.items())
        )
    return Result(
        id="B9",
        what=f"`ledger import` on PostgreSQL, {IMPORT_EVENTS:,} events, end to end",
        target="",
        measured=median(rates["copy"]),
        unit="events/s",
        baselines=[
            ("the same import appending by executemany (before this change)", median(rates["executemany"])),
            ("the same import into a SQLite file", median(rates["sqlite"])),
        ],
        details={
            "events": IMPORT_EVENTS,
            "repetitions": {how: [round(rate) for rate in values] for how, values in rates.items()},
            "city_import_seconds_this_run": city_import,
            "city_events": city_events,
        },
    )


# Rebuild and history, PostgreSQL beside SQLite.


@contextlib.contextmanager
def _executemany_facts() -> Iterator[None]:
    """A rebuild's facts written as before COPY (one INSERT per row by `executemany`), for a baseline."""
    from ledger.projections import store

    copying = store._copy_facts

    def insert(connection: Any, version: int, rows: Any) -> None:
        statement = f"INSERT INTO {store.facts_table(version)} VALUES ({', '.join(['%s'] * 9)})"
        connection.exec_driver_sql(statement, rows)

    store._copy_facts = insert
    try:
        yield
    finally:
        store._copy_facts = copying


def _rebuilds(urls: dict[str, str]) -> dict[str, list[float]]:
    """Rebuild on each store in turn, and on PostgreSQL once more with the facts written as before,
    REPETITIONS times; events/s (each store's first fold not timed)."""
    from ledger import Ledger
    from ledger.projections.service import Projections

    runs = [(store, False) for store in urls] + [("postgres", True)]
    rates: dict[str, list[float]] = {store: [] for store in [*urls, "postgres executemany"]}
    ledgers = {store: Ledger.open(url, clock=clock, create=False) for store, url in urls.items()}
    opened = {store: Projections.open(ledger) for store, ledger in ledgers.items()}
    try:
        for repetition in range(REPETITIONS):
            for store, before in runs:
                name = f"{store} executemany" if before else store
                with _executemany_facts() if before else contextlib.nullcontext():
                    started = time.perf_counter()
                    position = opened[store].rebuild()
                    rates[name].append(position / (time.perf_counter() - started))
                log(f"B9: rebuild {repetition + 1} on {name}: {rates[name][-1]:,.0f} events/s")
    finally:
        for store, projections in opened.items():
            projections.close()
            ledgers[store].close()
    return rates


def _histories(urls: dict[str, str], sample: list[str]) -> dict[str, list[float]]:
    from ledger import Ledger

    latencies: dict[str, list[float]] = {store: [] for store in urls}
    ledgers = {store: Ledger.open(url, clock=clock, create=False) for store, url in urls.items()}
    try:
        for ledger in ledgers.values():
            for cadre_id in sample[:WARM_UP_READS]:
                ledger.history(cadre_id)
        for cadre_id in sample[WARM_UP_READS:]:
            for store, ledger in ledgers.items():
                before = time.perf_counter()
                ledger.history(cadre_id)
                latencies[store].append(time.perf_counter() - before)
    finally:
        for ledger in ledgers.values():
            ledger.close()
    return latencies


def run() -> list[Result]:
    base, reason = postgres_base()
    if base is None:
        return [
            Result(id="B9", what=what, target="", status="not run", reason=reason)
            for what in ("ingest on PostgreSQL", "import on PostgreSQL", "rebuild on PostgreSQL", "history")
        ]
    results = [_ingest(base)]
    source, about = city("1m")
    with scratch_dir("b9") as scratch:
        pg_url, city_import = _city_on_postgres(base, source, about, scratch)
        log(f"B9: import of the first {IMPORT_EVENTS:,} events of the city's export")
        export = _export(source, scratch) if city_import is None else scratch / "city.jsonl"
        prefix = _prefix_export(export, IMPORT_EVENTS, scratch / "prefix.jsonl")
        export.unlink()
        results.append(_imports(base, prefix, scratch, city_import, about["events"]))
        sqlite_path = working_copy(source, scratch / "ledger.db")
        urls = {"postgres": pg_url, "sqlite": url_of(sqlite_path)}
        rates = _rebuilds(urls)
        results.append(
            Result(
                id="B9",
                what=f"rebuild all projections on PostgreSQL, {about['events']:,} events",
                target=f"≥ {TARGET_REBUILD:,} events/s",
                measured=median(rates["postgres"]),
                unit="events/s",
                met=median(rates["postgres"]) >= TARGET_REBUILD,
                baselines=[
                    ("the same rebuild on SQLite (B5)", median(rates["sqlite"])),
                    (
                        "the facts written by executemany (before this change)",
                        median(rates["postgres executemany"]),
                    ),
                ],
                peak_rss_mb=peak_rss_mb(),
                details={store: [round(rate) for rate in values] for store, values in rates.items()},
            )
        )
        sample = _sample(sqlite_path)
        latencies = _histories(urls, sample)
    p50 = {store: median(values) * 1000 for store, values in latencies.items()}
    results.append(
        Result(
            id="B9",
            what="one cadre's history (~250 entries) on PostgreSQL, library",
            target=f"p50 ≤ {TARGET_HISTORY_P50_MS:.0f} ms",
            measured=p50["postgres"],
            unit="ms p50",
            higher_is_better=False,
            met=p50["postgres"] <= TARGET_HISTORY_P50_MS,
            baselines=[("the same reads on SQLite (B4)", p50["sqlite"])],
            details={
                "reads": len(latencies["postgres"]),
                "p99_ms": {store: percentile(values, 99) * 1000 for store, values in latencies.items()},
            },
        )
    )
    return results
