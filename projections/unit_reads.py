"""The read models of units rated by enterprises (市场主体评部门): a period's unit ranking, the escalations of
the units' ladder, and a unit's history — each at (`as_of`, `known_at`).

Each period's ranking is computed once per (period, as_of, known_at) from that period's rows of the ratings'
columns (`unit_index.py`) with the unit rules of the policy in force on the period's last day
(`ledger.policy.units` decides scores, ranks, the bottom and the ladder), and kept in the read cache:
escalations and histories look back over earlier periods through the same kept rankings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Final

import numpy as np

from ledger.domain.errors import NotFound
from ledger.domain.periods import Period, parse_period
from ledger.policy.schema import Policy, UnitLadderStep
from ledger.policy.units import RankedUnit, UnitTally, bottom_units, ladder_step, rank_units, unit_score
from ledger.projections.facts import Kind, day, from_day
from ledger.projections.index import NEVER, Index
from ledger.projections.results import (
    KnownAt,
    Leader,
    Panel,
    UnitEscalation,
    UnitEscalationsView,
    UnitPeriod,
    UnitRankingEntry,
    UnitRankingsView,
    UnitRating,
    UnitView,
)
from ledger.projections.snapshots import ReadCache
from ledger.projections.unit_index import DISSATISFIED
from ledger.projections.views import policy_at

__all__ = ["UnitReads"]

# How far back a streak is followed (the ladder has at most a dozen rungs; a longer streak stays on top).
STREAK_PERIODS_MAX: Final = 24
VERDICTS_BY_CODE: Final = ("satisfied", "basically_satisfied", "dissatisfied")


def _decimal(hundredths: int | None) -> Decimal | None:
    return None if hundredths is None else Decimal(hundredths).scaleb(-2)


class UnitReads:
    """Reads over one index at a resolved log position (the caller holds the read models' lock)."""

    def __init__(
        self, index: Index, cache: ReadCache, echo: Callable[[KnownAt | None, int], KnownAt]
    ) -> None:
        self.index = index
        self.cache = cache
        self._echo = echo

    # One period's ranking (kept).

    def _policy(self, span: Period, known_at: int) -> Policy:
        return policy_at(self.index, span.last_day, known_at)

    def ranked(self, span: Period, as_of_day: int, known_at: int) -> list[RankedUnit]:
        policy = self._policy(span, known_at)

        def compute() -> list[RankedUnit]:
            rated = self.index.rated
            rows = rated.rows_of(span.name, as_of_day, known_at)
            if rows.size == 0:
                return []
            ratings = rated.ratings
            units = ratings["unit"][rows]
            order = np.argsort(units, kind="stable")
            units = units[order]
            cents = ratings["cents"][rows][order]
            dissatisfied = ratings["verdict"][rows][order] == DISSATISFIED
            starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
            ends = np.r_[starts[1:], units.size]
            tallies = []
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                score, trimmed = unit_score(cents[start:end].tolist(), policy.units)
                tallies.append(
                    UnitTally(
                        unit_id=self.index.unit_ids[int(units[start])],
                        score=score,
                        ratings=end - start,
                        trimmed=trimmed,
                        dissatisfied=int(dissatisfied[start:end].sum()),
                    )
                )
            return rank_units(tallies, policy.units)

        ranked: list[RankedUnit] = self.cache.derived(
            self.index, ("unit-ranking", span.name, as_of_day, known_at), compute
        )
        return ranked

    def _bottom(self, span: Period, as_of_day: int, known_at: int) -> frozenset[str]:
        count = self._policy(span, known_at).units.bottom_count
        return bottom_units(self.ranked(span, as_of_day, known_at), count)

    def streak(self, unit_id: str, span: Period, as_of_day: int, known_at: int) -> int:
        """Consecutive periods up to `span` with the unit in the bottom (each by its own policy)."""
        streak, current = 0, span
        for _ in range(STREAK_PERIODS_MAX):
            if unit_id not in self._bottom(current, as_of_day, known_at):
                break
            streak += 1
            try:
                current = current.previous()
            except ValueError:
                break
        return streak

    # Reads.

    def rankings(
        self, span: Period, as_of: date, known_at: KnownAt | None, position: int
    ) -> UnitRankingsView:
        as_of_day = day(as_of)
        policy = self._policy(span, position)
        ranked = self.ranked(span, as_of_day, position)
        try:
            previous_span: Period | None = span.previous()
        except ValueError:  # the calendar's first period: nothing to compare with
            previous_span = None
        previous = (
            {}
            if previous_span is None
            else {unit.tally.unit_id: unit.rank for unit in self.ranked(previous_span, as_of_day, position)}
        )
        bottom = bottom_units(ranked, policy.units.bottom_count)
        entries = []
        for unit in ranked:
            tally = unit.tally
            previous_rank = previous.get(tally.unit_id)
            entries.append(
                UnitRankingEntry(
                    rank=unit.rank,
                    unit_id=tally.unit_id,
                    name=self._name(tally.unit_id, as_of_day, position),
                    score=_decimal(tally.score),
                    ratings=tally.ratings,
                    trimmed=tally.trimmed,
                    dissatisfied=tally.dissatisfied,
                    previous_rank=previous_rank,
                    movement=(
                        None if previous_rank is None or unit.rank is None else previous_rank - unit.rank
                    ),
                    in_bottom=tally.unit_id in bottom,
                )
            )
        return UnitRankingsView(
            period=span.name,
            previous_period=None if previous_span is None else previous_span.name,
            as_of=as_of,
            known_at=self._echo(known_at, position),
            position=position,
            policy_version=policy.version,
            aggregation=policy.units.aggregation,
            ratings_min=policy.units.ratings_min,
            bottom_count=policy.units.bottom_count,
            panel=self._panel(span, position),
            entries=entries,
        )

    def escalations(
        self, span: Period, as_of: date, known_at: KnownAt | None, position: int
    ) -> UnitEscalationsView:
        as_of_day = day(as_of)
        policy = self._policy(span, position)
        ranked = {unit.tally.unit_id: unit for unit in self.ranked(span, as_of_day, position)}
        escalations = []
        for unit_id in sorted(self._bottom(span, as_of_day, position)):
            unit = ranked[unit_id]
            assert unit.rank is not None and unit.tally.score is not None
            streak = self.streak(unit_id, span, as_of_day, position)
            rung = ladder_step(streak, policy.units.ladder)
            leader_code = (
                self._leader(unit_id, min(day(span.last_day), as_of_day), position)
                if policy.units.names == "principal_leader"
                else None
            )
            consequence = (
                f"deduction:{rung.deduction}" if rung.deduction else "removal" if rung.removes else None
            )
            posted = (
                None
                if consequence is None or leader_code is None
                else self._posted(rung, unit_id, leader_code, span, as_of_day=as_of_day, known_at=position)
            )
            leader = None
            if leader_code is not None:
                cadre = self.index.cadres[leader_code]
                leader = Leader(cadre_id=cadre.cadre_id, name=cadre.name)
            escalations.append(
                UnitEscalation(
                    unit_id=unit_id,
                    name=self._name(unit_id, as_of_day, position),
                    rank=unit.rank,
                    score=Decimal(unit.tally.score).scaleb(-2),
                    streak=streak,
                    step=rung.step,
                    action=rung.action,
                    label=rung.label,
                    leader=leader,
                    consequence=consequence,
                    consequence_posted=posted,
                )
            )
        escalations.sort(key=lambda e: (-e.streak, -e.rank, e.unit_id))
        return UnitEscalationsView(
            period=span.name,
            as_of=as_of,
            known_at=self._echo(known_at, position),
            position=position,
            policy_version=policy.version,
            bottom_count=policy.units.bottom_count,
            escalations=escalations,
        )

    def unit(self, unit_id: str, as_of: date, known_at: KnownAt | None, position: int) -> UnitView:
        index = self.index
        code = index.unit_codes.get(unit_id)
        if code is None or not self._known(code, position):
            raise NotFound(
                f"unit {unit_id} is not known: no cadre serves in it and nothing rates or registers it"
            )
        as_of_day = day(as_of)
        ratings = index.rated.ratings
        rows = np.flatnonzero(
            (ratings["unit"] == code) & (ratings["day"] <= as_of_day) & (ratings["position"] <= position)
        )
        period_ids = index.rated.period_ids
        rater_ids = index.rated.rater_ids
        listed = []
        periods_seen: set[int] = set()
        for row in rows.tolist():
            kind, _, rater = rater_ids[int(ratings["rater"][row])].partition("|")
            periods_seen.add(int(ratings["period"][row]))
            listed.append(
                UnitRating(
                    position=int(ratings["position"][row]),
                    effective_on=from_day(int(ratings["day"][row])),
                    period=period_ids[int(ratings["period"][row])],
                    rater_kind=kind,
                    rater_id=rater,
                    score=Decimal(int(ratings["cents"][row])).scaleb(-2),
                    verdict=VERDICTS_BY_CODE[int(ratings["verdict"][row])],
                )
            )
        periods = []
        for name in sorted((period_ids[p] for p in periods_seen), key=lambda n: parse_period(n).first_day):
            span = parse_period(name)
            ranked = self.ranked(span, as_of_day, position)
            mine = next(unit for unit in ranked if unit.tally.unit_id == unit_id)
            in_bottom = unit_id in self._bottom(span, as_of_day, position)
            streak = self.streak(unit_id, span, as_of_day, position) if in_bottom else 0
            rung: UnitLadderStep | None = (
                ladder_step(streak, self._policy(span, position).units.ladder) if streak else None
            )
            periods.append(
                UnitPeriod(
                    period=name,
                    rank=mine.rank,
                    of=sum(1 for unit in ranked if unit.rank is not None),
                    score=_decimal(mine.tally.score),
                    ratings=mine.tally.ratings,
                    dissatisfied=mine.tally.dissatisfied,
                    in_bottom=in_bottom,
                    streak=streak,
                    step=None if rung is None else rung.step,
                    action=None if rung is None else rung.action,
                )
            )
        details = index.rated.details(unit_id, as_of_day, position)
        return UnitView(
            unit_id=unit_id,
            name=None if details is None else str(details.detail[1]),
            kind=None if details is None else str(details.detail[2]),
            parent=None if details is None or details.detail[3] is None else str(details.detail[3]),
            as_of=as_of,
            known_at=self._echo(known_at, position),
            position=position,
            periods=periods,
            ratings=listed,
        )

    # Parts.

    def _known(self, code: int, known_at: int) -> bool:
        """Whether the log through `known_at` knows the unit: a cadre placed in it, its details, a rating."""
        index = self.index
        units, ratings = index.units, index.rated.ratings
        return bool(
            np.any((units["value"] == code) & (units["position"] <= known_at))
            or np.any((ratings["unit"] == code) & (ratings["position"] <= known_at))
            or any(
                fact.position <= known_at and fact.detail[0] == index.unit_ids[code]
                for fact in index.rated.registrations
            )
        )

    def _name(self, unit_id: str, as_of_day: int, known_at: int) -> str | None:
        details = self.index.rated.details(unit_id, as_of_day, known_at)
        return None if details is None else str(details.detail[1])

    def _panel(self, span: Period, known_at: int) -> Panel | None:
        fact = self.index.rated.panel(span.name, known_at)
        if fact is None:
            return None
        _period, rater_kind, size, method, seed = fact.detail
        return Panel(
            rater_kind=str(rater_kind),
            size=int(size),  # type: ignore[arg-type]
            method=str(method),
            seed=str(seed),
            drawn_on=from_day(fact.effective_on),
            position=fact.position,
        )

    def _leader(self, unit_id: str, on_day: int, known_at: int) -> int | None:
        """The unit's principal leader on `on_day` — the period's last day, or `as_of` if earlier — the
        latest to arrive, then by cadre_id."""
        index = self.index
        snapshot = self.cache.snapshot(index, on_day, known_at, None)
        code = index.unit_codes[unit_id]
        candidates = np.flatnonzero(snapshot.active & snapshot.principal & (snapshot.unit == code))
        if candidates.size == 0:
            return None
        rows = index.latest_row(index.units, on_day, snapshot.known_at, len(index.cadres))
        arrived = index.units["day"]

        def order(cadre: int) -> tuple[int, str]:
            row = int(rows[cadre])
            return (-(int(arrived[row]) if row >= 0 else 0), index.cadres[cadre].cadre_id)

        return min(candidates.tolist(), key=order)

    def _posted(
        self, rung: UnitLadderStep, unit_id: str, leader: int, span: Period, *, as_of_day: int, known_at: int
    ) -> bool:
        """Whether the step's consequence was posted for the leader after the period's end, by the end of
        the next period (or `as_of`, if earlier)."""
        start = day(span.last_day)
        try:
            end = min(as_of_day, day(span.following().last_day))
        except ValueError:
            end = as_of_day
        if end <= start:
            return False
        index = self.index
        if rung.deduction is not None:
            for fact in index.cadres[leader].sparse:
                if (
                    fact.kind == Kind.DEDUCTION
                    and fact.detail[0] == rung.deduction
                    and fact.position <= known_at
                    and start < fact.effective_on <= end
                    and index.sparse_reversed_at.get(fact.position, NEVER) > known_at
                ):
                    return True
            return False
        snapshot = self.cache.snapshot(index, end, known_at, None)
        code = index.unit_codes[unit_id]
        still = bool(snapshot.active[leader] and snapshot.principal[leader] and snapshot.unit[leader] == code)
        return not still
