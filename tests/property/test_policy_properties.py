"""Properties of the policy rules, checked over generated dates, rates and runs of awards."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.events import AWARDS, LEVELS, RESULTS, Scores
from ledger.policy import (
    Policy,
    appraisal_points,
    evaluation_terms,
    illustrative_policy,
    merit_points,
    tenure_accrual,
)

TWO_PLACES = -2

days = st.dates(min_value=date(1970, 1, 1), max_value=date(2060, 12, 31))
rates = st.decimals(min_value=0, max_value=50, places=2)
caps = st.integers(min_value=0, max_value=60)


def with_tenure(service_rate: Decimal, service_cap: int, grade_rate: Decimal, grade_cap: int) -> Policy:
    policy = illustrative_policy()
    tenure = msgspec.structs.replace(
        policy.tenure,
        service_points_per_year=service_rate,
        service_years_max=service_cap,
        grade_points_per_year=grade_rate,
        grade_years_max=grade_cap,
    )
    return msgspec.structs.replace(policy, tenure=tenure)


@given(
    service_rate=rates,
    service_cap=caps,
    grade_rate=rates,
    grade_cap=caps,
    service_started_on=days,
    grade_offset=st.integers(min_value=0, max_value=20_000),
    steps=st.lists(st.integers(min_value=0, max_value=800), min_size=1, max_size=12),
)
def test_accruing_period_by_period_adds_up_to_one_accrual_over_the_whole_span(
    service_rate: Decimal,
    service_cap: int,
    grade_rate: Decimal,
    grade_cap: int,
    service_started_on: date,
    grade_offset: int,
    steps: list[int],
) -> None:
    # With the grade unchanged, the sum of the accruals over consecutive periods equals a single
    # accrual to the last period end: rounding happens on cumulative figures, so nothing drifts,
    # and this holds whether or not a cap binds.
    policy = with_tenure(service_rate, service_cap, grade_rate, grade_cap)
    grade_since = service_started_on + timedelta(days=grade_offset)
    ends: list[date] = []
    end = service_started_on
    for step in steps:
        end += timedelta(days=step)
        ends.append(end)
    total = Decimal("0.00")
    accrued_through: date | None = None
    for period_end in ends:
        accrual = tenure_accrual(
            policy,
            service_started_on=service_started_on,
            grade_starts=[grade_since],
            accrued_through=accrued_through,
            period_end=period_end,
        )
        assert accrual.points >= 0
        assert accrual.points.as_tuple().exponent == TWO_PLACES
        assert accrual.service_years.as_tuple().exponent == TWO_PLACES
        total += accrual.points
        accrued_through = period_end
    once = tenure_accrual(
        policy,
        service_started_on=service_started_on,
        grade_starts=[grade_since],
        accrued_through=None,
        period_end=ends[-1],
    )
    assert total == once.points


awards = st.tuples(
    st.sampled_from(AWARDS),
    st.sampled_from(LEVELS),
    st.none() | st.sampled_from(["deed-a", "deed-b", "deed-c"]),
)


@given(run=st.lists(awards, max_size=40), annual_cap=st.decimals(min_value=0, max_value=100, places=2))
def test_merit_points_never_exceed_the_annual_cap_over_any_run_of_awards(
    run: list[tuple[str, str, str | None]], annual_cap: Decimal
) -> None:
    # The caller keeps the year's total and what each deed has counted, as the ledger does.
    policy = illustrative_policy()
    policy = msgspec.structs.replace(
        policy, merit=msgspec.structs.replace(policy.merit, annual_cap=annual_cap)
    )
    year_total = Decimal("0.00")
    deeds: dict[str, Decimal] = {}
    for award, level, deed in run:
        points = merit_points(
            policy,
            award,
            level,  # type: ignore[arg-type]
            year_total=year_total,
            deed_counted=deeds.get(deed) if deed is not None else None,
        )
        assert points >= 0
        assert points.as_tuple().exponent == TWO_PLACES
        year_total += points
        if deed is not None:
            deeds[deed] = deeds.get(deed, Decimal("0.00")) + points
            # A deed never counts more than its best award.
            assert deeds[deed] <= max(
                policy.merit.points.of(a).at(lv)  # type: ignore[arg-type]
                for a, lv, d in run
                if d == deed
            )
        assert year_total <= annual_cap


scores = st.decimals(min_value=0, max_value=100, places=2)


@given(self_score=scores, section=scores, leadership=scores, result=st.sampled_from(RESULTS))
def test_evaluation_and_appraisal_points_have_exactly_two_places(
    self_score: Decimal, section: Decimal, leadership: Decimal, result: str
) -> None:
    policy = illustrative_policy()
    weighted, points = evaluation_terms(policy, Scores(self_score, section, leadership))
    assert Decimal(0) <= weighted <= Decimal(100)
    assert weighted.as_tuple().exponent == TWO_PLACES
    assert points.as_tuple().exponent == TWO_PLACES
    assert appraisal_points(policy, result).as_tuple().exponent == TWO_PLACES  # type: ignore[arg-type]
