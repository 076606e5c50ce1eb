"""Base points do not depend on how often tenure is accrued (docs/policy.md, tenure).

Method: hypothesis draws a career — a service start, a grade_since, a registration, a few grade changes in
date order — and a cadence of accrual dates (monthly, quarterly, yearly or irregular, strictly increasing,
each with a period that contains it). The career is posted into a SQLite ledger (grade changes first, in
order; then the accruals as `tenure.accrued`, in a few batches). Each accrual must earn F(its date) − F(the
previous accrual's date), so together they earn F(last date) to the cent, where F is the closed form of
§5 computed here by an independent implementation: whole months by counting monthly anniversaries (a
month completes on the same day of the next month; when that day does not exist, on the 1st after it).
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.domain.events import GRADES, CadreGradeChanged, CadreRegistered, EventBase, TenureAccrued
from ledger.policy.load import illustrative_policy
from tests.conftest import TODAY, source

MONTHS_PER_YEAR = 12
CENT = Decimal("0.01")
_cadre_numbers = itertools.count(1)


def anniversary(start: date, months: int) -> date:
    """The day `months` whole months after `start` are complete."""
    year, month_index = divmod(start.month - 1 + months, MONTHS_PER_YEAR)
    year, month = start.year + year, month_index + 1
    try:
        return date(year, month, start.day)
    except ValueError:  # no such day in that month: the month completes on the 1st of the next one
        return date(year + 1, 1, 1) if month == MONTHS_PER_YEAR else date(year, month + 1, 1)


def whole_months(start: date, end: date) -> int:
    """How many monthly anniversaries of `start` fall on or before `end` (0 if `end` precedes `start`)."""
    if end <= start:
        return 0
    count = max(0, (end.year - start.year) * MONTHS_PER_YEAR + end.month - start.month - 1)
    while count > 0 and anniversary(start, count) > end:
        count -= 1
    while anniversary(start, count + 1) <= end:
        count += 1
    return count


def round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def prorated(rate: Decimal, months: int, years_max: int) -> Decimal:
    return round2(rate * min(months, years_max * MONTHS_PER_YEAR) / MONTHS_PER_YEAR)


def closed_form(
    day: date, *, service_started_on: date, grade_since: date, changes: list[date], tenure: Any
) -> Decimal:
    """F(day): prorated service months plus, per grade stint, prorated months in that grade."""
    after = day + timedelta(days=1)
    total = prorated(
        tenure.service_points_per_year, whole_months(service_started_on, after), tenure.service_years_max
    )
    # The registration's grade from grade_since, then each change dated by `day`: one stint per date (of
    # several changes on one date only the last opens a stint, and every grade earns at the same rate).
    starts = sorted({grade_since} | {on for on in changes if on <= day})
    ends = [*starts[1:], after]
    for start, end in zip(starts, ends, strict=True):
        total += prorated(tenure.grade_points_per_year, whole_months(start, end), tenure.grade_years_max)
    return total


def period_of(kind: str, day: date) -> str:
    if kind == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if kind == "quarter":
        return f"{day.year:04d}Q{(day.month - 1) // 3 + 1}"
    if kind == "year":
        return f"{day.year:04d}"
    iso = day.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def month_end(year: int, month: int) -> date:
    return (date(year + 1, 1, 1) if month == MONTHS_PER_YEAR else date(year, month + 1, 1)) - timedelta(
        days=1
    )


def regular_ends(kind: str, first: date) -> list[date]:
    """The last days of the months, quarters or years from the one containing `first` through today."""
    step = {"month": 1, "quarter": 3, "year": 12}[kind]
    month = first.month if kind == "month" else (first.month - 1) // 3 * 3 + 1 if kind == "quarter" else 1
    year, ends = first.year, list[date]()
    while True:
        last_month = month + step - 1
        end = month_end(year + (last_month - 1) // 12, (last_month - 1) % 12 + 1)
        if end > TODAY:
            return ends
        ends.append(end)
        month += step
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1


@st.composite
def careers(draw: st.DrawFn) -> dict[str, Any]:
    registered_on = draw(st.dates(date(2020, 1, 1), date(2025, 11, 30)))
    service_started_on = draw(st.dates(date(1980, 1, 1), registered_on))
    grade_since = draw(st.dates(service_started_on, registered_on))
    count = draw(st.integers(0, 4))
    changes = sorted(draw(st.lists(st.dates(registered_on, TODAY), min_size=count, max_size=count)))
    first_grade = draw(st.integers(0, len(GRADES) - 1))
    steps = draw(st.lists(st.integers(1, len(GRADES) - 1), min_size=len(changes), max_size=len(changes)))
    grades, current = [], first_grade
    for step in steps:
        current = (current + step) % len(GRADES)
        grades.append(GRADES[current])
    cadence = draw(st.sampled_from(["irregular", "quarter", "month", "year"]))
    accruals: list[tuple[date, str]]
    if cadence == "irregular":
        days = sorted(draw(st.lists(st.dates(registered_on, TODAY), min_size=1, max_size=12, unique=True)))
        kinds = draw(
            st.lists(
                st.sampled_from(["month", "quarter", "year", "week"]), min_size=len(days), max_size=len(days)
            )
        )
        accruals = [(day, period_of(kind, day)) for day, kind in zip(days, kinds, strict=True)]
    else:
        ends = regular_ends(cadence, registered_on)
        skip = draw(st.integers(0, max(0, len(ends) - 1)))
        accruals = [(end, period_of(cadence, end)) for end in ends[skip : skip + 48]]
        last = accruals[-1][0] if accruals else registered_on - timedelta(days=1)
        if last < TODAY and (not accruals or draw(st.booleans())):
            partial = draw(st.dates(last + timedelta(days=1), TODAY))
            accruals.append((partial, period_of(cadence, partial)))
    chunk = draw(st.integers(1, 6))
    return {
        "registered_on": registered_on,
        "service_started_on": service_started_on,
        "grade_since": grade_since,
        "first_grade": GRADES[first_grade],
        "changes": list(zip(changes, grades, strict=True)),
        "accruals": accruals,
        "chunk": chunk,
        "cadence": cadence,
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(career=careers())
def test_accruals_at_any_cadence_sum_to_the_closed_form_of_the_last_date(
    sqlite_ledger: Ledger, career: dict[str, Any]
) -> None:
    """Each accrual earns F(D) − F(P) (P: the previous accrual, F(P) = 0 for the first), so the sum of the
    recorded tenure points is F(last accrual date); one fresh cadre per example, in one ledger."""
    ledger = sqlite_ledger
    cadre_id = f"T{next(_cadre_numbers)}"
    ledger.post(
        [
            CadreRegistered(
                cadre_id=cadre_id,
                effective_on=career["registered_on"],
                source=source(),
                name="李四",
                unit_id="U1",
                grade=career["first_grade"],
                leadership=False,
                principal=False,
                service_started_on=career["service_started_on"],
                grade_since=career["grade_since"],
            )
        ]
    )
    if career["changes"]:
        ledger.post(
            [
                CadreGradeChanged(cadre_id=cadre_id, effective_on=on, source=source(), grade=grade)
                for on, grade in career["changes"]
            ]
        )
    events: list[EventBase] = [
        TenureAccrued(cadre_id=cadre_id, effective_on=on, source=source(), period=period)
        for on, period in career["accruals"]
    ]
    earned: list[Decimal] = []
    for start in range(0, len(events), career["chunk"]):
        earned += [item.points for item in ledger.post(events[start : start + career["chunk"]]).results]

    tenure = illustrative_policy().tenure
    change_days = [on for on, _grade in career["changes"]]

    def f(day: date) -> Decimal:
        return closed_form(
            day,
            service_started_on=career["service_started_on"],
            grade_since=career["grade_since"],
            changes=change_days,
            tenure=tenure,
        )

    days = [on for on, _period in career["accruals"]]
    last = days[-1] + timedelta(days=1)
    event(f"cadence: {career['cadence']}")
    event("with grade changes" if change_days else "without grade changes")
    if whole_months(career["service_started_on"], last) > tenure.service_years_max * MONTHS_PER_YEAR:
        event("service beyond its cap")
    if (
        whole_months(career["grade_since"], min([*change_days, last]))
        > tenure.grade_years_max * MONTHS_PER_YEAR
    ):
        event("first grade stint beyond its cap")
    if len(set(change_days)) < len(change_days) or career["grade_since"] in change_days:
        event("grade changes sharing a date")
    expected = [
        f(day) - (f(previous) if previous else Decimal("0.00"))
        for previous, day in zip([None, *days[:-1]], days, strict=True)
    ]
    assert earned == expected, list(zip(days, earned, expected, strict=True))
    assert sum(earned, Decimal("0.00")) == f(days[-1])
