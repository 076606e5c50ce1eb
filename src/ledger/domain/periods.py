"""Periods: `2025`, `2025Q3`, `2025-07`, `2025-W27` (ISO week). A period's view is read as of its last day."""

from __future__ import annotations

import re
from datetime import date, timedelta

import msgspec

__all__ = ["Period", "parse_period"]

_YEAR = re.compile(r"^([0-9]{4})$")
_QUARTER = re.compile(r"^([0-9]{4})Q([1-4])$")
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^([0-9]{4})-W(0[1-9]|[1-4][0-9]|5[0-3])$")
# Also what msgspec checks a stored `period` with: see CADRE_ID_PATTERN in ledger.domain.events.
PERIOD_PATTERN = r"^[0-9]{4}(Q[1-4]|-(0[1-9]|1[0-2])|-W(0[1-9]|[1-4][0-9]|5[0-3]))?$"


class Period(msgspec.Struct, frozen=True):
    """A named span of days, first and last inclusive."""

    name: str
    first_day: date
    last_day: date
    kind: str  # year, quarter, month or week

    def previous(self) -> Period:
        """The period of the same kind just before this one (ValueError before the calendar's first)."""
        try:
            return period_containing(self.kind, self.first_day - timedelta(days=1))
        except OverflowError:
            raise ValueError(f"no period comes before {self.name}") from None

    def following(self) -> Period:
        """The period of the same kind just after this one (ValueError after the calendar's last)."""
        try:
            return period_containing(self.kind, self.last_day + timedelta(days=1))
        except OverflowError:
            raise ValueError(f"no period comes after {self.name}") from None


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


def parse_period(text: str) -> Period:
    """The period named by `text`; ValueError names the accepted shapes (or a period with no days)."""
    try:
        return _parse_period(text)
    except OverflowError:
        raise ValueError(f"{text!r} names no days of the calendar") from None
    except ValueError as error:
        if "out of range" in str(error):  # year 0, from `date`
            raise ValueError(f"{text!r} names no days of the calendar") from None
        raise


def _parse_period(text: str) -> Period:
    if match := _YEAR.fullmatch(text):
        year = int(match[1])
        return Period(text, date(year, 1, 1), date(year, 12, 31), "year")
    if match := _QUARTER.fullmatch(text):
        year, quarter = int(match[1]), int(match[2])
        first_month = 3 * (quarter - 1) + 1
        return Period(text, date(year, first_month, 1), _month_end(year, first_month + 2), "quarter")
    if match := _MONTH.fullmatch(text):
        year, month = int(match[1]), int(match[2])
        return Period(text, date(year, month, 1), _month_end(year, month), "month")
    if match := _WEEK.fullmatch(text):
        year, week = int(match[1]), int(match[2])
        try:
            monday = date.fromisocalendar(year, week, 1)
            sunday = monday + timedelta(days=6)
        except (ValueError, OverflowError) as error:
            raise ValueError(f"{text!r}: {year} has no ISO week {week} within the calendar") from error
        return Period(text, monday, sunday, "week")
    raise ValueError(f"{text!r} is not a period: write 2025, 2025Q3, 2025-07 or 2025-W27")


def period_containing(kind: str, day: date) -> Period:
    """The period of `kind` that contains `day`."""
    if kind == "year":
        return parse_period(f"{day.year:04d}")
    if kind == "quarter":
        return parse_period(f"{day.year:04d}Q{(day.month - 1) // 3 + 1}")
    if kind == "month":
        return parse_period(f"{day.year:04d}-{day.month:02d}")
    if kind == "week":
        iso_year, iso_week, _ = day.isocalendar()
        return parse_period(f"{iso_year:04d}-W{iso_week:02d}")
    raise ValueError(f"unknown period kind {kind!r}")
