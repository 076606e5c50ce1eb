"""Writers racing to record the same rater's rating of one unit (issue 15 on the store path): two and four
processes, released together by a barrier, each post E1's rating of D1 for 2024Q1 under its own source key.
Exactly one is recorded; every other is refused `unit_already_rated` after catching up with the winner;
the log holds one rating by E1."""

from __future__ import annotations

import multiprocessing
from datetime import date
from typing import Any

import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import Rater, RatingPanelDrawn, UnitRated
from ledger.projections.service import Projections
from tests.conftest import fixed_clock, registration, source
from tests.property.naive_units import units_policy_text

JOIN_SECONDS = 120


def rating(key: str, rater: str = "E1") -> UnitRated:
    return UnitRated(
        effective_on=date(2024, 2, 1),
        source=source("survey", key=key),
        unit_id="D1",
        period="2024Q1",
        rater=Rater(kind="enterprise", id=rater),
        score="80",
        verdict="satisfied",
    )


def racer(url: str, number: int, barrier: Any, results: Any) -> None:
    with Ledger.open(url, clock=fixed_clock) as ledger:
        # Warm: this writer knows the log before the race (its own rater, never in conflict).
        ledger.post([rating(f"warm-{number}", rater=f"W{number}")], posted_by="test")
        barrier.wait(timeout=JOIN_SECONDS)
        try:
            ledger.post([rating(f"race-{number}")], posted_by=f"writer-{number}")
            results.put("accepted")
        except InvalidInput as refused:
            results.put(f"refused {refused.field} {refused.rule}")


@pytest.mark.parametrize("writers", [2, 4])
def test_racing_writers_record_one_rating_per_rater_and_unit(store_url: str, writers: int) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.publish_policy(units_policy_text("units-race", ratings_min=1))
        panel = RatingPanelDrawn(
            effective_on=date(2024, 1, 5),
            source=source("survey"),
            period="2024Q1",
            rater_kind="enterprise",
            raters=("E1", *(f"W{n}" for n in range(writers))),
            method="lot",
            seed="s",
        )
        ledger.post([registration("L1", unit_id="D1", principal=True), panel], posted_by="test")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=racer, args=(store_url, n, barrier, results)) for n in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_SECONDS)
        assert process.exitcode == 0
    outcomes = sorted(results.get(timeout=JOIN_SECONDS) for _ in processes)
    assert outcomes == ["accepted"] + ["refused rater.id unit_already_rated"] * (writers - 1)
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        projections = Projections.open(ledger)
        try:
            by_rater = [r.rater_id for r in projections.unit("D1").ratings]
        finally:
            projections.close()
    assert sorted(by_rater) == sorted(["E1", *(f"W{n}" for n in range(writers))])
