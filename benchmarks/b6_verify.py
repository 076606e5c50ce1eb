"""B6 — verify the whole chain: `Ledger.verify()`, in events per second.

What is measured: on a copy of the cached city, the time of `Ledger.verify()` — read every event row and
chain row in position order, decode the few fields verification needs, recompute
`SHA-256(prev_hash ‖ canonical_bytes(event))` and compare it and the stream columns — divided into the
number of events. Warm-up: one verify; then three; the median. The run checks that it answers ok through
the head.

Baseline, in the same run: hashlib over the same bytes. The canonical bytes of every event are built
beforehand (not timed); the timed loop is only the chain itself, `previous = sha256(previous + canonical)
.digest()`, the least any verification of this chain must do. Also reported (details): the rate of reading
the rows alone (one SQL join of events and chain, fetched, nothing checked), so the gap can be placed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Final

from benchmarks.workload import (
    Result,
    city,
    clock,
    log,
    median,
    peak_rss_mb,
    scratch_dir,
    timed,
    url_of,
    working_copy,
)

REPETITIONS: Final = 3
TARGET_EVENTS_PER_SECOND: Final = 300_000


def _chain(canonicals: list[bytes]) -> bytes:
    previous = bytes(32)
    sha256 = hashlib.sha256
    for canonical in canonicals:
        previous = sha256(previous + canonical).digest()
    return previous


def _stored_rows(path: Path) -> list[tuple[int, str, bytes]]:
    """(position, recorded_at, state) of every event, joined to its chain row, in position order."""
    connection = sqlite3.connect(path)
    try:
        rows: list[tuple[int, str, bytes]] = connection.execute(
            "SELECT e.rowid, c.recorded_at, e.state FROM stored_events e "
            "JOIN ledger_chain c ON c.position = e.rowid ORDER BY e.rowid"
        ).fetchall()
    finally:
        connection.close()
    return rows


def run() -> Result:
    from ledger import Ledger
    from ledger.integrity.chain import canonical_bytes

    source, _about = city("1m")
    with scratch_dir("b6") as scratch:
        path = working_copy(source, scratch / "ledger.db")
        with Ledger.open(url_of(path), clock=clock, create=False) as ledger:
            head = ledger.head()
            log(f"B6: warm-up, then {REPETITIONS} verifications of {head:,} events")
            report = ledger.verify()
            if not report.ok or report.verified_through != head:
                raise RuntimeError(f"the cached city does not verify: {report}")
            rates = []
            for repetition in range(REPETITIONS):
                started = time.perf_counter()
                report = ledger.verify()
                rates.append(head / (time.perf_counter() - started))
                log(f"B6: verify {repetition + 1}: {rates[-1]:,.0f} events/s")
        rss = peak_rss_mb()  # verify's, before the baseline holds every event's bytes in memory
        # What the chain hashes, built once (not timed) from the rows as stored.
        read_seconds, rows = timed(lambda: _stored_rows(path))
        canonicals = [canonical_bytes(position, recorded_at, state) for position, recorded_at, state in rows]
        del rows
    log("B6 baseline: hashlib over the same bytes")
    if _chain(canonicals).hex() != report.head_hash:
        raise RuntimeError("the baseline's chain does not end at the ledger's head hash")
    hashed = []
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        _chain(canonicals)
        hashed.append(len(canonicals) / (time.perf_counter() - started))
    measured = median(rates)
    input_bytes = sum(map(len, canonicals)) + 32 * len(canonicals)
    baseline = median(hashed)
    return Result(
        id="B6",
        what=f"verify the whole chain, {head:,} events",
        target=f"≥ {TARGET_EVENTS_PER_SECOND:,} events/s",
        measured=measured,
        unit="events/s",
        baselines=[("hashlib SHA-256 chain over the same bytes", baseline)],
        met=measured >= TARGET_EVENTS_PER_SECOND,
        peak_rss_mb=rss,
        details={
            "events": head,
            "repetitions_events_per_second": [round(rate) for rate in rates],
            "hashlib_repetitions_events_per_second": [round(rate) for rate in hashed],
            "hash_input_bytes_mean": input_bytes / len(canonicals),
            "hashlib_megabytes_per_second": baseline * input_bytes / len(canonicals) / 1e6,
            "read_rows_only_events_per_second": len(canonicals) / read_seconds,
        },
    )
