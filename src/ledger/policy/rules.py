"""The rules: pure functions from a policy and an event's values to points and decisions.

No clock, no storage, no logging: every input is an argument, so the ledger, a projection rebuilt
years later and an auditor with a pencil all get the same answer. Arithmetic is Decimal throughout
and every figure of points leaves through `ledger.domain.points.quantize` (two places, half-up).

Tenure is the one rule that accrues over time. Its points for a period are the difference of two
closed-form figures — base points earned from the start of service, and in each grade held, up to the
period's end, minus the same up to the end of the previous accrual — each rounded to two places
before subtracting. So accruals at any cadence add up exactly to one accrual over the whole span,
with no rounding drift, and caps are simply caps on the cumulative months.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from msgspec import Struct

from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    RESULTS,
    Award,
    DeductionKind,
    Level,
    RecallOutcome,
    Result,
    Scores,
)
from ledger.domain.points import ZERO, quantize
from ledger.policy.schema import Policy

__all__ = [
    "SCORE_MAX",
    "DeductionTerms",
    "TenureAccrual",
    "add_months",
    "appraisal_at_most",
    "appraisal_points",
    "base_points_through",
    "check_override",
    "deduction_terms",
    "evaluation_terms",
    "grade_stints",
    "merit_points",
    "months_between",
    "recall_completed_points",
    "recall_ordered_points",
    "tenure_accrual",
    "veto_points",
]

MONTHS_PER_YEAR: Final = 12
SCORE_MIN: Final = Decimal(0)
SCORE_MAX: Final = Decimal(100)


class TenureAccrual(Struct, frozen=True):
    """Base points for one accrual, with the years of service and in grade at the period's end."""

    points: Decimal
    service_years: Decimal
    grade_years: Decimal


class DeductionTerms(Struct, frozen=True):
    """What a deduction does: points (≤ 0), influence period in months, appraisal cap (or None)."""

    points: Decimal
    gate_months: int
    appraisal_cap: Result | None


def months_between(start: date, end: date) -> int:
    """Whole months from `start` to `end`; 0 if `end` is before `start`.

    A month is complete on the same day of the next month: 2020-01-15 → 2020-02-15 is one month,
    → 2020-02-14 none. From the 31st, a month completes on the 1st of the month after next.
    """
    if end <= start:
        return 0
    months = (end.year - start.year) * MONTHS_PER_YEAR + (end.month - start.month)
    if end.day < start.day:
        months -= 1
    return max(months, 0)


def add_months(start: date, months: int) -> date:
    """`start` moved by whole months, clamped to the end of a shorter month (the end of an influence
    period)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // MONTHS_PER_YEAR, month_index % MONTHS_PER_YEAR + 1
    for day_of_month in range(start.day, 27, -1):
        try:
            return date(year, month, day_of_month)
        except ValueError:
            continue
    return date(year, month, min(start.day, 28))


def _months_through(start: date, last_day: date) -> int:
    """Whole months served from `start` through `last_day` inclusive (to the day after it)."""
    if last_day == date.max:
        return months_between(start, last_day)
    return months_between(start, last_day + timedelta(days=1))


def _years(months: int) -> Decimal:
    return quantize(Decimal(months) / MONTHS_PER_YEAR)


def _cumulative(rate_per_year: Decimal, years_max: int, months: int) -> Decimal:
    """Points earned over `months` at `rate_per_year`, the months capped at `years_max` years."""
    return quantize(rate_per_year * min(months, years_max * MONTHS_PER_YEAR) / MONTHS_PER_YEAR)


def grade_stints(grade_starts: Iterable[date], through: date) -> list[tuple[date, date]]:
    """The grades held up to `through`, as `(first day, day after the last)` spans.

    `grade_starts` are the dates from which each grade in force was held (a registration's
    `grade_since`, each grade change's `effective_on`); several on one day make one stint. Grades taken
    after `through` are left out; the last stint runs through `through` inclusive.
    """
    starts = sorted({start for start in grade_starts if start <= through})
    if not starts:
        return []
    ends = [*starts[1:], through + timedelta(days=1) if through != date.max else through]
    return list(zip(starts, ends, strict=True))


def base_points_through(
    policy: Policy, *, service_started_on: date, grade_starts: Iterable[date], through: date
) -> Decimal:
    """The closed-form base points (基础分) of a cadre up to `through` inclusive.

    Service: `service_points_per_year` for the whole months served, at most `service_years_max` years.
    Grades: `grade_points_per_year` for the whole months actually served in each grade held, at most
    `grade_years_max` years in each. Each figure is rounded to two places, then added.
    """
    rules = policy.tenure
    total = _cumulative(
        rules.service_points_per_year,
        rules.service_years_max,
        _months_through(service_started_on, through),
    )
    for start, end in grade_stints(grade_starts, through):
        total += _cumulative(rules.grade_points_per_year, rules.grade_years_max, months_between(start, end))
    return quantize(total)


def tenure_accrual(
    policy: Policy,
    *,
    service_started_on: date,
    grade_starts: Iterable[date],
    accrued_through: date | None,
    period_end: date,
) -> TenureAccrual:
    """Base points for tenure earned after `accrued_through` up to `period_end`.

    The closed-form figure at `period_end` less the same figure at `accrued_through`, the last day of
    the cadre's previous accrual (None for the first, which brings in the whole past), both computed
    from the same grade history and policy. So accruals at any cadence — monthly, quarterly, yearly,
    irregular — add up to the closed-form figure at the last one, to the cent. The points are never
    negative (an accrual for a period already accrued earns nothing).
    """
    starts = list(grade_starts)
    end_figure = base_points_through(
        policy, service_started_on=service_started_on, grade_starts=starts, through=period_end
    )
    start_figure = ZERO
    if accrued_through is not None:
        start_figure = base_points_through(
            policy, service_started_on=service_started_on, grade_starts=starts, through=accrued_through
        )
    stints = grade_stints(starts, period_end)
    grade_months = months_between(*stints[-1]) if stints else 0
    return TenureAccrual(
        points=quantize(max(end_figure - start_figure, ZERO)),
        service_years=_years(_months_through(service_started_on, period_end)),
        grade_years=_years(grade_months),
    )


def merit_points(
    policy: Policy, award: Award, level: Level, *, year_total: Decimal, deed_counted: Decimal | None
) -> Decimal:
    """Merit points for an award at a level, after same-deed-counts-once and the annual cap.

    `deed_counted` is what earlier awards for the same deed already counted (None for a new deed):
    this award adds only what it is worth beyond that, so a deed awarded at county and then at
    provincial level tops up to the provincial value and never counts twice. `year_total` is the
    merit points the cadre already gained this year: the result never takes the year beyond
    `merit.annual_cap`.
    """
    value = policy.merit.points.of(award).at(level)
    if deed_counted is not None:
        value = max(ZERO, value - deed_counted)
    room = max(ZERO, policy.merit.annual_cap - year_total)
    return quantize(min(value, room))


def deduction_terms(policy: Policy, kind: DeductionKind, level: Level) -> DeductionTerms:
    """Points, influence period and appraisal cap of a deduction of `kind` imposed at `level`."""
    rule = policy.deductions.of(kind)
    return DeductionTerms(
        points=quantize(rule.points.at(level)),
        gate_months=rule.gate_months,
        appraisal_cap=rule.appraisal_cap,
    )


def appraisal_points(policy: Policy, result: Result) -> Decimal:
    """Points for an annual appraisal `result`."""
    return quantize(policy.appraisal.points.of(result))


def _check_score(name: str, score: Decimal) -> None:
    if not score.is_finite() or not SCORE_MIN <= score <= SCORE_MAX or score != quantize(score):
        raise InvalidInput(
            f"a score is 0–100 with at most two places, not {score}",
            field=f"scores.{name}",
            rule="score_out_of_range",
        )


def evaluation_terms(policy: Policy, scores: Scores) -> tuple[Decimal, Decimal]:
    """The weighted score (two places) and the points it earns.

    The points are computed from the rounded weighted score, so anyone can recompute them from the
    recorded `weighted_score`.
    """
    _check_score("self", scores.self)
    _check_score("section", scores.section)
    _check_score("leadership", scores.leadership)
    weights = policy.evaluation.weights
    weighted_score = quantize(
        scores.self * weights.self + scores.section * weights.section + scores.leadership * weights.leadership
    )
    return weighted_score, quantize(weighted_score * policy.evaluation.points_per_score)


def recall_ordered_points(policy: Policy) -> Decimal:
    """Points when a recall (回炉) is ordered."""
    return quantize(policy.recall.ordered_points)


def recall_completed_points(policy: Policy, outcome: RecallOutcome) -> Decimal:
    """Points when a recall ends with `outcome` (passed or failed)."""
    completed = policy.recall.completed_points
    return quantize(completed.passed if outcome == "passed" else completed.failed)


def veto_points(policy: Policy) -> Decimal:
    """Points of a one-vote veto (一票否决)."""
    return quantize(policy.veto.points)


def check_override(policy: Policy, event_type: str, points: Decimal, override_reason: str | None) -> Decimal:
    """The points a client sent for an event of `event_type`, if the policy allows them.

    Refuses (InvalidInput) when the policy has no override for the type
    (`points_override_not_allowed`), when no reason is given (`override_reason_required`), when the
    points have more than two places (`points_must_have_two_places`) or lie outside the policy's
    bounds (`points_override_out_of_bounds`).
    """
    bounds = policy.override_for(event_type)
    if bounds is None:
        raise InvalidInput(
            f"policy {policy.version} does not let a client send points for {event_type}",
            field="points",
            rule="points_override_not_allowed",
        )
    if override_reason is None or not override_reason.strip():
        raise InvalidInput(
            "points sent by a client need an override_reason",
            field="override_reason",
            rule="override_reason_required",
        )
    if not points.is_finite() or points != quantize(points):
        raise InvalidInput(
            f"points have at most two places, not {points}",
            field="points",
            rule="points_must_have_two_places",
        )
    if not bounds.points_min <= points <= bounds.points_max:
        raise InvalidInput(
            f"points for {event_type} must lie within {bounds.points_min} … {bounds.points_max} "
            f"under policy {policy.version}, not {points}",
            field="points",
            rule="points_override_out_of_bounds",
        )
    return quantize(points)


def appraisal_at_most(result: Result, cap: Result | None) -> Result:
    """`result`, lowered to `cap` if it is better than the cap; None means no cap.

    RESULTS runs best first; for this purpose `ungraded` ranks below `incompetent`: a year that may
    only be ungraded (a cap of `ungraded`, as while a demerit runs) is ungraded whatever its result,
    and an ungraded year stays ungraded under any cap.
    """
    if cap is None:
        return result
    return result if RESULTS.index(result) >= RESULTS.index(cap) else cap
