"""B5 — rebuild every projection from the log: `Projections.rebuild()`, in events per second.

What is measured: on a copy of the cached city, the time of `Projections.rebuild()` — read the whole log in
pages, turn each stored event into its fact, write the facts and the tracking position of a new version (one
transaction per page of 10,000), fold them into a fresh in-memory index, switch to the new version and drop
the old one — divided into the number of events. Warm-up: the first fold (`Projections.open` on the copy,
which folds the whole log once; its time is reported as a detail); then three rebuilds; the median.

No baseline: SPEC §11 names none. Peak RSS is this process's, read models included.
"""

from __future__ import annotations

import time
from typing import Final

from benchmarks.workload import (
    Result,
    Size,
    city,
    clock,
    log,
    median,
    peak_rss_mb,
    scratch_dir,
    url_of,
    working_copy,
)

REPETITIONS: Final = 3
TARGET_EVENTS_PER_SECOND: Final = 100_000


def run(size: Size = "1m") -> Result:
    from ledger import Ledger
    from ledger.projections.service import Projections

    source, about = city(size)
    with scratch_dir(f"b5-{size}") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
            head = ledger.head()
            log(f"B5 ({size}): warm-up — the first fold of {head:,} events")
            started = time.perf_counter()
            projections = Projections.open(ledger)
            open_seconds = time.perf_counter() - started
            try:
                rates = []
                for repetition in range(REPETITIONS):
                    started = time.perf_counter()
                    position = projections.rebuild()
                    seconds = time.perf_counter() - started
                    rates.append(position / seconds)
                    log(f"B5 ({size}): rebuild {repetition + 1}: {rates[-1]:,.0f} events/s")
            finally:
                projections.close()
    measured = median(rates)
    return Result(
        id="B5",
        what=f"rebuild all projections from the log, {head:,} events",
        target=f"≥ {TARGET_EVENTS_PER_SECOND:,} events/s",
        measured=measured,
        unit="events/s",
        met=measured >= TARGET_EVENTS_PER_SECOND,
        peak_rss_mb=peak_rss_mb(),
        details={
            "events": head,
            "cadres": about.get("cadres"),
            "repetitions_events_per_second": [round(rate) for rate in rates],
            "rebuild_seconds_median": head / measured,
            "first_fold_seconds": open_seconds,
        },
    )
