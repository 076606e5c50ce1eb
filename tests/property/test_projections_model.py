"""Every read model of `Projections` equals a naive replay of the raw log, at any (as_of, known_at).

Method: hypothesis draws a small city — 3 to 8 cadres in 2 or 3 units, registered in the first batch or
later — and batches of postings of every kind (transfers, grade changes, merits, deductions with gates and
appraisal caps, appraisals, evaluations, tenure, recalls ordered and completed, vetoes, investigations,
departures, leaving leadership posts, reversals of earlier entries), each dated anywhere in three years, so
many are late (backdated). They go through `Ledger.post` batch by batch; a batch the ledger refuses is
posted item by item and the refused items are skipped. Two test policies are published with small pools so
recalls, boards and escalations have something to show; the second changes the tie-breakers, the standing
rule and drops the appraisal requirement from mid-2024, and is published somewhere in the middle of the
log, so the policy in force depends on both axes. A projection kept live while posting, a rebuilt one and a
restarted one must all answer every read exactly as `tests/property/naive.py` does from the raw log.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
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
    AWARDS,
    LEVELS,
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
    Scores,
    Source,
    TenureAccrued,
    VetoApplied,
)
from ledger.domain.periods import period_containing
from ledger.policy.load import illustrative_policy_text
from ledger.projections.service import ESCALATION_PERIODS_MAX, Projections
from tests.conftest import TODAY, drop_schema, fixed_clock, require_postgres
from tests.property.naive import CHECK_NAMES, Model

START = date(2023, 1, 1)
DAYS = (TODAY - START).days
UNITS = ("U1", "U2", "U3")
GRADES_USED = ("一级科员", "四级主任科员", "一级主任科员", "四级调研员")
DEDUCTION_KINDS = ("criticism", "admonishment", "party_warning", "demerit", "government_warning")
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


def policy_text(version: str, effective_from: date, replacements: dict[str, str]) -> str:
    """The illustrative policy under another version, with some rules replaced."""
    text = illustrative_policy_text()
    replacements = {
        'version = "illustrative-1"': f'version = "{version}"',
        "effective_from = 2020-01-01": f"effective_from = {effective_from.isoformat()}",
        **replacements,
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


# Small pools, so that a unit of two or three cadres has a recall list, boards and escalations.
FIRST_POLICY = policy_text(
    "test-1",
    date(2020, 1, 1),
    {
        "bottom_count = 3\npool_size_min = 10": "bottom_count = 1\npool_size_min = 2",
        "red_count = 10\nblack_count = 10": "red_count = 2\nblack_count = 2",
        "[escalation]\nbottom_count = 3": "[escalation]\nbottom_count = 1",
    },
)
# From mid-2024: other tie-breakers, a recall share, a points minimum, no appraisal requirement.
SECOND_POLICY = policy_text(
    "test-2",
    SECOND_POLICY_FROM,
    {
        'tie_breakers = ["grade_years", "service_years", "excellent_appraisals"]': (
            'tie_breakers = ["merit_points", "excellent_appraisals"]'
        ),
        "bottom_count = 3\npool_size_min = 10": 'bottom_share = "0.34"\npool_size_min = 3',
        "red_count = 10\nblack_count = 10": "red_count = 3\nblack_count = 1",
        "[escalation]\nbottom_count = 3": "[escalation]\nbottom_count = 1",
        'appraisal_required = "competent"': "",
        'standing = { top_share = "0.30" }': 'standing = { top_share = "0.50", points_min = "3.00" }',
        'default = "2"': 'default = "1"',
    },
)

# Kinds of postings; repeated names are drawn more often.
KINDS = (
    "transfer",
    "transfer",
    "grade",
    "merit",
    "merit",
    "merit",
    "deduction",
    "deduction",
    "appraisal",
    "appraisal",
    "evaluation",
    "tenure",
    "recall",
    "recall_completed",
    "recall_completed",
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

registration_spec = st.tuples(
    st.integers(0, 2),  # unit
    st.integers(0, len(GRADES_USED) - 1),  # grade
    st.booleans(),  # leadership
    st.booleans(),  # principal (when a leader)
    st.integers(0, 400),  # registered on, days after START
    st.integers(0, 25),  # years of service before registration
    st.integers(0, 8),  # years in grade before registration
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


# Reads: days back from LAST_READ and thousandths of the log back from its head (0: now, all known).
reads = st.lists(st.tuples(st.integers(0, DAYS + 90), st.integers(0, 1_000)), min_size=1, max_size=3)
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

    def registration(self, number: int) -> CadreRegistered:
        unit, grade, leadership, principal, day, service_years, grade_years, _batch = self.city.registrations[
            number
        ]
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
                award=AWARDS[choice % len(AWARDS)],  # type: ignore[arg-type]
                level=LEVELS[choice // 7 % len(LEVELS)],  # type: ignore[arg-type]
                deed=f"deed-{choice % 3}" if choice % 4 == 0 else None,
            )
        if kind == "deduction":
            return DeductionApplied(
                **common,
                kind=DEDUCTION_KINDS[choice % len(DEDUCTION_KINDS)],  # type: ignore[arg-type]
                level=LEVELS[choice // 5 % len(LEVELS)],  # type: ignore[arg-type]
            )
        if kind == "appraisal":
            return AppraisalRecorded(
                **common,
                year=on.year - choice % 2,
                result=APPRAISAL_RESULTS[choice // 2 % len(APPRAISAL_RESULTS)],
            )
        if kind == "evaluation":
            scores = Scores(
                self=Decimal(50 + choice % 51),
                section=Decimal(50 + choice // 51 % 51),
                leadership=Decimal(40 + choice // 7 % 61),
            )
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
            return VetoApplied(**common, year=on.year - choice % 2, reason="one-vote veto")
        if kind == "investigation_opened":
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
        if not reversible:
            return None
        target_id, target = reversible[choice % len(reversible)]
        return EntryReversed(
            cadre_id=target.cadre_id,  # type: ignore[attr-defined]
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
            self._remember(events, self.ledger.post(events).results)
        except InvalidInput:
            for event in events:
                try:
                    self._remember([event], self.ledger.post([event]).results)
                except InvalidInput:
                    continue

    def _remember(self, events: list[EventBase], results: list[Any]) -> None:
        self.recorded += [(result.event_id, event) for event, result in zip(events, results, strict=True)]


def comparable(view: Any) -> Any:
    return msgspec.to_builtins(view)


def components(view_components: Any) -> dict[str, Decimal]:
    return msgspec.structs.asdict(view_components)


class Reader:
    """Reads every read model of `projections` and checks each answer against the naive model."""

    def __init__(self, projections: Projections, model: Model) -> None:
        self.projections = projections
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
        """Standings, rankings, eligibility and shortlists at (as_of, known_at); the answers."""
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
        shortlist = projections.shortlist("all", as_of=as_of, known_at=known_at)
        assert [(entry.rank, entry.cadre_id) for entry in shortlist.entries] == [
            (entry.rank, entry.cadre_id) for entry in model.shortlist("all", as_of, known_at)
        ], f"shortlist as of {as_of} known at {known_at}"
        answers.append(comparable(shortlist))
        return answers

    def ranking(self, scope: str, as_of: date, known_at: int, period: str | None = None) -> Any:
        projections, model = self.projections, self.model
        if period is None:
            view = projections.rankings(scope, as_of=as_of, known_at=known_at)
        else:
            view = projections.rankings(scope, period=period, known_at=known_at)
        as_of, previous_as_of = model.previous_as_of(as_of, period)
        position = model.known_position(known_at)
        assert (view.as_of, view.previous_as_of, view.position, view.scope) == (
            as_of,
            previous_as_of,
            position,
            scope,
        )
        cadres = model.cadres(as_of, known_at)
        expected = []
        for entry, previous in model.rankings(scope, as_of, known_at, period):
            cadre = cadres[entry.cadre_id]
            movement = None if previous is None else previous - entry.rank
            expected.append(
                (
                    entry.rank,
                    entry.cadre_id,
                    cadre.unit_id,
                    cadre.grade,
                    cadre.total,
                    cadre.components,
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
        assert got == expected, f"ranking of {scope} as of {as_of} (period {period}) known at {known_at}"
        assert view.next_cursor is None
        return comparable(view)

    def period(self, period: str, known_at: int) -> list[Any]:
        """Rankings, recalls, boards and escalations of a period; the answers."""
        projections, model = self.projections, self.model
        position = model.known_position(known_at)
        answers = [
            self.ranking(scope, date.min, known_at, period) for scope in ("all", f"unit:{model.units[0]}")
        ]
        for scope in ("unit:*", "all", f"unit:{model.units[-1]}"):
            recalls = projections.recalls(period, scope, known_at=known_at)
            candidates, opened = model.recalls(period, scope, known_at)
            assert recalls.position == position
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
            assert [(b.rank, b.cadre_id) for b in boards.red] == [(r.rank, r.cadre_id) for r in red], (
                f"red board of {scope} in {period} known at {known_at}"
            )
            assert [(b.rank, b.cadre_id) for b in boards.black] == [(r.rank, r.cadre_id) for r in black], (
                f"black board of {scope} in {period} known at {known_at}"
            )
            answers.append(comparable(boards))
        for scope in ("unit:*", "all"):
            escalations = projections.escalations(period, scope, known_at=known_at)
            # The projection looks back at most ESCALATION_PERIODS_MAX periods: a longer streak reads as
            # that many (a limit of the implementation, not of SPEC §7; reported for review).
            expected = model.escalations(period, scope, known_at, periods_max=ESCALATION_PERIODS_MAX)
            assert [
                (e.cadre_id, e.unit_id, e.streak, e.step, e.action, e.label) for e in escalations.escalations
            ] == [(e.cadre_id, e.unit_id, e.streak, e.step, e.action, e.label) for e in expected], (
                f"escalations of {scope} in {period} known at {known_at}"
            )
            note(f"highest escalation step: {max((e.step for e in expected), default=0)}")
            answers.append(comparable(escalations))
        return answers

    def everything(self, dated: list[tuple[int, int]], periods: list[tuple[str, int]]) -> list[Any]:
        """Every read at the drawn (as_of, known_at) pairs and periods, checked; the answers."""
        head = self.model.head
        answers = []
        for days_back, known_back in dated:
            answers += self.at(LAST_READ - timedelta(days=days_back), head - round(known_back * head / 1_000))
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
    ):
        note(f"has {name}: {name in types}")


def check_city(url: str, city: City, dated: list[tuple[int, int]], periods: list[tuple[str, int]]) -> None:
    """The whole property on one store: live, rebuilt, restarted and caught up, each against the model."""
    with Ledger.open(url, clock=fixed_clock) as ledger:
        live = build(ledger, city)
        try:
            model = Model(ledger.records(after=0, limit=10**6))
            assert live.position() == model.head
            describe(model)
            answers = Reader(live, model).everything(dated, periods)

            restarted = Projections.open(ledger)
            try:
                assert Reader(restarted, model).everything(dated, periods) == answers, (
                    "a restart changes nothing"
                )
                assert live.rebuild() == model.head
                assert Reader(live, model).everything(dated, periods) == answers, "rebuilt equals live"
                # The restarted process notices the switch to the rebuilt version on its next catch-up.
                assert Reader(restarted, model).everything(dated, periods) == answers

                later_posts(ledger, city)
                model = Model(ledger.records(after=0, limit=10**6))
                assert live.catch_up() == model.head
                caught_up = Reader(live, model).everything(dated, periods)
                assert Reader(restarted, model).everything(dated, periods) == caught_up
            finally:
                restarted.close()
        finally:
            live.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
