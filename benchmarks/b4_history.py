"""B4 — one cadre's history (about 250 entries): `Ledger.history` and `GET /v1/cadres/{id}/history`.

What is measured: the latency of reading a cadre's whole history, current (as of today, as known now), with
running totals, who posted each entry, its source, reversal links and hash — from the log itself, on a copy
of the cached city (a million events). The cadres are drawn (fixed seed) among those with 225 to 275 events
in their stream, so each read returns about 250 entries.

- library: `Ledger.history(cadre_id)` in this process; warm-up 20 reads, then three repetitions of 100;
  p50 and p99 over the 300.
- HTTP: `GET /v1/cadres/{id}/history?limit=1000` (one page holds it all) against `ledger serve --workers 1`
  on the same copy, with a reader key, one keep-alive connection, the body read in full; the same sample.

No baseline: SPEC §11 names none (the library figure is the floor of the HTTP one).
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.server import ServerUnavailable, check, command_used, create_key, peak_rss_of, serving
from benchmarks.workload import (
    Result,
    city,
    clock,
    log,
    median,
    peak_rss_mb,
    percentile,
    scratch_dir,
    url_of,
    working_copy,
)

WARM_UP_READS: Final = 20
READS_PER_REPETITION: Final = 100
REPETITIONS: Final = 3
STREAM_EVENTS_MIN: Final = 225
STREAM_EVENTS_MAX: Final = 275
TARGET_LIBRARY_P50_MS: Final = 5.0
TARGET_HTTP_P50_MS: Final = 15.0
SAMPLE_SEED: Final = 250


def _sample(path: Path) -> list[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cadres = [
            row[0]
            for row in connection.execute(
                "SELECT originator_id FROM stored_events WHERE originator_id != '$policy' "
                "GROUP BY originator_id HAVING COUNT(*) BETWEEN ? AND ? ORDER BY originator_id",
                (STREAM_EVENTS_MIN, STREAM_EVENTS_MAX),
            )
        ]
    finally:
        connection.close()
    rng = random.Random(SAMPLE_SEED)
    return [rng.choice(cadres) for _ in range(WARM_UP_READS + REPETITIONS * READS_PER_REPETITION)]


def _library(path: Path, sample: list[str]) -> tuple[list[float], list[int]]:
    from ledger import Ledger

    latencies: list[float] = []
    entries: list[int] = []
    with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
        for cadre_id in sample[:WARM_UP_READS]:
            ledger.history(cadre_id)
        for cadre_id in sample[WARM_UP_READS:]:
            before = time.perf_counter()
            page = ledger.history(cadre_id)
            latencies.append(time.perf_counter() - before)
            entries.append(len(page.entries))
    return latencies, entries


def _http(path: Path, scratch: Path, sample: list[str]) -> tuple[list[float], list[int], float]:
    token = create_key(path, "bench-reader", "reader")
    latencies: list[float] = []
    entries: list[int] = []
    with serving(path, scratch) as server:
        client = server.client(token)
        for cadre_id in sample[:WARM_UP_READS]:
            check(*client.request("GET", f"/v1/cadres/{cadre_id}/history?limit=1000"), (200,))
        for cadre_id in sample[WARM_UP_READS:]:
            before = time.perf_counter()
            status, body = client.request("GET", f"/v1/cadres/{cadre_id}/history?limit=1000")
            latencies.append(time.perf_counter() - before)
            entries.append(len(check(status, body, (200,))["entries"]))
        client.close()
        server_peak, _ = peak_rss_of(server.pid)
    return latencies, entries, server_peak


def _summary(latencies: list[float]) -> dict[str, Any]:
    chunks = [latencies[i : i + READS_PER_REPETITION] for i in range(0, len(latencies), READS_PER_REPETITION)]
    return {
        "p50_ms": median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "repetition_p50_ms": [median(chunk) * 1000 for chunk in chunks],
    }


def run() -> list[Result]:
    source, _about = city("1m")
    results = []
    with scratch_dir("b4") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        sample = _sample(path)
        log(f"B4: {len(sample)} history reads through the library")
        latencies, entries = _library(path, sample)
        library = _summary(latencies) | {"entries_mean": sum(entries) / len(entries), "reads": len(latencies)}
        results.append(
            Result(
                id="B4",
                what="one cadre's history (~250 entries), library",
                target=f"p50 ≤ {TARGET_LIBRARY_P50_MS:.0f} ms",
                measured=library["p50_ms"],
                unit="ms p50",
                higher_is_better=False,
                met=library["p50_ms"] <= TARGET_LIBRARY_P50_MS,
                peak_rss_mb=peak_rss_mb(),
                details=library,
            )
        )
        log("B4: the same reads over HTTP")
        http_result = Result(
            id="B4",
            what="one cadre's history (~250 entries), HTTP",
            target=f"p50 ≤ {TARGET_HTTP_P50_MS:.0f} ms",
            unit="ms p50",
            higher_is_better=False,
        )
        try:
            latencies, entries, server_peak = _http(path, scratch, sample)
        except ServerUnavailable as error:
            http_result.status, http_result.reason = "not run", str(error)
        else:
            http = _summary(latencies) | {
                "entries_mean": sum(entries) / len(entries),
                "reads": len(latencies),
                "command": command_used(),
            }
            http_result.measured = http["p50_ms"]
            http_result.met = http["p50_ms"] <= TARGET_HTTP_P50_MS
            http_result.peak_rss_mb = server_peak
            http_result.details = http
        results.append(http_result)
    return results
