"""The synthetic city: deterministic, the right size, and every event acceptable to the ledger.

The ledger is not needed: `Replay` checks the rules it enforces (registration before everything, nothing
after a departure or after today, unique sources, reversals of earlier awards and deductions of the same
cadre, at most once) while it walks the batches in posting order, and `FakeLedger` stands in for
`run_demo`.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ledger.demo import BATCH_LIMIT, SCALES, DemoBatch, generate_city, run_demo
from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    GRADES,
    LEVELS,
    SERVER_FIELDS,
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
    Event,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    RatingPanelDrawn,
    RecallCompleted,
    RecallOrdered,
    Source,
    UnitEvent,
    UnitRated,
    UnitRegistered,
    type_of,
)
from ledger.domain.periods import parse_period
from ledger.results import PostedItem, PostResult

TODAY = date(2025, 6, 30)
# (seed, today): a quarter's end, a leap day in mid-month, and a window clipped by the policy's start.
CASES = [(7, TODAY), (11, date(2024, 2, 29)), (3, date(2021, 5, 10))]


def small(seed: int = 7, today: date = TODAY) -> list[DemoBatch]:
    return list(generate_city(seed=seed, scale="small", today=today))


def encoded(batches: list[DemoBatch]) -> list[bytes]:
    return [
        msgspec.json.encode([batch.events, batch.reversals, batch.remember, batch.accrue])
        for batch in batches
    ]


def events_of(batches: list[DemoBatch]) -> list[EventBase]:
    return [event for batch in batches for event in batch.events]


class Replay:
    """Walks the batches as the ledger would see them and fails on the first broken rule."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.registered: dict[str, date] = {}
        self.departed: dict[str, date] = {}
        self.latest: dict[str, date] = {}  # the latest effective date posted per cadre
        self.sources: set[tuple[str, str]] = set()
        self.posted: dict[str, CadreEvent] = {}  # source key -> event, for reversal targets
        self.reversed: set[str] = set()
        self.accrued: list[str] = []
        self.late = 0
        self.state: dict[str, dict[str, object]] = {}
        self.appraised: set[tuple[str, int]] = set()
        self.references: set[str] = set()
        self.units: dict[str, UnitRegistered] = {}
        self.panels: dict[str, RatingPanelDrawn] = {}
        self.ratings: list[UnitRated] = []
        self.rated: set[tuple[str, str, str]] = set()

    def run(self, batches: list[DemoBatch]) -> Replay:
        month = ""
        for batch in batches:
            assert 0 < len(batch) <= BATCH_LIMIT or batch.accrue
            assert batch.month >= month, "batches follow the calendar"
            month = batch.month
            if batch.accrue is not None:
                assert not batch.events and not batch.reversals
                assert parse_period(batch.accrue).last_day <= self.today
                self.accrued.append(batch.accrue)
                continue
            remembered = set(batch.remember)
            for index, event in enumerate(batch.events):
                if isinstance(event, UnitEvent):
                    assert batch.kind == "units" and event.effective_on.strftime("%Y-%m") == batch.month
                    self.check_unit(event)
                    continue
                assert isinstance(event, CadreEvent) and batch.kind != "units"
                self.check(event)
                if batch.kind == "late":
                    self.late += 1
                    assert event.effective_on.strftime("%Y-%m") < batch.month or (
                        batch.month == self.today.strftime("%Y-%m")
                    )
                if batch.kind == "month":
                    assert event.effective_on.strftime("%Y-%m") == batch.month
                if index in remembered:
                    self.posted[event.source.key] = event
            for request in batch.reversals:
                target = self.posted[request.target.key]  # posted in an earlier batch
                reversal = request.build(uuid.uuid4())
                assert reversal.cadre_id == target.cadre_id
                assert isinstance(target, MeritAwarded | DeductionApplied)
                assert reversal.effective_on >= target.effective_on
                assert request.target.key not in self.reversed
                self.reversed.add(request.target.key)
                self.check(reversal)
        return self

    def check(self, event: CadreEvent) -> None:
        cadre = event.cadre_id
        assert event.effective_on <= self.today
        source = (event.source.system, event.source.key)
        assert source not in self.sources
        self.sources.add(source)
        for field in (*SERVER_FIELDS[type_of(event)], "points"):
            assert getattr(event, field) is msgspec.UNSET, f"{type_of(event)} sends {field}"
        # The wire form decodes under the contract's constraints (patterns, lengths, literals).
        assert msgspec.json.decode(msgspec.json.encode(event), type=Event) == event
        if isinstance(event, CadreRegistered):
            assert cadre not in self.registered
            assert event.service_started_on <= event.grade_since <= event.effective_on
            self.registered[cadre] = event.effective_on
            self.latest[cadre] = event.effective_on
            self.state[cadre] = {
                "unit": event.unit_id,
                "grade": event.grade,
                "leadership": event.leadership,
                "principal": event.principal,
            }
            return
        assert cadre in self.registered, f"{cadre} is not registered"
        assert event.effective_on >= self.registered[cadre]
        if cadre in self.departed:
            assert event.effective_on <= self.departed[cadre]
        if isinstance(event, CadreDeparted):
            assert cadre not in self.departed
            assert self.latest[cadre] <= event.effective_on
            self.departed[cadre] = event.effective_on
        self.latest[cadre] = max(self.latest[cadre], event.effective_on)
        self.pairs(event)

    def check_unit(self, event: UnitEvent) -> None:
        """What the ledger checks of a unit's registration, a panel and a rating (domain/units.py)."""
        assert event.effective_on <= self.today
        source = (event.source.system, event.source.key)
        assert source not in self.sources
        self.sources.add(source)
        assert msgspec.json.decode(msgspec.json.encode(event), type=Event) == event
        if isinstance(event, UnitRegistered):
            assert event.unit_id not in self.units and event.kind == "department" and event.parent is None
            self.units[event.unit_id] = event
        elif isinstance(event, RatingPanelDrawn):
            assert event.period not in self.panels and event.rater_kind == "enterprise"
            assert event.source.system == "survey"
            assert len(set(event.raters)) == len(event.raters)
            self.panels[event.period] = event
        else:
            assert isinstance(event, UnitRated) and event.source.system == "survey"
            assert event.unit_id in self.units, "a department is registered before its first rating"
            panel = self.panels[event.period]  # drawn before
            assert event.rater.kind == "enterprise" and event.rater.id in panel.raters
            assert panel.effective_on <= event.effective_on
            key = (event.unit_id, event.period, event.rater.id)
            assert key not in self.rated
            self.rated.add(key)
            self.ratings.append(event)

    def pairs(self, event: CadreEvent) -> None:
        """What the ledger checks against the cadre's state as posted so far."""
        state = self.state[event.cadre_id]
        if isinstance(event, CadreTransferred):
            assert event.unit_id != state["unit"]
            state["unit"] = event.unit_id
        elif isinstance(event, CadreGradeChanged):
            assert event.grade != state["grade"]
            state["grade"] = event.grade
        elif isinstance(event, CadreLeftLeadership):
            assert state["leadership"] and not state["principal"]
            state["leadership"] = False
        elif isinstance(event, RecallOrdered):
            state["recall"] = True
        elif isinstance(event, RecallCompleted):
            assert state.pop("recall", False), "the cadre has no open recall"
        elif isinstance(event, InvestigationOpened):
            assert "investigation" not in state
            assert event.reference not in self.references
            self.references.add(event.reference)
            state["investigation"] = event.reference
        elif isinstance(event, InvestigationClosed):
            assert state.pop("investigation") == event.reference
        elif isinstance(event, AppraisalRecorded):
            assert (event.cadre_id, event.year) not in self.appraised
            self.appraised.add((event.cadre_id, event.year))


@pytest.fixture(scope="module", params=CASES, ids=lambda case: f"seed{case[0]}-{case[1]}")
def city(request: pytest.FixtureRequest) -> tuple[date, list[DemoBatch]]:
    seed, today = request.param
    return today, small(seed, today)


@pytest.fixture(scope="module")
def replay() -> tuple[Replay, list[EventBase]]:
    batches = small()
    return Replay(TODAY).run(batches), events_of(batches)


def test_the_same_seed_generates_the_same_batches() -> None:
    assert encoded(small()) == encoded(small())


def test_another_seed_generates_another_city() -> None:
    assert encoded(small(7)) != encoded(small(8))


def test_the_small_city_has_about_two_hundred_cadres_in_eight_units_and_twenty_thousand_events(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    state, events = replay
    initial = [e for e in events if isinstance(e, CadreRegistered) and e.effective_on < date(2022, 7, 1)]
    assert len(initial) == SCALES["small"].cadres
    assert {e.unit_id for e in events if isinstance(e, CadreRegistered)} == {f"U{n:03d}" for n in range(1, 9)}
    accruals = len(state.registered) * len(state.accrued)  # about; the ledger posts them
    assert 15_000 <= len(events) + len(state.reversed) + accruals <= 25_000


def test_every_batch_obeys_the_ledgers_rules(city: tuple[date, list[DemoBatch]]) -> None:
    today, batches = city
    state = Replay(today).run(batches)
    assert state.reversed and state.late and state.departed


def test_the_window_is_three_years_ending_today_with_the_cadres_registered_just_before(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    state, events = replay
    dates = sorted(e.effective_on for e in events if not isinstance(e, CadreRegistered))
    assert dates[0] >= date(2022, 7, 1) and dates[-1] <= TODAY
    first = min(state.registered.values())
    assert date(2022, 5, 1) <= first < date(2022, 7, 1)
    assert state.accrued == [
        f"{year}Q{q}"
        for year in (2022, 2023, 2024, 2025)
        for q in (1, 2, 3, 4)
        if date(2022, 7, 1) <= parse_period(f"{year}Q{q}").last_day <= TODAY
    ]


def test_a_window_is_never_older_than_the_illustrative_policy() -> None:
    events = events_of(small(3, date(2021, 5, 10)))
    assert min(e.effective_on for e in events) >= date(2020, 1, 1)
    with pytest.raises(ValueError, match="on or after"):
        list(generate_city(seed=1, scale="small", today=date(2019, 12, 31)))


def test_an_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scale"):
        list(generate_city(seed=1, scale="huge", today=TODAY))  # type: ignore[arg-type]


def test_grades_service_and_leadership_look_like_a_real_pyramid(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    _, events = replay
    registered = [e for e in events if isinstance(e, CadreRegistered)]
    grades = Counter(GRADES.index(e.grade) for e in registered)
    assert grades[0] + grades[1] + grades[2] > grades[6] + grades[7] + grades[8] + grades[9]
    principals = [e for e in registered if e.principal]
    assert 1 <= len(principals) <= 8 and all(e.leadership for e in principals)
    senior = [e for e in registered if GRADES.index(e.grade) >= 6]
    junior = [e for e in registered if GRADES.index(e.grade) <= 1]
    assert sum(e.leadership for e in senior) / len(senior) > sum(e.leadership for e in junior) / len(junior)
    assert max((e.effective_on - e.service_started_on).days for e in registered) > 25 * 365
    assert all(any(ch != " " for ch in e.name) and 2 <= len(e.name) <= 3 for e in registered)


def test_promotions_are_mostly_one_step_up(replay: tuple[Replay, list[EventBase]]) -> None:
    _, events = replay
    grade: dict[str, int] = {}
    steps: Counter[int] = Counter()
    for event in sorted(
        (e for e in events if isinstance(e, CadreRegistered | CadreGradeChanged)),
        key=lambda e: e.effective_on,
    ):
        assert isinstance(event, CadreRegistered | CadreGradeChanged)
        new = GRADES.index(event.grade)
        if isinstance(event, CadreGradeChanged):
            steps[new - grade[event.cadre_id]] += 1
        grade[event.cadre_id] = new
    assert steps[1] > 0.8 * sum(steps.values())


def test_most_cadres_have_no_deduction(replay: tuple[Replay, list[EventBase]]) -> None:
    state, events = replay
    deducted = {e.cadre_id for e in events if isinstance(e, DeductionApplied)}
    assert len(deducted) <= 0.1 * len(state.registered)
    kinds = Counter(e.kind for e in events if isinstance(e, DeductionApplied))
    assert kinds["criticism"] + kinds["admonishment"] >= kinds.total() / 2


def test_merit_levels_are_skewed_local(replay: tuple[Replay, list[EventBase]]) -> None:
    _, events = replay
    levels = Counter(e.level for e in events if isinstance(e, MeritAwarded))
    assert levels["unit"] + levels["county"] > 10 * levels["municipal"]
    assert levels["municipal"] > levels["provincial"] >= levels["national"]


def test_a_deed_is_sometimes_awarded_again_one_level_up() -> None:
    # One small city has too few major merits to be sure of a second award; five are.
    awards: dict[str, list[MeritAwarded]] = {}
    for seed in range(5):
        for event in events_of(small(seed)):
            if isinstance(event, MeritAwarded) and event.deed is not None:
                awards.setdefault(event.deed, []).append(event)
    twice = [pair for pair in awards.values() if len(pair) == 2]
    assert twice and all(len(pair) <= 2 for pair in awards.values())
    for first, second in twice:
        assert first.cadre_id == second.cadre_id and first.award == second.award
        assert LEVELS.index(second.level) == LEVELS.index(first.level) - 1  # LEVELS: widest first


def test_appraisals_are_mostly_competent_with_about_fifteen_per_cent_excellent(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    _, events = replay
    results = Counter(e.result for e in events if isinstance(e, AppraisalRecorded))
    total = results.total()
    assert results["competent"] > 0.6 * total
    assert 0.08 * total <= results["excellent"] <= 0.25 * total
    assert results["basically_competent"] + results["incompetent"] < 0.1 * total


def test_every_cadre_is_evaluated_monthly_with_leadership_scores_apart_from_self(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    _, events = replay
    evaluations = [e for e in events if isinstance(e, EvaluationRecorded)]
    assert len(evaluations) > 30 * SCALES["small"].cadres
    assert len({(e.cadre_id, e.period) for e in evaluations}) == len(evaluations)
    scores = [score for e in evaluations for score in (e.scores.self, e.scores.section, e.scores.leadership)]
    assert all(Decimal(0) <= s <= Decimal(100) and s == s.quantize(Decimal("0.1")) for s in scores)
    mean_self = sum(e.scores.self for e in evaluations) / len(evaluations)
    mean_leadership = sum(e.scores.leadership for e in evaluations) / len(evaluations)
    assert Decimal(70) < mean_leadership < mean_self < Decimal(98)


def test_recalls_are_completed_a_month_or_two_after_they_are_ordered(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    _, events = replay
    ordered = [e for e in events if isinstance(e, RecallOrdered)]
    completed = [e for e in events if isinstance(e, RecallCompleted)]
    assert ordered and completed
    for event in completed:
        assert any(
            30 <= (event.effective_on - o.effective_on).days <= 60
            for o in ordered
            if o.cadre_id == event.cadre_id
        )


def test_about_two_per_cent_come_late_and_half_a_per_cent_are_reversed(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    state, events = replay
    assert 0.01 * len(events) <= state.late <= 0.03 * len(events)
    assert 0.002 * len(events) <= len(state.reversed) <= 0.01 * len(events)


class FakeLedger:
    """Assigns ids and positions; remembers every event so reversals can be checked."""

    def __init__(self) -> None:
        self.events: dict[uuid.UUID, EventBase] = {}
        self.position = 0
        self.ids = (uuid.UUID(int=n) for n in itertools.count(1))
        self.accruals: list[str] = []

    def post(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
        assert posted_by == "demo" and 0 < len(events) <= BATCH_LIMIT
        items = []
        for event in events:
            if isinstance(event, EntryReversed):
                target = self.events[event.target_event_id]
                assert isinstance(target, CadreEvent) and target.cadre_id == event.cadre_id
            self.position += 1
            event_id = next(self.ids)
            self.events[event_id] = event
            items.append(PostedItem(event_id, self.position, Decimal("0.00"), "", False))
        return PostResult(self.position, items)

    def accrue(self, period: str, *, posted_by: str) -> PostResult:
        self.accruals.append(period)
        return PostResult(self.position, [])


def test_run_demo_posts_every_batch_and_resolves_the_reversal_targets() -> None:
    ledger = FakeLedger()
    advanced: list[int] = []
    summary = run_demo(ledger, seed=7, scale="small", today=TODAY, progress=advanced.append)
    batches = small()
    assert summary.events_posted == len(ledger.events) == sum(len(b) for b in batches) == sum(advanced)
    assert summary.counts["entry.reversed"] == sum(len(b.reversals) for b in batches) > 0
    assert summary.cadres == summary.counts["cadre.registered"] > SCALES["small"].cadres
    assert summary.units == 8 and summary.replayed == 0
    assert ledger.accruals == [b.accrue for b in batches if b.accrue]
    assert summary.batches == len(batches)


def test_run_demo_names_the_batch_when_the_ledger_refuses() -> None:
    class Refusing(FakeLedger):
        def post(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
            if self.position > 500:
                raise InvalidInput("no", field="effective_on", rule="test", item=3)
            return super().post(events, posted_by=posted_by)

    with pytest.raises(InvalidInput) as caught:
        run_demo(Refusing(), seed=7, scale="small", today=TODAY)
    # The refused batch is the first after position 500: the first month's departments, as it happens.
    assert any("demo batch: units 2022-07" in note and '"type":' in note for note in caught.value.__notes__)


# Departments rated by enterprises (ledger.demo_ratings).

QUARTERS_RATED = [
    f"{year}Q{q}" for year, q in [(2022, 3), (2022, 4)] + [(y, q) for y in (2023, 2024) for q in (1, 2, 3, 4)]
]
QUARTERS_RATED += ["2025Q1"]  # 2025Q2 ends on TODAY: its ratings would come after today


def naive_weighted_mean(scores: dict[str, str]) -> Decimal:
    """0.4 service + 0.3 efficiency + 0.3 integrity, exactly, then half up to hundredths by hand."""
    exact = (
        Fraction(4, 10) * Fraction(scores["service"])
        + Fraction(3, 10) * Fraction(scores["efficiency"])
        + Fraction(3, 10) * Fraction(scores["integrity"])
    )
    hundredths = exact * 100
    whole = int(hundredths)  # scores are not negative
    if hundredths - whole >= Fraction(1, 2):
        whole += 1
    return Decimal(whole) / 100


def naive_panel(seed: str, pool: int, size: int) -> list[str]:
    digests = sorted(
        (hashlib.sha256(f"{seed}:E{n:04d}".encode()).hexdigest(), f"E{n:04d}") for n in range(1, pool + 1)
    )
    return [rater for _, rater in digests[:size]]


def test_the_same_seed_draws_the_same_panels_and_ratings_and_another_seed_others() -> None:
    def units(seed: int) -> list[bytes]:
        return [msgspec.json.encode(b.events) for b in small(seed) if b.kind == "units"]

    assert units(7) == units(7)
    assert units(7) != units(8)


def test_each_quarter_ended_before_today_has_a_panel_in_its_last_week_and_every_rater_rates_every_department(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    state, _ = replay
    scale = SCALES["small"]
    assert len(state.units) == scale.departments == 6
    assert all(
        1 <= len(unit.name) <= 20 and unit.effective_on == date(2022, 7, 1) for unit in state.units.values()
    )
    assert sorted(state.panels) == QUARTERS_RATED
    for period, panel in state.panels.items():
        span = parse_period(period)
        assert span.last_day - timedelta(days=6) <= panel.effective_on <= span.last_day
        # Anyone can draw the panel again from the event: sha256 of "<seed>:<id>" over the pool named in it.
        assert panel.method == "sha256-lottery pool=E0001..E0096 size=24"
        assert panel.seed == f"small-7-{period}"
        assert list(panel.raters) == naive_panel(panel.seed, 96, 24)
    assert len(state.ratings) == len(QUARTERS_RATED) * 6 * 24
    for rating in state.ratings:
        last_day = parse_period(rating.period).last_day
        assert last_day < rating.effective_on <= min(last_day + timedelta(days=15), TODAY)


def test_every_ratings_score_is_the_weighted_mean_of_its_dimensions_and_its_verdict_follows(
    replay: tuple[Replay, list[EventBase]],
) -> None:
    state, _ = replay
    verdicts: Counter[str] = Counter()
    for rating in state.ratings:
        assert rating.scores is not None and set(rating.scores) == {"service", "efficiency", "integrity"}
        assert all(0 <= int(score) <= 100 for score in rating.scores.values())
        score = Decimal(rating.score)
        assert score == naive_weighted_mean(rating.scores) and score == score.quantize(Decimal("0.01"))
        expected = "satisfied" if score >= 80 else "basically_satisfied" if score >= 60 else "dissatisfied"
        assert rating.verdict == expected
        verdicts[rating.verdict] += 1
    assert (
        verdicts["satisfied"] > 0.6 * verdicts.total()
        and 0 < verdicts["dissatisfied"] < 0.1 * verdicts.total()
    )


def test_the_ratings_leave_the_cadres_events_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ratings draw from a Random of their own: without departments the cadres' batches are the same."""
    from ledger import demo

    plain = msgspec.structs.replace(SCALES["small"], departments=0)
    monkeypatch.setitem(demo.SCALES, "small-plain", plain)
    without = list(generate_city(seed=7, scale="small-plain", today=TODAY))  # type: ignore[arg-type]
    cadres = [b for b in small() if b.kind != "units"]
    strip = [
        msgspec.json.encode([b.kind, b.month, b.events, b.reversals, b.remember, b.accrue]) for b in cadres
    ]
    plain_batches = [
        msgspec.json.encode([b.kind, b.month, b.events, b.reversals, b.remember, b.accrue]) for b in without
    ]
    assert [x.replace(b"small-plain-7-", b"small-7-") for x in plain_batches] == strip


def test_a_city_panel_of_two_hundred_rates_fifty_three_departments_with_few_dissatisfied_votes() -> None:
    """The city's departments for five quarters, drawn directly: the first round's worst has about
    seventeen dissatisfied votes of 200 (as in Xiantao), a later round's worst about five."""
    from ledger.demo_ratings import DepartmentRatings

    first_day = date(2023, 1, 1).toordinal()

    def make(cls: type[Any], ordinal: int, system: str, key: object = None, /, **fields: Any) -> Any:
        return cls(effective_on=date.fromordinal(ordinal), source=Source(system, f"t-{key}"), **fields)

    ratings = DepartmentRatings(
        seed=7,
        scale="city",
        units=range(53),
        enterprises=800,
        panel_size=200,
        window_first=first_day,
        today=date(2024, 6, 30).toordinal(),
        event=make,
    )
    events: list[EventBase] = []
    cursor = date(2023, 1, 1)
    while cursor <= date(2024, 6, 30):
        following = (cursor + timedelta(days=32)).replace(day=1)
        events += ratings.month(
            cursor.toordinal(), min(following.toordinal() - 1, date(2024, 6, 30).toordinal())
        )
        cursor = following
    registered = [e for e in events if isinstance(e, UnitRegistered)]
    assert len(registered) == 53 and len({e.name for e in registered}) == 53
    assert any(e.name == "市场监管局" for e in registered)
    rated = [e for e in events if isinstance(e, UnitRated)]
    assert sorted({e.period for e in rated}) == ["2023Q1", "2023Q2", "2023Q3", "2023Q4", "2024Q1"]
    assert len(rated) == 5 * 53 * 200
    dissatisfied: dict[str, Counter[str]] = {}
    for e in rated:
        dissatisfied.setdefault(e.period, Counter())[e.unit_id] += e.verdict == "dissatisfied"
    assert 10 <= max(dissatisfied["2023Q1"].values()) <= 25
    assert 2 <= max(dissatisfied["2024Q1"].values()) <= 10
    assert sum(1 for n in dissatisfied["2024Q1"].values() if n <= 2) > 40  # most departments: a few at most


def test_the_small_demo_posts_into_sqlite_and_ranks_its_departments_with_one_recovering(
    tmp_path: Path,
) -> None:
    """The whole small city on a real ledger: nothing refused; each rated quarter ranks six departments
    with three in the bottom; one department is in the bottom twice (step 2), then recovers (streak 0)."""
    from ledger import Ledger
    from ledger.projections.service import Projections
    from tests.conftest import fixed_clock

    with Ledger.open(f"sqlite:///{tmp_path / 'city.db'}", clock=fixed_clock) as ledger:
        summary = run_demo(ledger, seed=7, scale="small", today=TODAY)
        assert summary.counts["unit.rated"] == len(QUARTERS_RATED) * 6 * 24
        assert summary.counts["rating.panel_drawn"] == len(QUARTERS_RATED)
        assert summary.counts["unit.registered"] == 6
        projections = Projections.open(ledger)
        bottoms: dict[str, set[str]] = {}
        for period in QUARTERS_RATED:
            view = projections.unit_rankings(period)
            ranked = [entry for entry in view.entries if entry.rank is not None]
            assert len(ranked) == 6 and all(entry.ratings == 24 for entry in ranked)
            ranks = [entry.rank or 0 for entry in ranked]
            assert ranks == sorted(ranks) and ranks[0] == 1
            bottoms[period] = {entry.unit_id for entry in ranked if entry.in_bottom}
            assert len(bottoms[period]) == 3
        first, second, third = QUARTERS_RATED[:3]
        recovering = [unit for unit in bottoms[first] & bottoms[second] if unit not in bottoms[third]]
        assert len(recovering) == 1
        escalation = {e.unit_id: e for e in projections.unit_escalations(second).escalations}[recovering[0]]
        assert (escalation.streak, escalation.step) == (2, 2) and escalation.leader is not None
        periods = {p.period: p for p in projections.unit(recovering[0]).periods}
        assert [periods[p].streak for p in (first, second, third)] == [1, 2, 0]
        assert not any(periods[p].in_bottom for p in QUARTERS_RATED[2:])
        # A few departments stay in the bottom: some unit is there in most quarters.
        assert max(Counter(unit for units in bottoms.values() for unit in units).values()) >= 8
