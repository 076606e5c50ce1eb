"""B8 — the period views of the city (recalls, boards, escalations) and its whole ranking, library and HTTP.

What is measured, on a copy of the cached city (a million events, about 4,000 cadres in some eighty units):

- the latency of `Projections.recalls(period)` (every unit, each its own pool), `boards(period)` (the
  whole city) and `escalations(period)` (every unit, up to twelve quarters back), and of the same reads
  over HTTP (`GET /v1/recalls?period=…` …) against `ledger serve --workers 1`, one keep-alive connection;
- **warm**: the reads an office makes of this quarter's lists and the quarters before, again and again, at
  the head of a log that is not moving: the periods are the last eight quarters, in turn; one pass to warm
  up, then three repetitions of 100 reads; p50 and p99 over the 300;
- **after a post**, a baseline in the same run: each read at a log position no read used before
  (`known_at` = the head less 7 more positions each time) — what a read costs right after posts moved the
  head. A snapshot is kept under the earliest position that reads the same (`Index.settled`), so a read of
  a quarter that the facts between did not change finds what an earlier read kept; 3 × 20 reads;
- **nothing kept**, the other baseline: the same reads, each at the position of a fact that changes
  every read (a reversal, a registration, a lifecycle change …), at least 1,000 positions apart, so no two
  reads share a settled position and every snapshot, order and period bottom is computed; 3 × 20 reads;
- the floor of a cold read, in details: one `Index.snapshot` of a quarter (what every cold view pays at
  least once), p50 of 20;
- the whole ranking of the city over HTTP: one page of 5,000 against pages of 1,000 following the cursors
  (all pages' time together), each at a fresh position (cold) and again at the same one (warm).

Targets (issue 11): recalls, boards and escalations p50 ≤ 20 ms, library and HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

PERIODS: Final = ("2026Q2", "2026Q1", "2025Q4", "2025Q3", "2025Q2", "2025Q1", "2024Q4", "2024Q3")
READS_PER_REPETITION: Final = 100
REPETITIONS: Final = 3
COLD_READS_PER_REPETITION: Final = 20
FLOOR_READS: Final = 20
WHOLE_READS: Final = 10
WHOLE_PAGE: Final = 5_000
PAGE: Final = 1_000
TARGET_P50_MS: Final = 20.0
VIEWS: Final = ("recalls", "boards", "escalations")
# Positions back from the head used for cold reads after a post: each read its own, 7 apart.
COLD_STEP: Final = 7
# The least distance between two reads with nothing kept (each at a fact that changes every read).
NOTHING_KEPT_APART: Final = 1_000

Read = Callable[[str, int | None], Any]


def _summary(latencies: list[float], per_repetition: int) -> dict[str, Any]:
    chunks = [latencies[i : i + per_repetition] for i in range(0, len(latencies), per_repetition)]
    return {
        "p50_ms": median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "reads": len(latencies),
        "repetition_p50_ms": [median(chunk) * 1000 for chunk in chunks],
    }


def _nothing_kept_positions(barriers: list[int], head: int) -> list[list[int]]:
    """For each view, the positions of its reads with nothing kept: facts that change every read (the
    `barriers`, sorted), going back from the head at least NOTHING_KEPT_APART apart, interleaved between
    the views so that each reads the same stretch of the log and none finds another's snapshots."""
    chosen: list[int] = []
    for position in reversed(barriers):
        if position < head - NOTHING_KEPT_APART // 2 and (
            not chosen or chosen[-1] - position >= NOTHING_KEPT_APART
        ):
            chosen.append(position)
    count = REPETITIONS * COLD_READS_PER_REPETITION
    views = [chosen[number :: len(VIEWS)][:count] for number in range(len(VIEWS))]
    if any(len(positions) < count for positions in views):
        raise AssertionError("B8: the log has too few facts that change every read")
    return views


def _measure(
    read: Read, head: int, number: int, nothing_kept: list[int]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(warm, after a post, nothing kept) latencies of `read(period, known_at)` for the view `number`:
    cold reads after a post at positions of its own, 7 apart; reads with nothing kept at `nothing_kept`."""
    for period in PERIODS:
        read(period, None)
    warm: list[float] = []
    for index in range(REPETITIONS * READS_PER_REPETITION):
        period = PERIODS[index % len(PERIODS)]
        before = time.perf_counter()
        read(period, None)
        warm.append(time.perf_counter() - before)
    after_post = [head - 1 - number * 10_000 - index * COLD_STEP for index in range(len(nothing_kept))]
    colds = []
    for positions in (after_post, nothing_kept):
        cold: list[float] = []
        for index, known_at in enumerate(positions):
            before = time.perf_counter()
            read(PERIODS[index % len(PERIODS)], known_at)
            cold.append(time.perf_counter() - before)
        colds.append(_summary(cold, COLD_READS_PER_REPETITION))
    return _summary(warm, READS_PER_REPETITION), colds[0], colds[1]


def _result(
    view: str, where: str, warm: dict[str, Any], cold: dict[str, Any], bare: dict[str, Any], **details: Any
) -> Result:
    return Result(
        id="B8",
        what=f"{view} of a quarter, {where} (warm: at the head; cold: a fresh position each read)",
        target=f"p50 ≤ {TARGET_P50_MS:.0f} ms",
        measured=warm["p50_ms"],
        unit="ms p50",
        higher_is_better=False,
        baselines=[
            ("cold after a post (positions 7 apart), p50", cold["p50_ms"]),
            ("cold, nothing kept (each read after a fact that changes every read), p50", bare["p50_ms"]),
        ],
        met=warm["p50_ms"] <= TARGET_P50_MS,
        details={"warm": warm, "cold": cold, "nothing_kept": bare, **details},
    )


def _library(path: Path) -> tuple[list[Result], dict[str, Any]]:
    from ledger import Ledger
    from ledger.domain.periods import parse_period
    from ledger.projections.facts import day
    from ledger.projections.service import Projections

    results = []
    with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
        head = ledger.head()
        log(f"B8: opening the read models ({head:,} events)")
        started = time.perf_counter()
        projections = Projections.open(ledger)
        about: dict[str, Any] = {"events": head, "projections_open_seconds": time.perf_counter() - started}
        try:
            reads: dict[str, Read] = {
                "recalls": lambda period, known_at: projections.recalls(period, known_at=known_at),
                "boards": lambda period, known_at: projections.boards(period, known_at=known_at),
                "escalations": lambda period, known_at: projections.escalations(period, known_at=known_at),
            }
            nothing_kept = _nothing_kept_positions(projections.index.barrier_positions().tolist(), head)
            about["nothing_kept_positions"] = nothing_kept
            for number, view in enumerate(VIEWS):
                log(f"B8: {view} through the library")
                # Each view its own cold positions: one view's reads leave nothing for another's.
                warm, cold, bare = _measure(reads[view], head, number, nothing_kept[number])
                sizes = {
                    "recalls": lambda: len(projections.recalls(PERIODS[0]).candidates),
                    "boards": lambda: len(projections.boards(PERIODS[0]).black),
                    "escalations": lambda: len(projections.escalations(PERIODS[0]).escalations),
                }
                results.append(
                    _result(view, "library", warm, cold, bare, listed_in_latest_quarter=sizes[view]())
                )
            floor = []
            index = projections.index
            for number in range(FLOOR_READS):
                span = parse_period(PERIODS[number % len(PERIODS)])
                before = time.perf_counter()
                index.snapshot(day(span.last_day), head - 50_000 - number, day(span.first_day))
                floor.append(time.perf_counter() - before)
            about["one_quarter_snapshot_p50_ms"] = median(floor) * 1000
            about["cadres"] = len(index.cadres)
            about["units"] = len(index.unit_ids)
            about["read_cache"] = projections.read_cache.stats()
        finally:
            projections.close()
    for result in results:
        result.details |= about
        result.peak_rss_mb = peak_rss_mb()
    return results, about


def _whole(client: Any, head: int) -> dict[str, Any]:
    """A whole ranking over HTTP: one page of 5,000 and pages of 1,000 (all pages together)."""

    def fetch(limit: int, known_at: int) -> tuple[float, float, int]:
        before = time.perf_counter()
        status, body = client.request("GET", f"/v1/rankings?limit={limit}&known_at={known_at}")
        answer = check(status, body, (200,))
        first = time.perf_counter() - before
        entries = len(answer["entries"])
        while answer["next_cursor"] is not None:
            status, body = client.request("GET", f"/v1/rankings?limit={limit}&cursor={answer['next_cursor']}")
            answer = check(status, body, (200,))
            entries += len(answer["entries"])
        return time.perf_counter() - before, first, entries

    figures: dict[str, Any] = {}
    for limit in (WHOLE_PAGE, PAGE):
        cold, first_pages, warm = [], [], []
        entries = 0
        for number in range(WHOLE_READS):
            known_at = head - 30_000 - number * COLD_STEP - (0 if limit == WHOLE_PAGE else 1_000)
            seconds, first, entries = fetch(limit, known_at)
            cold.append(seconds)
            first_pages.append(first)
            warm.append(fetch(limit, known_at)[0])
        figures[f"limit_{limit}"] = {
            "entries": entries,
            "cold_all_pages_p50_ms": median(cold) * 1000,
            "cold_first_page_p50_ms": median(first_pages) * 1000,
            "warm_all_pages_p50_ms": median(warm) * 1000,
        }
    return figures


def _http(
    path: Path, scratch: Path, head: int, nothing_kept: list[list[int]]
) -> tuple[list[Result], dict[str, Any]]:
    token = create_key(path, "bench-reader", "reader")
    results = []
    with serving(path, scratch) as server:
        client = server.client(token)
        routes = {"recalls": "/v1/recalls", "boards": "/v1/boards", "escalations": "/v1/escalations"}
        for number, view in enumerate(VIEWS):
            log(f"B8: {view} over HTTP")

            def read(period: str, known_at: int | None, route: str = routes[view]) -> Any:
                query = f"?period={period}" + ("" if known_at is None else f"&known_at={known_at}")
                return check(*client.request("GET", route + query), (200,))

            warm, cold, bare = _measure(read, head, number, nothing_kept[number])
            results.append(_result(view, "HTTP", warm, cold, bare, command=command_used()))
        log("B8: the whole ranking over HTTP")
        whole = _whole(client, head)
        client.close()
        server_peak, _ = peak_rss_of(server.pid)
    for result in results:
        result.peak_rss_mb = server_peak
        result.details["whole_ranking"] = whole
    return results, whole


def run() -> list[Result]:
    source, _about = city("1m")
    with scratch_dir("b8") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        results, about = _library(path)
        try:
            http, whole = _http(path, scratch, int(about["events"]), about["nothing_kept_positions"])
        except ServerUnavailable as error:
            results.append(
                Result(
                    id="B8",
                    what="recalls, boards, escalations over HTTP",
                    target=f"p50 ≤ {TARGET_P50_MS:.0f} ms",
                    status="not run",
                    reason=str(error),
                )
            )
            return results
        results.extend(http)
        pages, one = whole[f"limit_{PAGE}"], whole[f"limit_{WHOLE_PAGE}"]
        results.append(
            Result(
                id="B8",
                what=f"the whole ranking of the city over HTTP in pages of {PAGE:,} (all pages, cold)",
                target="≈ one page of the whole (each page reuses the first page's snapshot)",
                measured=pages["cold_all_pages_p50_ms"],
                unit="ms p50",
                higher_is_better=False,
                baselines=[(f"one page of {WHOLE_PAGE:,}, cold", one["cold_all_pages_p50_ms"])],
                met=None,
                details=whole,
            )
        )
    return results
