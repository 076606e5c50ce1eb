"""Units rated by enterprises (issue 15, 市场主体评部门): the posting rules of panels and ratings, and the
read models (unit rankings, escalations, a unit's history) on both time axes, on each store.

Method: a small Xiantao — departments D1 … D6, each with a principal leader L1 … L6 (D6 also has a deputy
who is not principal), and D7 with no cadre — rated in 2024Q1 … 2024Q4 by a panel E1 … E5 drawn on the 5th
of each quarter's first month; E1 … E4 rate every department on the 51st day of the quarter. Unless a test
says otherwise the rulebook in force is `units-mean-1`: the illustrative policy with a `[units]` table of
plain means, ratings_min 2, no dimensions, tie-breaker fewer_dissatisfied, bottom 3, the Xiantao ladder.
Every expected figure is worked out by hand below (the arithmetic in the comments); the property and
shuffle checks also compare with `tests/property/naive_units.py`, written from the rules alone.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import (
    CadreLeftLeadership,
    DeductionApplied,
    EventBase,
    Rater,
    RatingPanelDrawn,
    UnitRated,
    UnitRegistered,
)
from ledger.projections.service import Projections
from tests.conftest import TODAY, fixed_clock, registration, source
from tests.property.naive_units import UnitModel, quarter_bounds, units_policy_text

D = Decimal
QUARTERS = ("2024Q1", "2024Q2", "2024Q3", "2024Q4")
RATERS = ("E1", "E2", "E3", "E4")
PANEL = (*RATERS, "E5")  # E5 is drawn but never rates
MEAN_POLICY = units_policy_text("units-mean-1", ratings_min=2)
COMMIT, ADMONISH, REMOVE = "commitment_speech_and_summons_talk", "admonishment_talk", "removal_from_post"
NAMES = {"D1": "部门一", "D2": "部门二", "D3": "部门三", "D4": "部门四", "D5": "部门五", "D7": "部门七"}

# The ratings of E1 … E4 in order; "!" marks a `dissatisfied` verdict, "~" `basically_satisfied`.
SCORES: dict[str, dict[str, str]] = {
    "2024Q1": {
        "D1": "90 92 94 96",
        "D2": "85.02 85 86 86",
        "D3": "70! 72 74 76",
        "D4": "73! 73! 73~ 73",
        "D5": "60! 65! 70 75",
        "D6": "50! 55! 60! 61~",
    },
    "2024Q2": {
        "D1": "91 91 91 91",
        "D2": "70! 71 72 73",
        "D3": "69! 70 70 70",
        "D4": "88 88 88 88",
        "D5": "60! 60! 60 61",
        "D6": "40! 45! 50! 55!",
    },
    "2024Q3": {
        "D1": "95 95 95 95",
        "D2": "66! 67 68 69",
        "D3": "80 80 80 81",
        "D4": "60! 60! 61 61",
        "D5": "85 85 85 85",
        "D6": "30! 40! 50! 60!",
    },
    "2024Q4": {
        "D1": "90 90 90 90",
        "D2": "88 88 88 88",
        "D3": "75! 75 75 75",
        "D4": "74! 75 75 76",
        "D5": "70! 70! 70 70",
        "D6": "50! 50! 50! 50!",
    },
}

# (rank, unit, score, ratings, dissatisfied, previous_rank, movement, in_bottom) — by hand:
EXPECTED_RANKINGS: dict[str, list[tuple[Any, ...]]] = {
    "2024Q1": [
        (1, "D1", D("93.00"), 4, 0, None, None, False),  # (90+92+94+96)/4 = 372/4
        (2, "D2", D("85.51"), 4, 0, None, None, False),  # 342.02/4 = 85.505 → half up 85.51
        (3, "D3", D("73.00"), 4, 1, None, None, False),  # 292/4; 1 dissatisfied beats D4's 2
        (4, "D4", D("73.00"), 4, 2, None, None, True),  # 292/4; bottom 3 = ranks 4, 5, 6
        (5, "D5", D("67.50"), 4, 2, None, None, True),  # 270/4
        (6, "D6", D("56.50"), 4, 3, None, None, True),  # 226/4
        (None, "D7", None, 1, 1, None, None, False),  # 1 rating < ratings_min 2: listed, not ranked
    ],
    "2024Q2": [
        (1, "D1", D("91.00"), 4, 0, 1, 0, False),
        (2, "D4", D("88.00"), 4, 0, 4, 2, False),  # recovers: out of the bottom
        (3, "D2", D("71.50"), 4, 1, 2, -1, False),  # 286/4
        (4, "D3", D("69.75"), 4, 1, 3, -1, True),  # 279/4
        (5, "D5", D("60.25"), 4, 2, 5, 0, True),  # 241/4
        (6, "D6", D("47.50"), 4, 4, 6, 0, True),  # 190/4
    ],
    "2024Q3": [
        (1, "D1", D("95.00"), 4, 0, 1, 0, False),
        (2, "D5", D("85.00"), 4, 0, 5, 3, False),
        (3, "D3", D("80.25"), 4, 0, 4, 1, False),  # 321/4
        (4, "D2", D("67.50"), 4, 1, 3, -1, True),  # 270/4
        (5, "D4", D("60.50"), 4, 2, 2, -3, True),  # 242/4
        (6, "D6", D("45.00"), 4, 4, 6, 0, True),  # 180/4
    ],
    "2024Q4": [
        (1, "D1", D("90.00"), 4, 0, 1, 0, False),
        (2, "D2", D("88.00"), 4, 0, 4, 2, False),
        # D3 300/4 = 75.00 with 1 dissatisfied, D4 (74+75+75+76)/4 = 300/4 = 75.00 with 1: tied on both, they
        # share rank 3, which is the 3rd from the bottom: both are in, four units in the bottom three.
        (3, "D3", D("75.00"), 4, 1, 3, 0, True),
        (3, "D4", D("75.00"), 4, 1, 5, 2, True),
        (5, "D5", D("70.00"), 4, 2, 2, -3, True),
        (6, "D6", D("50.00"), 4, 4, 6, 0, True),
    ],
}

# (unit, rank, score, streak, step, action, leader, consequence, consequence_posted) before any consequence
# is posted, by longest streak, then lowest rank. Streaks count the quarters in a row up to this one:
# D6 is in the bottom every quarter (1, 2, 3, 4 → steps 1, 2, 3, 3); D5 in Q1, Q2 (2), out in Q3, in Q4 (1);
# D4 in Q1 (1), out in Q2, in Q3 (1, reset), Q4 (2); D3 in Q2 (1), out in Q3, in Q4 (1); D2 in Q3 only.
EXPECTED_ESCALATIONS: dict[str, list[tuple[Any, ...]]] = {
    "2024Q1": [
        ("D6", 6, D("56.50"), 1, 1, COMMIT, "L6", None, None),
        ("D5", 5, D("67.50"), 1, 1, COMMIT, "L5", None, None),
        ("D4", 4, D("73.00"), 1, 1, COMMIT, "L4", None, None),
    ],
    "2024Q2": [
        ("D6", 6, D("47.50"), 2, 2, ADMONISH, "L6", "deduction:admonishment", False),
        ("D5", 5, D("60.25"), 2, 2, ADMONISH, "L5", "deduction:admonishment", False),
        ("D3", 4, D("69.75"), 1, 1, COMMIT, "L3", None, None),
    ],
    "2024Q3": [
        ("D6", 6, D("45.00"), 3, 3, REMOVE, "L6", "removal", False),
        ("D4", 5, D("60.50"), 1, 1, COMMIT, "L4", None, None),
        ("D2", 4, D("67.50"), 1, 1, COMMIT, "L2", None, None),
    ],
    "2024Q4": [
        ("D6", 6, D("50.00"), 4, 3, REMOVE, "L6", "removal", False),  # beyond the top rung: stays on it
        ("D4", 3, D("75.00"), 2, 2, ADMONISH, "L4", "deduction:admonishment", False),
        ("D5", 5, D("70.00"), 1, 1, COMMIT, "L5", None, None),
        ("D3", 3, D("75.00"), 1, 1, COMMIT, "L3", None, None),
    ],
}


@pytest.fixture
def projections(ledger: Ledger) -> Iterator[Projections]:
    opened = Projections.open(ledger)
    yield opened
    opened.close()


# Builders.


def panel_day(period: str) -> date:
    return quarter_bounds(period)[0] + timedelta(days=4)


def rating_day(period: str) -> date:
    return quarter_bounds(period)[0] + timedelta(days=50)


def panel(period: str, raters: tuple[str, ...] = PANEL, on: date | None = None) -> RatingPanelDrawn:
    return RatingPanelDrawn(
        effective_on=on or panel_day(period),
        source=source("survey"),
        period=period,
        rater_kind="enterprise",
        raters=raters,
        method="lot",
        seed=f"seed-{period}",
    )


def rating(
    unit_id: str,
    period: str,
    rater: str,
    score: str,
    *,
    verdict: str = "satisfied",
    on: date | None = None,
    scores: dict[str, str] | None = None,
) -> UnitRated:
    return UnitRated(
        effective_on=on or rating_day(period),
        source=source("survey"),
        unit_id=unit_id,
        period=period,
        rater=Rater(kind="enterprise", id=rater),
        score=score,
        verdict=verdict,  # type: ignore[arg-type]
        scores=scores,
    )


def marked(text: str) -> tuple[str, str]:
    """A score of SCORES and its verdict."""
    if text.endswith("!"):
        return text[:-1], "dissatisfied"
    if text.endswith("~"):
        return text[:-1], "basically_satisfied"
    return text, "satisfied"


def unit_registration(unit_id: str, name: str, on: date = date(2023, 6, 1)) -> UnitRegistered:
    return UnitRegistered(effective_on=on, source=source(), unit_id=unit_id, name=name, kind="department")


def deduction(cadre_id: str, on: date, kind: str = "admonishment") -> DeductionApplied:
    return DeductionApplied(cadre_id=cadre_id, effective_on=on, source=source(), kind=kind, level="county")  # type: ignore[arg-type]


def setup_events() -> list[EventBase]:
    """The leaders L1 … L6 (principal), D6's deputy V6 (not principal), the units' details (D6 has none)."""
    cadres: list[EventBase] = [
        registration(f"L{n}", on=date(2023, 6, 1), unit_id=f"D{n}", principal=True) for n in range(1, 7)
    ]
    cadres.append(registration("V6", on=date(2023, 6, 1), unit_id="D6"))
    return [*cadres, *(unit_registration(unit_id, name) for unit_id, name in NAMES.items())]


def quarter_ratings(period: str) -> list[UnitRated]:
    events = []
    for unit_id, row in SCORES[period].items():
        for rater, text in zip(RATERS, row.split(), strict=True):
            score, verdict = marked(text)
            events.append(rating(unit_id, period, rater, score, verdict=verdict))
    if period == "2024Q1":
        events.append(rating("D7", period, "E1", "10", verdict="dissatisfied"))
    return events


def post_scenario(ledger: Ledger, *, hold_back: UnitRated | None = None) -> None:
    """The Xiantao scenario, quarter by quarter (one batch each), leaving out `hold_back`."""
    ledger.publish_policy(MEAN_POLICY)
    ledger.post(setup_events())
    for period in QUARTERS:
        ratings = [event for event in quarter_ratings(period) if not _same_rating(event, hold_back)]
        ledger.post([panel(period), *ratings], posted_by="survey")


def _same_rating(event: UnitRated, other: UnitRated | None) -> bool:
    return other is not None and (event.unit_id, event.period, event.rater) == (
        other.unit_id,
        other.period,
        other.rater,
    )


def rows(view: Any) -> list[tuple[Any, ...]]:
    return [
        (
            entry.rank,
            entry.unit_id,
            entry.score,
            entry.ratings,
            entry.dissatisfied,
            entry.previous_rank,
            entry.movement,
            entry.in_bottom,
        )
        for entry in view.entries
    ]


def escalation_rows(view: Any) -> list[tuple[Any, ...]]:
    return [
        (
            item.unit_id,
            item.rank,
            item.score,
            item.streak,
            item.step,
            item.action,
            None if item.leader is None else item.leader.cadre_id,
            item.consequence,
            item.consequence_posted,
        )
        for item in view.escalations
    ]


def model_rows(model: UnitModel, period: str, as_of: date, known_at: int) -> list[tuple[Any, ...]]:
    return [
        (r.rank, r.unit_id, r.score, r.ratings, r.dissatisfied, r.previous_rank, r.movement, r.in_bottom)
        for r in model.rankings(period, as_of, known_at)
    ]


def model_escalations(model: UnitModel, period: str, as_of: date, known_at: int) -> list[tuple[Any, ...]]:
    return [
        (e.unit_id, e.rank, e.score, e.streak, e.step, e.action)
        for e in model.escalations(period, as_of, known_at)
    ]


def refused(ledger: Ledger, events: list[EventBase]) -> InvalidInput:
    """The refusal of `events`, checking that nothing was recorded."""
    head = ledger.head()
    with pytest.raises(InvalidInput) as caught:
        ledger.post(events, posted_by="survey")
    assert ledger.head() == head, "a refused batch records nothing"
    return caught.value


# §1 The Xiantao scenario.


def test_each_quarter_ranks_departments_by_mean_score_and_fewer_dissatisfied_with_the_bottom_three(
    ledger: Ledger, projections: Projections
) -> None:
    """The rankings of 2024Q1 … Q4 (figures in EXPECTED_RANKINGS): means rounded half up, the tie-breaker
    putting D3 above D4 in Q1, D7 listed unranked, the tie at the edge of Q4 taking four units."""
    post_scenario(ledger)
    for period in QUARTERS:
        view = projections.unit_rankings(period)
        assert rows(view) == EXPECTED_RANKINGS[period], period
        assert (view.policy_version, view.aggregation, view.ratings_min, view.bottom_count) == (
            "units-mean-1",
            "mean",
            2,
            3,
        )
        assert view.previous_period == {"2024Q1": "2023Q4", "2024Q2": "2024Q1"}.get(
            period, view.previous_period
        )
        assert view.panel is not None
        assert (view.panel.size, view.panel.method, view.panel.seed, view.panel.drawn_on) == (
            5,
            "lot",
            f"seed-{period}",
            panel_day(period),
        )
    names = {entry.unit_id: entry.name for entry in projections.unit_rankings("2024Q1").entries}
    assert names == {**NAMES, "D6": None}, "D6 is known from its cadres only: no details"
    assert all(entry.trimmed == 0 for entry in projections.unit_rankings("2024Q1").entries)
    # A quarter nobody rated lists nobody.
    empty = projections.unit_rankings("2025Q1")
    assert empty.entries == [] and empty.panel is None
    assert projections.unit_escalations("2025Q1").escalations == []


def test_two_quarters_in_the_bottom_reach_step_two_three_reach_step_three_and_a_recovery_resets(
    ledger: Ledger, projections: Projections
) -> None:
    """The escalations of every quarter (EXPECTED_ESCALATIONS): D6 climbs 1, 2, 3 and stays on 3; D4, out
    of the bottom in Q2, starts again at streak 1 in Q3; each action names the unit's principal leader (not
    D6's deputy V6)."""
    post_scenario(ledger)
    for period in QUARTERS:
        view = projections.unit_escalations(period)
        assert escalation_rows(view) == EXPECTED_ESCALATIONS[period], period
        assert view.bottom_count == 3 and view.policy_version == "units-mean-1"
    q2 = projections.unit_escalations("2024Q2").escalations
    assert q2[0].label == "诫勉谈话" and q2[0].leader is not None and q2[0].leader.name == "张三"


def test_an_admonishment_posted_after_the_quarter_for_the_leader_shows_as_posted(
    ledger: Ledger, projections: Projections
) -> None:
    """Step 2 of 2024Q2 (D5 → L5, D6 → L6) asks for an admonishment posted after 2024-06-30 and by the end of
    2024Q3 (2024-09-30). L6's is dated 2024-06-20, inside Q2: it does not count. L5's is dated 2024-07-10:
    posted from its position on, and only for reads as of 2024-07-10 or later. Step 2 of 2024Q4 (D4 → L4):
    an admonishment dated 2025-04-05, after the end of 2025Q1, is too late."""
    post_scenario(ledger)
    ledger.post([deduction("L6", date(2024, 6, 20))])
    before = ledger.head()
    posted = ledger.post([deduction("L5", date(2024, 7, 10))]).position
    ledger.post([deduction("L4", date(2025, 4, 5))])

    def flags(period: str, **read: Any) -> dict[str, bool | None]:
        view = projections.unit_escalations(period, **read)
        return {item.unit_id: item.consequence_posted for item in view.escalations}

    assert flags("2024Q2") == {"D6": False, "D5": True, "D3": None}
    assert flags("2024Q2", known_at=before) == {"D6": False, "D5": False, "D3": None}
    assert flags("2024Q2", known_at=posted) == {"D6": False, "D5": True, "D3": None}
    assert flags("2024Q2", as_of=date(2024, 7, 9)) == {"D6": False, "D5": False, "D3": None}
    assert flags("2024Q2", as_of=date(2024, 7, 10)) == {"D6": False, "D5": True, "D3": None}
    assert flags("2024Q4") == {"D6": False, "D4": False, "D5": None, "D3": None}


def test_a_removal_shows_as_posted_once_the_leader_has_left_the_post_and_the_next_leader_is_named(
    ledger: Ledger, projections: Projections
) -> None:
    """Step 3 of 2024Q3 names L6 (principal of D6 on 2024-09-30). L6 leaves the leadership on 2024-10-15 and
    L6B is registered principal of D6 on 2024-10-16: the removal shows as posted (L6 is no longer principal
    in D6 by min(as_of, 2024-12-31)), not for a read as of 2024-10-14 or known before it; 2024Q4's step 3
    names L6B, who is still there at the end of 2025Q1."""
    post_scenario(ledger)
    before = ledger.head()
    ledger.post(
        [
            CadreLeftLeadership(cadre_id="L6", effective_on=date(2024, 10, 15), source=source()),
            registration("L6B", on=date(2024, 10, 16), unit_id="D6", principal=True),
        ]
    )

    def d6(period: str, **read: Any) -> tuple[Any, ...]:
        item = next(e for e in projections.unit_escalations(period, **read).escalations if e.unit_id == "D6")
        return (item.step, None if item.leader is None else item.leader.cadre_id, item.consequence_posted)

    assert d6("2024Q3") == (3, "L6", True)
    assert d6("2024Q3", known_at=before) == (3, "L6", False)
    assert d6("2024Q3", as_of=date(2024, 10, 14)) == (3, "L6", False)
    assert d6("2024Q4") == (3, "L6B", False)
    assert d6("2024Q4", known_at=before) == (3, "L6", False)


def test_a_units_history_lists_its_quarters_steps_and_ratings(
    ledger: Ledger, projections: Projections
) -> None:
    """D4: Q1 rank 4 of 6 (D7 is not ranked), streak 1; Q2 rank 2, out; Q3 rank 5, streak 1; Q4 rank 3
    (tied), streak 2 → step 2. Its 16 ratings are listed. D7: one rating, no rank; an unknown unit is not
    found."""
    post_scenario(ledger)
    view = projections.unit("D4")
    assert (view.unit_id, view.name, view.kind, view.parent) == ("D4", "部门四", "department", None)
    periods = [
        (p.period, p.rank, p.of, p.score, p.ratings, p.dissatisfied, p.in_bottom, p.streak, p.step, p.action)
        for p in view.periods
    ]
    assert periods == [
        ("2024Q1", 4, 6, D("73.00"), 4, 2, True, 1, 1, COMMIT),
        ("2024Q2", 2, 6, D("88.00"), 4, 0, False, 0, None, None),
        ("2024Q3", 5, 6, D("60.50"), 4, 2, True, 1, 1, COMMIT),
        ("2024Q4", 3, 6, D("75.00"), 4, 1, True, 2, 2, ADMONISH),
    ]
    assert len(view.ratings) == 16
    first = [r for r in view.ratings if r.period == "2024Q1"]
    assert sorted((r.rater_id, r.score, r.verdict, r.effective_on) for r in first) == [
        ("E1", D("73.00"), "dissatisfied", date(2024, 2, 20)),
        ("E2", D("73.00"), "dissatisfied", date(2024, 2, 20)),
        ("E3", D("73.00"), "basically_satisfied", date(2024, 2, 20)),
        ("E4", D("73.00"), "satisfied", date(2024, 2, 20)),
    ]
    d7 = projections.unit("D7")
    assert [(p.period, p.rank, p.of, p.score, p.ratings, p.in_bottom, p.streak) for p in d7.periods] == [
        ("2024Q1", None, 6, None, 1, False, 0)
    ]
    from ledger import NotFound

    with pytest.raises(NotFound):
        projections.unit("D99")


def test_the_illustrative_policy_trims_five_percent_from_each_end_and_ranks_only_units_with_twenty_ratings(
    ledger: Ledger, projections: Projections
) -> None:
    """Under the packaged policy (trimmed mean, trim_share 0.05, ratings_min 20, dimensions service 0.4,
    efficiency 0.3, integrity 0.3), 2025Q1, panel R01 … R21:
    T1: 20 ratings — 60 (dissatisfied), eighteen 70, one 100. floor(20 × 0.05) = 1 dropped from each end
    (60 and 100): 18 × 70 / 18 = 70.00 (the plain mean, 1420/20 = 71.00, would tie T2).
    T2: 21 ratings — twenty 71, and R21's (service 80, efficiency 80.75, integrity 80): 0.4×80 + 0.3×80.75
    + 0.3×80 = 32 + 24.225 + 24 = 80.225 → score 80.23 (half up). floor(21 × 0.05) = floor(1.05) = 1 dropped
    from each end (one 71, the 80.23): 19 × 71 / 19 = 71.00.
    T3: 19 ratings of 50: fewer than 20, listed with no score and no rank.
    Ranking: T2 1, T1 2; both ranked units are in the bottom 3 (no more than 3 ranked)."""
    raters = tuple(f"R{n:02}" for n in range(1, 22))
    ledger.post([unit_registration(unit_id, unit_id) for unit_id in ("T1", "T2", "T3")])
    ledger.post([panel("2025Q1", raters, on=date(2025, 1, 6))])
    day = date(2025, 2, 10)

    def same(unit_id: str, rater: str, score: str, verdict: str = "satisfied") -> UnitRated:
        scores = {"service": score, "efficiency": score, "integrity": score}  # 0.4x + 0.3x + 0.3x = x
        return rating(unit_id, "2025Q1", rater, score, verdict=verdict, on=day, scores=scores)

    t1 = [same("T1", "R01", "60", "dissatisfied")]
    t1 += [same("T1", rater, "70") for rater in raters[1:19]]
    t1 += [same("T1", "R20", "100")]
    t2 = [same("T2", rater, "71") for rater in raters[:20]]
    t2 += [
        rating(
            "T2",
            "2025Q1",
            "R21",
            "80.23",
            on=day,
            scores={"service": "80", "efficiency": "80.75", "integrity": "80"},
        )
    ]
    t3 = [same("T3", rater, "50") for rater in raters[:19]]
    ledger.post([*t1, *t2, *t3], posted_by="survey")
    view = projections.unit_rankings("2025Q1")
    assert (view.policy_version, view.aggregation, view.ratings_min) == ("illustrative-3", "trimmed_mean", 20)
    assert [
        (e.rank, e.unit_id, e.score, e.ratings, e.trimmed, e.dissatisfied, e.in_bottom) for e in view.entries
    ] == [
        (1, "T2", D("71.00"), 21, 1, 0, True),
        (2, "T1", D("70.00"), 20, 1, 1, True),
        (None, "T3", None, 19, 0, 0, False),
    ]
    escalations = projections.unit_escalations("2025Q1").escalations
    assert [(e.unit_id, e.streak, e.step, e.leader, e.consequence) for e in escalations] == [
        ("T1", 1, 1, None, None),
        ("T2", 1, 1, None, None),
    ]


# §2 Refusals.


@pytest.fixture
def rated(ledger: Ledger) -> Ledger:
    """D1, D2 (with their leaders), the 2024Q1 panel E1, E2 drawn 2024-01-05, E1's rating of D1, and the
    2024Q2 panel E1, E2 drawn 2024-04-10."""
    ledger.publish_policy(MEAN_POLICY)
    ledger.post([registration(f"L{n}", on=date(2023, 6, 1), unit_id=f"D{n}", principal=True) for n in (1, 2)])
    ledger.post([panel("2024Q1", ("E1", "E2")), rating("D1", "2024Q1", "E1", "80")])
    ledger.post([panel("2024Q2", ("E1", "E2"), on=date(2024, 4, 10))])
    return ledger


def refusal_cases() -> list[tuple[str, list[EventBase], int, str, str]]:
    """(case, batch, item, field, rule) over the `rated` ledger."""
    return [
        ("off the panel", [rating("D1", "2024Q1", "E9", "80")], 0, "rater.id", "rater_not_on_panel"),
        ("unknown unit", [rating("DX", "2024Q1", "E1", "80")], 0, "unit_id", "unit_unknown"),
        ("second rating", [rating("D1", "2024Q1", "E1", "60")], 0, "rater.id", "unit_already_rated"),
        (
            "second rating in one batch",
            [rating("D2", "2024Q1", "E2", "80"), rating("D2", "2024Q1", "E2", "81")],
            1,
            "rater.id",
            "unit_already_rated",
        ),
        ("panel drawn twice", [panel("2024Q1", ("E3",))], 0, "period", "panel_already_drawn"),
        (
            "panel drawn twice in one batch",
            [panel("2024Q3", ("E1",)), panel("2024Q3", ("E2",))],
            1,
            "period",
            "panel_already_drawn",
        ),
        ("rater listed twice", [panel("2024Q3", ("E1", "E2", "E1"))], 0, "raters[2]", "rater_listed_twice"),
        (
            "rating before the panel",
            [rating("D1", "2024Q2", "E1", "80", on=date(2024, 4, 9))],
            0,
            "effective_on",
            "rating_before_panel",
        ),
        (
            "rating before the period",
            [rating("D1", "2024Q2", "E1", "80", on=date(2024, 3, 31))],
            0,
            "effective_on",
            "rating_before_period",
        ),
        ("no panel", [rating("D1", "2024Q3", "E1", "80")], 0, "rater", "panel_not_drawn"),
        (
            "scores without dimensions",
            [rating("D2", "2024Q1", "E1", "80", scores={"service": "80"})],
            0,
            "scores",
            "scores_without_dimensions",
        ),
        (
            "in the future",
            [rating("D2", "2025Q4", "E1", "80", on=TODAY + timedelta(days=1))],
            0,
            "effective_on",
            "effective_on_must_not_be_in_future",
        ),
        (
            "one bad item in a batch (last)",
            [
                rating("D2", "2024Q1", "E1", "80"),
                rating("D2", "2024Q1", "E2", "80"),
                rating("D2", "2024Q1", "E7", "80"),
            ],
            2,
            "rater.id",
            "rater_not_on_panel",
        ),
    ]


def test_a_panel_or_rating_breaking_a_rule_is_refused_naming_field_and_rule_and_records_nothing(
    rated: Ledger, projections: Projections
) -> None:
    """Each batch is refused with the item, field and rule, the head unchanged, the 2024Q1 ranking unchanged
    (ratings_min 2: D1's single rating listed, not ranked); the good items of the refused last batch were
    not recorded: posted alone afterwards, they are accepted (D2: 80, 80 → 80.00, rank 1)."""
    before = rows(projections.unit_rankings("2024Q1"))
    assert before == [(None, "D1", None, 1, 0, None, None, False)]
    for case, events, item, field, rule in refusal_cases():
        error = refused(rated, events)
        assert (error.item, error.field, error.rule) == (item, field, rule), case
        assert rows(projections.unit_rankings("2024Q1")) == before, case
    *good, _bad = refusal_cases()[-1][1]
    rated.post(good, posted_by="survey")
    assert rows(projections.unit_rankings("2024Q1")) == [
        (1, "D2", D("80.00"), 2, 0, None, None, True),
        (None, "D1", None, 1, 0, None, None, False),
    ]


def test_a_rating_under_dimensions_must_carry_every_dimension_and_their_weighted_mean(ledger: Ledger) -> None:
    """The packaged policy's dimensions (service 0.4, efficiency 0.3, integrity 0.3). (80, 80.75, 80):
    32 + 24.225 + 24 = 80.225, rounded half up 80.23 — 80.22 (half even) is refused, 80.23 recorded."""
    ledger.post([unit_registration("T1", "T1"), panel("2025Q1", ("R1",), on=date(2025, 1, 6))])
    day = date(2025, 2, 10)
    full = {"service": "80", "efficiency": "80.75", "integrity": "80"}
    cases = [
        (rating("T1", "2025Q1", "R1", "80.23", on=day), "scores", "scores_required"),
        (
            rating("T1", "2025Q1", "R1", "80", on=day, scores={"service": "80", "integrity": "80"}),
            "scores",
            "scores_incomplete",
        ),
        (
            rating("T1", "2025Q1", "R1", "80.23", on=day, scores={**full, "speed": "80"}),
            "scores.speed",
            "dimension_unknown",
        ),
        (rating("T1", "2025Q1", "R1", "80.22", on=day, scores=full), "score", "score_not_weighted_mean"),
    ]
    for event, field, rule in cases:
        error = refused(ledger, [event])
        assert (error.item, error.field, error.rule) == (0, field, rule)
    assert ledger.post([rating("T1", "2025Q1", "R1", "80.23", on=day, scores=full)]).position == ledger.head()


def test_a_rating_posted_again_under_its_source_key_is_a_replay_not_a_second_rating(rated: Ledger) -> None:
    event = rating("D2", "2024Q1", "E2", "80")
    first = rated.post([event])
    again = rated.post([event])
    assert again.results[0].position == first.results[0].position
    assert again.position == first.position == rated.head()


# §3 Both time axes.

LATE = rating("D3", "2024Q1", "E4", "76", on=date(2024, 4, 10))


def test_a_late_rating_changes_the_ranking_only_for_reads_known_after_it_and_dated_after_it(
    ledger: Ledger, projections: Projections
) -> None:
    """E4's rating of D3 for 2024Q1 (76, dated 2024-04-10) is recorded last, at position P. Without it D3
    has 70, 72, 74: 216/3 = 72.00, below D4's 73.00 — Q1 ranks D1 1, D2 2, D4 3, D3 4, D5 5, D6 6 and the
    bottom is D3, D5, D6; so 2024Q2's D3 (bottom again) has streak 2 → step 2. Known at P and as of
    2024-04-10 or later, Q1 is EXPECTED_RANKINGS's (D3 73.00 above D4) and D3's Q2 streak is 1."""
    post_scenario(ledger, hold_back=LATE)
    position = ledger.post([LATE], posted_by="survey").position
    without = [
        (1, "D1", D("93.00"), 4, 0, None, None, False),
        (2, "D2", D("85.51"), 4, 0, None, None, False),
        (3, "D4", D("73.00"), 4, 2, None, None, False),
        (4, "D3", D("72.00"), 3, 1, None, None, True),
        (5, "D5", D("67.50"), 4, 2, None, None, True),
        (6, "D6", D("56.50"), 4, 3, None, None, True),
        (None, "D7", None, 1, 1, None, None, False),
    ]
    assert rows(projections.unit_rankings("2024Q1", known_at=position - 1)) == without
    assert rows(projections.unit_rankings("2024Q1", known_at=position, as_of=date(2024, 4, 9))) == without
    assert rows(projections.unit_rankings("2024Q1", as_of=date(2024, 4, 10))) == EXPECTED_RANKINGS["2024Q1"]
    assert rows(projections.unit_rankings("2024Q1")) == EXPECTED_RANKINGS["2024Q1"]

    def d3_q2(**read: Any) -> tuple[Any, ...]:
        item = next(
            e for e in projections.unit_escalations("2024Q2", **read).escalations if e.unit_id == "D3"
        )
        return item.streak, item.step, item.consequence

    assert d3_q2(known_at=position - 1) == (2, 2, "deduction:admonishment")
    assert d3_q2() == (1, 1, None)
    # Q2's previous ranks follow Q1 at the same read: D3 4 → 4 (0), D4 3 → 2 (+1) before; 3 → 4, 4 → 2 after.
    early = {
        e.unit_id: (e.previous_rank, e.movement)
        for e in projections.unit_rankings("2024Q2", known_at=position - 1).entries
    }
    assert (early["D3"], early["D4"]) == ((4, 0), (3, 1))
    late = {e.unit_id: (e.previous_rank, e.movement) for e in projections.unit_rankings("2024Q2").entries}
    assert (late["D3"], late["D4"]) == ((3, -1), (4, 2))

    model = UnitModel(ledger.records(after=0, limit=10**6))
    for known_at in (position - 40, position - 1, position):
        for as_of in (date(2024, 4, 9), date(2024, 6, 30), TODAY):
            for period in QUARTERS:
                assert rows(projections.unit_rankings(period, as_of=as_of, known_at=known_at)) == model_rows(
                    model, period, as_of, known_at
                ), (period, as_of, known_at)


def test_a_rating_dated_after_as_of_does_not_count(ledger: Ledger, projections: Projections) -> None:
    """Every 2024Q2 rating is dated 2024-05-21: as of 2024-05-20 the quarter lists nobody (its panel, drawn
    2024-04-05, is shown); as of 2024-05-21 it is EXPECTED_RANKINGS's."""
    post_scenario(ledger)
    early = projections.unit_rankings("2024Q2", as_of=date(2024, 5, 20))
    assert early.entries == [] and early.panel is not None
    assert projections.unit_escalations("2024Q2", as_of=date(2024, 5, 20)).escalations == []
    assert rows(projections.unit_rankings("2024Q2", as_of=date(2024, 5, 21))) == EXPECTED_RANKINGS["2024Q2"]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_same_ratings_posted_in_another_order_and_other_batches_rank_the_same(
    ledger: Ledger, projections: Projections, seed: int
) -> None:
    """The scenario's panels and ratings (and the late one) shuffled (each panel before its quarter's
    ratings) and cut into batches of 1 to 15: the same rankings and escalations at the head as the
    scenario's, and at every tenth position the same as the naive model's."""
    ledger.publish_policy(MEAN_POLICY)
    ledger.post(setup_events())
    shuffle = random.Random(seed)
    ratings: list[EventBase] = [event for period in QUARTERS for event in quarter_ratings(period)]
    shuffle.shuffle(ratings)
    ordered: list[EventBase] = []
    for event in ratings:
        assert isinstance(event, UnitRated)
        if not any(isinstance(e, RatingPanelDrawn) and e.period == event.period for e in ordered):
            ordered.append(panel(event.period))
        ordered.append(event)
    while ordered:
        size = shuffle.randint(1, 15)
        ledger.post(ordered[:size], posted_by="survey")
        ordered = ordered[size:]
    for period in QUARTERS:
        assert rows(projections.unit_rankings(period)) == EXPECTED_RANKINGS[period]
        assert escalation_rows(projections.unit_escalations(period)) == EXPECTED_ESCALATIONS[period]
    model = UnitModel(ledger.records(after=0, limit=10**6))
    for known_at in range(0, ledger.head() + 1, 10):
        for period in QUARTERS:
            assert rows(projections.unit_rankings(period, known_at=known_at)) == model_rows(
                model, period, TODAY, known_at
            )
            got = [e[:6] for e in escalation_rows(projections.unit_escalations(period, known_at=known_at))]
            assert got == model_escalations(model, period, TODAY, known_at), (period, known_at)


# §5 Reopening.


def test_a_reopened_writer_refuses_a_duplicate_and_reopened_read_models_equal_a_rebuild(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer's knowledge of units, panels and ratings is persisted at close and restored at open: the
    duplicate rating is refused exactly as before, and so is a second panel. The read models reopened from
    their persisted index, and then rebuilt from the log, give the scenario's rankings and escalations."""
    duplicate = rating("D3", "2024Q1", "E2", "10")
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        post_scenario(ledger)
        first = refused(ledger, [duplicate])
        projections = Projections.open(ledger)
        views = [
            (rows(projections.unit_rankings(p)), escalation_rows(projections.unit_escalations(p)))
            for p in QUARTERS
        ]
        projections.close()
        assert ledger.keep_writer_state()
        head = ledger.head()
    caplog.set_level(logging.WARNING)
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        again = refused(ledger, [duplicate])
        assert (
            (again.item, again.field, again.rule, again.message)
            == (
                first.item,
                first.field,
                first.rule,
                first.message,
            )
            == (0, "rater.id", "unit_already_rated", "rater E2 has rated D3 for 2024Q1 already")
        )
        assert refused(ledger, [panel("2024Q2")]).rule == "panel_already_drawn"
        assert ledger.head() == head
        assert not [r for r in caplog.records if "writer state" in r.getMessage()], "the kept state is used"
        assert ledger.writer_state_findings() == []
        reopened = Projections.open(ledger)
        try:
            assert [
                (rows(reopened.unit_rankings(p)), escalation_rows(reopened.unit_escalations(p)))
                for p in QUARTERS
            ] == views
            assert views == [(EXPECTED_RANKINGS[p], EXPECTED_ESCALATIONS[p]) for p in QUARTERS]
            assert reopened.rebuild() == head
            assert [
                (rows(reopened.unit_rankings(p)), escalation_rows(reopened.unit_escalations(p)))
                for p in QUARTERS
            ] == views
        finally:
            reopened.close()
