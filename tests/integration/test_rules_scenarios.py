"""The rules of issue 9 (docs/projections.md, docs/policy.md): one small hand-built log per rule, each store.

Every expected figure is worked out by hand in the test's docstring — ranks, totals in points, which cadres
are listed and why — and never by calling the code under test. Unless a test publishes its own rulebook,
the packaged illustrative policy (`illustrative-3`) is in force: red and black boards of 10, recalls and
escalations of the bottom 3 of each unit of at least 10 cadres, ranked on the period's points; standing on
the cumulative total; tie-breakers grade_years, service_years, excellent_appraisals.

Merit values used below (illustrative table): honorary_title national 25.00, provincial 18.00, municipal
12.00, county 6.00; merit_first_class national 20.00, provincial 15.00, municipal 10.00, county 5.00;
merit_second_class provincial 9.00; merit_third_class national 8.00, county 2.00; citation national 4.00,
provincial 3.00, municipal 2.00, county 1.00; commendation municipal 3.00; performance_award municipal 1.00.
Deductions: criticism -1.00, demerit -5.00, major_demerit -8.00, demotion -10.00. Appraisal: excellent
5.00, ungraded 0.00. The conftest registration starts service on 2010-03-01 and the grade on 2020-01-01
unless a test says otherwise. Nobody accrues tenure unless a test posts `tenure.accrued`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ledger import InvalidInput, Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    CadreGradeChanged,
    CadreRegistered,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    Scores,
    TenureAccrued,
    VetoApplied,
)
from ledger.policy.load import illustrative_policy_text
from ledger.projections.service import Projections
from tests.conftest import registration, source

D = Decimal

# (award, level, points): thirteen distinct merit values, best first.
LADDER: list[tuple[str, str, str]] = [
    ("honorary_title", "national", "25.00"),
    ("merit_first_class", "national", "20.00"),
    ("honorary_title", "provincial", "18.00"),
    ("merit_first_class", "provincial", "15.00"),
    ("honorary_title", "municipal", "12.00"),
    ("merit_first_class", "municipal", "10.00"),
    ("merit_second_class", "provincial", "9.00"),
    ("merit_third_class", "national", "8.00"),
    ("honorary_title", "county", "6.00"),
    ("merit_first_class", "county", "5.00"),
    ("citation", "national", "4.00"),
    ("citation", "provincial", "3.00"),
    ("citation", "municipal", "2.00"),
]

Q1_DAY = date(2025, 2, 1)


@pytest.fixture
def projections(ledger: Ledger) -> Iterator[Projections]:
    opened = Projections.open(ledger)
    yield opened
    opened.close()


def cadre(
    cadre_id: str,
    *,
    on: date = date(2024, 1, 1),
    unit_id: str = "U1",
    grade: str = "一级科员",
    grade_since: date | None = None,
    service_started_on: date | None = None,
) -> CadreRegistered:
    event = registration(cadre_id, on=on, unit_id=unit_id, grade=grade)
    changes: dict[str, Any] = {}
    if grade_since is not None:
        changes["grade_since"] = grade_since
    if service_started_on is not None:
        changes["service_started_on"] = service_started_on
    return msgspec.structs.replace(event, **changes)


def merit(cadre_id: str, on: date, award: str = "citation", level: str = "county") -> MeritAwarded:
    return MeritAwarded(cadre_id=cadre_id, effective_on=on, source=source(), award=award, level=level)  # type: ignore[arg-type]


def ladder_merit(cadre_id: str, step: int, on: date = Q1_DAY) -> MeritAwarded:
    award, level, _points = LADDER[step]
    return merit(cadre_id, on, award, level)


def deduction(cadre_id: str, on: date, kind: str) -> DeductionApplied:
    return DeductionApplied(cadre_id=cadre_id, effective_on=on, source=source(), kind=kind, level="county")  # type: ignore[arg-type]


def appraisal(cadre_id: str, year: int, on: date, result: str = "excellent") -> AppraisalRecorded:
    return AppraisalRecorded(cadre_id=cadre_id, effective_on=on, source=source(), year=year, result=result)  # type: ignore[arg-type]


def veto(cadre_id: str, year: int, on: date) -> VetoApplied:
    return VetoApplied(cadre_id=cadre_id, effective_on=on, source=source(), year=year, reason="一票否决")


def reversal(cadre_id: str, target: uuid.UUID, on: date) -> EntryReversed:
    return EntryReversed(
        cadre_id=cadre_id, effective_on=on, source=source(), target_event_id=target, reason="复核"
    )


def evaluation(cadre_id: str, period: str, on: date, score: str = "80") -> EvaluationRecorded:
    scores = Scores(self=D(score), section=D(score), leadership=D(score))
    return EvaluationRecorded(
        cadre_id=cadre_id, effective_on=on, source=source(), period=period, scores=scores
    )


def accrual(cadre_id: str, period: str, on: date) -> TenureAccrued:
    return TenureAccrued(cadre_id=cadre_id, effective_on=on, source=source(), period=period)


def post(ledger: Ledger, *events: EventBase) -> Any:
    return ledger.post(list(events))


def custom_policy(version: str, *edits: tuple[str, str], effective_from: date = date(2020, 1, 1)) -> str:
    """The packaged illustrative policy under another version (in force from `effective_from`), with each
    regular expression of `edits` replaced exactly once."""
    text = illustrative_policy_text()
    text, count = re.subn(r'^version = "[^"]*"$', f'version = "{version}"', text, flags=re.MULTILINE)
    assert count == 1
    text, count = re.subn(
        r"^effective_from = 2020-01-01$",
        f"effective_from = {effective_from.isoformat()}",
        text,
        flags=re.MULTILINE,
    )
    assert count == 1
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, pattern
    return text


def boards_policy(version: str, red: int, black: int) -> str:
    return custom_policy(
        version,
        (r"^red_count = \d+$", f"red_count = {red}"),
        (r"^black_count = \d+$", f"black_count = {black}"),
    )


def period_mode(kind: str) -> tuple[str, str]:
    """An edit giving deduction `kind` appraisal_years = "period" (its gate and cap unchanged)."""
    return (
        rf'^({kind}\s+= \{{ gate_months = \d+,\s+appraisal_cap = "\w+",)\s+(?:appraisal_years = "\w+",\s+)?',
        r'\1 appraisal_years = "period", ',
    )


def ranked(view: Any) -> list[tuple[int, str, Decimal]]:
    return [(entry.rank, entry.cadre_id, entry.total) for entry in view.entries]


def board(entries: Any) -> list[tuple[int, str]]:
    return sorted((entry.rank, entry.cadre_id) for entry in entries)


def check(view: Any, name: str) -> Any:
    return next(item for item in view.checks if item.check == name)


def entry_of(page: Any, event_id: uuid.UUID) -> Any:
    return next(entry for entry in page.entries if entry.event_id == event_id)


def recorded(ledger: Ledger, event_id: uuid.UUID) -> Any:
    return ledger.event(event_id).event


# §1 Bottom N / top N.


def test_a_tied_group_straddling_the_bottom_edge_is_recalled_whole(
    ledger: Ledger, projections: Projections
) -> None:
    """A unit of ten, all registered 2025-01-01, earns in 2025Q1: A01 25.00, A02 20.00, A03 18.00,
    A04 15.00, A05 12.00, A06 10.00, A07 = A08 = A09 = 1.00 (a county citation each), A10 nothing (0.00).
    Tie-breakers all equal (same service and grade dates, no appraisals), so the ranks are
    1, 2, 3, 4, 5, 6, 7, 7, 7, 10. The pool (10) reaches recall.pool_size_min (10); N = 3. The 3rd from
    the bottom is A08 with rank 7, so bottom(3) = every rank ≥ 7: A07, A08, A09 (7) and A10 (10) — four
    cadres, pool size 10."""
    post(ledger, *(cadre(f"A{n:02d}", on=date(2025, 1, 1)) for n in range(1, 11)))
    post(
        ledger,
        *(ladder_merit(f"A{n:02d}", n - 1) for n in range(1, 7)),
        *(merit(f"A{n:02d}", Q1_DAY) for n in (7, 8, 9)),
    )
    recalls = projections.recalls("2025Q1")
    assert sorted((c.rank, c.cadre_id, c.pool_size, c.total) for c in recalls.candidates) == [
        (7, "A07", 10, D("1.00")),
        (7, "A08", 10, D("1.00")),
        (7, "A09", 10, D("1.00")),
        (10, "A10", 10, D("0.00")),
    ]


def test_four_cadres_tied_last_in_a_unit_of_ten_are_all_recalled_and_all_escalated(
    ledger: Ledger, projections: Projections
) -> None:
    """Ten cadres registered 2025-01-01; in 2025Q1 B01..B06 earn 25.00, 20.00, 18.00, 15.00, 12.00,
    10.00 and B07..B10 nothing. Ranks 1..6, then 7, 7, 7, 7. The 3rd from the bottom (B08) has rank 7,
    so bottom(3) = B07, B08, B09, B10 (rank 7). Recalls list all four; escalations (bottom_count 3, pool
    10 ≥ pool_size_min 10) list all four with streak 1 (2024Q4 has no members yet), step 1,
    commitment_speech_and_summons_talk."""
    post(ledger, *(cadre(f"B{n:02d}", on=date(2025, 1, 1)) for n in range(1, 11)))
    post(ledger, *(ladder_merit(f"B{n:02d}", n - 1) for n in range(1, 7)))
    last = [f"B{n:02d}" for n in (7, 8, 9, 10)]
    recalls = projections.recalls("2025Q1")
    assert sorted((c.rank, c.cadre_id) for c in recalls.candidates) == [(7, cadre_id) for cadre_id in last]
    escalations = projections.escalations("2025Q1")
    assert sorted((e.cadre_id, e.streak, e.step, e.action) for e in escalations.escalations) == [
        (cadre_id, 1, 1, "commitment_speech_and_summons_talk") for cadre_id in last
    ]


def test_seventeen_cadres_tied_at_the_bottom_of_thirty_are_all_on_the_black_board(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-boards-3-10`: red_count 3, black_count 10. Thirty cadres registered 2025-01-01 in one
    batch; S01..S13 earn the thirteen distinct values 25.00 … 2.00 in 2025Q1, S14..S30 (17 cadres) nothing.
    Ranks 1..13, then 14 for the seventeen. Red = top(3) = S01, S02, S03 (ranks 1–3). Black = bottom(10)
    among the 27 not on red: the 10th from the bottom is one of the seventeen with rank 14, so black is
    every rank ≥ 14 — all seventeen (S14..S30), longer than 10."""
    ledger.publish_policy(boards_policy("rules-boards-3-10", 3, 10))
    post(
        ledger,
        *(cadre(f"S{n:02d}", on=date(2025, 1, 1)) for n in range(1, 31)),
        *(ladder_merit(f"S{n:02d}", n - 1) for n in range(1, 14)),
    )
    boards = projections.boards("2025Q1")
    assert board(boards.red) == [(1, "S01"), (2, "S02"), (3, "S03")]
    assert board(boards.black) == [(14, f"S{n:02d}") for n in range(14, 31)]
    assert {entry.total for entry in boards.black} == {D("0.00")}


def test_a_tie_at_the_red_edge_puts_the_whole_tied_group_on_the_red_board(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-boards-3-2`: red_count 3, black_count 2. In 2025Q1: N1 25.00, N2 20.00, N3 = N4 =
    18.00 (provincial honorary titles), N5 15.00, N6 12.00, N7 = N8 = 10.00. Ranks 1, 2, 3, 3, 5, 6, 7, 7.
    Red = top(3): the 3rd from the top (N3) has rank 3, so every rank ≤ 3: N1, N2, N3, N4 — four on a
    board of three. Black = bottom(2) among N5..N8 (ranks 5, 6, 7, 7): the 2nd from the bottom has rank
    7, so N7 and N8."""
    ledger.publish_policy(boards_policy("rules-boards-3-2", 3, 2))
    post(ledger, *(cadre(f"N{n}", on=date(2025, 1, 1)) for n in range(1, 9)))
    post(
        ledger,
        ladder_merit("N1", 0),
        ladder_merit("N2", 1),
        ladder_merit("N3", 2),
        ladder_merit("N4", 2),
        ladder_merit("N5", 3),
        ladder_merit("N6", 4),
        ladder_merit("N7", 5),
        ladder_merit("N8", 5),
    )
    boards = projections.boards("2025Q1")
    assert board(boards.red) == [(1, "N1"), (2, "N2"), (3, "N3"), (3, "N4")]
    assert board(boards.black) == [(7, "N7"), (7, "N8")]


def test_in_a_small_pool_the_red_board_comes_first_and_nobody_is_on_both(
    ledger: Ledger, projections: Projections
) -> None:
    """Illustrative boards: red 10, black 10. Twelve cadres with distinct 2025Q1 points C01 25.00 …
    C12 3.00: ranks 1..12. Red = top(10) = C01..C10. Black = bottom(10) among the two not on red (C11,
    C12): N ≥ that pool, so both — and no one else, though ranks 3..12 are the bottom ten of the unit."""
    post(ledger, *(cadre(f"C{n:02d}", on=date(2025, 1, 1)) for n in range(1, 13)))
    post(ledger, *(ladder_merit(f"C{n:02d}", n - 1) for n in range(1, 13)))
    boards = projections.boards("2025Q1")
    assert board(boards.red) == [(n, f"C{n:02d}") for n in range(1, 11)]
    assert board(boards.black) == [(11, "C11"), (12, "C12")]
    assert not {e.cadre_id for e in boards.red} & {e.cadre_id for e in boards.black}


def test_a_board_of_size_zero_lists_nobody_and_a_total_basis_policy_ranks_boards_on_totals(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-boards-total`: red_count 0, black_count 1, boards basis total. O1 earns 25.00 in 2025Q1
    (2025-02-01); O2 1.00 and O3 2.00 in 2025Q2 (2025-05-01). boards(2025Q2) ranks on totals as of
    2025-06-30: O1 25.00 (1), O3 2.00 (2), O2 1.00 (3). Red = top(0) = nobody; black = bottom(1) of all
    three (none is on red) = O2 (3). (On the period's points O1 would be last with 0.00.)"""
    ledger.publish_policy(
        custom_policy(
            "rules-boards-total",
            (r"^red_count = \d+$", "red_count = 0"),
            (r"^black_count = \d+\nbasis = \"\w+\"", 'black_count = 1\nbasis = "total"'),
        )
    )
    post(ledger, *(cadre(f"O{n}", on=date(2025, 1, 1)) for n in (1, 2, 3)))
    post(
        ledger,
        merit("O1", date(2025, 2, 1), "honorary_title", "national"),
        merit("O2", date(2025, 5, 1), "citation", "county"),
        merit("O3", date(2025, 5, 1), "citation", "municipal"),
    )
    boards = projections.boards("2025Q2")
    assert boards.basis == "total"
    assert boards.red == []
    assert [(e.rank, e.cadre_id, e.total) for e in boards.black] == [(3, "O2", D("1.00"))]


def test_the_boards_basis_is_that_of_the_policy_known_at_the_read(
    ledger: Ledger, projections: Projections
) -> None:
    """BB1 earns 25.00 on 2025-02-01, BB2 1.00 on 2025-05-01. Then policy `rules-boards-basis-total` (boards
    basis total, from 2020-01-01) is published at position P. boards(2025Q2) known at P - 1 follows the
    illustrative policy (basis period): BB2 1.00 (1), BB1 0.00 (2). Known at P (basis total): BB1 25.00
    (1), BB2 1.00 (2). Both red boards hold both cadres (red 10)."""
    post(ledger, cadre("BB1", on=date(2025, 1, 1)), cadre("BB2", on=date(2025, 1, 1)))
    post(ledger, merit("BB1", date(2025, 2, 1), "honorary_title", "national"), merit("BB2", date(2025, 5, 1)))
    published = ledger.publish_policy(
        custom_policy(
            "rules-boards-basis-total", (r"^(black_count = \d+\n)basis = \"\w+\"", r'\1basis = "total"')
        )
    )
    before = projections.boards("2025Q2", known_at=published.position - 1)
    assert (before.basis, [(e.rank, e.cadre_id, e.total) for e in before.red]) == (
        "period",
        [(1, "BB2", D("1.00")), (2, "BB1", D("0.00"))],
    )
    after = projections.boards("2025Q2", known_at=published.position)
    assert (after.basis, [(e.rank, e.cadre_id, e.total) for e in after.red]) == (
        "total",
        [(1, "BB1", D("25.00")), (2, "BB2", D("1.00"))],
    )


def test_a_vetoed_cadre_is_skipped_for_red_and_the_next_cadres_fill_the_board(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-boards-3-2-veto`: red 3, black 2. In 2025Q1: V1 25.00, V2 20.00 (a first-class
    merit, not a barred award), V3 18.00, V4 15.00, V5 12.00, V6 10.00; V2 is vetoed for 2025 on
    2025-02-15. Ranks 1..6 (V2 keeps rank 2). Red = top(3) among the non-vetoed V1, V3, V4, V5, V6: the
    3rd of them is V4 (rank 4) → V1 (1), V3 (3), V4 (4). Black = bottom(2) among the cadres not on red
    (V2, V5, V6): the 2nd from the bottom is V5 (rank 5) → V5, V6. V2 is on neither board."""
    ledger.publish_policy(boards_policy("rules-boards-3-2-veto", 3, 2))
    post(ledger, *(cadre(f"V{n}", on=date(2025, 1, 1)) for n in range(1, 7)))
    post(ledger, *(ladder_merit(f"V{n}", n - 1) for n in range(1, 7)), veto("V2", 2025, date(2025, 2, 15)))
    boards = projections.boards("2025Q1")
    assert board(boards.red) == [(1, "V1"), (3, "V3"), (4, "V4")]
    assert board(boards.black) == [(5, "V5"), (6, "V6")]
    ranking = projections.rankings(period="2025Q1")
    assert (ranking.entries[1].rank, ranking.entries[1].cadre_id) == (2, "V2"), "still ranked second"


def test_a_two_person_unit_is_too_small_to_escalate(ledger: Ledger, projections: Projections) -> None:
    """U2 has two cadres: F1 earns 1.00 in 2025Q1, F2 nothing. The pool (2) is below recall.pool_size_min
    (10), so escalations skip it, as recalls do: nobody is listed, though F2 is last of U2."""
    post(
        ledger, cadre("F1", on=date(2025, 1, 1), unit_id="U2"), cadre("F2", on=date(2025, 1, 1), unit_id="U2")
    )
    post(ledger, merit("F1", Q1_DAY))
    assert projections.escalations("2025Q1").escalations == []
    assert projections.recalls("2025Q1").candidates == []
    assert [(e.rank, e.cadre_id) for e in projections.rankings("unit:U2", period="2025Q1").entries] == [
        (1, "F1"),
        (2, "F2"),
    ]


def test_three_quarters_at_the_bottom_of_a_unit_climb_to_step_three(
    ledger: Ledger, projections: Projections
) -> None:
    """Ten cadres registered 2025-01-01. In each of 2025Q1, Q2, Q3, E01..E07 earn a county citation
    (1.00) dated in the quarter; E08, E09, E10 earn nothing. Each quarter's window ranks seven at 1 and
    three at 8; the 3rd from the bottom has rank 8, so bottom(3) = E08, E09, E10 every quarter. Read for
    2025Q3: streak 3 (Q3, Q2, Q1; 2024Q4 has no members) → step min(3, 3) = 3, removal_from_post (调离岗位).
    Read for 2025Q2: streak 2 → step 2, admonishment_talk."""
    post(ledger, *(cadre(f"E{n:02d}", on=date(2025, 1, 1)) for n in range(1, 11)))
    for day in (date(2025, 2, 1), date(2025, 5, 1), date(2025, 8, 1)):
        post(ledger, *(merit(f"E{n:02d}", day) for n in range(1, 8)))
    bottom = ["E08", "E09", "E10"]
    third = projections.escalations("2025Q3")
    assert sorted((e.cadre_id, e.streak, e.step, e.action, e.label) for e in third.escalations) == [
        (cadre_id, 3, 3, "removal_from_post", "调离岗位") for cadre_id in bottom
    ]
    second = projections.escalations("2025Q2")
    assert sorted((e.cadre_id, e.streak, e.step, e.action) for e in second.escalations) == [
        (cadre_id, 2, 2, "admonishment_talk") for cadre_id in bottom
    ]


# §2 One-vote veto belongs to its year.


def test_a_veto_decided_after_its_year_zeroes_the_barred_awards_of_that_year_for_reads_known_after_it(
    ledger: Ledger, projections: Projections
) -> None:
    """W1, W2, W3 registered 2024-01-01. Awards of 2024: W1 a municipal commendation (表彰, barred) 3.00 on
    2024-11-01 and a municipal citation (嘉奖, not barred) 2.00 on 2024-11-15; W2 a provincial citation 3.00
    on 2024-11-01. Then (position V) a veto of W1 for 2024, decided 2025-01-10; then (position L) a
    barred municipal performance award (实绩奖励) 1.00 dated 2024-12-01; then (position R) the veto is
    reversed on 2025-02-01. All read as of 2024-12-31 (2024Q4; boards: red 10, black 10, basis period =
    2024-10-01..2024-12-31, which holds every award).

    Known before V: W1 3.00 + 2.00 = 5.00 (rank 1), W2 3.00 (2), W3 0.00 (3); history running totals
    0.00, 3.00, 5.00; red = everyone (top(10) of 3), W1 included; black empty; the veto check passes.
    Known at V: the commendation counts 0.00 → W1 2.00: W2 3.00 (1), W1 2.00 (2), W3 0.00 (3); W1's
    history counts 0.00, 0.00, 2.00 (running 0.00, 0.00, 2.00), the commendation's adjustment names the
    veto; standing and merit component 2.00; red = top(10) of the non-vetoed W2, W3 = W2 (1), W3 (3);
    black = bottom(10) of those not on red = W1 (2); the veto check as of 2024-12-31 fails.
    Known at L: the performance award (points 1.00) counts 0.00 too: W1 still 2.00.
    Known at R: everything counts: W1 3.00 + 2.00 + 1.00 = 6.00 (rank 1), back on red, the check passes.
    As of 2025-06-30 known at L, the veto for 2024 does not touch the 2025 eligibility check."""
    post(ledger, *(cadre(f"W{n}") for n in (1, 2, 3)))
    awards = post(
        ledger,
        merit("W1", date(2024, 11, 1), "commendation", "municipal"),
        merit("W1", date(2024, 11, 15), "citation", "municipal"),
        merit("W2", date(2024, 11, 1), "citation", "provincial"),
    )
    commendation, citation = awards.results[0].event_id, awards.results[1].event_id
    assert [item.points for item in awards.results] == [D("3.00"), D("2.00"), D("3.00")]
    vetoed = post(ledger, veto("W1", 2024, date(2025, 1, 10))).results[0]
    late = post(ledger, merit("W1", date(2024, 12, 1), "performance_award", "municipal")).results[0]
    assert late.points == D("1.00"), "recorded at its table value; the veto acts when reading"
    undone = post(ledger, reversal("W1", vetoed.event_id, date(2025, 2, 1))).results[0]
    as_of = date(2024, 12, 31)
    before, at_veto, at_late, after = vetoed.position - 1, vetoed.position, late.position, undone.position

    # Known before the veto: both awards count.
    page = ledger.history("W1", as_of=as_of, known_at=before)
    assert [(e.counted_points, e.running_total) for e in page.entries] == [
        (D("0.00"), D("0.00")),
        (D("3.00"), D("3.00")),
        (D("2.00"), D("5.00")),
    ]
    assert entry_of(page, commendation).adjustment is None
    assert ranked(projections.rankings(as_of=as_of, known_at=before)) == [
        (1, "W1", D("5.00")),
        (2, "W2", D("3.00")),
        (3, "W3", D("0.00")),
    ]
    boards = projections.boards("2024Q4", known_at=before)
    assert (board(boards.red), boards.black) == ([(1, "W1"), (2, "W2"), (3, "W3")], [])
    assert check(projections.eligibility("W1", as_of=as_of, known_at=before), "veto").passed

    # Known at the veto: the commendation counts nothing, the citation still counts.
    page = ledger.history("W1", as_of=as_of, known_at=at_veto)
    assert [(e.type, e.points, e.counted_points, e.running_total) for e in page.entries] == [
        ("cadre.registered", D("0.00"), D("0.00"), D("0.00")),
        ("merit.awarded", D("3.00"), D("0.00"), D("0.00")),
        ("merit.awarded", D("2.00"), D("2.00"), D("2.00")),
    ]
    assert page.total == D("2.00")
    adjustment = entry_of(page, commendation).adjustment
    assert adjustment is not None and "veto" in adjustment.lower()
    assert entry_of(page, citation).adjustment is None
    standing = projections.cadre("W1", as_of=as_of, known_at=at_veto)
    assert (standing.total, standing.components.merit) == (D("2.00"), D("2.00"))
    assert ranked(projections.rankings(as_of=as_of, known_at=at_veto)) == [
        (1, "W2", D("3.00")),
        (2, "W1", D("2.00")),
        (3, "W3", D("0.00")),
    ]
    quarter = projections.rankings(period="2024Q4", basis="period", known_at=at_veto)
    assert ranked(quarter) == [(1, "W2", D("3.00")), (2, "W1", D("2.00")), (3, "W3", D("0.00"))]
    boards = projections.boards("2024Q4", known_at=at_veto)
    assert board(boards.red) == [(1, "W2"), (3, "W3")]
    assert board(boards.black) == [(2, "W1")]
    assert not check(projections.eligibility("W1", as_of=as_of, known_at=at_veto), "veto").passed

    # A barred award posted after the veto counts nothing either.
    page = ledger.history("W1", as_of=as_of, known_at=at_late)
    late_entry = entry_of(page, late.event_id)
    assert (late_entry.points, late_entry.counted_points, page.total) == (D("1.00"), D("0.00"), D("2.00"))
    assert late_entry.adjustment is not None and "veto" in late_entry.adjustment.lower()
    assert projections.cadre("W1", as_of=as_of, known_at=at_late).components.merit == D("2.00")
    in_2025 = projections.eligibility("W1", as_of=date(2025, 6, 30), known_at=at_late)
    assert check(in_2025, "veto").passed, "a veto for 2024 does not bar 2025"

    # Reversed: everything counts again.
    page = ledger.history("W1", as_of=as_of, known_at=after)
    assert [(e.points, e.counted_points) for e in page.entries if e.type == "merit.awarded"] == [
        (D("3.00"), D("3.00")),
        (D("2.00"), D("2.00")),
        (D("1.00"), D("1.00")),
    ]
    assert all(e.adjustment is None for e in page.entries)
    assert page.total == D("6.00")
    standing = projections.cadre("W1", as_of=as_of, known_at=after)
    assert (standing.total, standing.components.merit) == (D("6.00"), D("6.00"))
    assert ranked(projections.rankings(as_of=as_of, known_at=after))[0] == (1, "W1", D("6.00"))
    assert (1, "W1") in board(projections.boards("2024Q4", known_at=after).red)
    assert check(projections.eligibility("W1", as_of=as_of, known_at=after), "veto").passed


def test_a_reversed_barred_award_counts_nothing_under_the_veto_and_nothing_once_the_veto_is_lifted(
    ledger: Ledger,
) -> None:
    """Y1: a municipal commendation (barred) 3.00 on 2024-06-01; a veto for 2024 on 2024-09-01 (position V);
    the commendation reversed on 2024-10-01 (position C); the veto reversed on 2024-11-01 (position U).
    History as of 2024-12-31, sorted by counts_from (a reversal counts from its target's date):
    known before V: registration 0.00, commendation 3.00 → total 3.00;
    known at V: the commendation counts 0.00 → total 0.00;
    known at C: the commendation 0.00 and its reversal minus that, 0.00 → total 0.00 (not -3.00);
    known at U: the commendation 3.00, its reversal -3.00, the veto 0.00, its reversal 0.00 → running
    0.00, 3.00, 0.00, 0.00, 0.00, total 0.00. A reversed merit counts nothing either way."""
    post(ledger, cadre("Y1"))
    award = post(ledger, merit("Y1", date(2024, 6, 1), "commendation", "municipal")).results[0]
    vetoed = post(ledger, veto("Y1", 2024, date(2024, 9, 1))).results[0]
    award_undone = post(ledger, reversal("Y1", award.event_id, date(2024, 10, 1))).results[0]
    veto_undone = post(ledger, reversal("Y1", vetoed.event_id, date(2024, 11, 1))).results[0]
    as_of = date(2024, 12, 31)

    def counted(known_at: int) -> tuple[list[tuple[str, Decimal]], Decimal]:
        page = ledger.history("Y1", as_of=as_of, known_at=known_at)
        return [(e.type, e.counted_points) for e in page.entries], page.total

    assert counted(vetoed.position - 1) == (
        [("cadre.registered", D("0.00")), ("merit.awarded", D("3.00"))],
        D("3.00"),
    )
    assert counted(vetoed.position)[1] == D("0.00")
    assert counted(award_undone.position) == (
        [
            ("cadre.registered", D("0.00")),
            ("merit.awarded", D("0.00")),
            ("entry.reversed", D("0.00")),
            ("veto.applied", D("0.00")),
        ],
        D("0.00"),
    )
    page = ledger.history("Y1", as_of=as_of, known_at=veto_undone.position)
    assert [(e.type, e.counted_points, e.running_total) for e in page.entries] == [
        ("cadre.registered", D("0.00"), D("0.00")),
        ("merit.awarded", D("3.00"), D("3.00")),
        ("entry.reversed", D("-3.00"), D("0.00")),
        ("veto.applied", D("0.00"), D("0.00")),
        ("entry.reversed", D("0.00"), D("0.00")),
    ]
    assert page.total == D("0.00")


def test_a_veto_counts_its_own_points_from_its_date_while_zeroing_its_years_barred_awards(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-veto-points`: veto.points -2.00 (barred awards as illustrative). Y2: a municipal
    commendation 3.00 on 2024-11-01; a veto for 2024 decided 2025-01-10. As of 2024-12-31 (known now) the
    commendation counts 0.00 and the veto's own points are not yet in force (they count from 2025-01-10):
    total 0.00. As of 2025-01-10: merit 0.00, deductions -2.00, total -2.00; the veto's history entry
    counts -2.00."""
    ledger.publish_policy(
        custom_policy("rules-veto-points", (r'^(\[veto\]\n)points = "0\.00"', r'\1points = "-2.00"'))
    )
    post(ledger, cadre("Y2"))
    post(ledger, merit("Y2", date(2024, 11, 1), "commendation", "municipal"))
    vetoed = post(ledger, veto("Y2", 2024, date(2025, 1, 10))).results[0]
    assert vetoed.points == D("-2.00")
    year_end = projections.cadre("Y2", as_of=date(2024, 12, 31))
    assert (year_end.total, year_end.components.merit, year_end.components.deductions) == (
        D("0.00"),
        D("0.00"),
        D("0.00"),
    )
    decided = projections.cadre("Y2", as_of=date(2025, 1, 10))
    assert (decided.total, decided.components.merit, decided.components.deductions) == (
        D("-2.00"),
        D("0.00"),
        D("-2.00"),
    )
    page = ledger.history("Y2", as_of=date(2025, 1, 10))
    assert (entry_of(page, vetoed.event_id).counted_points, page.total) == (D("-2.00"), D("-2.00"))


def test_a_veto_bars_the_red_board_of_periods_whose_last_day_is_in_its_year(
    ledger: Ledger, projections: Projections
) -> None:
    """WK1 earns 5.00 (a county first-class merit, not barred) on 2024-12-30, WK2 1.00 on 2024-12-31; WK1
    is vetoed for 2024 on 2025-01-10. Boards (red 10, black 10, basis period):
    2025-W01 (2024-12-30 … 2025-01-05) ends in 2025: not barred — red WK1 (1, 5.00), WK2 (2, 1.00); black
    empty. 2024-W52 (2024-12-23 … 2024-12-29) ends in 2024: both 0.00 (rank 1); red = the non-vetoed WK2;
    black = WK1. 2024Q4 ends in 2024: WK1 5.00 (1) is off red; red WK2 (2); black WK1 (1)."""
    post(ledger, cadre("WK1"), cadre("WK2"))
    post(
        ledger,
        merit("WK1", date(2024, 12, 30), "merit_first_class", "county"),
        merit("WK2", date(2024, 12, 31)),
        veto("WK1", 2024, date(2025, 1, 10)),
    )
    week = projections.boards("2025-W01")
    assert ([(e.rank, e.cadre_id, e.total) for e in week.red], week.black) == (
        [(1, "WK1", D("5.00")), (2, "WK2", D("1.00"))],
        [],
    )
    week = projections.boards("2024-W52")
    assert (board(week.red), board(week.black)) == ([(1, "WK2")], [(1, "WK1")])
    quarter = projections.boards("2024Q4")
    assert (board(quarter.red), board(quarter.black)) == ([(2, "WK2")], [(1, "WK1")])


# §3 Sanctions and appraisals: order of recording never matters.


def test_an_excellent_year_counts_the_same_whether_posted_before_or_after_the_demerit_of_that_year(
    ledger: Ledger, projections: Projections
) -> None:
    """G1: the 2024 appraisal (excellent, recorded 2024-12-20) is posted first, a demerit of 2024-03-01
    (cap ungraded, appraisal_years (2024,)) after it. G2: the demerit first, the appraisal after. G3: a 2023
    excellent (recorded 2024-01-10, 5.00) and a demotion of 2025-03-01 (-10.00; its years 2025 and 2026 hold
    no appraisal). As of 2025-06-30: G1 = G2 = -5.00 + 0.00 (ungraded) = -5.00 and G3 = 5.00 - 10.00 =
    -5.00. Equal totals, equal grade and service days; excellent_appraisals: G3 1, G1 0, G2 0 → G3 rank 1,
    G1 and G2 share rank 2 (had G1's excellent counted, G1 would total 0.00 and rank first).
    Both appraisals record 5.00 (the recorded result's points) and count 0.00. Eligibility of G1 and G2
    agrees: years_in_grade counts 65 months since 2020-01-01 less the ungraded 2024 = 53 months = 4.42 ≥ 2
    (passes); the latest appraisal, 2024, counts ungraded (fails: competent required)."""
    post(ledger, *(cadre(f"G{n}") for n in (1, 2, 3)))
    first = post(
        ledger,
        appraisal("G1", 2024, date(2024, 12, 20)),
        deduction("G2", date(2024, 3, 1), "demerit"),
        appraisal("G3", 2023, date(2024, 1, 10)),
    )
    second = post(
        ledger,
        deduction("G1", date(2024, 3, 1), "demerit"),
        appraisal("G2", 2024, date(2024, 12, 20)),
        deduction("G3", date(2025, 3, 1), "demotion"),
    )
    assert (first.results[0].points, second.results[1].points) == (D("5.00"), D("5.00"))
    as_of = date(2025, 6, 30)
    assert ranked(projections.rankings(as_of=as_of)) == [
        (1, "G3", D("-5.00")),
        (2, "G1", D("-5.00")),
        (2, "G2", D("-5.00")),
    ]
    for cadre_id, appraisal_id in (("G1", first.results[0].event_id), ("G2", second.results[1].event_id)):
        entry = entry_of(ledger.history(cadre_id, as_of=as_of), appraisal_id)
        assert (entry.points, entry.counted_points) == (D("5.00"), D("0.00"))
        assert entry.adjustment is not None and "ungraded" in entry.adjustment
        standing = projections.cadre(cadre_id, as_of=as_of)
        assert (standing.total, standing.components.appraisal) == (D("-5.00"), D("0.00"))
    g1, g2 = (projections.eligibility(cadre_id, as_of=as_of) for cadre_id in ("G1", "G2"))
    for name in ("years_in_grade", "appraisal"):
        assert check(g1, name) == check(g2, name)
    assert check(g1, "years_in_grade").passed
    assert "2024 ungraded" in check(g1, "years_in_grade").detail
    assert not check(g1, "appraisal").passed


def test_a_major_demerit_leaves_its_year_and_the_next_ungraded_and_a_demerit_only_its_year(
    ledger: Ledger, projections: Projections
) -> None:
    """H1 and H2 registered 2022-01-01, each with excellent appraisals for 2022 (recorded 2023-01-10),
    2023 (2024-01-10), 2024 (2025-01-10) and 2025 (2025-12-10). H1 gets a major demerit (year_and_next)
    on 2023-05-01: appraisal_years (2023, 2024), so 2023 and 2024 count ungraded, 2022 and 2025 excellent:
    5 + 0 + 0 + 5 - 8 = 2.00. H2 gets a demerit (year) on 2023-05-01: (2023,), so only 2023 is ungraded:
    5 + 0 + 5 + 5 - 5 = 10.00. H3 (registered 2024-01-01) gets a major demerit on 2024-05-01: recorded
    appraisal_years (2024, 2025) — 2026 is not among them; its 2024 and 2025 excellents count 0.00:
    0 + 0 - 8 = -8.00. As of 2025-06-30 H1's latest appraisal (2024) counts ungraded: the appraisal check
    fails; H2's (2024, excellent) passes; as of 2025-12-12 H1's latest (2025) is excellent: passes."""
    post(ledger, cadre("H1", on=date(2022, 1, 1)), cadre("H2", on=date(2022, 1, 1)), cadre("H3"))
    days = {
        2022: date(2023, 1, 10),
        2023: date(2024, 1, 10),
        2024: date(2025, 1, 10),
        2025: date(2025, 12, 10),
    }
    sanctions = post(
        ledger,
        deduction("H1", date(2023, 5, 1), "major_demerit"),
        deduction("H2", date(2023, 5, 1), "demerit"),
        deduction("H3", date(2024, 5, 1), "major_demerit"),
    )
    post(
        ledger,
        *(appraisal(cadre_id, year, on) for cadre_id in ("H1", "H2") for year, on in days.items()),
        appraisal("H3", 2024, days[2024]),
        appraisal("H3", 2025, days[2025]),
    )
    years = [tuple(recorded(ledger, item.event_id).appraisal_years) for item in sanctions.results]
    assert years == [(2023, 2024), (2023,), (2024, 2025)]
    today = date(2025, 12, 15)

    def counted(cadre_id: str) -> list[Decimal]:
        page = ledger.history(cadre_id, as_of=today)
        return [e.counted_points for e in page.entries if e.type == "appraisal.recorded"]

    assert counted("H1") == [D("5.00"), D("0.00"), D("0.00"), D("5.00")]
    assert counted("H2") == [D("5.00"), D("0.00"), D("5.00"), D("5.00")]
    assert counted("H3") == [D("0.00"), D("0.00")]
    totals = {cadre_id: projections.cadre(cadre_id, as_of=today).total for cadre_id in ("H1", "H2", "H3")}
    assert totals == {"H1": D("2.00"), "H2": D("10.00"), "H3": D("-8.00")}
    assert not check(projections.eligibility("H1", as_of=date(2025, 6, 30)), "appraisal").passed
    assert check(projections.eligibility("H2", as_of=date(2025, 6, 30)), "appraisal").passed
    assert check(projections.eligibility("H1", as_of=date(2025, 12, 12)), "appraisal").passed


def test_a_period_policy_leaves_ungraded_every_year_of_the_influence_period_but_the_year_it_ends(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-period-1`: admonishment (gate 6, cap competent), demerit (12), major_demerit (18) and
    demotion (24, all three cap ungraded) use appraisal_years = "period": years Y with S.year ≤ Y < E.year,
    E = S + gate months.
    P6: admonishment 2024-01-10 → E 2024-07-10, same year → no years; 2024 stays excellent (5.00).
    P12: demerit 2024-01-10 → E 2025-01-10 → (2024,); 2024 ungraded (0.00), 2025 excellent (5.00).
    P18: major demerit 2024-03-01 → E 2025-09-01 → (2024,): 2024 ungraded, 2025 excellent.
    P24: demotion 2024-03-01 → E 2026-03-01 → (2024, 2025): both ungraded.
    Appraisals: excellent for 2024 (recorded 2025-01-10) and 2025 (2025-12-10) for each. Totals as of
    2025-12-15: P6 5 + 5 - 2 = 8.00; P12 0 + 5 - 5 = 0.00; P18 0 + 5 - 8 = -3.00; P24 0 + 0 - 10 = -10.00."""
    ledger.publish_policy(
        custom_policy(
            "rules-period-1",
            period_mode("admonishment"),
            period_mode("demerit"),
            period_mode("major_demerit"),
            period_mode("demotion"),
        )
    )
    names = ("P6", "P12", "P18", "P24")
    post(ledger, *(cadre(cadre_id) for cadre_id in names))
    sanctions = post(
        ledger,
        deduction("P6", date(2024, 1, 10), "admonishment"),
        deduction("P12", date(2024, 1, 10), "demerit"),
        deduction("P18", date(2024, 3, 1), "major_demerit"),
        deduction("P24", date(2024, 3, 1), "demotion"),
    )
    post(
        ledger,
        *(appraisal(cadre_id, 2024, date(2025, 1, 10)) for cadre_id in names),
        *(appraisal(cadre_id, 2025, date(2025, 12, 10)) for cadre_id in names),
    )
    years = [tuple(recorded(ledger, item.event_id).appraisal_years) for item in sanctions.results]
    assert years == [(), (2024,), (2024,), (2024, 2025)]
    today = date(2025, 12, 15)
    counted = {
        cadre_id: [
            e.counted_points
            for e in ledger.history(cadre_id, as_of=today).entries
            if e.type == "appraisal.recorded"
        ]
        for cadre_id in names
    }
    assert counted == {
        "P6": [D("5.00"), D("5.00")],
        "P12": [D("0.00"), D("5.00")],
        "P18": [D("0.00"), D("5.00")],
        "P24": [D("0.00"), D("0.00")],
    }
    totals = {cadre_id: projections.cadre(cadre_id, as_of=today).total for cadre_id in names}
    assert totals == {"P6": D("8.00"), "P12": D("0.00"), "P18": D("-3.00"), "P24": D("-10.00")}


def test_an_investigation_holds_the_year_ungraded_until_it_closes_without_a_sanction(
    ledger: Ledger, projections: Projections
) -> None:
    """I1: investigation INV-7 opened 2024-06-01; the 2024 appraisal (excellent) recorded 2025-01-10;
    INV-7 closed 2025-03-01 with no sanction. As of 2025-02-28 INV-7 is open and was opened in 2024, so
    it holds 2024: the appraisal counts ungraded (0.00; adjustment names INV-7), total 0.00, the
    appraisal check fails. As of 2025-03-01 it is closed: the year counts as recorded (补定等次), 5.00.
    I2: the same appraisal, but investigation INV-8 opened 2025-02-01: opened after 2024 (2025 > 2024), it
    holds nothing of 2024, so as of 2025-02-28 the appraisal counts 5.00 (the investigation check fails)."""
    post(ledger, cadre("I1"), cadre("I2"))
    opened = InvestigationOpened(
        cadre_id="I1", effective_on=date(2024, 6, 1), source=source(), reference="INV-7"
    )
    posted = post(
        ledger,
        opened,
        appraisal("I1", 2024, date(2025, 1, 10)),
        InvestigationClosed(cadre_id="I1", effective_on=date(2025, 3, 1), source=source(), reference="INV-7"),
        InvestigationOpened(cadre_id="I2", effective_on=date(2025, 2, 1), source=source(), reference="INV-8"),
        appraisal("I2", 2024, date(2025, 1, 10)),
    )
    held_id, other_id = posted.results[1].event_id, posted.results[4].event_id
    open_day, close_day = date(2025, 2, 28), date(2025, 3, 1)

    held = entry_of(ledger.history("I1", as_of=open_day), held_id)
    assert (held.points, held.counted_points) == (D("5.00"), D("0.00"))
    assert held.adjustment is not None and "INV-7" in held.adjustment
    standing = projections.cadre("I1", as_of=open_day)
    assert (standing.total, standing.components.appraisal) == (D("0.00"), D("0.00"))
    assert not check(projections.eligibility("I1", as_of=open_day), "appraisal").passed

    cleared = entry_of(ledger.history("I1", as_of=close_day), held_id)
    assert (cleared.counted_points, cleared.adjustment) == (D("5.00"), None)
    assert projections.cadre("I1", as_of=close_day).total == D("5.00")
    eligibility = projections.eligibility("I1", as_of=close_day)
    assert check(eligibility, "appraisal").passed and check(eligibility, "investigation").passed

    other = entry_of(ledger.history("I2", as_of=open_day), other_id)
    assert (other.counted_points, other.adjustment) == (D("5.00"), None)
    assert projections.cadre("I2", as_of=open_day).total == D("5.00")
    assert not check(projections.eligibility("I2", as_of=open_day), "investigation").passed


def test_a_capped_appraisal_counts_the_points_of_its_counted_result_in_its_own_policys_table(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-appraisal-a` (from 2020-01-01): ungraded 1.00 (excellent 5.00, competent 2.00).
    AQ1: demerit 2024-03-01 (-5.00, 2024 ungraded) and a 2024 excellent recorded 2025-01-10 → counts
    ungraded, 1.00 → total -4.00. AQ2: admonishment 2024-03-01 (-2.00, cap competent for 2024) and the same
    excellent → counts competent, 2.00 → total 0.00. AQ3: the excellent alone → 5.00.
    Then policy `rules-appraisal-b` from 2025-06-01: excellent 6.00, competent 3.00, ungraded -1.00. The
    2024 appraisals keep the table of their own policy_version (A): 1.00, 2.00, 5.00. AQ4: demerit 2025-07-01
    (-5.00, under B) and a 2025 excellent recorded 2025-12-10 (under B, points 6.00) → counts ungraded in B's
    table, -1.00 → total -6.00."""
    ledger.publish_policy(custom_policy("rules-appraisal-a", (r'^ungraded = "0\.00"', 'ungraded = "1.00"')))
    post(ledger, *(cadre(f"AQ{n}") for n in (1, 2, 3, 4)))
    post(
        ledger,
        deduction("AQ1", date(2024, 3, 1), "demerit"),
        deduction("AQ2", date(2024, 3, 1), "admonishment"),
    )
    first = post(ledger, *(appraisal(f"AQ{n}", 2024, date(2025, 1, 10)) for n in (1, 2, 3)))
    ledger.publish_policy(
        custom_policy(
            "rules-appraisal-b",
            (r'^excellent = "5\.00"', 'excellent = "6.00"'),
            (r'^competent = "2\.00"', 'competent = "3.00"'),
            (r'^ungraded = "0\.00"', 'ungraded = "-1.00"'),
            effective_from=date(2025, 6, 1),
        )
    )
    post(ledger, deduction("AQ4", date(2025, 7, 1), "demerit"))
    late = post(ledger, appraisal("AQ4", 2025, date(2025, 12, 10))).results[0]
    assert late.points == D("6.00")
    today = date(2025, 12, 15)
    counted = [
        entry_of(ledger.history(f"AQ{n}", as_of=today), item.event_id).counted_points
        for n, item in zip((1, 2, 3), first.results, strict=True)
    ]
    assert counted == [D("1.00"), D("2.00"), D("5.00")]
    assert entry_of(ledger.history("AQ4", as_of=today), late.event_id).counted_points == D("-1.00")
    totals = [projections.cadre(f"AQ{n}", as_of=today).total for n in (1, 2, 3, 4)]
    assert totals == [D("-4.00"), D("0.00"), D("5.00"), D("-6.00")]


def test_a_deduction_dated_later_in_the_year_caps_an_appraisal_read_before_its_date(
    ledger: Ledger, projections: Projections
) -> None:
    """U1's 2024 appraisal (excellent, 5.00) is recorded 2024-12-20; a demerit dated 2024-12-28 (its years:
    2024) is posted after it. A deduction acts on its years whatever the read's date: as of 2024-12-25,
    before the demerit's own date, the appraisal already counts ungraded (0.00) and the demerit's -5.00
    does not count yet: total 0.00; the appraisal check fails (2024 ungraded)."""
    post(ledger, cadre("U1"))
    recorded_appraisal = post(ledger, appraisal("U1", 2024, date(2024, 12, 20))).results[0]
    post(ledger, deduction("U1", date(2024, 12, 28), "demerit"))
    as_of = date(2024, 12, 25)
    page = ledger.history("U1", as_of=as_of)
    entry = entry_of(page, recorded_appraisal.event_id)
    assert (entry.points, entry.counted_points, page.total) == (D("5.00"), D("0.00"), D("0.00"))
    assert projections.cadre("U1", as_of=as_of).total == D("0.00")
    assert not check(projections.eligibility("U1", as_of=as_of), "appraisal").passed


def test_an_investigation_closed_and_reopened_after_the_year_no_longer_holds_it(
    ledger: Ledger, projections: Projections
) -> None:
    """I3: investigation REF opened 2024-06-01 and closed 2024-09-01; the 2024 appraisal (excellent)
    recorded 2025-01-10; REF opened again on 2025-02-01. Closes and opens act in valid-time order, so as of
    2025-02-15 the 2024 opening is closed, and the open one was opened in 2025 (2025 > 2024): nothing holds
    2024, which counts 5.00 as of 2025-01-15 and as of 2025-02-15."""
    post(ledger, cadre("I3"))
    posted = post(
        ledger,
        InvestigationOpened(cadre_id="I3", effective_on=date(2024, 6, 1), source=source(), reference="REF"),
        InvestigationClosed(cadre_id="I3", effective_on=date(2024, 9, 1), source=source(), reference="REF"),
        appraisal("I3", 2024, date(2025, 1, 10)),
        InvestigationOpened(cadre_id="I3", effective_on=date(2025, 2, 1), source=source(), reference="REF"),
    )
    for as_of in (date(2025, 1, 15), date(2025, 2, 15)):
        entry = entry_of(ledger.history("I3", as_of=as_of), posted.results[2].event_id)
        assert (entry.counted_points, entry.adjustment) == (D("5.00"), None), as_of
        assert projections.cadre("I3", as_of=as_of).total == D("5.00")


def test_an_investigation_opened_again_while_open_holds_from_its_first_opening(
    ledger: Ledger, projections: Projections
) -> None:
    """Investigation R of J4 opened on 2024-02-10 and closed on 2024-06-01 is recorded first; then an
    opening of R dated 2023-11-01 (accepted: R was closed when it was posted) and a 2023 excellent. In valid
    time R has been open since 2023-11-01 — during 2023 — until 2024-06-01: as of 2024-03-01 the 2023
    appraisal is held ungraded (0.00); as of 2024-07-01 it counts as recorded (5.00)."""
    post(ledger, cadre("J4", on=date(2023, 1, 1)))
    post(
        ledger,
        InvestigationOpened(cadre_id="J4", effective_on=date(2024, 2, 10), source=source(), reference="R"),
    )
    post(
        ledger,
        InvestigationClosed(cadre_id="J4", effective_on=date(2024, 6, 1), source=source(), reference="R"),
    )
    post(
        ledger,
        InvestigationOpened(cadre_id="J4", effective_on=date(2023, 11, 1), source=source(), reference="R"),
    )
    post(
        ledger,
        AppraisalRecorded(
            cadre_id="J4", effective_on=date(2024, 1, 15), source=source(), year=2023, result="excellent"
        ),
    )
    held = date(2024, 3, 1)
    assert ledger.history("J4", as_of=held).total == D("0.00")
    assert projections.cadre("J4", as_of=held).components.appraisal == D("0.00")
    assert ledger.history("J4", as_of=date(2024, 7, 1)).total == D("5.00")
    assert projections.cadre("J4", as_of=date(2024, 7, 1)).components.appraisal == D("5.00")


# §4 Minimum years in grade (art. 18).


def test_the_minimum_years_in_grade_follow_article_18(ledger: Ledger, projections: Projections) -> None:
    """Illustrative years_in_grade_min: default 2, 二级调研员 3, 一级调研员 4, 二级巡视员 4. No appraisals, so
    the counted years are whole months in grade / 12 (months from grade_since to as_of).
    K1 一级科员 since 2023-06-01: 2025-06-01 → 24 months = 2.00 ≥ 2 passes; 2025-05-31 → 23 fails.
    K2 二级调研员 since 2022-06-01: 36 months = 3.00 ≥ 3 passes on 2025-06-01; 35 on 2025-05-31 fails.
    K3 一级调研员 and K4 二级巡视员 since 2021-06-01: 48 months = 4.00 ≥ 4 passes; 47 fails.
    K5 一级主任科员 since 2023-06-01 (3 under illustrative-1, now the default 2): 24 months passes."""
    grades = {
        "K1": ("一级科员", date(2023, 6, 1)),
        "K2": ("二级调研员", date(2022, 6, 1)),
        "K3": ("一级调研员", date(2021, 6, 1)),
        "K4": ("二级巡视员", date(2021, 6, 1)),
        "K5": ("一级主任科员", date(2023, 6, 1)),
    }
    post(
        ledger,
        *(
            cadre(cadre_id, on=date(2025, 1, 1), grade=g, grade_since=s)
            for cadre_id, (g, s) in grades.items()
        ),
    )

    def passes(cadre_id: str, as_of: date) -> bool:
        return bool(check(projections.eligibility(cadre_id, as_of=as_of), "years_in_grade").passed)

    exact, day_before = date(2025, 6, 1), date(2025, 5, 31)
    assert {cadre_id: passes(cadre_id, exact) for cadre_id in grades} == dict.fromkeys(grades, True)
    assert {
        cadre_id: passes(cadre_id, day_before) for cadre_id in ("K1", "K2", "K3", "K4", "K5")
    } == dict.fromkeys(("K1", "K2", "K3", "K4", "K5"), False)


# §5 Base points independent of cadence.


def test_quarterly_and_yearly_accruals_across_a_grade_change_earn_the_same_closed_form(
    ledger: Ledger, projections: Projections
) -> None:
    """TQ and TY: service from 2010-03-01, 一级科员 since 2020-01-01, registered 2024-01-01, promoted to
    四级主任科员 on 2024-05-10. Rates: service 1.00/year (cap 30 years), grade 0.50/year (cap 10 per stint).
    F(2024-12-31): service months 2010-03-01 → 2025-01-01 = 178 → 178/12 = 14.8333 → 14.83; stints
    2020-01-01 → 2024-05-10 = 52 months → 0.5 × 52/12 = 2.1667 → 2.17, and 2024-05-10 → 2025-01-01 = 7
    months (the 1st is before the 10th) → 0.2917 → 0.29. F = 14.83 + 2.17 + 0.29 = 17.29.
    TQ accrues 2024Q1..Q4: F(03-31) = 169 → 14.08, 51 → 2.125 → 2.13: 16.21; F(06-30) = 172 → 14.33,
    52 → 2.17, 1 month → 0.04: 16.54; F(09-30) = 175 → 14.58, 2.17, 4 → 0.17: 16.92; F(12-31) = 17.29.
    Accruals 16.21, 0.33, 0.38, 0.37 → 17.29. TY accrues 2024 once: 17.29."""
    post(ledger, cadre("TQ"), cadre("TY"))
    post(
        ledger,
        *(
            CadreGradeChanged(
                cadre_id=cadre_id, effective_on=date(2024, 5, 10), source=source(), grade="四级主任科员"
            )
            for cadre_id in ("TQ", "TY")
        ),
    )
    quarter_ends = [date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31)]
    quarterly = [
        post(ledger, accrual("TQ", f"2024Q{n}", end)).results[0].points
        for n, end in enumerate(quarter_ends, 1)
    ]
    assert quarterly == [D("16.21"), D("0.33"), D("0.38"), D("0.37")]
    yearly = post(ledger, accrual("TY", "2024", date(2024, 12, 31))).results[0].points
    assert sum(quarterly) == yearly == D("17.29")
    for cadre_id in ("TQ", "TY"):
        assert projections.cadre(cadre_id, as_of=date(2024, 12, 31)).components.tenure == D("17.29")


def test_an_accrual_and_the_one_before_it_are_both_valued_under_the_policy_in_force_on_its_date(
    ledger: Ledger,
) -> None:
    """Policy `rules-rates-b` from 2025-01-01 doubles the service rate (2.00/year). TP (service 2010-03-01,
    grade 2020-01-01, no change) accrues 2024 on 2024-12-31 under the illustrative policy: service 178
    months → 14.83, grade 60 months → 2.50: 17.33. Then 2025Q1 on 2025-03-31 under B, with P = 2024-12-31
    also valued under B: F_B(2025-03-31) = 2 × 181/12 = 30.1667 → 30.17 plus 0.5 × 63/12 = 2.625 → 2.63,
    = 32.80; F_B(2024-12-31) = 2 × 178/12 = 29.6667 → 29.67 plus 2.50, = 32.17; so 32.80 - 32.17 = 0.63
    (not 32.80 - 17.33)."""
    ledger.publish_policy(
        custom_policy(
            "rules-rates-b",
            (r'^service_points_per_year = "1\.00"', 'service_points_per_year = "2.00"'),
            effective_from=date(2025, 1, 1),
        )
    )
    post(ledger, cadre("TP"))
    assert post(ledger, accrual("TP", "2024", date(2024, 12, 31))).results[0].points == D("17.33")
    assert post(ledger, accrual("TP", "2025Q1", date(2025, 3, 31))).results[0].points == D("0.63")


# §6 One evaluation per cadre and period.


def test_a_second_evaluation_of_a_period_is_refused_until_the_first_is_reversed(ledger: Ledger) -> None:
    """J1's 2025Q1 evaluation (scores 80/80/80 → weighted 80.00 → 4.00) is recorded on 2025-04-05. A
    second one for 2025Q1 is refused (rule evaluation_already_recorded, field period, the message names
    the first event's id) and records nothing, as is a batch holding two for 2025Q3 (item 1); one for
    2025Q2 is accepted. After the first is reversed
    (2025-04-10), a new 2025Q1 evaluation (90/90/90 → 4.50) is accepted."""
    post(ledger, cadre("J1"))
    first = post(ledger, evaluation("J1", "2025Q1", date(2025, 4, 5))).results[0]
    assert first.points == D("4.00")
    head = ledger.head()
    with pytest.raises(InvalidInput) as refused:
        post(ledger, evaluation("J1", "2025Q1", date(2025, 4, 8), "90"))
    assert (refused.value.rule, refused.value.field) == ("evaluation_already_recorded", "period")
    assert str(first.event_id) in refused.value.message
    assert ledger.head() == head, "nothing recorded"
    with pytest.raises(InvalidInput) as refused:
        post(
            ledger,
            evaluation("J1", "2025Q3", date(2025, 10, 5)),
            evaluation("J1", "2025Q3", date(2025, 10, 6)),
        )
    assert (refused.value.rule, refused.value.item) == ("evaluation_already_recorded", 1), "within a batch"
    assert ledger.head() == head
    assert post(ledger, evaluation("J1", "2025Q2", date(2025, 7, 5))).results[0].points == D("4.00")
    post(ledger, reversal("J1", first.event_id, date(2025, 4, 10)))
    again = post(ledger, evaluation("J1", "2025Q1", date(2025, 4, 12), "90")).results[0]
    assert (again.points, again.replayed) == (D("4.50"), False)


def test_an_evaluation_period_written_with_a_trailing_newline_is_not_a_second_period(ledger: Ledger) -> None:
    """J2's 2025Q1 evaluation is recorded. A second one whose period is "2025Q1\\n" names the same quarter
    (or no period at all): it must be refused — as evaluation_already_recorded, or at input as a period
    that is not a whole-string period — and record nothing; it must never be recorded as a second
    evaluation of 2025Q1."""
    post(ledger, cadre("J2"))
    post(ledger, evaluation("J2", "2025Q1", date(2025, 4, 5)))
    head = ledger.head()
    with pytest.raises(InvalidInput) as refused:
        post(ledger, evaluation("J2", "2025Q1\n", date(2025, 4, 8)))
    assert refused.value.rule in ("evaluation_already_recorded", "period_invalid", "field_invalid")
    assert refused.value.field == "period" or refused.value.rule == "evaluation_already_recorded"
    assert ledger.head() == head


def test_an_evaluation_period_written_in_other_digits_is_no_period(ledger: Ledger) -> None:
    """J3's 2025Q4 evaluation is recorded. The same quarter written with full-width (２０２５Q4) or
    Arabic-Indic (٢٠٢٥Q4) digits is no period — Python's \\d matches them — so it is refused as
    period_invalid rather than recorded as a second evaluation of the quarter under another name."""
    post(ledger, cadre("J3"))
    post(ledger, evaluation("J3", "2025Q4", date(2025, 11, 1)))
    head = ledger.head()
    for period in ("２０２５Q4", "٢٠٢٥Q4"):
        with pytest.raises(InvalidInput) as refused:
            post(ledger, evaluation("J3", period, date(2025, 11, 2)))
        assert refused.value.rule in ("period_invalid", "field_invalid"), refused.value.rule
    assert ledger.head() == head


# §7 Tie-breakers.


def test_cadres_ten_days_apart_in_grade_or_service_rank_apart_on_equal_totals(
    ledger: Ledger, projections: Projections
) -> None:
    """Four cadres with 0.00 each, read as of 2025-06-30. L1: grade since 2020-01-01, service since
    2010-03-01. L2: grade since 2020-01-11 (ten days later; still 65 whole months, like L1). L3: as L1.
    L4: as L1 but service since 2010-03-11 (still 183 whole months of service, like the others).
    grade_years compares days: L1, L3, L4 (2007 days) before L2 (1997). Then service_years compares days:
    L1 and L3 (5600 days) before L4 (5590). L1 and L3 are equal on everything: shared rank 1, by cadre_id.
    Ranks: L1 1, L3 1, L4 3, L2 4."""
    post(
        ledger,
        cadre("L1"),
        cadre("L2", grade_since=date(2020, 1, 11)),
        cadre("L3"),
        cadre("L4", service_started_on=date(2010, 3, 11)),
    )
    assert [(e.rank, e.cadre_id) for e in projections.rankings(as_of=date(2025, 6, 30)).entries] == [
        (1, "L1"),
        (1, "L3"),
        (3, "L4"),
        (4, "L2"),
    ]


def test_the_merit_points_tie_breaker_compares_the_merit_component_of_the_basis(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-tie-merit`: tie_breakers merit_points, excellent_appraisals. In 2025Q2 M1 earns a
    municipal citation 2.00 and a criticism -1.00 (period total 1.00, merit 2.00); M2 a county citation 1.00
    (period total 1.00, merit 1.00) after a 25.00 honorary title in Q1 (total merit 26.00). On the 2025Q2
    period basis the totals tie and the period merit decides: M1 (2.00) rank 1, M2 (1.00) rank 2. On the
    total basis M2 leads anyway: 26.00 against 1.00."""
    ledger.publish_policy(
        custom_policy(
            "rules-tie-merit",
            (r"^tie_breakers = \[.*\]$", 'tie_breakers = ["merit_points", "excellent_appraisals"]'),
        )
    )
    post(ledger, cadre("M1", on=date(2025, 1, 1)), cadre("M2", on=date(2025, 1, 1)))
    post(
        ledger,
        merit("M1", date(2025, 5, 1), "citation", "municipal"),
        deduction("M1", date(2025, 5, 2), "criticism"),
        merit("M2", date(2025, 2, 1), "honorary_title", "national"),
        merit("M2", date(2025, 5, 1), "citation", "county"),
    )
    period = projections.rankings(period="2025Q2", basis="period")
    assert ranked(period) == [(1, "M1", D("1.00")), (2, "M2", D("1.00"))]
    assert [e.components.merit for e in period.entries] == [D("2.00"), D("1.00")]
    assert ranked(projections.rankings(period="2025Q2")) == [(1, "M2", D("26.00")), (2, "M1", D("1.00"))]


# §8 Basis.


def test_a_period_ranking_counts_only_the_points_of_its_window(
    ledger: Ledger, projections: Projections
) -> None:
    """X1, X2, X3 registered 2025-01-01. X1: 25.00 on 2025-02-01 (Q1) and 1.00 on 2025-05-01 (Q2). X2: 2.00
    on 2025-05-01. X3: 3.00 on 2025-06-01, reversed on 2025-07-15 (Q3).
    rankings(period 2025Q2, basis period), window 2025-04-01..2025-06-30, known after the reversal:
    X2 2.00 (1), X1 1.00 (2), X3 0.00 (3); X1's merit component 1.00; since 2025-04-01. The previous
    period, 2025Q1's window: X1 25.00 (1), X2 and X3 0.00 (2, 2) → movements X2 +1, X1 -1, X3 -1.
    Known before the reversal: X3 3.00 (1), X2 2.00 (2), X1 1.00 (3).
    basis total for 2025Q2: X1 26.00 (1), X2 2.00 (2), X3 0.00 (3); since None.
    rankings(as_of 2025-05-15, basis period): window 2025-04-01..2025-05-15 (X3's award is later):
    X2 2.00, X1 1.00, X3 0.00; previous = 2025Q1 whole, as of 2025-03-31.
    Boards of 2025Q2 (illustrative, basis period): red = top(10) of three = all, with the period's ranks
    and totals: X2 (1, 2.00), X1 (2, 1.00), X3 (3, 0.00); black empty."""
    post(ledger, *(cadre(f"X{n}", on=date(2025, 1, 1)) for n in (1, 2, 3)))
    posted = post(
        ledger,
        merit("X1", date(2025, 2, 1), "honorary_title", "national"),
        merit("X1", date(2025, 5, 1), "citation", "county"),
        merit("X2", date(2025, 5, 1), "merit_third_class", "county"),
        merit("X3", date(2025, 6, 1), "citation", "provincial"),
    )
    undone = post(ledger, reversal("X3", posted.results[3].event_id, date(2025, 7, 15))).results[0]

    period = projections.rankings(period="2025Q2", basis="period")
    assert (period.basis, period.since, period.as_of) == ("period", date(2025, 4, 1), date(2025, 6, 30))
    assert ranked(period) == [(1, "X2", D("2.00")), (2, "X1", D("1.00")), (3, "X3", D("0.00"))]
    assert period.entries[1].components.merit == D("1.00")
    assert [(e.cadre_id, e.previous_rank, e.movement) for e in period.entries] == [
        ("X2", 2, 1),
        ("X1", 1, -1),
        ("X3", 2, -1),
    ]
    known_before = projections.rankings(period="2025Q2", basis="period", known_at=undone.position - 1)
    assert ranked(known_before) == [(1, "X3", D("3.00")), (2, "X2", D("2.00")), (3, "X1", D("1.00"))]

    total = projections.rankings(period="2025Q2", basis="total")
    assert (total.basis, total.since) == ("total", None)
    assert ranked(total) == [(1, "X1", D("26.00")), (2, "X2", D("2.00")), (3, "X3", D("0.00"))]
    assert projections.rankings(period="2025Q2").basis == "total", "the default basis"

    so_far = projections.rankings(as_of=date(2025, 5, 15), basis="period")
    assert (so_far.basis, so_far.since, so_far.previous_as_of) == (
        "period",
        date(2025, 4, 1),
        date(2025, 3, 31),
    )
    assert ranked(so_far) == [(1, "X2", D("2.00")), (2, "X1", D("1.00")), (3, "X3", D("0.00"))]

    boards = projections.boards("2025Q2")
    assert boards.basis == "period"
    assert [(e.rank, e.cadre_id, e.total) for e in boards.red] == ranked(period)
    assert boards.black == []


def test_cursor_pages_of_a_period_ranking_keep_its_basis(ledger: Ledger, projections: Projections) -> None:
    """X1 earns 25.00 in 2025Q1 and 1.00 on 2025-05-01, X2 2.00 on 2025-05-01, X3 nothing. The 2025Q2
    period ranking is X2 2.00 (1), X1 1.00 (2), X3 0.00 (3); read a page of one entry at a time, the pages
    hold exactly these entries, each with basis period and since 2025-04-01 (a page on totals would put
    X1 first with 26.00). The same for rankings(as_of 2025-05-15, basis period)."""
    post(ledger, *(cadre(f"X{n}", on=date(2025, 1, 1)) for n in (1, 2, 3)))
    post(
        ledger,
        merit("X1", date(2025, 2, 1), "honorary_title", "national"),
        merit("X1", date(2025, 5, 1)),
        merit("X2", date(2025, 5, 1), "merit_third_class", "county"),
    )
    expected = [(1, "X2", D("2.00")), (2, "X1", D("1.00")), (3, "X3", D("0.00"))]
    for first in ({"period": "2025Q2"}, {"as_of": date(2025, 5, 15)}):
        page = projections.rankings(basis="period", limit=1, **first)
        found = [page]
        while page.next_cursor is not None:
            page = projections.rankings(cursor=page.next_cursor, limit=1)
            found.append(page)
        assert [entry for page in found for entry in ranked(page)] == expected, first
        assert {(page.basis, page.since) for page in found} == {("period", date(2025, 4, 1))}


def test_a_period_standing_rule_ranks_the_scope_on_the_quarter_so_far(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-standing-period`: standing = top 30% on basis period. ST1 earns 25.00 on 2025-02-01,
    ST2 1.00 on 2025-05-01, ST3 nothing. As of 2025-05-15 the window is 2025-04-01..2025-05-15: ST2 1.00
    (rank 1), ST1 and ST3 0.00 (rank 2). Allowed: ceil(0.30 × 3) = 1 → ST2 passes, ST1 fails — though on
    totals ST1 (25.00) is first."""
    ledger.publish_policy(
        custom_policy(
            "rules-standing-period",
            (r"^standing = \{[^}]*\}", 'standing = { top_share = "0.30", basis = "period" }'),
        )
    )
    post(ledger, *(cadre(f"ST{n}", on=date(2025, 1, 1)) for n in (1, 2, 3)))
    post(ledger, merit("ST1", date(2025, 2, 1), "honorary_title", "national"), merit("ST2", date(2025, 5, 1)))
    as_of = date(2025, 5, 15)
    assert projections.rankings(as_of=as_of).entries[0].cadre_id == "ST1"
    standing = {
        n: check(projections.eligibility(f"ST{n}", as_of=as_of), "standing").passed for n in (1, 2, 3)
    }
    assert standing == {1: False, 2: True, 3: False}


def test_a_period_points_minimum_for_standing_counts_only_the_quarter_so_far(
    ledger: Ledger, projections: Projections
) -> None:
    """Policy `rules-standing-minimum`: standing = points_min 2.00 on basis period. P1 earns 25.00 on
    2025-02-01 and 1.00 on 2025-05-01; P2 2.00 on 2025-05-01. As of 2025-05-15 the window is
    2025-04-01..2025-05-15: P1 has 1.00 < 2.00 (fails, though its total is 26.00), P2 2.00 (passes)."""
    ledger.publish_policy(
        custom_policy(
            "rules-standing-minimum",
            (r"^standing = \{[^}]*\}", 'standing = { points_min = "2.00", basis = "period" }'),
        )
    )
    post(ledger, cadre("P1", on=date(2025, 1, 1)), cadre("P2", on=date(2025, 1, 1)))
    post(
        ledger,
        merit("P1", date(2025, 2, 1), "honorary_title", "national"),
        merit("P1", date(2025, 5, 1)),
        merit("P2", date(2025, 5, 1), "citation", "municipal"),
    )
    as_of = date(2025, 5, 15)
    standing = {n: check(projections.eligibility(f"P{n}", as_of=as_of), "standing").passed for n in (1, 2)}
    assert standing == {1: False, 2: True}


def test_recalls_and_escalations_of_the_illustrative_policy_rank_on_the_period(
    ledger: Ledger, projections: Projections
) -> None:
    """R01..R10 registered 2025-01-01. R10 earns 25.00 on 2025-02-01 (Q1); R01..R07 earn 1.00 each on
    2025-05-01 (Q2); R08, R09 nothing.
    2025Q2 window: R01..R07 1.00 (rank 1), R08, R09, R10 0.00 (rank 8); the 3rd from the bottom has rank 8
    → recalls R08, R09, R10 at rank 8, pool 10, total 0.00 (on totals R10 would be first with 25.00).
    2025Q1 window: R10 25.00 (1), the nine others 0.00 (2): bottom(3) = R01..R09. Escalations for 2025Q2:
    R08, R09 were in both sets → streak 2, step 2 (admonishment_talk); R10 only in Q2 → streak 1, step 1."""
    post(ledger, *(cadre(f"R{n:02d}", on=date(2025, 1, 1)) for n in range(1, 11)))
    post(
        ledger,
        merit("R10", date(2025, 2, 1), "honorary_title", "national"),
        *(merit(f"R{n:02d}", date(2025, 5, 1)) for n in range(1, 8)),
    )
    recalls = projections.recalls("2025Q2")
    assert recalls.basis == "period"
    assert sorted((c.rank, c.cadre_id, c.pool_size, c.total) for c in recalls.candidates) == [
        (8, cadre_id, 10, D("0.00")) for cadre_id in ("R08", "R09", "R10")
    ]
    escalations = projections.escalations("2025Q2")
    assert escalations.basis == "period"
    assert sorted((e.cadre_id, e.streak, e.step, e.action) for e in escalations.escalations) == [
        ("R08", 2, 2, "admonishment_talk"),
        ("R09", 2, 2, "admonishment_talk"),
        ("R10", 1, 1, "commitment_speech_and_summons_talk"),
    ]


# Server fields.


def test_the_ledger_sets_appraisal_years_and_barred_awards_and_refuses_them_from_a_client(
    ledger: Ledger,
) -> None:
    """A criticism (no appraisal_cap) of 2025-03-01 still records appraisal_years (2025,); a veto of 2025
    records the illustrative barred awards (commendation, honorary_title, performance_award). A client that
    sends either field is refused with server_field_not_allowed naming the field, and nothing is recorded."""
    post(ledger, cadre("Z1"))
    posted = post(ledger, deduction("Z1", date(2025, 3, 1), "criticism"), veto("Z1", 2025, date(2025, 4, 1)))
    assert tuple(recorded(ledger, posted.results[0].event_id).appraisal_years) == (2025,)
    assert tuple(recorded(ledger, posted.results[1].event_id).barred_awards) == (
        "commendation",
        "honorary_title",
        "performance_award",
    )
    head = ledger.head()
    forged = [
        (
            msgspec.structs.replace(deduction("Z1", date(2025, 5, 1), "demerit"), appraisal_years=(2025,)),
            "appraisal_years",
        ),
        (msgspec.structs.replace(veto("Z1", 2025, date(2025, 5, 1)), barred_awards=()), "barred_awards"),
    ]
    for event, field in forged:
        with pytest.raises(InvalidInput) as refused:
            post(ledger, event)
        assert (refused.value.rule, refused.value.field) == ("server_field_not_allowed", field)
    assert ledger.head() == head
