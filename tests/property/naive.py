"""A naive model of the read models: every answer of `Projections`, recomputed from the raw log with loops.

It reads the recorded events (`Ledger.records()` gives `(position, event)`) and answers a read at
(as_of A, known_at K) straight from SPEC §4, §5 and §7, written for obviousness, not speed:

- an event is *visible* if its position ≤ K and its valid date ≤ A (a reversal's valid date is its target's
  `effective_on`); it is *reversed* if a reversal of it has position ≤ K; *in force* = visible and not
  reversed. Reversals themselves count nothing: their target is simply left out.
- a cadre is known if its registration is in force, departed if a departure is; unit and grade are the
  in-force change with the latest date (ties: the later position);
- totals and components sum the points of the in-force events;
- rankings sort by total, the policy's tie-breakers and cadre_id; a competition rank is 1 + the number of
  members strictly better on (total, tie-breakers);
- eligibility, recalls, boards and escalations follow the policy in force at (A, K); recall completions and
  investigation closes act in valid-time order (effective_on, then position): a completion closes the
  oldest recall open at its date, and one dated before every open recall closes nothing (the reading the
  read models implement; see the xfail tests in tests/integration/test_projection_scenarios.py for where
  the ledger's own rules disagree).

It shares nothing with `ledger.projections`: only the event structs, the policy loader and two pure rules of
the policy (`months_between`, `appraisal_at_most`) that the specification names.
"""

from __future__ import annotations

import calendar
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from ledger.domain.events import (
    AppraisalRecorded,
    CadreDeparted,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    PolicyPublished,
    RecallCompleted,
    RecallOrdered,
    TenureAccrued,
    VetoApplied,
)
from ledger.domain.periods import Period, parse_period, period_containing
from ledger.policy.load import illustrative_policy, load_policy
from ledger.policy.rules import appraisal_at_most, months_between
from ledger.policy.schema import Policy

__all__ = ["CHECK_NAMES", "Model"]

ZERO = Decimal("0.00")
COMPONENTS = ("tenure", "merit", "deductions", "appraisal", "evaluation", "recall")
COMPONENT_OF_TYPE: dict[type[EventBase], str] = {
    TenureAccrued: "tenure",
    MeritAwarded: "merit",
    DeductionApplied: "deductions",
    VetoApplied: "deductions",
    AppraisalRecorded: "appraisal",
    EvaluationRecorded: "evaluation",
    RecallOrdered: "recall",
    RecallCompleted: "recall",
}
# Appraisal results from best to worst; `ungraded` is below `incompetent` (policy rules.appraisal_at_most).
RESULT_ORDER = ("excellent", "competent", "basically_competent", "incompetent", "ungraded")
CHECK_NAMES = (
    "status",
    "years_in_grade",
    "appraisal",
    "gates",
    "recall",
    "investigation",
    "veto",
    "standing",
)
EACH_UNIT = "unit:*"


def add_months(start: date, months: int) -> date:
    """`start` plus whole calendar months, clamped to the last day of a shorter month."""
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    month = month_index + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@dataclass
class CadreState:
    """One known cadre at (A, K)."""

    cadre_id: str
    name: str
    registered_on: date
    service_started_on: date
    unit_id: str
    grade: str
    grade_since: date
    leadership: bool
    principal: bool
    left_leadership: bool
    departed_on: date | None
    total: Decimal
    components: dict[str, Decimal]
    in_force: list[tuple[int, EventBase]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.departed_on is None

    @property
    def status(self) -> str:
        return "active" if self.active else "departed"


@dataclass(frozen=True)
class Ranked:
    rank: int
    cadre_id: str


@dataclass(frozen=True)
class Candidate:
    cadre_id: str
    unit_id: str
    rank: int
    pool_size: int
    total: Decimal


@dataclass(frozen=True)
class EscalationModel:
    cadre_id: str
    unit_id: str
    streak: int
    step: int
    action: str
    label: str


class Model:
    """Answers of the read models at any (as_of, known_at), from `(position, event)` pairs."""

    def __init__(self, records: list[tuple[int, EventBase]]) -> None:
        self.records = sorted(records, key=lambda record: record[0])
        self.head = self.records[-1][0] if self.records else 0
        self.by_id: dict[uuid.UUID, tuple[int, EventBase]] = {
            event.event_id: (position, event)  # type: ignore[misc]
            for position, event in self.records
        }
        # The position of the (first) reversal of each event.
        self.reversed_at: dict[uuid.UUID, int] = {}
        for position, event in self.records:
            if isinstance(event, EntryReversed):
                earlier = self.reversed_at.get(event.target_event_id)
                self.reversed_at[event.target_event_id] = (
                    position if earlier is None else min(earlier, position)
                )
        self.units = sorted(
            {
                event.unit_id
                for _position, event in self.records
                if isinstance(event, CadreRegistered | CadreTransferred)
            }
        )
        self.cadre_ids = sorted(
            {event.cadre_id for _position, event in self.records if isinstance(event, CadreRegistered)}
        )
        self._states: dict[tuple[date, int], dict[str, CadreState]] = {}
        self._policies = [
            (position, event.effective_from, load_policy(event.body))
            for position, event in self.records
            if isinstance(event, PolicyPublished)
        ]

    # The two time axes.

    def known_position(self, known_at: int) -> int:
        return min(known_at, self.head)

    @staticmethod
    def valid_date(event: EventBase) -> date:
        if isinstance(event, EntryReversed):
            assert isinstance(event.target_effective_on, date)
            return event.target_effective_on
        return event.effective_on

    def in_force(self, position: int, event: EventBase, as_of: date, known_at: int) -> bool:
        if position > known_at or self.valid_date(event) > as_of:
            return False
        reversed_at = self.reversed_at.get(event.event_id)  # type: ignore[arg-type]
        return reversed_at is None or reversed_at > known_at

    # Policy.

    def policy(self, as_of: date, known_at: int) -> Policy:
        """The policy in force on `as_of` as known at `known_at`: the latest effective_from ≤ as_of, then the
        later publication; before any, the earliest known one."""
        known = [entry for entry in self._policies if entry[0] <= known_at]
        in_force = [entry for entry in known if entry[1] <= as_of]
        if in_force:
            return max(in_force, key=lambda entry: (entry[1], entry[0]))[2]
        if known:
            return min(known, key=lambda entry: (entry[1], entry[0]))[2]
        return illustrative_policy()

    # Standings.

    def cadres(self, as_of: date, known_at: int) -> dict[str, CadreState]:
        """Every known cadre at (as_of, known_at), by id."""
        known_at = self.known_position(known_at)
        key = (as_of, known_at)
        if key not in self._states:
            self._states[key] = self._compute_cadres(as_of, known_at)
        return self._states[key]

    def _compute_cadres(self, as_of: date, known_at: int) -> dict[str, CadreState]:
        by_cadre: dict[str, list[tuple[int, EventBase]]] = defaultdict(list)
        for position, event in self.records:
            cadre_id = getattr(event, "cadre_id", None)
            if cadre_id is not None and self.in_force(position, event, as_of, known_at):
                by_cadre[cadre_id].append((position, event))
        states: dict[str, CadreState] = {}
        for cadre_id, events in by_cadre.items():
            registrations = [(p, e) for p, e in events if isinstance(e, CadreRegistered)]
            if not registrations:
                continue
            registration_position, registration = registrations[0]
            assert isinstance(registration, CadreRegistered)
            # Unit: the in-force change with the latest date, ties to the later position.
            unit_changes = [(registration.effective_on, registration_position, registration.unit_id)]
            unit_changes += [
                (e.effective_on, p, e.unit_id) for p, e in events if isinstance(e, CadreTransferred)
            ]
            unit_id = max(unit_changes)[2]
            grade_changes = [(registration.grade_since, registration_position, registration.grade)]
            grade_changes += [
                (e.effective_on, p, e.grade) for p, e in events if isinstance(e, CadreGradeChanged)
            ]
            grade_since, _position, grade = max(grade_changes)
            departures = [e.effective_on for _p, e in events if isinstance(e, CadreDeparted)]
            left = any(isinstance(e, CadreLeftLeadership) for _p, e in events)
            leadership = registration.leadership and not left
            components = dict.fromkeys(COMPONENTS, ZERO)
            for _position, event in events:
                component = COMPONENT_OF_TYPE.get(type(event))
                if component is not None:
                    assert isinstance(event.points, Decimal)
                    components[component] += event.points
            states[cadre_id] = CadreState(
                cadre_id=cadre_id,
                name=registration.name,
                registered_on=registration.effective_on,
                service_started_on=registration.service_started_on,
                unit_id=unit_id,
                grade=grade,
                grade_since=grade_since,
                leadership=leadership,
                principal=registration.principal and leadership,
                left_leadership=left,
                departed_on=min(departures) if departures else None,
                total=sum(components.values(), ZERO),
                components=components,
                in_force=events,
            )
        return states

    # Rankings.

    def members(self, scope: str, as_of: date, known_at: int) -> list[CadreState]:
        """The active cadres of a scope."""
        result = []
        for cadre in self.cadres(as_of, known_at).values():
            if not cadre.active:
                continue
            if (
                scope == "all"
                or (scope.startswith("unit:") and cadre.unit_id == scope[5:])
                or (scope.startswith("grade:") and cadre.grade == scope[6:])
                or (scope == "cohort:principal" and cadre.principal)
                or (scope == "cohort:left_leadership" and cadre.left_leadership)
            ):
                result.append(cadre)
        return result

    def tie_breaker(self, cadre: CadreState, name: str, as_of: date) -> Any:
        if name == "grade_years":
            return months_between(cadre.grade_since, as_of)
        if name == "service_years":
            return months_between(cadre.service_started_on, as_of)
        if name == "excellent_appraisals":
            return sum(
                1 for _p, e in cadre.in_force if isinstance(e, AppraisalRecorded) and e.result == "excellent"
            )
        if name == "merit_points":
            return cadre.components["merit"]
        raise ValueError(name)

    def rank_pool(self, pool: list[CadreState], as_of: date, known_at: int) -> list[Ranked]:
        """A pool in ranking order with competition ranks."""
        tie_breakers = self.policy(as_of, known_at).ranking.tie_breakers
        keys = {
            cadre.cadre_id: (cadre.total, *(self.tie_breaker(cadre, name, as_of) for name in tie_breakers))
            for cadre in pool
        }
        ranked = [
            Ranked(1 + sum(1 for other in keys.values() if other > key), cadre_id)
            for cadre_id, key in keys.items()
        ]
        return sorted(ranked, key=lambda entry: (entry.rank, entry.cadre_id))

    def ranking(self, scope: str, as_of: date, known_at: int) -> list[Ranked]:
        return self.rank_pool(self.members(scope, as_of, known_at), as_of, known_at)

    @staticmethod
    def previous_as_of(as_of: date, period: str | None) -> tuple[date, date]:
        """The read date and the previous date a ranking compares with."""
        if period is not None:
            span = parse_period(period)
            return span.last_day, previous_period(span).last_day
        quarter = period_containing("quarter", as_of)
        return as_of, previous_period(quarter).last_day

    def rankings(
        self, scope: str, as_of: date, known_at: int, period: str | None = None
    ) -> list[tuple[Ranked, int | None]]:
        """The ranking with each cadre's previous rank (None if not ranked then)."""
        as_of, before = self.previous_as_of(as_of, period)
        previous = {entry.cadre_id: entry.rank for entry in self.ranking(scope, before, known_at)}
        return [(entry, previous.get(entry.cadre_id)) for entry in self.ranking(scope, as_of, known_at)]

    @staticmethod
    def bottom(ranked: list[Ranked], count: int) -> list[Ranked]:
        return [entry for entry in ranked if entry.rank > len(ranked) - count]

    def pools(self, scope: str, as_of: date, known_at: int) -> dict[str, list[CadreState]]:
        if scope != EACH_UNIT:
            return {scope: self.members(scope, as_of, known_at)}
        return {f"unit:{unit_id}": self.members(f"unit:{unit_id}", as_of, known_at) for unit_id in self.units}

    # Eligibility.

    def eligibility(
        self, cadre_id: str, as_of: date, known_at: int, scope: str = "all"
    ) -> list[tuple[str, bool]]:
        """Each check with whether it passed."""
        cadre = self.cadres(as_of, known_at)[cadre_id]
        rules = self.policy(as_of, known_at).eligibility
        checks = [("status", cadre.active)]

        caps: dict[int, list[str]] = defaultdict(list)
        for _position, event in cadre.in_force:
            if isinstance(event, DeductionApplied) and isinstance(event.appraisal_cap, str):
                caps[event.effective_on.year].append(event.appraisal_cap)
        results: dict[int, str] = {}
        for _position, event in cadre.in_force:
            if isinstance(event, AppraisalRecorded):
                result = event.result
                for cap in caps[event.year]:
                    result = appraisal_at_most(result, cap)  # type: ignore[arg-type]
                assert event.year not in results, "one appraisal in force per year"
                results[event.year] = result
        in_grade = {
            year: result for year, result in results.items() if cadre.grade_since.year <= year <= as_of.year
        }
        not_counting = sum(1 for result in in_grade.values() if result not in rules.counting_results)
        excellent = sum(1 for result in in_grade.values() if result == "excellent")
        months = months_between(cadre.grade_since, as_of) - 12 * not_counting
        required = rules.years_in_grade_min_for(cadre.grade) - rules.excellent_year_shortens_by * excellent
        checks.append(("years_in_grade", months >= 12 * required))

        if rules.appraisal_required is not None:
            if results:
                latest = results[max(results)]
                worst = RESULT_ORDER.index(rules.appraisal_required)
                checks.append(("appraisal", RESULT_ORDER.index(latest) <= worst))
            else:
                checks.append(("appraisal", False))

        gated = any(
            isinstance(event, DeductionApplied)
            and isinstance(event.gate_months, int)
            and event.effective_on <= as_of < add_months(event.effective_on, event.gate_months)
            for _position, event in cadre.in_force
        )
        checks.append(("gates", not gated))
        checks.append(("recall", not self.open_recalls(cadre)))
        checks.append(("investigation", not self.open_investigations(cadre)))
        vetoed = self.vetoed(cadre, as_of.year)
        checks.append(("veto", not vetoed))

        standing = rules.standing
        if standing.top_share is None and standing.points_min is None:
            checks.append(("standing", True))
        else:
            ranked = self.ranking(scope, as_of, known_at)
            rank = {entry.cadre_id: entry.rank for entry in ranked}.get(cadre_id)
            ok = False
            if standing.top_share is not None and rank is not None:
                ok = rank <= math.ceil(standing.top_share * len(ranked))
            if standing.points_min is not None:
                ok = ok or cadre.total >= standing.points_min
            checks.append(("standing", ok))
        return checks

    def eligible(self, cadre_id: str, as_of: date, known_at: int, scope: str = "all") -> bool:
        return all(passed for _name, passed in self.eligibility(cadre_id, as_of, known_at, scope))

    def shortlist(self, scope: str, as_of: date, known_at: int) -> list[Ranked]:
        return [
            entry
            for entry in self.ranking(scope, as_of, known_at)
            if self.eligible(entry.cadre_id, as_of, known_at, scope)
        ]

    @staticmethod
    def _in_valid_time_order(cadre: CadreState, types: tuple[type, ...]) -> list[tuple[int, EventBase]]:
        chosen = [(p, e) for p, e in cadre.in_force if isinstance(e, types)]
        return sorted(chosen, key=lambda pair: (pair[1].effective_on, pair[0]))

    def open_recalls(self, cadre: CadreState) -> list[RecallOrdered]:
        """Recalls ordered and not completed; each completion closes the oldest open one."""
        opened: list[RecallOrdered] = []
        for _position, event in self._in_valid_time_order(cadre, (RecallOrdered, RecallCompleted)):
            if isinstance(event, RecallOrdered):
                opened.append(event)
            elif opened:
                opened.pop(0)
        return opened

    def open_investigations(self, cadre: CadreState) -> set[str]:
        opened: set[str] = set()
        for _position, event in self._in_valid_time_order(cadre, (InvestigationOpened, InvestigationClosed)):
            if isinstance(event, InvestigationOpened):
                opened.add(event.reference)
            else:
                opened.discard(event.reference)
        return opened

    @staticmethod
    def vetoed(cadre: CadreState, year: int) -> bool:
        return any(isinstance(e, VetoApplied) and e.year == year for _p, e in cadre.in_force)

    # Period reads.

    def recalls(
        self, period: str, scope: str, known_at: int
    ) -> tuple[list[Candidate], list[tuple[Any, ...]]]:
        """Recall candidates (the bottom of each large enough pool) and the open recalls of the scope."""
        as_of = parse_period(period).last_day
        rules = self.policy(as_of, known_at).recall
        candidates = []
        members: list[CadreState] = []
        for pool in self.pools(scope, as_of, known_at).values():
            members += pool
            if len(pool) < rules.pool_size_min:
                continue
            count = rules.bottom_count
            if count is None:
                assert rules.bottom_share is not None
                count = math.ceil(rules.bottom_share * len(pool))
            by_id = {cadre.cadre_id: cadre for cadre in pool}
            for entry in self.bottom(self.rank_pool(pool, as_of, known_at), count):
                cadre = by_id[entry.cadre_id]
                candidates.append(
                    Candidate(cadre.cadre_id, cadre.unit_id, entry.rank, len(pool), cadre.total)
                )
        opened = [
            (cadre.cadre_id, recall.effective_on, recall.period, recall.reason)
            for cadre in sorted(members, key=lambda cadre: cadre.cadre_id)
            for recall in self.open_recalls(cadre)
        ]
        return candidates, opened

    def boards(self, period: str, scope: str, known_at: int) -> tuple[list[Ranked], list[Ranked]]:
        """Red: the top of the ranking without cadres vetoed in the period's year; black: the bottom."""
        as_of = parse_period(period).last_day
        rules = self.policy(as_of, known_at).boards
        cadres = self.cadres(as_of, known_at)
        ranked = self.ranking(scope, as_of, known_at)
        red = [entry for entry in ranked if not self.vetoed(cadres[entry.cadre_id], as_of.year)]
        return red[: rules.red_count], self.bottom(ranked, rules.black_count)

    def in_bottom(self, span: Period, scope: str, known_at: int, count: int) -> set[str]:
        """Cadres in the bottom `count` of their pool in a period."""
        found: set[str] = set()
        for pool in self.pools(scope, span.last_day, known_at).values():
            ranked = self.rank_pool(pool, span.last_day, known_at)
            found |= {entry.cadre_id for entry in self.bottom(ranked, count)}
        return found

    def escalations(
        self, period: str, scope: str, known_at: int, *, periods_max: int | None = None
    ) -> list[EscalationModel]:
        """Cadres in the bottom N in the period and the periods just before it, with their ladder step.

        `periods_max` bounds how many periods a streak looks back (None: as far as it goes).
        """
        span = parse_period(period)
        rules = self.policy(span.last_day, known_at).escalation
        ladder = sorted(rules.ladder, key=lambda step: step.step)
        cadres = self.cadres(span.last_day, known_at)
        bottoms: dict[Period, set[str]] = {}

        def in_bottom(current: Period) -> set[str]:
            if current not in bottoms:
                bottoms[current] = self.in_bottom(current, scope, known_at, rules.bottom_count)
            return bottoms[current]

        result = []
        for cadre_id in sorted(in_bottom(span)):
            streak = 0
            current = span
            while cadre_id in in_bottom(current) and (periods_max is None or streak < periods_max):
                streak += 1
                current = previous_period(current)
            step = ladder[min(streak, len(ladder)) - 1]
            result.append(
                EscalationModel(
                    cadre_id, cadres[cadre_id].unit_id, streak, step.step, step.action, step.label
                )
            )
        return sorted(result, key=lambda item: (-item.streak, item.cadre_id))


@cache
def previous_period(span: Period) -> Period:
    """The period of the same kind that ends the day before `span` begins."""
    before = date.fromordinal(span.first_day.toordinal() - 1)
    return period_containing(span.kind, before)
