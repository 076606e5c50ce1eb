"""The units' read models (issue 15) equal a naive replay of the raw log, whatever order and batches the
ratings were posted in.

Method: hypothesis draws a small town — 2 to 5 units (each known from a `unit.registered` or from a cadre
registered in it), 2 to 4 quarters from 2024Q1, a panel of 1 to 4 raters per quarter drawn in its first
days, and for each (unit, quarter, rater on the panel) a rating or none, its score from a small set (so that
scores tie and the tie-breakers and the edge of the bottom matter), a verdict, and a date from the panel's
day to four months later (so some are dated after the quarter and after some reads' `as_of`). A policy is
drawn too: mean or trimmed mean (trim_share 0.25), ratings_min 1 to 3, bottom 1 to 3, tie-breakers among
fewer_dissatisfied and more_ratings (or none). The ratings are posted in a drawn order, cut into drawn
batches, each quarter's panel just before its first rating. Then for every quarter, at the head and at a few
drawn (as_of, known_at) — known_at anywhere from 0, where only the packaged policy is known — the rankings
(rank, score, ratings, trimmed, dissatisfied, previous rank, movement, in_bottom), the escalations (unit,
rank, score, streak, step, action) and each unit's periods (rank, of, in_bottom, streak, step) equal
`tests/property/naive_units.py`'s. SQLite only (the scenario tests cover PostgreSQL).
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.domain.errors import NotFound
from ledger.domain.events import (
    CadreRegistered,
    EventBase,
    Rater,
    RatingPanelDrawn,
    Source,
    UnitRated,
    UnitRegistered,
)
from ledger.projections.service import Projections
from tests.conftest import TODAY, fixed_clock
from tests.property.naive_units import UnitModel, quarter_bounds, units_policy_text

QUARTERS = ("2024Q1", "2024Q2", "2024Q3", "2024Q4")
SCORES = ("60", "70", "70", "70.5", "80", "80.01", "90", "100")
VERDICTS = ("satisfied", "basically_satisfied", "dissatisfied")
TIE_BREAKERS = ((), ("fewer_dissatisfied",), ("more_ratings",), ("fewer_dissatisfied", "more_ratings"))


@dataclass(frozen=True)
class Town:
    units: tuple[str, ...]
    by_cadre: tuple[bool, ...]  # the unit is known from a cadre (else from unit.registered)
    quarters: tuple[str, ...]
    panels: tuple[tuple[str, tuple[str, ...], int], ...]  # (quarter, raters, days after its first day)
    ratings: tuple[tuple[str, str, str, str, str, int], ...]  # (quarter, unit, rater, score, verdict, days)
    order: tuple[int, ...]
    cuts: tuple[int, ...]
    policy: dict[str, Any]


@st.composite
def towns(draw: st.DrawFn) -> Town:
    units = tuple(f"U{n}" for n in range(1, draw(st.integers(2, 5)) + 1))
    by_cadre = tuple(draw(st.lists(st.booleans(), min_size=len(units), max_size=len(units))))
    quarters = QUARTERS[: draw(st.integers(2, 4))]
    panels = []
    ratings = []
    for quarter in quarters:
        raters = tuple(f"E{n}" for n in range(1, draw(st.integers(1, 4)) + 1))
        panels.append((quarter, raters, draw(st.integers(0, 3))))
        for unit in units:
            for rater in raters:
                if draw(st.integers(0, 3)) == 0:
                    continue  # about a quarter of the possible ratings are not given
                ratings.append(
                    (
                        quarter,
                        unit,
                        rater,
                        draw(st.sampled_from(SCORES)),
                        draw(st.sampled_from(VERDICTS)),
                        draw(st.integers(0, 120)),
                    )
                )
    order = tuple(draw(st.permutations(range(len(ratings)))))
    cuts = tuple(sorted(draw(st.lists(st.integers(0, max(len(ratings), 1)), max_size=5))))
    aggregation = draw(st.sampled_from(("mean", "trimmed_mean")))
    policy = {
        "aggregation": aggregation,
        "trim_share": "0.25" if aggregation == "trimmed_mean" else None,
        "ratings_min": draw(st.integers(1, 3)),
        "bottom_count": draw(st.integers(1, 3)),
        "tie_breakers": draw(st.sampled_from(TIE_BREAKERS)),
    }
    return Town(units, by_cadre, quarters, tuple(panels), tuple(ratings), order, cuts, policy)


class Poster:
    def __init__(self) -> None:
        self.keys = iter(range(1, 10**9))

    def source(self) -> Source:
        return Source(system="survey", key=f"k{next(self.keys)}")

    def setup(self, town: Town) -> list[EventBase]:
        events: list[EventBase] = []
        for unit, by_cadre in zip(town.units, town.by_cadre, strict=True):
            if by_cadre:
                events.append(
                    CadreRegistered(
                        cadre_id=f"L-{unit}",
                        effective_on=date(2023, 6, 1),
                        source=self.source(),
                        name="李四",
                        unit_id=unit,
                        grade="一级科员",
                        leadership=True,
                        principal=True,
                        service_started_on=date(2010, 3, 1),
                        grade_since=date(2020, 1, 1),
                    )
                )
            else:
                events.append(
                    UnitRegistered(
                        effective_on=date(2023, 6, 1),
                        source=self.source(),
                        unit_id=unit,
                        name=f"单位{unit}",
                        kind="department",
                    )
                )
        return events

    def batches(self, town: Town) -> list[list[EventBase]]:
        panel_days = {
            quarter: quarter_bounds(quarter)[0] + timedelta(days=days) for quarter, _, days in town.panels
        }
        panels = {
            quarter: RatingPanelDrawn(
                effective_on=panel_days[quarter],
                source=self.source(),
                period=quarter,
                rater_kind="enterprise",
                raters=raters,
                method="lot",
                seed=quarter,
            )
            for quarter, raters, _ in town.panels
        }
        # Panels of quarters nobody rated come first; the others just before their first rating.
        sequence: list[EventBase] = [
            panels.pop(q) for q in town.quarters if all(r[0] != q for r in town.ratings)
        ]
        for index in town.order:
            quarter, unit, rater, score, verdict, days = town.ratings[index]
            if quarter in panels:
                sequence.append(panels.pop(quarter))
            sequence.append(
                UnitRated(
                    effective_on=min(panel_days[quarter] + timedelta(days=days), TODAY),
                    source=self.source(),
                    unit_id=unit,
                    period=quarter,
                    rater=Rater(kind="enterprise", id=rater),
                    score=score,
                    verdict=verdict,  # type: ignore[arg-type]
                )
            )
        bounds = [0, *(min(cut, len(sequence)) for cut in town.cuts), len(sequence)]
        return [sequence[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def answers(projections: Projections, period: str, as_of: date, known_at: int) -> tuple[Any, ...]:
    rankings = [
        (
            e.rank,
            e.unit_id,
            e.score,
            e.ratings,
            e.trimmed,
            e.dissatisfied,
            e.previous_rank,
            e.movement,
            e.in_bottom,
        )
        for e in projections.unit_rankings(period, as_of=as_of, known_at=known_at).entries
    ]
    escalations = [
        (e.unit_id, e.rank, e.score, e.streak, e.step, e.action)
        for e in projections.unit_escalations(period, as_of=as_of, known_at=known_at).escalations
    ]
    return rankings, escalations


def model_answers(model: UnitModel, period: str, as_of: date, known_at: int) -> tuple[Any, ...]:
    rankings = [
        (
            r.rank,
            r.unit_id,
            r.score,
            r.ratings,
            r.trimmed,
            r.dissatisfied,
            r.previous_rank,
            r.movement,
            r.in_bottom,
        )
        for r in model.rankings(period, as_of, known_at)
    ]
    escalations = [
        (e.unit_id, e.rank, e.score, e.streak, e.step, e.action)
        for e in model.escalations(period, as_of, known_at)
    ]
    return rankings, escalations


def unit_periods(projections: Projections, unit: str, as_of: date, known_at: int) -> list[tuple[Any, ...]]:
    try:
        view = projections.unit(unit, as_of=as_of, known_at=known_at)
    except NotFound:  # nothing placed, registered or rated it by `known_at`: it has no periods
        return []
    return [(p.period, p.rank, p.of, p.score, p.in_bottom, p.streak, p.step) for p in view.periods]


def model_unit_periods(model: UnitModel, unit: str, as_of: date, known_at: int) -> list[tuple[Any, ...]]:
    periods = []
    for period in QUARTERS:
        listed = model.rankings(period, as_of, known_at)
        mine = [row for row in listed if row.unit_id == unit]
        if not mine:
            continue
        row = mine[0]
        streak = model.streak(unit, period, as_of, known_at) if row.in_bottom else 0
        ladder = model.rules(period, known_at).ladder
        step = ladder[min(streak, len(ladder)) - 1][0] if streak else None
        of = sum(1 for other in listed if other.rank is not None)
        periods.append((period, row.rank, of, row.score, row.in_bottom, streak, step))
    return periods


reads = st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(town=towns(), drawn=reads)
def test_unit_rankings_and_escalations_equal_a_naive_replay_in_any_posting_order(
    town: Town, drawn: Any
) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger.open(f"sqlite:///{Path(folder) / 'ledger.db'}", clock=fixed_clock) as ledger,
    ):
        ledger.publish_policy(units_policy_text("units-drawn-1", **town.policy))
        poster = Poster()
        ledger.post(poster.setup(town))
        for batch in poster.batches(town):
            ledger.post(batch, posted_by="survey")
        records = ledger.records(after=0, limit=10**6)
        model = UnitModel(records)
        head = ledger.head()
        days = sorted({event.effective_on for _, event in records if isinstance(event, UnitRated)})
        points = [(TODAY, head)]
        for when, back in drawn:
            as_of = days[when % len(days)] - timedelta(days=when // 7 % 2) if days else TODAY
            points.append((as_of, head - round(back * head / 1000)))
        projections = Projections.open(ledger)
        try:
            for as_of, known_at in points:
                for period in town.quarters:
                    assert answers(projections, period, as_of, known_at) == model_answers(
                        model, period, as_of, known_at
                    ), (period, as_of, known_at)
                for unit in town.units:
                    if any(r[1] == unit for r in town.ratings):
                        assert unit_periods(projections, unit, as_of, known_at) == model_unit_periods(
                            model, unit, as_of, known_at
                        ), (unit, as_of, known_at)
        finally:
            projections.close()
