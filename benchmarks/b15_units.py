"""B15 — units rated by enterprises (市场主体评部门, issue 15): posting a quarter's ratings, and reading a
quarter's unit ranking at a random (as_of, known_at) over three years of ratings.

The workload is built here, not taken from the demo: a new SQLite ledger (illustrative policy: dimensions
service 0.4, efficiency 0.3, integrity 0.3; trimmed mean, 5 % from each end; at least 20 ratings), 53 units
(`unit.registered`, one principal cadre registered in each), and twelve quarters 2023Q3–2026Q2, each with
a panel of 200 enterprises drawn from 2,000 (`rating.panel_drawn` on the quarter's first day) and every
panel member rating every unit (`unit.rated`, 200 × 53 = 10,600 a quarter, dated over the quarter, posted
in date order in batches of 1,000): dimension scores with one decimal place, `score` their weighted mean
rounded half up to 0.01, the verdict from the score. Three units are persistently worse than the rest.
12 × 10,600 = 127,200 ratings; with the policy, the registrations and the panels, 127,319 events.

B15a, posting: eleven quarters are posted into the ledger (timed for the details only) and the file is
kept as a template, its writer's knowledge persisted. Then, `REPETITIONS` times, the twelfth quarter's
10,600 ratings are posted in batches of 1,000 into a fresh copy of the template, after `load_all` (so the
writer knows the 116,600 earlier ratings, as a survey system posting its latest quarter would find it).
Baseline, in the same run and alternating with it: 10,600 `merit.awarded` for the 53 cadres (200 each,
dated in the same quarter), batches of 1,000, into another fresh copy of the same template. Median rates;
target: ratings ≥ 20,000 events/s.

B15b, reading: on the ledger with all twelve quarters, `Projections.open(ledger)`, then for `QUERIES` random
(period, as_of, known_at) — a quarter of the twelve, a day of the window, a log position — the latency of
`unit_rankings(period, as_of=…, known_at=…)` with the read cache cleared before each (so the period's and the
previous period's rankings are both computed). Many random triples fall before the period's ratings (an empty
ranking); the p50 of those whose ranking ranks units is reported too, and so is the read a person makes most —
each quarter as of today with the whole log known, cold, three rounds of the twelve. Target: p50 ≤ 20 ms.
Baselines, in the same run at the same triples: a naive fold in pure Python over the decoded ratings (read
once through `Ledger.records` outside the timing, each held as (position, day, period, unit, hundredths,
dissatisfied)): per query a filter over all 127,200, group by unit, trimmed mean, sort and competition ranks,
for the period and the one before — and it is checked to give the same rankings as the read model at every
triple (and every whole-quarter read). For scale: the cadres' `rankings("all", …)` of the same ledger at the
same (as_of, known_at), cold, and `unit_escalations(period, …)`, cold (it ranks up to 24 earlier periods).
"""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final

from benchmarks.workload import (
    TODAY,
    Result,
    batches_of,
    clock,
    log,
    median,
    peak_rss_mb,
    percentile,
    scratch_dir,
    url_of,
    working_copy,
)

SEED: Final = 15
UNITS: Final = 53
RATERS: Final = 200
ENTERPRISES: Final = 2_000
QUARTERS: Final = (
    "2023Q3",
    "2023Q4",
    "2024Q1",
    "2024Q2",
    "2024Q3",
    "2024Q4",
    "2025Q1",
    "2025Q2",
    "2025Q3",
    "2025Q4",
    "2026Q1",
    "2026Q2",
)
BATCH: Final = 1_000
REPETITIONS: Final = 5
QUERIES: Final = 200
WARM_UP_QUERIES: Final = 10
LATEST_ROUNDS: Final = 3
TARGET_POST_RATE: Final = 20_000.0
TARGET_P50_MS: Final = 20.0
WEIGHTS: Final = {"service": Decimal("0.4"), "efficiency": Decimal("0.3"), "integrity": Decimal("0.3")}
CENT: Final = Decimal("0.01")
# The naive model's rules: the illustrative policy's [units] section, written out by hand.
TRIM_SHARE_PERCENT: Final = 5
RATINGS_MIN: Final = 20
REGISTERED_ON: Final = date(2023, 1, 2)
WORSE_UNITS: Final = frozenset({"D17", "D38", "D51"})
POSTED_BY: Final = "bench"


def _unit_id(number: int) -> str:
    return f"D{number:02d}"


def _quarter_days(period: str) -> tuple[date, date]:
    from ledger.domain.periods import parse_period

    span = parse_period(period)
    return span.first_day, min(span.last_day, TODAY)


# The workload.


def _registrations() -> list[Any]:
    from ledger.domain.events import CadreRegistered, Source, UnitRegistered

    events: list[Any] = []
    for number in range(1, UNITS + 1):
        unit_id = _unit_id(number)
        events.append(
            CadreRegistered(
                cadre_id=f"K{number:02d}",
                effective_on=REGISTERED_ON,
                source=Source("hr", f"register:K{number:02d}"),
                name=f"局长{number:02d}",
                unit_id=unit_id,
                grade="一级调研员",
                leadership=True,
                principal=True,
                service_started_on=date(2003, 9, 1),
                grade_since=date(2020, 1, 1),
            )
        )
        events.append(
            UnitRegistered(
                unit_id=unit_id,
                effective_on=REGISTERED_ON,
                source=Source("hr", f"unit:{unit_id}"),
                name=f"第{number:02d}局",
                kind="department",
            )
        )
    return events


def _quarter(period: str, randomly: random.Random) -> list[Any]:
    """The panel of `period` and its 10,600 ratings, in date order."""
    from ledger.domain.events import Rater, RatingPanelDrawn, Source, UnitRated, Verdict

    first, last = _quarter_days(period)
    seed = f"{SEED}:{period}"
    pool = [f"E{number:05d}" for number in range(1, ENTERPRISES + 1)]
    raters = sorted(random.Random(seed).sample(pool, RATERS))
    panel = RatingPanelDrawn(
        effective_on=first,
        source=Source("survey", f"panel:{period}"),
        period=period,
        rater_kind="enterprise",
        raters=tuple(raters),
        method="python random.Random(seed).sample(E00001…E02000, 200), sorted",
        seed=seed,
    )
    span = (last - first).days
    ratings: list[tuple[date, str, str, Any]] = []
    for rater in raters:
        leniency = randomly.gauss(0, 4)
        for number in range(1, UNITS + 1):
            unit_id = _unit_id(number)
            mean = (72.0 if unit_id in WORSE_UNITS else 86.0 + (number % 7) - 3) + leniency
            scores = {
                dimension: str(
                    Decimal(max(0.0, min(100.0, randomly.gauss(mean, 7)))).quantize(Decimal("0.1"))
                )
                for dimension in WEIGHTS
            }
            score = sum((Decimal(scores[d]) * w for d, w in WEIGHTS.items()), Decimal(0))
            score = score.quantize(CENT, rounding=ROUND_HALF_UP)
            verdict: Verdict = (
                "satisfied" if score >= 80 else "basically_satisfied" if score >= 60 else "dissatisfied"
            )
            on = first + timedelta(days=randomly.randint(0, span))
            event = UnitRated(
                effective_on=on,
                source=Source("survey", f"{period}:{unit_id}:{rater}"),
                unit_id=unit_id,
                period=period,
                rater=Rater(kind="enterprise", id=rater),
                score=str(score),
                verdict=verdict,
                scores=scores,
            )
            ratings.append((on, rater, unit_id, event))
    ratings.sort(key=lambda item: item[:3])
    return [panel, *(event for *_, event in ratings)]


def _merits(count: int, randomly: random.Random) -> list[Any]:
    """`count` merit awards for the 53 cadres, dated in the last quarter (the baseline's events)."""
    from ledger.domain.events import MeritAwarded, Source

    first, last = _quarter_days(QUARTERS[-1])
    events = []
    for serial in range(count):
        cadre = f"K{serial % UNITS + 1:02d}"
        events.append(
            MeritAwarded(
                cadre_id=cadre,
                effective_on=first + timedelta(days=randomly.randint(0, (last - first).days)),
                source=Source("awards", f"merit:{serial}"),
                award="citation",
                level="unit",
            )
        )
    events.sort(key=lambda event: event.effective_on)
    return events


# B15a: posting.


def _post(path: Path, batches: list[list[Any]]) -> float:
    """Post `batches` into the ledger at `path` (writer caught up first); the seconds the posting took."""
    from ledger import Ledger

    with Ledger.open(url_of(path), clock=clock) as ledger:
        ledger.load_all()
        started = time.perf_counter()
        for batch in batches:
            ledger.post(batch, posted_by=POSTED_BY)
        return time.perf_counter() - started


def _build_template(path: Path, quarters: list[list[Any]]) -> dict[str, Any]:
    from ledger import Ledger

    with Ledger.open(url_of(path), clock=clock) as ledger:
        ledger.post(_registrations(), posted_by=POSTED_BY)
        started = time.perf_counter()
        count = 0
        for events in quarters:
            for batch in batches_of(events, BATCH):
                ledger.post(batch, posted_by=POSTED_BY)
            count += len(events)
        seconds = time.perf_counter() - started
        ledger.keep_writer_state()
        head = ledger.head()
    return {"template_events": head, "template_build_rate": count / seconds}


def _posting(scratch: Path, quarters: list[list[Any]], merits: list[Any]) -> dict[str, Any]:
    template = scratch / "template.db"
    log(f"B15a: posting {len(quarters) - 1} quarters into the template")
    about = _build_template(template, quarters[:-1])
    last = quarters[-1]
    panel, ratings = last[:1], last[1:]
    rating_batches = [panel, *batches_of(ratings, BATCH)]
    merit_batches = batches_of(merits, BATCH)
    rates: list[float] = []
    baseline: list[float] = []
    full = scratch / "full.db"
    for repetition in range(REPETITIONS):
        # Alternate which goes first, so that a drift of the machine hits both alike.
        order = ("ratings", "merits") if repetition % 2 == 0 else ("merits", "ratings")
        for what in order:
            if what == "ratings":
                # The last repetition's ledger, all twelve quarters, is the one B15b reads.
                target = full if repetition == REPETITIONS - 1 else scratch / "ratings.db"
                path = working_copy(template, target)
                _post(path, rating_batches[:1])  # the panel, not timed
                seconds = _post(path, rating_batches[1:])
                rates.append(len(ratings) / seconds)
            else:
                path = working_copy(template, scratch / "merits.db")
                seconds = _post(path, merit_batches)
                baseline.append(len(merits) / seconds)
        log(f"B15a: {repetition + 1}: ratings {rates[-1]:,.0f} events/s, merits {baseline[-1]:,.0f} events/s")
    return about | {"rates": rates, "baseline": baseline, "full": full, "ratings": len(ratings)}


# B15b: reading.

Row = tuple[int, int, str, str, int, bool]  # position, day (ordinal), period, unit, hundredths, dissatisfied


def _rating_rows(ledger: Any) -> list[Row]:
    from ledger.domain.events import UnitRated

    rows: list[Row] = []
    after = 0
    while page := ledger.records(after=after, limit=10_000):
        for position, event in page:
            if isinstance(event, UnitRated):
                cents = int(Decimal(event.score).scaleb(2))
                rows.append(
                    (
                        position,
                        event.effective_on.toordinal(),
                        event.period,
                        event.unit_id,
                        cents,
                        event.verdict == "dissatisfied",
                    )
                )
        after = page[-1][0]
    return rows


NaiveEntry = tuple[int | None, str, int | None, int, int, int | None]


def _naive_ranking(
    rows: list[Row], period: str, previous: str, as_of: int, known_at: int
) -> list[NaiveEntry]:
    """(rank, unit, score in hundredths, ratings, dissatisfied, previous rank) in ranking order."""
    groups: dict[str, dict[str, list[Row]]] = {period: {}, previous: {}}
    for row in rows:
        if row[0] <= known_at and row[1] <= as_of:
            wanted = groups.get(row[2])
            if wanted is not None:
                wanted.setdefault(row[3], []).append(row)

    def ranked(units: dict[str, list[Row]]) -> list[tuple[int | None, str, int | None, int, int]]:
        scored, unscored = [], []
        for unit, these in units.items():
            count = len(these)
            dissatisfied = sum(1 for row in these if row[5])
            if count < RATINGS_MIN:
                unscored.append((None, unit, None, count, dissatisfied))
                continue
            trim = count * TRIM_SHARE_PERCENT // 100
            kept = sorted(row[4] for row in these)[trim : count - trim]
            score = (2 * sum(kept) + len(kept)) // (2 * len(kept))
            scored.append((score, dissatisfied, unit, count))
        scored.sort(key=lambda item: (-item[0], item[1], item[2]))
        out: list[tuple[int | None, str, int | None, int, int]] = []
        rank, key = 0, None
        for place, (score, dissatisfied, unit, count) in enumerate(scored, start=1):
            if (score, dissatisfied) != key:
                rank, key = place, (score, dissatisfied)
            out.append((rank, unit, score, count, dissatisfied))
        unscored.sort(key=lambda item: item[1])
        return out + unscored

    before = {unit: rank for rank, unit, *_ in ranked(groups[previous])}
    return [
        (rank, unit, score, count, bad, before.get(unit))
        for rank, unit, score, count, bad in ranked(groups[period])
    ]


def _of_view(view: Any) -> list[NaiveEntry]:
    return [
        (
            entry.rank,
            entry.unit_id,
            None if entry.score is None else int(entry.score.scaleb(2)),
            entry.ratings,
            entry.dissatisfied,
            entry.previous_rank,
        )
        for entry in view.entries
    ]


def _reading(full: Path) -> dict[str, Any]:
    from ledger import Ledger
    from ledger.domain.periods import parse_period
    from ledger.projections.service import Projections

    with Ledger.open(url_of(full), clock=clock, create=False) as ledger:
        head = ledger.head()
        log(f"B15b: reading the ratings for the naive model ({head:,} events)")
        rows = _rating_rows(ledger)
        log("B15b: opening the read models")
        started = time.perf_counter()
        projections = Projections.open(ledger)
        open_seconds = time.perf_counter() - started
        randomly = random.Random(SEED)
        first = parse_period(QUARTERS[0]).first_day
        window = (TODAY - first).days
        queries = [
            (
                randomly.choice(QUARTERS),
                first + timedelta(days=randomly.randint(0, window)),
                randomly.randint(1, head),
            )
            for _ in range(WARM_UP_QUERIES + QUERIES)
        ]
        cache = projections.read_cache
        units: list[float] = []
        full_units: list[float] = []
        naive: list[float] = []
        cadres: list[float] = []
        escalations: list[float] = []
        mismatches: list[tuple[str, str, int]] = []
        log(f"B15b: {QUERIES} queries (and {WARM_UP_QUERIES} to warm up)")
        try:
            for index, (period, as_of, known_at) in enumerate(queries):
                previous = parse_period(period).previous().name
                cache.clear()
                started = time.perf_counter()
                view = projections.unit_rankings(period, as_of=as_of, known_at=known_at)
                unit_seconds = time.perf_counter() - started
                cache.clear()
                started = time.perf_counter()
                projections.unit_escalations(period, as_of=as_of, known_at=known_at)
                escalation_seconds = time.perf_counter() - started
                cache.clear()
                started = time.perf_counter()
                projections.rankings("all", as_of=as_of, known_at=known_at)
                cadre_seconds = time.perf_counter() - started
                started = time.perf_counter()
                expected = _naive_ranking(rows, period, previous, as_of.toordinal(), known_at)
                naive_seconds = time.perf_counter() - started
                if _of_view(view) != expected:
                    mismatches.append((period, as_of.isoformat(), known_at))
                if index < WARM_UP_QUERIES:
                    continue
                units.append(unit_seconds * 1000)
                escalations.append(escalation_seconds * 1000)
                cadres.append(cadre_seconds * 1000)
                naive.append(naive_seconds * 1000)
                if any(entry.rank is not None for entry in view.entries):
                    full_units.append(unit_seconds * 1000)
            # The read a person makes most: a whole quarter, as of today, everything known.
            latest: list[float] = []
            for period in QUARTERS * LATEST_ROUNDS:
                cache.clear()
                started = time.perf_counter()
                view = projections.unit_rankings(period, as_of=TODAY, known_at=head)
                latest.append((time.perf_counter() - started) * 1000)
                previous = parse_period(period).previous().name
                if _of_view(view) != _naive_ranking(rows, period, previous, TODAY.toordinal(), head):
                    mismatches.append((period, TODAY.isoformat(), head))
        finally:
            projections.close()
    return {
        "latest": latest,
        "head": head,
        "ratings_read": len(rows),
        "open_seconds": open_seconds,
        "units": units,
        "full_units": full_units,
        "naive": naive,
        "cadres": cadres,
        "escalations": escalations,
        "mismatches": mismatches,
    }


def run() -> list[Result]:
    randomly = random.Random(SEED)
    with scratch_dir("b15") as scratch:
        log("B15: generating twelve quarters of ratings")
        quarters = [_quarter(period, randomly) for period in QUARTERS]
        merits = _merits(len(quarters[-1]) - 1, randomly)
        posting = _posting(scratch, quarters, merits)
        rss_posting = peak_rss_mb()
        reading = _reading(posting["full"])
    rss = peak_rss_mb()
    rate, merit_rate = median(posting["rates"]), median(posting["baseline"])
    p50 = median(reading["units"])
    p95, p99 = percentile(reading["units"], 95), percentile(reading["units"], 99)
    full_p50 = median(reading["full_units"]) if reading["full_units"] else None
    mismatches = reading["mismatches"]
    note = f", p95 {p95:.1f} ms, p99 {p99:.1f} ms" + (
        f"; p50 {full_p50:.1f} ms over the {len(reading['full_units'])} that rank units" if full_p50 else ""
    )
    latest_p50 = median(reading["latest"])
    note += f"; whole quarter as of today p50 {latest_p50:.1f} ms"
    if mismatches:
        note += f"; {len(mismatches)} rankings differ from the naive model's"
    return [
        Result(
            id="B15a",
            what=f"posting a quarter's {posting['ratings']:,} ratings (after 11 quarters), batches of 1,000",
            target=f"≥ {TARGET_POST_RATE:,.0f} events/s",
            measured=rate,
            unit="events/s",
            met=rate >= TARGET_POST_RATE,
            baselines=[(f"{len(merits):,} merit.awarded for the 53 cadres into the same ledger", merit_rate)],
            peak_rss_mb=rss_posting,
            details={
                "rate_repetitions": [round(value) for value in posting["rates"]],
                "merit_repetitions": [round(value) for value in posting["baseline"]],
                "template_events": posting["template_events"],
                "template_build_rate": round(posting["template_build_rate"]),
            },
        ),
        Result(
            id="B15b",
            what=f"a quarter's unit ranking, random (period, as_of, known_at), {reading['head']:,} events",
            target=f"p50 ≤ {TARGET_P50_MS:.0f} ms",
            measured=p50,
            unit="ms p50",
            higher_is_better=False,
            met=p50 <= TARGET_P50_MS and not mismatches,
            baselines=[
                ("naive Python fold over the decoded ratings (p50)", median(reading["naive"])),
                ("cadres' rankings('all') of the same ledger, cold (p50)", median(reading["cadres"])),
                ("unit_escalations of the same period, cold (p50)", median(reading["escalations"])),
            ],
            peak_rss_mb=rss,
            details={
                "note": note,
                "queries": len(reading["units"]),
                "p95_ms": p95,
                "p99_ms": p99,
                "max_ms": max(reading["units"]),
                "ranking_queries": len(reading["full_units"]),
                "ranking_p50_ms": full_p50,
                "latest_p50_ms": latest_p50,
                "latest_p99_ms": percentile(reading["latest"], 99),
                "latest_reads": len(reading["latest"]),
                "naive_p50_ms": median(reading["naive"]),
                "naive_p99_ms": percentile(reading["naive"], 99),
                "cadres_p50_ms": median(reading["cadres"]),
                "escalations_p50_ms": median(reading["escalations"]),
                "escalations_p99_ms": percentile(reading["escalations"], 99),
                "ratings_read": reading["ratings_read"],
                "projections_open_seconds": reading["open_seconds"],
                "naive_mismatches": mismatches[:10],
                "naive_mismatch_count": len(mismatches),
            },
        ),
    ]
