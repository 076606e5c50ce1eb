"""Hostile races between writers: what another writer (or the same process) appends between a batch's
decision and its append must leave every decision exactly as deciding the whole batch against the
complete log at its final position would.

Expected results are worked out by hand from the illustrative policy (merit annual cap 30.00; at national
level an honorary title is 25.00, a commendation 6.00, a citation 4.00). The race is made deterministic
with `interfere` (tests/integration/test_writers.py): its hook runs right after each decision of a writer,
before its append, as another process posting then would. The ledger opens with its policy at position 1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ledger import Ledger
from ledger.domain.errors import Conflict, InvalidInput
from ledger.domain.events import (
    CadreDeparted,
    CadreTransferred,
    EntryReversed,
    KeyCreated,
    MeritAwarded,
    Source,
)
from ledger.writer import LOST_RACES_MAX
from tests.conftest import fixed_clock, registration, source
from tests.integration.test_writers import (
    encoded,
    folded_from_the_log,
    interfere,
    merit,
    stop_interfering,
    writer_plan_appended,
)
from tests.support import raw_sql

D = Decimal


def once(action: Callable[[], object], *, at: int = 1) -> Callable[[int], None]:
    """A hook that runs `action` right after decision `at` only."""

    def hook(decision: int) -> None:
        if decision == at:
            action()

    return hook


def logged_types(url: str) -> list[str]:
    """The type of every event of the log, in position order (read from the table, not the ledger)."""
    rows = raw_sql(url, "SELECT {pos}, state FROM {events} ORDER BY {pos}")
    return [str(msgspec.json.decode(bytes(row[1]))["type"]) for row in rows]


def reversal(cadre_id: str, target: Any, on: date = date(2025, 6, 1)) -> EntryReversed:
    return EntryReversed(
        cadre_id=cadre_id, effective_on=on, source=source(), target_event_id=target, reason="复核"
    )


def assert_consistent(ledger: Ledger) -> None:
    """The writer's knowledge, caught up (it folds lazily: a batch of replays folds nothing), is a fold
    of the log, and the chain verifies."""
    ledger.load_all()
    assert encoded(ledger._writer.knowledge) == encoded(folded_from_the_log(ledger.url))
    assert ledger.verify().ok


# Registrations racing registrations.


def test_a_registration_racing_another_writers_registration_of_the_same_cadre_refuses_the_whole_batch(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    head = mine.head()
    theirs = registration("C5", unit_id="U9")  # another submission (another source key)
    interfere(mine, once(lambda: other.post([theirs])))
    with pytest.raises(InvalidInput) as refused:
        mine.post([registration("C2"), registration("C5")])
    # Decided again against the other's registration, mine of C5 is a second registration: the batch is
    # refused whole, so C2 (decided first, untouched by the other) is not recorded either.
    assert refused.value.item == 1
    assert refused.value.rule == "cadre_must_not_be_registered_twice"
    assert mine.head() == head + 1
    assert "C2" not in mine._writer.knowledge.cadres
    assert mine._writer.knowledge.cadres["C5"].state.unit_id == "U9"
    stop_interfering(mine)
    assert_consistent(mine)


def test_the_same_registration_in_two_writers_batches_is_recorded_once_and_replays(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    same = registration("C5", key="reg-C5")
    won: list[int] = []
    interfere(mine, once(lambda: won.extend(item.position for item in other.post([same]).results)))
    result = mine.post([registration("C2"), same, merit("C5", "citation")])
    # The other's registration took position 2; mine replays it, and the rest follows at 3 and 4 — the
    # merit counted against the registration the other recorded.
    assert won == [2]
    assert [(i.position, i.replayed, i.points) for i in result.results] == [
        (3, False, D("0.00")),
        (2, True, D("0.00")),
        (4, False, D("4.00")),
    ]
    assert logged_types(mine.url).count("cadre.registered") == 2
    stop_interfering(mine)
    assert_consistent(mine)


# Lifecycle events racing merits of the same cadre.


def test_a_departure_appended_meanwhile_refuses_a_later_merit_of_the_same_cadre(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    head = mine.head()
    departure = CadreDeparted(cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), reason="retired")  # type: ignore[call-arg]
    interfere(mine, once(lambda: other.post([departure])))
    with pytest.raises(InvalidInput) as refused:
        mine.post([merit("C2", "citation"), merit("C1", "citation", on=date(2025, 6, 1))])
    assert refused.value.item == 1
    assert refused.value.rule == "effective_on_must_not_follow_departure"
    assert mine.head() == head + 1  # the departure only: C2's citation went with the refused batch
    stop_interfering(mine)
    assert_consistent(mine)


def test_a_merit_appended_meanwhile_does_not_stop_a_departure_dated_before_it(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    interfere(mine, once(lambda: other.post([merit("C1", "honorary_title", on=date(2025, 6, 1))])))
    departure = CadreDeparted(cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), reason="retired")  # type: ignore[call-arg]
    result = mine.post([merit("C2", "citation"), departure, merit("C1", "citation", on=date(2025, 2, 1))])
    # The other's merit (25.00) is at 4. Mine follows: C2's citation kept (5), the departure (6), and the
    # February citation counts what the year has left after the other's 25.00: 4.00 ≤ 5.00.
    assert [(i.position, i.points) for i in result.results] == [
        (5, D("4.00")),
        (6, D("0.00")),
        (7, D("4.00")),
    ]
    stop_interfering(mine)
    assert_consistent(mine)


def test_a_transfer_racing_a_transfer_to_the_same_unit_is_refused(two: tuple[Ledger, Ledger]) -> None:
    mine, other = two
    mine.post([registration("C1", unit_id="U1"), registration("C2")])

    def transfer(key: str) -> CadreTransferred:
        return CadreTransferred(
            cadre_id="C1", effective_on=date(2025, 4, 1), source=source(key=key), unit_id="U2"
        )  # type: ignore[call-arg]

    interfere(mine, once(lambda: other.post([transfer("t-other")])))
    with pytest.raises(InvalidInput) as refused:
        mine.post([merit("C2", "citation"), transfer("t-mine")])
    assert (refused.value.item, refused.value.rule) == (1, "transfer_must_change_unit")
    stop_interfering(mine)
    assert_consistent(mine)


# Reversals whose target is in another writer's batch.


def test_a_reversal_racing_another_writers_reversal_of_the_same_target_is_refused(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    target = other.post([merit("C1", "honorary_title")]).results[0].event_id  # the other's own batch
    interfere(mine, once(lambda: other.post([reversal("C1", target)])))
    with pytest.raises(InvalidInput) as refused:
        mine.post([merit("C2", "citation"), reversal("C1", target)])
    assert (refused.value.item, refused.value.rule) == (1, "reversal_target_must_not_be_reversed")
    stop_interfering(mine)
    assert_consistent(mine)


def test_a_reversal_decided_again_after_the_winner_capped_its_cadre_takes_back_the_target_only(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    posted = other.post([merit("C1", "honorary_title")])  # 25.00 at 4
    target = posted.results[0].event_id
    interfere(mine, once(lambda: other.post([merit("C1", "commendation")])))  # 5.00 left: 5.00, at 5
    result = mine.post([merit("C2", "citation"), reversal("C1", target), merit("C1", "commendation")])
    # After the reversal C1's year holds the other's 5.00 only: my commendation counts 6.00 in full.
    assert [(i.position, i.points) for i in result.results] == [
        (6, D("4.00")),
        (7, D("-25.00")),
        (8, D("6.00")),
    ]
    assert mine._writer.knowledge.cadres["C1"].state.merits_by_year[2025] == D("11.00")
    reversed_ = mine.event(result.results[1].event_id).event
    assert isinstance(reversed_, EntryReversed) and reversed_.target_position == 4
    stop_interfering(mine)
    assert_consistent(mine)


# Source keys in two writers' batches.


def test_a_source_key_recorded_meanwhile_with_other_content_for_another_cadre_is_a_conflict(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2"), registration("C3")])
    head = mine.head()
    shared = Source(system="hr", key="shared-1")
    theirs = MeritAwarded(
        cadre_id="C3", effective_on=date(2025, 3, 1), source=shared, award="citation", level="national"
    )  # type: ignore[arg-type]
    mine_ = MeritAwarded(
        cadre_id="C2", effective_on=date(2025, 3, 1), source=shared, award="citation", level="national"
    )  # type: ignore[arg-type]
    # The other's batch touches C3 only: none of my cadres. Only its source key says the decision is gone.
    interfere(mine, once(lambda: other.post([theirs])))
    with pytest.raises(Conflict):
        mine.post([merit("C1", "citation"), mine_])
    assert mine.head() == head + 1
    stop_interfering(mine)
    assert_consistent(mine)


def test_a_batch_of_replays_only_answers_the_recorded_positions_while_another_writer_appends(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    first = [merit("C1", "citation"), merit("C2", "commendation")]
    recorded = mine.post(first)
    interfere(mine, once(lambda: other.post([merit("C1", "citation")])))
    again = mine.post(first)
    # Both items replay what positions 4 and 5 hold; nothing is appended, the head is the other's 6.
    assert [(i.position, i.replayed, i.points) for i in again.results] == [
        (4, True, D("4.00")),
        (5, True, D("6.00")),
    ]
    assert [i.event_id for i in again.results] == [i.event_id for i in recorded.results]
    assert again.position == 6
    assert mine.head() == 6
    stop_interfering(mine)
    assert_consistent(mine)


# A post inside a post (the same process).


def test_a_post_inside_a_post_makes_the_outer_batch_decided_again_against_it(ledger: Ledger) -> None:
    ledger.post([registration("C1"), registration("C2"), merit("C1", "honorary_title")])  # 25.00
    inner: list[Any] = []

    def hook(decision: int) -> None:
        if decision == 1:
            inner.append(ledger.post([merit("C1", "commendation")]))  # decisions 2 (and its own)

    decisions = interfere(ledger, hook)
    outer = ledger.post([merit("C2", "citation"), merit("C1", "commendation")])
    # The inner post took the year's last 5.00 at 5; the outer, decided again, counts 0.00 for C1.
    assert [(i.position, i.points) for i in inner[0].results] == [(5, D("5.00"))]
    assert [(i.position, i.points) for i in outer.results] == [(6, D("4.00")), (7, D("0.00"))]
    assert decisions == [1, 2, 3]
    stop_interfering(ledger)
    assert_consistent(ledger)


# The ledger's own streams.


def test_key_events_appended_meanwhile_leave_the_decision_standing(two: tuple[Ledger, Ledger]) -> None:
    mine, other = two
    mine.post([registration("C1")])
    key = KeyCreated(
        effective_on=date(2025, 12, 15),
        source=Source(system="ledger.keys", key="created:00112233aabbccdd"),
        key_id="00112233aabbccdd",
        principal="ops",
        role="reader",
        system=None,
        event_types=(),
        secret_sha256="0" * 64,
        created_at=fixed_clock(),
        demo=False,
    )
    decisions = interfere(mine, once(lambda: other.record_own([key], posted_by="ops")))
    result = mine.post([merit("C1", "citation")])
    # `$keys` is read by no decision: the batch is appended as decided, after the key event at 3.
    assert decisions == [1]
    assert mine._writer.lost_races == 0
    assert [(i.position, i.points) for i in result.results] == [(4, D("4.00"))]
    stop_interfering(mine)
    assert_consistent(mine)


# Dates.


def test_a_batch_decided_on_the_last_day_of_a_year_and_appended_on_the_first_of_the_next(
    store_url: str,
) -> None:
    now = [datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC)]  # 23:59:59 in Asia/Shanghai

    def clock() -> datetime:
        return now[0]

    mine = Ledger.open(store_url, clock=clock)
    other = Ledger.open(store_url, clock=clock)
    try:
        mine.post(
            [registration("C1"), registration("C2"), merit("C1", "honorary_title", on=date(2025, 3, 1))]
        )

        def new_year() -> None:
            other.post([merit("C2", "citation", on=date(2025, 12, 31))])
            now[0] = datetime(2025, 12, 31, 16, 0, 1, tzinfo=UTC)  # 2026-01-01 00:00:01 there

        decisions = interfere(mine, once(new_year))
        result = mine.post([merit("C1", "commendation", on=date(2025, 12, 31))])
        # The other's batch touched C2 only, but the date changed between the decision and the append:
        # the batch was decided again, whole, on 2026-01-01 (the same 5.00: caps go by the merit's year).
        assert decisions == [1, 2]
        assert [(i.position, i.points) for i in result.results] == [(6, D("5.00"))]
        # A merit of the new year starts a new cap: 6.00 in full.
        later = mine.post([merit("C1", "commendation", on=date(2026, 1, 1))])
        assert [(i.position, i.points) for i in later.results] == [(7, D("6.00"))]
        stop_interfering(mine)
        assert_consistent(mine)
    finally:
        mine.close()
        other.close()


# Partial re-decisions: kept states, the lock.


def test_a_partial_re_decision_keeps_a_state_a_restarted_writer_restores_as_the_fold_of_the_log(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2"), registration("C3")])
    mine.post([merit("C1", "honorary_title"), merit("C2", "merit_first_class")])  # 25.00, 20.00
    decisions = interfere(mine, once(lambda: other.post([merit("C1", "commendation")])))  # 5.00
    batch = [
        merit("C2", "merit_second_class"),  # 10.00 of 12.00: C2's year is full
        merit("C1", "citation"),  # 0.00 after the other's 5.00
        merit("C3", "honorary_title"),  # 25.00
        merit("C2", "citation"),  # 0.00
        merit("C3", "merit_third_class"),  # 5.00 of 8.00
    ]
    result = mine.post(batch)
    assert decisions == [1, 2]
    assert [i.points for i in result.results] == [D(p) for p in ("10.00", "0.00", "25.00", "0.00", "5.00")]
    assert [i.position for i in result.results] == list(range(8, 13))
    stop_interfering(mine)
    assert mine.keep_writer_state()
    url = mine.url
    with Ledger.open(url, clock=fixed_clock) as restarted:
        restarted.load_all()
        assert encoded(restarted._writer.knowledge) == encoded(folded_from_the_log(url))
        states = restarted._writer.knowledge.cadres
        assert {c: states[c].state.merits_by_year[2025] for c in ("C1", "C2", "C3")} == {
            "C1": D("30.00"),
            "C2": D("30.00"),
            "C3": D("30.00"),
        }
        # Decided from the restored state: every year is full.
        assert [
            i.points for i in restarted.post([merit(c, "citation") for c in ("C1", "C2", "C3")]).results
        ] == [D("0.00")] * 3


def test_a_batch_that_keeps_losing_on_one_cadre_keeps_the_other_cadres_decisions_through_the_lock(
    two: tuple[Ledger, Ledger],
) -> None:
    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    firsts: list[Any] = []

    def hook(decision: int) -> None:
        firsts.append([r.event.event_id for r in writer_plan_appended(mine)])
        if decision <= LOST_RACES_MAX:
            other.post([merit("C1", "merit_first_class")])  # 20.00 then 10.00 of 20.00: C1 is full

    decisions = interfere(mine, hook)
    result = mine.post([merit("C2", "commendation"), merit("C1", "citation"), merit("C2", "citation")])
    assert decisions == [1, 2, 3]
    assert [(i.position, i.points) for i in result.results] == [
        (6, D("6.00")),
        (7, D("0.00")),
        (8, D("4.00")),
    ]
    # C2's events are those decided first, through both lost races and the decision under the lock.
    assert [result.results[0].event_id, result.results[2].event_id] == [firsts[0][0], firsts[0][2]]
    stop_interfering(mine)
    assert_consistent(mine)


# The rulebook.


def test_a_policy_published_meanwhile_makes_a_batch_of_other_streams_decided_again_under_it(
    two: tuple[Ledger, Ledger],
) -> None:
    from tests.integration.test_rules_scenarios import custom_policy

    mine, other = two
    mine.post([registration("C1"), registration("C2")])
    # In force from 2025-01-01, after the illustrative one: a national citation counts 5.00, not 4.00.
    body = custom_policy(
        "local-5",
        (r'^citation( +)= \{ national = "4\.00"', r'citation\1= { national = "5.00"'),
        effective_from=date(2025, 1, 1),
    )
    decisions = interfere(mine, once(lambda: other.publish_policy(body)))
    result = mine.post([merit("C1", "citation"), merit("C2", "citation")])
    # The publication touched `$policy` only, a stream the batch did not read; yet every item reads the
    # rulebook: decided again, whole, each citation counts 5.00 under local-5 (the policy at 4).
    assert decisions == [1, 2]
    assert [(i.position, i.points) for i in result.results] == [(5, D("5.00")), (6, D("5.00"))]
    assert {mine.event(i.event_id).event.policy_version for i in result.results} == {"local-5"}
    stop_interfering(mine)
    assert_consistent(mine)
