"""A naive model of the read models: every answer of `Projections`, recomputed from the raw log with loops.

It reads the recorded events (`Ledger.records()` gives `(position, event)`) and answers a read at
(as_of A, known_at K) straight from SPEC §4, §5, §7 and the rules of issue 9 (notes/rules_spec.md),
written for obviousness, not speed:

- an event is *visible* if its position ≤ K and its valid date ≤ A (a reversal's valid date is its target's
  `effective_on`); it is *reversed* if a reversal of it has position ≤ K; *in force* = visible and not
  reversed. Reversals themselves count nothing: their target is simply left out.
- an event is *known* at K if its position ≤ K and it is not reversed at K, whatever its date: vetoes and
  sanctions act on their years as soon as they are known (rules §2, §3);
- a cadre is known if its registration is in force, departed if a departure is; unit and grade are the
  in-force change with the latest date (ties: the later position);
- each in-force event counts its *counted points*: its recorded points, except a merit barred by a veto
  of its year known at K (0.00), and an appraisal whose *counted result* (the recorded result capped by
  every known sanction of its year, ungraded while an investigation holds the year) differs from the
  recorded one: the points of the counted result in the appraisal table of the policy that recorded it;
- totals and components sum the counted points of the in-force events; on the `period` basis only those
  whose date lies in the window [W0, A];
- rankings sort by total, the policy's tie-breakers and cadre_id; a competition rank is 1 + the number of
  members strictly better on (total, tie-breakers); top and bottom N take the ties at the edge;
- eligibility, recalls, boards and escalations follow the policy in force at (A, K); recall completions and
  investigation closes act in valid-time order (effective_on, then position): a completion closes the
  oldest recall open at its date, and one dated before every open recall closes nothing (the reading the
  read models implement; see the xfail tests in tests/integration/test_projection_scenarios.py for where
  the ledger's own rules disagree).

It shares nothing with `ledger.projections`: only the event structs, the periods, the policy loader and
two pure rules of the policy (`months_between`, `appraisal_at_most`) that the specification names.
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

from msgspec import UNSET

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
# How many periods an escalation streak looks back at most (rules §1).
STREAK_MAX = 12


def add_months(start: date, months: int) -> date:
    """`start` plus whole calendar months, clamped to the last day of a shorter month."""
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    month = month_index + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def sanction_years(deduction: DeductionApplied) -> tuple[int, ...]:
    """The appraisal years a recorded deduction caps: its recorded `appraisal_years`, or (for events
    recorded before the field existed) the year of its date."""
    years = getattr(deduction, "appraisal_years", UNSET)
    if years is UNSET or years is None:
        return (deduction.effective_on.year,)
    return tuple(years)


def barred_awards(veto: VetoApplied) -> tuple[str, ...]:
    """The awards a recorded veto bars; an older veto (field absent) bars nothing."""
    awards = getattr(veto, "barred_awards", UNSET)
    if awards is UNSET or awards is None:
        return ()
    return tuple(awards)


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
    # The events in force at (A, K), and those known at K (not reversed, any date).
    in_force: list[tuple[int, EventBase]] = field(default_factory=list)
    known: list[tuple[int, EventBase]] = field(default_factory=list)
    # Counted result of each in-force appraisal, by year; counted points of each in-force event, by id.
    results: dict[int, str] = field(default_factory=dict)
    counted: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    total: Decimal = ZERO
    components: dict[str, Decimal] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.departed_on is None

    @property
    def status(self) -> str:
        return "active" if self.active else "departed"

    def figures(self, since: date | None = None) -> tuple[Decimal, dict[str, Decimal]]:
        """Total and components: of every in-force event (since None), or of those dated on or after
        `since` (the `period` basis; the read date bounds the window from above already)."""
        components = dict.fromkeys(COMPONENTS, ZERO)
        for _position, event in self.in_force:
            component = COMPONENT_OF_TYPE.get(type(event))
            if component is None:
                continue
            if since is not None and event.effective_on < since:
                continue
            components[component] += self.counted[event.event_id]  # type: ignore[index]
        return sum(components.values(), ZERO), components


@dataclass(frozen=True)
class Ranked:
    rank: int
    cadre_id: str
    total: Decimal = ZERO
    components: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """What a ranking reads: as of `as_of` from `since` (None: everything), and the previous read."""

    as_of: date
    since: date | None
    previous_as_of: date
    previous_since: date | None


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


def top(ranked: list[Ranked], count: int) -> list[Ranked]:
    """The top `count` of a list in ranking order, with every member tied with the `count`-th."""
    if count <= 0:
        return []
    if count >= len(ranked):
        return list(ranked)
    edge = ranked[count - 1].rank
    return [entry for entry in ranked if entry.rank <= edge]


def bottom(ranked: list[Ranked], count: int) -> list[Ranked]:
    """The bottom `count` of a list in ranking order, with every member tied with the `count`-th from
    the bottom."""
    if count <= 0:
        return []
    if count >= len(ranked):
        return list(ranked)
    edge = ranked[len(ranked) - count].rank
    return [entry for entry in ranked if entry.rank >= edge]


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
            (position, event.effective_from, _load_policy(event.body))
            for position, event in self.records
            if isinstance(event, PolicyPublished)
        ]
        # Every published policy by its version: an appraisal's counted points come from the one that
        # recorded it.
        self.policy_by_version: dict[str, Policy] = {}
        for _position, _from, policy in self._policies:
            self.policy_by_version.setdefault(policy.version, policy)

    # The two time axes.

    def known_position(self, known_at: int) -> int:
        return min(known_at, self.head)

    @staticmethod
    def valid_date(event: EventBase) -> date:
        if isinstance(event, EntryReversed):
            assert isinstance(event.target_effective_on, date)
            return event.target_effective_on
        return event.effective_on

    def is_known(self, position: int, event: EventBase, known_at: int) -> bool:
        """Recorded by K and not reversed by K, whatever its date."""
        if position > known_at:
            return False
        reversed_at = self.reversed_at.get(event.event_id)  # type: ignore[arg-type]
        return reversed_at is None or reversed_at > known_at

    def in_force(self, position: int, event: EventBase, as_of: date, known_at: int) -> bool:
        return self.is_known(position, event, known_at) and self.valid_date(event) <= as_of

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

    def recording_policy(self, event: EventBase) -> Policy:
        """The policy named by an event's `policy_version`."""
        version = event.policy_version
        if isinstance(version, str) and version in self.policy_by_version:
            return self.policy_by_version[version]
        assert isinstance(version, str), "a recorded event names its policy"
        return illustrative_policy()

    # What the ledger records (rules: new server fields).

    def server_field_findings(self) -> list[str]:
        """Where a recorded event's server fields of issue 9 differ from what the rules give, computed from
        the policy in force on its date as known when it was posted: a deduction's `appraisal_years` from
        its kind's mode, a veto's `barred_awards`, an appraisal's points (of the recorded result, never
        capped)."""
        findings = []
        for position, event in self.records:
            if not isinstance(event, DeductionApplied | VetoApplied | AppraisalRecorded):
                continue
            if event.override_reason is not None:
                continue
            policy = self.policy(event.effective_on, position - 1)
            if event.policy_version != policy.version:
                findings.append(f"{position}: policy {event.policy_version}, expected {policy.version}")
                continue
            got: Any
            want: Any
            if isinstance(event, DeductionApplied):
                got, want = getattr(event, "appraisal_years", UNSET), self.appraisal_years_of(policy, event)
            elif isinstance(event, VetoApplied):
                got, want = getattr(event, "barred_awards", UNSET), tuple(policy.veto.barred_awards)
            else:
                got, want = event.points, policy.appraisal.points.of(event.result)
            if got != want:
                findings.append(f"{position}: {type(event).__name__} {got!r}, expected {want!r}")
        return findings

    @staticmethod
    def appraisal_years_of(policy: Policy, deduction: DeductionApplied) -> tuple[int, ...]:
        """The appraisal years of a deduction by its kind's mode: the year of its date S; S's year and the
        next; or every year from S's up to (not including) the year its influence period ends."""
        start = deduction.effective_on
        mode = policy.deductions.of(deduction.kind).appraisal_years
        if mode == "year":
            return (start.year,)
        if mode == "year_and_next":
            return (start.year, start.year + 1)
        assert mode == "period", mode
        assert isinstance(deduction.gate_months, int)
        end = add_months(start, deduction.gate_months)
        return tuple(range(start.year, end.year))

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
        known_by_cadre: dict[str, list[tuple[int, EventBase]]] = defaultdict(list)
        for position, event in self.records:
            cadre_id = getattr(event, "cadre_id", None)
            if cadre_id is None or not self.is_known(position, event, known_at):
                continue
            known_by_cadre[cadre_id].append((position, event))
            if self.valid_date(event) <= as_of:
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
            cadre = CadreState(
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
                in_force=events,
                known=known_by_cadre[cadre_id],
            )
            self._count(cadre)
            cadre.total, cadre.components = cadre.figures()
            states[cadre_id] = cadre
        return states

    # Counted results and points (rules §2, §3).

    def _count(self, cadre: CadreState) -> None:
        """Fill in the counted result of each in-force appraisal and the counted points of each event."""
        for _position, event in cadre.in_force:
            if isinstance(event, AppraisalRecorded):
                assert event.year not in cadre.results, "one appraisal in force per year"
                cadre.results[event.year] = self.counted_result(cadre, event)
        for _position, event in cadre.in_force:
            assert isinstance(event.event_id, uuid.UUID)
            points = event.points if isinstance(event.points, Decimal) else ZERO
            if isinstance(event, MeritAwarded) and self.barring_veto(cadre, event) is not None:
                points = ZERO
            if isinstance(event, AppraisalRecorded):
                result = cadre.results[event.year]
                if result != event.result:
                    points = self.recording_policy(event).appraisal.points.of(result)  # type: ignore[arg-type]
            cadre.counted[event.event_id] = points

    def counted_result(self, cadre: CadreState, appraisal: AppraisalRecorded) -> str:
        """The recorded result, capped by every sanction known at K whose years hold the appraisal's year,
        then ungraded if an investigation holds that year."""
        result: str = appraisal.result
        for _position, event in cadre.known:
            if (
                isinstance(event, DeductionApplied)
                and isinstance(event.appraisal_cap, str)
                and appraisal.year in sanction_years(event)
            ):
                result = appraisal_at_most(result, event.appraisal_cap)  # type: ignore[arg-type]
        if self.investigation_holds(cadre, appraisal.year):
            result = "ungraded"
        return result

    def investigation_holds(self, cadre: CadreState, year: int) -> bool:
        """An in-force opening dated in `year` or before with no in-force close of its reference after it
        (in valid-time order; in-force closes are dated ≤ A)."""
        events = self._in_valid_time_order(cadre, (InvestigationOpened, InvestigationClosed))
        for index, (_position, opening) in enumerate(events):
            if not isinstance(opening, InvestigationOpened) or opening.effective_on.year > year:
                continue
            closed = any(
                isinstance(later, InvestigationClosed) and later.reference == opening.reference
                for _p, later in events[index + 1 :]
            )
            if not closed:
                return True
        return False

    @staticmethod
    def vetoes(cadre: CadreState) -> list[VetoApplied]:
        """The vetoes known at K (in force for their years, whatever the read date)."""
        return [event for _position, event in cadre.known if isinstance(event, VetoApplied)]

    def vetoed(self, cadre: CadreState, year: int) -> bool:
        return any(veto.year == year for veto in self.vetoes(cadre))

    def barring_veto(self, cadre: CadreState, merit: MeritAwarded) -> VetoApplied | None:
        for veto in self.vetoes(cadre):
            if veto.year == merit.effective_on.year and merit.award in barred_awards(veto):
                return veto
        return None

    def history(self, cadre_id: str, as_of: date, known_at: int) -> tuple[Decimal, dict[uuid.UUID, Decimal]]:
        """A cadre's history total and the counted points of each of its in-force events."""
        cadre = self.cadres(as_of, known_at)[cadre_id]
        return cadre.total, dict(cadre.counted)

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

    @staticmethod
    def tie_breaker(cadre: CadreState, name: str, as_of: date, since: date | None) -> Any:
        if name == "grade_years":
            return (as_of - cadre.grade_since).days
        if name == "service_years":
            return (as_of - cadre.service_started_on).days
        if name == "excellent_appraisals":
            return sum(1 for result in cadre.results.values() if result == "excellent")
        if name == "merit_points":
            return cadre.figures(since)[1]["merit"]
        raise ValueError(name)

    def rank_pool(
        self, pool: list[CadreState], as_of: date, known_at: int, since: date | None = None
    ) -> list[Ranked]:
        """A pool in ranking order with competition ranks, on the window from `since` (None: total)."""
        tie_breakers = self.policy(as_of, known_at).ranking.tie_breakers
        figures = {cadre.cadre_id: cadre.figures(since) for cadre in pool}
        keys = {
            cadre.cadre_id: (
                figures[cadre.cadre_id][0],
                *(self.tie_breaker(cadre, name, as_of, since) for name in tie_breakers),
            )
            for cadre in pool
        }
        ranked = [
            Ranked(
                1 + sum(1 for other in keys.values() if other > key),
                cadre_id,
                figures[cadre_id][0],
                figures[cadre_id][1],
            )
            for cadre_id, key in keys.items()
        ]
        return sorted(ranked, key=lambda entry: (entry.rank, entry.cadre_id))

    def ranking(self, scope: str, as_of: date, known_at: int, since: date | None = None) -> list[Ranked]:
        return self.rank_pool(self.members(scope, as_of, known_at), as_of, known_at, since)

    @staticmethod
    def window(as_of: date, period: str | None, basis: str = "total") -> Window:
        """The read date, window start and previous read of a ranking (rules §8)."""
        span = parse_period(period) if period is not None else period_containing("quarter", as_of)
        before = previous_period(span)
        read_on = span.last_day if period is not None else as_of
        if basis == "period":
            return Window(read_on, span.first_day, before.last_day, before.first_day)
        assert basis == "total", basis
        return Window(read_on, None, before.last_day, None)

    @classmethod
    def previous_as_of(cls, as_of: date, period: str | None) -> tuple[date, date]:
        """The read date and the previous date a ranking compares with."""
        window = cls.window(as_of, period)
        return window.as_of, window.previous_as_of

    def rankings(
        self, scope: str, as_of: date, known_at: int, period: str | None = None, basis: str = "total"
    ) -> list[tuple[Ranked, int | None]]:
        """The ranking with each cadre's previous rank (None if not ranked then)."""
        window = self.window(as_of, period, basis)
        previous = {
            entry.cadre_id: entry.rank
            for entry in self.ranking(scope, window.previous_as_of, known_at, window.previous_since)
        }
        return [
            (entry, previous.get(entry.cadre_id))
            for entry in self.ranking(scope, window.as_of, known_at, window.since)
        ]

    @staticmethod
    def bottom(ranked: list[Ranked], count: int) -> list[Ranked]:
        return bottom(ranked, count)

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

        results = cadre.results
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
        checks.append(("veto", not self.vetoed(cadre, as_of.year)))

        standing = rules.standing
        if standing.top_share is None and standing.points_min is None:
            checks.append(("standing", True))
        else:
            since = self.standing_since(as_of, known_at)
            ranked = self.ranking(scope, as_of, known_at, since)
            rank = {entry.cadre_id: entry.rank for entry in ranked}.get(cadre_id)
            ok = False
            if standing.top_share is not None and rank is not None:
                ok = rank <= math.ceil(standing.top_share * len(ranked))
            if standing.points_min is not None:
                ok = ok or cadre.figures(since)[0] >= standing.points_min
            checks.append(("standing", ok))
        return checks

    def eligible(self, cadre_id: str, as_of: date, known_at: int, scope: str = "all") -> bool:
        return all(passed for _name, passed in self.eligibility(cadre_id, as_of, known_at, scope))

    def standing_since(self, as_of: date, known_at: int) -> date | None:
        """The window start the standing check ranks on: None (total), or the first day of the quarter
        containing `as_of` (`period`)."""
        basis = self.policy(as_of, known_at).eligibility.standing.basis
        return period_containing("quarter", as_of).first_day if basis == "period" else None

    def shortlist(self, scope: str, as_of: date, known_at: int) -> list[Ranked]:
        """The eligible members in rank order on the standing's basis (as the standing check ranks)."""
        return [
            entry
            for entry in self.ranking(scope, as_of, known_at, self.standing_since(as_of, known_at))
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

    # Period reads.

    def basis_of(self, view: str, period: str, known_at: int) -> str:
        """The basis the policy in force at the period's last day gives a view (boards, recall,
        escalation)."""
        policy = self.policy(parse_period(period).last_day, known_at)
        basis: str = getattr(policy, view).basis
        return basis

    @staticmethod
    def since_of(span: Period, basis: str) -> date | None:
        return span.first_day if basis == "period" else None

    def recalls(
        self, period: str, scope: str, known_at: int
    ) -> tuple[list[Candidate], list[tuple[Any, ...]]]:
        """Recall candidates (the bottom of each large enough pool) and the open recalls of the scope."""
        span = parse_period(period)
        as_of = span.last_day
        rules = self.policy(as_of, known_at).recall
        since = self.since_of(span, rules.basis)
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
            for entry in bottom(self.rank_pool(pool, as_of, known_at, since), count):
                cadre = by_id[entry.cadre_id]
                candidates.append(
                    Candidate(cadre.cadre_id, cadre.unit_id, entry.rank, len(pool), entry.total)
                )
        opened = [
            (cadre.cadre_id, recall.effective_on, recall.period, recall.reason)
            for cadre in sorted(members, key=lambda cadre: cadre.cadre_id)
            for recall in self.open_recalls(cadre)
        ]
        return candidates, opened

    def boards(self, period: str, scope: str, known_at: int) -> tuple[list[Ranked], list[Ranked]]:
        """Red: the top among the cadres without a veto for the period's year; black: the bottom of the
        rest. Ranks are the pool's ranks."""
        span = parse_period(period)
        as_of = span.last_day
        rules = self.policy(as_of, known_at).boards
        cadres = self.cadres(as_of, known_at)
        ranked = self.ranking(scope, as_of, known_at, self.since_of(span, rules.basis))
        not_vetoed = [entry for entry in ranked if not self.vetoed(cadres[entry.cadre_id], as_of.year)]
        red = top(not_vetoed, rules.red_count)
        on_red = {entry.cadre_id for entry in red}
        black = bottom([entry for entry in ranked if entry.cadre_id not in on_red], rules.black_count)
        return red, black

    def in_bottom(
        self, span: Period, scope: str, known_at: int, count: int, pool_size_min: int, basis: str
    ) -> set[str]:
        """Cadres in the bottom `count` of their pool (pools of at least `pool_size_min`) in a period."""
        found: set[str] = set()
        for pool in self.pools(scope, span.last_day, known_at).values():
            if len(pool) < pool_size_min:
                continue
            ranked = self.rank_pool(pool, span.last_day, known_at, self.since_of(span, basis))
            found |= {entry.cadre_id for entry in bottom(ranked, count)}
        return found

    def escalations(
        self, period: str, scope: str, known_at: int, *, periods_max: int | None = STREAK_MAX
    ) -> list[EscalationModel]:
        """Cadres in the bottom N in the period and the periods just before it, with their ladder step.

        `periods_max` bounds how many periods a streak looks back (None: as far as it goes). The rules
        (bottom count, basis, minimum pool) are those of the asked period's policy.
        """
        span = parse_period(period)
        policy = self.policy(span.last_day, known_at)
        rules = policy.escalation
        ladder = sorted(rules.ladder, key=lambda step: step.step)
        cadres = self.cadres(span.last_day, known_at)
        bottoms: dict[Period, set[str]] = {}

        def in_bottom(current: Period) -> set[str]:
            if current not in bottoms:
                bottoms[current] = self.in_bottom(
                    current, scope, known_at, rules.bottom_count, policy.recall.pool_size_min, rules.basis
                )
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
def _load_policy(body: str) -> Policy:
    """A published policy, loaded once per text (policies are frozen)."""
    return load_policy(body)


@cache
def previous_period(span: Period) -> Period:
    """The period of the same kind that ends the day before `span` begins."""
    before = date.fromordinal(span.first_day.toordinal() - 1)
    return period_containing(span.kind, before)
