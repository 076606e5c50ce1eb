"""B3 — the ranking of all 3,900 cadres at a random (as_of, known_at) over the city's million events.

What is measured: the latency of `Projections.rankings("all", as_of=…, known_at=…)` — the whole ranking,
every entry built (rank, cadre, unit, grade, total, six components, previous quarter's rank and movement),
on read models already open and caught up (`Projections.open` on a copy of the cached city; its time is
reported too). `as_of` is a uniformly random day from the first registration to `today`, `known_at` a
uniformly random log position from 1 to the head, drawn with a fixed seed. Warm-up: 20 reads; then three
repetitions of 100 reads; p50 and p99 over the 300.

Baseline, in the same run: a plain SQL `GROUP BY` in SQLite over the same events. A table
`points(position INTEGER PRIMARY KEY, cadre TEXT, counts_from TEXT, cents INTEGER)` is extracted from the
stored events with SQLite's JSON functions (one row per cadre event; `counts_from` is the event's
`effective_on`, or for a reversal its target's, so reversals cancel in the sum; cents from the two-place
points), in a separate SQLite file. The baseline query, at the same (as_of, known_at) pairs as the first
reads above, is

    SELECT cadre, SUM(cents) AS total FROM points
    WHERE position <= :known_at AND counts_from <= :as_of GROUP BY cadre ORDER BY total DESC

— the totals in order, fetched. It computes less than the ranking (no components, no departed cadres left
out, no tie-breakers, no previous rank, no entries built), and the same totals: the run checks that both
give every active cadre the same total at one pair. For the envelope (details only): the same sums over
the same columns in NumPy (mask, weighted bincount, argsort) and the machine's memory bandwidth.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from benchmarks.workload import (
    TODAY,
    Result,
    Size,
    city,
    clock,
    first_day,
    log,
    median,
    peak_rss_mb,
    percentile,
    scratch_dir,
    timed,
    url_of,
    working_copy,
)

WARM_UP_READS: Final = 20
READS_PER_REPETITION: Final = 100
REPETITIONS: Final = 3
BASELINE_READS: Final = 20
BASELINE_READS_10M: Final = 5
TARGET_P50_MS: Final = 20.0
TARGET_P99_MS: Final = 100.0
SAMPLE_SEED: Final = 2026


def _pairs(first_day: date, head: int, count: int) -> list[tuple[date, int]]:
    rng = random.Random(SAMPLE_SEED)
    span = (TODAY - first_day).days
    return [(first_day + timedelta(days=rng.randint(0, span)), rng.randint(1, head)) for _ in range(count)]


def _extract(ledger_path: Path, points_path: Path) -> int:
    """The baseline's table, extracted from the stored events; the number of rows."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{points_path}{suffix}").unlink(missing_ok=True)
    connection = sqlite3.connect(points_path, isolation_level=None)
    try:
        connection.execute("ATTACH DATABASE ? AS ledger", (f"file:{ledger_path}?mode=ro",))
        connection.execute(
            "CREATE TABLE points (position INTEGER PRIMARY KEY, cadre TEXT NOT NULL, "
            "counts_from TEXT NOT NULL, cents INTEGER NOT NULL)"
        )
        connection.execute(
            "INSERT INTO points SELECT rowid, originator_id, "
            "COALESCE(state ->> '$.target_effective_on', state ->> '$.effective_on'), "
            "CAST(REPLACE(COALESCE(state ->> '$.points', '0'), '.', '') AS INTEGER) "
            "FROM ledger.stored_events WHERE originator_id != '$policy'"
        )
        rows: int = connection.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        connection.execute("DETACH DATABASE ledger")
    finally:
        connection.close()
    return rows


def _numpy_floor(points: Path, pairs: list[tuple[date, int]]) -> dict[str, float]:
    """The least a columnar ranking does, for the envelope: over the baseline table's columns in NumPy,
    the known prefix, one mask, one weighted `bincount` and an `argsort` of the totals (p50); and the
    machine's memory bandwidth (the sum of a 256 MB array, GB/s)."""
    connection = sqlite3.connect(points)
    try:
        rows = connection.execute("SELECT position, cadre, counts_from, cents FROM points ORDER BY position")
        position, cadre, counts_from, cents = (
            np.array(column) for column in zip(*rows.fetchall(), strict=True)
        )
    finally:
        connection.close()
    _, codes = np.unique(cadre, return_inverse=True)
    days = counts_from.astype("datetime64[D]").astype(np.int64)
    weights = cents.astype(np.float64)
    count = int(codes.max()) + 1

    def ranking(as_of: date, known_at: int) -> Any:
        known = int(np.searchsorted(position, known_at, side="right"))
        totals = np.bincount(
            codes[:known],
            weights=weights[:known] * (days[:known] <= np.datetime64(as_of, "D").astype(np.int64)),
            minlength=count,
        )
        return np.argsort(-totals, kind="stable")

    ranking(TODAY, int(position[-1]))
    latencies = []
    for as_of, known_at in pairs:
        started = time.perf_counter()
        ranking(as_of, known_at)
        latencies.append(time.perf_counter() - started)
    block = np.ones(32 * 1024 * 1024, dtype=np.float64)
    block.sum()
    sums = [timed(block.sum)[0] for _ in range(5)]
    return {
        "numpy_mask_bincount_p50_ms": median(latencies) * 1000,
        "memory_bandwidth_gb_per_second": block.nbytes / median(sums) / 1e9,
    }


BASELINE_QUERY: Final = (
    "SELECT cadre, SUM(cents) AS total FROM points "
    "WHERE position <= ? AND counts_from <= ? GROUP BY cadre ORDER BY total DESC"
)


def run(size: Size = "1m", *, baseline: bool = True) -> Result:
    from ledger import Ledger
    from ledger.projections.service import Projections

    source, about = city(size)
    with scratch_dir(f"b3-{size}") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
            head = ledger.head()
            log(f"B3 ({size}): opening the read models ({head:,} events)")
            started = time.perf_counter()
            projections = Projections.open(ledger)
            open_seconds = time.perf_counter() - started
            try:
                pairs = _pairs(first_day(source), head, WARM_UP_READS + REPETITIONS * READS_PER_REPETITION)
                for as_of, known_at in pairs[:WARM_UP_READS]:
                    projections.rankings("all", as_of=as_of, known_at=known_at)
                log(f"B3 ({size}): timing {REPETITIONS} × {READS_PER_REPETITION} rankings")
                latencies: list[float] = []
                repetition_p50: list[float] = []
                entries: list[int] = []
                timed_pairs = pairs[WARM_UP_READS:]
                for repetition in range(REPETITIONS):
                    chunk = timed_pairs[
                        repetition * READS_PER_REPETITION : (repetition + 1) * READS_PER_REPETITION
                    ]
                    these = []
                    for as_of, known_at in chunk:
                        before = time.perf_counter()
                        view = projections.rankings("all", as_of=as_of, known_at=known_at)
                        these.append(time.perf_counter() - before)
                        entries.append(len(view.entries))
                    latencies.extend(these)
                    repetition_p50.append(median(these) * 1000)
                # The same pair the baseline checks against: late as_of, whole log.
                check_view = projections.rankings("all", as_of=TODAY, known_at=head)
                check_totals = {entry.cadre_id: entry.total for entry in check_view.entries}
            finally:
                projections.close()
        rss = peak_rss_mb()
        p50, p99 = median(latencies) * 1000, percentile(latencies, 99) * 1000
        details: dict[str, Any] = {
            "events": head,
            "cadres": about.get("cadres"),
            "reads": len(latencies),
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max(latencies) * 1000,
            "repetition_p50_ms": repetition_p50,
            "entries_mean": sum(entries) / len(entries),
            "entries_at_today": len(check_view.entries),
            "projections_open_seconds": open_seconds,
        }
        baselines: list[tuple[str, float]] = []
        if baseline:
            log(f"B3 ({size}) baseline: extracting (position, cadre, counts_from, cents) with SQL")
            points = scratch / "points.db"
            started = time.perf_counter()
            rows = _extract(path, points)
            details["baseline_extract_seconds"] = time.perf_counter() - started
            details["baseline_rows"] = rows
            reads = BASELINE_READS_10M if size == "10m" else BASELINE_READS
            connection = sqlite3.connect(points)
            try:
                connection.execute(BASELINE_QUERY, (head, TODAY.isoformat())).fetchall()  # warm-up
                sql_latencies = []
                for as_of, known_at in timed_pairs[:reads]:
                    before = time.perf_counter()
                    connection.execute(BASELINE_QUERY, (known_at, as_of.isoformat())).fetchall()
                    sql_latencies.append(time.perf_counter() - before)
                sql_totals = dict(connection.execute(BASELINE_QUERY, (head, TODAY.isoformat())).fetchall())
            finally:
                connection.close()
            mismatched = [
                cadre_id
                for cadre_id, total in check_totals.items()
                if int(total.scaleb(2)) != sql_totals.get(cadre_id, 0)
            ]
            details["baseline_reads"] = len(sql_latencies)
            details["baseline_p50_ms"] = median(sql_latencies) * 1000
            details["baseline_p99_ms"] = percentile(sql_latencies, 99) * 1000
            details["baseline_totals_checked"] = len(check_totals)
            details["baseline_totals_mismatched"] = len(mismatched)
            baselines.append(
                ("SQLite SUM … GROUP BY cadre over the extracted events (p50)", median(sql_latencies) * 1000)
            )
            details |= _numpy_floor(points, timed_pairs[:READS_PER_REPETITION])
    return Result(
        id="B3",
        what=f"ranking of all cadres at random (as_of, known_at), {head:,} events",
        target=f"p50 ≤ {TARGET_P50_MS:.0f} ms, p99 ≤ {TARGET_P99_MS:.0f} ms",
        measured=p50,
        unit="ms p50",
        higher_is_better=False,
        baselines=baselines,
        met=p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS,
        peak_rss_mb=rss,
        details=details,
    )
