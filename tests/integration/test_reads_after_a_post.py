"""A post of today's facts leaves last quarter's reads kept; a fact that changes them is never missed.

The read cache keeps a snapshot under the earliest position that reads the same (`Index.settled`): a score
dated after the day read changes nothing, while a backdated score, a veto, or a reversal posted today
changes the reads of earlier days. Each step below posts one of them and reads the ranking of the third
quarter of 2025; the expected ranks are worked out by hand from the illustrative policy's points, and each
answer is also compared with a process that opens the read models afresh (nothing kept).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from ledger import Ledger, NotFound
from ledger.domain.events import EntryReversed, EventBase, MeritAwarded, VetoApplied
from ledger.projections.facts import day
from ledger.projections.service import Projections
from tests.conftest import registration, source

AS_OF = date(2025, 9, 30)


@pytest.fixture
def projections(ledger: Ledger) -> Iterator[Projections]:
    opened = Projections.open(ledger)
    yield opened
    opened.close()


def merit(cadre_id: str, on: date, award: str, level: str) -> MeritAwarded:
    return MeritAwarded(cadre_id=cadre_id, effective_on=on, source=source(), award=award, level=level)  # type: ignore[arg-type]


def post(ledger: Ledger, *events: EventBase) -> Any:
    return ledger.post(list(events)).results


def ranking(projections: Projections) -> list[tuple[int, str]]:
    return [(entry.rank, entry.cadre_id) for entry in projections.rankings(as_of=AS_OF).entries]


def afresh(ledger: Ledger) -> list[tuple[int, str]]:
    fresh = Projections.open(ledger)
    try:
        return ranking(fresh)
    finally:
        fresh.close()


def test_a_read_of_an_earlier_day_is_kept_across_posts_that_do_not_change_it(
    ledger: Ledger, projections: Projections
) -> None:
    post(ledger, *(registration(f"C{n}") for n in range(1, 7)))
    post(
        ledger,
        merit("C1", date(2025, 3, 1), "citation", "county"),  # 1.00
        merit("C2", date(2025, 4, 1), "commendation", "municipal"),  # 3.00, an award a veto bars
    )
    [award] = post(ledger, merit("C3", date(2025, 5, 1), "merit_third_class", "municipal"))  # 4.00
    post(
        ledger,
        merit("C4", date(2025, 6, 1), "citation", "county"),
        merit("C4", date(2025, 7, 1), "citation", "county"),  # 2.00 in all
    )
    expected = [(1, "C3"), (2, "C2"), (3, "C4"), (4, "C1"), (5, "C5"), (5, "C6")]
    assert ranking(projections) == expected

    # Today's award (dated after the day read): the same ranking, from what was kept.
    post(ledger, merit("C5", date(2025, 12, 1), "citation", "county"))
    projections.catch_up()
    misses = projections.read_cache.stats()["misses"]
    assert ranking(projections) == expected == afresh(ledger)
    assert projections.read_cache.stats()["misses"] == misses, "nothing recomputed"

    # An award dated back into the quarter: recomputed. C6 ties C3 on every compared value.
    post(ledger, merit("C6", date(2025, 8, 15), "merit_third_class", "municipal"))  # 4.00
    projections.catch_up()
    expected = [(1, "C3"), (1, "C6"), (3, "C2"), (4, "C4"), (5, "C1"), (6, "C5")]
    assert ranking(projections) == expected == afresh(ledger)
    assert projections.read_cache.stats()["misses"] > misses

    # A veto dated today for 2025 bars C2's commendation of April: the quarter's ranking changes.
    post(
        ledger,
        VetoApplied(
            cadre_id="C2", effective_on=date(2025, 12, 10), source=source(), year=2025, reason="安全事故"
        ),
    )
    projections.catch_up()
    expected = [(1, "C3"), (1, "C6"), (3, "C4"), (4, "C1"), (5, "C2"), (5, "C5")]
    assert ranking(projections) == expected == afresh(ledger)

    # A reversal dated today takes back C3's award of May from every read known after it.
    post(
        ledger,
        EntryReversed(
            cadre_id="C3",
            effective_on=date(2025, 12, 12),
            source=source(),
            target_event_id=award.event_id,
            reason="申诉成立",
        ),
    )
    projections.catch_up()
    expected = [(1, "C6"), (2, "C4"), (3, "C1"), (4, "C2"), (4, "C3"), (4, "C5")]
    assert ranking(projections) == expected == afresh(ledger)

    # Read as known before the reversal, the kept answer of that position still holds.
    before = projections.rankings(as_of=AS_OF, known_at=projections.position() - 1)
    assert [(entry.rank, entry.cadre_id) for entry in before.entries][:2] == [(1, "C3"), (1, "C6")]
    assert before.position == projections.position() - 1


def test_a_cadre_not_found_is_named_at_the_position_read(ledger: Ledger, projections: Projections) -> None:
    """The snapshot read is kept under an earlier position (nothing between changes it); the answer still
    names the position asked."""
    post(ledger, registration("C1"))
    post(ledger, merit("C1", date(2025, 12, 1), "citation", "county"))  # dated after the day read
    head = ledger.head()
    assert projections.index.settled(day(AS_OF), head) < head
    with pytest.raises(NotFound, match=f"no cadre C2 as of 2025-09-30 known at position {head}$"):
        projections.cadre("C2", as_of=AS_OF)
    with pytest.raises(NotFound, match=f"known at position {head}$"):
        projections.eligibility("C2", as_of=AS_OF)
