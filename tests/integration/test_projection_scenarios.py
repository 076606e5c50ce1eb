"""Stories from the seeds, told through the read models on each store (SQLite file, PostgreSQL).

Xiantao scores its cadres (积分制: base points, merit bonuses, accountability deductions), promotes the
top scorers first, keeps cadres who left leadership posts in the scheme, and escalates the bottom three of
its quarterly department ranking (表态发言 + 约谈 → 诫勉谈话 → 调离岗位). Zhuxi posts red and black boards
(红黑榜) and sends its lowest-ranked cadres back to the party school (回炉). Xianning applies a one-vote
veto (一票否决).
Every story runs under the packaged illustrative policy; dates are before the fixed clock's 2025-12-15.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    CadreLeftLeadership,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    RecallCompleted,
    RecallOrdered,
    VetoApplied,
)
from ledger.policy.load import illustrative_policy_text
from ledger.projections.errors import NotCaughtUp
from ledger.projections.facts import day
from ledger.projections.service import Projections
from tests.conftest import registration, source


@pytest.fixture
def projections(ledger: Ledger) -> Iterator[Projections]:
    opened = Projections.open(ledger)
    yield opened
    opened.close()


def merit(cadre_id: str, on: date, award: str = "citation", level: str = "county") -> MeritAwarded:
    return MeritAwarded(cadre_id=cadre_id, effective_on=on, source=source(), award=award, level=level)  # type: ignore[arg-type]


def deduction(cadre_id: str, on: date, kind: str) -> DeductionApplied:
    return DeductionApplied(cadre_id=cadre_id, effective_on=on, source=source(), kind=kind, level="county")  # type: ignore[arg-type]


def post(ledger: Ledger, *events: EventBase) -> Any:
    return ledger.post(list(events))


def ranked(view: Any) -> list[tuple[int, str]]:
    return [(entry.rank, entry.cadre_id) for entry in view.entries]


def test_the_top_scorers_of_a_unit_head_its_ranking(ledger: Ledger, projections: Projections) -> None:
    """In a Xiantao unit, merit bonuses raise and deductions lower a cadre, and the ranking follows."""
    post(
        ledger,
        *(registration(f"C{n}", unit_id="U1") for n in range(1, 7)),
        registration("C7", unit_id="U2"),
    )
    post(
        ledger,
        merit("C2", date(2025, 3, 1), "merit_first_class", "provincial"),  # 一等功, 15.00
        merit("C4", date(2025, 4, 1), "merit_third_class", "municipal"),  # 三等功, 4.00
        merit("C4", date(2025, 5, 1), "citation", "county"),  # 嘉奖, 1.00
        merit("C5", date(2025, 6, 1), "commendation", "municipal"),  # 表彰, 3.00
        deduction("C1", date(2025, 11, 1), "criticism"),  # 通报批评, -1.00
        merit("C7", date(2025, 3, 1), "honorary_title", "national"),  # another unit, 25.00
    )
    ranking = projections.rankings("unit:U1", as_of=date(2025, 12, 1))
    assert ranked(ranking) == [(1, "C2"), (2, "C4"), (3, "C5"), (4, "C3"), (4, "C6"), (6, "C1")]
    assert [entry.total for entry in ranking.entries] == [
        Decimal(points) for points in ("15.00", "5.00", "3.00", "0.00", "0.00", "-1.00")
    ]
    assert ranking.entries[1].components.merit == Decimal("5.00")
    assert ranking.entries[-1].components.deductions == Decimal("-1.00")
    assert ranked(projections.rankings("all", as_of=date(2025, 12, 1)))[:2] == [(1, "C7"), (2, "C2")]
    # At the end of the last quarter C1 shared fourth place; the criticism of November dropped it two places.
    assert [(entry.previous_rank, entry.movement) for entry in ranking.entries][::5] == [(1, 0), (4, -2)]


def test_an_admonishment_gates_promotion_for_six_months_and_no_longer(
    ledger: Ledger, projections: Projections
) -> None:
    """A cadre otherwise fit for promotion is held back by an admonishment (诫勉) for its six gate months."""
    post(ledger, *(registration(f"C{n}") for n in (1, 2, 3)))
    post(
        ledger,
        merit("C1", date(2024, 6, 1), "merit_first_class", "provincial"),
        AppraisalRecorded(
            cadre_id="C1", effective_on=date(2025, 1, 15), source=source(), year=2024, result="excellent"
        ),
        deduction("C1", date(2025, 3, 10), "admonishment"),
    )
    during = projections.eligibility("C1", as_of=date(2025, 6, 1))
    assert not during.eligible
    assert [check.check for check in during.checks if not check.passed] == ["gates"]
    gates = next(check for check in during.checks if check.check == "gates")
    assert gates.detail == "admonishment of 2025-03-10 gates until 2025-09-10"

    assert not projections.eligibility("C1", as_of=date(2025, 9, 9)).eligible, "the last gated day"
    after = projections.eligibility("C1", as_of=date(2025, 9, 10))
    assert after.eligible
    assert next(check for check in after.checks if check.check == "gates").detail == "no active gate"
    assert [entry.cadre_id for entry in projections.shortlist(as_of=date(2025, 9, 10)).entries] == ["C1"]
    assert projections.shortlist(as_of=date(2025, 6, 1)).entries == []


def test_three_quarters_in_the_bottom_three_climb_the_escalation_ladder(
    ledger: Ledger, projections: Projections
) -> None:
    """Xiantao: bottom three once → commitment speech and summons talk, twice → admonishment talk, three
    times in a row → removal from post; a cadre who climbs out starts again.

    A unit of ten (the minimum pool). Each quarter is ranked on its own points (the illustrative basis
    `period`): C1–C7 gain every quarter (C7 8.00, C6 6.00, C1 4.00, C2 3.00, C3 2.00, C4 1.00, C5 0.50),
    C8–C10 nothing, so C8–C10 tie at rank 8 in 2025Q1 and 2025Q2. In 2025Q3 C8 gains 25.00 and C5 nothing:
    C5, C9 and C10 tie at 0.00, rank 8 — C9 and C10 for the third time, C5 for the first."""
    post(ledger, *(registration(f"C{n}", on=date(2025, 1, 1), unit_id="U1") for n in range(1, 11)))
    awards = {
        "C1": ("citation", "national"),
        "C2": ("citation", "provincial"),
        "C3": ("citation", "municipal"),
        "C4": ("citation", "county"),
        "C5": ("citation", "unit"),
        "C6": ("commendation", "national"),
        "C7": ("merit_third_class", "national"),
    }

    def quarter(on: date, skip: str = "") -> None:
        post(ledger, *(merit(c, on, award, level) for c, (award, level) in awards.items() if c != skip))

    quarter(date(2025, 1, 5))
    first = projections.escalations("2025Q1")
    assert first.basis == "period"
    assert [(e.cadre_id, e.streak, e.step, e.action) for e in first.escalations] == [
        (cadre_id, 1, 1, "commitment_speech_and_summons_talk") for cadre_id in ("C10", "C8", "C9")
    ]
    assert first.escalations[0].label == "表态发言+约谈"
    quarter(date(2025, 4, 5))
    second = projections.escalations("2025Q2")
    assert [(e.cadre_id, e.streak, e.step, e.action) for e in second.escalations] == [
        (cadre_id, 2, 2, "admonishment_talk") for cadre_id in ("C10", "C8", "C9")
    ]

    quarter(date(2025, 7, 5), skip="C5")
    post(ledger, merit("C8", date(2025, 8, 1), "honorary_title", "national"))  # 25.00: C8 climbs out
    third = projections.escalations("2025Q3")
    assert [(e.cadre_id, e.streak, e.step, e.action) for e in third.escalations] == [
        ("C10", 3, 3, "removal_from_post"),
        ("C9", 3, 3, "removal_from_post"),
        ("C5", 1, 1, "commitment_speech_and_summons_talk"),
    ]
    assert third.escalations[0].label == "调离岗位"


def test_a_unit_smaller_than_the_recall_pool_escalates_nobody(
    ledger: Ledger, projections: Projections
) -> None:
    """Escalations use the recalls' minimum pool (10 in the illustrative policy): the six cadres of a unit,
    all tied at 0.00, are not its bottom three, whatever the quarter."""
    post(ledger, *(registration(f"C{n}", on=date(2025, 1, 1), unit_id="U1") for n in range(1, 7)))
    assert projections.escalations("2025Q1").escalations == []
    assert projections.recalls("2025Q1").candidates == []


@pytest.mark.parametrize("basis", ["total", "period"])
def test_the_period_views_of_a_ledger_without_cadres_are_empty_and_a_tie_at_zero_escalates_everyone(
    ledger: Ledger, projections: Projections, basis: str
) -> None:
    """An escalation reads twelve periods together (`ScoreSums.recorded_of_windows`): with no cadre at all
    (no cell to sum) every period view answers, empty. Then eleven cadres of one unit, registered on
    2025-01-01 without a point: all tie at 0.00, so all are the unit's bottom three (ties at the edge
    included) in 2025Q1 and 2025Q2 and none is known before, so each has a streak of 2 in 2025Q2 (step 2);
    known at 0, nobody."""
    text = illustrative_policy_text()
    text = text.replace(
        '[escalation]\nbottom_count = 3\nbasis = "period"',
        f'[escalation]\nbottom_count = 3\nbasis = "{basis}"',
    )
    ledger.publish_policy(
        re.sub(r'(?m)^version = ".*"$', f'version = "test-{basis}"', text), effective_on=date(2020, 1, 1)
    )
    for period in ("2025Q1", "2025", "2025-03"):
        assert projections.escalations(period).escalations == []
        assert projections.escalations(period, "all").escalations == []
        assert projections.recalls(period).candidates == []
        assert projections.boards(period).black == []
    post(ledger, *(registration(f"C{n:02d}", on=date(2025, 1, 1), unit_id="U1") for n in range(1, 12)))
    escalated = projections.escalations("2025Q2").escalations
    assert [(e.cadre_id, e.streak, e.step) for e in escalated] == [(f"C{n:02d}", 2, 2) for n in range(1, 12)]
    assert projections.escalations("2025Q2", known_at=0).escalations == []


def test_a_window_that_ends_before_it_starts_counts_nothing_when_read_with_others(
    ledger: Ledger, projections: Projections
) -> None:
    """`Index.snapshots` sums several windows as differences of running sums; a window whose first day
    is after its last holds no day, so it counts nothing (not the negative of what lies between), like the
    same window read alone."""
    post(ledger, registration("C1", on=date(2025, 1, 1)), merit("C1", date(2025, 7, 15)))
    projections.catch_up()
    index = projections.index
    empty, whole = index.snapshots(
        [(day(date(2025, 6, 30)), day(date(2025, 9, 1))), (day(date(2025, 12, 31)), None)], ledger.head()
    )
    alone = index.snapshot(day(date(2025, 6, 30)), ledger.head(), day(date(2025, 9, 1)))
    code = index.cadre_codes["C1"]
    assert empty.components[code].tolist() == [0] * 6 == alone.components[code].tolist()
    assert int(empty.totals[code]) == 0
    assert int(whole.totals[code]) > 0, "the merit counts in the window that holds its day"


def test_a_vetoed_cadre_is_left_off_the_red_board_of_the_vetoed_year(
    ledger: Ledger, projections: Projections
) -> None:
    """Xianning's one-vote veto (一票否决): the year's top scorer is vetoed, so the red board skips him."""
    post(ledger, *(registration(f"C{n}") for n in (1, 2, 3)))
    post(
        ledger,
        merit("C1", date(2025, 3, 1), "merit_first_class", "provincial"),  # 15.00, not barred by a veto
        merit("C2", date(2025, 3, 1), "merit_third_class", "provincial"),  # 6.00
        VetoApplied(
            cadre_id="C1", effective_on=date(2025, 5, 1), source=source(), year=2025, reason="安全事故"
        ),
    )
    boards = projections.boards("2025")
    assert ranked(projections.rankings(period="2025"))[0] == (1, "C1"), "still ranked first"
    assert [(entry.rank, entry.cadre_id) for entry in boards.red] == [(2, "C2"), (3, "C3")]
    # Ten black places, three cadres: red comes first, so only the vetoed C1 is left for black.
    assert [entry.cadre_id for entry in boards.black] == ["C1"], "nobody is on both boards"
    assert [entry.cadre_id for entry in projections.boards("2024").red] == ["C1", "C2", "C3"]
    veto = next(c for c in projections.eligibility("C1", as_of=date(2025, 12, 1)).checks if c.check == "veto")
    assert (veto.passed, veto.detail) == (False, "one-vote veto in 2025")


def test_cadres_who_left_leadership_posts_are_still_ranked_in_their_cohort(
    ledger: Ledger, projections: Projections
) -> None:
    """Xiantao: after the change of term, cadres who left leadership posts stay in the points scheme."""
    post(
        ledger,
        registration("C1", leadership=True, principal=True),
        registration("C2", leadership=True, principal=True),
        registration("C3", leadership=False),
    )
    post(
        ledger,
        CadreLeftLeadership(cadre_id="C2", effective_on=date(2025, 3, 1), source=source()),
        merit("C2", date(2025, 4, 1), "merit_second_class", "provincial"),
    )
    before, after = date(2025, 2, 28), date(2025, 6, 30)
    assert ranked(projections.rankings("cohort:left_leadership", as_of=before)) == []
    assert ranked(projections.rankings("cohort:principal", as_of=before)) == [(1, "C1"), (1, "C2")]
    assert ranked(projections.rankings("cohort:left_leadership", as_of=after)) == [(1, "C2")]
    assert ranked(projections.rankings("cohort:principal", as_of=after)) == [(1, "C1")]
    assert ranked(projections.rankings("all", as_of=after)) == [(1, "C2"), (2, "C1"), (2, "C3")]
    cadre = projections.cadre("C2", as_of=after)
    assert (cadre.leadership, cadre.principal, cadre.left_leadership) == (False, False, True)
    standing = projections.eligibility("C2", as_of=after, scope="cohort:left_leadership").checks[-1]
    assert (standing.check, standing.passed) == ("standing", True)


def test_an_auditor_replays_a_ranking_before_and_after_an_award_was_reversed(
    ledger: Ledger, projections: Projections
) -> None:
    """An award reversed on appeal (申诉) counts in a ranking read known before the reversal, not after."""
    post(ledger, *(registration(f"C{n}") for n in (1, 2)))
    post(ledger, merit("C1", date(2025, 2, 1), "merit_third_class", "county"))  # 2.00
    award = post(ledger, merit("C2", date(2025, 3, 1), "merit_third_class", "provincial")).results[0]  # 6.00
    reversal = post(
        ledger,
        EntryReversed(
            cadre_id="C2",
            effective_on=date(2025, 6, 1),
            source=source(),
            target_event_id=award.event_id,
            reason="申诉成立",
        ),
    ).results[0]
    as_of = date(2025, 4, 30)  # before the reversal's own date, after the award's
    known_before = projections.rankings(as_of=as_of, known_at=reversal.position - 1)
    assert [(e.rank, e.cadre_id, e.total) for e in known_before.entries] == [
        (1, "C2", Decimal("6.00")),
        (2, "C1", Decimal("2.00")),
    ]
    assert known_before.position == reversal.position - 1
    known_after = projections.rankings(as_of=as_of, known_at=reversal.position)
    assert [(e.rank, e.cadre_id, e.total) for e in known_after.entries] == [
        (1, "C1", Decimal("2.00")),
        (2, "C2", Decimal("0.00")),
    ]
    assert ranked(projections.rankings(as_of=as_of)) == ranked(known_after), "now is after the reversal"

    # The auditor may name the moment instead of the position: the instant the award was recorded.
    (award_logged,) = ledger.events(after=award.position - 1, limit=1)
    (reversal_logged,) = ledger.events(after=reversal.position - 1, limit=1)
    assert award_logged.recorded_at < reversal_logged.recorded_at, "two transactions, two instants"
    at_the_award = projections.rankings(as_of=as_of, known_at=award_logged.recorded_at)
    assert (at_the_award.known_at, at_the_award.position) == (award_logged.recorded_at, award.position)
    assert at_the_award.entries == known_before.entries


def test_a_late_transfer_moves_the_cadre_between_units_only_for_reads_known_after_it(
    ledger: Ledger, projections: Projections
) -> None:
    """A transfer recorded late changes the past unit only for reads known after it was recorded."""
    post(
        ledger,
        registration("C1", unit_id="U1"),
        registration("C2", unit_id="U1"),
        registration("C3", unit_id="U2"),
    )
    post(ledger, merit("C1", date(2024, 8, 1)))
    transfer = post(
        ledger, CadreTransferred(cadre_id="C1", effective_on=date(2024, 6, 1), source=source(), unit_id="U2")
    ).results[0]
    as_of, known_before = date(2024, 9, 30), transfer.position - 1

    def members(scope: str, known_at: int, on: date = as_of) -> list[str]:
        return [entry.cadre_id for entry in projections.rankings(scope, as_of=on, known_at=known_at).entries]

    assert (members("unit:U1", known_before), members("unit:U2", known_before)) == (["C1", "C2"], ["C3"])
    assert projections.cadre("C1", as_of=as_of, known_at=known_before).unit_id == "U1"
    assert (members("unit:U1", transfer.position), members("unit:U2", transfer.position)) == (
        ["C2"],
        ["C1", "C3"],
    )
    assert projections.cadre("C1", as_of=as_of).unit_id == "U2"
    before_the_move = date(2024, 5, 31)
    assert members("unit:U1", transfer.position, before_the_move) == ["C1", "C2"]


def test_the_bottom_of_each_large_enough_unit_is_recalled_to_the_party_school(
    ledger: Ledger, projections: Projections
) -> None:
    """Zhuxi's 回炉: the bottom three of each unit of ten or more are listed; a recall stays open until it is
    completed."""
    post(ledger, *(registration(f"A{n:02d}", unit_id="U1") for n in range(1, 11)))
    post(ledger, *(registration(f"B{n}", unit_id="U2") for n in range(1, 5)))
    post(ledger, *(merit(f"A{n:02d}", date(2025, 2, 1), "commendation", "municipal") for n in range(1, 8)))
    post(ledger, deduction("A10", date(2025, 3, 1), "criticism"))
    recalls = projections.recalls("2025Q1")
    assert [(c.cadre_id, c.rank, c.pool_size) for c in recalls.candidates] == [
        ("A08", 8, 10),
        ("A09", 8, 10),
        ("A10", 10, 10),
    ], "U2 has four cadres: too few to recall anyone"
    assert recalls.open_recalls == []

    post(
        ledger,
        RecallOrdered(
            cadre_id="A10", effective_on=date(2025, 4, 10), source=source(), period="2025Q1", reason="末位"
        ),
    )
    opened = projections.recalls("2025Q2").open_recalls
    assert [(r.cadre_id, r.ordered_on, r.period) for r in opened] == [("A10", date(2025, 4, 10), "2025Q1")]
    recall_check = next(
        c for c in projections.eligibility("A10", as_of=date(2025, 6, 30)).checks if c.check == "recall"
    )
    assert not recall_check.passed
    post(
        ledger,
        RecallCompleted(cadre_id="A10", effective_on=date(2025, 7, 20), source=source(), outcome="passed"),
    )
    assert projections.recalls("2025Q2").open_recalls == opened, "completed in Q3, so still open at Q2's end"
    assert projections.recalls("2025Q3").open_recalls == []


def test_a_read_with_min_position_catches_up_first_and_an_unreached_position_raises(
    ledger: Ledger, projections: Projections
) -> None:
    """A read that passes `min_position` answers only once the read models reach it; a position the log never
    reaches raises NotCaughtUp after the (small) timeout."""
    post(ledger, registration("C1"))
    started = projections.position()
    posted = post(ledger, registration("C2"), merit("C2", date(2025, 1, 2)))
    assert posted.position > started and projections.index.position == started, "not caught up yet"
    view = projections.rankings(as_of=date(2025, 6, 30), min_position=posted.position)
    assert view.position == posted.position
    assert ranked(view) == [(1, "C2"), (2, "C1")]

    with pytest.raises(NotCaughtUp) as raised:
        projections.wait_for(posted.position + 1, timeout=0.05)
    assert (raised.value.min_position, raised.value.position) == (posted.position + 1, posted.position)
    assert projections.wait_for(posted.position, timeout=0) == posted.position


def pages(projections: Projections, limit: int, **first: Any) -> list[Any]:
    page = projections.rankings(limit=limit, **first)
    found = [page]
    while page.next_cursor is not None:
        page = projections.rankings(cursor=page.next_cursor, limit=limit)
        found.append(page)
    return found


def test_cursor_pages_return_the_whole_ranking_exactly_once_in_order(
    ledger: Ledger, projections: Projections
) -> None:
    """Paging through a ranking with cursors yields every entry once, in order, even while the log grows:
    a cursor pins the log position of the first page."""
    post(ledger, *(registration(f"C{n}") for n in range(1, 10)))
    post(
        ledger,
        *(merit(f"C{n}", date(2025, 2, 1), "citation", ("county", "municipal")[n % 2]) for n in range(1, 7)),
    )
    as_of = date(2025, 12, 1)
    whole = projections.rankings(as_of=as_of)
    first = projections.rankings(as_of=as_of, limit=4)
    post(ledger, merit("C9", date(2025, 3, 1), "honorary_title", "national"))  # lands between the pages
    found = [first]
    while found[-1].next_cursor is not None:
        found.append(projections.rankings(cursor=found[-1].next_cursor, limit=4))
    assert [len(page.entries) for page in found] == [4, 4, 1]
    assert [entry for page in found for entry in page.entries] == whole.entries
    assert {page.position for page in found} == {whole.position}
    assert ranked(whole)[:4] == [(1, "C1"), (1, "C3"), (1, "C5"), (4, "C2")], "ties share a rank, by cadre_id"
    assert ranked(projections.rankings(as_of=as_of))[0] == (1, "C9"), "a new read sees the new award"


def test_cursor_pages_of_a_yearly_ranking_compare_with_the_previous_year(
    ledger: Ledger, projections: Projections
) -> None:
    """Pages of a ranking read by `period` carry the same previous ranks as the whole ranking."""
    post(ledger, *(registration(f"C{n}") for n in range(1, 5)))
    post(
        ledger,
        merit("C1", date(2024, 6, 1), "citation", "national"),
        merit("C4", date(2025, 8, 1), "merit_first_class", "national"),
        merit("C3", date(2025, 11, 1), "merit_first_class", "national"),
    )
    whole = projections.rankings(period="2025")
    found = pages(projections, 1, period="2025")
    assert [page.previous_as_of for page in found] == [date(2024, 12, 31)] * 4
    assert [entry for page in found for entry in page.entries] == whole.entries


def test_the_ledger_and_the_read_models_agree_whether_a_recall_is_still_open(
    ledger: Ledger, projections: Projections
) -> None:
    """A completion the ledger accepts closes the recall in the read models too, or the ledger refuses it."""
    post(ledger, registration("C1"))
    post(
        ledger,
        RecallOrdered(
            cadre_id="C1", effective_on=date(2025, 6, 1), source=source(), period="2025Q2", reason="末位"
        ),
    )
    misdated = RecallCompleted(
        cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), outcome="passed"
    )
    try:
        post(ledger, misdated)
    except InvalidInput:
        return  # refused: the ledger and the read models agree that the recall is open
    assert projections.recalls("2025Q4", "all").open_recalls == []


def test_the_ledger_and_the_read_models_agree_whether_an_investigation_is_open(
    ledger: Ledger, projections: Projections
) -> None:
    """A close the ledger accepts ends the investigation in the read models too, or the ledger refuses it."""
    post(ledger, registration("C1"))
    post(
        ledger,
        InvestigationOpened(cadre_id="C1", effective_on=date(2025, 6, 1), source=source(), reference="X"),
    )
    misdated = InvestigationClosed(
        cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), reference="X"
    )
    try:
        post(ledger, misdated)
    except InvalidInput:
        return
    checks = projections.eligibility("C1", as_of=date(2025, 12, 1)).checks
    assert next(check for check in checks if check.check == "investigation").passed
