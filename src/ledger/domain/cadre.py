"""The cadre aggregate: one event stream per cadre, its state as a fold, and the rules that decide.

`CadreState` is what the ledger knows *now* about a cadre — enough to refuse an event that breaks the
lifecycle rules of SPEC §3 and to compute points that depend on earlier events (the annual merit cap,
same-deed-counts-once, tenure accrued so far). It is a pure fold: `apply(state, event)`. Bitemporal reads
(as of a date, as known at a moment) are not answered from here but from the log and the projections.

`Cadre` is the eventsourcing aggregate: an id (the cadre_id), a version (the length of its stream) and the
state. Its events are `Recorded` envelopes around the msgspec event structs, so that eventsourcing's
repository can rebuild a cadre from its stream and its optimistic concurrency guards each stream.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    REVERSIBLE_TYPES,
    AppraisalRecorded,
    CadreDeparted,
    CadreEvent,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreRegistered,
    CadreTransferred,
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
    type_of,
)
from ledger.domain.points import ZERO

__all__ = [
    "CHANGED_BY",
    "CONTAINERS",
    "KEYS_STREAM",
    "OWN_STREAMS",
    "PANELS_STREAM",
    "POLICY_STREAM",
    "SIGNING_STREAM",
    "UNIT_STREAM_PREFIX",
    "Cadre",
    "CadreState",
    "Recorded",
    "apply",
    "check_lifecycle",
    "check_reversal",
    "copied",
    "own_stream",
    "points_of",
    "register",
    "sharing",
    "stream_named",
    "stream_of",
]

# Events about no cadre live in streams of their own, named by type: rulebooks in `$policy`, API keys in
# `$keys`, checkpoint signing keys in `$signing`. `$` cannot appear in a cadre_id, so the ids never collide.
POLICY_STREAM: Final = "$policy"
KEYS_STREAM: Final = "$keys"
SIGNING_STREAM: Final = "$signing"
# Rating panels in `$panels`; a unit's details and ratings in `$unit:<unit_id>`.
PANELS_STREAM: Final = "$panels"
UNIT_STREAM_PREFIX: Final = "$unit:"
OWN_STREAMS: Final[dict[str, str]] = {
    "policy.published": POLICY_STREAM,
    "key.created": KEYS_STREAM,
    "key.revoked": KEYS_STREAM,
    "signing_key.published": SIGNING_STREAM,
    "signing_key.retired": SIGNING_STREAM,
    "rating.panel_drawn": PANELS_STREAM,
}


@dataclass(slots=True)
class CadreState:
    """The current knowledge about one cadre (every event known so far, reversals applied).

    Lifecycle changes are kept by event id so that a reversal can take exactly that change back.
    """

    cadre_id: str
    name: str
    registered_on: date
    service_started_on: date
    principal: bool
    leadership: bool
    units: dict[uuid.UUID, tuple[date, str]] = field(default_factory=dict)
    grades: dict[uuid.UUID, tuple[date, str]] = field(default_factory=dict)
    left_leadership: set[uuid.UUID] = field(default_factory=set)
    departures: dict[uuid.UUID, date] = field(default_factory=dict)
    accruals: dict[uuid.UUID, date] = field(default_factory=dict)
    merits_by_year: dict[int, Decimal] = field(default_factory=dict)
    deeds: dict[str, Decimal] = field(default_factory=dict)
    merit_deeds: dict[uuid.UUID, str] = field(default_factory=dict)
    appraisal_years: dict[int, uuid.UUID] = field(default_factory=dict)
    evaluations: dict[str, uuid.UUID] = field(default_factory=dict)
    open_recalls: dict[uuid.UUID, date] = field(default_factory=dict)
    completed_recalls: dict[uuid.UUID, tuple[uuid.UUID, date]] = field(default_factory=dict)
    open_investigations: dict[str, uuid.UUID] = field(default_factory=dict)
    investigation_opened_on: dict[uuid.UUID, date] = field(default_factory=dict)
    closed_investigations: dict[uuid.UUID, tuple[str, uuid.UUID]] = field(default_factory=dict)
    reversed: set[uuid.UUID] = field(default_factory=set)

    @property
    def grade(self) -> str:
        return _in_force(self.grades)[1]

    @property
    def grade_since(self) -> date:
        return _in_force(self.grades)[0]

    @property
    def unit_id(self) -> str:
        return _in_force(self.units)[1]

    def grade_on(self, day: date) -> tuple[date, str]:
        """`(grade_since, grade)` in force on `day`."""
        return _in_force(self.grades, day)

    def unit_on(self, day: date) -> str:
        """The unit in force on `day`."""
        return _in_force(self.units, day)[1]

    def oldest_open_recall(self) -> uuid.UUID:
        """The open recall a completion closes: the earliest ordered, ties to the earlier recorded — the
        order in which the read models fold recalls."""
        order = {recall_id: index for index, recall_id in enumerate(self.open_recalls)}
        return min(self.open_recalls, key=lambda recall_id: (self.open_recalls[recall_id], order[recall_id]))

    def grade_starts(self) -> list[date]:
        """The dates from which each grade in force was held (base points count months in each)."""
        return [since for since, _grade in self.grades.values()]

    @property
    def departed_on(self) -> date | None:
        return min(self.departures.values()) if self.departures else None

    @property
    def holds_leadership(self) -> bool:
        return self.leadership and not self.left_leadership

    @property
    def tenure_accrued_through(self) -> date | None:
        return max(self.accruals.values()) if self.accruals else None


def copied(state: CadreState) -> CadreState:
    """A copy of `state` that `apply` can change without changing `state`: every container copied."""
    return sharing(state, CONTAINERS)


# The containers of a state, and those `apply` changes for each event type (a type not named changes
# none; a reversal may change any). `sharing` copies only these, so that a batch decided on copies costs
# what its events change, not the cadres' whole histories. tests/integration/test_writers.py checks the
# table against `apply` for every type.
CONTAINERS: Final = (
    "units",
    "grades",
    "left_leadership",
    "departures",
    "accruals",
    "merits_by_year",
    "deeds",
    "merit_deeds",
    "appraisal_years",
    "evaluations",
    "open_recalls",
    "completed_recalls",
    "open_investigations",
    "investigation_opened_on",
    "closed_investigations",
    "reversed",
)
CHANGED_BY: Final[dict[type[EventBase], tuple[str, ...]]] = {
    EntryReversed: CONTAINERS,
    CadreTransferred: ("units",),
    CadreGradeChanged: ("grades",),
    CadreLeftLeadership: ("left_leadership",),
    CadreDeparted: ("departures",),
    TenureAccrued: ("accruals",),
    MeritAwarded: ("merits_by_year", "deeds", "merit_deeds"),
    AppraisalRecorded: ("appraisal_years",),
    EvaluationRecorded: ("evaluations",),
    RecallOrdered: ("open_recalls",),
    RecallCompleted: ("open_recalls", "completed_recalls"),
    InvestigationOpened: ("open_investigations", "investigation_opened_on"),
    InvestigationClosed: ("open_investigations", "closed_investigations"),
}


def sharing(state: CadreState, copy: tuple[str, ...] = ()) -> CadreState:
    """Another state with the same values whose containers named in `copy` are copies and the others are
    `state`'s own: folding an event into it through `apply` leaves `state` alone as long as `copy` holds
    every container `CHANGED_BY` names for that event's type."""
    # Built without __init__ (it would make sixteen empty containers only to drop them), field by field:
    # this runs for every cadre of every batch, and a loop of getattr/setattr costs three times as much.
    twin: CadreState = object.__new__(CadreState)
    twin.cadre_id = state.cadre_id
    twin.name = state.name
    twin.registered_on = state.registered_on
    twin.service_started_on = state.service_started_on
    twin.principal = state.principal
    twin.leadership = state.leadership
    twin.units = state.units
    twin.grades = state.grades
    twin.left_leadership = state.left_leadership
    twin.departures = state.departures
    twin.accruals = state.accruals
    twin.merits_by_year = state.merits_by_year
    twin.deeds = state.deeds
    twin.merit_deeds = state.merit_deeds
    twin.appraisal_years = state.appraisal_years
    twin.evaluations = state.evaluations
    twin.open_recalls = state.open_recalls
    twin.completed_recalls = state.completed_recalls
    twin.open_investigations = state.open_investigations
    twin.investigation_opened_on = state.investigation_opened_on
    twin.closed_investigations = state.closed_investigations
    twin.reversed = state.reversed
    for name in copy:
        setattr(twin, name, getattr(state, name).copy())
    return twin


def _in_force(changes: dict[uuid.UUID, tuple[date, str]], day: date | None = None) -> tuple[date, str]:
    """The change in force on `day` (or now): the latest date, ties to the later recording.

    A change posted late with an earlier date does not displace a later one.
    """
    best: tuple[tuple[date, int], tuple[date, str]] | None = None
    for order, change in enumerate(changes.values()):
        if day is not None and change[0] > day:
            continue
        if best is None or (change[0], order) >= best[0]:
            best = ((change[0], order), change)
    if best is None:
        # Before every change: the earliest one (the registration) describes the cadre.
        return min(changes.values(), key=lambda change: change[0])
    return best[1]


def stream_of(event: EventBase) -> str:
    """The aggregate (stream) an event belongs to."""
    if isinstance(event, CadreEvent):
        return event.cadre_id
    return stream_named(type_of(event), None, getattr(event, "unit_id", None))


def stream_named(event_type: str, cadre_id: str | None, unit_id: str | None) -> str:
    """The stream of an event of `event_type` about `cadre_id` (or about `unit_id`, for a unit's events)."""
    if cadre_id is not None:
        return cadre_id
    if unit_id is not None and event_type in ("unit.registered", "unit.rated"):
        return UNIT_STREAM_PREFIX + unit_id
    return own_stream(event_type)


def own_stream(event_type: str) -> str:
    """The stream of an event type that is about no cadre (`$policy` for a type it does not know)."""
    return OWN_STREAMS.get(event_type, POLICY_STREAM)


def points_of(event: EventBase) -> Decimal:
    """The points an event counts (zero where the ledger set none)."""
    return event.points if isinstance(event.points, Decimal) else ZERO


def register(event: CadreRegistered) -> CadreState:
    """The state a registration starts."""
    assert isinstance(event.event_id, uuid.UUID), "recorded events carry their id"
    state = CadreState(
        cadre_id=event.cadre_id,
        name=event.name,
        registered_on=event.effective_on,
        service_started_on=event.service_started_on,
        principal=event.principal,
        leadership=event.leadership,
    )
    state.units[event.event_id] = (event.effective_on, event.unit_id)
    state.grades[event.event_id] = (event.grade_since, event.grade)
    return state


def apply(state: CadreState, event: EventBase) -> CadreState:
    """`state` after `event` (a recorded event of this cadre, server fields set)."""
    event_id = event.event_id
    assert isinstance(event_id, uuid.UUID), "recorded events carry their id"
    # The commonest types first (a city's log is four fifths merits): the types are disjoint, so the
    # order of the tests changes nothing but their number.
    if isinstance(event, MeritAwarded):
        points = points_of(event)
        year = event.effective_on.year
        state.merits_by_year[year] = state.merits_by_year.get(year, ZERO) + points
        if event.deed is not None:
            state.deeds[event.deed] = state.deeds.get(event.deed, ZERO) + points
            state.merit_deeds[event_id] = event.deed
    elif isinstance(event, EvaluationRecorded):
        state.evaluations[event.period] = event_id
    elif isinstance(event, TenureAccrued):
        state.accruals[event_id] = event.effective_on
    elif isinstance(event, EntryReversed):
        _undo(state, event)
    elif isinstance(event, CadreTransferred):
        state.units[event_id] = (event.effective_on, event.unit_id)
    elif isinstance(event, CadreGradeChanged):
        state.grades[event_id] = (event.effective_on, event.grade)
    elif isinstance(event, CadreLeftLeadership):
        state.left_leadership.add(event_id)
    elif isinstance(event, CadreDeparted):
        state.departures[event_id] = event.effective_on
    elif isinstance(event, AppraisalRecorded):
        state.appraisal_years[event.year] = event_id
    elif isinstance(event, RecallOrdered):
        state.open_recalls[event_id] = event.effective_on
    elif isinstance(event, RecallCompleted):
        # A completion closes the oldest open recall; which one is kept to reopen it on reversal.
        if state.open_recalls:
            recall_id = state.oldest_open_recall()
            state.completed_recalls[event_id] = (recall_id, state.open_recalls.pop(recall_id))
    elif isinstance(event, InvestigationOpened):
        state.open_investigations[event.reference] = event_id
        state.investigation_opened_on[event_id] = event.effective_on
    elif isinstance(event, InvestigationClosed):
        opened = state.open_investigations.pop(event.reference, None)
        if opened is not None:
            state.closed_investigations[event_id] = (event.reference, opened)
    return state


def _undo(state: CadreState, reversal: EntryReversed) -> None:
    """Take back the effect of the reversal's target on the state: it no longer counts."""
    target = reversal.target_event_id
    state.reversed.add(target)
    state.units.pop(target, None)
    state.grades.pop(target, None)
    state.left_leadership.discard(target)
    state.departures.pop(target, None)
    state.accruals.pop(target, None)
    state.open_recalls.pop(target, None)
    if reversal.target_type == "merit.awarded":
        counted = -points_of(reversal)
        year = (
            reversal.target_effective_on.year
            if isinstance(reversal.target_effective_on, date)
            else reversal.effective_on.year
        )
        state.merits_by_year[year] = state.merits_by_year.get(year, ZERO) - counted
        deed = state.merit_deeds.pop(target, None)
        if deed is not None:
            state.deeds[deed] = state.deeds.get(deed, ZERO) - counted
    for year, appraisal_id in list(state.appraisal_years.items()):
        if appraisal_id == target:
            del state.appraisal_years[year]
    for period, evaluation_id in list(state.evaluations.items()):
        if evaluation_id == target:
            del state.evaluations[period]
    if target in state.completed_recalls:
        recall_id, ordered_on = state.completed_recalls.pop(target)
        state.open_recalls[recall_id] = ordered_on
    for reference, opened in list(state.open_investigations.items()):
        if opened == target:
            del state.open_investigations[reference]
    if target in state.closed_investigations:
        reference, opened = state.closed_investigations.pop(target)
        state.open_investigations[reference] = opened


def check_lifecycle(state: CadreState | None, event: CadreEvent, today: date) -> None:
    """Refuse an event that breaks the lifecycle rules of SPEC §3, naming the field and the rule."""
    if event.effective_on > today:
        raise InvalidInput(
            f"{event.effective_on} is later than today ({today}) in the ledger's time zone",
            field="effective_on",
            rule="effective_on_must_not_be_in_future",
        )
    if isinstance(event, CadreRegistered):
        if state is not None:
            raise InvalidInput(
                f"cadre {event.cadre_id} is already registered",
                field="cadre_id",
                rule="cadre_must_not_be_registered_twice",
            )
        if event.service_started_on > event.effective_on:
            raise InvalidInput(
                "service cannot start after the registration date",
                field="service_started_on",
                rule="service_started_on_must_not_follow_registration",
            )
        if event.grade_since > event.effective_on:
            raise InvalidInput(
                "the grade cannot start after the registration date",
                field="grade_since",
                rule="grade_since_must_not_follow_registration",
            )
        if event.grade_since < event.service_started_on:
            raise InvalidInput(
                "the grade cannot start before service started",
                field="grade_since",
                rule="grade_since_must_not_precede_service",
            )
        if event.principal and not event.leadership:
            raise InvalidInput(
                "a principal leader holds a leadership post",
                field="principal",
                rule="principal_requires_leadership",
            )
        return
    if state is None:
        raise InvalidInput(
            f"cadre {event.cadre_id} is not registered",
            field="cadre_id",
            rule="cadre_must_be_registered",
        )
    if event.effective_on < state.registered_on:
        raise InvalidInput(
            f"{event.effective_on} is before the cadre's registration on {state.registered_on}",
            field="effective_on",
            rule="effective_on_must_not_precede_registration",
        )
    departed_on = state.departed_on
    reverses_departure = isinstance(event, EntryReversed) and event.target_event_id in state.departures
    if departed_on is not None and event.effective_on > departed_on and not reverses_departure:
        raise InvalidInput(
            f"{event.effective_on} is after the cadre departed on {departed_on}",
            field="effective_on",
            rule="effective_on_must_not_follow_departure",
        )
    _check_sequence(state, event)


def _check_sequence(state: CadreState, event: CadreEvent) -> None:
    """Rules that depend on what the cadre's stream already holds."""
    if not isinstance(event, _SEQUENCE_RULED):  # merits, accruals, deductions: one test, not ten
        return
    if isinstance(event, CadreDeparted) and state.departures:
        raise InvalidInput("the cadre has already departed", field="type", rule="cadre_must_not_depart_twice")
    if (
        isinstance(event, CadreTransferred)
        and event.principal
        and (not state.leadership or state.left_leadership)
    ):
        raise InvalidInput(
            "a principal leader holds a leadership post: this cadre holds none",
            field="principal",
            rule="principal_requires_leadership",
        )
    if isinstance(event, CadreTransferred) and event.unit_id == state.unit_on(event.effective_on):
        raise InvalidInput(
            f"the cadre is already in unit {event.unit_id}",
            field="unit_id",
            rule="transfer_must_change_unit",
        )
    if isinstance(event, CadreGradeChanged) and event.grade == state.grade_on(event.effective_on)[1]:
        raise InvalidInput(
            f"the cadre already holds grade {event.grade}",
            field="grade",
            rule="grade_change_must_change_grade",
        )
    if isinstance(event, CadreLeftLeadership) and not state.holds_leadership:
        raise InvalidInput(
            "the cadre holds no leadership post",
            field="type",
            rule="cadre_must_hold_leadership_post",
        )
    if isinstance(event, AppraisalRecorded) and event.year in state.appraisal_years:
        raise InvalidInput(
            f"an appraisal for {event.year} is already recorded; reverse it to correct it",
            field="year",
            rule="appraisal_must_be_recorded_once_per_year",
        )
    if isinstance(event, EvaluationRecorded):
        earlier = state.evaluations.get(event.period)
        if earlier is not None:
            raise InvalidInput(
                f"an evaluation for {event.period} is already recorded (event {earlier}); reverse it "
                "before recording a new one",
                field="period",
                rule="evaluation_already_recorded",
            )
    if isinstance(event, RecallCompleted):
        if not state.open_recalls:
            raise InvalidInput("the cadre has no open recall", field="type", rule="recall_must_be_open")
        ordered_on = state.open_recalls[state.oldest_open_recall()]
        if event.effective_on < ordered_on:
            raise InvalidInput(
                f"the recall it completes was ordered on {ordered_on}; a completion cannot precede it",
                field="effective_on",
                rule="recall_completion_must_not_precede_order",
            )
    if isinstance(event, InvestigationOpened) and event.reference in state.open_investigations:
        raise InvalidInput(
            f"investigation {event.reference} is already open",
            field="reference",
            rule="investigation_must_not_be_open",
        )
    if isinstance(event, InvestigationClosed):
        opened = state.open_investigations.get(event.reference)
        if opened is None:
            raise InvalidInput(
                f"no open investigation {event.reference}",
                field="reference",
                rule="investigation_must_be_open",
            )
        opened_on = state.investigation_opened_on[opened]
        if event.effective_on < opened_on:
            raise InvalidInput(
                f"investigation {event.reference} was opened on {opened_on}; it cannot close before",
                field="effective_on",
                rule="investigation_close_must_not_precede_opening",
            )


# The types `_check_sequence` has a rule for.
_SEQUENCE_RULED: Final = (
    CadreDeparted,
    CadreTransferred,
    CadreGradeChanged,
    CadreLeftLeadership,
    AppraisalRecorded,
    EvaluationRecorded,
    RecallCompleted,
    InvestigationOpened,
    InvestigationClosed,
)


def check_reversal(state: CadreState, event: EntryReversed, target: EventBase | None) -> EventBase:
    """The reversal's target (fetched by the caller), or a refusal naming the rule it breaks."""
    target_id = event.target_event_id
    if target_id in state.reversed:
        raise InvalidInput(
            f"event {target_id} is already reversed",
            field="target_event_id",
            rule="reversal_target_must_not_be_reversed",
        )
    if (
        target is None
        or not isinstance(target, CadreEvent)
        or target.cadre_id != state.cadre_id
        or type_of(target) not in REVERSIBLE_TYPES
    ):
        raise InvalidInput(
            f"event {target_id} is not a reversible event of cadre {state.cadre_id}: only score and "
            "lifecycle events of the same cadre, other than its registration or a reversal, "
            "can be reversed",
            field="target_event_id",
            rule="reversal_target_must_be_reversible",
        )
    if event.effective_on < target.effective_on:
        raise InvalidInput(
            f"the reversal ({event.effective_on}) cannot precede its target ({target.effective_on})",
            field="effective_on",
            rule="reversal_must_not_precede_target",
        )
    return target


class Recorded:
    """An eventsourcing domain event: an event struct at its place in its aggregate's stream."""

    __slots__ = ("event", "originator_id", "originator_version")

    def __init__(self, originator_id: str, originator_version: int, event: EventBase) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.event = event

    def mutate(self, aggregate: Any) -> Any:
        """Evolve `aggregate` (None for a stream's first event) by this event."""
        if aggregate is None:
            if isinstance(self.event, PolicyPublished):
                aggregate = PolicyStream(self.originator_id)
            elif isinstance(self.event, CadreRegistered):
                aggregate = Cadre(self.originator_id, register(self.event))
                aggregate.version = self.originator_version
                return aggregate
            else:
                raise ValueError(f"stream {self.originator_id} does not start with a registration")
        if self.originator_version != aggregate.version + 1:
            raise ValueError(
                f"event {self.originator_version} does not follow version "
                f"{aggregate.version} of {self.originator_id}"
            )
        if isinstance(aggregate, Cadre):
            apply(aggregate.state, self.event)
        aggregate.version = self.originator_version
        return aggregate


class Cadre:
    """The aggregate of one cadre: its id, its stream's version and its state."""

    __slots__ = ("id", "state", "version")

    def __init__(self, cadre_id: str, state: CadreState) -> None:
        self.id = cadre_id
        self.state = state
        self.version = 1

    def collect_events(self) -> list[Recorded]:
        return []


class PolicyStream:
    """The aggregate of the published rulebooks (their versions live in the policy book)."""

    __slots__ = ("id", "version")

    def __init__(self, stream: str) -> None:
        self.id = stream
        self.version = 0

    def collect_events(self) -> list[Recorded]:
        return []
