"""Whole reads through the library, on both stores: a city's ranking in one page, cursors that reuse the
first page's snapshot, and the period views (recalls, boards, escalations) of many pools at once.

The city of 5,000 cadres is built so that its ranking can be written down by hand: five units, everyone
registered on one day, two grade dates and two service dates (the policy's tie-breakers), 0 to 3 citations
(0.50 each) and 0 to 2 commendations (0.80 each) at unit level, and in U1 a competent 2024 appraisal
(2.00) — so about 50 groups of cadres tie on every compared value and share a rank, and the page boundaries of
7 and of 1,000 cut through tie groups. The expected ranking is sorted here from that plan; it never calls
the code under test.

The period views are compared with `tests/property/naive.py` (which shares nothing with the read models)
on a smaller city of eleven units, from 2 to 16 cadres (around the policy's minimum pool of 10), whose
points per quarter are drawn from a few values so that the bottom and top of a pool tie often.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    CadreDeparted,
    CadreRegistered,
    CadreTransferred,
    EntryReversed,
    EventBase,
    MeritAwarded,
    RecallOrdered,
    Source,
    VetoApplied,
)
from ledger.policy.load import illustrative_policy_text
from ledger.projections.service import PAGE_SIZE_MAX, Projections
from ledger.projections.snapshots import ReadCache
from tests.conftest import TODAY, drop_schema, fixed_clock, require_postgres
from tests.property.naive import Model

CADRES = 5_000
UNITS = 5
BATCH = 1_000
REGISTERED_ON = date(2024, 1, 1)
MERITS_ON = date(2025, 3, 1)
APPRAISED_ON = date(2025, 1, 10)
GRADE_SINCE = (date(2020, 1, 1), date(2021, 6, 1))
SERVICE_SINCE = (date(2010, 3, 1), date(2012, 3, 1))
CITATION_CENTS = 50  # citation at unit level (illustrative policy)
COMMENDATION_CENTS = 80  # commendation at unit level
COMPETENT_CENTS = 200  # a competent appraisal
STANDING_TOP_SHARE = Decimal("0.30")  # the illustrative policy's standing rule


@dataclass(frozen=True)
class Planned:
    """One cadre of the city, and everything its standing follows from."""

    cadre_id: str
    unit_id: str
    grade_since: date
    service_started_on: date
    citations: int
    commendations: int
    appraised: bool

    @property
    def cents(self) -> int:
        return (
            self.citations * CITATION_CENTS
            + self.commendations * COMMENDATION_CENTS
            + (COMPETENT_CENTS if self.appraised else 0)
        )


@dataclass(frozen=True)
class Expected:
    rank: int
    cadre_id: str
    unit_id: str
    total: Decimal


def plan(count: int = CADRES) -> list[Planned]:
    cadres = []
    for number in range(1, count + 1):
        unit = f"U{number % UNITS + 1}"
        cadres.append(
            Planned(
                cadre_id=f"C{number:05d}",
                unit_id=unit,
                grade_since=GRADE_SINCE[number % 3 == 0],
                service_started_on=SERVICE_SINCE[(number // 12) % 2],
                citations=number % 4,
                commendations=(number // 4) % 3,
                appraised=unit == "U1",
            )
        )
    return cadres


def _source(key: str) -> Source:
    return Source(system="hr", key=key)


def city_events(cadres: list[Planned]) -> list[EventBase]:
    events: list[EventBase] = []
    for cadre in cadres:
        events.append(
            CadreRegistered(
                cadre_id=cadre.cadre_id,
                effective_on=REGISTERED_ON,
                source=_source(f"reg-{cadre.cadre_id}"),
                name="张三",
                unit_id=cadre.unit_id,
                grade="一级科员",
                leadership=False,
                principal=False,
                service_started_on=cadre.service_started_on,
                grade_since=cadre.grade_since,
            )
        )
    for cadre in cadres:
        for number in range(cadre.citations):
            events.append(merit(cadre.cadre_id, f"cit-{cadre.cadre_id}-{number}", "citation"))
        for number in range(cadre.commendations):
            events.append(merit(cadre.cadre_id, f"com-{cadre.cadre_id}-{number}", "commendation"))
        if cadre.appraised:
            events.append(
                AppraisalRecorded(
                    cadre_id=cadre.cadre_id,
                    effective_on=APPRAISED_ON,
                    source=_source(f"app-{cadre.cadre_id}"),
                    year=2024,
                    result="competent",
                )
            )
    return events


def merit(cadre_id: str, key: str, award: str = "citation", on: date = MERITS_ON) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=on,
        source=_source(key),
        award=award,  # type: ignore[arg-type]
        level="unit",
    )


def post_all(ledger: Ledger, events: list[EventBase]) -> int:
    position = ledger.head()
    for start in range(0, len(events), BATCH):
        position = ledger.post(events[start : start + BATCH], posted_by="test").position
    return position


def expected_ranking(cadres: list[Planned], as_of: date = TODAY) -> list[Expected]:
    """Competition ranking by total, then days in grade, then days in service (no excellent years),
    listed by cadre_id: sorted from the plan."""

    def compared(cadre: Planned) -> tuple[int, int, int]:
        return (cadre.cents, (as_of - cadre.grade_since).days, (as_of - cadre.service_started_on).days)

    ordered = sorted(cadres, key=lambda cadre: (tuple(-value for value in compared(cadre)), cadre.cadre_id))
    result: list[Expected] = []
    for place, cadre in enumerate(ordered, start=1):
        rank = place
        if result and compared(cadre) == compared(ordered[place - 2]):
            rank = result[-1].rank
        result.append(Expected(rank, cadre.cadre_id, cadre.unit_id, Decimal(cadre.cents).scaleb(-2)))
    return result


def expected_shortlist(ranking: list[Expected]) -> list[Expected]:
    """Every U1 cadre has a competent appraisal and more than two years in grade, no gate, recall,
    investigation or veto; the others have no appraisal. Standing: in the top 30 % of the scope."""
    allowed = math.ceil(STANDING_TOP_SHARE * len(ranking))
    return [entry for entry in ranking if entry.unit_id == "U1" and entry.rank <= allowed]


@dataclass
class City:
    ledger: Ledger
    projections: Projections
    cadres: list[Planned]
    position: int  # the head after the city was posted


def _open_city(url: str) -> Iterator[City]:
    cadres = plan()
    with Ledger.open(url, clock=fixed_clock) as ledger:
        position = post_all(ledger, city_events(cadres))
        projections = Projections.open(ledger)
        try:
            yield City(ledger, projections, cadres, position)
        finally:
            projections.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """The city on each store, once per module (one test posts more: it reads from its own position)."""
    if request.param == "sqlite":
        yield from _open_city(f"sqlite:///{tmp_path_factory.mktemp('whole') / 'ledger.db'}")
        return
    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    try:
        yield from _open_city(f"{base}{separator}schema={schema}")
    finally:
        drop_schema(base, schema)


def rows(entries: list[Any]) -> list[tuple[int, str, str, Decimal]]:
    return [(entry.rank, entry.cadre_id, entry.unit_id, entry.total) for entry in entries]


def expected_rows(expected: list[Expected]) -> list[tuple[int, str, str, Decimal]]:
    return [(entry.rank, entry.cadre_id, entry.unit_id, entry.total) for entry in expected]


def ranking_pages(projections: Projections, limit: int, **first: Any) -> list[list[Any]]:
    """Every page of a ranking, following the cursors."""
    pages = []
    view = projections.rankings(limit=limit, **first)
    pages.append(view.entries)
    while view.next_cursor is not None:
        view = projections.rankings(cursor=view.next_cursor, limit=limit)
        pages.append(view.entries)
    return pages


def shortlist_pages(projections: Projections, limit: int, **first: Any) -> list[list[Any]]:
    pages = []
    view = projections.shortlist(limit=limit, **first)
    pages.append(view.entries)
    while view.next_cursor is not None:
        view = projections.shortlist(cursor=view.next_cursor, limit=limit)
        pages.append(view.entries)
    return pages


def concatenated(pages: list[list[Any]]) -> list[Any]:
    return [entry for page in pages for entry in page]


def tie_cut(expected: list[Expected], page: int) -> bool:
    """Whether some boundary between pages of `page` entries falls inside a group of equal ranks."""
    return any(
        expected[boundary - 1].rank == expected[boundary].rank
        for boundary in range(page, len(expected), page)
    )


# Rankings.


def test_the_city_is_built_so_that_ties_cross_page_boundaries() -> None:
    expected = expected_ranking(plan())
    assert len(expected) == CADRES == PAGE_SIZE_MAX
    assert tie_cut(expected, 7) and tie_cut(expected, 1_000)
    groups = len({entry.rank for entry in expected})
    assert 40 <= groups <= 100, f"{groups} groups of cadres equal on every compared value"


def test_a_whole_ranking_in_one_page_is_the_hand_sorted_one(city: City) -> None:
    view = city.projections.rankings(known_at=city.position, limit=PAGE_SIZE_MAX)
    expected = expected_ranking(city.cadres)
    assert view.next_cursor is None
    assert rows(view.entries) == expected_rows(expected)
    # Nothing was dated in the last quarter: the previous quarter's end ranks alike.
    assert all(entry.previous_rank == entry.rank and entry.movement == 0 for entry in view.entries)


@pytest.mark.parametrize("limit", [7, 1_000])
def test_pages_of_a_ranking_concatenate_to_the_whole(city: City, limit: int) -> None:
    pages = ranking_pages(city.projections, limit, known_at=city.position)
    expected = expected_ranking(city.cadres)
    assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert rows(concatenated(pages)) == expected_rows(expected)
    whole = city.projections.rankings(known_at=city.position, limit=PAGE_SIZE_MAX).entries
    assert concatenated(pages) == whole, "every figure of every entry, not only the ranks"


def test_a_tie_cut_by_a_page_boundary_keeps_its_rank_on_the_next_page(city: City) -> None:
    expected = expected_ranking(city.cadres)
    boundary = next(b for b in range(1_000, CADRES, 1_000) if expected[b - 1].rank == expected[b].rank)
    first = city.projections.rankings(known_at=city.position, limit=boundary)
    second = city.projections.rankings(cursor=first.next_cursor, limit=1)
    assert first.entries[-1].rank == second.entries[0].rank == expected[boundary].rank
    assert first.entries[-1].cadre_id < second.entries[0].cadre_id, "a tie is listed by cadre_id"


def test_a_later_page_reuses_its_first_pages_snapshot(city: City) -> None:
    first = city.projections.rankings(known_at=city.position, as_of=date(2025, 11, 30), limit=10)
    misses = city.projections.read_cache.stats()["misses"]
    second = city.projections.rankings(cursor=first.next_cursor, limit=10)
    assert city.projections.read_cache.stats()["misses"] == misses, "nothing recomputed"
    expected = expected_ranking(city.cadres, date(2025, 11, 30))
    assert rows(second.entries) == expected_rows(expected[10:20])


def test_a_cursor_used_after_the_cache_is_cleared_or_by_another_process_gives_the_same_page(
    city: City,
) -> None:
    first = city.projections.rankings(known_at=city.position, limit=1_000)
    assert first.next_cursor is not None
    kept = city.projections.rankings(cursor=first.next_cursor, limit=1_000)
    city.projections.read_cache.clear()
    recomputed = city.projections.rankings(cursor=first.next_cursor, limit=1_000)
    assert recomputed == kept
    other = Projections.open(city.ledger)  # another worker: its cache never saw the first page
    try:
        assert other.rankings(cursor=first.next_cursor, limit=1_000) == kept
    finally:
        other.close()
    assert rows(kept.entries) == expected_rows(expected_ranking(city.cadres)[1_000:2_000])


@pytest.mark.parametrize("limit", [0, PAGE_SIZE_MAX + 1, -1])
def test_a_limit_outside_1_to_5000_is_refused_naming_limit(city: City, limit: int) -> None:
    for read in (city.projections.rankings, city.projections.shortlist):
        with pytest.raises(InvalidInput) as refused:
            read(limit=limit)
        assert (refused.value.field, refused.value.rule) == ("limit", "limit_out_of_range")
        assert "5000" in str(refused.value)


# The shortlist.


@pytest.mark.parametrize("limit", [7, 1_000, PAGE_SIZE_MAX])
def test_shortlist_pages_concatenate_to_the_hand_computed_shortlist(city: City, limit: int) -> None:
    pages = shortlist_pages(city.projections, limit, known_at=city.position)
    expected = expected_shortlist(expected_ranking(city.cadres))
    assert len(expected) > 7 * 3, "several pages of 7"
    assert rows(concatenated(pages)) == expected_rows(expected)


def test_a_shortlist_cursor_after_the_cache_is_cleared_gives_the_same_page(city: City) -> None:
    first = city.projections.shortlist(known_at=city.position, limit=7)
    misses = city.projections.read_cache.stats()["misses"]
    kept = city.projections.shortlist(cursor=first.next_cursor, limit=7)
    assert city.projections.read_cache.stats()["misses"] == misses, "the eligible cadres were kept"
    city.projections.read_cache.clear()
    assert city.projections.shortlist(cursor=first.next_cursor, limit=7) == kept


# Pages while the log grows (this test posts: it runs last in the module).


def test_z_pages_read_while_events_are_posted_stay_those_of_the_first_pages_snapshot(city: City) -> None:
    projections, ledger = city.projections, city.ledger
    assert ledger.head() == city.position, "no other test posts"
    first = projections.rankings(limit=1_000)  # at the head, not pinned by the test
    assert first.position == city.position
    expected = expected_ranking(city.cadres)
    bottom_id, top_id = expected[-1].cadre_id, expected[0].cadre_id
    top_merit = next(
        event
        for _position, event in ledger.records(after=0, limit=city.position)
        if isinstance(event, MeritAwarded) and event.cadre_id == top_id
    )
    cursor = first.next_cursor
    pages = [first.entries]
    for step in range(4):
        # Between every two pages something that would reorder them: the last cadre jumps to the top, a
        # new cadre is registered above everyone, the first loses a merit, the cache is emptied.
        if step == 0:
            ledger.post([merit(bottom_id, f"jump-{n}", "commendation") for n in range(8)], posted_by="test")
        elif step == 1:
            newcomer = CadreRegistered(
                cadre_id="C09999",
                effective_on=REGISTERED_ON,
                source=_source("reg-C09999"),
                name="李四",
                unit_id="U3",
                grade="一级科员",
                leadership=False,
                principal=False,
                service_started_on=SERVICE_SINCE[0],
                grade_since=GRADE_SINCE[0],
            )
            awards = [merit("C09999", f"new-{n}", "commendation") for n in range(10)]
            ledger.post([newcomer, *awards], posted_by="test")
        elif step == 2:
            ledger.post(
                [
                    EntryReversed(
                        cadre_id=top_id,
                        effective_on=TODAY,
                        source=_source("undo-top"),
                        target_event_id=top_merit.event_id,
                        reason="correction",
                    )
                ],
                posted_by="test",
            )
        else:
            projections.read_cache.clear()
        assert cursor is not None
        page = projections.rankings(cursor=cursor, limit=1_000)
        assert page.position == city.position
        pages.append(page.entries)
        cursor = page.next_cursor
    assert cursor is None
    assert rows(concatenated(pages)) == expected_rows(expected)
    # Not vacuous: read afresh, the ranking did change.
    now = projections.rankings(limit=3).entries
    assert [entry.cadre_id for entry in now[:2]] == ["C09999", bottom_id]
    assert top_id not in [entry.cadre_id for entry in now]


# Recalls, boards and escalations of many pools, against the naive model.

POOL_SIZES = (2, 9, 10, 10, 11, 12, 16, 3, 14, 10, 9, 10, 10)
# Units whose cadres earn nothing and share their dates: two whole pools tie, side by side.
IDLE_UNITS = ("V12", "V13")
QUARTERS = ("2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4")
QUARTER_POINTS = ((), ("citation",), ("commendation",), ("citation", "citation"))


def pool_city_events(seed: int) -> list[EventBase]:
    """Thirteen units of 2 to 16 cadres; each cadre earns, each quarter, one of a few amounts (most often
    none), so that bottoms and tops tie, except in the two idle units; some cadres transfer, depart, are
    vetoed or recalled."""
    rng = random.Random(seed)
    events: list[EventBase] = []
    cadres: list[tuple[str, str]] = []
    for unit_number, size in enumerate(POOL_SIZES, start=1):
        for member in range(size):
            cadre_id, unit_id = f"P{unit_number:02d}{member:02d}", f"V{unit_number:02d}"
            idle = unit_id in IDLE_UNITS
            cadres.append((cadre_id, unit_id))
            events.append(
                CadreRegistered(
                    cadre_id=cadre_id,
                    effective_on=date(2024, 1, 1),
                    source=_source(f"preg-{cadre_id}"),
                    name="王五",
                    unit_id=f"V{unit_number:02d}",
                    grade="一级科员",
                    leadership=False,
                    principal=False,
                    service_started_on=SERVICE_SINCE[0 if idle else member % 2],
                    grade_since=GRADE_SINCE[False if idle else member % 3 == 0],
                )
            )
    for cadre_id, unit_id in cadres:
        if unit_id in IDLE_UNITS:
            continue
        for quarter in QUARTERS:
            start = date(int(quarter[:4]), 3 * int(quarter[-1]) - 2, 1)
            for number, award in enumerate(rng.choice(QUARTER_POINTS)):
                events.append(merit(cadre_id, f"pm-{cadre_id}-{quarter}-{number}", award, on=start))
    for cadre_id, _unit in rng.sample(cadres, 6):
        events.append(
            VetoApplied(
                cadre_id=cadre_id,
                effective_on=date(2025, 8, 1),
                source=_source(f"veto-{cadre_id}"),
                year=2025,
                reason="一票否决",
            )
        )
    for cadre_id, _unit in rng.sample(cadres, 5):
        events.append(
            RecallOrdered(
                cadre_id=cadre_id,
                effective_on=date(2025, 7, 15),
                source=_source(f"recall-{cadre_id}"),
                period="2025Q2",
                reason="bottom of its unit",
            )
        )
    moved = rng.sample([cadre for cadre in cadres if cadre[1] not in ("V05", *IDLE_UNITS)], 8)
    for cadre_id, _unit in moved[:5]:
        events.append(
            CadreTransferred(
                cadre_id=cadre_id,
                effective_on=date(2025, 5, 20),
                source=_source(f"move-{cadre_id}"),
                unit_id="V05",
            )
        )
    for cadre_id, _unit in moved[5:]:
        events.append(
            CadreDeparted(
                cadre_id=cadre_id,
                effective_on=date(2025, 12, 1),
                source=_source(f"left-{cadre_id}"),
                reason="retired",
            )
        )
    return events


@pytest.fixture
def pool_city(store_url: str) -> Iterator[tuple[Projections, Model, int]]:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        position = post_all(ledger, pool_city_events(seed=11))
        model = Model(ledger.records(after=0, limit=position))
        projections = Projections.open(ledger)
        try:
            yield projections, model, position
        finally:
            projections.close()


def _recalls(view: Any) -> tuple[list[Any], list[Any]]:
    candidates = [(c.cadre_id, c.unit_id, c.rank, c.pool_size, c.total) for c in view.candidates]
    opened = [(r.cadre_id, r.ordered_on, r.period, r.reason) for r in view.open_recalls]
    return candidates, opened


def _model_recalls(model: Model, period: str, scope: str, known_at: int) -> tuple[list[Any], list[Any]]:
    candidates, opened = model.recalls(period, scope, known_at)
    return [(c.cadre_id, c.unit_id, c.rank, c.pool_size, c.total) for c in candidates], opened


def test_recalls_boards_and_escalations_of_many_pools_are_the_naive_models(
    pool_city: tuple[Projections, Model, int],
) -> None:
    projections, model, head = pool_city
    seen = {"ties at a recall edge": False, "a streak of three": False, "a pool too small": False}
    # The idle units tie whole: each is recalled whole, ranked 1.
    idle = {(unit, rank) for _c, unit, rank, _s, _t in _model_recalls(model, "2025Q4", "unit:*", head)[0]}
    assert {("V12", 1), ("V13", 1)} <= idle
    for known_at in (head, head - 40, head - 400):
        for period in (*QUARTERS, "2025", "2025-06"):
            for scope in ("unit:*", "all", "unit:V05", "unit:V01"):
                for cold in (False, True):
                    if cold:
                        projections.read_cache.clear()
                    got = _recalls(projections.recalls(period, scope, known_at=known_at))
                    want = _model_recalls(model, period, scope, known_at)
                    # The model lists pools in unit order too, each in rank order.
                    assert got == want, f"recalls of {scope} in {period} known at {known_at}"
                    escalations = projections.escalations(period, scope, known_at=known_at).escalations
                    expected = model.escalations(period, scope, known_at)
                    assert [(e.cadre_id, e.unit_id, e.streak, e.step) for e in escalations] == [
                        (e.cadre_id, e.unit_id, e.streak, e.step) for e in expected
                    ], f"escalations of {scope} in {period} known at {known_at}"
                    if scope == "unit:*":
                        continue
                    boards = projections.boards(period, scope, known_at=known_at)
                    red, black = model.boards(period, scope, known_at)
                    assert [(b.rank, b.cadre_id, b.total) for b in boards.red] == [
                        (r.rank, r.cadre_id, r.total) for r in red
                    ], f"red board of {scope} in {period} known at {known_at}"
                    assert [(b.rank, b.cadre_id, b.total) for b in boards.black] == [
                        (r.rank, r.cadre_id, r.total) for r in black
                    ], f"black board of {scope} in {period} known at {known_at}"
                by_pool: dict[str, list[int]] = {}
                for _cadre, unit, rank, _size, _total in want[0]:
                    by_pool.setdefault(unit, []).append(rank)
                seen["ties at a recall edge"] |= any(len(ranks) > 3 for ranks in by_pool.values())
                seen["a streak of three"] |= any(e.streak >= 3 for e in expected)
                seen["a pool too small"] |= scope == "unit:*" and "V01" not in by_pool
    assert all(seen.values()), seen


# The cache itself: bounded, shared by threads, emptied with the index it was filled from.


def _period_answers(projections: Projections, known_at: int) -> list[Any]:
    return [
        (
            projections.recalls(period, known_at=known_at),
            projections.boards(period, known_at=known_at),
            projections.escalations(period, known_at=known_at),
            projections.rankings("unit:V05", period=period, known_at=known_at, limit=4),
        )
        for period in QUARTERS
    ]


def test_a_small_cache_stays_within_its_bounds_and_answers_alike(
    pool_city: tuple[Projections, Model, int],
) -> None:
    projections, _model, head = pool_city
    expected = [_period_answers(projections, head - back) for back in (0, 30, 60)]
    projections.read_cache = ReadCache(snapshots_max=2, derived_max=5, snapshot_bytes_max=10**9)
    for _round in range(2):
        for back, answers in zip((0, 30, 60), expected, strict=True):
            assert _period_answers(projections, head - back) == answers
            stats = projections.read_cache.stats()
            assert stats["snapshots"] <= 2 and stats["derived"] <= 5, stats
    tiny = ReadCache(snapshot_bytes_max=1, derived_bytes_max=1)  # nothing fits: every read computes
    projections.read_cache = tiny
    assert _period_answers(projections, head) == expected[0]
    assert tiny.stats()["snapshots"] == tiny.stats()["derived"] == tiny.stats()["hits"] == 0


def test_threads_reading_at_once_get_the_answers_of_reads_one_by_one(
    pool_city: tuple[Projections, Model, int],
) -> None:
    projections, _model, head = pool_city
    positions = [head - back for back in range(0, 80, 10)]
    expected = {position: _period_answers(projections, position) for position in positions}
    projections.read_cache.clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(
            pool.map(lambda position: (position, _period_answers(projections, position)), positions * 3)
        )
    assert all(answers == expected[position] for position, answers in found)


def test_the_cache_empties_when_the_index_is_replaced(pool_city: tuple[Projections, Model, int]) -> None:
    projections, _model, head = pool_city
    before = _period_answers(projections, head)
    assert projections.read_cache.stats()["snapshots"] > 0
    old_index = projections.index
    projections.rebuild()
    assert projections.index is not old_index
    projections.recalls(QUARTERS[0], known_at=head)
    assert projections.read_cache.stats()["snapshots"] == 1, "only what was read since the rebuild"
    assert _period_answers(projections, head) == before


def test_periods_ending_on_one_day_keep_their_own_escalations_on_the_total_basis(store_url: str) -> None:
    """A year, its last quarter and its last month end on one day: on the total basis they read one
    snapshot, but each streak walks back periods of its own kind (kept apart, read in any order)."""
    text = illustrative_policy_text()
    block = '[escalation]\nbottom_count = 3\nbasis = "period"'
    assert text.count(block) == 1 and text.count('version = "illustrative-3"') == 1
    policy = text.replace(block, block.replace('"period"', '"total"')).replace(
        'version = "illustrative-3"', 'version = "whole-reads-total"'
    )
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.publish_policy(policy, effective_on=date(2020, 1, 1))
        head = post_all(ledger, pool_city_events(seed=5))
        model = Model(ledger.records(after=0, limit=head))
        projections = Projections.open(ledger)
        try:
            streaks = {}
            for period in ("2025", "2025Q4", "2025-12", "2025Q4", "2025"):
                view = projections.escalations(period, known_at=head)
                assert view.basis == "total"
                got = [(e.cadre_id, e.unit_id, e.streak, e.step) for e in view.escalations]
                assert got == [
                    (e.cadre_id, e.unit_id, e.streak, e.step)
                    for e in model.escalations(period, "unit:*", head)
                ], period
                streaks[period] = got
            assert len({tuple(found) for found in streaks.values()}) > 1, "the kinds do differ here"
        finally:
            projections.close()


def test_an_escalation_whose_every_period_is_kept_is_read_from_them(
    pool_city: tuple[Projections, Model, int],
) -> None:
    """Each of the twelve quarters an escalation of 2025Q4 looks back at was read on its own, so every
    period's bottom is kept; with the list itself gone from the cache (as a full cache drops it) the
    escalation is made from the kept bottoms alone, and answers as the model does."""
    projections, model, head = pool_city
    quarters = [f"{year}Q{quarter}" for year in (2023, 2024, 2025) for quarter in (1, 2, 3, 4)]
    for quarter in quarters:
        projections.escalations(quarter, known_at=head)
    entries = projections.read_cache._derived.entries
    for key in [key for key in entries if key[0] == "escalations"]:
        del entries[key]
    view = projections.escalations("2025Q4", known_at=head)
    assert [(e.cadre_id, e.unit_id, e.streak, e.step) for e in view.escalations] == [
        (e.cadre_id, e.unit_id, e.streak, e.step) for e in model.escalations("2025Q4", "unit:*", head)
    ]
