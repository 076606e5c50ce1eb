"""Units' ratings folded into columns: the input of the unit rankings, escalations and histories.

Every `unit.rated` fact becomes one row — its position, valid day, unit, period, rater, score in hundredths
and verdict — appended in position order like the cadres' columns (`index.py`), so that a ranking at any
(`as_of`, `known_at`) is a mask over one period's rows. Unit registrations and panels are few and kept as
facts. Unit codes are the index's own (`Index.unit_codes`): a unit rated and a unit cadres serve in are one.
Ratings are never reversed (`entry.reversed` is about a cadre), so rows have no `reversed_at`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np

from ledger.domain.events import VERDICTS
from ledger.projections.facts import Fact, Kind, integer

__all__ = ["UNIT_KINDS", "VERDICT_CODES", "UnitIndex"]

UNIT_KINDS: Final = frozenset({Kind.UNIT_REGISTERED, Kind.PANEL_DRAWN, Kind.UNIT_RATED})
VERDICT_CODES: Final[dict[str, int]] = {verdict: code for code, verdict in enumerate(VERDICTS)}
DISSATISFIED: Final = VERDICT_CODES["dissatisfied"]


class UnitIndex:
    """The ratings' columns and the units' few other facts."""

    def __init__(self, columns_type: Callable[[dict[str, Any]], Any]) -> None:
        self.ratings = columns_type(
            {
                "position": np.int64,
                "day": np.int32,
                "unit": np.int32,
                "period": np.int32,
                "rater": np.int32,
                "cents": np.int32,
                "verdict": np.int8,
            }
        )
        self.period_ids: list[str] = []
        self.period_codes: dict[str, int] = {}
        self.rater_ids: list[str] = []  # "<kind>|<id>"
        self.rater_codes: dict[str, int] = {}
        self.registrations: list[Fact] = []
        self.panels: list[Fact] = []

    def add(self, facts: list[Fact], unit_code: Callable[[str], int]) -> None:
        """Fold units' facts (in position order, all after what is folded already)."""
        columns: dict[str, list[int]] = {name: [] for name in self.ratings.dtypes}
        for fact in facts:
            if fact.kind == Kind.UNIT_RATED:
                unit_id, period, rater_kind, rater_id, cents, verdict = fact.detail
                columns["position"].append(fact.position)
                columns["day"].append(fact.effective_on)
                columns["unit"].append(unit_code(str(unit_id)))
                columns["period"].append(self._code(self.period_ids, self.period_codes, str(period)))
                columns["rater"].append(
                    self._code(self.rater_ids, self.rater_codes, f"{rater_kind}|{rater_id}")
                )
                columns["cents"].append(integer(cents))
                columns["verdict"].append(VERDICT_CODES[str(verdict)])
            elif fact.kind == Kind.UNIT_REGISTERED:
                unit_code(str(fact.detail[0]))
                self.registrations.append(fact)
            elif fact.kind == Kind.PANEL_DRAWN:
                self.panels.append(fact)
        self.ratings.append(columns)

    @staticmethod
    def _code(ids: list[str], codes: dict[str, int], value: str) -> int:
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(ids)
            ids.append(value)
        return code

    def restore(
        self, period_ids: list[str], rater_ids: list[str], registrations: list[Fact], panels: list[Fact]
    ) -> None:
        """Take the Python-side parts of a persisted index (its columns are adopted by the caller)."""
        self.period_ids = list(period_ids)
        self.period_codes = {period: code for code, period in enumerate(period_ids)}
        self.rater_ids = list(rater_ids)
        self.rater_codes = {rater: code for code, rater in enumerate(rater_ids)}
        self.registrations = list(registrations)
        self.panels = list(panels)

    def rows_of(self, period: str, as_of_day: int, known_at: int) -> Any:
        """The rows of `period`'s ratings dated by `as_of_day` and recorded by position `known_at`."""
        code = self.period_codes.get(period)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        ratings = self.ratings
        mask = (ratings["period"] == code) & (ratings["day"] <= as_of_day) & (ratings["position"] <= known_at)
        return np.flatnonzero(mask)

    def details(self, unit_id: str, as_of_day: int, known_at: int) -> Fact | None:
        """The unit's registration in force: the latest dated by `as_of_day` and recorded by `known_at`."""
        best: Fact | None = None
        for fact in self.registrations:
            if fact.detail[0] != unit_id or fact.position > known_at or fact.effective_on > as_of_day:
                continue
            if best is None or (fact.effective_on, fact.position) > (best.effective_on, best.position):
                best = fact
        return best

    def panel(self, period: str, known_at: int) -> Fact | None:
        for fact in self.panels:
            if fact.detail[0] == period and fact.position <= known_at:
                return fact
        return None
