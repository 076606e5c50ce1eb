"""B12 — the Merkle tree (issue 12): what keeping it costs the ingest, and what a proof costs at 1M events.

What is measured:
- **Tree on ingest**: B1's workload (100,000 events after the city's registrations, batches of 1,000,
  SQLite file, `synchronous` FULL) posted with the tree kept in the append, against the same code with the
  tree's two steps in the append stubbed out (no right edge read, no rows written) — the baseline, in the
  same run, alternating with the measured runs so that the disk's and the machine's drift hit both. Target:
  the tree costs at most 10 %: the median over five pairs of (rate with the tree / rate without) ≥ 0.9.
- **Proofs at 1M**: on a copy of the cached city (reopened, so the tree's right edge is not in memory), and
  on the city imported into PostgreSQL (B9's schema, reused while it holds the same log),
  `Ledger.inclusion_proof(P)` for random positions against the head and `Ledger.consistency_proof(M)` for
  random sizes to the head, each read from the stored tree (one query for all the stored hashes a proof
  needs). p50 and p99 of 300 each after 30 warm-up proofs. Target: p50 ≤ 5 ms. Baseline, in the same run:
  reading the one event row the proof is about (`Ledger.event_at`-like primary-key read of a stored event
  through the ledger's `events(after=P-1, limit=1)`), the least a read that answers about an event costs.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final
from unittest import mock

from benchmarks.b1_ingest import BATCH, EVENTS, WARM_UP_BATCHES, _ledger_run
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
    registered_ledger,
    scratch_dir,
    url_of,
    working_copy,
)

# Pairs of runs (without the tree, then with it): the ratio is the median of the pairs' ratios, which a
# drift of the machine between pairs does not move (single runs of B1 vary by ±10 % here).
REPETITIONS: Final = 5
PROOFS: Final = 300
WARM_UP_PROOFS: Final = 30
TARGET_TREE_RATIO: Final = 0.9
TARGET_PROOF_MS: Final = 5.0
SEED: Final = 12


def _without_tree() -> ExitStack:
    """The append with the tree's steps stubbed out: no right edge read, no rows written."""
    from ledger.store.recorders import LedgerRecorder
    from ledger.store.tree import MerkleTable

    stack = ExitStack()
    stack.enter_context(mock.patch.object(MerkleTable, "rows_for_append", lambda *_args: []))
    stack.enter_context(mock.patch.object(LedgerRecorder, "_insert_tree_rows", lambda *_args: None))
    return stack


def _tree_on_ingest(scratch: Path) -> dict[str, Any]:
    log("B12: building the ingest workload (B1's)")
    workload = ingest_workload(EVENTS)
    batches = batches_of(workload.events, BATCH)
    template = registered_ledger(workload.registrations, scratch / "registered.db")
    work = scratch / "ledger.db"
    _ledger_run(template, work, batches[:WARM_UP_BATCHES])
    with _without_tree():
        _ledger_run(template, work, batches[:WARM_UP_BATCHES])
    with_tree: list[float] = []
    without: list[float] = []
    for repetition in range(REPETITIONS):
        with _without_tree():
            seconds, _ = _ledger_run(template, work, batches)
        without.append(len(workload.events) / seconds)
        seconds, _ = _ledger_run(template, work, batches)
        with_tree.append(len(workload.events) / seconds)
        log(
            f"B12: ingest {repetition + 1}: {with_tree[-1]:,.0f} events/s with the tree, "
            f"{without[-1]:,.0f} without"
        )
    return {"with": with_tree, "without": without}


def _proofs(url: str) -> dict[str, Any]:
    from ledger import Ledger

    with Ledger.open(url, clock=clock, create=False) as ledger:
        head = ledger.head()
        randomly = random.Random(SEED)
        log(f"B12: {PROOFS} inclusion and consistency proofs at {head:,} events")

        def timed_ms(call: Any, argument: int) -> float:
            started = time.perf_counter()
            call(argument)
            return (time.perf_counter() - started) * 1000

        positions = [randomly.randint(1, head) for _ in range(WARM_UP_PROOFS + PROOFS)]
        sizes = [randomly.randint(1, head) for _ in range(WARM_UP_PROOFS + PROOFS)]
        inclusion = [timed_ms(ledger.inclusion_proof, p) for p in positions][WARM_UP_PROOFS:]
        consistency = [timed_ms(ledger.consistency_proof, m) for m in sizes][WARM_UP_PROOFS:]
        event_read = [timed_ms(lambda p: ledger.events(after=p - 1, limit=1), p) for p in positions]
        proof = ledger.inclusion_proof(positions[0])
        hashes = len(proof.audit_path)
    return {
        "head": head,
        "inclusion": inclusion,
        "consistency": consistency,
        "event_read": event_read[WARM_UP_PROOFS:],
        "path_hashes": hashes,
    }


def run() -> list[Result]:
    with scratch_dir("b12") as scratch:
        ingest = _tree_on_ingest(scratch)
        rss = peak_rss_mb()
        source, about = city("1m")
        proofs = _proofs(url_of(working_copy(source, scratch / "city.db")))
        base, reason = postgres_base()
        on_postgres = None
        if base is not None:
            from benchmarks.b9_postgres import _city_on_postgres

            url, _seconds = _city_on_postgres(base, source, about, scratch)
            on_postgres = _proofs(url)
    with_tree, without = median(ingest["with"]), median(ingest["without"])
    ratio = median([w / o for w, o in zip(ingest["with"], ingest["without"], strict=True)])
    inclusion_p50 = median(proofs["inclusion"])
    consistency_p50 = median(proofs["consistency"])
    read_p50 = median(proofs["event_read"])
    return [
        Result(
            id="B12a",
            what="ingest with the Merkle tree kept (B1's workload), against the same code without it",
            target=f"≥ {TARGET_TREE_RATIO:.0%} of the rate without the tree",
            measured=with_tree,
            unit="events/s",
            met=ratio >= TARGET_TREE_RATIO,
            baselines=[("the same append, the tree's steps stubbed out", without)],
            peak_rss_mb=rss,
            details={
                "with_tree_repetitions": [round(value) for value in ingest["with"]],
                "without_tree_repetitions": [round(value) for value in ingest["without"]],
                "median_pair_ratio": round(ratio, 3),
                "pair_ratios": [
                    round(w / o, 3) for w, o in zip(ingest["with"], ingest["without"], strict=True)
                ],
            },
        ),
        Result(
            id="B12b",
            what=f"inclusion proof at {proofs['head']:,} events (SQLite), against the head",
            target=f"p50 ≤ {TARGET_PROOF_MS:g} ms",
            measured=inclusion_p50,
            unit="ms",
            higher_is_better=False,
            met=inclusion_p50 <= TARGET_PROOF_MS,
            baselines=[("reading the event's row alone", read_p50)],
            details={
                "p99_ms": percentile(proofs["inclusion"], 99),
                "audit_path_hashes": proofs["path_hashes"],
                "proofs": len(proofs["inclusion"]),
            },
        ),
        Result(
            id="B12c",
            what=f"consistency proof at {proofs['head']:,} events (SQLite), random size to the head",
            target=f"p50 ≤ {TARGET_PROOF_MS:g} ms",
            measured=consistency_p50,
            unit="ms",
            higher_is_better=False,
            met=consistency_p50 <= TARGET_PROOF_MS,
            baselines=[("reading one event's row", read_p50)],
            details={"p99_ms": percentile(proofs["consistency"], 99), "proofs": len(proofs["consistency"])},
        ),
        _postgres_result(on_postgres, reason),
    ]


def _postgres_result(proofs: dict[str, Any] | None, reason: str) -> Result:
    what = "inclusion and consistency proofs at 1M events on PostgreSQL"
    if proofs is None:
        return Result(id="B12d", what=what, target="", status="not run", reason=reason)
    inclusion, consistency = median(proofs["inclusion"]), median(proofs["consistency"])
    return Result(
        id="B12d",
        what=f"inclusion proof at {proofs['head']:,} events on PostgreSQL (consistency in details)",
        target=f"p50 ≤ {TARGET_PROOF_MS:g} ms",
        measured=inclusion,
        unit="ms",
        higher_is_better=False,
        met=max(inclusion, consistency) <= TARGET_PROOF_MS,
        baselines=[("reading the event's row alone", median(proofs["event_read"]))],
        details={
            "inclusion_p99_ms": percentile(proofs["inclusion"], 99),
            "consistency_p50_ms": consistency,
            "consistency_p99_ms": percentile(proofs["consistency"], 99),
        },
    )
