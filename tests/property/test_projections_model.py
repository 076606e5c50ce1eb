"""Every read model of `Projections` equals a naive replay of the raw log, at any (as_of, known_at).

Method: hypothesis draws a small city — 3 to 8 cadres in 2 or 3 units, registered in the first batch or
later, most of them on the same day with the same service and grade dates so that tie-breakers tie — and
batches of postings of every kind (transfers, grade changes, merits from a few awards and levels,
deductions with gates and appraisal caps over one or more appraisal years, appraisals, evaluations from a
few scores, tenure, recalls ordered and completed, vetoes for the year of their decision or the year
before, investigations opened and closed, departures, leaving leadership posts, reversals of earlier
entries), each dated anywhere in three years, so many are late (backdated) and a sanction or a veto often
comes before or after the appraisal or award of its year. Points come from small sets, so totals tie
often and "bottom N" / "top N" have ties at the edge. They go through `Ledger.post` batch by batch; a
batch the ledger refuses is posted item by item and the refused items are skipped (a second evaluation of
a cadre and period must be refused with `evaluation_already_recorded`, and only then). Two test policies
are published with small counts (boards of 2, bottom 1–2, pools of at least 3; the first gives a veto
points of its own): the second changes the tie-breakers, the appraisal points (so an appraisal's counted
points come from the policy that recorded it), the sanctions' appraisal years, the vetoes' points and
barred awards, the basis of boards, recalls, escalations and standing, and drops the appraisal
requirement from mid-2024; it is published somewhere in the middle of the log, so the policy in force
depends on both axes. Reads are drawn at random dates and log positions, and at (or the day before) the
date of a veto, sanction, appraisal, award or investigation. A projection kept live while posting, a
rebuilt one and a restarted one must all answer every read — standings, histories (totals and each
entry's counted points), rankings on both bases (with `as_of=` and with `period=`), eligibility,
shortlists (ranked on the standing's basis), recalls, boards and escalations — exactly as
`tests/property/naive.py` does from the raw log; and the server fields the rules add (appraisal years,
barred awards, uncapped appraisal points) are those the policy in force gives.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from ledger import InvalidInput, Ledger, NotFound
from ledger.domain.events import (
    DEDUCTION_KINDS as ALL_DEDUCTION_KINDS,
)
from ledger.domain.events import (
    AppraisalRecorded,
    CadreDeparted,
    CadreEvent,
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
    Scores,
    Source,
    TenureAccrued,
    VetoApplied,
)
from ledger.domain.periods import parse_period, period_containing
from ledger.policy.load import illustrative_policy_text
from ledger.projections.facts import day as day_of
from ledger.projections.service import Projections
from tests.conftest import TODAY, drop_schema, fixed_clock, require_postgres
from tests.property.naive import CHECK_NAMES, COMPONENT_OF_TYPE, Model

START = date(2023, 1, 1)
DAYS = (TODAY - START).days
UNITS = ("U1", "U2", "U3")
GRADES_USED = ("一级科员", "四级主任科员", "一级主任科员", "四级调研员")
# A few awards and levels, so that merit points repeat (citation/unit and performance_award/county are
# both 0.50); vetoes bar some of them (see the policies).
AWARDS_USED = ("citation", "commendation", "performance_award", "honorary_title")
LEVELS_USED = ("county", "unit")
# Sanctions with and without appraisal caps, over one year, two, or their influence period.
DEDUCTION_KINDS = (
    "criticism",
    "admonishment",
    "party_warning",
    "government_warning",
    "demerit",
    "demerit",
    "major_demerit",
    "demotion",
)
SCORES = (Decimal(60), Decimal(80), Decimal(100))
PERIODS = (
    *(f"{year}Q{quarter}" for year in (2023, 2024, 2025) for quarter in (1, 2, 3, 4)),
    "2023",
    "2024",
    "2025",
    "2024-02",
    "2025-06",
    "2025-11",
    "2025-W10",
)
SECOND_POLICY_FROM = date(2024, 7, 1)
LAST_READ = TODAY + timedelta(days=30)
# Appraisal results, the better ones drawn more often (as in life, and so that some cadres are eligible).
APPRAISAL_RESULTS = (
    "excellent",
    "excellent",
    "competent",
    "competent",
    "competent",
    "basically_competent",
    "incompetent",
    "ungraded",
)


# Test policies: the illustrative one, read as data, changed, and written back as TOML.


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(value)


def _toml_table(table: dict[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables:
        name = ".".join(_toml_key(part) for part in (*path, key))
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_toml_table(value, (*path, key))]
        else:
            for item in value:
                lines += ["", f"[[{name}]]", *_toml_table(item, (*path, key))]
    return lines


def policy_text(version: str, effective_from: date, change: Callable[[dict[str, Any]], None]) -> str:
    """The illustrative policy under another version, changed by `change` (which edits the parsed TOML)."""
    data = tomllib.loads(illustrative_policy_text())
    data["version"] = version
    data["effective_from"] = effective_from
    change(data)
    return "\n".join(_toml_table(data)) + "\n"


def _appraisal_years(data: dict[str, Any], modes: dict[str, str]) -> None:
    for kind in ALL_DEDUCTION_KINDS:
        data["deductions"][kind]["appraisal_years"] = modes.get(kind, "year")


def _first_policy(data: dict[str, Any]) -> None:
    """Small counts, so that a unit of three or four cadres has a recall list, boards and escalations."""
    data["recall"].update(bottom_count=2, pool_size_min=3, basis="total")
    data["boards"].update(red_count=2, black_count=2, basis="period")
    data["escalation"].update(bottom_count=2, basis="period")
    data["veto"].update(points="-1.00", barred_awards=["citation", "commendation"])
    data["eligibility"]["standing"] = {"top_share": "0.30", "basis": "total"}
    _appraisal_years(
        data,
        {
            "admonishment": "year_and_next",
            "government_warning": "period",
            "major_demerit": "year_and_next",
            "demotion": "period",
        },
    )


def _second_policy(data: dict[str, Any]) -> None:
    """From mid-2024: other tie-breakers, a recall share, other appraisal points, other bases, a points
    minimum, no appraisal requirement."""
    data["ranking"]["tie_breakers"] = ["merit_points", "excellent_appraisals"]
    del data["recall"]["bottom_count"]
    data["recall"].update(bottom_share="0.34", pool_size_min=3, basis="period")
    data["boards"].update(red_count=2, black_count=3, basis="total")
    data["escalation"].update(bottom_count=1, basis="total")
    data["veto"]["barred_awards"] = ["citation", "honorary_title", "performance_award"]
    data["appraisal"]["points"] = {
        "excellent": "6.00",
        "competent": "3.00",
        "basically_competent": "1.00",
        "incompetent": "-4.00",
        "ungraded": "-1.00",
    }
    del data["eligibility"]["appraisal_required"]
    data["eligibility"]["standing"] = {"top_share": "0.50", "points_min": "3.00", "basis": "period"}
    data["eligibility"]["years_in_grade_min"]["default"] = "1"
    _appraisal_years(
        data,
        {
            "admonishment": "period",
            "party_warning": "year_and_next",
            "demerit": "period",
            "major_demerit": "year",
            "demotion": "year_and_next",
        },
    )


FIRST_POLICY = policy_text("test-1", date(2020, 1, 1), _first_policy)
SECOND_POLICY = policy_text("test-2", SECOND_POLICY_FROM, _second_policy)

# Kinds of postings; repeated names are drawn more often.
KINDS = (
    "transfer",
    "grade",
    "merit",
    "merit",
    "merit",
    "deduction",
    "deduction",
    "appraisal",
    "appraisal",
    "appraisal",
    "evaluation",
    "evaluation",
    "tenure",
    "recall",
    "recall_completed",
    "veto",
    "veto",
    "investigation_opened",
    "investigation_closed",
    "investigation_closed",
    "reverse",
    "reverse",
    "reverse",
    "departure",
    "left_leadership",
)
# How a cadre's dates are drawn: most share one profile (same registration, service and grade dates, so
# every tie-breaker but the excellent count ties), some another shared one, some their own.
PROFILES = (0, 0, 0, 1, 2)

registration_spec = st.tuples(
    st.integers(0, 2),  # unit
    st.integers(0, len(GRADES_USED) - 1),  # grade
    st.booleans(),  # leadership
    st.booleans(),  # principal (when a leader)
    st.integers(0, 400),  # registered on, days after START (profile 2)
    st.integers(0, 25),  # years of service before registration (profile 2)
    st.integers(0, 8),  # years in grade before registration (profile 2)
    st.sampled_from(PROFILES),  # profile
    st.sampled_from((0, 0, 0, 1, 2)),  # batch it is posted with: most in the first
)
operation = st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, DAYS), st.integers(0, 10_000))


@dataclass(frozen=True)
class City:
    """What hypothesis drew: the cadres, batches of postings, when the second policy is published."""

    unit_count: int
    registrations: list[tuple[int, ...]]
    batches: list[list[tuple[Any, ...]]]
    second_policy_after: int
    later: list[tuple[Any, ...]]


@st.composite
def cities(draw: st.DrawFn, batches_max: int = 6) -> City:
    return City(
        unit_count=draw(st.integers(2, 3)),
        registrations=draw(st.lists(registration_spec, min_size=3, max_size=8)),
        batches=draw(
            st.lists(st.lists(operation, min_size=2, max_size=10), min_size=2, max_size=batches_max)
        ),
        second_policy_after=draw(st.integers(0, batches_max)),
        later=draw(st.lists(operation, min_size=1, max_size=6)),
    )


# Reads: days back from LAST_READ and thousandths of the log back from its head (0: now, all known); or
# (an anchor) the date of a veto, sanction, appraisal, award or investigation, or the day before it, as
# known now or as drawn — where a rule of issue 9 changes what the read sees.
reads = st.lists(
    st.tuples(st.integers(0, DAYS + 90), st.integers(0, 1_000), st.one_of(st.none(), st.integers(0, 10**6))),
    min_size=1,
    max_size=3,
)
ANCHOR_TYPES = (VetoApplied, DeductionApplied, AppraisalRecorded, MeritAwarded, InvestigationOpened)
period_reads = st.lists(st.tuples(st.sampled_from(PERIODS), st.integers(0, 1_000)), min_size=1, max_size=3)


class Poster:
    """Builds events from drawn operations and posts them, remembering what may be reversed."""

    def __init__(self, ledger: Ledger, city: City) -> None:
        self.ledger = ledger
        self.city = city
        self.keys = iter(range(1, 10**9))
        self.cadre_count = len(city.registrations)
        self.recorded: list[tuple[uuid.UUID, EventBase]] = []

        # Events built for the batch being assembled, not yet posted.
        self.pending: list[EventBase] = []

    def recorded_of(self, *types: type[EventBase]) -> list[Any]:
        """Recorded or pending events of some types."""
        events = [event for _event_id, event in self.recorded] + self.pending
        return [event for event in events if isinstance(event, types)]

    def source(self) -> Source:
        return Source(system="prop", key=str(next(self.keys)))

    def on_or_after_registration(self, cadre_id: str, day: date) -> date:
        """`day`, or the cadre's registration date if it is later (so that aimed postings are accepted)."""
        registered: list[date] = [
            e.effective_on for e in self.recorded_of(CadreRegistered) if e.cadre_id == cadre_id
        ]
        return max([day, *registered])

    def registration(self, number: int) -> CadreRegistered:
        unit, grade, leadership, principal, day, service_years, grade_years, profile, _batch = (
            self.city.registrations[number]
        )
        if profile == 0:
            on, service_started_on, grade_since = START, date(2013, 3, 1), date(2021, 5, 31)
        elif profile == 1:
            on, service_started_on, grade_since = (
                START + timedelta(days=90),
                date(2005, 7, 1),
                date(2019, 1, 1),
            )
        else:
            on = START + timedelta(days=day)
            service_started_on = on - timedelta(days=365 * service_years + 17 * number)
            grade_since = max(service_started_on, on - timedelta(days=365 * grade_years + 40 * number))
        return CadreRegistered(
            cadre_id=f"C{number + 1}",
            effective_on=on,
            source=self.source(),
            name=f"干部{number + 1}",
            unit_id=UNITS[unit % self.city.unit_count],
            grade=GRADES_USED[grade],  # type: ignore[arg-type]
            leadership=leadership,
            principal=leadership and principal,
            service_started_on=service_started_on,
            grade_since=grade_since,
        )

    def _event(self, op: tuple[Any, ...]) -> EventBase | None:
        kind, cadre, day, choice = op
        on = START + timedelta(days=day)
        common: dict[str, Any] = {
            "cadre_id": f"C{cadre % self.cadre_count + 1}",
            "effective_on": on,
            "source": self.source(),
        }
        quarter = period_containing("quarter", on).name
        if kind == "transfer":
            return CadreTransferred(**common, unit_id=UNITS[choice % self.city.unit_count])
        if kind == "grade":
            return CadreGradeChanged(**common, grade=GRADES_USED[choice % len(GRADES_USED)])  # type: ignore[arg-type]
        if kind == "merit":
            return MeritAwarded(
                **common,
                award=AWARDS_USED[choice % len(AWARDS_USED)],  # type: ignore[arg-type]
                level=LEVELS_USED[choice // 7 % len(LEVELS_USED)],  # type: ignore[arg-type]
                deed=f"deed-{choice % 3}" if choice % 5 == 0 else None,
            )
        if kind == "deduction":
            # Often a sanction of a cadre with an appraisal, dated in its year or the year before.
            appraisals = self.recorded_of(AppraisalRecorded)
            if appraisals and choice % 3:
                appraisal = appraisals[choice % len(appraisals)]
                common["cadre_id"] = appraisal.cadre_id
                common["effective_on"] = self.on_or_after_registration(
                    appraisal.cadre_id, _day_in(appraisal.year - choice % 2, choice)
                )
            return DeductionApplied(
                **common,
                kind=DEDUCTION_KINDS[choice % len(DEDUCTION_KINDS)],  # type: ignore[arg-type]
                level="unit",
            )
        if kind == "appraisal":
            # Sometimes the appraisal of a sanctioned cadre, for the year of the sanction or the next.
            deductions = self.recorded_of(DeductionApplied)
            year = on.year - choice % 2
            if deductions and choice % 3 == 0:
                deduction = deductions[choice % len(deductions)]
                common["cadre_id"], year = deduction.cadre_id, deduction.effective_on.year + choice % 2
                common["effective_on"] = self.on_or_after_registration(
                    deduction.cadre_id, _day_in(year + choice // 3 % 2, choice)
                )
            return AppraisalRecorded(
                **common,
                year=year,
                result=APPRAISAL_RESULTS[choice // 2 % len(APPRAISAL_RESULTS)],
            )
        if kind == "evaluation":
            scores = Scores(
                self=SCORES[choice % 3], section=SCORES[choice // 3 % 3], leadership=SCORES[choice // 9 % 3]
            )
            # Mostly the quarter of its date; sometimes a quarter already evaluated (refused unless the
            # earlier one was reversed).
            evaluations = self.recorded_of(EvaluationRecorded)
            if evaluations and choice % 3 == 0:
                earlier = evaluations[choice % len(evaluations)]
                common["cadre_id"], quarter = earlier.cadre_id, earlier.period
                common["effective_on"] = max(on, earlier.effective_on)
            return EvaluationRecorded(**common, period=quarter, scores=scores)
        if kind == "tenure":
            return TenureAccrued(**common, period=quarter)
        if kind == "recall":
            return RecallOrdered(**common, period=quarter, reason=f"bottom of {quarter}")
        if kind == "recall_completed":
            # Mostly complete a recall ordered earlier, on or after its date; sometimes anything.
            orders = self.recorded_of(RecallOrdered)
            if orders and choice % 4:
                order = orders[choice % len(orders)]
                common["cadre_id"], common["effective_on"] = order.cadre_id, max(on, order.effective_on)
            return RecallCompleted(**common, outcome="passed" if choice % 2 else "failed")
        if kind == "veto":
            # For the year of its decision, or (decided early in the next year) for the year before; often
            # of a cadre with an award, for the award's year.
            year = on.year - choice % 2
            merits = self.recorded_of(MeritAwarded)
            if merits and choice % 3:
                merit = merits[choice % len(merits)]
                common["cadre_id"], year = merit.cadre_id, merit.effective_on.year
                on = _day_in(year + choice % 2, choice)
            if choice % 2:
                on = date(on.year, 1, 1) + timedelta(days=choice % 90)
            common["effective_on"] = self.on_or_after_registration(common["cadre_id"], min(on, TODAY))
            return VetoApplied(**common, year=year, reason="one-vote veto")
        if kind == "investigation_opened":
            # Sometimes of an appraised cadre, opened in the appraisal's year.
            appraisals = self.recorded_of(AppraisalRecorded)
            if appraisals and choice % 3 == 0:
                appraisal = appraisals[choice % len(appraisals)]
                common["cadre_id"] = appraisal.cadre_id
                common["effective_on"] = self.on_or_after_registration(
                    appraisal.cadre_id, _day_in(appraisal.year, choice)
                )
            return InvestigationOpened(**common, reference=f"R{choice % 2}")
        if kind == "investigation_closed":
            reference = f"R{choice % 2}"
            opened = self.recorded_of(InvestigationOpened)
            if opened and choice % 4:
                opening = opened[choice % len(opened)]
                common["cadre_id"], reference = opening.cadre_id, opening.reference
                common["effective_on"] = max(on, opening.effective_on)
            return InvestigationClosed(**common, reference=reference)
        if kind == "departure":
            return CadreDeparted(**common, reason="retired")
        if kind == "left_leadership":
            return CadreLeftLeadership(**common)
        assert kind == "reverse"
        reversible = [
            (event_id, event)
            for event_id, event in self.recorded
            if not isinstance(event, CadreRegistered | EntryReversed | PolicyPublished)
        ]
        # Half the time a veto, a sanction, an appraisal, an evaluation or an investigation.
        chosen = [
            entry
            for entry in reversible
            if isinstance(
                entry[1],
                VetoApplied | DeductionApplied | AppraisalRecorded | EvaluationRecorded | InvestigationOpened,
            )
        ]
        if not chosen or choice % 2:
            chosen = reversible
        if not chosen:
            return None
        target_id, target = chosen[choice // 2 % len(chosen)]
        assert isinstance(target, CadreEvent)
        return EntryReversed(
            cadre_id=target.cadre_id,
            effective_on=max(on, target.effective_on),
            source=common["source"],
            target_event_id=target_id,
            reason="review",
        )

    def event(self, op: tuple[Any, ...]) -> EventBase | None:
        built = self._event(op)
        if built is not None:
            self.pending.append(built)
        return built

    def post(self, events: list[EventBase]) -> None:
        """Post a batch; if the ledger refuses it, post its items one by one and skip the refused ones."""
        self.pending = []
        if not events:
            return
        try:
            results = self.ledger.post(events).results
        except InvalidInput:
            pass
        else:
            for event, result in zip(events, results, strict=True):
                self._check_evaluation(event, refused=None)
                self._remember([event], [result])
            return
        for event in events:
            try:
                posted = self.ledger.post([event]).results
            except InvalidInput as error:
                self._check_evaluation(event, refused=error.rule, error=error)
                continue
            self._check_evaluation(event, refused=None)
            self._remember([event], posted)

    def _check_evaluation(
        self, event: EventBase, refused: str | None, error: InvalidInput | None = None
    ) -> None:
        """Rules §6: an evaluation is refused as a second one exactly when the cadre has an unreversed
        evaluation of the same period."""
        if not isinstance(event, EvaluationRecorded):
            return
        reversed_ids = {e.target_event_id for _id, e in self.recorded if isinstance(e, EntryReversed)}
        name = parse_period(event.period).name
        earlier = [
            event_id
            for event_id, other in self.recorded
            if isinstance(other, EvaluationRecorded)
            and other.cadre_id == event.cadre_id
            and parse_period(other.period).name == name
            and event_id not in reversed_ids
        ]
        if refused is None:
            assert not earlier, f"a second evaluation of {event.cadre_id} for {name} was accepted"
        elif refused == "evaluation_already_recorded":
            assert earlier, f"an evaluation of {event.cadre_id} for {name} was refused as a second one"
            assert error is not None and error.field == "period", error
            assert any(str(event_id) in str(error) for event_id in earlier), f"{error} names the earlier one"
        else:
            note(f"evaluation refused: {refused}")
        note(f"a second evaluation refused: {refused == 'evaluation_already_recorded'}")

    def _remember(self, events: list[EventBase], results: list[Any]) -> None:
        self.recorded += [(result.event_id, event) for event, result in zip(events, results, strict=True)]


def _day_in(year: int, choice: int) -> date:
    """A day of `year` picked by `choice`, never after today."""
    return min(date(year, 1 + choice % 12, 1 + choice // 12 % 28), TODAY)


def comparable(view: Any) -> Any:
    return msgspec.to_builtins(view)


def components(view_components: Any) -> dict[str, Decimal]:
    return msgspec.structs.asdict(view_components)


class Reader:
    """Reads every read model of `projections` and checks each answer against the naive model."""

    def __init__(self, projections: Projections, ledger: Ledger, model: Model) -> None:
        self.projections = projections
        self.ledger = ledger
        self.model = model
        grades = sorted(
            {e.grade for _p, e in model.records if isinstance(e, CadreRegistered | CadreGradeChanged)}
        )
        self.scopes = [
            "all",
            *(f"unit:{unit_id}" for unit_id in model.units),
            *(f"grade:{grade}" for grade in grades),
            "cohort:principal",
            "cohort:left_leadership",
        ]

    def at(self, as_of: date, known_at: int) -> list[Any]:
        """Standings, histories, rankings, eligibility and shortlists at (as_of, known_at); the answers."""
        projections, model = self.projections, self.model
        position = model.known_position(known_at)
        answers: list[Any] = []
        cadres = model.cadres(as_of, known_at)
        for cadre_id in model.cadre_ids:
            if cadre_id not in cadres:
                with pytest.raises(NotFound):
                    projections.cadre(cadre_id, as_of=as_of, known_at=known_at)
                with pytest.raises(NotFound):
                    projections.eligibility(cadre_id, as_of=as_of, known_at=known_at)
                continue
            expected = cadres[cadre_id]
            view = projections.cadre(cadre_id, as_of=as_of, known_at=known_at)
            assert (view.position, view.known_at, view.as_of) == (position, position, as_of)
            assert (
                view.name,
                view.unit_id,
                view.grade,
                view.status,
                view.leadership,
                view.principal,
                view.left_leadership,
                view.registered_on,
                view.departed_on,
                view.total,
                components(view.components),
            ) == (
                expected.name,
                expected.unit_id,
                expected.grade,
                expected.status,
                expected.leadership,
                expected.principal,
                expected.left_leadership,
                expected.registered_on,
                expected.departed_on,
                expected.total,
                expected.components,
            ), f"{cadre_id} as of {as_of} known at {known_at}"
            answers.append(comparable(view))
            self.history(cadre_id, as_of, known_at)
            for scope in ("all", f"unit:{expected.unit_id}"):
                eligibility = projections.eligibility(cadre_id, as_of=as_of, known_at=known_at, scope=scope)
                checks = model.eligibility(cadre_id, as_of, known_at, scope)
                assert [(check.check, check.passed) for check in eligibility.checks] == checks, (
                    f"eligibility of {cadre_id} in {scope} as of {as_of} known at {known_at}"
                )
                assert eligibility.eligible == all(passed for _name, passed in checks)
                note(f"eligible: {eligibility.eligible}")
                assert {check.check for check in eligibility.checks} <= set(CHECK_NAMES)
                answers.append(comparable(eligibility))
        for scope in self.scopes:
            answers.append(self.ranking(scope, as_of, known_at))
        for scope in ("all", f"unit:{model.units[0]}"):
            answers.append(self.ranking(scope, as_of, known_at, basis="period"))
        shortlist = projections.shortlist("all", as_of=as_of, known_at=known_at)
        assert [(entry.rank, entry.cadre_id, entry.total) for entry in shortlist.entries] == [
            (entry.rank, entry.cadre_id, entry.total) for entry in model.shortlist("all", as_of, known_at)
        ], f"shortlist as of {as_of} known at {known_at}"
        answers.append(comparable(shortlist))
        return answers

    def history(self, cadre_id: str, as_of: date, known_at: int) -> None:
        """The history's total and each entry's counted points (a reversal cancels its target's)."""
        total, counted = self.model.history(cadre_id, as_of, known_at)
        page = self.ledger.history(cadre_id, as_of=as_of, known_at=known_at)
        where = f"history of {cadre_id} as of {as_of} known at {known_at}"
        assert page.total == total, where
        assert page.entries and page.entries[-1].running_total == total, where
        by_id = {entry.event_id: entry for entry in page.entries}
        running = Decimal("0.00")
        for entry in page.entries:
            running += entry.counted_points
            assert entry.running_total == running, where
            if entry.counted_points != entry.points:
                assert entry.adjustment, f"{where}: {entry.type} counts {entry.counted_points} unexplained"
            if entry.reverses is not None:
                target = by_id[entry.reverses]
                assert entry.counted_points == -target.counted_points, f"{where}: a reversal cancels"
            elif entry.reversed_by is None or entry.reversed_by not in by_id:
                _position, event = self.model.by_id[entry.event_id]
                want = counted[entry.event_id] if type(event) in COMPONENT_OF_TYPE else Decimal("0.00")
                assert entry.counted_points == want, f"{where}: {entry.type} {event}"
                note(f"history adjustment: {entry.adjustment is not None}")

    def ranking(
        self, scope: str, as_of: date, known_at: int, period: str | None = None, basis: str = "total"
    ) -> Any:
        projections, model = self.projections, self.model
        if period is None:
            view = projections.rankings(scope, as_of=as_of, known_at=known_at, basis=basis)
        else:
            view = projections.rankings(scope, period=period, known_at=known_at, basis=basis)
        window = model.window(as_of, period, basis)
        position = model.known_position(known_at)
        assert (view.as_of, view.previous_as_of, view.position, view.scope, view.basis, view.since) == (
            window.as_of,
            window.previous_as_of,
            position,
            scope,
            basis,
            window.since,
        )
        cadres = model.cadres(window.as_of, known_at)
        expected = []
        for entry, previous in model.rankings(scope, as_of, known_at, period, basis):
            cadre = cadres[entry.cadre_id]
            movement = None if previous is None else previous - entry.rank
            expected.append(
                (
                    entry.rank,
                    entry.cadre_id,
                    cadre.unit_id,
                    cadre.grade,
                    entry.total,
                    entry.components,
                    previous,
                    movement,
                )
            )
        got = [
            (
                e.rank,
                e.cadre_id,
                e.unit_id,
                e.grade,
                e.total,
                components(e.components),
                e.previous_rank,
                e.movement,
            )
            for e in view.entries
        ]
        assert got == expected, (
            f"ranking of {scope} as of {as_of} (period {period}, basis {basis}) known at {known_at}"
        )
        note(f"ranking has a shared rank: {len({row[0] for row in got}) < len(got)}")
        assert view.next_cursor is None
        return comparable(view)

    def period(self, period: str, known_at: int) -> list[Any]:
        """Rankings, recalls, boards and escalations of a period; the answers."""
        projections, model = self.projections, self.model
        position = model.known_position(known_at)
        answers = [
            self.ranking(scope, date.min, known_at, period, basis)
            for scope in ("all", f"unit:{model.units[0]}")
            for basis in ("total", "period")
        ]
        for scope in ("unit:*", "all", f"unit:{model.units[-1]}"):
            recalls = projections.recalls(period, scope, known_at=known_at)
            candidates, opened = model.recalls(period, scope, known_at)
            assert (recalls.position, recalls.basis) == (position, model.basis_of("recall", period, known_at))
            got = {c.cadre_id: (c.unit_id, c.rank, c.pool_size, c.total) for c in recalls.candidates}
            assert got == {c.cadre_id: (c.unit_id, c.rank, c.pool_size, c.total) for c in candidates}, (
                f"recall candidates of {scope} in {period} known at {known_at}"
            )
            assert len(got) == len(recalls.candidates), "a cadre is listed once"
            for one, two in zip(recalls.candidates, recalls.candidates[1:], strict=False):
                if scope != "unit:*" or one.unit_id == two.unit_id:
                    assert (one.rank, one.cadre_id) < (two.rank, two.cadre_id), (
                        "a pool is listed in rank order"
                    )
            assert [(r.cadre_id, r.ordered_on, r.period, r.reason) for r in recalls.open_recalls] == opened, (
                f"open recalls of {scope} in {period} known at {known_at}"
            )
            note(f"recall candidates: {bool(candidates)}, open recalls: {bool(opened)}")
            answers.append(comparable(recalls))
        for scope in ("all", f"unit:{model.units[0]}"):
            boards = projections.boards(period, scope, known_at=known_at)
            red, black = model.boards(period, scope, known_at)
            assert boards.basis == model.basis_of("boards", period, known_at)
            assert [(b.rank, b.cadre_id, b.total) for b in boards.red] == [
                (r.rank, r.cadre_id, r.total) for r in red
            ], f"red board of {scope} in {period} known at {known_at}"
            assert [(b.rank, b.cadre_id, b.total) for b in boards.black] == [
                (r.rank, r.cadre_id, r.total) for r in black
            ], f"black board of {scope} in {period} known at {known_at}"
            note(f"boards list more than their count: {len(red) > 2 or len(black) > 3}")
            answers.append(comparable(boards))
        for scope in ("unit:*", "all"):
            escalations = projections.escalations(period, scope, known_at=known_at)
            expected = model.escalations(period, scope, known_at)
            assert escalations.basis == model.basis_of("escalation", period, known_at)
            assert [
                (e.cadre_id, e.unit_id, e.streak, e.step, e.action, e.label) for e in escalations.escalations
            ] == [(e.cadre_id, e.unit_id, e.streak, e.step, e.action, e.label) for e in expected], (
                f"escalations of {scope} in {period} known at {known_at}"
            )
            note(f"highest escalation step: {max((e.step for e in expected), default=0)}")
            answers.append(comparable(escalations))
        self.windows(period, known_at)
        return answers

    def windows(self, period: str, known_at: int) -> None:
        """The sums of several windows computed in one pass (`Index.snapshots`, what an escalation reads)
        are each window's own: the twelve periods back from `period` on both bases, and windows that
        overlap them (a half year, from the start of the record), sharing edges with them."""
        projections, model = self.projections, self.model
        spans = [parse_period(period)]
        for _ in range(11):
            with contextlib.suppress(ValueError):
                spans.append(spans[-1].previous())
        windows: list[tuple[date, date | None]] = [(span.last_day, None) for span in spans]
        windows += [(span.last_day, span.first_day) for span in spans]
        windows += [
            (spans[0].last_day, spans[-1].first_day),
            (spans[1 % len(spans)].last_day, date(2000, 1, 1)),
        ]
        index = projections.index
        snapshots = index.snapshots(
            [(day_of(as_of), None if since is None else day_of(since)) for as_of, since in windows], known_at
        )
        for (as_of, since), snapshot in zip(windows, snapshots, strict=True):
            for cadre_id, cadre in model.cadres(as_of, known_at).items():
                code = index.cadre_codes[cadre_id]
                total, by_component = cadre.figures(since)
                got = [Decimal(int(cents)) / 100 for cents in snapshot.components[code]]
                assert (Decimal(int(snapshot.totals[code])) / 100, got) == (
                    total,
                    list(by_component.values()),
                ), f"{cadre_id} in the window {since}..{as_of} known at {known_at}"

    def everything(
        self, dated: list[tuple[int, int, int | None]], periods: list[tuple[str, int]]
    ) -> list[Any]:
        """Every read at the drawn (as_of, known_at) pairs and periods, checked; the answers."""
        head = self.model.head
        anchors = [event for _position, event in self.model.records if isinstance(event, ANCHOR_TYPES)]
        answers = []
        for days_back, known_back, anchor in dated:
            as_of = LAST_READ - timedelta(days=days_back)
            known_at = head - round(known_back * head / 1_000)
            if anchor is not None and anchors:
                as_of = anchors[anchor % len(anchors)].effective_on - timedelta(days=anchor // 7 % 2)
                known_at = head if anchor // 14 % 2 else known_at
            answers += self.at(as_of, known_at)
        for period, known_back in periods:
            answers += self.period(period, head - round(known_back * head / 1_000))
        return answers


def build(ledger: Ledger, city: City) -> Projections:
    """Post the city batch by batch into `ledger`, keeping a projection live; the live projection."""
    ledger.publish_policy(FIRST_POLICY, effective_on=date(2020, 1, 1))
    poster = Poster(ledger, city)
    live: Projections | None = None
    for number, batch in enumerate(city.batches):
        registrations = [
            poster.registration(index)
            for index, spec in enumerate(city.registrations)
            if min(spec[-1], len(city.batches) - 1) == number
        ]
        poster.post([*registrations, *(event for op in batch if (event := poster.event(op)) is not None)])
        if number == city.second_policy_after:
            ledger.publish_policy(SECOND_POLICY, effective_on=SECOND_POLICY_FROM)
        if live is None:
            live = Projections.open(ledger)
        else:
            live.catch_up()
    assert live is not None
    return live


def later_posts(ledger: Ledger, city: City) -> None:
    """Post the drawn later operations, after the projections have answered once."""
    poster = Poster(ledger, city)
    poster.keys = iter(range(10**6, 10**9))
    records = ledger.records(after=0, limit=10**6)
    poster.recorded = [(event.event_id, event) for _position, event in records]  # type: ignore[misc]
    poster.post([event for op in city.later if (event := poster.event(op)) is not None])


def describe(model: Model) -> None:
    """Tell hypothesis's statistics what the drawn logs hold (run with --hypothesis-show-statistics)."""
    types = [type(event).__name__ for _position, event in model.records]
    note(f"events recorded: {len(types) // 10 * 10}+")
    for name in (
        "EntryReversed",
        "CadreDeparted",
        "CadreTransferred",
        "RecallCompleted",
        "InvestigationClosed",
        "VetoApplied",
        "EvaluationRecorded",
    ):
        note(f"has {name}: {name in types}")
    cadres = model.cadres(TODAY, model.head)
    note(f"an appraisal counts another result: {any(_recounted(cadre) for cadre in cadres.values())}")
    note(f"a veto zeroes an award: {any(_zeroed(cadre) for cadre in cadres.values())}")
    versions = {
        str(event.policy_version)
        for cadre in cadres.values()
        for _position, event in cadre.in_force
        if isinstance(event, AppraisalRecorded) and cadre.results[event.year] != event.result
    }
    note(f"appraisals recounted under policies: {sorted(versions)}")


def _recounted(cadre: Any) -> bool:
    return any(
        isinstance(event, AppraisalRecorded) and cadre.results[event.year] != event.result
        for _position, event in cadre.in_force
    )


def _zeroed(cadre: Any) -> bool:
    return any(
        isinstance(event, MeritAwarded) and cadre.counted[event.event_id] != event.points
        for _position, event in cadre.in_force
    )


def check_city(
    url: str, city: City, dated: list[tuple[int, int, int | None]], periods: list[tuple[str, int]]
) -> None:
    """The whole property on one store: live, rebuilt, restarted and caught up, each against the model."""
    with Ledger.open(url, clock=fixed_clock) as ledger:
        live = build(ledger, city)
        try:
            model = Model(ledger.records(after=0, limit=10**6))
            assert live.position() == model.head
            assert model.server_field_findings() == [], "the ledger records the server fields of the rules"
            describe(model)
            answers = Reader(live, ledger, model).everything(dated, periods)

            restarted = Projections.open(ledger)
            try:
                assert Reader(restarted, ledger, model).everything(dated, periods) == answers, (
                    "a restart changes nothing"
                )
                assert live.rebuild() == model.head
                assert Reader(live, ledger, model).everything(dated, periods) == answers, (
                    "rebuilt equals live"
                )
                # The restarted process notices the switch to the rebuilt version on its next catch-up.
                assert Reader(restarted, ledger, model).everything(dated, periods) == answers

                later_posts(ledger, city)
                model = Model(ledger.records(after=0, limit=10**6))
                assert live.catch_up() == model.head
                caught_up = Reader(live, ledger, model).everything(dated, periods)
                assert Reader(restarted, ledger, model).everything(dated, periods) == caught_up
            finally:
                restarted.close()
        finally:
            live.close()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(city=cities(), dated=reads, periods=period_reads)
def test_every_read_model_equals_a_naive_replay_of_the_log(city, dated, periods) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_city(f"sqlite:///{Path(folder) / 'ledger.db'}", city, dated, periods)


@pytest.fixture(scope="module")
def postgres_base() -> str:
    return require_postgres()


@contextlib.contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}schema={schema}"
    finally:
        drop_schema(base, schema)


@pytest.mark.postgres
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(city=cities(batches_max=4), dated=reads, periods=period_reads)
def test_every_read_model_equals_a_naive_replay_of_the_log_on_postgresql(
    postgres_base, city, dated, periods
) -> None:
    with fresh_schema(postgres_base) as url:
        check_city(url, city, dated, periods)
